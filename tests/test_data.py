"""rlt.data: every loader path, column mapping, validation errors, the three views, `rlt data preview`."""

import dataclasses
import json

import pandas as pd
import pytest
from datasets import Dataset

from rlt.cli import main as cli
from rlt.data import (
    VIEWS,
    DataArguments,
    load_rows,
    sharegpt_fields,
    student_sft_view,
    teacher_rl_view,
    teacher_sft_view,
)
from rlt.data import main as data_main
from rlt.errors import DataError
from rlt.formats import (
    STRATOS_SYSTEM_PROMPT,
    STRATOS_TEACHER_PROMPT,
    get_tags,
    student_sft_example,
    student_system_prompt,
    teacher_rl_prompt,
    teacher_sft_example,
    teacher_system_prompt,
)
from rlt.loading import load_tokenizer
from rlt.models import char_tokenizer

ROWS = [
    {"problem": "start 1; +2 (mod 10)", "answer": "3", "trace": "1+2=3", "source": "a"},
    {"problem": "start 4; *2 (mod 10)", "answer": "8", "trace": "4*2=8", "source": "b"},
]
MAP = {"question_column": "problem", "solution_column": "answer", "reasoning_trace_column": "trace"}
TAGS = get_tags("bespoke")  # the stratos chat format: "\n\n" padding inside every tag
COMPACT = get_tags("bespoke", "compact")


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
    assert ds[0]["reasoning_trace"] == "\n\n1+2=3\n\n" and ds[0]["solution"] == "\n\n3\n\n"  # padding kept
    assert "conversations" not in ds.column_names and ds[0]["system"] == "sys"
    openai_style = [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]
    assert sharegpt_fields(openai_style, TAGS)["solution"] == "\n\n3\n\n"


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
    with pytest.raises(DataError, match=r"broken.jsonl: line 1 is not valid JSON"):
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


@pytest.mark.parametrize("fmt", [TAGS, COMPACT], ids=["stratos", "compact"])
def test_teacher_rl_view(digits, fmt):
    tok, pad = char_tokenizer(), fmt.padding
    rl = teacher_rl_view(digits, tok, fmt)
    assert all(p.endswith(fmt.explanation_open + pad) for p in rl["prompt"])
    assert rl["solution"] == digits["solution"] and rl["question"] == digits["question"]
    head = chat(
        tok,
        [
            {"role": "system", "content": teacher_system_prompt(fmt)},
            {"role": "user", "content": digits[0]["question"]},
        ],
        True,
    )
    sol = digits[0]["solution"]
    assert rl[0]["prompt"] == (
        f"{head}{fmt.solution_open}{pad}{sol}{pad}{fmt.solution_close}\n\n{fmt.explanation_open}{pad}"
    )
    assert teacher_rl_view(digits, tok, fmt, system="")[0]["prompt"].startswith("<|im_start|>user\n")
    assert (
        "<|im_start|>system\nBe brief.<|im_end|>"
        in teacher_rl_view(digits, tok, fmt, system="Be brief.")[0]["prompt"]
    )


@pytest.mark.parametrize("fmt", [TAGS, COMPACT], ids=["stratos", "compact"])
def test_teacher_sft_view_is_the_full_chat(digits, fmt):
    tok, pad = char_tokenizer(), fmt.padding
    sft = teacher_sft_view(digits, tok, fmt)
    row = digits[0]
    solution = f"{fmt.solution_open}{pad}{row['solution']}{pad}{fmt.solution_close}"
    prefix = f"{solution}\n\n{fmt.explanation_open}{pad}"
    assistant = f"{prefix}{row['reasoning_trace']}{pad}{fmt.explanation_close}"
    messages = [
        {"role": "system", "content": teacher_system_prompt(fmt)},
        {"role": "user", "content": row["question"]},
    ]
    # The warm-up's prompt is the RL prompt; its loss covers the rest of the explanation.
    assert sft[0]["prompt"] == chat(tok, messages, True) + prefix
    assert sft[0]["prompt"] == teacher_rl_view(digits, tok, fmt)[0]["prompt"]
    assert sft[0]["prompt"] + sft[0]["completion"] == chat(
        tok, [*messages, {"role": "assistant", "content": assistant}]
    )
    assert sft[0]["completion"] == f"{row['reasoning_trace']}{pad}{fmt.explanation_close}<|im_end|>\n"


@pytest.mark.parametrize("fmt", [TAGS, COMPACT], ids=["stratos", "compact"])
def test_student_sft_view_is_the_full_chat(digits, fmt):
    tok, pad = char_tokenizer(), fmt.padding
    ds = digits.add_column("explanation", ["mine"] * len(digits))
    st = student_sft_view(ds, tok, fmt, explanation_column="explanation")
    row = ds[0]
    assistant = (
        f"{fmt.think_open}{pad}mine{pad}{fmt.think_close}\n\n"
        f"{fmt.solution_open}{pad}{row['solution']}{pad}{fmt.solution_close}"
    )
    messages = [
        {"role": "system", "content": student_system_prompt(fmt)},
        {"role": "user", "content": row["question"]},
    ]
    assert st[0]["prompt"] + st[0]["completion"] == chat(
        tok, [*messages, {"role": "assistant", "content": assistant}]
    )
    default = student_sft_view(digits, tok, fmt, system="")
    assert default[0]["prompt"] == chat(tok, [{"role": "user", "content": row["question"]}], True)
    thought = f"{fmt.think_open}{pad}{row['reasoning_trace']}{pad}{fmt.think_close}"
    assert default[0]["completion"].startswith(thought)
    with pytest.raises(DataError, match="missing column 'explanation'"):
        student_sft_view(digits, tok, fmt, explanation_column="explanation")


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


def _assistant(text):
    """The assistant turn of a rendered chat (the stratos system prompts name the solution tags too)."""
    return text.rsplit("<|im_start|>assistant\n", 1)[1]


@pytest.mark.parametrize("chat_format", ["stratos", "compact"])
@pytest.mark.parametrize("tag_format", ["bespoke", "r1"])
def test_already_tagged_solution_is_not_double_tagged(tag_format, chat_format):
    tok, tags = char_tokenizer(), get_tags(tag_format, chat_format)
    tagged = f"{tags.solution_open}5{tags.solution_close}"
    ds = Dataset.from_list([{"question": "q", "solution": tagged, "reasoning_trace": "t"}])
    one = f"{tags.solution_open}{tags.padding}5{tags.padding}{tags.solution_close}"
    rl = _assistant(teacher_rl_view(ds, tok, tags)[0]["prompt"])
    assert rl.count(tags.solution_open) == 1 and one in rl
    sft = teacher_sft_view(ds, tok, tags)[0]
    assert _assistant(sft["prompt"] + sft["completion"]).count(tags.solution_open) == 1
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
    flags = ["--tag_format", "r1", "--chat_format", "compact", "--num_examples", "5"]
    flags += ["--teacher_system_prompt", ""]
    assert cli([*argv, *flags]) == 0
    out = capsys.readouterr().out
    assert "what is [bold]x[/bold]?" in out  # shown verbatim, not read as rich markup
    assert "<|im_start|>system" not in out  # teacher_system_prompt '' = no system turn
    assert "<solution>7</solution>" in out and "no reasoning trace in this row" in out
    assert "1 rows shown" in out


def test_preview_with_a_saved_tokenizer(tmp_path, capsys):
    from rlt.loading import save_tokenizer

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


@pytest.mark.parametrize(
    ("chat_format", "expected"),
    [("compact", ["", "\u000b", " x"]), ("stratos", ["", "\u000b", "\n\n x\n\n"])],
)
def test_student_view_allow_empty_keeps_empty_and_whitespace_explanations(chat_format, expected):
    # a teacher can write nothing but a control character; the demo distils its traces as they are
    explanations = ("", "\u000b", " x")
    ds = Dataset.from_list([{"question": "q", "solution": "1", "explanation": e} for e in explanations])
    tok, tags = char_tokenizer(), get_tags("bespoke", chat_format)
    out = student_sft_view(ds, tok, tags, "explanation", system="", allow_empty=True)
    thoughts = [c.split(tags.think_open)[1].split(tags.think_close)[0] for c in out["completion"]]
    assert thoughts == expected  # stratos pads a field, but a blank one stays blank
    with pytest.raises(DataError, match="row 0: explanation is empty"):
        student_sft_view(ds.select([1, 2]), tok, tags, "explanation", system="")  # whitespace only


def _json_lines(out):
    return [json.loads(line) for line in out.splitlines()]  # every stdout line is one JSON object


def _tokens(tok, text):
    return len(tok(text, add_special_tokens=False).input_ids)


def test_preview_json_is_what_the_formats_render(capsys):
    argv = "preview --task digits --num_examples 2 --json true --chat_format compact".split()
    assert data_main(argv) == 0
    records = _json_lines(capsys.readouterr().out)
    assert len(records) == 2
    tok, tags = char_tokenizer(), COMPACT
    rows = load_rows(DataArguments(task="digits", limit=2), need_trace=True)
    for i, (rec, row) in enumerate(zip(records, rows)):
        q, s, trace = row["question"], row["solution"], row["reasoning_trace"]
        sft = teacher_sft_example(tok, q, s, trace, tags)
        st = student_sft_example(tok, q, s, trace, tags)
        assert rec == {
            "row": i,
            "teacher_prompt": teacher_rl_prompt(tok, q, s, tags),
            "teacher_completion": sft["completion"],
            "student_prompt": st["prompt"],
            "student_completion": st["completion"],
            **{f"{v}_tokens": _tokens(tok, rec[v]) for v in VIEWS},
        }
        assert sft["prompt"] == rec["teacher_prompt"]  # the warm-up continues the RL prompt


def test_preview_json_system_prompts_and_rows_without_trace(tmp_path, capsys):
    rows = [
        {"question": "q0", "solution": "1", "reasoning_trace": "t0", "system": "Row system."},
        {"question": "q1", "solution": "2", "reasoning_trace": "", "system": "Row system."},
    ]
    path = rows_file(tmp_path, rows)
    base = ["preview", "--dataset_name", path, "--json", "true", "--chat_format", "compact"]

    def run(*flags):
        assert data_main([*base, *flags]) == 0
        return _json_lines(capsys.readouterr().out)

    first, second = run()
    assert "<|im_start|>system\nRow system.<|im_end|>" in first["student_prompt"]  # the row's system column
    assert first["teacher_prompt"].startswith(f"<|im_start|>system\n{teacher_system_prompt(COMPACT)}")
    assert second["teacher_prompt"].endswith(COMPACT.explanation_open) and second["teacher_prompt_tokens"] > 0
    for view in VIEWS[1:]:
        assert second[view] is None and second[f"{view}_tokens"] is None
    first, _ = run("--student_system_prompt", "Mine.", "--teacher_system_prompt", "")
    assert "<|im_start|>system\nMine.<|im_end|>" in first["student_prompt"]
    assert first["teacher_prompt"].startswith("<|im_start|>user\nq0")
    first, _ = run("--student_system_prompt", "")
    assert first["student_prompt"].startswith("<|im_start|>user\nq0")


STRATOS_REPLY = (
    "<|begin_of_thought|>\n\nOne and one make two.\n\n<|end_of_thought|>\n\n"
    "<|begin_of_solution|>\n\nThe answer is \\boxed{2}.\n\n<|end_of_solution|>"
)


def test_preview_json_qwen_tokenizer_stratos_data(tmp_path, capsys):
    from rlt.models import save_tiny_model

    model_dir = str(save_tiny_model(tmp_path / "qwen", size="nano", tokenizer="qwen2.5"))
    system = "Think step by step."
    question = "Return your final response within \\boxed{}. What is 1 + 1?"
    row = {
        "system": system,
        "conversations": [{"from": "user", "value": question}, {"from": "assistant", "value": STRATOS_REPLY}],
    }
    argv = ["preview", "--dataset_name", rows_file(tmp_path, [row]), "--model_name_or_path", model_dir]
    assert data_main([*argv, "--json", "true"]) == 0
    (rec,) = _json_lines(capsys.readouterr().out)
    turns = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
    assert rec["student_prompt"] == turns + "<|im_start|>assistant\n"  # the row's system column
    assert rec["student_completion"] == STRATOS_REPLY + "<|im_end|>\n"  # the data's padding, exactly
    assert rec["teacher_prompt"].startswith(f"<|im_start|>system\n{STRATOS_TEACHER_PROMPT}<|im_end|>")
    assert rec["teacher_prompt"].endswith(
        "<|im_start|>assistant\n<|begin_of_solution|>\n\nThe answer is \\boxed{2}.\n\n<|end_of_solution|>"
        "\n\n<|begin_of_explanation|>\n\n"
    )
    assert rec["teacher_completion"] == "One and one make two.\n\n<|end_of_explanation|><|im_end|>\n"
    tok = load_tokenizer(model_dir)
    for view in VIEWS:
        assert rec[f"{view}_tokens"] == _tokens(tok, rec[view]) > 0
    assert rec["student_completion_tokens"] < len(rec["student_completion"])  # BPE, not characters
    # The rich preview renders the same chats: the row's system prompt, not STRATOS_SYSTEM_PROMPT.
    assert data_main(argv) == 0
    out = capsys.readouterr().out
    assert system in out and STRATOS_SYSTEM_PROMPT[:40] not in out
    assert "chat format 'stratos'" in out
