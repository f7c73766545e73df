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


def test_get_and_pick_read_dotted_keys(tmp_path):
    params = load(tmp_path, {"select": {"top_k": 7}, "seed": 3})
    assert params.get("select.top_k") == 7
    assert params.pick(None, "seed") == 3 and params.pick(9, "seed") == 9
    assert params.get("attack.gcg")["num_steps"] == 30  # a section as a plain dict
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
