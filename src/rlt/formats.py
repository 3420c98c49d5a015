"""Text formats of RLT (spec §2): tag sets, the teacher chat, the student chat.

The teacher sees a question *and* its solution and writes an explanation between
explanation tags. The student sees only the question and thinks between its
thinking tags, then writes the solution. The student sequence used by the reward is
built from token-id segments ``prefix | explanation ids | suffix`` so that the
explanation and solution positions are known by construction, never searched for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TagSet:
    """The six tags of one format."""

    name: str
    solution_open: str
    solution_close: str
    explanation_open: str
    explanation_close: str
    think_open: str
    think_close: str

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


def get_tags(tag_format: str | TagSet) -> TagSet:
    """Return the tag set named ``tag_format`` ("bespoke" or "r1")."""
    if isinstance(tag_format, TagSet):
        return tag_format
    try:
        return TAG_SETS[tag_format]
    except KeyError:
        raise ValueError(f"unknown tag format {tag_format!r}; expected one of {sorted(TAG_SETS)}") from None


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


def teacher_system_prompt(tags: TagSet) -> str:
    return TEACHER_SYSTEM_PROMPT.format(
        explanation_open=tags.explanation_open, explanation_close=tags.explanation_close
    )


def student_system_prompt(tags: TagSet) -> str:
    return STUDENT_SYSTEM_PROMPT.format(
        think_open=tags.think_open,
        think_close=tags.think_close,
        solution_open=tags.solution_open,
        solution_close=tags.solution_close,
    )


# --------------------------------------------------------------------------- solutions


def strip_solution_tags(solution: str, tags: TagSet) -> str:
    """The solution text without its tags (and without surrounding whitespace)."""
    text = solution.strip()
    if text.startswith(tags.solution_open) and text.endswith(tags.solution_close):
        text = text[len(tags.solution_open) : len(text) - len(tags.solution_close)]
    return text.strip()


def tag_solution(solution: str, tags: TagSet) -> str:
    """``SOL_OPEN s SOL_CLOSE``; a solution that already carries its tags is not double-tagged."""
    return f"{tags.solution_open}{strip_solution_tags(solution, tags)}{tags.solution_close}"


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
    """``SOL_OPEN s SOL_CLOSE \\n\\n EXPL_OPEN``: where the teacher starts explaining."""
    return f"{tag_solution(solution, tags)}\n\n{tags.explanation_open}"


def teacher_rl_prompt(
    tokenizer: PreTrainedTokenizerBase, question: str, solution: str, tags: TagSet, system: str | None = None
) -> str:
    """The RL prompt: the teacher chat up to and including ``EXPL_OPEN``."""
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
    """Prompt/completion pair for the SFT warm-up; the completion is the whole assistant turn."""
    assistant = f"{teacher_assistant_prefix(solution, tags)}{explanation}{tags.explanation_close}"
    prompt, completion = render_prompt_completion(
        tokenizer, teacher_messages(question, tags, system), assistant
    )
    return {"prompt": prompt, "completion": completion}


def student_messages(question: str, tags: TagSet, system: str | None = None) -> list[dict[str, str]]:
    """System + user turns of the student chat; ``system=None`` uses the default, ``""`` omits it."""
    return _with_system(student_system_prompt(tags) if system is None else system, question)


def student_assistant(explanation: str, solution: str, tags: TagSet) -> str:
    """``THINK_OPEN e THINK_CLOSE \\n\\n SOL_OPEN s SOL_CLOSE``."""
    return f"{tags.think_open}{explanation}{tags.think_close}\n\n{tag_solution(solution, tags)}"


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
    """Token ids of the student sequence around the explanation.

    ``prefix_ids`` is the template up to and including ``THINK_OPEN``; ``suffix_ids``
    is ``THINK_CLOSE``, the tagged solution and the end of the turn. The solution text
    (without tags) occupies ``suffix_ids[solution_start:solution_end]``.
    """

    prefix_ids: list[int]
    suffix_ids: list[int]
    solution_start: int
    solution_end: int

    def build(self, explanation_ids: list[int]) -> tuple[list[int], slice, slice]:
        """``prefix | explanation | suffix`` and the explanation and solution slices in it."""
        ids = [*self.prefix_ids, *explanation_ids, *self.suffix_ids]
        e0 = len(self.prefix_ids)
        e1 = e0 + len(explanation_ids)
        return ids, slice(e0, e1), slice(e1 + self.solution_start, e1 + self.solution_end)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def student_segments(
    tokenizer: PreTrainedTokenizerBase, question: str, solution: str, tags: TagSet, system: str | None = None
) -> StudentSegments:
    """Token-id segments of the student chat for ``question``/``solution`` (spec §3)."""
    # A marker that cannot occur in the template splits the rendering at the explanation.
    marker = "\x00RLT_EXPLANATION\x00"
    prompt, completion = render_prompt_completion(
        tokenizer, student_messages(question, tags, system), student_assistant(marker, solution, tags)
    )
    head, tail = completion.split(marker)
    answer = strip_solution_tags(solution, tags)
    sol_head = f"{tags.think_close}\n\n{tags.solution_open}"
    if not tail.startswith(sol_head + answer + tags.solution_close):
        raise ValueError("the chat template altered the student's assistant turn; cannot build segments")
    sol_tail = tail[len(sol_head) + len(answer) :]
    prefix_ids = _encode(tokenizer, prompt + head)
    head_ids = _encode(tokenizer, sol_head)
    answer_ids = _encode(tokenizer, answer)
    tail_ids = _encode(tokenizer, sol_tail)
    return StudentSegments(
        prefix_ids=prefix_ids,
        suffix_ids=[*head_ids, *answer_ids, *tail_ids],
        solution_start=len(head_ids),
        solution_end=len(head_ids) + len(answer_ids),
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


def _find_subsequence(haystack: list[int], needle: list[int]) -> int:
    n = len(needle)
    if n == 0:
        return -1
    first = needle[0]
    for i in range(len(haystack) - n + 1):
        if haystack[i] == first and haystack[i : i + n] == needle:
            return i
    return -1


def explanation_token_ids(
    completion_ids: list[int], tokenizer: PreTrainedTokenizerBase, tags: TagSet
) -> tuple[list[int], bool]:
    """Split sampled completion ids at the close tag: ``(explanation ids, closed)``.

    The ids before ``EXPL_CLOSE`` are kept exactly as sampled (the reward scores those
    tokens, not a re-tokenisation). Padding and end-of-sequence tokens after an
    unclosed explanation are dropped.
    """
    ids = list(completion_ids)
    close_ids = _encode(tokenizer, tags.explanation_close)
    at = _find_subsequence(ids, close_ids)
    if at < 0 and tags.explanation_close in tokenizer.decode(ids):
        # The tag was tokenised differently in context: find the shortest prefix that contains it.
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if tags.explanation_close in tokenizer.decode(ids[:mid]):
                hi = mid
            else:
                lo = mid + 1
        at = lo - 1  # the token that completes the tag starts it, or merges into it
    if at >= 0:
        return ids[:at], True
    drop = {t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None}
    while ids and ids[-1] in drop:
        ids.pop()
    return ids, False


def as_text(value: Any) -> str:
    """A completion as TRL passes it: a string, or a list of chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    return str(value)
