"""Trace selection and hygiene (issue #18): n-gram decontamination and the trace token budget."""

from __future__ import annotations

import json
import logging

import pytest

from rlt.cli import main as cli
from rlt.collect import filter_traces
from rlt.decontaminate import (
    build_ngram_lookup,
    decontaminate_rows,
    find_contaminated,
    load_eval_questions,
    normalize_string,
    word_ngrams,
)
from rlt.errors import ConfigError
from rlt.jsonl import read_records

EVAL = [
    "What is the sum of the first ten positive odd integers?",
    "Find the number of ordered pairs (a, b) of integers with a^2 + b^2 = 25.",
]


def test_normalisation_and_ngrams():
    assert normalize_string("  What IS\n\tthe  Sum? ") == "what is the sum?"
    assert word_ngrams("A b  C d", 2) == ["a b", "b c", "c d"]
    assert word_ngrams("a b c", 3) == ["a b c"]
    assert word_ngrams("a b", 3) == []  # fewer words than n: no n-grams
    assert build_ngram_lookup(["x y z", "y z w"], 2) == {"x y": {0}, "y z": {0, 1}, "z w": {1}}


def test_contaminated_questions_found_by_hand():
    train = [
        "what is the SUM of the first ten   positive odd integers?",  # 0: the same, case and spaces aside
        "Warm-up: what is the sum of the first ten positive odd integers? Then double it.",  # 1: embedded
        "Tell me the sum of the first ten positive even integers?",  # 2: 7 shared words in a row at most
        "Compute 2 + 3.",  # 3: unrelated
        "Find the number of ordered pairs (a, b) of integers with a^2 + b^2 = 50.",  # 4: 8 shared words
        "What is the sum of the first ten positive odd integers",  # 5: no '?': only its last 8-gram differs
    ]
    hits = find_contaminated(train, {"e": EVAL}, n=8)
    assert [h.index for h in hits] == [0, 1, 4, 5]
    assert [h.eval_index for h in hits] == [0, 0, 1, 0]
    assert hits[0].ngram == "what is the sum of the first ten"
    assert hits[2].ngram == "find the number of ordered pairs (a, b)"
    # Punctuation is part of a word, as in open-r1: "integers" ≠ "integers?" only matters at the end.
    assert [h.index for h in find_contaminated(["first ten positive odd integers"], {"e": EVAL}, n=5)] == []
    # A smaller n finds the 7-word overlap of row 2 too.
    assert [h.index for h in find_contaminated(train, {"e": EVAL}, n=7)] == [0, 1, 2, 4, 5]
    with pytest.raises(ConfigError, match="decontaminate_ngram"):
        find_contaminated(train, {"e": EVAL}, n=0)


def test_decontaminate_rows_names_the_set_and_logs_removals(caplog):
    rows = [{"question": q, "solution": "1"} for q in ("Compute 2 + 3.", EVAL[1].upper(), "Say hi.")]
    with caplog.at_level(logging.INFO, logger="rlt.decontaminate"):
        kept, hits = decontaminate_rows(
            rows, {"other": ["nothing alike here at all, not one bit"], "math": EVAL}
        )
    assert kept == [rows[0], rows[2]]
    assert [(h.index, h.eval_name, h.eval_index) for h in hits] == [(1, "math", 1)]
    assert "removed 1 of 3 rows" in caplog.text and "'math': 1" in caplog.text
    assert "removed row 1" in caplog.text


def test_eval_questions_of_a_task_and_a_file(tmp_path):
    from rlt.evaluate import load_eval_task

    qs = load_eval_questions(["digits"])
    assert qs["digits"] == [r["question"] for r in load_eval_task("digits").rows]
    path = tmp_path / "ev.jsonl"
    path.write_text("".join(json.dumps({"question": q, "solution": "1"}) + "\n" for q in EVAL))
    assert load_eval_questions([str(path)]) == {str(path): EVAL}


# --------------------------------------------------------------------------- rlt collect


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_collect_decontaminates_before_sampling(tiny_model_dir, tmp_path, caplog):
    train = [
        {"question": "What is 1 + 1? Answer with one digit only.", "solution": "2"},
        {"question": f"Warm-up. {EVAL[0]}", "solution": "100"},
        {"question": "What is 2 + 2? Answer with one digit only.", "solution": "4"},
    ]
    data, ev, out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "t.jsonl"
    _write(data, train)
    _write(ev, [{"question": q, "solution": "1"} for q in EVAL])
    argv = ["collect", "--teacher", tiny_model_dir, "--dataset_name", str(data), "--out", str(out),
            "--max_new_tokens", "4", "--decontaminate_against", str(ev)]  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert cli(argv) == 0
    recs = read_records(out)
    # Row 1 is gone; the others keep their index ids (taken before the drop).
    assert [r["id"] for r in recs] == ["0-0", "2-0"]
    assert [r["question"] for r in recs] == [train[0]["question"], train[2]["question"]]
    assert "removed 1 of 3 rows" in caplog.text
    # A larger n than any overlap keeps every row.
    out2 = tmp_path / "t2.jsonl"
    argv2 = [*argv[:6], str(out2), *argv[7:], "--decontaminate_ngram", "40"]
    assert cli(argv2) == 0
    assert [r["id"] for r in read_records(out2)] == ["0-0", "1-0", "2-0"]
    assert cli([*argv2, "--decontaminate_ngram", "0"]) == 2


def test_token_budget_filter_by_hand():
    recs = [
        {"id": "0-0", "explanation": "abcdef", "reward": 3.0, "closed": True},  # too long
        {"id": "0-1", "explanation": "abc", "reward": 1.0, "closed": True},
        {"id": "0-2", "explanation": "ab", "reward": 2.0, "closed": True},
        {"id": "1-0", "explanation": "abcdefgh", "reward": 0.0, "closed": True},  # too long
        {"id": "1-1", "explanation": "", "reward": -5.0, "closed": True},
    ]
    kept = filter_traces(recs, keep_best_k=1, max_trace_tokens=3, count_tokens=len)
    # The budget applies before the best-k choice: 0-0 had the highest reward but is too long.
    assert [r["id"] for r in kept] == ["0-2", "1-1"]
    assert [r["id"] for r in filter_traces(recs, max_trace_tokens=3, count_tokens=len)] == [
        "0-1",
        "0-2",
        "1-1",
    ]
    with pytest.raises(ConfigError, match="max_trace_tokens"):
        filter_traces(recs, max_trace_tokens=3)


def test_collect_token_budget_counts_teacher_tokens(tiny_model_dir, tmp_path):
    from rlt.loading import load_tokenizer

    out, sft = tmp_path / "b.jsonl", tmp_path / "b_sft.jsonl"
    argv = ["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "4", "--out", str(out),
            "--num_traces", "3", "--max_new_tokens", "12", "--export_sft", str(sft)]  # fmt: skip
    assert cli(argv) == 0
    tok = load_tokenizer(tiny_model_dir)
    recs = read_records(out)
    lengths = {r["id"]: len(tok(r["explanation"], add_special_tokens=False)["input_ids"]) for r in recs}
    budget = (min(lengths.values()) + max(lengths.values())) // 2
    assert min(lengths.values()) <= budget < max(lengths.values())  # the budget really splits them
    assert cli([*argv, "--max_trace_tokens", str(budget)]) == 0
    exported = read_records(sft)
    assert sorted(r["id"] for r in exported) == sorted(i for i, n in lengths.items() if n <= budget)
    assert cli([*argv, "--max_trace_tokens", "0"]) == 2
