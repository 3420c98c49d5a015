"""The reward functions ``rlt train`` can use, by name (``reward_funcs: [rlt]`` in a recipe).

- ``rlt``: the RLT reward (:class:`rlt.reward.RLTReward`) for training a *teacher*; it
  needs a frozen student (``student_model_name_or_path``). Built by :mod:`rlt.train`,
  which owns the models.
- ``correctness``: for a *student*'s own RL. The answer is the text between the solution
  tags of ``THINK_OPEN … THINK_CLOSE SOL_OPEN answer SOL_CLOSE``; 1.0 when it is right,
  else 0.0. Built-in tasks use their exact verifiers (``digits``; ``countdown`` with the
  TinyZero credit of 0.1 for a well-formed ``<answer>`` that is wrong); any other data
  is compared with math-verify (``parse`` + ``verify``), falling back to a normalised
  string match when the reference does not parse.
- ``format``: 1.0 when the completion has the student format (thinking opened and
  closed, then an opened and closed solution), else 0.0.

Every function takes TRL's reward-function keywords (``prompts``, ``completions``,
``completion_ids``, data-set columns such as ``question``/``solution``, ``log_metric``, …)
and returns one float per completion.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rlt.errors import ConfigError
from rlt.formats import TagSet, as_text, strip_solution_tags

REWARD_NAMES = ("rlt", "correctness", "format")

# TinyZero gives a well-formed but wrong countdown answer a small credit.
COUNTDOWN_FORMAT_CREDIT = 0.1

RewardFunc = Callable[..., list[float | None]]


def check_reward_names(names: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` naming ``reward_funcs`` for an unknown or repeated name."""
    if not names:
        raise ConfigError(f"reward_funcs: empty; choose from {list(REWARD_NAMES)}")
    for name in names:
        if name not in REWARD_NAMES:
            raise ConfigError(
                f"reward_funcs: unknown reward {name!r}; expected names from {list(REWARD_NAMES)}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"reward_funcs: a reward is listed twice: {list(names)}")


# --------------------------------------------------------------------------- parsing completions


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


def has_student_format(completion: str, tags: TagSet, prompt: str = "") -> bool:
    """``THINK_OPEN … THINK_CLOSE … SOL_OPEN … SOL_CLOSE`` in that order.

    The opening thinking tag may sit at the end of the prompt (a template that pre-fills it).
    """
    text = completion
    opened = text.find(tags.think_open)
    if opened < 0:
        if not prompt.rstrip().endswith(tags.think_open):
            return False
        opened = 0
    else:
        opened += len(tags.think_open)
    closed = text.find(tags.think_close, opened)
    if closed < 0:
        return False
    sol = text.find(tags.solution_open, closed + len(tags.think_close))
    if sol < 0:
        return False
    return text.find(tags.solution_close, sol + len(tags.solution_open)) >= 0


# --------------------------------------------------------------------------- verifiers


def _normalise(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\boxed\{(.*)\}", r"\1", text)
    return re.sub(r"\s+", "", text).rstrip(".").lower()


def math_equal(gold: str, answer: str) -> bool:
    """math-verify's ``verify(parse(gold), parse(answer))``; normalised string match as a fallback.

    math-verify times out through signals, which only work in the main thread; elsewhere
    its timeouts are disabled (TRL calls synchronous reward functions in the main thread).
    """
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a dependency
        return _normalise(gold) == _normalise(answer)
    main = threading.current_thread() is threading.main_thread()
    timeout = {} if main else {"parsing_timeout": None}
    try:
        gold_parsed = parse(gold, **timeout)
        if not gold_parsed:
            gold_parsed = parse(f"${gold}$", **timeout)
        if not gold_parsed:
            return _normalise(gold) == _normalise(answer)
        answer_parsed = parse(answer, **timeout) or parse(f"${answer}$", **timeout)
        return bool(verify(gold_parsed, answer_parsed, **({} if main else {"timeout_seconds": None})))
    except Exception:
        return _normalise(gold) == _normalise(answer)


def _task_verifier(task: str | None) -> Callable[[str, str, str], float] | None:
    """``(question, gold, answer) -> score`` of a built-in task, or None for math-verify."""
    if task is None:
        return None
    from rlt.tasks import CountdownTask, DigitsTask, get_task

    impl = get_task(task)
    if isinstance(impl, DigitsTask):
        return lambda q, gold, answer: 1.0 if impl.verify(q, answer) else 0.0
    if isinstance(impl, CountdownTask):

        def countdown(q: str, gold: str, answer: str) -> float:
            if impl.verify(q, answer):
                return 1.0
            return COUNTDOWN_FORMAT_CREDIT if CountdownTask.extract_expression(answer) is not None else 0.0

        return countdown
    return None


# --------------------------------------------------------------------------- reward functions


def correctness_reward(tags: TagSet, task: str | None = None) -> RewardFunc:
    """The ``correctness`` reward: 1.0 for a right answer between the solution tags, else 0.0."""
    verifier = _task_verifier(task)

    def correctness(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        question: Sequence[str] | None = None,
        solution: Sequence[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if completions is None or solution is None:
            raise ConfigError("correctness reward: needs the completions and the data-set column 'solution'")
        questions = question if question is not None else [""] * len(completions)
        out: list[float | None] = []
        found = 0
        for q, gold, c in zip(questions, solution, completions):
            answer = extract_solution(as_text(c), tags)
            if answer is None:
                out.append(0.0)
                continue
            found += 1
            gold_text = strip_solution_tags(str(gold), tags)
            if verifier is not None:
                out.append(float(verifier(str(q), gold_text, answer)))
            else:
                out.append(1.0 if math_equal(gold_text, answer) else 0.0)
        if log_metric is not None and out:
            log_metric("student/answer_found_frac", found / len(out))
            log_metric("student/accuracy", sum(1 for r in out if r == 1.0) / len(out))
        return out

    correctness.__name__ = "correctness"
    return correctness


def format_reward(tags: TagSet) -> RewardFunc:
    """The ``format`` reward: 1.0 when a completion has the student format, else 0.0."""

    def format_(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if completions is None:
            raise ConfigError("format reward: needs the completions")
        prompt_texts = [as_text(p) for p in prompts] if prompts is not None else [""] * len(completions)
        return [
            1.0 if has_student_format(as_text(c), tags, p) else 0.0 for p, c in zip(prompt_texts, completions)
        ]

    format_.__name__ = "format"
    return format_


def make_reward_funcs(
    names: Sequence[str], tags: TagSet, task: str | None = None, rlt: RewardFunc | None = None
) -> list[RewardFunc]:
    """The reward functions named in ``names``, in order. ``rlt`` must be given for ``"rlt"``."""
    check_reward_names(names)
    funcs: list[RewardFunc] = []
    for name in names:
        if name == "rlt":
            if rlt is None:
                raise ConfigError("reward_funcs: 'rlt' needs the RLT reward object (built by rlt.train)")
            funcs.append(rlt)
        elif name == "correctness":
            funcs.append(correctness_reward(tags, task))
        else:
            funcs.append(format_reward(tags))
    return funcs
