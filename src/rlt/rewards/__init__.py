"""Rewards: the RLT reward for teachers, the student rewards, and the registry of names.

``reward_funcs`` in a recipe lists rewards by name (:data:`REGISTRY`) or by dotted import
path ``package.module:function`` for a reward of your own, as TRL's scripts accept. A
registry entry is a factory ``(tags=..., task=...) -> reward function``; a dotted path
names a TRL reward function itself, ``f(prompts=..., completions=..., **columns) ->
list[float | None]``. Names and paths are checked by :func:`check_reward_names` before
any model loads. Adding a reward is one module here plus its line in :data:`REGISTRY`.

- ``rlt`` (:mod:`rlt.rewards.rlt`): the RLT reward of a *teacher*; built by ``rlt train``,
  which owns the frozen student.
- ``correctness`` (:mod:`rlt.rewards.correctness`), ``format`` (:mod:`rlt.rewards.format`):
  a *student*'s own RL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from rlt.errors import ConfigError
from rlt.formats import TagSet
from rlt.rewards.correctness import correctness_reward
from rlt.rewards.format import format_reward, has_student_format
from rlt.rewards.rlt import RLTReward, RLTRewardConfig, summarize

RewardFunc = Callable[..., list[float | None]]

# name -> factory(tags=..., task=...); "rlt" is built by `rlt train` (it needs the student).
REGISTRY: dict[str, Callable[..., RewardFunc] | None] = {
    "rlt": None,
    "correctness": correctness_reward,
    "format": format_reward,
}


def _import_path(path: str) -> RewardFunc:
    """The function named by ``package.module:function``; ConfigError naming ``reward_funcs``."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"reward_funcs: unknown reward {path!r}; expected one of {list(REGISTRY)} or an import path "
            "'package.module:function'"
        )
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"reward_funcs: cannot import {path!r} ({type(err).__name__}: {err})") from None
    if not callable(func):
        raise ConfigError(f"reward_funcs: {path!r} is not callable")
    return func


def check_reward_names(names: Sequence[str]) -> None:
    """ConfigError naming ``reward_funcs`` for an empty list, an unknown name, a bad path or a repeat."""
    if not names:
        raise ConfigError(f"reward_funcs: empty; choose from {list(REGISTRY)} or 'package.module:function'")
    for name in names:
        if name not in REGISTRY:
            _import_path(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"reward_funcs: a reward is listed twice: {list(names)}")


def make_reward_funcs(
    names: Sequence[str], tags: TagSet, task: str | None = None, rlt: RewardFunc | None = None
) -> list[RewardFunc]:
    """The reward functions named in ``names``, in order. ``rlt`` must be given for ``"rlt"``."""
    check_reward_names(names)
    funcs: list[RewardFunc] = []
    for name in names:
        if name == "rlt":
            if rlt is None:
                raise ConfigError("reward_funcs: 'rlt' needs the RLT reward object (built by rlt train)")
            funcs.append(rlt)
        elif name in REGISTRY:
            factory = REGISTRY[name]
            assert factory is not None
            funcs.append(factory(tags=tags, task=task))
        else:
            funcs.append(_import_path(name))
    return funcs


__all__ = [
    "REGISTRY",
    "RLTReward",
    "RLTRewardConfig",
    "RewardFunc",
    "check_reward_names",
    "correctness_reward",
    "format_reward",
    "has_student_format",
    "make_reward_funcs",
    "summarize",
]
