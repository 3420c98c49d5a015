"""`rlt demo`: the paper's effect, reproduced in miniature on a laptop CPU.

Per seed, on the built-in ``digits`` task with tiny local models (nothing downloaded):

0. **Base model.** A tiny model learns single-operation questions (``start 7; +2`` →
   ``7+2=9``): the elementary skill any pretrained LM brings. Every student starts here.
1. **Student pre-training.** The base learns to reason on multi-step ``steps`` traces
   (a stand-in for a pretrained reasoning model such as Bespoke-Stratos-7B). Frozen after.
2. **Teacher warm-up.** The teacher starts from the pre-trained student's weights, as the
   paper's teacher (Qwen2.5-7B-Instruct) and student (a fine-tune of it) share a base,
   and is SFT-trained on explanations of mixed styles (``steps``, ``leak``, ``wrong``,
   ``filler``). Nothing tells it which style is good.
3. **Teacher RL** with the RLT reward and the frozen student, through ``rlt train``; and
   again with the KL coefficients at 0 (the paper's ablation).
4. **Distillation.** Each teacher (warm-up, RLT, RLT without KL) explains a fixed set of
   training questions; a fresh copy of the base model (same steps for every arm)
   is trained on each trace set, plus one on question → answer with no explanation.
5. **Evaluation** of every student on held-out questions, writing its own reasoning.

Every stage runs through the same code as the CLI (``rlt distill``/``warmup``/``train``
parse the argument lists built here). Seeds run in parallel worker processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rlt.demo_findings import FindingsArguments
from rlt.formats import get_tags
from rlt.tasks import STYLES


@dataclass
class DemoArguments(FindingsArguments):
    """Arguments of `rlt demo`. The defaults are the full run; ``--quick`` shrinks every stage."""

    out: str = field(
        default="demo_out", metadata={"help": "Output directory (results.json, report.md, plots)."}
    )
    seeds: int = field(
        default=3, metadata={"help": "Number of seeds (independent repetitions of everything)."}
    )
    quick: bool = field(
        default=False, metadata={"help": "Few steps and one seed: a smoke run in ~2 minutes."}
    )
    workers: int = field(default=3, metadata={"help": "Seeds run in parallel in this many processes."})
    threads: int = field(
        default=0,
        metadata={
            "help": "torch threads per worker; 0 = cores / workers. Another count reorders floating-point sums "
            "(a stand-in for another CPU): the verdicts should not change, the digits may."
        },
    )
    num_ops: int = field(default=3, metadata={"help": "digits: operations per question."})
    modulus: int = field(default=10, metadata={"help": "digits: modulus."})
    style_mix: str = field(
        default="steps:0.25,leak:0.25,wrong:0.25,filler:0.25",
        metadata={"help": "Warm-up explanation styles and their weights."},
    )
    model_size: str = field(default="tiny", metadata={"help": "Tiny model size (rlt.models.TINY_SIZES)."})
    base_steps: int = field(
        default=600, metadata={"help": "Base-model steps on single-operation questions (batch 32)."}
    )
    pretrain_steps: int = field(default=1000, metadata={"help": "Student pre-training steps (batch 32)."})
    pretrain_learning_rate: float = field(
        default=3e-3, metadata={"help": "Student pre-training learning rate."}
    )
    student_min_accuracy: float = field(
        default=0.95,
        metadata={
            "help": "The pre-trained student trains on, in rounds, until it reaches this accuracy on 200 fresh "
            "questions: on some seeds' data order 1000 steps left it at 0.35-0.86 (arithmetic slips mid-chain), "
            "and the teachers, which start from it, inherited the slips."
        },
    )
    student_extra_steps: int = field(
        default=300, metadata={"help": "Steps of each extra pre-training round."}
    )
    student_extra_rounds: int = field(default=2, metadata={"help": "At most this many extra rounds."})
    kl_ablation: bool = field(
        default=False,
        metadata={
            "help": "Also train and distil an RLT teacher without the KL term. Off by default: the report's "
            "reward-parts table shows the miniature gives the KL term nothing to prevent (a leaked answer "
            "scores below correct steps on the solution term alone); on, it costs about 3 minutes more."
        },
    )
    explain_steps: int = field(
        default=300, metadata={"help": "Steps teaching the pre-trained model to explain in the teacher chat."}
    )
    warmup_steps: int = field(
        default=200, metadata={"help": "Teacher warm-up steps on mixed styles (batch 32)."}
    )
    warmup_learning_rate: float = field(default=5e-4, metadata={"help": "Teacher warm-up learning rate."})
    rl_steps: int = field(default=80, metadata={"help": "Teacher RL steps per arm."})
    rl_questions_per_step: int = field(default=8, metadata={"help": "Questions per RL step."})
    num_generations: int = field(default=8, metadata={"help": "Completions per question (GRPO group)."})
    rl_learning_rate: float = field(default=3e-4, metadata={"help": "Teacher RL learning rate."})
    distill_questions: int = field(
        default=1000, metadata={"help": "Training questions each teacher explains."}
    )
    distill_steps: int = field(
        default=800,
        metadata={
            "help": "Steps of every distilled student (batch 32). At 600, students of the same traces (at least 90 percent "
            "correct) reached 0.41-0.91 depending on the data order alone; at 800, 0.83-0.99 over 15 trace sets."
        },
    )
    distill_learning_rate: float = field(
        default=6e-3, metadata={"help": "Learning rate of every distilled student."}
    )
    eval_questions: int = field(default=300, metadata={"help": "Held-out evaluation questions."})

    def apply_quick(self) -> None:
        self.seeds = 1
        self.base_steps, self.pretrain_steps, self.explain_steps, self.warmup_steps, self.rl_steps = (
            60,
            100,
            20,
            30,
            4,
        )
        self.distill_questions, self.distill_steps, self.eval_questions = 64, 60, 48
        self.e5_rl_steps, self.e6_questions, self.e6_distill_steps, self.e6_eval_questions = 2, 32, 10, 16
        self.student_extra_steps = 10

    def mix(self) -> dict[str, float]:
        from rlt.errors import ConfigError

        out = {}
        for part in self.style_mix.split(","):
            name, _, weight = part.partition(":")
            try:
                out[name.strip()] = float(weight)
            except ValueError:
                raise ConfigError(f"style_mix: bad entry {part!r}; expected style:weight") from None
        return out


# --------------------------------------------------------------------------- helpers

# Tiny character models: short prompts, no tag padding (the stratos chat is for real models).
COMPACT = get_tags("bespoke", "compact")


def _common_train_args(out_dir: Path, seed: int) -> list[str]:
    return [
        "--output_dir",
        str(out_dir),
        "--use_cpu",
        "true",
        "--bf16",
        "false",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        "--seed",
        str(seed),
        "--dtype",
        "float32",
    ]


def _sft_args(
    model: str, data: Path, out_dir: Path, steps: int, seed: int, column: str, lr: float = 3e-3
) -> list[str]:
    return [
        "--model_name_or_path", model, "--dataset_name", str(data), "--explanation_column", column,
        "--system_prompt", "", "--chat_format", "compact", "--max_steps", str(steps), "--per_device_train_batch_size", "32",
        "--learning_rate", str(lr), "--lr_scheduler_type", "linear", "--warmup_steps", "20",
        "--weight_decay", "0", "--logging_steps", str(max(1, steps // 5)), "--max_length", "256",
        # recomputing activations only costs time at these sizes (TRL turns it on by default)
        "--gradient_checkpointing", "false",
        *_common_train_args(out_dir, seed),
    ]  # fmt: skip


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


_QUESTION_IN_PROMPT = re.compile(r"start \d+;[^\n<]*\(mod \d+\)")


def style_fractions(records: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per RL step, the share of each explanation style among the logged completions."""
    from rlt.formats import extract_explanation, get_tags
    from rlt.tasks import DigitsTask

    tags = get_tags("bespoke")
    by_step: dict[int, Counter[str]] = {}
    for rec in records:
        m = _QUESTION_IN_PROMPT.search(rec["prompt"])
        if not m:
            continue
        text = extract_explanation(rec["completion"], tags).text
        by_step.setdefault(rec["step"], Counter())[DigitsTask.classify_style(m.group(0), text)] += 1
    return {s: {k: c[k] / sum(c.values()) for k in STYLES} for s, c in sorted(by_step.items())}


def read_out(student: Any, tok: Any, task: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The frozen student's accuracy when each row's explanation is its thinking and it writes the answer.

    A measure of the traces themselves: distillation adds a training run's luck on top.
    """
    from rlt.formats import student_prompt
    from rlt.generation import SamplingSettings, generate_transformers

    t = COMPACT
    prompts = [
        student_prompt(tok, r["question"], t, "")
        + f"{t.think_open}{r['explanation']}{t.think_close}\n\n{t.solution_open}"
        for r in rows
    ]
    settings = SamplingSettings(temperature=0.0, max_new_tokens=8)
    correct: list[bool] = []
    for lo in range(0, len(prompts), 128):
        for r, ids in zip(
            rows[lo : lo + 128], generate_transformers(student, tok, prompts[lo : lo + 128], settings, 0)
        ):
            answer = tok.decode(ids, skip_special_tokens=False).split(t.solution_close)[0]
            correct.append(bool(task.verify(r["question"], answer)))
    return {"accuracy": sum(correct) / max(1, len(rows)), "correct": correct}


REWARD_PARTS = ("reward", "solution_logprob_mean", "kl_mean")


def trace_rewards(student: Any, teacher: Any, tok: Any, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The RLT reward of each collected trace and its two terms (its own teacher, the frozen student).

    For E4 (reward against outcome) and for the check of what the KL term has to do (reward
    parts by explanation style).
    """
    from rlt.rewards import RLTReward, RLTRewardConfig

    cfg = RLTRewardConfig(chat_format="compact", student_system_prompt="", teacher_system_prompt="")
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    out: list[dict[str, float]] = []
    for lo in range(0, len(rows), 128):
        batch = rows[lo : lo + 128]
        comps = reward.score_texts(
            [r["question"] for r in batch],
            [r["solution"] for r in batch],
            [r["explanation"] for r in batch],
            [bool(r.get("closed", True)) for r in batch],
        )
        # an empty explanation has no KL tokens: its KL part is 0, as in the reward
        out += [{k: float(c[k] or 0.0) for k in REWARD_PARTS} for c in comps]
    return out


def reward_parts_by_style(
    task: Any, rows: list[dict[str, Any]], parts: list[dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Mean reward parts of ``rows`` per explanation style (``task.classify_style``), with counts ``n``."""
    groups: dict[str, list[dict[str, float]]] = {}
    for r, p in zip(rows, parts):
        groups.setdefault(task.classify_style(r["question"], r["explanation"]), []).append(p)
    return {
        style: {"n": len(ps), **{k: statistics.fmean(p[k] for p in ps) for k in REWARD_PARTS}}
        for style, ps in groups.items()
    }


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


def train_until_sound(
    cfg: DemoArguments, seed: int, root: Path, student: Path, data: Path, check_rows: list[dict[str, Any]]
) -> list[float]:
    """Train the pre-trained student on in rounds until it is sound at the task; its accuracy per round.

    The frozen student is part of the set-up, not of what the demo measures, so it may train
    as long as it needs: a pre-training that stalls on a seed's data order would otherwise
    leave a weak student and weak teachers (they start from it). Stored in
    ``student_accuracy.json``; a resumed run reads it back.
    """
    from rlt import sft

    log = root / "student_accuracy.json"
    if log.exists():
        return json.loads(log.read_text())
    rounds = [evaluate_dir(student, check_rows)]
    while rounds[-1] < cfg.student_min_accuracy and len(rounds) <= cfg.student_extra_rounds:
        more = root / "student_more"
        shutil.rmtree(more, ignore_errors=True)
        args = _sft_args(
            str(student), data, more, cfg.student_extra_steps, seed + len(rounds), "explanation",
            cfg.pretrain_learning_rate,
        )  # fmt: skip
        sft.distill_main(args)
        shutil.rmtree(student)
        more.rename(student)
        (student / ".rlt_stage_done").write_text("")
        rounds.append(evaluate_dir(student, check_rows))
    log.write_text(json.dumps(rounds))
    return rounds


def _rl_history(run_dir: Path) -> dict[str, list[float]]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    out: dict[str, list[float]] = {"reward": [], "solution_logprob_mean": [], "kl_mean": []}
    for entry in state["log_history"]:
        if "rlt/reward" in entry:
            for key in out:
                out[key].append(float(entry.get(f"rlt/{key}", float("nan"))))
    return out


# --------------------------------------------------------------------------- one seed


def run_seed(cfg: DemoArguments, seed: int, report: Any = print) -> dict[str, Any]:
    """All five stages for one seed; returns accuracies and RL curves."""
    import torch

    from rlt import sft, train
    from rlt.loading import load_model_and_tokenizer
    from rlt.models import save_tiny_model
    from rlt.tasks import DigitsTask

    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 2) // max(1, cfg.workers)))
    root = Path(cfg.out) / f"seed{seed}"
    # A finished stage leaves a marker; a re-run with the same settings skips it.
    # E5/E6 settings are left out: adding --findings to a finished run reuses its stages
    ignored = {"out", "seeds", "workers", "kl_ablation", *(f.name for f in fields(FindingsArguments))}
    settings = json.dumps({k: v for k, v in asdict(cfg).items() if k not in ignored}, sort_keys=True)
    if (root / "settings.json").exists() and (root / "settings.json").read_text() != settings:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(settings)
    task = DigitsTask(num_ops=cfg.num_ops, modulus=cfg.modulus, style_mix=cfg.mix())
    base = 1000 * seed
    pretrain_rows = task.generate(4000, seed=base + 1)
    warmup_rows = task.generate(4000, seed=base + 2)
    distill_rows = task.generate(cfg.distill_questions, seed=base + 4)
    eval_rows = task.generate(cfg.eval_questions, seed=base + 5)
    t0 = time.time()

    def stage(name: str, fn: Any, done: Path | None = None) -> Any:
        marker = None if done is None else done / ".rlt_stage_done"
        if marker is not None and marker.exists():
            report(seed, f"{name} (done before, skipped)")
            return None
        start = time.time()
        result = fn()
        if marker is not None:
            marker.write_text("")
        report(seed, f"{name} ({time.time() - start:.0f} s)")
        return result

    # 0. the base model: single-operation questions only. Students trained from random weights learn
    # the digit tables and the task at once, which made distillation need more than twice the steps.
    init = root / "init_random"
    if not (init / "config.json").exists():
        save_tiny_model(init, cfg.model_size, seed=base)
    one_op = DigitsTask(num_ops=1, modulus=cfg.modulus).generate(4000, seed=base + 8)
    data = _write_jsonl(root / "base.jsonl", [{**r, "explanation": r["reasoning_trace"]} for r in one_op])
    base_model = root / "base_model"
    stage(
        "base model",
        lambda: sft.distill_main(_sft_args(str(init), data, base_model, cfg.base_steps, seed, "explanation")),
        base_model,
    )

    # 1. student pre-training on `steps` traces
    data = _write_jsonl(
        root / "pretrain.jsonl", [{**r, "explanation": r["reasoning_trace"]} for r in pretrain_rows]
    )
    student = root / "student"
    stage(
        "student pre-training",
        lambda: sft.distill_main(
            _sft_args(
                str(base_model),
                data,
                student,
                cfg.pretrain_steps,
                seed,
                "explanation",
                cfg.pretrain_learning_rate,
            )
        ),
        student,
    )
    student_accuracy = train_until_sound(cfg, seed, root, student, data, task.generate(200, seed=base + 11))
    report(
        seed,
        f"  pre-trained student: accuracy {student_accuracy[-1]:.3f} after {len(student_accuracy) - 1} extra round(s)",
    )

    # 2. the teacher's starting point: the pre-trained model, also taught to explain (`steps`) in the
    # teacher chat (a stand-in for an instruct model that can already write explanations); then the
    # warm-up on mixed styles
    data = _write_jsonl(
        root / "explain.jsonl",
        [
            {"question": r["question"], "solution": r["solution"], "reasoning_trace": r["reasoning_trace"]}
            for r in warmup_rows
        ],
    )
    teacher_init = root / "teacher_init"
    stage(
        "teacher initialisation",
        lambda: sft.warmup_main(
            _sft_args(str(student), data, teacher_init, cfg.explain_steps, seed, "reasoning_trace")
        ),
        teacher_init,
    )
    mixed = task.mixed_explanations([r["question"] for r in warmup_rows], seed=base + 3)
    data = _write_jsonl(
        root / "warmup.jsonl",
        [
            {"question": r["question"], "solution": r["solution"], "reasoning_trace": e}
            for r, (_, e) in zip(warmup_rows, mixed)
        ],
    )
    teacher_sft = root / "teacher_sft"
    stage(
        "teacher warm-up",
        lambda: sft.warmup_main(
            _sft_args(
                str(teacher_init),
                data,
                teacher_sft,
                cfg.warmup_steps,
                seed,
                "reasoning_trace",
                cfg.warmup_learning_rate,
            )
        ),
        teacher_sft,
    )

    # 3. teacher RL, with and without the KL term
    def rl(out_dir: Path, kl_coefs: str) -> None:
        batch = cfg.rl_questions_per_step * cfg.num_generations
        train.main([
            "--model_name_or_path", str(teacher_sft), "--task", "digits", "--task_size", "2000",
            "--task_seed", str(base + 6), "--num_ops", str(cfg.num_ops), "--modulus", str(cfg.modulus),
            "--policy", "teacher", "--reward_funcs", "rlt", "--student_model_name_or_path", str(student),
            "--student_dtype", "float32", "--kl_coefs", *kl_coefs.split(","),
            "--teacher_system_prompt", "", "--student_system_prompt", "", "--chat_format", "compact",
            "--rlt_log_completions_steps", "1", "--rlt_log_completions_num", str(batch),
            "--max_steps", str(cfg.rl_steps), "--per_device_train_batch_size", str(batch),
            "--num_generations", str(cfg.num_generations), "--temperature", "0.7",
            "--max_completion_length", "32", "--learning_rate", str(cfg.rl_learning_rate),
            "--lr_scheduler_type", "constant", "--beta", "0.04", "--loss_type", "grpo",
            "--gradient_checkpointing", "false", "--logging_steps", "1",
            *_common_train_args(out_dir, seed),
        ])  # fmt: skip

    teacher_rlt, teacher_nokl = root / "teacher_rlt", root / "teacher_rlt_no_kl"
    stage("teacher RL (RLT reward)", lambda: rl(teacher_rlt, "3.0:mean,0.03:max"), teacher_rlt)
    teachers = {"sft_teacher": teacher_sft, "rlt_teacher": teacher_rlt}
    if cfg.kl_ablation:
        stage("teacher RL (no KL term)", lambda: rl(teacher_nokl, "0:mean,0:max"), teacher_nokl)
        teachers["rlt_no_kl_teacher"] = teacher_nokl

    from rlt import collect, evaluate

    # 4. collect traces from each teacher and distil fresh students (the base model, for every arm)
    traces: dict[str, Path] = {}
    for arm, teacher_dir in teachers.items():
        model, tok = load_model_and_tokenizer(str(teacher_dir))
        out = root / f"traces_{arm}.jsonl"
        stage(
            f"collect ({arm})",
            lambda model=model, tok=tok, out=out: collect.collect_traces(
                model,
                tok,
                distill_rows,
                out,
                num_traces=1,
                temperature=0.7,
                max_new_tokens=32,
                batch_size=128,
                seed=base,
                tag_format=COMPACT,
                system_prompt="",
                progress=False,
            ),
        )
        traces[arm] = out
    traces["no_explanation"] = _write_jsonl(
        root / "traces_no_explanation.jsonl", [{**r, "explanation": ""} for r in distill_rows]
    )

    accuracy: dict[str, float] = {}
    trace_read: dict[str, float] = {}
    reward_vs_read: list[tuple[float, float]] = []
    traced: list[tuple[dict[str, Any], dict[str, float]]] = []  # every teacher's trace with its reward parts
    styles_out: dict[str, dict[str, float]] = {}
    for arm in ("no_explanation", *teachers):
        rows = [json.loads(line) for line in traces[arm].read_text().splitlines()]
        styles_out[arm] = dict(Counter(task.classify_style(r["question"], r["explanation"]) for r in rows))
        clean = _write_jsonl(
            root / f"distill_{arm}.jsonl",
            [
                {"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
                for r in rows
            ],
        )
        out_dir = root / f"student_{arm}"
        # Every student learns from exactly what its teacher wrote, empty explanations included.
        extra = ["--allow_empty_explanation", "true"]
        # A direct read-out of the traces, free of distillation luck: the frozen student's accuracy
        # when it is given each trace as its thinking and only writes the answer.
        if arm != "no_explanation":
            read_path = root / f"read_{arm}.json"
            if not read_path.exists() or "correct" not in json.loads(read_path.read_text()):
                frozen, ftok = load_model_and_tokenizer(str(student))
                read_path.write_text(json.dumps(read_out(frozen, ftok, task, rows)))
            read = json.loads(read_path.read_text())
            trace_read[arm] = read["accuracy"]
            # E4: each trace's RLT reward against whether the frozen student, given it, answers right.
            reward_path = root / f"rewards_{arm}.json"
            parts = json.loads(reward_path.read_text()) if reward_path.exists() else None
            if not parts or not isinstance(parts[0], dict):  # missing, or an older run's bare rewards
                frozen, ftok = load_model_and_tokenizer(str(student))
                teacher_model, _ = load_model_and_tokenizer(str(teachers[arm]))
                parts = trace_rewards(frozen, teacher_model, ftok, rows)
                reward_path.write_text(json.dumps(parts))
            reward_vs_read += [(p["reward"], float(c)) for p, c in zip(parts, read["correct"])]
            traced += list(zip(rows, parts))
        stage(
            f"distil ({arm})",
            lambda clean=clean, out_dir=out_dir, extra=extra: sft.distill_main(
                _sft_args(
                    str(base_model),
                    clean,
                    out_dir,
                    cfg.distill_steps,
                    seed,
                    "explanation",
                    cfg.distill_learning_rate,
                )
                + extra
            ),
            out_dir,
        )
        eval_path = root / f"eval_{arm}.json"
        if eval_path.exists():  # a resumed run does not evaluate a finished student again
            report(seed, f"evaluate ({arm}) (done before, skipped)")
            res = json.loads(eval_path.read_text())
        else:
            model, tok = load_model_and_tokenizer(str(out_dir))
            res = stage(
                f"evaluate ({arm})",
                lambda model=model, tok=tok: evaluate.evaluate_model(
                    model,
                    tok,
                    eval_rows,
                    "digits",
                    num_samples=1,
                    max_new_tokens=48,
                    batch_size=128,
                    tag_format=COMPACT,
                    system_prompt="",
                    progress=False,
                ),
            )
            eval_path.write_text(json.dumps(res))
        accuracy[arm] = float(res["accuracy"])
        report(seed, f"  {arm}: accuracy {accuracy[arm]:.3f}; trace styles {styles_out[arm]}")

    findings: dict[str, dict[str, float]] = {}
    if cfg.findings:
        from rlt.demo_findings import e5_cold_start, e6_transfer

        findings["e5"] = e5_cold_start(cfg, seed, root, task, eval_rows, stage)
        findings["e6"] = e6_transfer(cfg, seed, root, stage)
        report(seed, f"  findings: {findings}")

    from rlt.jsonl import read_records

    rl_runs = [("rlt", teacher_rlt)] + ([("no_kl", teacher_nokl)] if cfg.kl_ablation else [])
    return {
        "findings": findings,
        "seed": seed,
        "accuracy": accuracy,
        "trace_read_out": trace_read,
        "reward_vs_read_out": reward_vs_read,
        "reward_parts_by_style": reward_parts_by_style(task, *zip(*traced)) if traced else {},
        "trace_styles": styles_out,
        "student_accuracy": student_accuracy,
        "rl": {name: _rl_history(d) for name, d in rl_runs},
        "styles": {
            name: {str(k): v for k, v in style_fractions(read_records(d / "completions.jsonl")).items()}
            for name, d in rl_runs
        },
        "elapsed_s": time.time() - t0,
    }


def _worker(cfg: DemoArguments, seed: int, queue: Any) -> dict[str, Any]:
    """One seed in a worker process; the trainers' own output goes to ``<out>/seed<N>.log``."""
    import logging
    import warnings

    log_path = Path(cfg.out) / f"seed{seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")  # noqa: SIM115 - lives as long as the worker
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log

    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("rlt").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ["TQDM_DISABLE"] = "1"
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    return run_seed(cfg, seed, report=lambda s, msg: queue.put((s, msg)))


# --------------------------------------------------------------------------- aggregation


def _e4(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """E4 for one seed: the traces of all three teachers by RLT-reward quartile against the read-out."""
    from rlt.analyze import reward_bins, spearman

    return {"n": len(pairs), "spearman": spearman(*zip(*pairs)), "bins": reward_bins(pairs, 4)}


def _mean_curves(curves: list[list[float]]) -> list[float]:
    n = min((len(c) for c in curves), default=0)
    return [statistics.fmean(c[i] for c in curves) for i in range(n)]


def aggregate(cfg: DemoArguments, per_seed: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """The results.json document."""
    from rlt.demo_report import ARMS

    def styles(name: str) -> dict[str, list[float]]:
        out = {}
        for style in STYLES:
            series = [
                [frac[style] for _, frac in sorted(r["styles"][name].items(), key=lambda kv: int(kv[0]))]
                for r in per_seed
            ]
            out[style] = _mean_curves(series)
        return out

    return {
        "arms": {
            arm: {
                "accuracy": [r["accuracy"][arm] for r in per_seed],
                **(
                    {"trace_read_out": [r["trace_read_out"][arm] for r in per_seed]}
                    if all(arm in r.get("trace_read_out", {}) for r in per_seed)
                    else {}
                ),
            }
            for arm in ARMS
            if all(arm in r["accuracy"] for r in per_seed)
        },
        "student_accuracy": [r["student_accuracy"][-1] for r in per_seed],
        "rl": {
            "reward": _mean_curves([r["rl"]["rlt"]["reward"] for r in per_seed]),
            "solution_logprob_mean": _mean_curves(
                [r["rl"]["rlt"]["solution_logprob_mean"] for r in per_seed]
            ),
            "kl_mean": _mean_curves([r["rl"]["rlt"]["kl_mean"] for r in per_seed]),
            "style_fraction": styles("rlt"),
            **(
                {
                    "no_kl_reward": _mean_curves([r["rl"]["no_kl"]["reward"] for r in per_seed]),
                    "no_kl_style_fraction": styles("no_kl"),
                }
                if all("no_kl" in r["rl"] for r in per_seed)
                else {}
            ),
        },
        "trace_styles": {str(r["seed"]): r["trace_styles"] for r in per_seed},
        "e4": [_e4(r["reward_vs_read_out"]) for r in per_seed if r.get("reward_vs_read_out")],
        **{
            name: {arm: [r["findings"][name][arm] for r in per_seed] for arm in per_seed[0]["findings"][name]}
            for name in ("e5", "e6")
            if all(name in r.get("findings", {}) for r in per_seed)
        },
        "reward_parts_by_style": {
            str(r["seed"]): r["reward_parts_by_style"] for r in per_seed if r.get("reward_parts_by_style")
        },
        "seeds": [r["seed"] for r in per_seed],
        "config": asdict(cfg),
        "elapsed_s": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rlt.config import parse
    from rlt.demo_report import table, write_report

    (cfg,) = parse([DemoArguments], argv)
    if cfg.quick:
        cfg.apply_quick()
    cfg.mix()  # validate before any work
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    arms = 4 if cfg.kl_ablation else 3
    stages_per_seed = 4 + (arms - 2) + (arms - 1) + arms * 2 + (4 if cfg.findings else 0)
    start = time.time()
    ctx = mp.get_context("spawn")  # fresh interpreters: torch thread pools do not survive fork well
    with (
        ctx.Manager() as manager,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        queue = manager.Queue()
        bars = {s: progress.add_task(f"seed {s}", total=stages_per_seed) for s in range(cfg.seeds)}
        with ProcessPoolExecutor(max_workers=max(1, min(cfg.workers, cfg.seeds)), mp_context=ctx) as pool:
            futures = [pool.submit(_worker, cfg, s, queue) for s in range(cfg.seeds)]
            while not all(f.done() for f in futures) or not queue.empty():
                try:
                    s, msg = queue.get(timeout=0.5)
                except Exception:
                    continue
                progress.console.print(f"[seed {s}] {msg}", markup=False)  # "[seed 0]" is not rich markup
                if not msg.startswith("  "):
                    progress.advance(bars[s])
            per_seed = [f.result() for f in futures]
    results = aggregate(cfg, per_seed, time.time() - start)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = write_report(results, out)
    console.print(table(results))
    console.print(f"results: {out / 'results.json'}; report: {report} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
