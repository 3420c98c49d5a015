"""Answer checking for evaluation: answer extraction, math-verify made safe, task verifiers.

math-verify's own timeouts use ``signal.alarm``: they work only in the main thread,
and a runaway sympy computation inside C code is not interrupted reliably anyway.
:class:`MathVerifier` therefore runs every check in a worker process of its own with
math-verify's timeouts switched off, waits on the result with a hard per-item timeout,
and kills and replaces a worker that overruns. A pathological answer then costs one
timeout (``False``, status ``"timeout"``), never a hung evaluation, and checks can be
issued from any thread.

A checker is ``check(row, answer) -> (correct, status)``; status is ``ok``,
``timeout``, ``error`` or (set by the caller) ``no_answer``.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from rlt.formats import TagSet, extract_solution

Checker = Callable[[dict[str, Any], str], tuple[bool, str]]
LETTERS = "ABCD"


# --------------------------------------------------------------------------- answer extraction


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def extract_answer(completion: str, tags: TagSet, fallback: bool = True) -> str | None:
    """The answer of a student completion: between the solution tags.

    With ``fallback`` (math benchmarks, where a model may ignore the format), a
    completion without a closed solution is read from its last ``\\boxed{}``, else from
    its last non-empty line; the built-in tasks use ``fallback=False`` (format is part
    of what they test).
    """
    answer = extract_solution(completion, tags)
    if answer is not None or not fallback:
        return answer
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed
    lines = [line.strip() for line in completion.splitlines() if line.strip()]
    return lines[-1] if lines else None


# --------------------------------------------------------------------------- math-verify, safely


def _normalise(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\boxed\{(.*)\}", r"\1", text)
    return re.sub(r"\s+", "", text).rstrip(".").lower()


def math_equal(gold: str, answer: str) -> bool:
    """The one math-verify wrapper: ``verify(parse(gold), parse(answer))``, every timeout disabled.

    Only safe inside a process that can be killed (it runs in :class:`MathVerifier`'s
    worker). Text that does not parse as is is retried wrapped in ``$...$``; a reference
    that still does not parse is compared as normalised text (spaces, ``$``, ``\\boxed{}``
    and a final period ignored).
    """
    from math_verify import parse, verify

    gold_parsed = parse(gold, parsing_timeout=None) or parse(f"${gold}$", parsing_timeout=None)
    if not gold_parsed:
        return _normalise(gold) == _normalise(answer)
    answer_parsed = parse(answer, parsing_timeout=None) or parse(f"${answer}$", parsing_timeout=None)
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))


def _warm_up() -> bool:
    """Import math-verify (and sympy) in the worker and run one trivial check."""
    return math_equal("1", "1")


class MathVerifier:
    """math-verify with a hard per-item timeout, usable from any thread.

    One spawned worker process does the checks (spawn, not fork: forking a process
    that holds torch threads can deadlock). A check past ``timeout`` seconds returns
    ``(False, "timeout")``; the stuck worker is killed and a fresh one started on the
    next check. A lock serialises checks so concurrent threads share one worker.

    A fresh worker first imports math-verify and sympy (a second or more on a busy
    machine) under ``startup_timeout``, so that start-up never eats into ``timeout``:
    otherwise a short timeout would fail every check that follows a restart.
    """

    def __init__(self, timeout: float = 5.0, startup_timeout: float = 120.0):
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
            try:
                ok = self._pool.submit(_warm_up).result(timeout=self.startup_timeout)
            except Exception as err:
                self._kill()
                raise RuntimeError(
                    f"the math-verify worker process did not start within {self.startup_timeout}s "
                    f"({type(err).__name__}: {err})"
                ) from err
            if not ok:
                self._kill()
                raise RuntimeError("the math-verify worker process cannot verify 1 == 1")
        return self._pool

    def check(self, gold: str, answer: str) -> tuple[bool, str]:
        """``(correct, status)`` with status ``ok``, ``timeout`` or ``error``."""
        with self._lock:
            future = self._get_pool().submit(math_equal, gold, answer)
            try:
                return future.result(timeout=self.timeout), "ok"
            except FutureTimeout:
                self._kill()
                return False, "timeout"
            except Exception:  # a parse/verify error in the worker, or a dead worker
                self._kill()
                return False, "error"

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # shutdown() alone would wait for the runaway computation; kill the worker.
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker process (idempotent)."""
        with self._lock:
            self._kill()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- checkers


def gpqa_row(row: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """A GPQA row as a multiple-choice question; the solution is the correct letter.

    The four options are shuffled with a seed derived from ``seed`` and the question
    text, so the order is the same on every run and machine, but the correct option
    is not always in the same place.
    """
    options = [
        row["Correct Answer"],
        row["Incorrect Answer 1"],
        row["Incorrect Answer 2"],
        row["Incorrect Answer 3"],
    ]
    order = list(range(4))
    random.Random(f"{seed}:{row['Question']}").shuffle(order)
    body = "\n".join(f"{LETTERS[i]}) {str(options[j]).strip()}" for i, j in enumerate(order))
    question = f"{str(row['Question']).strip()}\n\n{body}\n\nAnswer with the letter of the correct option."
    return {"question": question, "solution": LETTERS[order.index(0)]}


def gpqa_letter(answer: str) -> str | None:
    """The option letter of ``B``, ``(B)``, ``B) Neon``, ``\\boxed{B}`` or "the answer is (B)"; else None."""
    text = last_boxed(answer) or answer
    # The letter alone or before ")", "." or ":"; not the article in "A noble gas".
    m = re.match(r"\s*\(?\s*([A-Da-d])\s*(?:[).:]|$)", text)
    if m is None:  # a sentence: "The answer is (C)", "Answer: C"
        m = re.search(r"(?i:answer)\s*(?:is|:)?\s*(?:(?i:option)\s*)?\(?\s*([A-D])\b", text)
    return m.group(1).upper() if m else None


def task_checker(task: str, math_timeout: float = 5.0) -> tuple[Checker, MathVerifier | None]:
    """The checker of ``task`` and the :class:`MathVerifier` it owns (None when none).

    ``digits``/``countdown`` use their exact task verifiers, ``gpqa_diamond`` compares
    the option letter, anything else is math-verify against the row's ``solution``.
    """
    from rlt.tasks import TASKS, get_task

    if task in TASKS:
        impl = get_task(task)
        return (lambda row, ans: (bool(impl.verify(row["question"], ans)), "ok")), None
    if task == "gpqa_diamond":
        return (lambda row, ans: (gpqa_letter(ans) == row["solution"], "ok")), None
    verifier = MathVerifier(timeout=math_timeout)
    return (lambda row, ans: verifier.check(str(row["solution"]), ans)), verifier
