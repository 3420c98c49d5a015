"""Smoke runs of the GPU benchmarks in their CPU `--tiny` mode: they run and print their ratios."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_reward_gpu_tiny_on_cpu():
    out = run("reward_gpu.py", "--device", "cpu", "--tiny", "--dtype", "fp32", "--repeats", "1")
    assert "vocab 151936" in out and "speedup" in out
    assert "target <= 1.2x bare forward" in out
    diffs = [
        float(line.split("|")[-1].split()[0])
        for line in out.splitlines()
        if line.strip().startswith(("128", "256"))
    ]
    assert len(diffs) == 2 and max(diffs) < 1e-5  # the reward agrees with the naive reference


@pytest.mark.slow
def test_train_step_gpu_tiny_on_cpu():
    out = run("train_step_gpu.py", "--device", "cpu", "--tiny")
    for phase in ("generation", "reward", "policy update", "target: reward <= 20% of the step"):
        assert phase in out
