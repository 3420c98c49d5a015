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
    spec = {"vocab": 300, "seq": 48, "batch": 1, "variant": "rlt", "hidden": 32, "layers": 1}
    res = bench.measure({**spec, "repeats": 1, "chunk_size": 16})
    assert res["tokens"] == 48
    assert len(res["rewards"]) == 1 and math.isfinite(res["rewards"][0])
    assert res["peak_mb"] >= 0
