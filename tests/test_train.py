"""`rlt train`: GRPO of a teacher with the RLT reward and of a student, on tiny CPU models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from launching import free_port
from policy_logprobs import check_against_policy_forward

from rlt.errors import ConfigError, RLTError

NO_TASK = ["--task", "null"]  # switches the recipe's built-in task off

ROOT = Path(__file__).resolve().parents[1]
TEACHER_RECIPE = str(ROOT / "recipes/tiny/teacher_rlt.yaml")
STUDENT_RECIPE = str(ROOT / "recipes/tiny/student_rl.yaml")

# Tiny everything: 4 completions per step (2 questions x 2), 12 new tokens at most.
FAST = [
    "--task_size", "16",
    "--max_steps", "2",
    "--per_device_train_batch_size", "4",
    "--num_generations", "2",
    "--max_completion_length", "12",
    "--logging_steps", "1",
    "--save_strategy", "no",
    "--report_to", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def warm_teacher(tiny_model_dir, tmp_path_factory):
    """The tiny teacher after 2 steps of SFT warm-up (the RL stage's starting point)."""
    from rlt.sft import warmup_main

    out = str(tmp_path_factory.mktemp("warm"))
    argv = [
        "--config",
        str(ROOT / "recipes/tiny/teacher_warmup.yaml"),
        "--model_name_or_path",
        tiny_model_dir,
    ]
    argv += [
        "--output_dir",
        out,
        "--task_size",
        "16",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
    ]
    assert warmup_main(argv) == 0
    return out


def teacher_argv(teacher: str, student: str, out: Path, *extra: str) -> list[str]:
    return [
        "--config", TEACHER_RECIPE,
        "--model_name_or_path", teacher,
        "--student_model_name_or_path", student,
        "--output_dir", str(out),
        *FAST,
        *extra,
    ]  # fmt: skip


def log_history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def test_teacher_rl_logs_reward_components(warm_teacher, tiny_student_dir, tmp_path):
    from rlt.train import main

    out = tmp_path / "rl"
    assert main(teacher_argv(warm_teacher, tiny_student_dir, out, "--rlt_log_completions_steps", "1")) == 0
    history = [h for h in log_history(out) if "loss" in h]
    assert [h["step"] for h in history] == [1, 2]
    for key in (
        "rlt/reward",
        "rlt/solution_logprob_mean",
        "rlt/solution_logprob_min",
        "rlt/kl_mean",
        "rlt/kl_max",
        "rlt/penalty",
        "rlt/missing_close_tag_frac",
        "rlt/explanation_tokens",
        "rewards/rlt/mean",
    ):
        assert key in history[0], key
    assert history[0]["rlt/reward"] == pytest.approx(history[0]["rewards/rlt/mean"], rel=1e-5)
    records = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert {r["step"] for r in records} == {0, 1}
    assert {"reward", "kl_mean", "penalty", "num_explanation_tokens"} <= set(records[0]["components"])
    assert records[0]["prompt"].endswith("<|begin_of_explanation|>")
    assert (out / "model.safetensors").exists()


def test_teacher_logprob_sources_agree(warm_teacher, tiny_student_dir, tmp_path):
    """ℓ_T from TRL's old_per_token_logps and from TRL's forward equal the reward's own forward."""
    from rlt.train import build_trainer, parse_train_args

    seen = {}
    for source, extra in (
        ("captured", ["--steps_per_generation", "2", "--per_device_train_batch_size", "2"]),  # misaligned
        ("trainer", ["--rlt_teacher_logprobs", "trainer"]),
        ("reward", ["--rlt_teacher_logprobs", "reward"]),
    ):
        argv = teacher_argv(warm_teacher, tiny_student_dir, tmp_path / source, "--max_steps", "1", *extra)
        trainer = build_trainer(*parse_train_args(argv))
        check_against_policy_forward(trainer)
        trainer.train()
        seen[source] = dict(trainer.rlt_teacher_source_counts)
        # `auto` (captured) keeps the policy as the reward's teacher for what TRL did not hand over
        assert trainer.rlt_reward.teacher is (None if source == "trainer" else trainer.model)
        assert not any(p.requires_grad for p in trainer.rlt_reward.student.parameters())
    assert seen == {"captured": {"captured": 1}, "trainer": {"trainer": 1}, "reward": {"reward": 1}}


def test_resume_continues_from_the_saved_step(warm_teacher, tiny_student_dir, tmp_path):
    from rlt.train import main

    out = tmp_path / "rl"
    argv = teacher_argv(warm_teacher, tiny_student_dir, out, "--save_strategy", "steps", "--save_steps", "2")
    assert main(argv) == 0
    assert (out / "checkpoint-2" / "trainer_state.json").exists()
    argv = teacher_argv(
        warm_teacher, tiny_student_dir, out, "--save_strategy", "steps", "--save_steps", "2",
        "--max_steps", "3", "--resume_from_checkpoint", str(out / "checkpoint-2"), "--rlt_per_rank_logs", "true",
    )  # fmt: skip
    assert main(argv) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # the resumed run trained (and logged) step 3 only; steps 1-2 come from the checkpoint's history
    resumed = [json.loads(line) for line in (out / "rank_logs" / "rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed if "loss" in r] == [3]
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]


@pytest.mark.slow
def test_two_processes_agree_on_logged_rewards(warm_teacher, tiny_student_dir, tmp_path):
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    out = tmp_path / "ddp"
    cmd = [
        # `--cpu` picks accelerate's single-process launcher (accelerate 1.15 launch_command);
        # `--multi_gpu` on a machine without GPUs starts 2 torchrun processes on gloo (MULTI_CPU),
        # and the recipe's use_cpu keeps the trainer on the CPU.
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(free_port()),  # not torchrun's default 29500: other runs may hold it
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlt.cli", "train",
        *teacher_argv(warm_teacher, tiny_student_dir, out, "--rlt_per_rank_logs", "true"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = {}
    for rank in (0, 1):
        lines = (out / "rank_logs" / f"rank{rank}.jsonl").read_text().splitlines()
        logs[rank] = [json.loads(line) for line in lines if "loss" in json.loads(line)]
    assert [r["step"] for r in logs[0]] == [1, 2] == [r["step"] for r in logs[1]]
    for a, b in zip(logs[0], logs[1]):
        for key in (
            "reward",
            "rlt/reward",
            "rlt/kl_mean",
            "rlt/solution_logprob_mean",
            "rlt/explanation_tokens",
        ):
            assert a[key] == b[key], key
    # 2 processes x 4 completions: 8 completions, 4 questions per step
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_student_rl_cold_start(tiny_model_dir, tmp_path):
    from rlt.sft import distill_main
    from rlt.train import main

    distilled = tmp_path / "distilled"
    argv = [
        "--config",
        str(ROOT / "recipes/tiny/student_distill.yaml"),
        "--model_name_or_path",
        tiny_model_dir,
    ]
    argv += [
        "--output_dir",
        str(distilled),
        "--task_size",
        "16",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
    ]
    assert distill_main(argv) == 0
    out = tmp_path / "srl"
    argv = [
        "--config",
        STUDENT_RECIPE,
        "--model_name_or_path",
        str(distilled),
        "--output_dir",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    step = [h for h in log_history(out) if "loss" in h][0]
    assert "rewards/correctness/mean" in step and "rewards/format/mean" in step
    assert "student/accuracy" in step
    assert not any(k.startswith("rlt/") for k in step)


# --------------------------------------------------------------------------- validation


@pytest.fixture()
def no_weights(monkeypatch):
    """Validation must fail before any model weights load."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("model weights were loaded before validation")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


def run_train(argv: list[str]) -> None:
    from rlt.train import build_trainer, parse_train_args

    build_trainer(*parse_train_args(argv))


def test_batch_not_divisible_by_num_generations(tiny_model_dir, tiny_student_dir, tmp_path, no_weights):
    argv = teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--per_device_train_batch_size", "3")
    with pytest.raises(
        ConfigError,
        match=r"per_device_train_batch_size: per_device_train_batch_size \(3\) × processes \(1\) × gradient_accumulation_steps \(1\) = 3 completions per generation, which is not divisible by num_generations \(2\)",
    ):
        run_train(argv)
    argv = teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--generation_batch_size", "6")
    with pytest.raises(
        ConfigError, match=r"generation_batch_size: 6 must be divisible by per_device_train_batch_size \(4\)"
    ):
        run_train(argv)


def test_unknown_reward_and_missing_student(tiny_model_dir, tiny_student_dir, tmp_path, no_weights):
    with pytest.raises(ConfigError, match=r"reward_funcs: unknown reward 'nope'"):
        run_train(teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--reward_funcs", "rlt", "nope"))
    recipe = yaml.safe_load(Path(TEACHER_RECIPE).read_text())
    del recipe["student_model_name_or_path"]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    argv = [
        "--config",
        str(path),
        "--model_name_or_path",
        tiny_model_dir,
        "--output_dir",
        str(tmp_path),
        *FAST,
    ]
    with pytest.raises(ConfigError, match="student_model_name_or_path: required by the 'rlt' reward"):
        run_train(argv)
    with pytest.raises(ConfigError, match="reward_funcs: 'rlt' rewards a teacher"):
        run_train(teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--policy", "student"))


def test_unknown_tag_format(tiny_model_dir, tiny_student_dir, tmp_path, no_weights):
    with pytest.raises(RLTError, match="tag_format"):
        run_train(teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--tag_format", "xml"))


def test_temperature_and_weights_mismatch(tiny_model_dir, tiny_student_dir, tmp_path, no_weights):
    with pytest.raises(
        ConfigError, match=r"teacher_temperature: 0.7 differs from the generation temperature \(1.0\)"
    ):
        run_train(teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--temperature", "1.0"))
    with pytest.raises(ConfigError, match=r"reward_weights: 2 weights for 1 reward_funcs"):
        run_train(teacher_argv(tiny_model_dir, tiny_student_dir, tmp_path, "--reward_weights", "1.0", "2.0"))


def test_vocabulary_mismatch_is_caught_from_the_tokenizers(tiny_model_dir, tmp_path, no_weights):
    from rlt.loading import save_tokenizer
    from rlt.models import char_tokenizer

    other = tmp_path / "other_student"
    tok = char_tokenizer()
    tok.add_tokens(["<|extra|>"])
    save_tokenizer(tok, other)
    argv = teacher_argv(tiny_model_dir, str(other), tmp_path / "o")
    with pytest.raises(
        ConfigError, match=r"student_model_name_or_path: the student's vocabulary differs from the teacher's"
    ):
        run_train(argv)


def test_missing_columns(tiny_model_dir, tiny_student_dir, tmp_path, no_weights):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "1"}) + "\n" for i in range(4)))
    argv = teacher_argv(
        tiny_model_dir, tiny_student_dir, tmp_path / "o", "--dataset_name", str(data), *NO_TASK
    )
    with pytest.raises(RLTError, match="solution"):
        run_train(argv)


def test_paper_recipe_parses_with_1024_completions_per_step():
    from rlt.train import parse_train_args

    argv = [
        "--config",
        str(ROOT / "recipes/qwen2.5-7b/teacher_rlt.yaml"),
        "--use_cpu",
        "true",
        "--bf16",
        "false",
    ]
    model_args, data_args, grpo, train_args, reward = parse_train_args(argv)
    assert grpo.per_device_train_batch_size * 8 * grpo.steps_per_generation == 1024  # on the recipe's 8 GPUs
    assert grpo.steps_per_generation == grpo.gradient_accumulation_steps and grpo.num_generations == 64
    assert (grpo.beta, grpo.sync_ref_model, grpo.ref_model_sync_steps, grpo.ref_model_mixup_alpha) == (
        0.04,
        True,
        32,
        0.9,
    )
    assert (grpo.temperature, reward.teacher_temperature, grpo.max_steps, grpo.loss_type) == (
        0.7,
        0.7,
        125,
        "grpo",
    )
    assert reward.kl_coefs == [(3.0, "mean"), (0.03, "max")] and train_args.reward_funcs == ["rlt"]
    assert data_args.dataset_name == "bespokelabs/Bespoke-Stratos-17k"
