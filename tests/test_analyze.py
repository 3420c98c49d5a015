"""`rlt analyze` on a synthetic trace set and eval samples whose answer is known by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlt.analyze import average_ranks, pearson, reward_bins, spearman
from rlt.cli import main as cli

# 8 questions; question i has two traces with rewards i and i + 1 (mean i + 0.5) and four
# samples of which CORRECT[i] are right. The outcome rises with the reward.
CORRECT = [0, 0, 1, 1, 2, 3, 4, 4]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _files(tmp_path, correct=CORRECT):
    traces = [
        {"id": f"{i}-{k}", "question": f"q{i}", "solution": "1", "reward": float(i + k)}
        for i in range(8)
        for k in range(2)
    ]
    traces.append({"id": "8-0", "question": "only in traces", "reward": 0.0})
    traces.append({"id": "0-9", "question": "q0", "reward": None})  # not scored: left out
    samples = [
        {"index": i, "sample": s, "question": f"q{i}", "correct": s < c}
        for i, c in enumerate(correct)
        for s in range(4)
    ]
    samples.append({"index": 9, "sample": 0, "question": "only in outcomes", "correct": True})
    t, ev = tmp_path / "scored.jsonl", tmp_path / "eval"
    ev.mkdir()
    _write(t, traces)
    _write(ev / "samples.jsonl", samples)
    return t, ev


def test_table_and_correlations_by_hand(tmp_path, capsys):
    traces, ev = _files(tmp_path)
    out = tmp_path / "an"
    assert cli(["analyze", "--traces", str(traces), "--outcomes", str(ev), "--out_dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_questions"] == 8
    assert (summary["questions_only_in_traces"], summary["questions_only_in_outcomes"]) == (1, 1)
    assert (summary["num_traces"], summary["num_samples"]) == (17, 33)
    # Quartiles of 2 questions each: mean rewards (0.5+1.5)/2, …; mean outcomes (0+0)/2, (.25+.25)/2, …
    bins = summary["bins"]
    assert [b["n"] for b in bins] == [2, 2, 2, 2]
    assert [b["reward_mean"] for b in bins] == [1.0, 3.0, 5.0, 7.0]
    assert [b["outcome_mean"] for b in bins] == [0.0, 0.25, 0.625, 1.0]
    assert (bins[0]["reward_min"], bins[0]["reward_max"]) == (0.5, 1.5)
    x = np.arange(8) + 0.5
    y = np.array(CORRECT) / 4
    assert summary["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks_y = [1.5, 1.5, 3.5, 3.5, 5, 6, 7.5, 7.5]  # ties share their mean rank
    assert summary["spearman"] == pytest.approx(np.corrcoef(np.arange(1, 9), ranks_y)[0, 1])
    assert summary["pearson"] > 0.9 and summary["spearman"] > 0.9
    printed = capsys.readouterr().out
    assert "| 4 | 2 | 6.500 … 7.500 | 7.000 | 1.000 |" in printed
    assert f"Pearson {summary['pearson']:+.3f}, Spearman {summary['spearman']:+.3f}" in printed
    assert (out / "table.md").read_text().strip() == printed.strip()
    png = (out / "reward_vs_outcome.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_falling_and_flat_outcomes(tmp_path):
    from rlt.analyze import AnalyzeArguments, analyze

    traces, ev = _files(tmp_path, correct=CORRECT[::-1])
    s = analyze(AnalyzeArguments(traces=str(traces), outcomes=str(ev), out_dir=str(tmp_path / "a"), bins=2))
    assert s["pearson"] < -0.9 and s["spearman"] < -0.9
    assert [b["outcome_mean"] for b in s["bins"]] == [0.8125, 0.125]
    flat = tmp_path / "flat"
    flat.mkdir()
    traces2, ev2 = _files(flat, correct=[2] * 8)
    s2 = analyze(AnalyzeArguments(traces=str(traces2), outcomes=str(ev2), out_dir=str(flat / "a")))
    assert s2["pearson"] is None and s2["spearman"] is None  # a constant outcome has no correlation
    assert "n/a" in (flat / "a" / "table.md").read_text()


def test_statistics_helpers():
    assert average_ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert pearson([1], [1]) is None
    sizes = [b["n"] for b in reward_bins([(float(i), 0.0) for i in range(10)], 4)]
    assert sizes == [3, 3, 2, 2]
    assert len(reward_bins([(1.0, 1.0), (2.0, 0.0)], 4)) == 2  # never an empty bin


def test_errors_are_one_line(tmp_path, capsys):
    traces, ev = _files(tmp_path)
    other = tmp_path / "other.jsonl"
    _write(other, [{"question": "unrelated", "correct": True}])
    assert cli(["analyze", "--traces", str(traces), "--outcomes", str(other)]) == 2
    assert "joined on the question text" in capsys.readouterr().err
    assert cli(["analyze", "--traces", str(traces), "--outcomes", str(tmp_path / "missing")]) == 2
    assert cli(["analyze", "--traces", str(traces), "--outcomes", str(ev), "--reward_key", "nope"]) == 2
    assert "no row has a number in 'nope'" in capsys.readouterr().err
    assert cli(["analyze", "--traces", str(traces), "--outcomes", str(ev), "--bins", "0"]) == 2


def test_files_are_read_as_records_with_their_role_named(tmp_path, capsys):
    from rlt.analyze import _read_jsonl

    path = tmp_path / "hand.jsonl"
    path.write_text('{"question": "a", "reward": 1}\n\n{"question": "b", "reward": 2}')  # no final newline
    assert [r["question"] for r in _read_jsonl(path, "traces")] == ["a", "b"]  # a finished file's last line
    path.write_text('{"question": "a"}\nnot json\n')
    traces, ev = _files(tmp_path)
    assert cli(["analyze", "--traces", str(path), "--outcomes", str(ev)]) == 2
    err = capsys.readouterr().err
    assert "traces: " in err and "line 2 is not valid JSON" in err
    path.write_text('{"question": "a"}\n{"question": ')
    with pytest.raises(Exception, match="outcomes: .*the last line is not valid JSON"):
        _read_jsonl(path, "outcomes")
