"""Formats on the real Qwen2.5 tokenizer: the close-tag split and the official renderings.

The golden strings below are written out by hand from the released code
(SakanaAI/RLT ``custom_data/teacher_data.py`` ``get_process_line_fn`` and
``trainers/teacher_rewards.py`` ``get_student_chats_and_relevant_num_tokens``) applied to a
Bespoke-Stratos-17k-shaped row with Qwen2.5-Instruct's chat template, not produced by
``rlt.formats``: a change in rendering fails here.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlt.data import DataArguments, load_rows, row_system, student_sft_view, teacher_rl_view, teacher_sft_view
from rlt.formats import (
    STRATOS_SYSTEM_PROMPT,
    STRATOS_TEACHER_PROMPT,
    TAG_SETS,
    get_tags,
    split_completion_ids,
    student_segments,
)

QUESTION = "What is $2+5$? Give the answer modulo 10."
THOUGHT = "Okay, let's see. 2 plus 5 is 7.\n\nSo the answer is 7."
SOLUTION = "The answer is $\\boxed{7}$."
REPLY = (
    f"<|begin_of_thought|>\n\n{THOUGHT}\n\n<|end_of_thought|>\n\n"
    f"<|begin_of_solution|>\n\n{SOLUTION}\n\n<|end_of_solution|>"
)
ROW = {
    "system": STRATOS_SYSTEM_PROMPT,
    "conversations": [{"from": "user", "value": QUESTION}, {"from": "assistant", "value": REPLY}],
}

TEACHER_CHAT_HEAD = (
    f"<|im_start|>system\n{STRATOS_TEACHER_PROMPT}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
    f"<|im_start|>assistant\n<|begin_of_solution|>\n\n{SOLUTION}\n\n<|end_of_solution|>\n\n"
)
GOLDEN_RL_PROMPT = TEACHER_CHAT_HEAD + "<|begin_of_explanation|>\n\n"
GOLDEN_TEACHER_REST = f"{THOUGHT}\n\n<|end_of_explanation|><|im_end|>\n"
GOLDEN_STUDENT = (
    f"<|im_start|>system\n{STRATOS_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
    f"<|im_start|>assistant\n{REPLY}<|im_end|>\n"
)


def test_official_prompts_start_as_released():
    assert STRATOS_TEACHER_PROMPT.startswith(
        "Your role as an assistant involves providing precise and accurate"
    )
    assert "{explanation with steps separated with '\\n\\n'}" in STRATOS_TEACHER_PROMPT
    assert STRATOS_SYSTEM_PROMPT.endswith(
        "Now, try to solve the following question through the above guidelines:"
    )


def test_qwen_tokenizer_ids(qwen_tok):
    assert qwen_tok("Hello world")["input_ids"] == [9707, 1879]
    ids = qwen_tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"])
    assert ids == [151643, 151644, 151645, 151664]
    assert len(qwen_tok) == 151665
    assert qwen_tok.eos_token == "<|im_end|>" and qwen_tok.pad_token == "<|endoftext|>"
    # The tags are not tokens of Qwen2.5: several pieces, the first merging with punctuation.
    pieces = qwen_tok.convert_ids_to_tokens(qwen_tok("7.<|end_of_explanation|>")["input_ids"])
    assert pieces[:2] == ["7", ".<"]


@pytest.fixture(scope="module")
def stratos_rows(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("stratos") / "stratos.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return load_rows(DataArguments(dataset_name=str(path)), need_trace=True)


def test_sharegpt_fields_keep_the_padding(stratos_rows):
    row = stratos_rows[0]
    assert row["reasoning_trace"] == f"\n\n{THOUGHT}\n\n"
    assert row["solution"] == f"\n\n{SOLUTION}\n\n"
    assert row_system(row, None) == STRATOS_SYSTEM_PROMPT


def test_golden_teacher_rl_prompt(qwen_tok, stratos_rows):
    view = teacher_rl_view(stratos_rows, qwen_tok, get_tags("bespoke"))
    assert view[0]["prompt"] == GOLDEN_RL_PROMPT


def test_golden_teacher_sft_example_and_label_mask(qwen_tok, stratos_rows):
    view = teacher_sft_view(stratos_rows, qwen_tok, get_tags("bespoke"))
    assert view[0]["prompt"] == GOLDEN_RL_PROMPT
    assert view[0]["completion"] == GOLDEN_TEACHER_REST
    # TRL's own tokenisation of the prompt/completion pair: the loss covers exactly the
    # explanation after its padding, the close tag and the end of the turn (the official
    # `get_teacher_data_mask_delimiter`: everything up to `<|begin_of_explanation|>\n\n` masked).
    p_ids = qwen_tok(view[0]["prompt"], add_special_tokens=False)["input_ids"]
    pc_ids = qwen_tok(view[0]["prompt"] + view[0]["completion"], add_special_tokens=False)["input_ids"]
    assert pc_ids[: len(p_ids)] == p_ids  # the split is a token boundary: TRL's mask is exact
    assert qwen_tok.decode(pc_ids[len(p_ids) :]) == GOLDEN_TEACHER_REST


def test_golden_student_sequence(qwen_tok, stratos_rows):
    tags = get_tags("bespoke")
    row = stratos_rows[0]
    view = student_sft_view(stratos_rows, qwen_tok, tags)
    assert view[0]["prompt"] + view[0]["completion"] == GOLDEN_STUDENT
    # The reward's student sequence for a teacher that wrote the data's thought.
    completion = qwen_tok(GOLDEN_TEACHER_REST, add_special_tokens=False)["input_ids"]
    split = split_completion_ids(completion, qwen_tok, tags)
    assert split.closed and qwen_tok.decode(split.ids) == f"{THOUGHT}\n\n"
    seg = student_segments(qwen_tok, row["question"], row["solution"], tags, row_system(row, None))
    ids, e_span, a_span = seg.build(split.ids)
    assert qwen_tok.decode(ids) == GOLDEN_STUDENT
    assert ids[e_span] == split.ids
    # The solution span: the padded field less a token merged with the tag (">\n\n").
    assert f"\n\n{SOLUTION}\n\n".endswith(qwen_tok.decode(ids[a_span]))
    assert SOLUTION in qwen_tok.decode(ids[a_span])
    canon, ce, ca = seg.build_canonical(qwen_tok, qwen_tok.decode(split.ids))
    assert canon == qwen_tok(GOLDEN_STUDENT, add_special_tokens=False)["input_ids"]
    assert (canon[ce], canon[ca]) == (ids[e_span], ids[a_span])


# Endings of an explanation: whatever stands before the close tag.
ENDINGS = st.one_of(
    st.sampled_from([".", "!", ")", ",", ":", " ", "\n", "\n\n", "$", "}", "\\]", "。", "🙂", "é", "7", "x"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=40), ending=ENDINGS, fmt=st.sampled_from(sorted(TAG_SETS)), extra=st.booleans())
def test_close_tag_split_is_exact(qwen_tok, body, ending, fmt, extra):
    tags = get_tags(fmt)
    # Qwen2.5 normalises to NFC: the text a model can write is NFC text.
    explanation = unicodedata.normalize("NFC", body + ending).replace(tags.explanation_close, "")
    text = explanation + tags.explanation_close + ("<|im_end|>" if extra else " more text")
    ids = qwen_tok(text, add_special_tokens=False)["input_ids"]
    split = split_completion_ids(ids, qwen_tok, tags)
    assert split.closed
    assert qwen_tok.decode(split.ids) == explanation
    assert split.ids[: split.sampled] == ids[: split.sampled]  # sampled ids are kept as sampled
    # Only the token straddling the tag's start is re-tokenised (a split character: its bytes).
    assert len(split.ids) - split.sampled <= 3


def test_unclosed_completion_keeps_every_sampled_id(qwen_tok):
    tags = get_tags("bespoke")
    ids = qwen_tok("so 7.<|end_of_expl", add_special_tokens=False)["input_ids"] + [qwen_tok.eos_token_id]
    split = split_completion_ids(ids, qwen_tok, tags)
    assert not split.closed and split.ids == ids[:-1] and split.sampled == len(ids) - 1
