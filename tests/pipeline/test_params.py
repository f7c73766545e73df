from pathlib import Path

import pytest
import yaml

from pipeline.params import Params
from sae_unlearn.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, data: dict) -> Params:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return Params.load(path)


def refusal(tmp_path: Path, data: dict) -> str:
    with pytest.raises(UserError) as err:
        load(tmp_path, data)
    return str(err.value)


def test_params_yaml_holds_exactly_the_schema_defaults():
    # The schema is where defaults live; params.yaml spells the embedded default out.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert Params.model_validate(raw).model_dump() == Params().model_dump()
    assert Params().model_dump() == raw | {}  # no key left out of params.yaml either


def test_misspelt_key_named_with_a_suggestion(tmp_path):
    message = refusal(tmp_path, {"select": {"topk": 5}})
    assert "unknown key `select.topk`; did you mean `select.top_k`?" in message


def test_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path):
    message = refusal(tmp_path, {"attack": {"gcg": {"zzz": 1}}})
    assert "unknown key `attack.gcg.zzz`" in message and "num_steps" in message


def test_wrong_type_and_value_named(tmp_path):
    message = refusal(tmp_path, {"clamp": {"value": "strong"}, "evaluate": {"format": "mc"}})
    assert "`clamp.value`" in message and "'strong'" in message
    assert "`evaluate.format`" in message and "'cloze'" in message


def test_a_url_as_cache_dir_points_to_shards_url(tmp_path):
    message = refusal(tmp_path, {"cache": {"dir": "s3://bucket/cache"}})
    assert "cache.dir is the local folder DVC tracks" in message
    assert "shards_url: s3://bucket/cache" in message and "dir: data/cache" in message


def test_get_and_pick_read_dotted_keys(tmp_path):
    params = load(tmp_path, {"select": {"top_k": 7}, "seed": 3})
    assert params.get("select.top_k") == 7
    assert params.pick(None, "seed") == 3 and params.pick(9, "seed") == 9
    assert params.get("attack.gcg")["num_steps"] == 8  # a section as a plain dict
    with pytest.raises(KeyError):
        params.get("select.nope")


def test_missing_file_gives_the_defaults(tmp_path):
    assert Params.load(tmp_path / "absent.yaml") == Params()


def test_local_file_outside_its_dependency_folder_refused(tmp_path):
    message = refusal(tmp_path, {"data": {"forget_corpus": str(tmp_path / "corpus.jsonl")}})
    assert "`data.forget_corpus`" in message and "inputs/data/" in message
    assert "data.forget_corpus: inputs/data/corpus.jsonl" in message


def test_named_sources_and_files_inside_their_folder_accepted(tmp_path):
    params = load(
        tmp_path,
        {
            "data": {"forget_questions": "wmdp-bio", "retain_corpus": "inputs/data/r.jsonl"},
            "clamp": {"csv": "data/steering/paper_clamp_prime.csv"},
            "model": {"name": "google/gemma-2-2b"},
        },
    )
    assert params.get("clamp.csv") == "data/steering/paper_clamp_prime.csv"


def test_retain_near_is_embedded_by_default_and_takes_its_sources(tmp_path):
    assert Params().get("data.retain_near_corpus") == "embedded"
    assert Params().get("data.retain_near_questions") == "embedded"
    assert (
        load(tmp_path, {"data": {"retain_near_corpus": "none"}}).get("data.retain_near_corpus")
        == "none"
    )
    params = load(
        tmp_path,
        {
            "data": {
                "retain_near_questions": "mmlu-bio",
                "retain_near_corpus": "inputs/data/near.jsonl",
            }
        },
    )
    assert params.get("data.retain_near_questions") == "mmlu-bio"
    message = refusal(tmp_path, {"data": {"retain_near_questions": str(tmp_path / "nq.jsonl")}})
    assert "`data.retain_near_questions`" in message
    assert "data.retain_near_questions: inputs/data/nq.jsonl" in message


# (params key, value, the library's own check of that value). Each value is refused by both
# the schema and the library, so no accepted params value fails later with a traceback.
def _select(**kw):
    from sae_unlearn.selection.config import SelectConfig

    return SelectConfig(**kw)


def _cache(**kw):
    from sae_unlearn.activations.cache import CacheConfig

    return CacheConfig(**({"layers": (9,)} | kw))


def _sae_train(**kw):
    from sae_unlearn.saes.config import SAETrainConfig

    return SAETrainConfig(**kw)


def _gcg(**kw):
    from sae_unlearn.attacks.gcg import GCGConfig

    return GCGConfig(**kw)


REFUSED_BY_BOTH = [
    ("select.threshold_rate", 1.0, lambda v: _select(threshold_rate=v)),
    ("select.threshold_rate", -0.1, lambda v: _select(threshold_rate=v)),
    ("select.retain_threshold", 1.5, lambda v: _select(retain_threshold=v)),
    ("select.min_forget_freq", -0.01, lambda v: _select(min_forget_freq=v)),
    ("select.eps", 0.0, lambda v: _select(eps=v)),
    ("select.top_k", 0, lambda v: _select(top_k=v)),
    ("select.min_near_ratio", 0.0, lambda v: _select(min_near_ratio=v)),
    ("cache.seq_len", 1, lambda v: _cache(seq_len=v)),
    ("cache.layers", [], lambda v: _cache(layers=tuple(v))),
    ("cache.max_tokens", 64, lambda v: _cache(max_tokens=v)),
    ("sae.train.k", 5000, lambda v: _sae_train(k=v)),
    ("sae.train.held_out_fraction", 1.0, lambda v: _sae_train(held_out_fraction=v)),
    ("attack.gcg.optim_str_init", "   ", lambda v: _gcg(optim_str_init=v)),
    ("attack.gcg.search_width", 0, lambda v: _gcg(search_width=v)),
]


def _nested(key: str, value) -> dict:
    data: dict = {}
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


@pytest.mark.parametrize(("key", "value", "library"), REFUSED_BY_BOTH)
def test_schema_refuses_what_the_library_refuses(tmp_path, key, value, library):
    with pytest.raises(UserError):
        library(value)
    message = refusal(tmp_path, _nested(key, value))
    assert key.split(".")[-1] in message and str(tmp_path / "params.yaml") in message


def test_allowed_values_have_one_owner(tmp_path):
    from sae_unlearn import choices
    from sae_unlearn.evaluation.config import FORMATS
    from sae_unlearn.saes.config import ARCHITECTURES
    from sae_unlearn.selection.config import SCORES
    from sae_unlearn.steering.rows import GATES, MODES

    assert (FORMATS, ARCHITECTURES, SCORES, GATES, MODES) == (
        choices.EVAL_FORMATS,
        choices.SAE_ARCHITECTURES,
        choices.RANKING_SCORES,
        choices.GATES,
        choices.CLAMP_MODES,
    )
    for key, allowed in [
        ("clamp.mode", choices.CLAMP_MODES),
        ("clamp.gate", choices.GATES),
        ("select.score", choices.RANKING_SCORES),
        ("evaluate.format", choices.EVAL_FORMATS),
        ("sae.train.architecture", choices.SAE_ARCHITECTURES),
    ]:
        for value in allowed:
            data = _nested(key, value)
            if key == "select.score" and value == "crisp":
                data["select"]["min_near_ratio"] = 3.0
            folder = tmp_path / f"{key}={value}"
            folder.mkdir()
            assert load(folder, data).get(key) == value  # every listed value is accepted
