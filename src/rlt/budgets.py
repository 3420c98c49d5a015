"""Generation budgets that fit the model: each generating command's call of the one check.

``rlt eval`` (``max_new_tokens``), ``rlt collect`` (``max_new_tokens``) and ``rlt train``
(``max_completion_length``) render every prompt they will generate from, count the longest
one's tokens and hand it to :func:`rlt.loading.check_generation_budget`, which reads the
model's context from its config, before any weights load, and applies the one rule:

- prompt + budget fits the context: the budget is kept (the paper's defaults stay wherever
  the model allows them);
- the budget is the field's default: it is capped to what fits, with one logged line;
- the user chose another value: a ConfigError naming the field and the largest value that fits.

A value equal to the default counts as the default (it is capped, and the line says so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from rlt.loading import check_generation_budget, load_tokenizer_for, longest_prompt_tokens


def field_default(obj: Any, name: str) -> Any:
    """The declared default of dataclass field ``name`` of ``obj`` (``MISSING`` if it has none)."""
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def fit_budget(model: str, tokenizer: Any, prompts: Iterable[str], args: Any, name: str, command: str) -> Any:
    """``args.<name>``, checked (or capped) against ``model``'s context for the longest of ``prompts``."""
    value = getattr(args, name)
    if value is None:  # no budget (TRL's None): nothing to check
        return value
    return check_generation_budget(
        model, longest_prompt_tokens(tokenizer, prompts), value, name,
        explicit=value != field_default(args, name), command=command,
    )  # fmt: skip


def fit_eval_budget(args: Any, rows: list[dict[str, Any]]) -> int:
    """``rlt eval``'s ``max_new_tokens`` for the student prompts of ``rows``."""
    from rlt.data import row_system
    from rlt.formats import get_tags, student_prompt

    tok = load_tokenizer_for(args.model, "model")
    tags = get_tags(args.tag_format, args.chat_format)
    prompts = (student_prompt(tok, r["question"], tags, row_system(r, args.system_prompt)) for r in rows)
    return fit_budget(args.model, tok, prompts, args, "max_new_tokens", "rlt eval")


def fit_collect_budget(args: Any, data_args: Any, rows: list[dict[str, Any]]) -> int:
    """``rlt collect``'s ``max_new_tokens`` for the teacher prompts (question and solution) of ``rows``."""
    from rlt.formats import teacher_rl_prompt

    tok = load_tokenizer_for(args.teacher, "teacher")
    tags = data_args.tags()
    prompts = (
        teacher_rl_prompt(tok, r["question"], r["solution"], tags, args.teacher_system_prompt) for r in rows
    )
    return fit_budget(args.teacher, tok, prompts, args, "max_new_tokens", "rlt collect")


def fit_train_budget(model: str, tokenizer: Any, prompts: Iterable[str], grpo_args: Any) -> int:
    """``rlt train``'s ``max_completion_length`` for the rendered ``prompt`` column of the RL data."""
    return fit_budget(model, tokenizer, prompts, grpo_args, "max_completion_length", "rlt train")
