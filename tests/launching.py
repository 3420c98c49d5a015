"""Running `rlt` as real processes: 2 CPU processes under `accelerate launch` (torchrun, gloo), or one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*argv: str, processes: int = 2) -> list[str]:
    """`accelerate launch` of ``processes`` CPU processes running ``rlt ARGV``."""
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
            "-m", "rlt.cli", *argv]  # fmt: skip


def alone(*argv: str) -> list[str]:
    """``rlt ARGV`` as one process of its own (no launcher)."""
    return [sys.executable, "-m", "rlt.cli", *argv]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(argv: list[str]) -> str:
    """Run to the end; asserts success and returns stderr (rlt's log)."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def workers(launcher: int) -> dict[int, int]:
    """``{RANK: pid}`` of the launcher's worker processes (read from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        rank = next((int(e[5:]) for e in environ if e.startswith(b"RANK=")), None)
        if ppid == launcher and rank is not None:
            found[rank] = pid
    return found
