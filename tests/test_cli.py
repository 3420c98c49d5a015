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
    "warmup": CPU,
    "distill": CPU,
    "train": CPU,
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
