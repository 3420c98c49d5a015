"""`rlt warmup` and `rlt distill`: TRL SFTTrainer on the teacher/student views, loss on the completion only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlt.errors import ConfigError, RLTError
from rlt.formats import get_tags

TAGS = get_tags("bespoke")


def sft_argv(model_dir: str, out: str, *extra: str) -> list[str]:
    return [
        "--config",
        "recipes/tiny/teacher_warmup.yaml",
        "--model_name_or_path",
        model_dir,
        "--output_dir",
        out,
        "--task_size",
        "16",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--max_length",
        "512",
        "--logging_steps",
        "1",
        *extra,
    ]


def test_warmup_trains_on_the_completion_only(tiny_model_dir, tmp_path):
    from rlt.sft import build_sft_trainer, parse_sft_args

    args = parse_sft_args(sft_argv(tiny_model_dir, str(tmp_path / "w")))
    trainer = build_sft_trainer("teacher", *args)
    assert trainer.completion_only_loss is True
    tok = trainer.processing_class
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    first = next(i for i, x in enumerate(labels) if x != -100)
    assert all(x == -100 for x in labels[:first]) and labels[first:] == ids[first:]
    prompt, completion = tok.decode(ids[:first]), tok.decode(ids[first:])
    # The loss is on the explanation only (the official warm-up): the prompt runs up to the
    # explanation-open tag, the solution included; the completion is the explanation and its close.
    assert prompt.endswith(TAGS.explanation_open) and "start " in prompt
    assert f"<|im_start|>assistant\n{TAGS.solution_open}" in prompt
    assert TAGS.solution_open not in completion and TAGS.explanation_open not in completion
    assert completion.endswith(f"{TAGS.explanation_close}<|im_end|>")  # one EOS, not <|im_end|>\n<|im_end|>


def test_warmup_cli_saves_a_loadable_model(tiny_model_dir, tmp_path):
    from rlt.cli import main
    from rlt.loading import load_model_and_tokenizer

    out = tmp_path / "warm"
    assert main(["warmup", *sft_argv(tiny_model_dir, str(out))]) == 0
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "trainer_state.json",
        "README.md",
    ):
        assert (out / name).exists(), name
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and any("loss" in h for h in state["log_history"])
    model, tok = load_model_and_tokenizer(str(out))
    assert tok.decode(tok("a b", add_special_tokens=False)["input_ids"]) == "a b"  # character tokenizer kept


def test_distill_on_collected_traces_in_the_student_format(tiny_student_dir, tmp_path):
    from rlt.sft import build_sft_trainer, distill_main, parse_sft_args

    traces = tmp_path / "traces.jsonl"
    with open(traces, "w") as f:
        for i in range(8):
            row = {
                "question": f"start {i}; +1 (mod 10)",
                "solution": str((i + 1) % 10),
                "explanation": f"{i}+1={(i + 1) % 10}",
            }
            f.write(json.dumps(row) + "\n")
    argv = sft_argv(tiny_student_dir, str(tmp_path / "d"), "--explanation_column", "explanation")
    argv[1] = "recipes/tiny/student_distill.yaml"
    argv += ["--task", "null", "--dataset_name", str(traces)]  # `null` switches the recipe's task off
    trainer = build_sft_trainer("student", *parse_sft_args(argv))
    row = trainer.train_dataset[0]
    first = next(i for i, x in enumerate(row["labels"]) if x != -100)
    completion = trainer.processing_class.decode(row["input_ids"][first:])
    assert (
        completion
        == f"{TAGS.think_open}0+1=1{TAGS.think_close}\n\n{TAGS.solution_open}1{TAGS.solution_close}<|im_end|>"
    )
    assert trainer.processing_class.decode(row["input_ids"][:first]).endswith(
        "start 0; +1 (mod 10)<|im_end|>\n<|im_start|>assistant\n"
    )
    assert distill_main(argv) == 0
    from rlt.loading import load_model_and_tokenizer

    trained, _ = load_model_and_tokenizer(str(tmp_path / "d"))
    init, _ = load_model_and_tokenizer(tiny_student_dir)
    state = json.loads((tmp_path / "d" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert state["global_step"] == 2 and len(losses) == 2 and all(x > 0 for x in losses)
    diffs = [float((p - q).abs().max()) for p, q in zip(trained.parameters(), init.parameters())]
    assert max(diffs) > 0  # the saved model is the trained one, not the initial student


def test_distill_missing_explanation_column(tiny_student_dir, tmp_path):
    from rlt.sft import distill_main

    argv = sft_argv(tiny_student_dir, str(tmp_path / "d"), "--explanation_column", "explanation")
    argv[1] = "recipes/tiny/student_distill.yaml"
    with pytest.raises(RLTError, match="explanation_column: column 'explanation' not in the data"):
        distill_main(argv)


def test_sft_refuses_full_sequence_loss(tiny_model_dir, tmp_path):
    from rlt.sft import warmup_main

    with pytest.raises(ConfigError, match="completion_only_loss"):
        warmup_main(sft_argv(tiny_model_dir, str(tmp_path / "w"), "--completion_only_loss", "false"))


def test_recipes_parse(tiny_model_dir):
    import yaml

    from rlt.sft import parse_sft_args

    for recipe in (
        "recipes/qwen2.5-7b/teacher_warmup.yaml",
        "recipes/qwen2.5-7b/student_distill.yaml",
        "recipes/qwen2.5-32b/student_distill.yaml",
    ):
        parsed = parse_sft_args(["--config", recipe, "--use_cpu", "true", "--bf16", "false"])
        model_args = parsed[0]
        # Every key of the recipe reaches the parsed arguments with the recipe's value.
        written = yaml.safe_load(Path(recipe).read_text())
        written.update(use_cpu=True, bf16=False)
        assert model_args.model_name_or_path == written["model_name_or_path"]
        assert model_args.model_name_or_path.startswith("Qwen/Qwen2.5-")
        for key, value in written.items():
            holders = [a for a in parsed if hasattr(a, key)]
            assert holders, f"{recipe}: {key} reached no argument class"
            got = getattr(holders[0], key)
            got = getattr(got, "value", got)  # enums (lr_scheduler_type, ...) compare by value
            assert got == value or str(got) == str(value), (recipe, key, got, value)
