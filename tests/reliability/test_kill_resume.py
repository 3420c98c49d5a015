"""SIGKILL mid-run, then re-run: nothing lost, nothing doubled (collect: tests/test_collect.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlt.cli import main as cli
from rlt.jsonl import read_records

ROOT = Path(__file__).resolve().parents[2]
Q, S = "start 7; +5; *3 (mod 10)", "6"


def kill_when(argv: list[str], ready, timeout: float = 120.0) -> None:
    """Start ``argv``, SIGKILL it (no cleanup handlers run) as soon as ``ready()`` holds."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the kill: the test would prove nothing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_during_score_then_rerun(tiny_model_dir, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # many single-row batches, so the run is still going when the first one is written
    rows = [
        {"id": f"r{i}", "question": Q, "solution": S, "explanation": "7+5=2; 2*3=6 " * 4} for i in range(120)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [
        "score",
        "--student",
        tiny_model_dir,
        "--input",
        str(src),
        "--output",
        str(out),
        "--batch_size",
        "1",
    ]
    kill_when([sys.executable, "-m", "rlt.cli", *argv], lambda: out.exists() and out.stat().st_size > 0)
    first = len(read_records(out))
    assert 0 < first < len(rows)
    with open(out, "ab") as f:  # as if the kill had landed mid-line
        f.write(b'{"id": "r119", "rew')
    assert cli([*argv, "--batch_size", "16"]) == 0  # batching does not change ids; faster
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # one record per id, none lost
    assert all(json.loads(line) for line in out.read_text().splitlines())


@pytest.mark.slow
def test_sigkill_during_train_then_resume(tiny_model_dir, tiny_student_dir, tmp_path):
    out = tmp_path / "rl"
    argv = [
        "train", "--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"),
        "--model_name_or_path", tiny_model_dir, "--student_model_name_or_path", tiny_student_dir,
        "--output_dir", str(out), "--task_size", "16", "--max_steps", "4", "--per_device_train_batch_size", "4",
        "--num_generations", "2", "--max_completion_length", "8", "--logging_steps", "1", "--report_to", "none",
        "--save_strategy", "steps", "--save_steps", "1",
    ]  # fmt: skip
    kill_when(
        [sys.executable, "-m", "rlt.cli", *argv],
        lambda: (out / "checkpoint-1" / "trainer_state.json").exists(),
    )
    assert not (out / "trainer_state.json").exists()  # killed before the final save
    # As if the kill had landed mid-save: a newer checkpoint folder with no trainer_state.json.
    # transformers alone would pick it (highest N) and fail to load it.
    partial = out / "checkpoint-99"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    assert cli([*argv, "--resume_from_checkpoint", "true"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4]
