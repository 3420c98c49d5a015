import pytest

from rlt.formats import (
    TAG_SETS,
    explanation_token_ids,
    extract_explanation,
    get_tags,
    strip_solution_tags,
    student_segments,
    student_sft_example,
    tag_solution,
    teacher_rl_prompt,
    teacher_sft_example,
)
from rlt.models import char_tokenizer

Q, S, E = "start 7; +5; *3 (mod 10)", "6", "7+5=2; 2*3=6"


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.mark.parametrize("fmt", sorted(TAG_SETS))
def test_teacher_rl_prompt_is_prefix_of_sft_example(tok, fmt):
    tags = get_tags(fmt)
    rl = teacher_rl_prompt(tok, Q, S, tags)
    assert rl.endswith(tags.explanation_open)
    sft = teacher_sft_example(tok, Q, S, E, tags)
    full = sft["prompt"] + sft["completion"]
    assert full.startswith(rl)
    # The completion after the RL prompt is the explanation, the close tag and the end of the turn.
    assert full[len(rl) :] == f"{E}{tags.explanation_close}<|im_end|>\n"
    # The SFT completion is the whole assistant turn: solution, then the explanation.
    assert sft["completion"].startswith(f"{tags.solution_open}{S}{tags.solution_close}\n\n{tags.explanation_open}")


@pytest.mark.parametrize("fmt", sorted(TAG_SETS))
def test_student_segments_give_exact_spans(tok, fmt):
    tags = get_tags(fmt)
    seg = student_segments(tok, Q, S, tags)
    expl_ids = tok(E, add_special_tokens=False)["input_ids"]
    ids, e_span, s_span = seg.build(expl_ids)
    assert ids[e_span] == expl_ids
    assert tok.decode(ids[s_span]) == S
    # The segments are the student SFT rendering, token for token.
    ex = student_sft_example(tok, Q, S, E, tags)
    assert tok.decode(ids) == ex["prompt"] + ex["completion"]
    assert tok.decode(ids[: e_span.start]).endswith(tags.think_open)
    assert tok.decode(ids[e_span.stop :]).startswith(tags.think_close)


def test_student_segments_with_empty_explanation(tok, tags):
    seg = student_segments(tok, Q, S, tags)
    ids, e_span, s_span = seg.build([])
    assert e_span.start == e_span.stop
    assert tok.decode(ids[s_span]) == S


def test_tagged_solution_is_not_double_tagged(tags):
    tagged = tag_solution(S, tags)
    assert tag_solution(tagged, tags) == tagged
    assert tagged.count(tags.solution_open) == 1
    assert strip_solution_tags(f"  {tagged}\n", tags) == S


def test_system_prompt_override(tok, tags):
    assert "<|im_start|>system" not in teacher_rl_prompt(tok, Q, S, tags, system="")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in teacher_rl_prompt(tok, Q, S, tags, system="Be brief.")


@pytest.mark.parametrize(
    ("completion", "text", "closed", "empty"),
    [
        (f"{E}<|end_of_explanation|><|im_end|>", E, True, False),
        (f"{E} and then some", f"{E} and then some", False, False),  # truncated at max length
        ("<|end_of_explanation|>", "", True, True),
        ("", "", False, True),
        ("  \n<|end_of_explanation|>", "  \n", True, True),
        (f"{E}<|end_of_explanation|>x<|end_of_explanation|>", E, True, False),  # repeated close tag
    ],
)
def test_extract_explanation(tags, completion, text, closed, empty):
    ex = extract_explanation(completion, tags)
    assert (ex.text, ex.closed, ex.empty) == (text, closed, empty)
    assert ex.well_formed == (closed and not empty)


def test_explanation_token_ids_keep_sampled_ids(tok, tags):
    expl = tok(E, add_special_tokens=False)["input_ids"]
    close = tok(tags.explanation_close + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert explanation_token_ids(expl + close, tok, tags) == (expl, True)
    pad = [tok.pad_token_id] * 3
    assert explanation_token_ids(expl + pad, tok, tags) == (expl, False)
    assert explanation_token_ids([], tok, tags) == ([], False)


def test_unknown_tag_format():
    with pytest.raises(ValueError, match="unknown tag format 'xml'.*bespoke"):
        get_tags("xml")


def test_missing_chat_template(tags):
    tok = char_tokenizer()
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        teacher_rl_prompt(tok, Q, S, tags)
