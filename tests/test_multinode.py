"""Two nodes on one machine: docs/pipeline.md's two-node and SLURM command lines, run as written.

Each "node" is its own `accelerate launch` with one process (``--num_machines 2
--num_processes 2``, ``--machine_rank`` 0 and 1, the main process at 127.0.0.1), as two
machines of one GPU each would run it; on a machine without GPUs `--multi_gpu` starts the
processes on gloo and the recipes' ``use_cpu`` keeps them on the CPU. The command templates
below are the documented lines with the hub-sized values as fields: what a user types on
each node, with 8 GPUs a node, is the same string with ``procs`` 16 (``gpus`` 8) and
``ip`` node 0's address.

- `rlt collect` (the two-node line): the merged output equals one process's, trace for
  trace.
- `rlt train` (the SLURM line, run by ``bash -c`` with the variables srun sets and a stub
  ``scontrol``): both ranks log the same rewards each step, and one model is written.

Only the command lines and their outputs are used, not rlt's internals.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# docs/pipeline.md, "Many GPUs and nodes": the same command on each node, machine_rank 0 and 1.
TWO_NODE = (
    "accelerate launch --multi_gpu --num_machines 2 --num_processes {procs} --machine_rank {rank} "
    "--main_process_ip {ip} --main_process_port {port} -m rlt.cli {command}"
)
# docs/pipeline.md: SLURM, one task per node (srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 8
# bash -c '...'); accelerate starts the node's processes, one per GPU ({gpus} = 8 there).
SLURM = (
    "accelerate launch --multi_gpu --num_machines $SLURM_NNODES "
    "--num_processes $((SLURM_NNODES * {gpus})) --machine_rank $SLURM_NODEID "
    "--main_process_ip $(scontrol show hostnames $SLURM_JOB_NODELIST | head -1) --main_process_port {port} "
    "-m rlt.cli {command}"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # accelerate of this environment
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "", "HF_HOME": str(tmp_path / "hf")}  # fmt: skip


def _two_nodes(lines: list[str], envs: list[dict[str, str]], timeout: int = 600) -> list[tuple[int, str]]:
    """Start the two node launchers at once; wait for both; (rc, output) of each."""
    procs = [
        subprocess.Popen(
            ["bash", "-c", line],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for line, env in zip(lines, envs)
    ]
    results = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            results.append((p.returncode, out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def test_two_node_collect_merges_what_one_process_writes(tiny_model_dir, tmp_path):
    from rlt.cli import main as cli
    from rlt.jsonl import read_records

    flags = ["--teacher", tiny_model_dir, "--task", "digits", "--task_size", "6", "--num_traces", "2",
             "--batch_size", "2", "--temperature", "1.0", "--max_new_tokens", "16", "--seed", "3",
             "--backend", "transformers"]  # fmt: skip
    out = tmp_path / "shared" / "traces.jsonl"  # one file system for both nodes, as the docs ask
    out.parent.mkdir()
    command = shlex.join(["collect", *flags, "--out", str(out)])
    port = _free_port()
    lines = [TWO_NODE.format(procs=2, rank=r, ip="127.0.0.1", port=port, command=command) for r in (0, 1)]
    env = _env(tmp_path)
    results = _two_nodes(lines, [env, env])
    for rank, (rc, output) in enumerate(results):
        assert rc == 0, f"node {rank}:\n{output[-4000:]}"
    # one job of two processes, not two jobs of one: each node ran its own shard of two
    # (docs/pipeline.md: "collect: shard 2/8 wrote ... traces")
    assert "shard 1/2" in results[0][1] and "shard 2/2" in results[1][1]
    assert cli(["collect", *flags, "--out", str(tmp_path / "one.jsonl")]) == 0
    two, one = read_records(out), read_records(tmp_path / "one.jsonl")
    assert len(one) == 12 and [r["id"] for r in two] == [r["id"] for r in one]
    assert two == one
    assert not list(out.parent.glob("*.shards"))  # merged: no shard left next to the output


def test_two_node_train_under_slurm_logs_one_reward_and_writes_one_model(
    tiny_model_dir, tiny_student_dir, tmp_path
):
    out = tmp_path / "shared" / "rl"
    command = shlex.join(["train", "--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"),
                          "--model_name_or_path", tiny_model_dir, "--student_model_name_or_path", tiny_student_dir,
                          "--output_dir", str(out), "--task_size", "16", "--max_steps", "2",
                          "--per_device_train_batch_size", "4", "--num_generations", "2",
                          "--max_completion_length", "12", "--logging_steps", "1", "--save_strategy", "no",
                          "--report_to", "none", "--rlt_per_rank_logs", "true"])  # fmt: skip
    line = SLURM.format(gpus=1, port=_free_port(), command=command)
    stub = tmp_path / "slurm_bin"  # `scontrol show hostnames LIST` of a one-machine "cluster"
    stub.mkdir()
    (stub / "scontrol").write_text("#!/usr/bin/env bash\necho 127.0.0.1\n")
    (stub / "scontrol").chmod(0o755)
    base = _env(tmp_path)
    base["PATH"] = f"{stub}{os.pathsep}{base['PATH']}"
    slurm = {"SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node[0-1]"}  # what srun sets, and SLURM_NODEID
    envs = [{**base, **slurm, "SLURM_NODEID": str(r)} for r in (0, 1)]
    results = _two_nodes([line, line], envs)
    for rank, (rc, output) in enumerate(results):
        assert rc == 0, f"node {rank}:\n{output[-4000:]}"
    logs = {}
    for rank in (0, 1):
        records = [json.loads(x) for x in (out / "rank_logs" / f"rank{rank}.jsonl").read_text().splitlines()]
        logs[rank] = [r for r in records if "loss" in r]
    assert [r["step"] for r in logs[0]] == [1, 2] == [r["step"] for r in logs[1]]
    for a, b in zip(logs[0], logs[1]):
        for key in ("reward", "rlt/reward", "rlt/kl_mean", "rlt/solution_logprob_mean", "loss"):
            assert a[key] == b[key], key
    # 2 processes x 4 completions a step; one model, written once, by the main process
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert [p.name for p in out.glob("*.safetensors")] == ["model.safetensors"]
    assert not list(out.glob("checkpoint-*"))


def test_the_documented_two_node_and_slurm_lines_are_the_tested_templates():
    """docs/pipeline.md's lines, continuation backslashes joined, are these templates at 8 GPUs a node."""
    import re

    text = re.sub(r"\s*\\\n\s*", " ", (ROOT / "docs" / "pipeline.md").read_text())
    command = "collect --teacher ... --out /shared/traces.jsonl"
    for rank in (0, 1):
        assert TWO_NODE.format(procs=16, rank=rank, ip="node0", port=29500, command=command) in text
    assert SLURM.format(gpus=8, port=29500, command=command) in text
