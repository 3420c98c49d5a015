"""The runner's pieces (rlt.sharding): the share rule, the merge, the manifest, the vLLM layout,
and collect/score/eval end to end under `accelerate launch` with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from launching import launch as _launch
from launching import run as _run

from rlt.cli import main as cli
from rlt.errors import ConfigError
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
