"""The paper recipes (recipes/qwen2.5-*) carry the released code's settings.

The values are those of github.com/SakanaAI/RLT (cfgs/run_cfg/teacher_sft.yaml,
cfgs/run_cfg/teacher_rlt.yaml over cfgs/trainer_cfg/{base,base_sft,grpo,teacher_grpo}.yaml and
reward_cfg/teacher_logprob_kl.yaml) and, for distillation, of the SkyThought baselines the RLT
README names (LLaMA-Factory qwen2_full_sft_{7B_17k,32B}.yaml). Every value is read from the
objects the project's parsers build (what the trainers get), not from the YAML text. Parsing
only: no model or data set is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WARMUP = ROOT / "recipes/qwen2.5-7b/teacher_warmup.yaml"
RLT = ROOT / "recipes/qwen2.5-7b/teacher_rlt.yaml"
DISTILL_7B = ROOT / "recipes/qwen2.5-7b/student_distill.yaml"
DISTILL_32B = ROOT / "recipes/qwen2.5-32b/student_distill.yaml"
SFT_RECIPES = (WARMUP, DISTILL_7B, DISTILL_32B)
ALL_RECIPES = (*SFT_RECIPES, RLT)
GPUS = 8  # the recipes' accelerate config (recipes/accelerate/zero3.yaml: num_processes 8)

# `--use_cpu true`: transformers refuses bf16 where no GPU is visible; it changes nothing else read here.
CPU = ["--use_cpu", "true"]


def _value(x):
    """An enum's value (lr_scheduler_type, save_strategy), anything else as is."""
    return getattr(x, "value", x)


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def parse_sft(recipe: Path):
    from rlt.sft import parse_sft_args

    return parse_sft_args(["--config", str(recipe), *CPU])


def parse_rlt(recipe: Path = RLT):
    from rlt.train import parse_train_args

    return parse_train_args(["--config", str(recipe), *CPU])


# --------------------------------------------------------------------------- keys


def _recipe_keys(recipe: Path) -> set[str]:
    data = yaml.safe_load(recipe.read_text())
    assert isinstance(data, dict) and data, recipe
    return set(data)


@pytest.mark.parametrize("recipe", SFT_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sft_recipe_keys_are_parser_fields(recipe):
    parsed = parse_sft(recipe)
    known = {f.name for obj in parsed for f in dataclasses.fields(obj)}
    assert _recipe_keys(recipe) <= known, sorted(_recipe_keys(recipe) - known)


def test_rlt_recipe_keys_are_parser_fields():
    parsed = parse_rlt()
    known = {f.name for obj in parsed for f in dataclasses.fields(obj)}
    assert _recipe_keys(RLT) <= known, sorted(_recipe_keys(RLT) - known)


@pytest.mark.parametrize("stage", ["sft", "rl"])
def test_unknown_recipe_key_is_refused(tmp_path, stage):
    """The parsers refuse an unknown key (so a misspelt setting cannot pass silently)."""
    from rlt.errors import ConfigError

    source = WARMUP if stage == "sft" else RLT
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.read_text() + "\nadam_beta_2: 0.95\n")
    with pytest.raises(ConfigError, match="adam_beta_2"):
        parse_sft(bad) if stage == "sft" else parse_rlt(bad)


# --------------------------------------------------------------------------- warm-up


def test_warmup_recipe_is_the_released_teacher_sft():
    model, data, sft, _ = parse_sft(WARMUP)
    assert model.model_name_or_path == "Qwen/Qwen2.5-7B-Instruct"
    assert (model.dtype, model.attn_implementation) == ("bfloat16", "flash_attention_2")
    assert (data.dataset_name, data.dataset_split) == ("bespokelabs/Bespoke-Stratos-17k", "train")
    assert (data.tag_format, data.chat_format) == ("bespoke", "stratos")

    assert sft.num_train_epochs == 10
    assert sft.learning_rate == 1e-5
    assert _value(sft.lr_scheduler_type) == "cosine"
    # warmup_ratio 0.05: transformers 5 reads a warmup_steps < 1 as a ratio of the total steps
    assert sft.warmup_steps == 0.05 and sft.get_warmup_steps(1000) == 50
    assert (sft.adam_beta1, sft.adam_beta2, sft.adam_epsilon) == (0.9, 0.95, 1e-8)
    assert sft.weight_decay == 1e-4
    assert sft.max_grad_norm == 1.0
    assert sft.per_device_train_batch_size * GPUS * sft.gradient_accumulation_steps == 16
    assert sft.per_device_train_batch_size == 1
    assert sft.max_length == 16384 and sft.packing is False
    assert sft.bf16 is True
    assert sft.gradient_checkpointing is True
    assert sft.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert sft.average_tokens_across_devices is False  # transformers 4.51's default
    assert _value(sft.save_strategy) == "epoch"
    assert sft.logging_steps == 1 and sft.seed == 42
    assert sft.completion_only_loss in (None, True)  # rlt warmup sets it to True


# --------------------------------------------------------------------------- RL


def test_rlt_recipe_is_the_released_teacher_rlt():
    model, data, grpo, train, reward = parse_rlt()
    assert model.model_name_or_path == "runs/qwen2.5-7b/teacher_warmup"
    assert model.dtype == "bfloat16"
    assert (data.dataset_name, data.dataset_split) == ("bespokelabs/Bespoke-Stratos-17k", "train")
    assert (data.tag_format, data.chat_format) == ("bespoke", "stratos")
    assert (reward.tag_format, reward.chat_format) == ("bespoke", "stratos")

    # trainer_cfg/base.yaml + grpo.yaml + run_cfg/teacher_rlt.yaml
    assert grpo.learning_rate == 1e-6
    assert _value(grpo.lr_scheduler_type) == "constant"
    assert (grpo.adam_beta1, grpo.adam_beta2, grpo.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert grpo.weight_decay == 0.0
    assert grpo.max_grad_norm == 1.0
    assert grpo.max_steps == 125
    assert grpo.beta == 0.04
    assert grpo.num_generations == 64
    assert grpo.temperature == 0.7
    assert (grpo.top_p, grpo.top_k, grpo.repetition_penalty) == (1.0, 0, 1.0)
    assert (grpo.sync_ref_model, grpo.ref_model_sync_steps, grpo.ref_model_mixup_alpha) == (True, 32, 0.9)
    assert grpo.max_completion_length == 16384 and train.max_prompt_length == 16384
    # train_batch_size 1024, one generation round per optimizer step, one update per round
    assert grpo.per_device_train_batch_size == 1
    assert grpo.per_device_train_batch_size * GPUS * grpo.gradient_accumulation_steps == 1024
    assert grpo.steps_per_generation == grpo.gradient_accumulation_steps
    assert grpo.num_iterations == 1
    # the release's loss: per-sequence token mean, then batch mean; (r - mean) / (std + 1e-4)
    assert grpo.loss_type == "grpo" and grpo.scale_rewards == "group"
    assert grpo.mask_truncated_completions is False
    assert grpo.bf16 is True and grpo.gradient_checkpointing is True
    assert grpo.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert _value(grpo.save_strategy) == "steps" and grpo.save_steps == 25
    assert grpo.logging_steps == 1 and grpo.seed == 42

    # the reward: run_cfg/teacher_rlt.yaml over reward_cfg/teacher_logprob_kl.yaml
    assert train.policy == "teacher" and train.reward_funcs == ["rlt"]
    assert train.student_model_name_or_path == "bespokelabs/Bespoke-Stratos-7B"
    assert reward.solution_coefs == [(1.0, "mean"), (0.01, "min")]
    assert reward.kl_coefs == [(3.0, "mean"), (0.03, "max")]
    assert reward.student_temperature == 0.7
    assert reward.teacher_temperature == grpo.temperature == 0.7
    assert reward.format_penalty == -1.0
    assert reward.empty_term_value == 1.0  # nan_to_num: -1 for solution terms, +1 for KL terms
    assert reward.student_tokenization == "segments"


# --------------------------------------------------------------------------- distillation


@pytest.mark.parametrize(
    ("recipe", "model_id"),
    [(DISTILL_7B, "Qwen/Qwen2.5-7B-Instruct"), (DISTILL_32B, "Qwen/Qwen2.5-32B-Instruct")],
    ids=["7b", "32b"],
)
def test_distill_recipes_are_the_skythought_baseline(recipe, model_id):
    model, data, sft, stage = parse_sft(recipe)
    assert model.model_name_or_path == model_id
    assert (data.tag_format, data.chat_format) == ("bespoke", "stratos")
    assert stage.explanation_column == "explanation"
    assert sft.num_train_epochs == 3
    assert sft.learning_rate == 1e-5
    assert _value(sft.lr_scheduler_type) == "cosine"
    assert sft.warmup_steps == 0.1 and sft.get_warmup_steps(1000) == 100
    assert (sft.adam_beta1, sft.adam_beta2, sft.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert sft.weight_decay == 0.0 and sft.max_grad_norm == 1.0
    assert sft.per_device_train_batch_size * GPUS * sft.gradient_accumulation_steps == 96
    assert sft.max_length == 16384 and sft.packing is False
    assert sft.bf16 is True and sft.gradient_checkpointing is True
    assert sft.average_tokens_across_devices is False
    assert sft.seed == 42
