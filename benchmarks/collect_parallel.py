"""`rlt collect` on 2 processes against 1, measured side by side in one run (CPU, tiny model).

Runs the real command lines: ``python -m rlt.cli collect`` for one process and
``accelerate launch --multi_gpu --num_processes 2 -m rlt.cli collect`` for two (torchrun,
gloo; on a CPU machine accelerate's ``--multi_gpu`` is what starts several processes),
one torch thread per process, alternating the two so that machine noise hits both. Prints
the wall time of each, the startup alone (a 1-question run: imports, model load, process
group) and the speed-up ratios, whole and without the startup. ``--threads`` also times
one process with 2 threads, the other way to use 2 cores.

On a 2-core machine the ideal is 2x; the startup, which does not shrink, and a machine
shared with other work keep it below that. On GPUs each process drives its own device,
so the ideal is the number of processes.

    python benchmarks/collect_parallel.py                # ~3 minutes on 2 cores
    python benchmarks/collect_parallel.py --quick        # a smoke run
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(
    processes: int, model: str, out: Path, questions: int, max_new_tokens: int, batch_size: int
) -> list[str]:
    """The `rlt collect` command line for ``processes`` processes."""
    collect = ["collect", "--teacher", model, "--task", "digits", "--task_size", str(questions),
               "--batch_size", str(batch_size), "--max_new_tokens", str(max_new_tokens), "--out", str(out)]  # fmt: skip
    if processes == 1:
        return [sys.executable, "-m", "rlt.cli", *collect]
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
            "-m", "rlt.cli", *collect]  # fmt: skip


def timed_run(argv: list[str], threads: int) -> float:
    """Wall seconds of ``argv`` with ``threads`` torch threads per process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", default="small", help="tiny model size (rlt tiny-model --size)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 questions, 8 tokens, 1 repeat")
    parser.add_argument(
        "--threads", action="store_true", help="also time 1 process with 2 threads (slow on a loaded machine)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.max_new_tokens, args.repeats = 8, 8, 1
    from rlt.models import save_tiny_model

    load_before = os.getloadavg()[0]  # a shared machine: the reader should know how shared

    with tempfile.TemporaryDirectory() as tmp:
        model = str(save_tiny_model(Path(tmp) / "model", size=args.size, seed=0))
        variants = [("1 process", 1, 1), ("2 processes", 2, 1)] + [
            ("1 process, 2 threads", 1, 2)
        ] * args.threads
        runs: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        startup: dict[str, list[float]] = {"1 process": [], "2 processes": []}
        for r in range(args.repeats):  # alternate, so that noise hits every variant
            for name, procs, threads in variants:
                out = Path(tmp) / f"{r}-{procs}-{threads}.jsonl"
                runs[name].append(
                    timed_run(
                        command(procs, model, out, args.questions, args.max_new_tokens, args.batch_size),
                        threads,
                    )
                )
            for name, procs in (("1 process", 1), ("2 processes", 2)):
                out = Path(tmp) / f"startup-{r}-{procs}.jsonl"
                startup[name].append(timed_run(command(procs, model, out, 1, 1, 1), 1))
    med = {k: statistics.median(v) for k, v in runs.items()}
    base = {k: statistics.median(v) for k, v in startup.items()}
    print(f"rlt collect: {args.questions} questions, {args.max_new_tokens} new tokens, batch {args.batch_size}, "
          f"tiny model '{args.size}', {os.cpu_count()} CPUs, median of {args.repeats}; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    for name, seconds in med.items():
        print(f"  {name:<22} {seconds:7.2f} s   (runs: {', '.join(f'{s:.2f}' for s in runs[name])})")
    for name, seconds in base.items():
        print(f"  startup, {name:<13} {seconds:7.2f} s   (a 1-question run)")
    whole = med["1 process"] / med["2 processes"]
    work = (med["1 process"] - base["1 process"]) / max(med["2 processes"] - base["2 processes"], 1e-9)
    print(
        f"speed-up of 2 processes over 1: {whole:.2f}x whole, {work:.2f}x without the startup (2 cores: 2x at best)"
    )
    if args.threads:
        print(
            f"speed-up of 1 process with 2 threads over 1 thread: {med['1 process'] / med['1 process, 2 threads']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
