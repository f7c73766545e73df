import pytest

from sae_unlearn.attacks.fewshot import draw_shots, fewshot_attack
from sae_unlearn.evaluation.config import EvalConfig
from sae_unlearn.evaluation.requests import build_requests
from tests.evaluation.helpers import questions


@pytest.mark.parametrize("fmt", ["cloze", "letter"])
def test_fewshot_prompt_has_exactly_k_shots(fmt):
    forget, retain = questions(3), questions(20, "geography", offset=1)
    for k in (0, 1, 4, 16):
        shots = draw_shots(retain, k, seed=7)
        assert (shots is None) if k == 0 else len(shots) == k
        for request in build_requests(forget, fmt, fewshot=shots):
            assert request.context.count("Answer:") == k + 1
            if shots is not None:
                for q in shots["question"]:
                    assert request.context.count(q) == 1
    # Seeded and nested: the 4 shots start the 16, and a redraw gives the same ones.
    assert draw_shots(retain, 16, 7)["question"].tolist()[:4] == (
        draw_shots(retain, 4, 7)["question"].tolist()
    )
    assert draw_shots(retain, 4, 7).equals(draw_shots(retain, 4, 7))
    with pytest.raises(ValueError, match="needs 21 retain questions"):
        draw_shots(retain, 21, 0)


def test_fewshot_attack_scores_each_k_and_model(tiny_model, hook):
    model, tokenizer = tiny_model
    forget, retain = questions(3), questions(4, "geography", offset=2)
    frames = fewshot_attack(
        model,
        tokenizer,
        forget,
        retain,
        [0, 2],
        0,
        EvalConfig(),
        {"baseline": None, "steered": hook},
    )
    assert list(frames) == [0, 2] and list(frames[0]) == ["baseline", "steered"]
    for by_model in frames.values():
        assert all(len(frame) == 3 for frame in by_model.values())
        # The hook changes the scores; the shots change them too.
        assert by_model["baseline"]["loglik"].tolist() != by_model["steered"]["loglik"].tolist()
    assert frames[0]["baseline"]["loglik"].tolist() != frames[2]["baseline"]["loglik"].tolist()
