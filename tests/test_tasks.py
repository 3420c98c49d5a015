import random

import pytest

from rlt.tasks import STYLES, CountdownTask, DigitsProblem, DigitsTask, evaluate_countdown, get_task


def test_digits_example_from_the_issue():
    p = DigitsProblem.parse("start 7; +5; *3; -4 (mod 10)")
    assert p.chain() == [(7, "+", 5, 2), (2, "*", 3, 6), (6, "-", 4, 2)]
    assert p.answer == 2


def test_digits_generation_is_deterministic_per_seed():
    task = DigitsTask(num_ops=4, modulus=7)
    assert task.generate(20, seed=3) == task.generate(20, seed=3)
    assert task.generate(20, seed=3) != task.generate(20, seed=4)
    for row in task.generate(50, seed=0):
        p = DigitsProblem.parse(row["question"])
        assert len(p.ops) == 4 and p.modulus == 7
        assert row["solution"] == str(p.answer)
        assert task.verify(row["question"], row["solution"])
        assert task.classify_style(row["question"], row["reasoning_trace"]) == "steps"


def test_digits_verifier():
    q = "start 7; +5; *3; -4 (mod 10)"
    task = get_task("digits")
    assert task.verify(q, "2") and task.verify(q, " 2\n")
    assert not task.verify(q, "3")
    assert not task.verify(q, "two")
    assert not task.verify(q, "")


@pytest.mark.parametrize("style", STYLES)
def test_each_style_is_classified_as_itself(style):
    task = DigitsTask(num_ops=3, modulus=10)
    rng = random.Random(0)
    for row in task.generate(100, seed=1):
        expl = task.explanation(row["question"], style, rng)
        assert task.classify_style(row["question"], expl) == style, expl


def test_classifier_on_hand_written_text():
    q = "start 7; +5; *3; -4 (mod 10)"
    c = DigitsTask.classify_style
    assert c(q, "7+5=2; 2*3=6; 6-4=2") == "steps"
    assert c(q, "7 + 5 = 2, then 2 * 3 = 6, then 6 - 4 = 2") == "steps"
    assert c(q, "7+5=2; 2*3=6") == "wrong"  # a step is missing
    assert c(q, "7+5=3; 3*3=9; 9-4=5") == "wrong"
    assert c(q, "answer 2") == "leak"
    assert c(q, "the result is 2") == "leak"
    assert c(q, "think it through") == "filler"
    assert c(q, "answer 3") == "filler"  # a number, but not the answer


def test_style_mix_validation():
    with pytest.raises(ValueError, match="unknown styles"):
        DigitsTask(style_mix={"poetry": 1.0}).mixed_explanations(["start 1; +1 (mod 10)"])
    mix = DigitsTask(style_mix={"steps": 1.0, "leak": 0.0}).mixed_explanations(["start 1; +1 (mod 10)"] * 20)
    assert {s for s, _ in mix} == {"steps"}


def test_countdown_generation_and_verifier():
    task = CountdownTask()
    rows = task.generate(30, seed=0)
    assert rows == task.generate(30, seed=0)
    for row in rows:
        assert task.verify(row["question"], row["solution"]), row


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("(6/4)*2", True),  # exact with fractions: 3
        ("6/4*2", True),
        ("6*2/4", True),
        ("6+2+4", False),  # wrong value
        ("6*2", False),  # a number missing
        ("6*2/4*4", False),  # a number reused
        ("6/(4-4)*2", False),  # reuse and division by zero
        ("__import__('os')", False),  # not arithmetic
        ("6**4", False),  # power is not allowed
        ("6/4*2 +", False),  # malformed
        ("<answer>2*6/4</answer>", True),
    ],
)
def test_countdown_verifier_cases(expr, ok):
    q = "Using the numbers [6, 4, 2], create an expression that equals 3. Use each number exactly once."
    assert CountdownTask().verify(q, expr) is ok


def test_countdown_division_by_zero_is_refused():
    from rlt.tasks import CountdownError

    with pytest.raises(CountdownError, match="division by zero"):
        evaluate_countdown("3/(2-2)", [3, 2, 2])


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown built-in task 'chess'"):
        get_task("chess")
