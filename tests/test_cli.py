"""Every command answers an unknown field or an impossible setting with one line naming it."""

from __future__ import annotations

import pytest
import torch

from rlt.cli import COMMANDS
from rlt.cli import main as cli

# The fields each command requires before it looks at the others.
CPU = ["--use_cpu", "true", "--bf16", "false"]  # else the trainer configs refuse bf16 first
REQUIRED = {
    "data": ["preview"],
    "warmup": [*CPU, "--model_name_or_path", "unused"],
    "distill": [*CPU, "--model_name_or_path", "unused"],
    "train": [*CPU, "--model_name_or_path", "unused"],
    "tiny-model": ["--out", "unused"],
    "collect": ["--teacher", "unused", "--out", "unused.jsonl"],
    "eval": ["--model", "unused", "--task", "digits"],
    "score": ["--input", "unused.jsonl", "--output", "unused.jsonl", "--student", "unused"],
    "analyze": ["--traces", "unused.jsonl", "--outcomes", "unused.jsonl"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_field_is_one_line(command, capsys):
    assert cli([command, *REQUIRED.get(command, []), "--bogus", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"rlt {command}: error: unknown field(s) --bogus; `--help` lists the fields"
    assert not any("Traceback" in line for line in err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="bf16 is supported on this GPU")
@pytest.mark.parametrize("command", ["warmup", "distill", "train"])
def test_bf16_on_a_cpu_only_machine_names_the_fix(command, capsys):
    recipe = {"warmup": "teacher_warmup", "distill": "student_distill", "train": "teacher_rlt"}[command]
    argv = [command, "--config", f"recipes/tiny/{recipe}.yaml", "--use_cpu", "false", "--bf16", "true"]
    assert cli(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"rlt {command}: error: bf16:") and "--use_cpu true --bf16 false" in last


def _run(argv: list[str]) -> int:
    """``rlt.cli.main``'s exit status, argparse's own exits (``--help``, a required field) included."""
    try:
        return cli(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


# `rlt data` has subcommands; its fields are those of `rlt data preview`.
FIELDS_ARGV = {"data": ["preview"]}


def _parsed_types(monkeypatch) -> list[type]:
    """The dataclasses every TrlParser built from now on is given (the command's fields)."""
    import trl

    seen: list[type] = []
    init = trl.TrlParser.__init__

    def recording(self, dataclass_types=None, **kwargs):
        seen.extend(dataclass_types or [])
        init(self, dataclass_types, **kwargs)

    monkeypatch.setattr(trl.TrlParser, "__init__", recording)
    return seen


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_exits_0_and_lists_its_fields(command, capsys, monkeypatch):
    import dataclasses

    assert _run([command, "--help"]) == 0
    seen = _parsed_types(monkeypatch)
    assert _run([command, *FIELDS_ARGV.get(command, []), "--help"]) == 0
    out = capsys.readouterr().out
    assert seen, f"rlt {command} --help parsed no dataclasses"
    names = {f.name for t in seen for f in dataclasses.fields(t) if f.init}
    missing = sorted(n for n in names if f"--{n}" not in out)
    assert not missing, f"rlt {command} --help does not list {missing}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_texts_have_no_bare_percent(command, monkeypatch):
    """argparse %-formats every help text: a bare ``%`` crashes ``--help`` (``90 %-correct`` did)."""
    import dataclasses
    import re

    seen = _parsed_types(monkeypatch)
    _run([command, *FIELDS_ARGV.get(command, []), "--help"])
    for t in seen:
        for f in dataclasses.fields(t):
            text = str(f.metadata.get("help", ""))
            bare = re.sub(r"%%|%\(\w+\)[sd]", "", text)
            assert "%" not in bare, (
                f"{t.__name__}.{f.name}: bare % in its help ({text!r}); write %% or reword"
            )


# `rlt <command>` with nothing set: the first thing a user has to fix. `demo` needs nothing (it
# runs the whole demo), so it is not here; `data` with no subcommand lists its subcommands.
FIRST_ERROR = {
    "tiny-model": "rlt tiny-model: error: the following arguments are required: --out",
    "collect": "rlt collect: error: the following arguments are required: --teacher, --out",
    "eval": "rlt eval: error: the following arguments are required: --model, --task",
    "score": "rlt score: error: the following arguments are required: --student, --input, --output",
    "analyze": "rlt analyze: error: the following arguments are required: --traces, --outcomes",
    **{
        command: f"rlt {command}: error: model_name_or_path: required (a hub id or a local model "
        f"directory); no --config recipe and no model given: start from a recipe, e.g. --config {recipe}, "
        "or pass --model_name_or_path"
        for command, recipe in (
            ("warmup", "recipes/tiny/teacher_warmup.yaml"),
            ("distill", "recipes/tiny/student_distill.yaml"),
            ("train", "recipes/tiny/teacher_rlt.yaml"),
        )
    },
}


def test_every_command_but_demo_and_data_has_a_first_error():
    assert set(FIRST_ERROR) == set(COMMANDS) - {"demo", "data"}


@pytest.mark.parametrize("command", sorted(FIRST_ERROR))
def test_first_error_with_no_arguments(command, capsys):
    """The first line that is not argparse's usage is the error: no library warning before it."""
    assert _run([command]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    first = next(line for line in lines if not line.startswith(("usage:", " ")))
    assert first == FIRST_ERROR[command]
    assert not any("Warning" in line for line in lines)


def test_data_with_no_subcommand_lists_them(capsys):
    assert _run(["data"]) == 2
    assert "rlt data preview" in capsys.readouterr().out


def test_a_recipe_without_a_model_says_so(tmp_path, capsys):
    recipe = tmp_path / "no_model.yaml"
    recipe.write_text("task: digits\n")
    assert _run(["train", "--config", str(recipe)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last.startswith("rlt train: error: model_name_or_path: required")
        and "the recipe does not set" in last
    )


def test_a_recipe_model_path_that_is_not_built_yet_is_named(capsys):
    # recipes/tiny/teacher_rlt.yaml names runs/tiny/teacher_warmup: a local path, not a hub id
    assert _run(["train", "--config", "recipes/tiny/teacher_rlt.yaml"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last == "rlt train: error: model_name_or_path: model path 'runs/tiny/teacher_warmup' does not exist"
    )
