"""benchmarks/student_tokenization.py at a few rows: its counts follow from the rows it makes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "student_tokenization.py"


def test_counts_are_consistent(capsys):
    spec = importlib.util.spec_from_file_location("rlt_bench_tokenization", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--rows", "24", "--seed", "1", "--json"])
    res = json.loads(capsys.readouterr().out)
    rows = bench.make_rows(24, 1)
    # Only explanations not ending in the padding (or a newline) merge with the close tag.
    unpadded = sum(not w.endswith("\n") for _, _, w in rows)
    assert 0 < res["close_tag_merged_rows"] <= unpadded
    # The old split kept tag pieces in the explanation of every merged row (at most 7 of the 8 on Qwen2.5).
    merged = res["close_tag_merged_rows"]
    assert merged <= res["old_split_tag_fragment_tokens"] <= 7 * merged
    # The segments sequence differs from the canonical text exactly in the merged rows.
    assert res["student_rows_differing_from_canonical"] == res["close_tag_merged_rows"]
    assert res["reward_rows_differing"] >= res["close_tag_merged_rows"] - 1
