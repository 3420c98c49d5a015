"""The LoRA teacher path of `rlt train` on the tiny recipe (CPU): validation, ℓ_T, reference, resume, collect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlt.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LORA = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--sync_ref_model", "false"]
FAST = ["--task_size", "8", "--per_device_train_batch_size", "4", "--num_generations", "2",
        "--max_completion_length", "8", "--logging_steps", "1", "--report_to", "none"]  # fmt: skip


def argv(teacher: str, student: str, out: Path, *extra: str) -> list[str]:
    return ["--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"), "--model_name_or_path", teacher,
            "--student_model_name_or_path", student, "--output_dir", str(out), *LORA, *FAST, *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "fields"),
    [
        (["--use_peft", "true"], "sync_ref_model, use_peft"),  # the tiny recipe syncs the reference
        (["--sync_ref_model", "true", "--beta", "0"], "sync_ref_model, beta"),
        (
            ["--use_peft", "true", "--sync_ref_model", "false", "--lora_target_modules", "q_proj", "lm_head"],
            "lora_target_modules",
        ),  # fmt: skip
        (["--load_in_4bit", "true"], "load_in_4bit/load_in_8bit"),
    ],
)
def test_combinations_trl_refuses_are_refused_before_loading(extra, fields):
    from rlt.train import parse_train_args

    with pytest.raises(ConfigError, match=f"^{fields}:"):
        parse_train_args(["--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"), *extra])


def test_the_lora_recipe_parses():
    from rlt.train import parse_train_args

    model, _, args, _, reward = parse_train_args(
        [
            "--config",
            str(ROOT / "recipes/qwen2.5-7b/teacher_rlt_lora.yaml"),
            "--use_cpu",
            "true",
            "--bf16",
            "false",
        ]
    )
    assert model.use_peft and not args.sync_ref_model and args.beta == 0.04
    assert args.num_generations == 64 and reward.kl_coefs == [(3.0, "mean"), (0.03, "max")]


def _lora_layer(model):
    from peft.tuners.lora import LoraLayer

    return next(m for m in model.modules() if isinstance(m, LoraLayer))


def test_teacher_logprobs_use_adapters_and_the_reference_does_not(tiny_model_dir, tiny_student_dir, tmp_path):
    from rlt.train import build_trainer, parse_train_args

    trainer = build_trainer(*parse_train_args(argv(tiny_model_dir, tiny_student_dir, tmp_path / "a",
                                                   "--max_steps", "1", "--save_strategy", "no")))  # fmt: skip
    model = trainer.model
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA's B starts at zero: make the adapters change the outputs
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    reward = trainer.rlt_reward
    assert reward.teacher is model  # ℓ_T from the policy itself, adapters included
    prompt_ids = reward.teacher_prompt_ids(["start 1; +2 (mod 10)"], ["3"])
    expl = [reward.student_tokenizer("1+2=3", add_special_tokens=False)["input_ids"]]
    lt = reward.compute_teacher_logprobs(prompt_ids, expl)[0]
    ids = torch.tensor([prompt_ids[0] + expl[0]])

    def manual() -> torch.Tensor:
        model.eval()  # LoRA dropout off, as for ℓ_T
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt_ids[0]) - 1 : -1].float() / 0.7
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(expl[0])[:, None])[:, 0]

    torch.testing.assert_close(lt, manual(), atol=1e-5, rtol=1e-5)
    with model.disable_adapter():
        off = manual()
    model.train()
    assert (lt - off).abs().max() > 1e-3  # the adapters matter, and ℓ_T has them on

    # The reference log-probs (β > 0) are taken with the adapters off; the policy's with them on.
    states = []
    original = trainer._get_per_token_logps_and_entropies

    def recording(m, *args, **kwargs):
        states.append((torch.is_grad_enabled(), bool(_lora_layer(model).disable_adapters)))
        return original(m, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = recording
    trainer.train()
    assert (False, True) in states  # a no-grad forward with the adapters off: the reference
    assert (True, False) in states  # the loss forward with the adapters on


def test_resume_from_an_adapter_checkpoint_and_collect_from_it(tiny_model_dir, tiny_student_dir, tmp_path):
    from rlt.cli import main as cli
    from rlt.jsonl import read_records

    out = tmp_path / "lora"
    common = ["--save_strategy", "steps", "--save_steps", "1"]
    assert cli(["train", *argv(tiny_model_dir, tiny_student_dir, out, "--max_steps", "1", *common)]) == 0
    assert (out / "checkpoint-1" / "adapter_model.safetensors").exists()
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    resumed = argv(tiny_model_dir, tiny_student_dir, out, "--max_steps", "2", *common,
                   "--resume_from_checkpoint", str(out / "checkpoint-1"))  # fmt: skip
    assert cli(["train", *resumed]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2]

    # `rlt collect` takes the adapter directory as the teacher, and a merged model the same way.
    from peft import AutoPeftModelForCausalLM

    from rlt.loading import save_tokenizer

    merged = tmp_path / "merged"
    AutoPeftModelForCausalLM.from_pretrained(out).merge_and_unload().save_pretrained(merged)
    from rlt.loading import load_tokenizer

    save_tokenizer(load_tokenizer(str(out)), merged)
    texts = {}
    for name, teacher in (("adapter", out), ("merged", merged)):
        traces = tmp_path / f"{name}.jsonl"
        assert cli(["collect", "--teacher", str(teacher), "--task", "digits", "--task_size", "3",
                    "--chat_format", "compact", "--max_new_tokens", "6", "--out", str(traces),
                    "--temperature", "0.7"]) == 0  # fmt: skip
        texts[name] = [r["completion"] for r in read_records(traces)]
    assert len(texts["adapter"]) == 3
    assert texts["adapter"] == texts["merged"]  # the same teacher either way (same seeds, same weights)
