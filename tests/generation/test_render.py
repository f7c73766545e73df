from sae_unlearn.generation import marked_text, render
from sae_unlearn.generation.greedy import Continuation
from sae_unlearn.generation.render import Comparison
from tests.tiny import tiny_tokenizer

TOKENIZER = tiny_tokenizer()


def test_marked_tokens_wrapped_in_brackets():
    ids = TOKENIZER("Viruses replicate inside host cells")["input_ids"]
    # byte-level BPE pieces: 'Ġ' is a space; the last piece is 'Ġcells'
    assert TOKENIZER.convert_ids_to_tokens(ids[-1:]) == ["Ġcells"]
    marks = [False] * len(ids)
    marks[-1] = True
    assert marked_text(TOKENIZER, ids, marks) == "Viruses replicate inside host⟦ cells⟧"
    marks[0] = True  # BOS decodes to nothing: nothing to wrap
    assert marked_text(TOKENIZER, ids, marks) == "Viruses replicate inside host⟦ cells⟧"
    assert marked_text(TOKENIZER, ids, [False] * len(ids)) == "Viruses replicate inside host cells"


def test_render_lays_out_prompt_unsteered_and_steered():
    prompt = TOKENIZER("I'm sorry")["input_ids"]  # <bos> I ' m Ġs or r y
    cont = TOKENIZER(" cells", add_special_tokens=False)["input_ids"]
    plain = Continuation(prompt, cont)
    opened = Continuation(prompt, cont, [False, False, False, True] + [False] * 4, [False])
    closed = Continuation(prompt, cont, [False] * 8, [False])
    text = render(
        TOKENIZER,
        [Comparison("I'm sorry", plain, opened), Comparison("I'm sorry", plain, closed)],
        gated=True,
    )
    assert text.splitlines() == [
        "⟦ ⟧ marks the tokens where the gate opened",
        "",
        "[1] prompt:    I'⟦m⟧ sorry",
        "    unsteered:  cells",
        "    steered:    cells",
        "    (gate opened in the prompt (token 3))",
        "",
        "[2] prompt:    I'm sorry",
        "    unsteered:  cells",
        "    steered:    cells",
        "    (gate never opened)",
    ]
