"""Smoke runs of the GPU benchmarks in their CPU ``--tiny`` mode: they run and print their ratios.

The scripts run in subprocesses, as a user runs them (each puts ``benchmarks/`` on its own
path). Their numbers say nothing about GPUs; these tests only check that the whole path works
and that the printed table carries the ratio and target lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    """Run a benchmark script; its stdout (fails the test with its stderr on a non-zero exit)."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_reward_gpu_tiny_on_cpu() -> None:
    out = run("reward_gpu.py", "--device", "cpu", "--tiny", "--dtype", "fp32", "--repeats", "1")
    assert "vocab 151936" in out  # the real Qwen2.5-1.5B vocabulary, from the committed config
    ratio_lines = [line for line in out.splitlines() if line.strip().startswith("T=")]
    assert len(ratio_lines) == 2  # lengths 64 and 128, batch size 1
    for line in ratio_lines:
        assert "speed vs reference" in line and "memory vs reference" in line
        assert "reward / bare forward" in line
        diff = float(re.search(r"max\|Δr\| (\S+)", line).group(1))
        assert diff < 1e-5  # in fp32 the reward agrees with the naive reference
    for target in (">= 3x reference speed", "<= 1/4 reference memory", "<= 1.2x bare forward"):
        assert re.search(re.escape(target) + r".*(met|NOT met)$", out, re.MULTILINE), target
    assert "says nothing about the GPU targets" in out


def test_train_step_gpu_tiny_on_cpu() -> None:
    # One step (no warm-up) keeps the smoke run short; the phases are printed all the same.
    out = run("train_step_gpu.py", "--device", "cpu", "--tiny", "--steps", "1")
    for phase in ("generation", "reward", "student forward", "teacher log-probs", "policy update", "step"):
        assert re.search(rf"^\s+{re.escape(phase)}.* s", out, re.MULTILINE), phase
    share = re.search(r"target: reward <= 20% of the step: ([\d.]+)%\s+(met|NOT met)", out)
    assert share is not None and 0 < float(share.group(1)) < 100
