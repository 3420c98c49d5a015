import json

import pytest

from rlt.cli import main as cli
from rlt.collect import collect_traces, to_distillation_rows
from rlt.evaluate import evaluate_model, gpqa_row, load_eval_task, pass_at_k
from rlt.jsonl import read_records
from rlt.loading import load_model_and_tokenizer
from rlt.tasks import DigitsTask


@pytest.mark.parametrize(
    ("n", "c", "k", "want"),
    [
        (5, 2, 1, 0.4),
        (5, 2, 2, 0.7),
        (5, 0, 3, 0.0),
        (5, 4, 2, 1.0),  # n - c < k
        (4, 4, 1, 1.0),
        (3, 1, 3, 1.0),
        (10, 3, 5, 1 - (7 * 6 * 5 * 4 * 3) / (10 * 9 * 8 * 7 * 6)),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, want):
    assert pass_at_k(n, c, k) == pytest.approx(want)


GPQA = {"Question": "Which is a noble gas?", "Correct Answer": "Neon", "Incorrect Answer 1": "Sodium",
        "Incorrect Answer 2": "Iron", "Incorrect Answer 3": "Carbon"}  # fmt: skip


def test_gpqa_shuffle_is_deterministic_and_letter_is_right():
    a, b = gpqa_row(GPQA), gpqa_row(dict(GPQA))
    assert a == b
    line = next(x for x in a["question"].splitlines() if x.startswith(a["solution"] + ")"))
    assert line.endswith("Neon")
    assert a["solution"] == gpqa_row(GPQA)["solution"]  # same seed, same order, every call
    letters = {gpqa_row({**GPQA, "Question": f"q{i}"})["solution"] for i in range(30)}
    assert len(letters) > 1  # the correct option is not always in the same place


def test_hub_loaders_on_local_stand_ins(tmp_path):
    gp = tmp_path / "gpqa.jsonl"
    gp.write_text(json.dumps(GPQA) + "\n")
    assert load_eval_task("gpqa_diamond", str(gp)).rows[0]["solution"] in "ABCD"
    for name in ("aime24", "math500"):
        f = tmp_path / f"{name}.jsonl"
        f.write_text(json.dumps({"problem": "1+1?", "answer": "2", "extra": 1}) + "\n")
        task = load_eval_task(name, str(f), math_timeout=20)
        assert task.rows == [{"question": "1+1?", "solution": "2"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(Exception, match="missing columns"):
        load_eval_task("math500", str(bad))


def test_eval_cli_writes_results(tiny_model_dir, tmp_path):
    out = tmp_path / "ev"
    assert cli(["eval", "--model", tiny_model_dir, "--task", "digits", "--limit", "4", "--num_samples", "2",
                "--k", "1", "2", "--max_new_tokens", "8", "--out", str(out)]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["num_questions"] == 4 and set(res["pass_at_k"]) == {"1", "2"}
    assert "| digits |" in (out / "results.md").read_text()
    assert len((out / "samples.jsonl").read_text().splitlines()) == 8


def test_hub_loader_generic_file_and_unknown_task(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text(json.dumps({"question": "2+2?", "solution": "4"}) + "\n")
    task = load_eval_task(str(f), math_timeout=30)
    try:
        assert task.rows[0]["solution"] == "4"
        assert task.check(task.rows[0], "4") == (True, "ok")
    finally:
        task.closer()
    with pytest.raises(Exception, match="unknown task"):
        load_eval_task("nonsense")


def test_collect_then_distil_rows_then_eval_end_to_end(tiny_model_dir, tiny_student_dir, tmp_path):
    """digits: teacher traces → export rows → `rlt distill` on them → the distilled student evaluated."""
    import torch

    from rlt.formats import get_tags

    teacher, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = DigitsTask().generate(3, seed=5)
    traces = tmp_path / "traces.jsonl"
    summary = collect_traces(teacher, tok, rows, traces, num_traces=2, max_new_tokens=8, batch_size=4,
                             progress=False)  # fmt: skip
    assert summary["written"] == 6
    records = read_records(traces)
    export = to_distillation_rows(records)
    assert export == [
        {k: r[k] for k in ("id", "question", "solution", "explanation", "closed")} for r in records
    ]
    assert [r["solution"] for r in export] == [row["solution"] for row in rows for _ in range(2)]
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in export))
    out = tmp_path / "distilled"
    assert cli(["distill", "--model_name_or_path", tiny_student_dir, "--dataset_name", str(sft),
                "--explanation_column", "explanation", "--allow_empty_explanation", "true",
                "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "3",
                "--learning_rate", "1e-2", "--logging_steps", "1", "--use_cpu", "true", "--bf16", "false",
                "--report_to", "none", "--save_strategy", "no", "--max_length", "512", "--chat_format",
                "compact"]) == 0  # fmt: skip
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and len([h for h in state["log_history"] if "loss" in h]) == 2
    before, _ = load_model_and_tokenizer(tiny_student_dir)
    student, stok = load_model_and_tokenizer(str(out))
    changed = [
        n for (n, p), q in zip(student.named_parameters(), before.parameters()) if not torch.equal(p, q)
    ]
    assert changed  # the distillation trained the student it saved
    eval_rows = load_eval_task("digits", limit=3).rows
    assert eval_rows[0] == DigitsTask().generate(1, seed=12345)[0]  # the held-out seed
    compact = get_tags("bespoke", "compact")  # as the student was distilled
    res = evaluate_model(student, stok, eval_rows, "digits", num_samples=2, ks=(1, 2), max_new_tokens=8,
                         tag_format=compact, out_dir=tmp_path / "ev", progress=False)  # fmt: skip
    # Accuracy and pass@k recounted from the samples, each re-checked against its row's solution.
    samples = read_records(tmp_path / "ev" / "samples.jsonl")
    assert [(s["index"], s["sample"]) for s in samples] == [(i, k) for i in range(3) for k in range(2)]
    for s in samples:
        want = s["answer"] is not None and s["answer"].strip() == eval_rows[s["index"]]["solution"]
        assert s["correct"] == want and s["solution"] == eval_rows[s["index"]]["solution"]
    assert res["num_questions"] == 3
    assert res["accuracy"] == pytest.approx(sum(s["correct"] for s in samples) / 6)
    solved = [any(s["correct"] for s in samples if s["index"] == i) for i in range(3)]
    assert res["pass_at_k"]["2"] == pytest.approx(sum(solved) / 3)
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["accuracy"] == res["accuracy"]
    # A checker that accepts everything: every answered sample counts, unanswered ones do not.
    res2 = evaluate_model(student, stok, eval_rows, lambda row, ans: (True, "ok"), max_new_tokens=8,
                          progress=False)  # fmt: skip
    assert res2["accuracy"] == 1 - res2["no_answer"] / 3


def test_public_hub_loaders_and_cli_dataset_name(tiny_model_dir, tmp_path):
    from rlt.evaluate import load_aime24, load_gpqa_diamond, load_math500

    aime, m500, gp = tmp_path / "aime.jsonl", tmp_path / "m500.csv", tmp_path / "gpqa.jsonl"
    aime.write_text(json.dumps({"problem": "Find 3^2.", "answer": "9", "id": 60}) + "\n")
    m500.write_text("problem,answer,solution\nHalf of 1?,\\frac{1}{2},long text\n")
    gp.write_text(json.dumps(GPQA) + "\n")
    assert load_aime24(str(aime)) == [{"question": "Find 3^2.", "solution": "9"}]
    assert load_math500(str(m500)) == [{"question": "Half of 1?", "solution": "\\frac{1}{2}"}]
    (row,) = load_gpqa_diamond(str(gp))
    assert row == gpqa_row(GPQA)
    # `rlt eval` on a hub benchmark's local stand-in: --dataset_name (and its --dataset_path alias).
    for flag, out in (("--dataset_name", tmp_path / "e1"), ("--dataset_path", tmp_path / "e2")):
        assert cli(["eval", "--model", tiny_model_dir, "--task", "math500", flag, str(m500),
                    "--max_new_tokens", "4", "--out", str(out)]) == 0  # fmt: skip
        res = json.loads((out / "results.json").read_text())
        assert (res["task"], res["num_questions"]) == ("math500", 1)


class _FakeSamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def test_evaluate_with_a_vllm_engine(tiny_model_dir, monkeypatch):
    import sys
    import types
    from types import SimpleNamespace

    from rlt.formats import get_tags
    from rlt.loading import load_tokenizer

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_FakeSamplingParams))
    tok, tags = load_tokenizer(tiny_model_dir), get_tags("bespoke")
    rows = DigitsTask().generate(2, seed=7)
    seen = []

    class FakeLLM:
        def generate(self, prompts, params, use_tqdm=False):
            seen.extend(p.seed for p in params)
            # Answers the first question right, the second wrong, every sample.
            texts = [f"{tags.think_open}x{tags.think_close}\n\n{tags.solution_open}"
                     f"{rows[0]['solution'] if rows[0]['question'] in pr else '99'}"
                     f"{tags.solution_close}" for pr in prompts]  # fmt: skip
            return [
                SimpleNamespace(
                    outputs=[SimpleNamespace(token_ids=tok(t, add_special_tokens=False)["input_ids"])]
                )
                for t in texts
            ]

    res = evaluate_model(None, tok, rows, "digits", num_samples=3, ks=(1, 3), llm=FakeLLM(), progress=False)
    assert len(set(seen)) == 6  # one seed per (question, sample)
    assert res["accuracy"] == pytest.approx(0.5) and res["pass_at_k"] == {"1": 0.5, "3": 0.5}


def test_decode_keeps_tags_that_are_special_tokens(tiny_model_dir):
    from rlt.evaluate import decode_answer
    from rlt.formats import get_tags
    from rlt.loading import load_tokenizer

    tok, tags = load_tokenizer(tiny_model_dir), get_tags("r1")
    tok.add_special_tokens({"additional_special_tokens": [tags.solution_open, tags.solution_close]})
    ids = tok(f"hm{tags.solution_open}7{tags.solution_close}", add_special_tokens=False)["input_ids"]
    ids += [tok.convert_tokens_to_ids("<|im_start|>")]
    assert decode_answer(tok, ids, tags) == f"hm{tags.solution_open}7{tags.solution_close}"


def test_eval_prompts_the_student_as_it_was_trained(tiny_model_dir, monkeypatch):
    """stratos: the row's `system` column, else STRATOS_SYSTEM_PROMPT; a reasoning-length default budget."""
    import sys
    import types
    from types import SimpleNamespace

    from rlt.evaluate import EvalArguments
    from rlt.formats import STRATOS_SYSTEM_PROMPT
    from rlt.loading import load_tokenizer

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_FakeSamplingParams))
    tok = load_tokenizer(tiny_model_dir)
    rows = DigitsTask().generate(2, seed=3)
    rows[0]["system"] = "Row system."
    prompts = []

    class FakeLLM:
        def generate(self, batch, params, use_tqdm=False):
            prompts.extend(batch)
            return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=[])]) for _ in batch]

    evaluate_model(None, tok, rows, "digits", llm=FakeLLM(), progress=False)
    assert prompts[0].startswith("<|im_start|>system\nRow system.<|im_end|>\n<|im_start|>user\n")
    assert prompts[1].startswith(f"<|im_start|>system\n{STRATOS_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert EvalArguments(model="m", task="digits").max_new_tokens >= 16384
