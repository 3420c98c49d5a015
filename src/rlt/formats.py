"""Text formats of RLT (spec §2): tag sets, chat styles, the teacher chat, the student chat.

The teacher sees a question *and* its solution and writes an explanation between
explanation tags. The student sees only the question and thinks between its
thinking tags, then writes the solution. The student sequence used by the reward is
built from token-id segments ``prefix | explanation ids | suffix`` so that the
explanation and solution positions are known by construction, never searched for.

Two chat styles (``chat_format``):

- ``stratos`` (the default): exactly what the paper's models were trained on
  (``shared/official-formats.md``, SakanaAI/RLT ``custom_data/``): the official teacher
  prompt, the student's STRATOS prompt (or the data set's ``system`` column), and
  ``"\n\n"`` padding inside every tag, kept exactly as in the data.
- ``compact``: short prompts and no padding, for tiny character-level models and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from transformers import PreTrainedTokenizerBase

CHAT_FORMATS = ("stratos", "compact")
PADDING = "\n\n"  # official `delimiters_padding`: inside every tag in the stratos style


@dataclass(frozen=True)
class TagSet:
    """The six tags of one format, and the chat style (``chat``) the texts around them follow."""

    name: str
    solution_open: str
    solution_close: str
    explanation_open: str
    explanation_close: str
    think_open: str
    think_close: str
    chat: str = "stratos"

    @property
    def padding(self) -> str:
        """What stands inside every tag: ``"\\n\\n"`` in the stratos style, nothing in compact."""
        return PADDING if self.chat == "stratos" else ""

    def field(self, text: str) -> str:
        """A tagged field (explanation, thought) as it stands between its tags.

        stratos: the text exactly as in the data, with the padding added only on a side
        that lacks it (Bespoke-Stratos-17k's fields carry it; plain columns get it).
        compact, or a blank text: the text as it is.
        """
        if self.chat != "stratos" or not text.strip():
            return text  # a blank field stays blank: padding alone is no content to score
        head = "" if text.startswith(PADDING) else PADDING
        tail = "" if text.endswith(PADDING) else PADDING  # a non-blank text cannot share its pads
        return f"{head}{text}{tail}"

    @property
    def all_tags(self) -> tuple[str, ...]:
        return (
            self.solution_open,
            self.solution_close,
            self.explanation_open,
            self.explanation_close,
            self.think_open,
            self.think_close,
        )


TAG_SETS: dict[str, TagSet] = {
    "bespoke": TagSet(
        name="bespoke",
        solution_open="<|begin_of_solution|>",
        solution_close="<|end_of_solution|>",
        explanation_open="<|begin_of_explanation|>",
        explanation_close="<|end_of_explanation|>",
        think_open="<|begin_of_thought|>",
        think_close="<|end_of_thought|>",
    ),
    "r1": TagSet(
        name="r1",
        solution_open="<solution>",
        solution_close="</solution>",
        explanation_open="<explanation>",
        explanation_close="</explanation>",
        think_open="<think>",
        think_close="</think>",
    ),
}


def get_tags(tag_format: str | TagSet, chat_format: str | None = None) -> TagSet:
    """The tag set named ``tag_format`` ("bespoke" or "r1") in the chat style ``chat_format``.

    ``chat_format=None`` keeps a given TagSet's style, and is "stratos" for a name.
    """
    if chat_format is not None and chat_format not in CHAT_FORMATS:
        raise ValueError(f"unknown chat format {chat_format!r}; expected one of {list(CHAT_FORMATS)}")
    if isinstance(tag_format, TagSet):
        tags = tag_format
    else:
        try:
            tags = TAG_SETS[tag_format]
        except KeyError:
            raise ValueError(
                f"unknown tag format {tag_format!r}; expected one of {sorted(TAG_SETS)}"
            ) from None
    return tags if chat_format is None or chat_format == tags.chat else replace(tags, chat=chat_format)


# The official prompts (SakanaAI/RLT: STRATOS_STYLE_TEACHER_PROMPT in custom_data/teacher_data.py,
# STRATOS_SYSTEM_PROMPT in custom_data/reasoning_datasets_info.py, which is also the `system`
# column of Bespoke-Stratos-17k), character for character, typos included: the models were
# trained on these exact strings.
STRATOS_TEACHER_PROMPT = (
    "Your role as an assistant involves providing precise and accurate solutions before providing detailed explanations with your full work showing your systematic thinking process leading to each solution. "
    "Your explanations should show how you engaged in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. "
    "Please structure your response into two main sections: Solution and Explanation. "
    "In the Solution section, present your well-thought solution that accurately answers the question. The solution should remain a logical, accurate, concise expression style and detail necessary step needed to reach the conclusion, formatted as follows: <|begin_of_solution|> {final formatted, precise, and clear solution} <|end_of_solution|>. "
    "In the Explanation section, comprehensively detail your reasoning process using the specified format: <|begin_of_explanation|> {explanation with steps separated with '\\n\\n'} <|end_of_explanation|> Each step should show detailed considerations leading to your solutions such as analisying questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. "
)

STRATOS_SYSTEM_PROMPT = (
    "Your role as an assistant involves thoroughly exploring questions through a systematic long thinking process before providing the final precise and accurate solutions. "
    "This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. "
    "Please structure your response into two main sections: Thought and Solution. "
    "In the Thought section, detail your reasoning process using the specified format: <|begin_of_thought|> {thought with steps separated with '\\n\\n'} <|end_of_thought|> Each step should include detailed considerations such as analisying questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. "
    "In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The solution should remain a logical, accurate, concise expression style and detail necessary step needed to reach the conclusion, formatted as follows: <|begin_of_solution|> {final formatted, precise, and clear solution} <|end_of_solution|> Now, try to solve the following question through the above guidelines:"
)

# The compact style's prompts (tiny models, the demo).
TEACHER_SYSTEM_PROMPT = (
    "You are a teacher. You are given a problem together with its correct solution. "
    "Write the explanation a student needs to reach that solution on their own: "
    "reason step by step from the problem to the solution, and do not simply restate the answer. "
    "Put the explanation between {explanation_open} and {explanation_close}."
)

STUDENT_SYSTEM_PROMPT = (
    "Your role as an assistant is to thoroughly explore a question through a systematic thinking process "
    "before giving the final solution. Put your reasoning between {think_open} and {think_close}, "
    "then the final solution between {solution_open} and {solution_close}."
)


def _in_tags(prompt: str, tags: TagSet) -> str:
    """An official (bespoke-tag) prompt with the tags of ``tags`` (identity for bespoke)."""
    for old, new in zip(TAG_SETS["bespoke"].all_tags, tags.all_tags):
        prompt = prompt.replace(old, new)
    return prompt


def teacher_system_prompt(tags: TagSet) -> str:
    """The teacher's default system prompt in the style of ``tags``."""
    if tags.chat == "stratos":
        return _in_tags(STRATOS_TEACHER_PROMPT, tags)
    return TEACHER_SYSTEM_PROMPT.format(
        explanation_open=tags.explanation_open, explanation_close=tags.explanation_close
    )


def student_system_prompt(tags: TagSet) -> str:
    """The student's default system prompt (a data set's ``system`` column overrides it)."""
    if tags.chat == "stratos":
        return _in_tags(STRATOS_SYSTEM_PROMPT, tags)
    return STUDENT_SYSTEM_PROMPT.format(
        think_open=tags.think_open,
        think_close=tags.think_close,
        solution_open=tags.solution_open,
        solution_close=tags.solution_close,
    )


# --------------------------------------------------------------------------- solutions


def strip_solution_tags(solution: str, tags: TagSet) -> str:
    """The solution text without its tags (and without surrounding whitespace): the answer itself."""
    return _untagged(solution, tags).strip()


def _untagged(solution: str, tags: TagSet) -> str:
    text = solution.strip()
    if text.startswith(tags.solution_open) and text.endswith(tags.solution_close):
        return text[len(tags.solution_open) : len(text) - len(tags.solution_close)]
    return solution


def solution_field(solution: str, tags: TagSet) -> str:
    """What stands between the solution tags: padded as in the data (stratos) or stripped (compact)."""
    return (
        tags.field(_untagged(solution, tags))
        if tags.chat == "stratos"
        else strip_solution_tags(solution, tags)
    )


def tag_solution(solution: str, tags: TagSet) -> str:
    """``SOL_OPEN s SOL_CLOSE``; a solution that already carries its tags is not double-tagged."""
    return f"{tags.solution_open}{solution_field(solution, tags)}{tags.solution_close}"


# --------------------------------------------------------------------------- chat rendering


def render_prompt_completion(
    tokenizer: PreTrainedTokenizerBase, prompt_messages: list[dict[str, str]], assistant: str
) -> tuple[str, str]:
    """Render ``prompt_messages`` + an assistant turn with the tokenizer's chat template.

    Returns ``(prompt, completion)`` where ``prompt`` ends with the template's
    generation prompt and ``completion`` is the assistant content plus whatever the
    template closes the turn with (e.g. ``<|im_end|>``). ``prompt + completion`` is
    exactly the rendering of the full conversation.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
            "RLT formats need one (set tokenizer.chat_template)"
        )
    prompt = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*prompt_messages, {"role": "assistant", "content": assistant}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template renders the assistant turn in a way that does not extend the generation "
            "prompt; RLT needs templates where it does (ChatML/Qwen templates do)"
        )
    return prompt, full[len(prompt) :]


def _with_system(system: str, question: str) -> list[dict[str, str]]:
    user = [{"role": "user", "content": question}]
    return [{"role": "system", "content": system}, *user] if system else user


def teacher_messages(question: str, tags: TagSet, system: str | None = None) -> list[dict[str, str]]:
    """System + user turns of the teacher chat; ``system=None`` uses the default, ``""`` omits it."""
    return _with_system(teacher_system_prompt(tags) if system is None else system, question)


def teacher_assistant_prefix(solution: str, tags: TagSet) -> str:
    """``SOL_OPEN s SOL_CLOSE \\n\\n EXPL_OPEN`` + padding: where the teacher starts explaining.

    This is the official ``completion_div`` end of the RL prompt; the warm-up's loss starts after it.
    """
    return f"{tag_solution(solution, tags)}\n\n{tags.explanation_open}{tags.padding}"


def _render_split(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], head: str, rest: str
) -> dict[str, str]:
    """The chat with assistant turn ``head + rest``, split after ``head``: ``{prompt, completion}``."""
    prompt, completion = render_prompt_completion(tokenizer, messages, head + rest)
    if not completion.startswith(head):
        raise ValueError("the chat template altered the start of the assistant turn; cannot split it")
    return {"prompt": prompt + head, "completion": completion[len(head) :]}


def teacher_rl_prompt(
    tokenizer: PreTrainedTokenizerBase, question: str, solution: str, tags: TagSet, system: str | None = None
) -> str:
    """The RL prompt: the teacher chat up to and including ``EXPL_OPEN`` and its padding."""
    prompt, _ = render_prompt_completion(tokenizer, teacher_messages(question, tags, system), "")
    return prompt + teacher_assistant_prefix(solution, tags)


def teacher_sft_example(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    solution: str,
    explanation: str,
    tags: TagSet,
    system: str | None = None,
) -> dict[str, str]:
    """Prompt/completion pair for the SFT warm-up, split where the official warm-up starts its loss.

    ``prompt`` is the RL prompt (everything up to ``EXPL_OPEN`` and its padding, the solution
    included); ``completion`` is the rest of the explanation, ``EXPL_CLOSE`` and the end of
    the turn. ``prompt + completion`` is the whole teacher chat.
    """
    head = teacher_assistant_prefix(solution, tags)
    rest = f"{tags.field(explanation)[len(tags.padding) :]}{tags.explanation_close}"
    return _render_split(tokenizer, teacher_messages(question, tags, system), head, rest)


def student_messages(question: str, tags: TagSet, system: str | None = None) -> list[dict[str, str]]:
    """System + user turns of the student chat; ``system=None`` uses the default, ``""`` omits it."""
    return _with_system(student_system_prompt(tags) if system is None else system, question)


def student_assistant(explanation: str, solution: str, tags: TagSet) -> str:
    """``THINK_OPEN e THINK_CLOSE \\n\\n SOL_OPEN s SOL_CLOSE`` with the fields padded as the style says."""
    return f"{tags.think_open}{tags.field(explanation)}{tags.think_close}\n\n{tag_solution(solution, tags)}"


def student_prompt(
    tokenizer: PreTrainedTokenizerBase, question: str, tags: TagSet, system: str | None = None
) -> str:
    """What the student sees when it answers on its own (evaluation, student RL)."""
    prompt, _ = render_prompt_completion(tokenizer, student_messages(question, tags, system), "")
    return prompt


def student_sft_example(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    solution: str,
    explanation: str,
    tags: TagSet,
    system: str | None = None,
) -> dict[str, str]:
    """Prompt/completion pair for distillation (the student format of spec §2)."""
    prompt, completion = render_prompt_completion(
        tokenizer, student_messages(question, tags, system), student_assistant(explanation, solution, tags)
    )
    return {"prompt": prompt, "completion": completion}


# --------------------------------------------------------------------------- student segments


@dataclass(frozen=True)
class StudentSegments:
    """The student sequence around the explanation, as text and as token ids.

    ``prefix_ids`` is the template up to ``THINK_OPEN`` and its padding; ``suffix_ids`` is
    ``THINK_CLOSE``, the tagged solution and the end of the turn, tokenised as one text.
    The solution field (padding included, as the official reward scores it) covers the
    suffix tokens ``suffix_ids[solution_start:solution_end]``: those lying wholly inside it
    (a token merged with a tag character is left out, as the official sub-list search does).
    ``prefix``/``suffix`` and the solution's character range in ``suffix`` serve the
    ``canonical`` tokenisation, which re-tokenises the whole text.
    """

    prefix_ids: list[int]
    suffix_ids: list[int]
    solution_start: int
    solution_end: int
    prefix: str = ""
    suffix: str = ""
    solution_chars: tuple[int, int] = (0, 0)

    def build(self, explanation_ids: list[int]) -> tuple[list[int], slice, slice]:
        """``prefix | explanation | suffix`` and the explanation and solution slices in it."""
        ids = [*self.prefix_ids, *explanation_ids, *self.suffix_ids]
        e0 = len(self.prefix_ids)
        e1 = e0 + len(explanation_ids)
        return ids, slice(e0, e1), slice(e1 + self.solution_start, e1 + self.solution_end)

    def build_canonical(
        self, tokenizer: PreTrainedTokenizerBase, explanation: str
    ) -> tuple[list[int], slice, slice]:
        """The whole student text tokenised at once, and the tokens wholly inside each span.

        What the official reward scores: the canonical tokenisation of the rendered chat.
        A token that merges an explanation or solution character with a tag or padding
        character belongs to neither span.
        """
        text = self.prefix + explanation + self.suffix
        ids, offsets = _encode_with_offsets(tokenizer, text)
        e0, e1 = len(self.prefix), len(self.prefix) + len(explanation)
        s0, s1 = (e1 + self.solution_chars[0], e1 + self.solution_chars[1])
        return ids, _span_inside(offsets, e0, e1), _span_inside(offsets, s0, s1)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _encode_with_offsets(
    tokenizer: PreTrainedTokenizerBase, text: str
) -> tuple[list[int], list[tuple[int, int]]]:
    if not text:
        return [], []
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _span_inside(offsets: list[tuple[int, int]], start: int, end: int) -> slice:
    """The (contiguous) tokens whose characters lie wholly in ``[start, end)``; empty if none."""
    inside = [i for i, (a, b) in enumerate(offsets) if a >= start and b <= end and b > a]
    return slice(inside[0], inside[-1] + 1) if inside else slice(0, 0)


def student_segments(
    tokenizer: PreTrainedTokenizerBase, question: str, solution: str, tags: TagSet, system: str | None = None
) -> StudentSegments:
    """Segments of the student chat for ``question``/``solution`` (spec §3).

    The student's thought is the opening padding followed by the teacher's explanation
    exactly as written (the official reward's ``thought_content``).
    """
    # A marker that cannot occur in the template splits the rendering at the explanation.
    marker = "\x00RLT_EXPLANATION\x00"
    head = f"{tags.think_open}{tags.padding}"
    sol_head = f"{tags.think_close}\n\n{tags.solution_open}"
    answer = solution_field(solution, tags)
    prompt, completion = render_prompt_completion(
        tokenizer,
        student_messages(question, tags, system),
        f"{head}{marker}{sol_head}{answer}{tags.solution_close}",
    )
    before, tail = completion.split(marker)
    if before != head or not tail.startswith(sol_head + answer + tags.solution_close):
        raise ValueError("the chat template altered the student's assistant turn; cannot build segments")
    suffix_ids, offsets = _encode_with_offsets(tokenizer, tail)
    chars = (len(sol_head), len(sol_head) + len(answer))
    span = _span_inside(offsets, *chars)
    return StudentSegments(
        prefix_ids=_encode(tokenizer, prompt + head),
        suffix_ids=suffix_ids,
        solution_start=span.start,
        solution_end=span.stop,
        prefix=prompt + head,
        suffix=tail,
        solution_chars=chars,
    )


# --------------------------------------------------------------------------- teacher completions


@dataclass(frozen=True)
class Explanation:
    """An explanation extracted from a teacher completion."""

    text: str
    closed: bool  # the completion contains EXPL_CLOSE

    @property
    def empty(self) -> bool:
        return not self.text.strip()

    @property
    def well_formed(self) -> bool:
        return self.closed and not self.empty


def extract_explanation(completion: str, tags: TagSet) -> Explanation:
    """The explanation in a teacher completion (the text after ``EXPL_OPEN``).

    Closed: the text before the first ``EXPL_CLOSE``. Unclosed (e.g. cut at the
    maximum length): the whole completion, which is still scored but penalised.
    """
    text = completion
    if text.startswith(tags.explanation_open):  # a completion that repeats the prompt's open tag
        text = text[len(tags.explanation_open) :]
    head, sep, _ = text.partition(tags.explanation_close)
    return Explanation(text=head, closed=bool(sep))


@dataclass(frozen=True)
class ExplanationIds:
    """The explanation's token ids cut from a sampled completion at its close tag.

    ``ids[:sampled]`` are the teacher's sampled ids, untouched. When the tag's first
    character merged into a sampled token with text of the explanation (``.<`` under
    BPE), ``ids[sampled:]`` is the tokenisation of that token's text before the tag, so
    ``decode(ids)`` is exactly the text before the tag (spec §3, "the close-tag split").
    """

    ids: list[int]
    closed: bool
    sampled: int


def split_completion_ids(
    completion_ids: list[int], tokenizer: PreTrainedTokenizerBase, tags: TagSet
) -> ExplanationIds:
    """Split sampled completion ids at the first ``EXPL_CLOSE``, exactly, on any tokenizer.

    Unclosed (cut at the length limit): all ids, less trailing padding and end-of-sequence
    tokens. Closed: the ids wholly before the tag, plus the re-tokenised pre-tag text of a
    token that straddles the tag's start.
    """
    ids = [int(t) for t in completion_ids]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    at = text.find(tags.explanation_close)
    if at < 0:
        drop = {t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None}
        while ids and ids[-1] in drop:
            ids.pop()
        return ExplanationIds(ids, closed=False, sampled=len(ids))
    before = text[:at]
    # The token that completes the tag: decoded prefixes only grow, so bisect (log n decodes).
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if tags.explanation_close in tokenizer.decode(ids[:mid], skip_special_tokens=False):
            hi = mid
        else:
            lo = mid + 1
    # The last token boundary at or before the tag, a few tokens back: the largest j with
    # decode(ids[:j]) a prefix of `before`. A cut inside a multi-byte character decodes to
    # U+FFFD, which is no prefix, so such a j is passed over.
    j, known = 0, ""
    for k in range(lo, -1, -1):
        piece = tokenizer.decode(ids[:k], skip_special_tokens=False) if k else ""
        if len(piece) <= at and before.startswith(piece):
            j, known = k, piece
            break
    tail = before[len(known) :]
    return ExplanationIds([*ids[:j], *_encode(tokenizer, tail)], closed=True, sampled=j)


def explanation_token_ids(
    completion_ids: list[int], tokenizer: PreTrainedTokenizerBase, tags: TagSet
) -> tuple[list[int], bool]:
    """``(explanation ids, closed)`` of :func:`split_completion_ids`."""
    split = split_completion_ids(completion_ids, tokenizer, tags)
    return split.ids, split.closed


def extract_solution(completion: str, tags: TagSet) -> str | None:
    """The answer between the solution tags of a student completion, or None.

    Only a solution *after* the thinking is read when the thinking is closed (a solution
    tag quoted inside the thinking does not count). An unclosed solution is None.
    """
    text = completion
    if tags.think_close in text:
        text = text.rsplit(tags.think_close, 1)[1]
    start = text.rfind(tags.solution_open)
    if start < 0:
        return None
    rest = text[start + len(tags.solution_open) :]
    end = rest.find(tags.solution_close)
    if end < 0:
        return None
    return rest[:end].strip()


def as_text(value: Any) -> str:
    """A completion as TRL passes it: a string, or a list of chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    return str(value)
