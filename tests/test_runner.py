"""The one runner (rlt.runner) under collect, score, eval and eval --harness: seeds, devices, the lock,
and each stage for real under `accelerate launch` with 2 CPU processes: killed, then relaunched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from launching import alone, env, launch, run, workers

from rlt.cli import main as cli
from rlt.errors import ConfigError
from rlt.jsonl import read_records
from rlt.runner import (
    Job,
    acquire_lock,
    item_seeds,
    lock_path,
    partial_samples,
    process_device,
    release_lock,
    this_process_device,
)
from rlt.sharding import Shard, shard_file, shard_files

# --------------------------------------------------------------------------- seeds


def test_item_seeds_keep_collects_values_and_never_collide():
    # Questions with their data set's own ids (hashes, as hub rows often carry), 4 traces each.
    keys = [f"{hashlib.sha1(str(q).encode()).hexdigest()[:12]}-{k}" for q in range(50_000) for k in range(4)]
    raw = [(3 * 1_000_003 + zlib.crc32(k.encode())) % 2**31 for k in keys]  # collect's rule until now
    assert len(set(raw)) < len(raw)  # the rule alone collides at this size: the test is not vacuous
    seeds = item_seeds(3, keys)
    assert len(set(seeds)) == len(keys) and all(0 <= s < 2**31 for s in seeds)
    moved = sum(a != b for a, b in zip(seeds, raw))
    assert 0 < moved == len(raw) - len(set(raw))  # only the later key of each collision moves
    assert item_seeds(3, keys[:10]) == raw[:10]  # traces written before resume with the same draws
    assert item_seeds(4, keys[:10]) != raw[:10]


# --------------------------------------------------------------------------- devices


def test_each_process_gets_its_own_accelerator_or_the_cpu():
    assert process_device(0, None, 0) == "cpu"
    assert [process_device(i, "cuda", 4) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert process_device(1, "xpu", 2) == "xpu:1"
    with pytest.raises(ConfigError, match="local process 2 has no cuda device of its own"):
        process_device(2, "cuda", 2)
    assert this_process_device(Shard()) == "cpu"  # this machine has no accelerator


# --------------------------------------------------------------------------- the lock


def test_lock_names_its_holder_and_dead_or_torn_locks_are_taken_over(tmp_path, caplog):
    out = tmp_path / "t.jsonl"
    mine = acquire_lock(out, "rlt collect")
    with pytest.raises(ConfigError) as err:
        acquire_lock(out, "rlt collect")
    msg = str(err.value)
    assert (
        "\n" not in msg
        and f"host {socket.gethostname()}, pid {os.getpid()}, started {mine['started']}" in msg
    )
    release_lock(out, mine)
    assert not lock_path(out).exists()
    # Dead: a pid that ran and ended; reused: a live pid whose start time is another process's.
    dead = _ended_pid()
    for holder in ({**mine, "pid": dead}, {**mine, "ticks": "1"}, None):
        lock_path(out).write_text("" if holder is None else json.dumps(holder))
        caplog.clear()
        taken = acquire_lock(out, "rlt score")
        assert [r.message for r in caplog.records if "took over the lock" in r.message] != []
        release_lock(out, taken)
    lock_path(out).write_text(json.dumps({**mine, "host": "elsewhere-node-7"}))
    with pytest.raises(
        ConfigError, match=f"on host elsewhere-node-7.*remove {re.escape(str(lock_path(out)))}"
    ):
        acquire_lock(out, "rlt collect")


def _ended_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_job_releases_its_lock_even_when_its_work_fails(tmp_path):
    out = tmp_path / "t.jsonl"

    def work(batch):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), Job("collect", out, {"a": 1}, shard=Shard()) as job:
        job.run([1, 2], ["a", "b"], 1, work)
    assert not lock_path(out).exists()


def test_a_record_under_another_key_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="records of other keys"), Job("x", tmp_path / "o.jsonl") as job:
        job.run([1], ["a"], 1, lambda batch: [{"id": "b"}])


def _collect_argv(model: str, out: Path, size: int = 24) -> list[str]:
    return ["collect", "--teacher", model, "--task", "digits", "--task_size", str(size), "--batch_size", "1",
            "--max_new_tokens", "24", "--out", str(out)]  # fmt: skip


def _wait_for(proc: subprocess.Popen, ready, what: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before {what}: the test would prove nothing"


@pytest.mark.slow
def test_a_second_launch_is_refused_and_a_killed_jobs_lock_taken_over(tiny_model_dir, tmp_path):
    ref, out = tmp_path / "ref.jsonl", tmp_path / "t.jsonl"
    assert cli(_collect_argv(tiny_model_dir, ref)) == 0
    first = subprocess.Popen(alone(*_collect_argv(tiny_model_dir, out)), stderr=subprocess.DEVNULL, env=env())
    _wait_for(first, lambda: len(read_records(out)) >= 1, "the second launch")
    first.send_signal(signal.SIGSTOP)  # alive but paused: it cannot finish before the second launch looks
    second = subprocess.run(
        alone(*_collect_argv(tiny_model_dir, out)), capture_output=True, text=True, env=env()
    )
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()[-1:]
    assert line.startswith(
        f"rlt collect: error: {out}: rlt collect on host {socket.gethostname()}, pid {first.pid}, started "
    )
    # A 2-process launch is refused as a whole too (every process stops, none waits at a barrier).
    refused = subprocess.run(
        launch(*_collect_argv(tiny_model_dir, out)), capture_output=True, text=True, env=env()
    )
    assert refused.returncode != 0 and f"pid {first.pid}" in refused.stderr
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert lock_path(out).exists()  # a killed job cleans nothing up
    err = run(alone(*_collect_argv(tiny_model_dir, out)))
    assert err.count("took over the lock of a job that no longer runs") == 1 and f"pid {first.pid}" in err
    assert read_records(out) == read_records(ref) and not lock_path(out).exists()


# --------------------------------------------------------------------------- the four stages, killed and relaunched

SUMMARY = {"collect": "collect: 24 traces in", "score": "score: 40 rows in", "eval": "eval digits: accuracy",
           "eval --harness": "eval math500 (skythought): accuracy"}  # fmt: skip
MATH = [{"problem": f"What is {i} + {i}?", "solution": "s", "answer": str(2 * i)} for i in range(12)]


def _stages(model: str, student: str, tmp: Path) -> dict[str, tuple]:
    """Per stage: ``argv(root)``, its record file under ``root``, its log line's name and noun,
    the files that are its result, and how many records it writes."""
    traces = tmp / "in.jsonl"
    rows = [{"id": i, "question": f"start {i % 10}; +3 (mod 10)", "solution": str((i + 3) % 10),
             "explanation": f"{i % 10}+3={(i + 3) % 10}; " * 20} for i in range(40)]  # fmt: skip
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    math = tmp / "math500.jsonl"
    math.write_text("".join(json.dumps(r) + "\n" for r in MATH))
    return {
        "collect": (lambda root: _collect_argv(model, root / "t.jsonl"), lambda root: root / "t.jsonl",
                    "collect", "traces", ["t.jsonl"], 24),
        "score": (lambda root: ["score", "--student", student, "--teacher", model, "--input", str(traces),
                                "--batch_size", "1", "--device", "cpu", "--output", str(root / "s.jsonl")],
                  lambda root: root / "s.jsonl", "score", "rows", ["s.jsonl"], 40),
        "eval": (lambda root: ["eval", "--model", model, "--task", "digits", "--limit", "12", "--num_samples", "2",
                               "--k", "1", "2", "--max_new_tokens", "24", "--batch_size", "1", "--out", str(root / "ev")],
                 lambda root: partial_samples(root / "ev"), "eval digits", "samples",
                 ["ev/results.json", "ev/results.md", "ev/samples.jsonl"], 24),
        "eval --harness": (lambda root: ["eval", "--harness", "skythought", "--model", model, "--task", "math500",
                                         "--dataset_name", str(math), "--num_samples", "2", "--temperature", "0.6",
                                         "--max_new_tokens", "24", "--batch_size", "1", "--backend", "transformers",
                                         "--math_timeout", "60", "--out", str(root / "hv")],
                           lambda root: partial_samples(root / "hv"), "eval math500", "samples",
                           ["hv/results.json", "hv/results.md", "hv/samples.jsonl"], 24),
    }  # fmt: skip


def _result(root: Path, files: list[str]) -> dict[str, str]:
    return {name: (root / name).read_text() for name in files}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["collect", "score", "eval", "eval --harness"])
def test_sigkill_of_one_process_then_relaunch_loses_and_repeats_nothing(
    stage, tiny_model_dir, tiny_student_dir, tmp_path
):
    argv, records, name, noun, files, total = _stages(tiny_model_dir, tiny_student_dir, tmp_path)[stage]
    assert cli(argv(tmp_path / "ref")) == 0  # one process, in this one
    ref = _result(tmp_path / "ref", files)
    root = tmp_path / "run"
    proc = subprocess.Popen(
        launch(*argv(root)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()
    )
    victim = shard_file(records(root), Shard(1, 2))
    _wait_for(proc, lambda: len(read_records(victim)) >= 2, "the kill")
    ranks = workers(proc.pid)
    assert 1 in ranks
    os.kill(ranks[1], signal.SIGKILL)  # one process, no cleanup; torchrun then stops the other
    assert proc.wait(timeout=120) != 0
    done = sum(len(read_records(p)) for p in shard_files(records(root)))
    assert 0 < done < total and not any((root / f).exists() for f in files[-1:])
    with open(victim, "ab") as f:
        f.write(b'{"id": "23-0", "quest')  # as if the kill had landed mid-line
    shutil.copytree(root, tmp_path / "alone")  # the same state, relaunched below as one process
    err = run(launch(*argv(root)))
    assert _result(root, files) == ref  # 2 processes write what one wrote: every record once, in order
    found = re.findall(rf"{name}: shard [12]/2 wrote (\d+) {noun} \((\d+) already done\)", err)
    assert len(found) == 2
    assert sum(int(w) for w, _ in found) == total - done and sum(int(s) for _, s in found) == done
    assert not records(root).exists() or stage in ("collect", "score")  # eval's partial samples are gone
    assert err.count(SUMMARY[stage]) == 1  # the summary once, by the main process
    assert cli(argv(tmp_path / "alone")) == 0  # another process count resumes the same state
    assert _result(tmp_path / "alone", files) == ref


@pytest.mark.slow
def test_single_process_eval_resumes_after_a_sigkill(tiny_model_dir, tiny_student_dir, tmp_path):
    argv, records, name, noun, files, total = _stages(tiny_model_dir, tiny_student_dir, tmp_path)["eval"]
    assert cli(argv(tmp_path / "ref")) == 0
    root = tmp_path / "run"
    proc = subprocess.Popen(
        alone(*argv(root)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()
    )
    _wait_for(proc, lambda: len(read_records(records(root))) >= 2, "the kill")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_records(records(root)))
    assert 0 < done < total and not (root / "ev" / "results.json").exists()
    err = run(alone(*argv(root)))
    assert f"eval digits: wrote {total - done} samples ({done} already done)" in err
    assert _result(root, files) == _result(tmp_path / "ref", files)
    assert not records(root).exists()  # finished: the next eval in this directory starts afresh
