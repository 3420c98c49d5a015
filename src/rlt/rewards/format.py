"""The ``format`` reward: 1.0 when a student completion has the student format, else 0.0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlt.errors import ConfigError
from rlt.formats import TagSet, as_text


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


def format_reward(tags: TagSet, **_: Any):
    """The ``format`` reward function for the tags of a run."""

    def format_(
        prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        if completions is None:
            raise ConfigError("format reward: needs the completions")
        prompt_texts = [as_text(p) for p in prompts] if prompts is not None else [""] * len(completions)
        return [
            1.0 if has_student_format(as_text(c), tags, p) else 0.0 for p, c in zip(prompt_texts, completions)
        ]

    format_.__name__ = "format"
    return format_
