"""Bad `rlt score` inputs: each is a one-line error naming the file (exit 2), never a traceback."""

import json

from rlt.cli import main as cli
from rlt.jsonl import read_records

Q, S = "start 7; +5; *3 (mod 10)", "6"


def score(tmp_path, student, name, content: bytes, *extra):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out.jsonl"
    return cli(["score", "--student", student, "--input", str(path), "--output", str(out), *extra]), out


def test_non_utf8_csv_is_a_data_error(tiny_model_dir, tmp_path, capsys):
    # was a UnicodeDecodeError traceback before the reader caught it
    code, _ = score(tmp_path, tiny_model_dir, "bad.csv", b"question,solution,explanation\nq\xff,1,e\n")
    assert code == 2
    assert "bad.csv: not valid UTF-8 text" in capsys.readouterr().err


def test_zero_row_input_says_no_rows(tiny_model_dir, tmp_path, capsys):
    # an empty file used to be reported as "missing column(s)", which points at the wrong fix
    code, out = score(tmp_path, tiny_model_dir, "empty.jsonl", b"")
    assert code == 2
    assert "empty.jsonl: the file is empty (0 rows)" in capsys.readouterr().err
    assert not out.exists()


def test_broken_jsonl_line_is_named(tiny_model_dir, tmp_path, capsys):
    good = json.dumps({"question": Q, "solution": S, "explanation": "x"})
    code, _ = score(tmp_path, tiny_model_dir, "t.jsonl", f'{good}\n{{"question": "q", "sol\n'.encode())
    assert code == 2
    assert "t.jsonl: line 2 is not valid JSON" in capsys.readouterr().err


def test_non_string_explanation_names_row_and_column(tiny_model_dir, tmp_path, capsys):
    rows = [
        {"question": Q, "solution": S, "explanation": "x"},
        {"question": Q, "solution": S, "explanation": [1]},
    ]
    code, _ = score(tmp_path, tiny_model_dir, "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert code == 2
    assert "row 1: column 'explanation' is [1], expected text" in capsys.readouterr().err


def test_renamed_columns_work_when_mapped(tiny_model_dir, tmp_path, capsys):
    rows = [{"problem": Q, "answer": S, "trace": "7+5=2; 2*3=6"}]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    code, _ = score(tmp_path, tiny_model_dir, "t.jsonl", content)
    assert code == 2 and "--question_column" in capsys.readouterr().err  # unmapped: says how to map
    code, out = score(tmp_path, tiny_model_dir, "t.jsonl", content, "--question_column", "problem",
                      "--solution_column", "answer", "--explanation_column", "trace")  # fmt: skip
    assert code == 0
    (rec,) = read_records(out)
    assert rec["id"] == 0 and rec["problem"] == Q and isinstance(rec["reward"], float)


def test_student_path_that_does_not_exist(tmp_path, capsys):
    rows = [{"question": Q, "solution": S, "explanation": "x"}]
    code, _ = score(tmp_path, "/nonexistent/student", "t.jsonl", (json.dumps(rows[0]) + "\n").encode())
    assert code == 2
    assert "/nonexistent/student" in capsys.readouterr().err
