"""Data-parallel collect/score/eval (rlt.sharding): the share rule, the merge, the manifest, the
vLLM layout, and end to end under `accelerate launch` with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlt.cli import main as cli
from rlt.errors import ConfigError
from rlt.evaluate import merge_eval, sample_key, summarise
from rlt.jsonl import JsonlAppender, read_records
from rlt.sharding import (
    Shard,
    ShardProgress,
    check_manifest,
    engine_environment,
    gpu_layout,
    manifest_path,
    merge_shards,
    shard_batches,
    shard_file,
    shard_files,
    shards_dir,
)

# --------------------------------------------------------------------------- the share rule


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize(("n", "batch_size"), [(0, 3), (1, 3), (10, 3), (12, 4), (7, 1)])
def test_shards_deal_out_one_process_batches_each_once(n, batch_size, count):
    items = list(range(n))
    alone = shard_batches(items, batch_size, Shard())
    assert [b for _, b in alone] == [items[i : i + batch_size] for i in range(0, n, batch_size)]
    dealt = [shard_batches(items, batch_size, Shard(i, count)) for i in range(count)]
    # Every batch of one process, with its start, in exactly one shard: batch b in shard b % count.
    assert sorted(sum(dealt, [])) == alone
    for i, mine in enumerate(dealt):
        assert all((start // batch_size) % count == i for start, _ in mine)


def test_shard_batches_refuses_batch_size_zero():
    with pytest.raises(ConfigError, match="batch_size: must be >= 1, got 0"):
        shard_batches([1], 0, Shard())


# --------------------------------------------------------------------------- merge


def _write(path: Path, records: list[dict]) -> None:
    with JsonlAppender(path) as f:
        f.write(records)


def test_merge_orders_by_data_set_keeps_each_id_once_and_removes_shards(tmp_path):
    out = tmp_path / "t.jsonl"
    _write(out, [{"id": "old"}, {"id": "b"}])  # a one-process run before: "old" is not a row now
    _write(shard_file(out, Shard(0, 2)), [{"id": "a"}, {"id": "c"}])
    _write(shard_file(out, Shard(1, 2)), [{"id": "d"}, {"id": "b", "dup": True}])
    _write(shard_file(out, Shard(2, 3)), [{"id": "e"}])  # another process count's shard
    with open(shard_file(out, Shard(1, 2)), "ab") as f:
        f.write(b'{"id": "f", "half')  # killed mid-line: not a record
    assert merge_shards(out, ["a", "b", "c", "d", "e", "f"]) == 6
    assert read_records(out) == [{"id": k} for k in "abcde"] + [{"id": "old"}]
    assert not shards_dir(out).exists() and not (tmp_path / "t.jsonl.merging").exists()
    assert merge_shards(out, ["a"]) is None  # no shards: the output is already whole


def test_merge_eval_aggregates_pass_at_k_as_one_process(tmp_path):
    """Samples of 5 questions x 4, split by the share rule: the merged summary is one process's."""
    samples = [
        {"index": i, "sample": s, "correct": (i * 7 + s * 3) % 4 == 0, "status": "ok" if s else "no_answer"}
        for i in range(5)
        for s in range(4)
    ]
    whole = summarise("t", 5, 4, (1, 2, 4), samples)
    assert 0 < whole["pass_at_k"]["2"] < 1  # not vacuous
    samples_file = tmp_path / "ev" / "samples.jsonl"
    for i in range(2):
        mine = [smp for _, batch in shard_batches(samples, 3, Shard(i, 2)) for smp in batch]
        _write(shard_file(samples_file, Shard(i, 2)), mine[::-1])  # any order within a shard
    assert merge_eval("t", 5, 4, (1, 2, 4), samples_file) == whole
    assert json.loads((samples_file.parent / "results.json").read_text()) == whole
    assert [sample_key(r) for r in read_records(samples_file)] == [
        f"{i}-{s}" for i in range(5) for s in range(4)
    ]
    assert not shard_files(samples_file)


def test_merge_eval_refuses_missing_samples(tmp_path):
    samples_file = tmp_path / "samples.jsonl"
    _write(
        shard_file(samples_file, Shard(0, 2)), [{"index": 0, "sample": 0, "correct": True, "status": "ok"}]
    )
    with pytest.raises(Exception, match="1 of 2 samples are missing after the merge"):
        merge_eval("t", 2, 1, (1,), samples_file)


# --------------------------------------------------------------------------- manifest


def test_manifest_names_what_differs_and_is_written_by_the_main_process_only(tmp_path):
    out = tmp_path / "t.jsonl"
    check_manifest(out, {"seed": 0, "teacher": "a"}, Shard(1, 2))
    assert not manifest_path(out).exists()  # not the main process
    check_manifest(out, {"seed": 0, "teacher": "a"}, Shard(0, 2), write=False)
    assert not manifest_path(out).exists()  # compare only
    check_manifest(out, {"seed": 0, "teacher": "a"}, Shard(0, 2))
    check_manifest(out, {"seed": 0, "teacher": "a"}, Shard(1, 2))  # the same settings: fine
    with pytest.raises(ConfigError) as err:
        check_manifest(out, {"seed": 1, "teacher": "a", "top_p": 0.9}, Shard(1, 2))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{out}: was written with seed=0, top_p=None; this run has seed=1, top_p=0.9")


def test_collect_relaunch_with_another_seed_is_refused(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    argv = ["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "2", "--out", str(out),
            "--max_new_tokens", "4"]  # fmt: skip
    assert cli(argv) == 0
    capsys.readouterr()
    assert cli([*argv, "--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        f"rlt collect: error: {out}: was written with seed=0; this run has seed=1 "
        "(relaunch with those settings, or write elsewhere; t.jsonl.manifest.json records them)\n"
    )
    assert cli([*argv, "--num_traces", "2"]) == 0  # more traces of the same settings: resumed
    assert len(read_records(out)) == 4


# --------------------------------------------------------------------------- vLLM layout and progress


def test_gpu_layouts_of_a_node_and_impossible_ones():
    gpus = [str(i) for i in range(8)]
    assert [gpu_layout(i, 8, 1, gpus) for i in range(8)] == [[g] for g in gpus]  # 8 x TP1: a 7B teacher
    assert [gpu_layout(i, 2, 4, gpus) for i in range(2)] == [gpus[:4], gpus[4:]]  # 2 x TP4: a 32B student
    assert gpu_layout(1, 2, 1, ["4", "6"]) == ["6"]  # names from CUDA_VISIBLE_DEVICES are kept
    with pytest.raises(
        ConfigError, match=r"3 processes on this node x tensor_parallel_size 4 need 12 GPUs, but 8"
    ):
        gpu_layout(0, 3, 4, gpus)
    with pytest.raises(ConfigError, match="need 1 GPUs, but 0 are visible"):
        gpu_layout(0, 1, 1, [])
    with pytest.raises(ConfigError, match="tensor_parallel_size: must be >= 1, got 0"):
        gpu_layout(0, 1, 0, gpus)


def test_engine_environment_shows_only_the_process_gpus_and_restores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.setenv("RANK", "1")
    with engine_environment(Shard(1, 2, 1, 2), 2) as gpus:
        assert gpus == ["2", "3"] and os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
        assert "RANK" not in os.environ  # vLLM must not take our data-parallel world for its own
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and os.environ["RANK"] == "1"
    with pytest.raises(ConfigError, match="2 processes on this node x tensor_parallel_size 4 need 8"):
        with engine_environment(Shard(0, 2, 0, 2), 4):
            pass


def test_cpu_engines_of_one_machine_bind_disjoint_cores(monkeypatch):
    """No GPU visible (vLLM's CPU build): each process's engine gets its own cores, the launcher's world hidden."""
    from rlt.vllm_engine import cpu_cores_for

    assert [cpu_cores_for(i, 2, cores=[0, 1, 2, 3]) for i in range(2)] == ["0,1", "2,3"]
    assert [cpu_cores_for(i, 3, cores=[4, 5, 6, 7]) for i in range(3)] == ["4", "5", "6"]
    with pytest.raises(ConfigError, match="^num_processes: 3 vLLM CPU engines on one machine with 2 cores"):
        cpu_cores_for(0, 3, cores=[0, 1])
    with pytest.raises(ConfigError, match="^tensor_parallel_size: 2 needs GPUs"):
        cpu_cores_for(0, 1, 2, cores=[0, 1])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    with engine_environment(Shard(1, 2, 1, 2), 1) as gpus:
        assert gpus == [] and os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "1" and "RANK" not in os.environ
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and os.environ["RANK"] == "1"


def test_progress_counts_the_lines_every_shard_writes(tmp_path):
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    _write(files[0], [{"id": 1}])  # there before the start: not counted
    with ShardProgress(files, total=3, label="t", interval=0.01) as bar:
        _write(files[0], [{"id": 2}])
        _write(files[1], [{"id": 3}, {"id": 4}])
        assert bar.done() == 3


# --------------------------------------------------------------------------- 2 processes, end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(*argv: str) -> list[str]:
    """`accelerate launch` of 2 CPU processes (torchrun, gloo) running ``rlt ARGV``."""
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
            "-m", "rlt.cli", *argv]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _collect_argv(model: str, out: Path, *extra: str) -> list[str]:
    return ["collect", "--teacher", model, "--task", "digits", "--task_size", "7", "--num_traces", "2",
            "--batch_size", "3", "--max_new_tokens", "8", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_two_processes_collect_what_one_writes_and_filter_once(tiny_model_dir, tmp_path):
    from rlt.data import DataArguments, load_rows

    # Row 3 is also an evaluation question: decontamination drops it, once, on the main process.
    evalset = tmp_path / "eval.jsonl"
    row3 = load_rows(DataArguments(task="digits", task_size=7))[3]
    evalset.write_text(json.dumps({"question": row3["question"], "solution": row3["solution"]}) + "\n")
    n = str(len(row3["question"].split()))  # the whole question: no other row shares it
    extra = ("--decontaminate_against", str(evalset), "--decontaminate_ngram", n, "--max_trace_tokens", "6",
             "--export_sft")  # fmt: skip
    assert (
        cli(_collect_argv(tiny_model_dir, tmp_path / "one.jsonl", *extra, str(tmp_path / "one_sft.jsonl")))
        == 0
    )
    err = _run(
        _launch(
            *_collect_argv(tiny_model_dir, tmp_path / "two.jsonl", *extra, str(tmp_path / "two_sft.jsonl"))
        )
    )
    one, two = read_records(tmp_path / "one.jsonl"), read_records(tmp_path / "two.jsonl")
    assert [r["id"] for r in two] == [f"{i}-{k}" for i in (0, 1, 2, 4, 5, 6) for k in range(2)]
    assert two == one  # same ids, same order, same traces (fp32 CPU, the same batches)
    assert len({r["completion"] for r in one}) > 1  # not vacuous
    sft = read_records(tmp_path / "two_sft.jsonl")
    assert sft == read_records(tmp_path / "one_sft.jsonl") and 0 < len(sft) < len(two)
    # Each process logs its shard; the merge and the filters run once, on the main process.
    assert len(re.findall(r"collect: shard [12]/2 wrote \d+ traces", err)) == 2
    assert err.count("collect: merged 12 traces") == 1 and err.count("collect: exported") == 1
    assert err.count("decontaminate: removed 1 of 7 rows") == 1
    assert not shards_dir(tmp_path / "two.jsonl").exists()


def _workers(launcher: int) -> dict[int, int]:
    """``{RANK: pid}`` of the launcher's worker processes (read from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
            env = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        rank = next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)
        if ppid == launcher and rank is not None:
            found[rank] = pid
    return found


@pytest.mark.slow
def test_sigkill_of_one_process_then_relaunch_loses_and_redoes_nothing(tiny_model_dir, tmp_path):
    ref, out = tmp_path / "ref.jsonl", tmp_path / "run" / "k.jsonl"
    argv = ["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "24", "--batch_size", "1",
            "--max_new_tokens", "24"]  # fmt: skip
    assert cli([*argv, "--out", str(ref)]) == 0
    launch = _launch(*argv, "--out", str(out))
    proc = subprocess.Popen(launch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    victim = shard_file(out, Shard(1, 2))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(read_records(victim)) < 2:
        time.sleep(0.02)
    workers = _workers(proc.pid)
    assert proc.poll() is None and 1 in workers, "finished before the kill: the test would prove nothing"
    os.kill(workers[1], signal.SIGKILL)  # one process, no cleanup; torchrun then stops the other
    assert proc.wait(timeout=120) != 0
    before = {p: read_records(p) for p in shard_files(out)}
    done = sum(map(len, before.values()))
    assert 0 < done < 24 and not out.exists()
    with open(victim, "ab") as f:
        f.write(b'{"id": "23-0", "quest')  # as if the kill had landed mid-line
    # The same state, relaunched with another process count (one, in-process) below.
    shutil.copytree(out.parent, tmp_path / "alone")
    err = _run(launch)
    assert read_records(out) == read_records(ref)  # every id once, in order, the same traces
    wrote = [int(n) for n in re.findall(r"collect: shard [12]/2 wrote (\d+) traces", err)]
    skipped = [int(n) for n in re.findall(r"traces \((\d+) already done\)", err)]
    assert sum(wrote) == 24 - done and sum(skipped) == done  # finished work is not redone
    alone = tmp_path / "alone" / "k.jsonl"
    assert cli([*argv, "--out", str(alone)]) == 0
    assert read_records(alone) == read_records(ref) and not shard_files(alone)


@pytest.mark.slow
def test_two_processes_score_and_eval_as_one(tiny_model_dir, tiny_student_dir, tmp_path):
    traces = tmp_path / "traces.jsonl"
    assert cli(_collect_argv(tiny_model_dir, traces)) == 0
    score = ["score", "--student", tiny_student_dir, "--teacher", tiny_model_dir, "--input", str(traces),
             "--batch_size", "4", "--device", "cpu"]  # fmt: skip
    assert cli([*score, "--output", str(tmp_path / "s1.jsonl")]) == 0
    _run(_launch(*score, "--output", str(tmp_path / "s2.jsonl")))
    assert read_records(tmp_path / "s2.jsonl") == read_records(tmp_path / "s1.jsonl")
    ev = ["eval", "--model", tiny_model_dir, "--task", "digits", "--limit", "5", "--num_samples", "3",
          "--k", "1", "3", "--max_new_tokens", "6", "--batch_size", "4"]  # fmt: skip
    assert cli([*ev, "--out", str(tmp_path / "e1")]) == 0
    err = _run(_launch(*ev, "--out", str(tmp_path / "e2")))
    for name in ("results.json", "results.md", "samples.jsonl"):
        assert (tmp_path / "e2" / name).read_text() == (tmp_path / "e1" / name).read_text(), name
    assert len({r["completion"] for r in read_records(tmp_path / "e2" / "samples.jsonl")}) > 1
    assert err.count("eval digits: accuracy") == 1  # one summary, by the main process
