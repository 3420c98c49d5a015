import re

import pytest

from rlt.formats import (
    CHAT_FORMATS,
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


@pytest.mark.parametrize("chat", CHAT_FORMATS)
@pytest.mark.parametrize("fmt", sorted(TAG_SETS))
def test_warmup_prompt_is_the_rl_prompt(tok, fmt, chat):
    tags = get_tags(fmt, chat)
    pad = "\n\n" if chat == "stratos" else ""
    rl = teacher_rl_prompt(tok, Q, S, tags)
    assert rl.endswith(
        f"{tags.solution_open}{pad}{S}{pad}{tags.solution_close}\n\n{tags.explanation_open}{pad}"
    )
    sft = teacher_sft_example(tok, Q, S, E, tags)
    # The warm-up's loss starts where the RL prompt ends: the solution is in the prompt (masked).
    assert sft["prompt"] == rl
    assert sft["completion"] == f"{E}{pad}{tags.explanation_close}<|im_end|>\n"


@pytest.mark.parametrize("chat", CHAT_FORMATS)
@pytest.mark.parametrize("fmt", sorted(TAG_SETS))
def test_student_segments_give_exact_spans(tok, fmt, chat):
    tags = get_tags(fmt, chat)
    seg = student_segments(tok, Q, S, tags)
    expl_ids = tok(E, add_special_tokens=False)["input_ids"]
    ids, e_span, s_span = seg.build(expl_ids)
    assert ids[e_span] == expl_ids
    assert tok.decode(ids[s_span]) == tags.padding + S + tags.padding
    # The segments are the student SFT rendering, token for token (a padded explanation in stratos).
    ex = student_sft_example(tok, Q, S, E, tags)
    if chat == "stratos":
        ids, e_span, s_span = seg.build(tok(E + "\n\n", add_special_tokens=False)["input_ids"])
    assert tok.decode(ids) == ex["prompt"] + ex["completion"]
    assert tok.decode(ids[: e_span.start]).endswith(tags.think_open + tags.padding)
    assert tok.decode(ids[e_span.stop :]).startswith(tags.think_close)


def test_student_segments_with_empty_explanation(tok, tags):
    seg = student_segments(tok, Q, S, tags)
    ids, e_span, s_span = seg.build([])
    assert e_span.start == e_span.stop
    assert tok.decode(ids[s_span]).strip() == S


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
        (f"<|begin_of_explanation|>{E}<|end_of_explanation|>", E, True, False),  # repeats the open tag
        (f"<|begin_of_explanation|>{E}", E, False, False),
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


# --------------------------------------------------------------------------- written for mutation survivors


def test_default_student_system_prompts_word_for_word():
    from rlt.formats import STRATOS_SYSTEM_PROMPT, student_system_prompt

    assert student_system_prompt(get_tags("bespoke", "compact")) == (
        "Your role as an assistant is to thoroughly explore a question through a systematic thinking process "
        "before giving the final solution. Put your reasoning between <|begin_of_thought|> and "
        "<|end_of_thought|>, then the final solution between <|begin_of_solution|> and <|end_of_solution|>."
    )
    assert student_system_prompt(get_tags("r1", "compact")).endswith(
        "Put your reasoning between <think> and </think>, then the final solution between <solution> and "
        "</solution>."
    )
    assert student_system_prompt(get_tags("bespoke", "stratos")) == STRATOS_SYSTEM_PROMPT
    r1 = student_system_prompt(get_tags("r1", "stratos"))
    assert r1 == STRATOS_SYSTEM_PROMPT.replace("<|begin_of_thought|>", "<think>").replace(
        "<|end_of_thought|>", "</think>"
    ).replace("<|begin_of_solution|>", "<solution>").replace("<|end_of_solution|>", "</solution>")


@pytest.mark.parametrize("chat", ["compact", "stratos"])
def test_teacher_sft_example_takes_the_given_system_prompt(chat):
    from rlt.formats import teacher_rl_prompt, teacher_system_prompt

    tok, tags = char_tokenizer(), get_tags("bespoke", chat)
    custom = teacher_sft_example(tok, "1+1", "2", "add", tags, system="Teach briefly.")
    assert custom["prompt"] == teacher_rl_prompt(tok, "1+1", "2", tags, "Teach briefly.")
    assert custom["prompt"].startswith("<|im_start|>system\nTeach briefly.<|im_end|>\n")
    assert teacher_system_prompt(tags) not in custom["prompt"]
    bare = teacher_sft_example(tok, "1+1", "2", "add", tags, system="")
    assert bare["prompt"].startswith("<|im_start|>user\n1+1<|im_end|>\n")


_DROPS_FIRST_ASSISTANT_CHAR = (  # a chat template that drops the assistant content's first character
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{{ m['content'][1:] }}{% else %}{{ m['content'] }}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_alters_the_assistant_turn_is_refused_by_name():
    tok = char_tokenizer()
    tok.chat_template = _DROPS_FIRST_ASSISTANT_CHAR
    with pytest.raises(
        ValueError, match=r"^the chat template altered the start of the assistant turn; cannot split it$"
    ):
        teacher_sft_example(tok, "1+1", "2", "add", get_tags("bespoke", "compact"))


def test_extract_solution_edge_cases():
    from rlt.formats import extract_solution

    b = get_tags("bespoke", "compact")
    so, sc, to, tc = b.solution_open, b.solution_close, b.think_open, b.think_close
    assert extract_solution(f"{so} 7 {sc}", b) == "7"  # no thinking, the tag at position 0
    assert extract_solution(f"{to}a{tc}b{tc}{so}1{sc}", b) == "1"  # after the last close of thinking
    assert extract_solution(f"{to}a{tc}{so}1{sc} then {so}2{sc}", b) == "2"  # the last solution
    assert extract_solution(f"{to}a{tc}{so}3{sc}x{sc}", b) == "3"  # up to its own close tag
    assert extract_solution(f"{to}a{so}9{sc}{tc}no answer", b) is None  # only one inside the thinking
    assert extract_solution(f"{to}a{tc}{so}4", b) is None
    assert extract_solution(f"{to}a{tc}{so}5{sc}{tc}no answer", b) is None  # thinking closed again after it
    assert extract_solution(f"{to}a{tc}{so}{sc}", b) == ""  # an empty answer is an answer


def test_as_text_reads_what_trl_passes():
    from rlt.formats import as_text

    assert as_text("plain") == "plain"
    assert as_text([{"role": "system", "content": "s"}, {"role": "assistant", "content": "last"}]) == "last"
    assert as_text([{"role": "assistant"}]) == ""
    assert as_text([]) == "[]" and as_text(["a", "b"]) == "['a', 'b']" and as_text(7) == "7"


@pytest.mark.parametrize("chat", ["compact", "stratos"])
def test_student_prompt_is_the_distillation_prompt(chat):
    from rlt.formats import student_prompt, student_system_prompt

    tok, tags = char_tokenizer(), get_tags("bespoke", chat)
    for system in (None, "Solve.", ""):
        want = student_sft_example(tok, "1+1", "2", "add", tags, system)["prompt"]
        assert student_prompt(tok, "1+1", tags, system) == want
    assert student_prompt(tok, "1+1", tags) == (
        f"<|im_start|>system\n{student_system_prompt(tags)}<|im_end|>\n<|im_start|>user\n1+1<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_span_inside_skips_empty_tokens_and_may_be_empty():
    from rlt.formats import _span_inside

    offsets = [(0, 0), (0, 2), (2, 4), (4, 4), (4, 6)]  # zero-width tokens carry no characters
    assert _span_inside(offsets, 0, 4) == slice(1, 3)
    assert _span_inside(offsets, 6, 9) == slice(0, 0)  # nothing inside: an empty slice at 0
    assert _span_inside([], 0, 3) == slice(0, 0)


def test_split_keeps_special_tokens_before_the_close_tag():
    """A special token inside the explanation is part of it (decoded, not skipped)."""
    from rlt.formats import split_completion_ids

    tok, tags = char_tokenizer(), get_tags("bespoke", "compact")
    ids = [*tok("ab", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    ids += tok("cd" + tags.explanation_close, add_special_tokens=False)["input_ids"]
    split = split_completion_ids(ids, tok, tags)
    assert split.closed and split.ids == ids[:5] and split.sampled == 5


@pytest.mark.parametrize("chat", ["compact", "stratos"])
def test_student_segments_take_the_given_system_prompt(chat):
    from rlt.formats import student_segments

    tok, tags = char_tokenizer(), get_tags("bespoke", chat)
    seg = student_segments(tok, "1+1", "2", tags, system="Solve.")
    assert seg.prefix == student_sft_example(tok, "1+1", "2", "", tags, "Solve.")[
        "prompt"
    ] + tags.think_open + (tags.padding)
    assert seg.prefix.startswith("<|im_start|>system\nSolve.<|im_end|>\n")


def test_a_template_that_alters_the_students_turn_is_refused_by_name():
    from rlt.formats import student_segments

    tok = char_tokenizer()
    tok.chat_template = _DROPS_FIRST_ASSISTANT_CHAR
    with pytest.raises(
        ValueError, match=r"^the chat template altered the student's assistant turn; cannot build segments$"
    ):
        student_segments(tok, "1+1", "2", get_tags("bespoke", "compact"))


def test_compact_teacher_system_prompt_names_its_tags():
    from rlt.formats import teacher_system_prompt

    assert teacher_system_prompt(get_tags("bespoke", "compact")).endswith(
        "Put the explanation between <|begin_of_explanation|> and <|end_of_explanation|>."
    )
    assert teacher_system_prompt(get_tags("r1", "compact")).endswith(
        "Put the explanation between <explanation> and </explanation>."
    )


def test_stratos_field_pads_only_a_side_that_lacks_it():
    tags = get_tags("bespoke", "stratos")
    assert tags.field("x") == "\n\nx\n\n"
    assert tags.field("x\n\n") == "\n\nx\n\n"  # a one-character text with its end padding
    assert tags.field("ab\n\n") == "\n\nab\n\n"
    assert tags.field("\n\nab") == "\n\nab\n\n"
    assert tags.field("\n\nab\n\n") == "\n\nab\n\n"
    assert tags.field("\n\n") == "\n\n" and get_tags("bespoke", "compact").field("x") == "x"


def test_a_half_tagged_solution_is_left_as_written():
    from rlt.formats import strip_solution_tags

    tags = get_tags("bespoke", "compact")
    assert strip_solution_tags(f"{tags.solution_open}42 is the answer", tags) == (
        f"{tags.solution_open}42 is the answer"
    )
    assert strip_solution_tags(f" {tags.solution_open} 42 {tags.solution_close} ", tags) == "42"


def test_a_tokenizer_without_chat_template_is_named():
    from rlt.formats import render_prompt_completion

    tok = char_tokenizer()
    tok.chat_template, tok.name_or_path = None, "my/tokenizer"
    want = "tokenizer 'my/tokenizer' has no chat template; RLT formats need one (set tokenizer.chat_template)"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        render_prompt_completion(tok, [{"role": "user", "content": "q"}], "a")


def test_compact_solution_field_is_stripped():
    from rlt.formats import solution_field

    assert solution_field(" 7 ", get_tags("bespoke", "compact")) == "7"
    assert solution_field(" 7 ", get_tags("bespoke", "stratos")) == "\n\n 7 \n\n"


def test_a_template_whose_turn_does_not_extend_the_generation_prompt_is_refused():
    from rlt.formats import render_prompt_completion

    tok = char_tokenizer()
    tok.chat_template = (  # the generation prompt says "assistant", the rendered turn "bot"
        "{% for m in messages %}<|im_start|>{{ 'bot' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    want = (
        "the chat template renders the assistant turn in a way that does not extend the generation prompt; "
        "RLT needs templates where it does (ChatML/Qwen templates do)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        render_prompt_completion(tok, [{"role": "user", "content": "q"}], "a")


def test_unknown_tag_and_chat_formats_list_the_known_ones():
    with pytest.raises(
        ValueError, match=r"^unknown chat format 'fancy'; expected one of \['stratos', 'compact'\]$"
    ):
        get_tags("bespoke", "fancy")
    with pytest.raises(ValueError, match=r"^unknown tag format 'nope'; expected one of \['bespoke', 'r1'\]$"):
        get_tags("nope")


def test_get_tags_of_a_tag_set_keeps_or_restyles_it():
    compact = get_tags("r1", "compact")
    assert get_tags(compact) is compact and get_tags(compact, "compact") is compact
    stratos = get_tags(compact, "stratos")
    assert stratos.chat == "stratos" and stratos.think_open == "<think>" and stratos == get_tags("r1")
