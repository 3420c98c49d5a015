"""SFT steps of both stages (``rlt warmup``, ``rlt distill``) through ``rlt.sft``, in tokens/s.

The model is a random-weight Qwen2.5 of ``benchmarks/configs/qwen2.5-<model>.json`` with the
project's character vocabulary grown to the real size (``train_step_gpu.build_models``;
``--tiny``: 2 layers, hidden 64, the plain character vocabulary). The data is the built-in
``digits`` task with ``--num_ops`` operations a question (longer traces: more tokens a
sequence). The path is the project's own: ``rlt.sft.parse_sft_args`` and
``rlt.sft.build_sft_trainer`` (TRL's ``SFTTrainer`` on the stage's prompt/completion view,
loss on the completion only).

Per stage (``teacher`` = warm-up, ``student`` = distillation), after ``--steps`` − 1 warm-up
steps: the time of the last optimizer step, the tokens it read (attention mask) and the tokens
its loss counted (labels ≠ −100), tokens/s, the training MFU (6 · linear-layer parameters ·
tokens + attention over the dense bf16 peak) and the peak GPU memory.

Targets (benchmarks/RESULTS.md), judged per stage: the completion-only mask holds (0 < loss
tokens < tokens: the prompt is masked and the completion is not); training MFU ≥ 25 % at
1.5B shapes on an H100/H200 (``--tiny`` or CPU: not judged, reported as ``not measured``).

Usage::

    python benchmarks/sft_step_gpu.py --json sft_1.5b.json          # Qwen2.5-1.5B shapes, bf16, GPU
    python benchmarks/sft_step_gpu.py --device cpu --tiny --steps 1  # smoke run (the test suite's)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reward_gpu import bf16_peak_tflops, forward_flops  # noqa: E402
from train_step_gpu import build_models  # noqa: E402

TARGET_MFU = 0.25
STAGES = ("teacher", "student")


class StepMeter(TrainerCallback):
    """Time, tokens and peak memory of each optimizer step (tokens counted in ``compute_loss``)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.steps: list[dict[str, Any]] = []
        self._cur: dict[str, Any] = {}
        self._t0 = 0.0

    def wrap_loss(self, trainer: Any) -> None:
        original = trainer.compute_loss

        def counted(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            mask = inputs.get("attention_mask")
            ids = inputs["input_ids"]
            self._cur["tokens"] = self._cur.get("tokens", 0) + int(
                mask.sum() if mask is not None else ids.numel()
            )
            labels = inputs.get("labels")
            if labels is not None:
                self._cur["loss_tokens"] = self._cur.get("loss_tokens", 0) + int((labels != -100).sum())
            rows = mask.sum(dim=1).tolist() if mask is not None else [ids.shape[1]] * ids.shape[0]
            self._cur.setdefault("lengths", []).extend(int(n) for n in rows)
            return original(model, inputs, *args, **kwargs)

        trainer.compute_loss = counted

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        self._cur = {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        rec = dict(self._cur, step_s=time.perf_counter() - self._t0)
        if self.cuda:
            rec["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.steps.append(rec)


def sft_argv(args: argparse.Namespace, model: str, out: Path, stage: str) -> list[str]:
    """The ``rlt warmup`` / ``rlt distill`` command line of the benchmark."""
    cpu = args.device == "cpu"
    bf16 = args.dtype == "bf16"
    return [
        "--model_name_or_path", model, "--dtype", "bfloat16" if bf16 else "float32",
        "--task", "digits", "--task_size", "256", "--task_seed", "0", "--num_ops", str(args.num_ops),
        "--tag_format", "bespoke", "--chat_format", "compact" if args.tiny else "stratos",
        "--output_dir", str(out / stage), "--max_steps", str(args.steps), "--seed", "0",
        "--per_device_train_batch_size", str(args.batch_size), "--gradient_accumulation_steps", "1",
        "--learning_rate", "1e-5", "--lr_scheduler_type", "constant", "--max_length", str(args.max_length),
        "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
        "--use_cpu", str(cpu).lower(), "--bf16", str(bf16 and not cpu).lower(),
        "--gradient_checkpointing", str(not args.tiny).lower(), "--dataloader_num_workers", "0",
    ]  # fmt: skip


def run_stage(args: argparse.Namespace, model_path: str, out: Path, stage: str) -> dict[str, Any]:
    """Train ``--steps`` steps of one stage; the last step's figures and verdicts."""
    from rlt import sft

    meter = StepMeter(cuda=args.device == "cuda")
    parsed = sft.parse_sft_args(sft_argv(args, model_path, out, stage), stage)
    trainer = sft.build_sft_trainer(stage, *parsed)
    meter.wrap_loss(trainer)
    trainer.add_callback(meter)
    trainer.train()
    if not meter.steps:
        raise RuntimeError(f"{stage}: the trainer ran no optimizer step")
    rec = meter.steps[-1]
    tokens, loss_tokens = rec.get("tokens", 0), rec.get("loss_tokens", 0)
    tps = tokens / rec["step_s"]
    _, peak_tflops = bf16_peak_tflops(args.device)
    # Training: forward + backward ≈ 3 forwards (+1 with gradient checkpointing, not counted: MFU, not HFU).
    flops = 3 * forward_flops(trainer.model, rec.get("lengths", []))
    mfu = flops / rec["step_s"] / (peak_tflops * 1e12) if peak_tflops and not args.tiny else None
    masked = 0 < loss_tokens < tokens
    targets = [
        {"target": "completion-only loss: 0 < loss tokens < tokens", "value": f"{loss_tokens}/{tokens}",
         "verdict": "met" if masked else "NOT met"},
        {"target": f"training MFU >= {TARGET_MFU:.0%}", "value": None if mfu is None else round(mfu, 4),
         "verdict": "not measured" if mfu is None else ("met" if mfu >= TARGET_MFU else "NOT met")},
    ]  # fmt: skip
    return {
        "stage": stage,
        "command": "rlt warmup" if stage == "teacher" else "rlt distill",
        "step_s": rec["step_s"],
        "tokens": tokens,
        "loss_tokens": loss_tokens,
        "mean_length": tokens / max(1, len(rec.get("lengths", []))),
        "tokens_per_s": tps,
        "mfu": mfu,
        "peak_gb": rec.get("peak_gb"),
        "steps": meter.steps,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--model", choices=["1.5b", "7b"], default="1.5b")
    p.add_argument("--tiny", action="store_true", help="tiny model and data: a smoke run")
    p.add_argument(
        "--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on cuda, fp32 on cpu"
    )
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--steps", type=int, default=3, help="optimizer steps a stage; only the last is reported")
    p.add_argument("--batch_size", type=int, default=None, help="sequences a step; default 8 (--tiny: 4)")
    p.add_argument(
        "--num_ops", type=int, default=None, help="digits operations a question; default 150 (--tiny: 3)"
    )
    p.add_argument("--max_length", type=int, default=4096)
    p.add_argument("--json", help="also write the figures and verdicts to this JSON file")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --tiny for a smoke run)")
    args.dtype = args.dtype or ("fp32" if args.device == "cpu" else "bf16")
    args.batch_size = args.batch_size or (4 if args.tiny else 8)
    args.num_ops = args.num_ops or (3 if args.tiny else 150)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    device = "CPU" if args.device == "cpu" else torch.cuda.get_device_name()

    results = []
    with tempfile.TemporaryDirectory(prefix="rlt-sft-step-") as tmp:
        teacher, _ = build_models(Path(tmp), args.model, args.tiny, dtype, args.device, shared=True)
        for stage in args.stages:
            results.append(run_stage(args, teacher, Path(tmp) / "run", stage))
    shapes = f"Qwen2.5-{args.model} shapes" + (" (--tiny body, character vocabulary)" if args.tiny else "")
    note = " [--tiny smoke run: says nothing about the GPU targets]" if args.tiny else ""
    print(f"SFT steps on {device}: {shapes}, {args.dtype}, {args.batch_size} sequences a step, "
          f"digits with {args.num_ops} operations, max_length {args.max_length}; step {args.steps} of {args.steps}:")  # fmt: skip
    for r in results:
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        peak = "" if r["peak_gb"] is None else f", peak {r['peak_gb']:.1f} GB"
        print(f"  {r['command']:<12} {r['step_s']:8.3f} s  {r['tokens']:>7} tokens (mean {r['mean_length']:.0f}), "
              f"{r['loss_tokens']:>7} in the loss  {r['tokens_per_s']:>10.0f} tokens/s  MFU {mfu}{peak}")  # fmt: skip
        for t in r["targets"]:
            print(f"    target: {t['target']}: {t['value']}  {t['verdict']}{note}")
    verdicts = [t["verdict"] for r in results for t in r["targets"]]
    verdict = (
        "NOT met"
        if "NOT met" in verdicts
        else ("met" if all(v == "met" for v in verdicts) else "not measured")
    )
    if args.json:
        report = {"benchmark": "sft_step_gpu", "device": device, "model": args.model, "tiny": args.tiny,
                  "dtype": args.dtype, "batch_size": args.batch_size, "num_ops": args.num_ops,
                  "stages": results, "targets": [t for r in results for t in r["targets"]], "verdict": verdict}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
