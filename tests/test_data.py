import json

import pandas as pd
import pytest

from rlt.cli import main as cli
from rlt.data import DataArguments, load_rows, student_sft_view, teacher_rl_view, teacher_sft_view
from rlt.errors import DataError
from rlt.formats import get_tags
from rlt.models import char_tokenizer

ROWS = [
    {"problem": "start 1; +2 (mod 10)", "answer": "3", "trace": "1+2=3"},
    {"problem": "start 4; *2 (mod 10)", "answer": "8", "trace": "4*2=8"},
]
MAP = {"question_column": "problem", "solution_column": "answer", "reasoning_trace_column": "trace"}


def write(path, rows, kind):
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        path.write_text(json.dumps(rows))
    elif kind == "csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    return str(path)


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_local_loaders_with_column_mapping(tmp_path, kind):
    path = write(tmp_path / f"d.{kind}", ROWS, kind)
    ds = load_rows(DataArguments(dataset_name=path, **MAP), need_trace=True)
    assert ds["question"] == [r["problem"] for r in ROWS]
    assert ds["solution"] == ["3", "8"]
    assert ds["reasoning_trace"] == ["1+2=3", "4*2=8"]


def test_hub_path_goes_through_load_dataset(monkeypatch):
    from datasets import Dataset

    calls = []

    def fake_load_dataset(name, config=None, split=None, **kw):
        calls.append((name, config, split))
        return Dataset.from_list(ROWS)

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    ds = load_rows(
        DataArguments(dataset_name="bespokelabs/Bespoke-Stratos-17k", dataset_split="train", **MAP)
    )
    assert calls == [("bespokelabs/Bespoke-Stratos-17k", None, "train")]
    assert len(ds) == 2


def test_builtin_task_and_limit():
    ds = load_rows(DataArguments(task="digits", task_size=10, limit=4, num_ops=2, modulus=7), need_trace=True)
    assert len(ds) == 4 and ds[0]["question"].endswith("(mod 7)")
    assert load_rows(DataArguments(task="countdown", task_size=3))["solution"][0].startswith("<answer>")


def test_missing_column_lists_existing(tmp_path):
    path = write(tmp_path / "d.jsonl", ROWS, "jsonl")
    with pytest.raises(
        DataError, match=r"missing column 'question'.*\['problem', 'answer', 'trace'\].*--question_column"
    ):
        load_rows(DataArguments(dataset_name=path))


def test_trace_required_only_when_needed(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"question": "q", "solution": "s"}], "jsonl")
    assert len(load_rows(DataArguments(dataset_name=path))) == 1
    with pytest.raises(DataError, match="missing column 'reasoning_trace'"):
        load_rows(DataArguments(dataset_name=path), need_trace=True)


def test_empty_and_non_string_fields_name_the_row(tmp_path):
    rows = [
        {"question": "q0", "solution": "s"},
        {"question": "  ", "solution": "s"},
        {"question": "q2", "solution": 5},
    ]
    path = write(tmp_path / "d.jsonl", rows[:2], "jsonl")
    with pytest.raises(DataError, match=r"row 1: question is empty"):
        load_rows(DataArguments(dataset_name=path))
    path = write(tmp_path / "e.jsonl", [rows[0], rows[2]], "jsonl")
    with pytest.raises(DataError, match=r"row 1: solution is int, not a string"):
        load_rows(DataArguments(dataset_name=path))


def test_drop_reports_count_and_rows(tmp_path, capsys):
    rows = [
        {"question": "q0", "solution": "s"},
        {"question": "", "solution": "s"},
        {"question": "q2", "solution": ""},
    ]
    path = write(tmp_path / "d.jsonl", rows, "jsonl")
    ds = load_rows(DataArguments(dataset_name=path, on_bad_rows="drop"))
    assert ds["question"] == ["q0"]
    out = capsys.readouterr().out
    assert "dropped 2 of 3 rows" in out and "row 1" in out and "row 2" in out


def test_unreadable_missing_unknown_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_rows(DataArguments(dataset_name=str(tmp_path / "nope.jsonl")))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet: cannot read it as parquet"):
        load_rows(DataArguments(dataset_name=str(bad)))
    txt = tmp_path / "d.txt"
    txt.write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '.txt'"):
        load_rows(DataArguments(dataset_name=str(txt)))
    empty = tmp_path / "empty.csv"
    empty.write_text("question,solution\n")
    with pytest.raises(DataError, match="0 rows"):
        load_rows(DataArguments(dataset_name=str(empty)))


def test_argument_validation():
    with pytest.raises(DataError, match="on_bad_rows"):
        DataArguments(task="digits", on_bad_rows="ignore")
    with pytest.raises(DataError, match="tag_format"):
        DataArguments(task="digits", tag_format="xml")
    with pytest.raises(DataError, match="exactly one of"):
        load_rows(DataArguments())


def test_views():
    tok, tags = char_tokenizer(), get_tags("bespoke")
    ds = load_rows(DataArguments(task="digits", task_size=3), need_trace=True)
    rl = teacher_rl_view(ds, tok, tags)
    assert all(p.endswith(tags.explanation_open) for p in rl["prompt"])
    assert rl["solution"] == ds["solution"] and rl["question"] == ds["question"]
    sft = teacher_sft_view(ds, tok, tags, system="")
    full = sft[0]["prompt"] + sft[0]["completion"]
    assert full == tok.apply_chat_template(
        [
            {"role": "user", "content": ds[0]["question"]},
            {"role": "assistant", "content": sft[0]["completion"][: -len("<|im_end|>\n")]},
        ],
        tokenize=False,
    )
    st = student_sft_view(ds, tok, tags)
    assert st[0]["completion"].startswith(tags.think_open + ds[0]["reasoning_trace"] + tags.think_close)


def test_already_tagged_solution_is_not_double_tagged():
    from datasets import Dataset

    tok, tags = char_tokenizer(), get_tags("bespoke")
    ds = Dataset.from_list([{"question": "q", "solution": "<|begin_of_solution|>5<|end_of_solution|>"}])
    assert teacher_rl_view(ds, tok, tags)[0]["prompt"].count(tags.solution_open) == 1


def test_preview_cli(capsys):
    assert cli(["data", "preview", "--task", "digits", "--num_examples", "1", "--system_prompt", ""]) == 0
    out = capsys.readouterr().out
    assert "teacher RL prompt" in out and "student example" in out and "1 rows shown" in out
    assert cli(["data", "preview", "--dataset_name", "/nonexistent/x.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err
