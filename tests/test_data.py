"""rlt.data: every loader path, column mapping, validation errors, the three views, `rlt data preview`."""

import dataclasses
import json

import pandas as pd
import pytest
from datasets import Dataset

from rlt.cli import main as cli
from rlt.data import (
    DataArguments,
    load_rows,
    sharegpt_fields,
    student_sft_view,
    teacher_rl_view,
    teacher_sft_view,
)
from rlt.errors import DataError
from rlt.formats import get_tags, student_system_prompt, teacher_system_prompt
from rlt.models import char_tokenizer

ROWS = [
    {"problem": "start 1; +2 (mod 10)", "answer": "3", "trace": "1+2=3", "source": "a"},
    {"problem": "start 4; *2 (mod 10)", "answer": "8", "trace": "4*2=8", "source": "b"},
]
MAP = {"question_column": "problem", "solution_column": "answer", "reasoning_trace_column": "trace"}
TAGS = get_tags("bespoke")


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


def rows_file(tmp_path, rows, name="d.jsonl"):
    return write(tmp_path / name, rows, name.rsplit(".", 1)[1])


def chat(tok, messages, generation_prompt=False):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


# --------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_local_loaders_with_column_mapping(tmp_path, kind):
    path = write(tmp_path / f"d.{kind}", ROWS, kind)
    ds = load_rows(DataArguments(dataset_name=path, **MAP), need_trace=True)
    assert ds["question"] == [r["problem"] for r in ROWS]
    assert ds["solution"] == ["3", "8"]  # CSV numbers stay text
    assert ds["reasoning_trace"] == ["1+2=3", "4*2=8"]
    assert ds["source"] == ["a", "b"]  # other columns are kept


def test_mapped_column_replaces_a_canonical_one(tmp_path):
    path = rows_file(tmp_path, [{"question": "q", "solution": "old", "final": "new"}])
    ds = load_rows(DataArguments(dataset_name=path, solution_column="final"))
    assert ds["solution"] == ["new"] and "final" not in ds.column_names


def test_hub_path_goes_through_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(name, config=None, split=None, **kw):
        calls.append((name, config, split))
        return Dataset.from_list(ROWS)

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    args = DataArguments(dataset_name="org/some-data", dataset_config="main", dataset_split="test", **MAP)
    ds = load_rows(args)
    assert calls == [("org/some-data", "main", "test")]
    assert ds["solution"] == ["3", "8"]


def test_hub_failure_is_a_data_error(monkeypatch):
    def fail(*a, **kw):
        raise FileNotFoundError("Couldn't find dataset")

    monkeypatch.setattr("datasets.load_dataset", fail)
    with pytest.raises(DataError, match=r"cannot load data set 'org/missing' \(config None\).*Couldn't find"):
        load_rows(DataArguments(dataset_name="org/missing"))


def test_local_folders(tmp_path):
    saved = tmp_path / "saved"
    Dataset.from_list(ROWS).save_to_disk(str(saved))
    assert load_rows(DataArguments(dataset_name=str(saved), **MAP))["solution"] == ["3", "8"]
    files = tmp_path / "files"
    files.mkdir()
    write(files / "train.jsonl", ROWS, "jsonl")
    assert load_rows(DataArguments(dataset_name=str(files), **MAP))["solution"] == ["3", "8"]
    (tmp_path / "hollow").mkdir()
    with pytest.raises(DataError, match="hollow: cannot load the data set in this folder"):
        load_rows(DataArguments(dataset_name=str(tmp_path / "hollow")))


def test_sharegpt_conversations_are_read(monkeypatch):
    reply = f"{TAGS.think_open}\n\n1+2=3\n\n{TAGS.think_close}\n\n{TAGS.solution_open}\n\n3\n\n{TAGS.solution_close}"
    stratos = [
        {
            "system": "sys",
            "conversations": [
                {"from": "user", "value": "start 1; +2"},
                {"from": "assistant", "value": reply},
            ],
        },
        {
            "system": "sys",
            "conversations": [
                {"from": "user", "value": "untagged"},
                {"from": "assistant", "value": "just 4"},
            ],
        },
    ]
    monkeypatch.setattr("datasets.load_dataset", lambda *a, **kw: Dataset.from_list(stratos))
    args = DataArguments(dataset_name="bespokelabs/Bespoke-Stratos-17k")
    with pytest.raises(DataError, match=r"row 1: solution is missing \(null\)"):
        load_rows(args, need_trace=True)
    ds = load_rows(dataclasses.replace(args, on_bad_rows="drop"), need_trace=True)
    assert ds[0]["question"] == "start 1; +2"
    assert ds[0]["reasoning_trace"] == "1+2=3" and ds[0]["solution"] == "3"
    assert "conversations" not in ds.column_names and ds[0]["system"] == "sys"
    openai_style = [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]
    assert sharegpt_fields(openai_style, TAGS)["solution"] == "3"


def test_builtin_tasks_and_limit():
    ds = load_rows(DataArguments(task="digits", task_size=10, limit=4, num_ops=2, modulus=7), need_trace=True)
    assert len(ds) == 4 and ds[0]["question"].endswith("(mod 7)") and ds[0]["question"].count(";") == 2
    again = load_rows(DataArguments(task="digits", task_size=10, limit=4, num_ops=2, modulus=7))
    assert again["question"] == ds["question"]  # the seed fixes the rows
    assert load_rows(DataArguments(task="countdown", task_size=3))["solution"][0].startswith("<answer>")
    with pytest.raises(DataError, match="task: unknown built-in task 'sudoku'"):
        load_rows(DataArguments(task="sudoku"))


# --------------------------------------------------------------------------- bad input


def test_missing_column_lists_existing_ones_and_the_flag(tmp_path):
    path = rows_file(tmp_path, ROWS)
    with pytest.raises(
        DataError,
        match=r"d.jsonl: missing column 'question'.*\['problem', 'answer', 'trace', 'source'\].*--question_column",
    ):
        load_rows(DataArguments(dataset_name=path))
    with pytest.raises(DataError, match=r"missing column 'sol'.*--solution_column"):
        load_rows(DataArguments(dataset_name=path, question_column="problem", solution_column="sol"))


def test_trace_is_required_and_checked_only_when_needed(tmp_path):
    path = rows_file(tmp_path, [{"question": "q", "solution": "s"}])
    assert len(load_rows(DataArguments(dataset_name=path))) == 1
    with pytest.raises(DataError, match=r"missing column 'reasoning_trace'.*--reasoning_trace_column"):
        load_rows(DataArguments(dataset_name=path), need_trace=True)
    path = rows_file(tmp_path, [{"question": "q", "solution": "s", "reasoning_trace": ""}], "t.jsonl")
    assert len(load_rows(DataArguments(dataset_name=path))) == 1  # RL does not read the trace
    with pytest.raises(DataError, match="row 0: reasoning_trace is empty"):
        load_rows(DataArguments(dataset_name=path), need_trace=True)


def test_empty_non_string_and_null_fields_name_row_and_column(tmp_path):
    path = rows_file(tmp_path, [{"question": "q0", "solution": "s"}, {"question": "  ", "solution": "s"}])
    with pytest.raises(DataError, match=r"d.jsonl: row 1: question is empty.*on_bad_rows=drop"):
        load_rows(DataArguments(dataset_name=path))
    path = rows_file(
        tmp_path, [{"question": "q0", "solution": "s"}, {"question": "q1", "solution": 5}], "e.jsonl"
    )
    with pytest.raises(DataError, match=r"e.jsonl: row 1: solution is int, not a string"):
        load_rows(DataArguments(dataset_name=path))
    csv = tmp_path / "c.csv"
    csv.write_text("question,solution\nq0,s0\nq1,\n")
    with pytest.raises(DataError, match=r"c.csv: row 1: solution is missing \(null\)"):
        load_rows(DataArguments(dataset_name=str(csv)))


def test_drop_reports_count_and_row_indices(tmp_path, capsys):
    rows = [{"question": f"q{i}", "solution": "s"} for i in range(10)]
    for i in (1, 2, 4, 5, 6, 7, 9):
        rows[i]["question"] = ""
    path = rows_file(tmp_path, rows)
    ds = load_rows(DataArguments(dataset_name=path, on_bad_rows="drop"))
    assert ds["question"] == ["q0", "q3", "q8"]
    err = capsys.readouterr().err
    assert "dropped 7 of 10 rows" in err
    assert "row 1 (question is empty), row 2 (question is empty), row 4" in err and "and 2 more" in err
    with pytest.raises(DataError, match="no rows left after dropping bad rows"):
        load_rows(DataArguments(dataset_name=rows_file(tmp_path, rows[1:3], "bad.jsonl"), on_bad_rows="drop"))


def test_unreadable_missing_unknown_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"nope.jsonl: no such file"):
        load_rows(DataArguments(dataset_name=str(tmp_path / "nope.jsonl")))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet: cannot read it as parquet"):
        load_rows(DataArguments(dataset_name=str(bad)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "solution": \n')
    with pytest.raises(DataError, match=r"broken.jsonl: cannot read it as json"):
        load_rows(DataArguments(dataset_name=str(broken)))
    txt = tmp_path / "d.txt"
    txt.write_text("x")
    with pytest.raises(DataError, match=r"d.txt: unknown file type '.txt'; expected one of"):
        load_rows(DataArguments(dataset_name=str(txt)))
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "empty.csv").write_text("question,solution\n")
    pd.DataFrame({"question": [], "solution": []}).astype(str).to_parquet(tmp_path / "empty.parquet")
    for name in ("empty.jsonl", "empty.json", "empty.csv", "empty.parquet"):
        with pytest.raises(DataError, match=rf"{name}: .*0 rows"):
            load_rows(DataArguments(dataset_name=str(tmp_path / name)))


def test_argument_validation():
    with pytest.raises(DataError, match="on_bad_rows"):
        DataArguments(task="digits", on_bad_rows="ignore")
    with pytest.raises(DataError, match="tag_format"):
        DataArguments(task="digits", tag_format="xml")
    with pytest.raises(DataError, match="limit: must be >= 1"):
        DataArguments(task="digits", limit=0)
    with pytest.raises(DataError, match="exactly one of"):
        load_rows(DataArguments())
    with pytest.raises(DataError, match="exactly one of"):
        load_rows(DataArguments(task="digits", dataset_name="x.jsonl"))


def test_fields_do_not_clash_with_trl_configs():
    from trl import GRPOConfig, ModelConfig, SFTConfig

    ours = {f.name for f in dataclasses.fields(DataArguments)}
    for cls in (GRPOConfig, SFTConfig, ModelConfig):
        assert not ours & {f.name for f in dataclasses.fields(cls)}, cls.__name__


# --------------------------------------------------------------------------- views


@pytest.fixture(scope="module")
def digits():
    return load_rows(DataArguments(task="digits", task_size=3), need_trace=True)


def test_teacher_rl_view(digits):
    tok = char_tokenizer()
    rl = teacher_rl_view(digits, tok, TAGS)
    assert all(p.endswith(TAGS.explanation_open) for p in rl["prompt"])
    assert rl["solution"] == digits["solution"] and rl["question"] == digits["question"]
    head = chat(
        tok,
        [
            {"role": "system", "content": teacher_system_prompt(TAGS)},
            {"role": "user", "content": digits[0]["question"]},
        ],
        True,
    )
    assert (
        rl[0]["prompt"]
        == f"{head}{TAGS.solution_open}{digits[0]['solution']}{TAGS.solution_close}\n\n{TAGS.explanation_open}"
    )
    assert teacher_rl_view(digits, tok, TAGS, system="")[0]["prompt"].startswith("<|im_start|>user\n")
    assert (
        "<|im_start|>system\nBe brief.<|im_end|>"
        in teacher_rl_view(digits, tok, TAGS, system="Be brief.")[0]["prompt"]
    )


def test_teacher_sft_view_is_the_full_chat(digits):
    tok = char_tokenizer()
    sft = teacher_sft_view(digits, tok, TAGS)
    row = digits[0]
    assistant = (
        f"{TAGS.solution_open}{row['solution']}{TAGS.solution_close}\n\n"
        f"{TAGS.explanation_open}{row['reasoning_trace']}{TAGS.explanation_close}"
    )
    messages = [
        {"role": "system", "content": teacher_system_prompt(TAGS)},
        {"role": "user", "content": row["question"]},
    ]
    assert sft[0]["prompt"] == chat(tok, messages, True)
    assert sft[0]["prompt"] + sft[0]["completion"] == chat(
        tok, [*messages, {"role": "assistant", "content": assistant}]
    )
    assert sft[0]["completion"].startswith(TAGS.solution_open)


def test_student_sft_view_is_the_full_chat(digits):
    tok = char_tokenizer()
    ds = digits.add_column("explanation", ["mine"] * len(digits))
    st = student_sft_view(ds, tok, TAGS, explanation_column="explanation")
    row = ds[0]
    assistant = f"{TAGS.think_open}mine{TAGS.think_close}\n\n{TAGS.solution_open}{row['solution']}{TAGS.solution_close}"
    messages = [
        {"role": "system", "content": student_system_prompt(TAGS)},
        {"role": "user", "content": row["question"]},
    ]
    assert st[0]["prompt"] + st[0]["completion"] == chat(
        tok, [*messages, {"role": "assistant", "content": assistant}]
    )
    default = student_sft_view(digits, tok, TAGS, system="")
    assert default[0]["prompt"] == chat(tok, [{"role": "user", "content": row["question"]}], True)
    assert default[0]["completion"].startswith(TAGS.think_open + row["reasoning_trace"] + TAGS.think_close)
    with pytest.raises(DataError, match="missing column 'explanation'"):
        student_sft_view(digits, tok, TAGS, explanation_column="explanation")


def test_views_refuse_a_bad_explanation_with_its_row():
    tok = char_tokenizer()
    ds = Dataset.from_list(
        [
            {"question": "q", "solution": "s", "reasoning_trace": "t", "explanation": "e"},
            {"question": "q", "solution": "s", "reasoning_trace": "", "explanation": None},
        ]
    )
    with pytest.raises(DataError, match="row 1: reasoning_trace is empty"):
        teacher_sft_view(ds, tok, TAGS)
    with pytest.raises(DataError, match=r"row 1: explanation is missing \(null\)"):
        student_sft_view(ds, tok, TAGS, explanation_column="explanation")
    with pytest.raises(DataError, match="needs a reasoning_trace column"):
        teacher_sft_view(ds.remove_columns("reasoning_trace"), tok, TAGS)


@pytest.mark.parametrize("tag_format", ["bespoke", "r1"])
def test_already_tagged_solution_is_not_double_tagged(tag_format):
    tok, tags = char_tokenizer(), get_tags(tag_format)
    tagged = f"{tags.solution_open}5{tags.solution_close}"
    ds = Dataset.from_list([{"question": "q", "solution": tagged, "reasoning_trace": "t"}])
    one = f"{tags.solution_open}5{tags.solution_close}"
    assert teacher_rl_view(ds, tok, tags)[0]["prompt"].count(tags.solution_open) == 1
    assert one in teacher_rl_view(ds, tok, tags)[0]["prompt"]
    assert teacher_sft_view(ds, tok, tags)[0]["completion"].count(tags.solution_open) == 1
    student = student_sft_view(ds, tok, tags)[0]["completion"]
    assert student.count(tags.solution_open) == 1 and one in student


# --------------------------------------------------------------------------- rlt data preview


def test_preview_digits_with_no_other_argument(capsys):
    assert cli(["data", "preview", "--task", "digits"]) == 0
    out = capsys.readouterr().out
    for title in ("teacher RL prompt (", "teacher SFT completion (", "student example ("):
        assert out.count(title) == 2
    assert "tokens)" in out and TAGS.explanation_open in out and TAGS.think_open in out
    assert "2 rows shown from task 'digits'" in out
    assert cli(["data", "preview"]) == 0  # no source at all: digits
    assert "rows shown from task 'digits'" in capsys.readouterr().out


def test_preview_of_a_file_without_trace_and_with_markup(tmp_path, capsys):
    path = rows_file(tmp_path, [{"q": "what is [bold]x[/bold]?", "a": "7"}])
    argv = ["data", "preview", "--dataset_name", path, "--question_column", "q", "--solution_column", "a"]
    assert cli([*argv, "--tag_format", "r1", "--system_prompt", "", "--num_examples", "5"]) == 0
    out = capsys.readouterr().out
    assert "what is [bold]x[/bold]?" in out  # shown verbatim, not read as rich markup
    assert "<solution>7</solution>" in out and "no reasoning trace in this row" in out
    assert "1 rows shown" in out


def test_preview_with_a_saved_tokenizer(tmp_path, capsys):
    from rlt.models import save_tokenizer

    save_tokenizer(char_tokenizer(), tmp_path / "tok")
    assert cli(["data", "preview", "--model_name_or_path", str(tmp_path / "tok"), "--num_examples", "1"]) == 0
    assert "1 rows shown" in capsys.readouterr().out


def test_preview_help_and_errors(capsys):
    assert cli(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert "preview" in out and "rlt data preview --task digits" in out
    assert cli(["data", "preview", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--question_column" in out and "--num_examples" in out and "digits task is used" in out
    assert cli(["data", "show"]) == 2
    assert "unknown subcommand 'show'" in capsys.readouterr().err
    assert cli(["data", "preview", "--dataset_name", "/nonexistent/x.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli(["data", "preview", "--task", "digits", "--on_bad_rows", "skip"]) == 2
    assert "on_bad_rows" in capsys.readouterr().err


def test_student_view_allow_empty_keeps_empty_and_whitespace_explanations():
    # a teacher can write nothing but a control character; the demo distils its traces as they are
    from datasets import Dataset

    from rlt.formats import get_tags
    from rlt.models import char_tokenizer

    ds = Dataset.from_list([{"question": "q", "solution": "1", "explanation": e} for e in ("", "\u000b", " x")])
    tok, tags = char_tokenizer(), get_tags("bespoke")
    out = student_sft_view(ds, tok, tags, "explanation", system="", allow_empty=True)
    thoughts = [c.split(tags.think_open)[1].split(tags.think_close)[0] for c in out["completion"]]
    assert thoughts == ["", "\u000b", " x"]
    with pytest.raises(DataError, match="row 0: explanation is empty"):
        student_sft_view(ds.select([1, 2]), tok, tags, "explanation", system="")  # whitespace only
