"""Smoke run of benchmarks/reward.py at tiny sizes: it runs, and the reward matches the reference."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "reward.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rlt_bench_reward", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_in_process(bench, tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert bench.main(["--quick", "--in-process", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["vocab"], r["seq"]) for r in rows] == [(500, 64), (500, 128)]
    for r in rows:
        assert r["max_diff"] <= 1e-5
        assert all(r[f"{v}_s"] > 0 for v in bench.VARIANTS)
    printed = capsys.readouterr().out
    assert "targets:" in printed and "within 1e-5 (fp32): worst" in printed


def test_isolated_child_measures_memory(bench):
    # The reference materialises [seq, vocab] fp32 logits (and their log-softmax); the chunked
    # reward only [chunk, vocab] at a time. The measured peaks must show both.
    vocab, seq, chunk = 16000, 512, 16
    spec = {
        "vocab": vocab,
        "seq": seq,
        "batch": 1,
        "hidden": 32,
        "layers": 1,
        "repeats": 1,
        "chunk_size": chunk,
    }
    ref = bench.measure({**spec, "variant": "reference"})
    rlt = bench.measure({**spec, "variant": "rlt"})
    if math.isnan(ref["peak_mb"]):
        pytest.skip("the kernel refused to reset the peak RSS (/proc/self/clear_refs)")
    logits_mb = seq * vocab * 4 / 2**20  # 31 MB; measured: reference ~100 MB, rlt ~12 MB
    assert res_ok(ref) and res_ok(rlt)
    assert ref["peak_mb"] >= 0.9 * logits_mb, ref["peak_mb"]
    # Peak RSS moves by ~10 MB with the allocator and the machine's load (20.8 MB seen once under
    # load, ~12 MB idle): half the reference's peak is the bound that holds, and still fails when
    # the chunked head materialises the full logits (it would then peak at the reference's level).
    assert rlt["peak_mb"] < ref["peak_mb"] / 2, (rlt["peak_mb"], ref["peak_mb"])
    assert rlt["rewards"] == pytest.approx(ref["rewards"], abs=1e-4)


def res_ok(res):
    return res["tokens"] == 512 and len(res["rewards"]) == 1 and math.isfinite(res["rewards"][0])
