from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sae_unlearn.errors import UserError
from sae_unlearn.steering import (
    CSV_COLUMNS,
    ClampConfig,
    ClampHook,
    SteeringRow,
    clamp_prime,
    gated_clamp,
    read_clamp_yaml,
    read_steering_csv,
    refusal_clamp,
    write_clamp_yaml,
    write_steering_csv,
)
from tests.steering.reference import reference_steer
from tests.tiny import D_IN, firing_latents, random_sae


def test_yaml_and_csv_round_trip(tmp_path):
    cfg = refusal_clamp(7, [11766, 9723], 15864, 0.05, -500.0, "rel", "sid")
    write_clamp_yaml(cfg, tmp_path / "c.yaml")
    back = read_clamp_yaml(tmp_path / "c.yaml")
    assert back.rows == cfg.rows and back.layer == 7 and back.mode == "refusal_clamp"
    write_steering_csv(cfg, tmp_path / "c.csv")
    frame = pd.read_csv(tmp_path / "c.csv")
    assert list(frame.columns)[:3] == ["latent_idx", "hook_action", "refuse_id"]
    csv_back = read_steering_csv(tmp_path / "c.csv", layer=7)
    assert csv_back.rows == cfg.rows and csv_back.mode == "refusal_clamp"
    gated = gated_clamp(9, [3, 5], [12.5, 40.0], -1000.0)
    write_steering_csv(gated, tmp_path / "g.csv")
    gated_back = read_steering_csv(tmp_path / "g.csv", layer=9)
    assert gated_back.rows == gated.rows and gated_back.mode == "gated_clamp"
    assert pd.read_csv(tmp_path / "g.csv")["clamp_value"].tolist() == [12.5, 40.0]


def test_malformed_csv_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("latent_idx,hook_action\n1,clamp\n")
    with pytest.raises(ValueError, match="lacks steering CSV columns"):
        read_steering_csv(path, 0)
    path.write_text(
        "latent_idx,hook_action,refuse_id,clamp_value,steering_coefficient,sae_id,"
        "sae_release,description\n1,explode,,1,0,,,\n"
    )
    with pytest.raises(ValueError, match="hook_action='explode'"):
        read_steering_csv(path, 0)


def test_gates_round_trip_through_yaml_and_old_yamls_read_as_latched(tmp_path):
    from sae_unlearn.steering import Gate

    for gate in (Gate(), Gate("window", window=16), Gate("token_share", tau=0.0375)):
        cfg = gated_clamp(9, [3, 5], [12.5, 40.0], -1000.0, gate=gate)
        write_clamp_yaml(cfg, tmp_path / "g.yaml")
        back = read_clamp_yaml(tmp_path / "g.yaml")
        assert back.gate == gate and back.rows == cfg.rows
    data = yaml.safe_load((tmp_path / "g.yaml").read_text())
    assert data.pop("gate") == {"kind": "token_share", "tau": 0.0375}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))  # as written before gate kinds
    assert read_clamp_yaml(tmp_path / "old.yaml").gate == Gate()
    # A clamp_prime config has no gate to write.
    write_clamp_yaml(refusal_clamp(7, [1], 2, 0.05, -5.0), tmp_path / "r.yaml")
    assert "gate" not in (tmp_path / "r.yaml").read_text()


def test_bad_gates_refused_with_the_fix(tmp_path):
    from sae_unlearn.steering import Gate

    cases = [
        (Gate("window", window=0), "window of at least 1 token"),
        (Gate("window"), "window of at least 1 token"),
        (Gate("token_share"), "needs tau"),
        (Gate("token_share", tau=1.0), "0 <= tau < 1, got tau=1.0"),
        (Gate("token_share", tau=-0.1), "0 <= tau < 1"),
        (
            Gate("sliding"),
            r"gate kind 'sliding'; use one of \['latched', 'window', 'token_share'\]",
        ),
    ]
    for gate, message in cases:
        with pytest.raises(ValueError, match=message):
            gated_clamp(9, [3], [1.0], -1.0, gate=gate)
    path = tmp_path / "bad.yaml"
    write_clamp_yaml(gated_clamp(9, [3], [1.0], -1.0), path)
    path.write_text(path.read_text().replace("kind: latched", "kind: window\n  window: -2"))
    with pytest.raises(ValueError, match=f"window gate in {path} needs a window"):
        read_clamp_yaml(path)
    path.write_text(path.read_text().replace("window: -2", "size: 3"))
    with pytest.raises(ValueError, match="expected a mapping with `kind`"):
        read_clamp_yaml(path)
    # The paper's CSV has no gate column: a non-latched gate is refused, not dropped.
    share = gated_clamp(9, [3], [1.0], -1.0, gate=Gate("token_share", tau=0.1))
    with pytest.raises(ValueError, match="steering CSV cannot carry the token_share gate"):
        write_steering_csv(share, tmp_path / "share.csv")


# The authors' two published headers (AMindToThink/sae_jailbreak_unlearning,
# src/scripts/llm-auditing/selected_steered_csv/), and a row of each as they wrote it.
PRIME_HEADER = "latent_idx,hook_action,steering_coefficient,sae_id,sae_release,description"
REFUSAL_HEADER = (
    "latent_idx,hook_action,refuse_id,clamp_value,steering_coefficient,sae_id,sae_release,"
    "description"
)
GEMMA = "layer_7/width_16k/canonical,gemma-scope-2b-pt-res-canonical"
SHIPPED = Path(__file__).resolve().parents[2] / "data" / "steering"


def authors_reading(path: Path) -> list[tuple]:
    """What each row means to the authors' reader (`hooked_from_dataframe`), restated: a
    missing hook_action column is `add`; clamp_value and refuse_id are cast where their
    column exists (refuse_id with int(), so a blank there would fail); `clamp` and
    `clamp_cond` set steering_coefficient, `clamp_value` is the threshold."""
    frame = pd.read_csv(path)
    out = []
    for _, row in frame.iterrows():
        action = row.get("hook_action", "add")
        threshold = float(row["clamp_value"]) if "clamp_value" in row else None
        refuse = int(row["refuse_id"]) if "refuse_id" in row else None
        meaning = (int(row["latent_idx"]), action, float(row["steering_coefficient"]))
        if action in ("clamp_cond", "clamp_refusal", "clamp_gated"):
            meaning += (threshold,)
        if action == "clamp_refusal":
            meaning += (refuse,)
        out.append(meaning)
    return out


def our_reading(cfg) -> list[tuple]:
    out = []
    for r in cfg.rows:
        meaning = (r.latent_idx, r.hook_action, r.steering_coefficient)
        if r.hook_action in ("clamp_cond", "clamp_refusal", "clamp_gated"):
            meaning += (r.clamp_value,)
        if r.hook_action == "clamp_refusal":
            meaning += (r.refuse_id,)
        out.append(meaning)
    return out


def test_the_authors_files_read_with_their_meaning(tmp_path):
    prime = tmp_path / "prime.csv"
    prime.write_text(f"{PRIME_HEADER}\n11766,clamp,-300,{GEMMA},coronavirus\n")
    cfg = read_steering_csv(prime, 7)
    assert cfg.mode == "clamp_prime" and cfg.rows == [
        SteeringRow(
            11766,
            "clamp",
            None,
            0.0,
            -300.0,
            GEMMA.split(",")[0],
            GEMMA.split(",")[1],
            "coronavirus",
        )
    ]
    refusal = tmp_path / "refusal.csv"
    refusal.write_text(f"{REFUSAL_HEADER}\n11766,clamp_refusal,15864,0.05,-500,{GEMMA},x\n")
    (row,) = read_steering_csv(refusal, 7).rows
    assert (row.hook_action, row.refuse_id, row.clamp_value, row.steering_coefficient) == (
        "clamp_refusal",
        15864,
        0.05,
        -500.0,
    )
    for path in (prime, refusal):
        assert our_reading(read_steering_csv(path, 7)) == authors_reading(path)


def test_the_shipped_files_are_the_authors_layout_and_rows():
    prime, refusal = SHIPPED / "paper_clamp_prime.csv", SHIPPED / "paper_refusal_clamp.csv"
    assert prime.read_text().splitlines()[0] == PRIME_HEADER
    assert refusal.read_text().splitlines()[0] == REFUSAL_HEADER
    best = [11766, 9723, 4788, 1709, 9186]
    cfg = read_steering_csv(prime, 7)
    assert our_reading(cfg) == [(i, "clamp", -300.0) for i in best]
    more = [3058, 13381, 14050, 11078, 16246]
    cfg = read_steering_csv(refusal, 7)
    assert our_reading(cfg) == [(i, "clamp_refusal", -500.0, 0.05, 15864) for i in best + more]
    for path in (prime, refusal):
        assert our_reading(read_steering_csv(path, 7)) == authors_reading(path)
        assert {(r.sae_release, r.sae_id) for r in read_steering_csv(path, 7).rows} == {
            ("gemma-scope-2b-pt-res-canonical", "layer_7/width_16k/canonical")
        }


def test_a_clamp_prime_row_sets_the_firing_latent_to_its_coefficient(tmp_path):
    sae = random_sae("jumprelu")
    h = torch.randn(2, 6, D_IN)
    latent = firing_latents(sae, h, 1)[0]
    path = tmp_path / "prime.csv"
    path.write_text(f"{PRIME_HEADER}\n{latent},clamp,-300,{GEMMA},x\n")
    hook = ClampHook(sae, read_steering_csv(path, 0))
    with torch.no_grad():
        f = sae.encode(h)[..., hook.slice.index]
        edited = hook.edit(f)[:, 1:, hook.slice.position[latent]]
    before = f[:, 1:, hook.slice.position[latent]]
    assert (before > 0).any() and (before == 0).any()
    assert torch.equal(edited, torch.where(before > 0, -300.0, before))


def test_no_hook_action_column_means_add(tmp_path):
    sae = random_sae("standard").double()
    h = (torch.randn(2, 5, D_IN) * 2).double()
    latent = firing_latents(sae, h, 1)[0]
    path = tmp_path / "dog.csv"  # the layout of the authors' models/dog_steer_with_release.csv
    path.write_text(
        f"latent_idx,steering_coefficient,sae_release,sae_id,description\n{latent}, 24.0,r,i,d\n"
    )
    cfg = read_steering_csv(path, 0)
    assert cfg.rows == [SteeringRow(latent, "add", None, 0.0, 24.0, "i", "r", "d")]
    assert our_reading(cfg) == authors_reading(path)
    with torch.no_grad():
        torch.testing.assert_close(
            ClampHook(sae, cfg)(h), reference_steer(sae, cfg, h), rtol=1e-5, atol=1e-5
        )


def test_what_we_write_the_authors_read_with_the_same_meaning(tmp_path):
    prime = clamp_prime(7, [11766, 9723], -300.0, "gemma-scope-2b-pt-res-canonical", "sid")
    write_steering_csv(prime, tmp_path / "prime.csv")
    assert (tmp_path / "prime.csv").read_text().splitlines()[0] == PRIME_HEADER
    refusal = refusal_clamp(7, [11766, 9723], 15864, 0.05, -500.0)
    write_steering_csv(refusal, tmp_path / "refusal.csv")
    assert (tmp_path / "refusal.csv").read_text().splitlines()[0] == REFUSAL_HEADER
    mixed = ClampConfig(
        7,
        [
            SteeringRow(1, "add", None, 0.0, 2.5),
            SteeringRow(1, "add", None, 0.0, -1.0),
            SteeringRow(2, "clamp", None, 0.0, -300.0),
            SteeringRow(3, "clamp_cond", None, float("-inf"), -8.0),
            SteeringRow(4, "clamp_refusal", 9, 0.05, -500.0),
            SteeringRow(5, "clamp_gated", None, 3.5, -30.0),
        ],
    )
    write_steering_csv(mixed, tmp_path / "mixed.csv")
    assert list(pd.read_csv(tmp_path / "mixed.csv").columns) == CSV_COLUMNS
    for cfg, name in ((prime, "prime"), (refusal, "refusal"), (mixed, "mixed")):
        back = read_steering_csv(tmp_path / f"{name}.csv", 7)
        assert back.rows == cfg.rows
        assert authors_reading(tmp_path / f"{name}.csv") == our_reading(cfg)


def test_bad_cells_named_with_file_row_and_fix(tmp_path):
    path = tmp_path / "bad.csv"
    cases = [
        (
            f"{PRIME_HEADER}\n5,clamp,lots,{GEMMA},x\n",
            "row 2: steering_coefficient='lots' is not a number",
        ),
        # our old dialect: the value in clamp_value, steering_coefficient blank
        (
            f"{REFUSAL_HEADER}\n5,clamp,,-300,,{GEMMA},x\n",
            "row 2: steering_coefficient is empty; clamp needs it",
        ),
        (f"{PRIME_HEADER}\n5,clamp_cond,-3,{GEMMA},x\n", "row 2: clamp_cond needs clamp_value"),
        (
            f"{REFUSAL_HEADER}\n5,clamp_refusal,,0.05,-500,{GEMMA},x\n",
            "clamp_refusal needs refuse_id",
        ),
        (
            f"{REFUSAL_HEADER}\n5,clamp_refusal,9,high,-500,{GEMMA},x\n",
            "clamp_value='high' is not a number",
        ),
        (f"{PRIME_HEADER}\n5,,-3,{GEMMA},x\n", "hook_action is empty"),
        (
            "latent_idx,hook_action,steering_coefficient\n5,clamp,-3\n",
            r"lacks steering CSV columns \['sae_id', 'sae_release'\]",
        ),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(UserError, match=message) as err:
            read_steering_csv(path, 0)
        assert str(path) in str(err.value)


def test_a_clamp_yaml_from_before_the_authors_meaning_is_refused(tmp_path):
    path = tmp_path / "clamp.yaml"
    write_clamp_yaml(clamp_prime(3, [4], -300.0), path)
    data = yaml.safe_load(path.read_text())
    data["rows"][0].update(clamp_value=-300.0, steering_coefficient=0.0)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"rows\[0\] is a clamp row with clamp_value=-300.0"):
        read_clamp_yaml(path)
