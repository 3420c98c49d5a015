"""One GRPO step of an RLT teacher with a frozen student, through ``rlt.train``, timed by phase.

Teacher and student are random-weight models at Qwen2.5 shapes, from
``benchmarks/configs/qwen2.5-<model>.json`` (``--tiny``: 2 layers, hidden 64 and the
project's character vocabulary, for a CPU smoke run). Random weights cost what trained
ones do, except that a random teacher over a 152k vocabulary almost never samples its end
token, so nearly every completion runs to ``--max_completion_length``: the worst case for
generation and for the reward alike. (The tiny one, with ~110 tokens, often stops early.)

The path is the project's own: ``rlt.train.parse_train_args`` on a command line like the
recipes' and ``rlt.train.build_trainer`` (the ``RLTGRPOTrainer``, a TRL ``GRPOTrainer``
with the RLT reward). ``build_trainer`` loads models by path, so the random models are
written to a temporary directory first (``save_pretrained``) instead of being injected.
The trainer's structure mirrors ``recipes/qwen2.5-7b/teacher_rlt.yaml``: one generation
round per optimizer step (``steps_per_generation`` = ``gradient_accumulation_steps``,
``num_iterations`` 1), so TRL computes no old log-probs and the teacher's log-probs come
from the reward's own no-grad forward of the policy; ``beta`` 0.04 (a reference model).

Phases, timed by wrapping the trainer's and the reward's methods on the *instances*
(``rlt.train`` itself is not modified) and by a callback around each optimizer step:

- generation: ``_generate`` (transformers ``generate``, or vLLM with ``--use_vllm``);
- reward: ``_calculate_rewards``, split into the student's forward (``RLTReward.score_ids``
  minus what follows) and the teacher's log-probs (``compute_teacher_logprobs`` /
  ``rlt_policy_logprobs``: one no-grad forward of the policy);
- other scoring: the rest of ``_generate_and_score_completions`` (reference-model
  log-probs, advantages);
- policy update: the rest of the step (loss forward and backward over the micro-batches,
  gradient clipping, the optimiser).

Printed: each phase's time and share of the step, and the reward's share against the
target (≤ 20 %). The first ``--steps`` − 1 steps are warm-up (CUDA context, kernels) and
are not reported.

Usage::

    python benchmarks/train_step_gpu.py                        # Qwen2.5-1.5B shapes, bf16, on the GPU
    python benchmarks/train_step_gpu.py --use_vllm             # generation by vLLM (colocated), if installed
    python benchmarks/train_step_gpu.py --device cpu --tiny    # smoke run (the test suite's)
    # the LoRA teacher of the one-GPU recipe at 7B shapes, a frozen 7B student, peak memory judged
    python benchmarks/train_step_gpu.py --model 7b --recipe recipes/qwen2.5-7b/teacher_rlt_lora.yaml \
        --per_device_train_batch_size 1 --gradient_accumulation_steps 4 --num_generations 4 --peak_target_gb 48
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

CONFIGS = Path(__file__).resolve().parent / "configs"
TARGET_REWARD_SHARE = 0.20
# (default, --tiny default) of the run's sizes.
SIZE_DEFAULTS = {
    "per_device_train_batch_size": (4, 2),
    "gradient_accumulation_steps": (4, 2),
    "num_generations": (8, 2),
    "max_completion_length": (1024, 16),
}
TINY_BODY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


# --------------------------------------------------------------------------- models


def padded_tokenizer(vocab_size: int) -> Any:
    """The character tokenizer of ``rlt.models`` grown to ``vocab_size`` with filler tokens."""
    from rlt.models import char_tokenizer

    tok = char_tokenizer(vocab_size=vocab_size)
    if len(tok) != vocab_size:
        raise RuntimeError(f"padded tokenizer has {len(tok)} tokens, expected {vocab_size}")
    return tok


def build_models(
    out: Path, model: str, tiny: bool, dtype: torch.dtype, init_device: str = "cpu", shared: bool = False
) -> tuple[str, str]:
    """Write a random teacher (seed 0) and student (seed 1) with one shared tokenizer; their paths.

    ``init_device``: where the random weights are drawn (``cuda`` is much faster than the CPU
    for 7B shapes). ``shared``: one set of weights for both (the student's path is a link to
    the teacher's), halving the time spent writing a 15 GB model; costs are unchanged.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlt.loading import save_tokenizer
    from rlt.models import char_tokenizer

    raw = json.loads((CONFIGS / f"qwen2.5-{model}.json").read_text())
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "torch_dtype")}
    if tiny:
        tok = char_tokenizer()
        fields.update(TINY_BODY, vocab_size=len(tok))
    else:
        tok = padded_tokenizer(fields["vocab_size"])
    fields.update(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    cfg = AutoConfig.for_model(raw["model_type"], **fields)
    paths = []
    for name, seed in (("teacher", 0), ("student", 1)):
        if shared and paths:
            (out / name).symlink_to(out / "teacher", target_is_directory=True)
            paths.append(str(out / name))
            continue
        torch.manual_seed(seed)
        with torch.device(init_device):
            m = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        m.generation_config.pad_token_id = tok.pad_token_id
        m.generation_config.eos_token_id = tok.eos_token_id
        m.save_pretrained(out / name)
        save_tokenizer(tok, out / name)
        paths.append(str(out / name))
        del m
        if init_device.startswith("cuda"):
            torch.cuda.empty_cache()
    return paths[0], paths[1]


# --------------------------------------------------------------------------- timing


class PhaseTimer(TrainerCallback):
    """Wall-clock time of wrapped methods, summed per optimizer step (a ``TrainerCallback``)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self._t0 = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()  # kernels are asynchronous: charge them to the phase that queued them

    def wrap(self, obj: Any, name: str, label: str) -> None:
        """Replace ``obj.name`` by a timed wrapper on the instance (the class is untouched)."""
        original: Callable[..., Any] = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._sync()
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._sync()
                self.current[label] += time.perf_counter() - t0

        setattr(obj, name, timed)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        self.current = defaultdict(float)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        record = dict(self.current)
        record["step"] = time.perf_counter() - self._t0
        if self.cuda:
            record["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.steps.append(record)


def instrument(trainer: Any, timer: PhaseTimer) -> None:
    """Time generation, the reward (student / teacher parts) and the whole scoring of ``trainer``."""
    timer.wrap(trainer, "_generate_and_score_completions", "generate_and_score")
    timer.wrap(trainer, "_generate", "generation")
    timer.wrap(trainer, "_calculate_rewards", "reward")
    timer.wrap(trainer, "rlt_policy_logprobs", "teacher_logprobs")
    reward = trainer.rlt_reward
    if reward is not None:
        timer.wrap(reward, "score_ids", "reward_score_ids")
        timer.wrap(reward, "compute_teacher_logprobs", "teacher_logprobs")
    trainer.add_callback(timer)


def phases(rec: dict[str, float]) -> list[tuple[str, float]]:
    """The step split into disjoint phases (the wrapped methods nest; this undoes the nesting)."""
    gen, rew, teacher = rec.get("generation", 0.0), rec.get("reward", 0.0), rec.get("teacher_logprobs", 0.0)
    scoring = rec.get("generate_and_score", 0.0)
    step = rec["step"]
    return [
        ("generation", gen),
        ("reward", rew),
        ("  student forward (RLTReward)", max(0.0, rew - teacher)),
        ("  teacher log-probs (policy)", teacher),
        ("other scoring (ref log-probs, advantages)", max(0.0, scoring - gen - rew)),
        ("policy update (loss, backward, optimiser)", max(0.0, step - scoring)),
    ]


# --------------------------------------------------------------------------- main


def train_argv(args: argparse.Namespace, teacher: str, student: str, out: Path) -> list[str]:
    """The ``rlt train`` command line (the recipes' settings that matter for cost)."""
    cpu = args.device == "cpu"
    bf16 = args.dtype == "bf16"
    argv = ["--config", args.recipe] if args.recipe else []
    if args.recipe:
        # The recipe's LoRA, reward and loss settings stay; what needs a download, a package the
        # benchmark machine lacks (vLLM, flash-attn) or hours (1024 completions a step) is overridden.
        argv += [
            "--dataset_name", "null", "--use_vllm", "false", "--vllm_enable_sleep_mode", "false",
            "--log_completions", "false", "--attn_implementation", args.attn or "sdpa",
            "--gradient_checkpointing_kwargs", '{"use_reentrant": false}',
        ]  # fmt: skip
    argv += [
        "--model_name_or_path", teacher, "--student_model_name_or_path", student,
        "--dtype", "bfloat16" if bf16 else "float32", "--student_dtype", "bfloat16" if bf16 else "float32",
        "--task", "digits", "--task_size", "64", "--task_seed", "1", "--tag_format", "bespoke",
        "--policy", "teacher", "--reward_funcs", "rlt", "--rlt_log_completions_steps", "0",
        "--output_dir", str(out), "--max_steps", str(args.steps), "--seed", "0",
        "--per_device_train_batch_size", str(args.per_device_train_batch_size),
        "--gradient_accumulation_steps", str(args.gradient_accumulation_steps),
        "--num_generations", str(args.num_generations), "--num_iterations", "1",
        "--max_completion_length", str(args.max_completion_length),
        "--temperature", "0.7", "--teacher_temperature", "0.7", "--student_temperature", "0.7",
        "--lr_scheduler_type", "constant", "--beta", str(args.beta),
        "--loss_type", "grpo", "--scale_rewards", "group", "--max_grad_norm", "1.0",
        "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
        "--use_cpu", str(cpu).lower(), "--bf16", str(bf16 and not cpu).lower(),
        "--gradient_checkpointing", str(not args.tiny).lower(),
    ]  # fmt: skip
    if not args.recipe:
        argv += ["--learning_rate", "1e-6"]
    if args.attn and not args.recipe:
        argv += ["--attn_implementation", args.attn]
    if args.use_vllm:
        argv += ["--use_vllm", "true", "--vllm_mode", "colocate",
                 "--vllm_gpu_memory_utilization", str(args.vllm_gpu_memory_utilization)]  # fmt: skip
    return argv


def main(argv: list[str] | None = None) -> int:
    """Build the models, run ``--steps`` GRPO steps, print the last step's phases."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--model", choices=["1.5b", "7b"], default="1.5b", help="teacher and student shapes")
    p.add_argument("--tiny", action="store_true", help="tiny models and lengths: a smoke run")
    p.add_argument(
        "--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on cuda, fp32 on cpu"
    )
    p.add_argument("--per_device_train_batch_size", type=int, default=None, help="default 4 (--tiny: 2)")
    p.add_argument("--gradient_accumulation_steps", type=int, default=None,
                   help="micro-batches per optimizer step, all fed by one generation round; "
                   "default 4 (--tiny: 2)")  # fmt: skip
    p.add_argument("--num_generations", type=int, default=None, help="default 8 (--tiny: 2)")
    p.add_argument("--max_completion_length", type=int, default=None, help="default 1024 (--tiny: 16)")
    p.add_argument("--beta", type=float, default=0.04, help="KL to the reference model (the paper's 0.04)")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps; only the last is reported")
    p.add_argument("--attn", default=None, help="attn_implementation (e.g. flash_attention_2); default sdpa")
    p.add_argument("--use_vllm", action="store_true", help="TRL's vLLM generation (colocate mode)")
    p.add_argument("--vllm_gpu_memory_utilization", type=float, default=0.3)
    p.add_argument("--recipe", help="a teacher recipe (e.g. recipes/qwen2.5-7b/teacher_rlt_lora.yaml) whose "
                   "LoRA, reward and loss settings the step uses; data, vLLM and sizes are the benchmark's")  # fmt: skip
    p.add_argument("--peak_target_gb", type=float, default=None,
                   help="also judge the step's peak GPU memory against this many GB (docs/training.md's plan)")  # fmt: skip
    p.add_argument("--init_device", default=None, help="where random weights are drawn; default: --device")
    p.add_argument(
        "--json", help="also write the phases, every step's times and the verdicts to this JSON file"
    )
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --tiny for a smoke run)")
    if args.use_vllm and importlib.util.find_spec("vllm") is None:
        p.error("--use_vllm: vllm is not importable in this environment (pip install 'rlt[vllm]')")
    # --tiny picks small defaults; sizes given on the command line win either way.
    for name, (full, tiny) in SIZE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    args.dtype = args.dtype or ("fp32" if args.device == "cpu" else "bf16")

    from rlt import train

    timer = PhaseTimer(cuda=args.device == "cuda")
    with tempfile.TemporaryDirectory(prefix="rlt-train-step-") as tmp:
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
        init_device = args.init_device or args.device
        teacher, student = build_models(
            Path(tmp), args.model, args.tiny, dtype, init_device, shared=args.model == "7b"
        )
        parsed = train.parse_train_args(train_argv(args, teacher, student, Path(tmp) / "run"))
        trainer = train.build_trainer(*parsed)
        instrument(trainer, timer)
        trainer.train()
        source = trainer.rlt_teacher_source
        peft = getattr(trainer.model, "peft_config", None) is not None
        trainable = sum(q.numel() for q in trainer.model.parameters() if q.requires_grad)
    if not timer.steps:
        raise RuntimeError("the trainer ran no optimizer step")
    rec = timer.steps[-1]
    step = rec["step"]
    device = "CPU" if args.device == "cpu" else torch.cuda.get_device_name()
    completions = args.per_device_train_batch_size * args.gradient_accumulation_steps
    shapes = f"Qwen2.5-{args.model} shapes" + (" (--tiny body, character vocabulary)" if args.tiny else "")
    print(
        f"one GRPO step on {device}: teacher and student at {shapes}, {args.dtype}, {completions} completions "
        f"({completions // args.num_generations} prompts x {args.num_generations}), up to "
        f"{args.max_completion_length} tokens, beta {args.beta:g}, generation "
        f"{'vLLM' if args.use_vllm else 'transformers'}, teacher log-probs from '{source}'; "
        f"step {len(timer.steps)} of {len(timer.steps)}:"
    )
    for name, seconds in phases(rec):
        print(f"  {name:<44} {seconds:9.3f} s  ({seconds / step:6.1%})")
    print(f"  {'step':<44} {step:9.3f} s")
    if "peak_gb" in rec:
        print(f"  peak GPU memory (max_memory_allocated)       {rec['peak_gb']:9.1f} GB")
    share = rec.get("reward", 0.0) / step
    note = " [--tiny smoke run: says nothing about the GPU target]" if args.tiny else ""
    targets = [{"target": f"reward <= {TARGET_REWARD_SHARE:.0%} of the step", "value": round(share, 4),
                "verdict": "met" if share <= TARGET_REWARD_SHARE else "NOT met"}]  # fmt: skip
    if args.peak_target_gb is not None:
        peak = rec.get("peak_gb")
        ok = peak is not None and peak <= args.peak_target_gb
        targets.append({"target": f"peak GPU memory <= {args.peak_target_gb:g} GB (docs/training.md plan)",
                        "value": None if peak is None else round(peak, 2), "verdict": "met" if ok else "NOT met"})  # fmt: skip
    print(
        f"target: reward <= {TARGET_REWARD_SHARE:.0%} of the step: {share:.1%}  {targets[0]['verdict']}{note}"
    )
    if len(targets) > 1:
        t = targets[1]
        value = "not measured (no CUDA)" if t["value"] is None else f"{t['value']:.1f} GB"
        print(f"target: {t['target']}: {value}  {t['verdict']}{note}")
    if args.json:
        report = {
            "benchmark": "train_step_gpu",
            "device": device,
            "model": args.model,
            "tiny": args.tiny,
            "recipe": args.recipe,
            "peft": peft,
            "trainable_parameters": trainable,
            "completions": completions,
            "max_completion_length": args.max_completion_length,
            "teacher_logprobs_source": source,
            "phases_s": {name.strip(): seconds for name, seconds in phases(rec)},
            "step_s": step,
            "peak_gb": rec.get("peak_gb"),
            "reward_share": share,
            "steps": timer.steps,
            "targets": targets,
            "verdict": "met" if all(t["verdict"] == "met" for t in targets) else "NOT met",
        }
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
