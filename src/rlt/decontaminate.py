"""Decontamination of training questions against evaluation sets by word n-gram overlap.

The method of open-r1's ``scripts/decontaminate.py`` (itself s1's, arXiv 2501.19393): a
text is normalised (lower case, whitespace runs collapsed to one space; punctuation is
kept, as there), split into words at whitespace, and its word ``n``-grams (default 8)
collected. A training question is contaminated when any of its n-grams occurs in any
question of an evaluation set. A text of fewer than ``n`` words has no n-grams and is
never flagged (as there).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlt.errors import ConfigError

logger = logging.getLogger(__name__)


def normalize_string(text: str) -> str:
    """Lower case, with every run of whitespace one space and no space at either end."""
    return " ".join(str(text).lower().split())


def word_ngrams(text: str, n: int) -> list[str]:
    """The word ``n``-grams of ``text`` (after :func:`normalize_string`), each words joined by a space."""
    words = normalize_string(text).split()
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def build_ngram_lookup(documents: Iterable[str], n: int = 8) -> dict[str, set[int]]:
    """n-gram → the indices of the documents that contain it."""
    lookup: dict[str, set[int]] = defaultdict(set)
    for i, doc in enumerate(documents):
        for gram in word_ngrams(doc, n):
            lookup[gram].add(i)
    return dict(lookup)


@dataclass(frozen=True)
class Contamination:
    """One contaminated training question: which evaluation set, which of its questions, which n-gram."""

    index: int
    eval_name: str
    eval_index: int
    ngram: str


def find_contaminated(
    questions: Sequence[str], eval_sets: Mapping[str, Sequence[str]], n: int = 8
) -> list[Contamination]:
    """The contaminated questions, in order, each with its first overlap (sets in the order given)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"decontaminate_ngram: must be an integer >= 1, got {n!r}")
    lookups = {name: build_ngram_lookup(docs, n) for name, docs in eval_sets.items()}
    found = []
    for i, q in enumerate(questions):
        grams = word_ngrams(q, n)
        hit = next(
            (
                Contamination(i, name, min(lookup[g]), g)
                for name, lookup in lookups.items()
                for g in grams
                if g in lookup
            ),
            None,
        )
        if hit is not None:
            found.append(hit)
    return found


def decontaminate_rows(
    rows: Sequence[dict[str, Any]],
    eval_sets: Mapping[str, Sequence[str]],
    n: int = 8,
    column: str = "question",
) -> tuple[list[dict[str, Any]], list[Contamination]]:
    """``(kept rows, what was removed)``; logs how many rows each evaluation set removed."""
    hits = find_contaminated([str(r[column]) for r in rows], eval_sets, n)
    bad = {h.index for h in hits}
    kept = [r for i, r in enumerate(rows) if i not in bad]
    per_set: dict[str, int] = defaultdict(int)
    for h in hits:
        per_set[h.eval_name] += 1
    sizes = ", ".join(f"{name}: {len(docs)} questions" for name, docs in eval_sets.items())
    logger.info(
        f"decontaminate: removed {len(hits)} of {len(rows)} rows sharing a word {n}-gram with the evaluation "
        f"sets ({sizes}); per set: {dict(per_set) or 'none'}"
    )
    for h in hits:
        q = str(rows[h.index][column])
        logger.info(
            f"decontaminate: removed row {h.index} ({q[:80]!r}{'…' if len(q) > 80 else ''}): "
            f"{h.eval_name} question {h.eval_index} shares {h.ngram!r}"
        )
    return kept, hits


def load_eval_questions(names: Sequence[str]) -> dict[str, list[str]]:
    """The questions of each evaluation set: a task name or a data file, via :func:`rlt.evaluate.load_eval_task`."""
    from rlt.evaluate import load_eval_task

    out = {}
    for name in names:
        task = load_eval_task(name)
        try:
            out[name] = [str(r["question"]) for r in task.rows]
        finally:
            if task.closer is not None:
                task.closer()
    return out


__all__ = [
    "Contamination",
    "build_ngram_lookup",
    "decontaminate_rows",
    "find_contaminated",
    "load_eval_questions",
    "normalize_string",
    "word_ngrams",
]
