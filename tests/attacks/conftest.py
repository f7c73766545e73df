from tests.evaluation.helpers import gated_hook, hook, one_thread  # noqa: F401 (fixtures)
