"""The paper's two further findings as opt-in demo stages (``rlt demo --findings``).

- **E5, cold start.** The student distilled from the RLT teacher's traces, then its own RL
  with the correctness reward, against the same RL from the base model the distilled
  student started from ("RL from scratch"), at the same RL budget (steps, batch, group).
- **E6, transfer.** The digits teachers (warm-up and RLT) explain Countdown questions they
  never saw; a fresh student is distilled from each teacher's Countdown traces and
  evaluated on held-out Countdown questions.

Each stage reuses the seed's finished models (``rlt demo`` stages 0-4) and leaves stage
markers, so ``--findings`` can be added to a finished run's output and only these stages run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.tasks import CountdownTask, DigitsTask


@dataclass
class FindingsArguments:
    """Settings of the E5 and E6 stages (mixed into :class:`rlt.demo.DemoArguments`)."""

    findings: bool = field(
        default=False,
        metadata={
            "help": "Also run E5 (cold-start student RL vs RL from scratch) and E6 (the digits teachers "
            "explaining Countdown zero-shot). 334 s more for three seeds on 2 cores (measured on a finished run)."
        },
    )
    e5_rl_steps: int = field(default=40, metadata={"help": "E5: student RL steps of each arm."})
    e6_questions: int = field(
        default=500, metadata={"help": "E6: Countdown questions each teacher explains."}
    )
    e6_distill_steps: int = field(
        default=300, metadata={"help": "E6: steps of each Countdown student (batch 16)."}
    )
    e6_eval_questions: int = field(default=200, metadata={"help": "E6: held-out Countdown questions."})


def _cached(path: Path, fn: Any) -> Any:
    """``fn()``'s JSON result, computed once: a resumed run reads it back."""
    if path.exists():
        return json.loads(path.read_text())
    value = fn()
    path.write_text(json.dumps(value))
    return value


def e5_cold_start(
    cfg: Any, seed: int, root: Path, task: DigitsTask, eval_rows: list[dict[str, Any]], stage: Any
) -> dict[str, float]:
    """E5: held-out accuracy after student RL from the RLT-distilled student and from the base model."""
    from rlt import train
    from rlt.demo import _common_train_args, evaluate_dir

    def rl(model: Path, out_dir: Path) -> None:
        train.main([
            "--model_name_or_path", str(model), "--task", "digits", "--task_size", "2000",
            "--task_seed", str(1000 * seed + 7), "--num_ops", str(task.num_ops), "--modulus", str(task.modulus),
            "--policy", "student", "--reward_funcs", "correctness", "--chat_format", "compact",
            "--student_system_prompt", "", "--max_steps", str(cfg.e5_rl_steps),
            "--per_device_train_batch_size", "64", "--num_generations", "8", "--temperature", "0.7",
            "--max_completion_length", "48", "--learning_rate", str(cfg.rl_learning_rate),
            "--lr_scheduler_type", "constant", "--beta", "0", "--loss_type", "grpo",
            "--gradient_checkpointing", "false", "--logging_steps", "1",
            *_common_train_args(out_dir, seed),
        ])  # fmt: skip

    out = {}
    for arm, start in (("cold_start", root / "student_rlt_teacher"), ("from_scratch", root / "base_model")):
        out_dir = root / f"e5_{arm}"
        stage(f"E5 student RL ({arm})", lambda start=start, out_dir=out_dir: rl(start, out_dir), out_dir)
        out[arm] = _cached(
            root / f"eval_e5_{arm}.json", lambda out_dir=out_dir: evaluate_dir(out_dir, eval_rows)
        )
    return out


def e6_transfer(cfg: Any, seed: int, root: Path, stage: Any) -> dict[str, float]:
    """E6: Countdown accuracy of students distilled from each digits teacher's zero-shot Countdown traces."""
    from rlt import collect, sft
    from rlt.demo import COMPACT, _sft_args, _write_jsonl, evaluate_dir
    from rlt.loading import load_model_and_tokenizer

    countdown = CountdownTask()
    rows = countdown.generate(cfg.e6_questions, seed=1000 * seed + 9)
    eval_rows = countdown.generate(cfg.e6_eval_questions, seed=1000 * seed + 10)
    out = {}
    for arm, teacher in (("sft_teacher", root / "teacher_sft"), ("rlt_teacher", root / "teacher_rlt")):
        traces = root / f"e6_traces_{arm}.jsonl"
        if not traces.exists():
            model, tok = load_model_and_tokenizer(str(teacher))
            partial = traces.with_suffix(".partial")
            collect.collect_traces(
                model, tok, rows, partial, num_traces=1, temperature=0.7, max_new_tokens=32,
                batch_size=128, seed=1000 * seed, tag_format=COMPACT, system_prompt="", progress=False,
            )  # fmt: skip
            partial.rename(traces)
        data = _write_jsonl(
            root / f"e6_distill_{arm}.jsonl",
            [
                {"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
                for r in map(json.loads, traces.read_text().splitlines())
            ],
        )
        out_dir = root / f"e6_student_{arm}"
        args = _sft_args(
            str(root / "base_model"), data, out_dir, cfg.e6_distill_steps, seed, "explanation", 6e-3
        )
        # Countdown questions are long English sentences: a longer context than the digits' 256
        args += [
            "--per_device_train_batch_size",
            "16",
            "--max_length",
            "512",
            "--allow_empty_explanation",
            "true",
        ]
        stage(f"E6 distil on Countdown ({arm})", lambda args=args: sft.distill_main(args), out_dir)
        out[arm] = _cached(
            root / f"eval_e6_{arm}.json",
            lambda out_dir=out_dir: evaluate_dir(out_dir, eval_rows, "countdown", 64),
        )
    return out
