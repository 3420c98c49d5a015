"""`rlt score`: reward components of a trace file, resumable JSONL."""

from __future__ import annotations

import csv
import json

import pytest
from naive import naive_reward

from rlt.cli import main as cli
from rlt.formats import get_tags
from rlt.loading import load_model_and_tokenizer

TAGS = get_tags("bespoke")

ROWS = [
    {"question": f"What is {i} + 1?", "solution": str(i + 1), "explanation": f"{i} and one more is {i + 1}"}
    for i in range(5)
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _read(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def test_score_without_teacher(tmp_path, tiny_student_dir, capsys):
    src = _write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    rc = cli(
        ["score", "--student", tiny_student_dir, "--input", src, "--output", str(out), "--batch_size", "2"]
    )
    assert rc == 0
    student, tok = load_model_and_tokenizer(tiny_student_dir)
    rows = _read(out)
    assert [r["id"] for r in rows] == list(range(5))
    for r, inp in zip(rows, ROWS):
        assert {k: r[k] for k in inp} == inp  # input fields kept
        assert r["kl_mean"] is None and r["kl_max"] is None
        # The values, from an independent full-vocabulary computation (r = r_SS + p, no KL).
        want = naive_reward(student, tok, TAGS, inp["question"], inp["solution"], inp["explanation"])
        for key in ("reward", "solution_logprob_mean", "solution_logprob_min", "num_solution_tokens"):
            assert r[key] == pytest.approx(want[key], abs=1e-5), key
        assert r["penalty"] == 0.0 and r["solution_logprob_mean"] > r["solution_logprob_min"]
        assert r["num_explanation_tokens"] == len(
            tok(inp["explanation"], add_special_tokens=False)["input_ids"]
        )
    printed = capsys.readouterr().err  # rlt's messages are logged to stderr
    assert printed.count("KL terms cannot be computed") == 1
    assert "score: wrote 5 rows (0 already done)" in printed and "mean reward" in printed


def test_score_with_teacher_matches_the_reward(tmp_path, tiny_model_dir, tiny_student_dir):
    rows = [{**r, "id": f"r{i}"} for i, r in enumerate(ROWS[:3])]
    rows[1]["explanation"] = "cut short"
    rows[1]["closed"] = False
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["closed"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out.jsonl"
    args = ["score", "--student", tiny_student_dir, "--teacher", tiny_model_dir, "--input", str(src)]
    assert (
        cli([*args, "--output", str(out), "--kl-coefs", "3:mean", "0.03:max", "--student_temperature", "0.9"])
        == 0
    )
    got = _read(out)
    assert [r["id"] for r in got] == ["r0", "r1", "r2"]
    assert [r["penalty"] for r in got] == [0.0, -1.0, 0.0]

    student, tok = load_model_and_tokenizer(tiny_student_dir)
    teacher, _ = load_model_and_tokenizer(tiny_model_dir)
    for g, r, closed in zip(got, rows, [True, False, True]):
        # An independent computation with the flags' values: τ_S = 0.9, r_KL = 3·mean + 0.03·max.
        want = naive_reward(student, tok, TAGS, r["question"], r["solution"], r["explanation"],
                            teacher=teacher, closed=closed, student_temperature=0.9)  # fmt: skip
        for key in ("reward", "kl_mean", "kl_max", "solution_logprob_mean", "solution_logprob_min"):
            assert g[key] == pytest.approx(want[key], abs=1e-5), key
        assert g["kl_max"] > g["kl_mean"]
    # The KL terms count against the reward (with a flipped sign this would not hold).
    assert got[0]["reward"] == pytest.approx(
        got[0]["solution_logprob_mean"] + 0.01 * got[0]["solution_logprob_min"]
        - 3 * got[0]["kl_mean"] - 0.03 * got[0]["kl_max"], abs=1e-6
    )  # fmt: skip


def test_score_resumes_after_a_truncated_line(tmp_path, tiny_student_dir):
    src = _write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    args = ["score", "--student", tiny_student_dir, "--input", src, "--output", str(out)]
    assert cli(args) == 0
    full = _read(out)
    # Keep two complete records and half of the third, as a kill mid-write would.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2])
    assert cli(args) == 0
    again = _read(out)
    assert sorted(r["id"] for r in again) == list(range(5))  # exactly one record per id, none lost
    by_id = {r["id"]: r for r in again}
    for r in full:
        assert by_id[r["id"]]["reward"] == pytest.approx(r["reward"], abs=1e-6)
    # A third run has nothing left to do.
    assert cli(args) == 0
    assert len(_read(out)) == 5


def test_score_reports_bad_columns_and_rows(tmp_path, tiny_student_dir, capsys):
    out = str(tmp_path / "out.jsonl")
    src = _write_jsonl(tmp_path / "in.jsonl", [{"q": "x", "solution": "1", "explanation": "e"}])
    assert cli(["score", "--student", tiny_student_dir, "--input", src, "--output", out]) == 2
    err = capsys.readouterr().err
    assert (
        "missing column(s) ['question']" in err and "['explanation', 'q', 'solution']" in err and src in err
    )
    src = _write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], {**ROWS[1], "explanation": None}])
    assert cli(["score", "--student", tiny_student_dir, "--input", src, "--output", out]) == 2
    assert "row 1: column 'explanation'" in capsys.readouterr().err
    # Column mapping.
    mapped = [
        {"problem": r["question"], "answer": r["solution"], "trace": r["explanation"]} for r in ROWS[:2]
    ]
    src = _write_jsonl(tmp_path / "mapped.jsonl", mapped)
    argv = [
        "score",
        "--student",
        tiny_student_dir,
        "--input",
        src,
        "--output",
        out,
        "--question_column",
        "problem",
    ]
    argv += ["--solution_column", "answer", "--explanation_column", "trace"]
    assert cli(argv) == 0 and len(_read(out)) == 2
