import json
import threading
import time

import pytest

from rlt.cli import main as cli
from rlt.evaluate import MathVerifier, gpqa_row, load_eval_task, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "want"),
    [
        (5, 2, 1, 0.4),
        (5, 2, 2, 0.7),
        (5, 0, 3, 0.0),
        (5, 4, 2, 1.0),
        (10, 3, 5, 1 - (7 * 6 * 5 * 4 * 3) / (10 * 9 * 8 * 7 * 6)),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, want):
    assert pass_at_k(n, c, k) == pytest.approx(want)


GPQA = {"Question": "Which is a noble gas?", "Correct Answer": "Neon", "Incorrect Answer 1": "Sodium",
        "Incorrect Answer 2": "Iron", "Incorrect Answer 3": "Carbon"}  # fmt: skip


def test_gpqa_shuffle_is_deterministic_and_letter_is_right():
    a, b = gpqa_row(GPQA), gpqa_row(dict(GPQA))
    assert a == b
    line = next(x for x in a["question"].splitlines() if x.startswith(a["solution"] + ")"))
    assert line.endswith("Neon")
    letters = {gpqa_row({**GPQA, "Question": f"q{i}"})["solution"] for i in range(30)}
    assert len(letters) > 1  # the correct option is not always in the same place


def test_hub_loaders_on_local_stand_ins(tmp_path):
    gp = tmp_path / "gpqa.jsonl"
    gp.write_text(json.dumps(GPQA) + "\n")
    assert load_eval_task("gpqa_diamond", str(gp)).rows[0]["solution"] in "ABCD"
    for name in ("aime24", "math500"):
        f = tmp_path / f"{name}.jsonl"
        f.write_text(json.dumps({"problem": "1+1?", "answer": "2", "extra": 1}) + "\n")
        task = load_eval_task(name, str(f), math_timeout=20)
        assert task.rows == [{"question": "1+1?", "solution": "2"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(Exception, match="missing columns"):
        load_eval_task("math500", str(bad))


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=20)
    yield v
    v.close()


@pytest.mark.parametrize(
    ("gold", "answer", "equal"),
    [
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "0.5", True),
        ("2", "3", False),
        ("$x^2+2x+1$", "$(x+1)^2$", True),
    ],
)
def test_math_verify_pairs(verifier, gold, answer, equal):
    assert verifier.check(gold, answer) == (equal, "ok")


def test_math_verify_from_a_thread(verifier):
    out = []
    t = threading.Thread(target=lambda: out.append(verifier.check("1/2", "0.5")))
    t.start()
    t.join()
    assert out == [(True, "ok")]


def test_pathological_input_times_out_cleanly():
    slow = MathVerifier(timeout=1.0)
    start = time.time()
    assert slow.check("$9^{9^{9^{9}}}$", "$9^{9^{9^{9}}} + 1$") == (False, "timeout")
    assert time.time() - start < 10
    assert slow.check("1/2", "0.5")[1] in ("ok", "timeout")  # a fresh worker replaces the stuck one
    slow.close()


def test_eval_cli_writes_results(tiny_model_dir, tmp_path):
    out = tmp_path / "ev"
    assert cli(["eval", "--model", tiny_model_dir, "--task", "digits", "--limit", "4", "--num_samples", "2",
                "--k", "1", "2", "--max_new_tokens", "8", "--out", str(out)]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["num_questions"] == 4 and set(res["pass_at_k"]) == {"1", "2"}
    assert "| digits |" in (out / "results.md").read_text()
    assert len((out / "samples.jsonl").read_text().splitlines()) == 8
