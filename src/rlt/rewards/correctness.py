"""The ``correctness`` reward: 1.0 when a student's answer is right, else 0.0.

The answer is the text between the solution tags after the thinking
(:func:`rlt.formats.extract_solution`). It is checked on the same path as ``rlt eval``
(:func:`rlt.verify.task_checker`): a built-in task's own verifier (``digits``,
``countdown``), else math-verify against the row's solution, in a worker process with a
hard timeout. A task may give partial credit for a well-formed wrong answer (countdown's
TinyZero credit, :meth:`rlt.tasks.CountdownTask.partial_credit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rlt.errors import ConfigError
from rlt.formats import TagSet, as_text, extract_solution, strip_solution_tags


def correctness_reward(tags: TagSet, task: str | None = None, math_timeout: float = 5.0, **_: Any):
    """The ``correctness`` reward function for the tags and task of a run."""
    from rlt.tasks import TASKS, get_task
    from rlt.verify import task_checker

    check, _verifier = task_checker(task or "math", math_timeout)
    credit = getattr(get_task(task), "partial_credit", None) if task in TASKS else None

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
            row = {"question": str(q), "solution": strip_solution_tags(str(gold), tags)}
            right, _status = check(row, answer)
            out.append(1.0 if right else (credit(answer) if credit is not None else 0.0))
        if log_metric is not None and out:
            log_metric("student/answer_found_frac", found / len(out))
            log_metric("student/accuracy", sum(1 for r in out if r == 1.0) / len(out))
        return out

    correctness.__name__ = "correctness"
    correctness.verifier = _verifier  # type: ignore[attr-defined]  # the math-verify worker, to close
    return correctness
