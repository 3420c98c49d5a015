"""rlt.verify: math-verify in a killable worker, answer extraction, task checkers."""

import subprocess
import sys
import threading
import time

import pytest

from rlt.formats import get_tags
from rlt.tasks import CountdownTask, DigitsTask
from rlt.verify import MathVerifier, extract_answer, gpqa_letter, last_boxed, task_checker

SLOW = ("$2^{2^{2^{30}}}$", "$3$")  # sympy tries to evaluate a 2^(2^30)-bit power


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout=10) as v:
        yield v


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "0.5", True),
        ("2", "3", False),
        ("x^2+2x+1", "(x+1)^2", True),
        ("$x^2+2x+1$", "$(x+1)^2$", True),
    ],
)
def test_math_verify_pairs(verifier, gold, answer, equal):
    assert verifier.check(gold, answer) == (equal, "ok")


def test_math_verify_from_threads(verifier):
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(verifier.check("1/2", "0.5"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [(True, "ok")] * 3


def test_pathological_input_is_slow_without_the_guard():
    # Unguarded (math-verify's timeouts off, as in the worker), the check does not finish.
    code = f"from rlt.verify import math_equal as f; f({SLOW[0]!r}, {SLOW[1]!r})"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], timeout=4, capture_output=True)


def test_pathological_input_times_out_cleanly():
    with MathVerifier(timeout=1.5) as slow:
        assert slow.check("1", "1") == (True, "ok")  # the worker's start-up is not timed as a check
        start = time.time()
        assert slow.check(*SLOW) == (False, "timeout")
        assert time.time() - start < 5
        # A fresh worker replaced the killed one; its start-up does not count against 1.5 s either.
        assert slow.check("1/2", "0.5") == (True, "ok")


def test_extract_answer_fallbacks():
    tags = get_tags("bespoke")
    tagged = f"{tags.think_open}hm{tags.think_close}\n\n{tags.solution_open} 42 {tags.solution_close}"
    assert extract_answer(tagged, tags) == "42"
    assert extract_answer("so \\boxed{\\frac{1}{2}} done\nbye", tags) == "\\frac{1}{2}"
    assert extract_answer("work\nThe answer is 7\n\n", tags) == "The answer is 7"
    assert extract_answer("no tags here", tags, fallback=False) is None
    assert last_boxed("\\boxed{a{b}c} and \\boxed{d}") == "d"
    assert last_boxed("\\boxed{unbalanced") is None


@pytest.mark.parametrize(("text", "letter"), [("B", "B"), ("(c)", "C"), ("D) Neon", "D"), ("\\boxed{A}", "A"),
                                               ("Neon", None),
                                               ("The answer is (C).", "C"), ("Answer: b", None), ("A noble gas", None),
                                               ("answer: option D", "D")])  # fmt: skip
def test_gpqa_letter(text, letter):
    assert gpqa_letter(text) == letter


def test_task_checkers():
    row = DigitsTask().generate(1, seed=3)[0]
    check, owned = task_checker("digits")
    assert owned is None
    assert check(row, row["solution"]) == (True, "ok")
    assert check(row, "not a number")[0] is False
    crow = CountdownTask().generate(1, seed=3)[0]
    ccheck, _ = task_checker("countdown")
    assert ccheck(crow, crow["solution"]) == (True, "ok")
    gcheck, _ = task_checker("gpqa_diamond")
    assert gcheck({"solution": "B"}, "(B) Neon") == (True, "ok")
