"""What every stage of a demo seed shares: its run (directory, task, data, stage markers) and helpers.

A finished stage leaves a ``.rlt_stage_done`` marker in the directory it wrote; a re-run
with the same settings (``settings.json``) skips it, so an interrupted demo resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rlt.demo.arguments import DemoArguments, FindingsArguments
from rlt.formats import get_tags
from rlt.tasks import DigitsTask

# Tiny character models: short prompts, no tag padding (the stratos chat is for real models).
COMPACT = get_tags("bespoke", "compact")

# Settings that do not change what a finished stage computed: a re-run with other values of
# these keeps the stages (E5/E6 settings too, so --findings can be added to a finished run).
RESUME_IGNORES = frozenset(
    {"out", "seeds", "workers", "kl_ablation", *(f.name for f in fields(FindingsArguments))}
)

Report = Callable[[int, str], None]


def common_train_args(out_dir: Path, seed: int) -> list[str]:
    """Trainer arguments of every demo stage: CPU, float32, no checkpoints, no reporting."""
    return [
        "--output_dir", str(out_dir), "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
        "--save_strategy", "no", "--disable_tqdm", "true", "--seed", str(seed), "--dtype", "float32",
    ]  # fmt: skip


def sft_args(
    model: str, data: Path, out_dir: Path, steps: int, seed: int, column: str, lr: float = 3e-3
) -> list[str]:
    """``rlt warmup``/``rlt distill`` arguments of a demo SFT stage (batch 32, compact chat)."""
    return [
        "--model_name_or_path", model, "--dataset_name", str(data), "--explanation_column", column,
        "--system_prompt", "", "--chat_format", "compact", "--max_steps", str(steps), "--per_device_train_batch_size", "32",
        "--learning_rate", str(lr), "--lr_scheduler_type", "linear", "--warmup_steps", "20",
        "--weight_decay", "0", "--logging_steps", str(max(1, steps // 5)), "--max_length", "256",
        # recomputing activations only costs time at these sizes (TRL turns it on by default)
        "--gradient_checkpointing", "false",
        *common_train_args(out_dir, seed),
    ]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as a JSONL file at ``path`` (rewritten whole); returns ``path``."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cached_json(path: Path, fn: Callable[[], Any]) -> Any:
    """``fn()``'s JSON result, computed once: a resumed run reads it back."""
    if path.exists():
        return json.loads(path.read_text())
    value = fn()
    path.write_text(json.dumps(value))
    return value


def evaluate_dir(
    model_dir: Path, rows: list[dict[str, Any]], task: str = "digits", max_new_tokens: int = 48
) -> float:
    """Greedy held-out accuracy of the model saved in ``model_dir`` (the compact student chat)."""
    from rlt import evaluate
    from rlt.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(model_dir))
    res = evaluate.evaluate_model(
        model, tok, rows, task, num_samples=1, max_new_tokens=max_new_tokens, batch_size=128,
        tag_format=COMPACT, system_prompt="", progress=False,
    )  # fmt: skip
    return float(res["accuracy"])


def guard_settings(root: Path, name: str, settings: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """Remove an opt-in study's outputs (glob patterns under ``root``) when its settings changed.

    A study's settings are left out of ``settings.json`` (adding the study to a finished run
    keeps the run's stages), so the study keeps its own, ``<name>_settings.json``: a re-run
    with other values redoes the study instead of reusing stages computed with the old ones
    (outputs without a settings file are of unknown settings: removed too).
    """
    path, text = root / f"{name}_settings.json", json.dumps(settings, sort_keys=True)
    if not path.exists() or path.read_text() != text:  # no file: outputs of unknown settings
        for pattern in outputs:
            for old in root.glob(pattern):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    path.write_text(text)


@dataclass
class SeedRun:
    """One seed's run: its directory, task and data, and :meth:`stage`, which skips finished stages."""

    cfg: DemoArguments
    seed: int
    root: Path
    task: DigitsTask
    report: Report
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def base(self) -> int:
        """The seed's offset of every data and model seed (each stage adds its own small number)."""
        return 1000 * self.seed

    @classmethod
    def start(cls, cfg: DemoArguments, seed: int, report: Report) -> SeedRun:
        """Set the threads, (re)use ``<out>/seed<N>`` (cleared if its settings changed), draw the data."""
        import torch

        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 2) // max(1, cfg.workers)))
        root = Path(cfg.out) / f"seed{seed}"
        settings = json.dumps(
            {k: v for k, v in asdict(cfg).items() if k not in RESUME_IGNORES}, sort_keys=True
        )
        if (root / "settings.json").exists() and (root / "settings.json").read_text() != settings:
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "settings.json").write_text(settings)
        task = DigitsTask(num_ops=cfg.num_ops, modulus=cfg.modulus, style_mix=cfg.mix())
        run = cls(cfg, seed, root, task, report)
        b = run.base
        run.rows = {
            "pretrain": task.generate(4000, seed=b + 1),
            "warmup": task.generate(4000, seed=b + 2),
            "distill": task.generate(cfg.distill_questions, seed=b + 4),
            "eval": task.generate(cfg.eval_questions, seed=b + 5),
        }
        return run

    def note(self, message: str) -> None:
        """A line for the console that is not a stage (indented: the progress bar does not advance)."""
        self.report(self.seed, f"  {message}")

    def stage(self, name: str, fn: Callable[[], Any], done: Path | None = None) -> Any:
        """Run ``fn`` as the stage ``name``; with ``done`` (its output), skipped if that is marked done."""
        marker = None if done is None else done / ".rlt_stage_done"
        if marker is not None and marker.exists():
            self.report(self.seed, f"{name} (done before, skipped)")
            return None
        start = time.time()
        result = fn()
        if marker is not None:
            marker.write_text("")
        self.report(self.seed, f"{name} ({time.time() - start:.0f} s)")
        return result
