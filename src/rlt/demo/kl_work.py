"""The paper's KL ablation in miniature (``rlt demo --kl_work``).

The KL term exists because a student can be talked into an answer by text it would never
have produced itself. The paper's case: without it, the teacher learns to state the answer
instead of explaining it, and students distilled from that teacher fall below the baseline.
That drift needs a frozen student with three properties, which the run's ordinary student
lacks (correct steps already give it the solution with certainty, so a leak cannot earn more).
Per seed, this stage builds one by construction, checks it, and only then runs the ablation:

1. **The KL study's frozen student** (``kl_work_student``), trained on from the run's student
   for ``kl_work_steps`` steps on its pre-training questions:

   - ``imperfect`` (default): a share ``kl_work_stated_share`` of its traces state the answer
     *after* some of their steps (``7+2=9; 9*3=7; answer 6``: the first k, k from 1 to all), so
     (a) a stated answer sets its solution exactly; only a share ``kl_work_stated_first`` of
     those state it before any step (so that a leak at the start persuades it on every seed),
     so (b) a leak (``answer 6``) stays unnatural to it and the KL term sees it. In the other
     traces the solution is the steps' result only in a share ``kl_work_follow`` (a random
     other digit otherwise), so (c) it follows correct steps imperfectly: after them its
     solution log-prob is below a leak's.
   - ``persuaded``: a share ``kl_work_leak_share`` of its traces are clean leaks (it writes
     leaks itself, so the KL term rewards them); ``ordinary``: the run's student as it is.
2. **The starting teacher**, the RL arms' common start: the teacher initialisation taught to
   state the given answer (``kl_work_teacher_copy_steps`` on clean leaks only), then warmed up
   on correct steps and clean leaks, so there are leaks to drift to.
3. **The two checks that gate the RL arms.** ``CHECK_QUESTIONS`` questions explained in every
   style (``steps``, ``leak``, ``wrong``, ``filler``), scored with ℓ_T of the starting teacher
   by the run's ordinary student and by the study's student, with and without the KL term.
   The student's check passes when a clean leak's reward without the KL term is at least
   correct steps' minus ``kl_work_tolerance`` (*leaking pays*; the default, negative, asks it
   to beat them) and with the KL term below correct steps' (*the KL term stops it*). The
   teacher's check passes when at least ``kl_work_teacher_min_leak`` of its explanations of
   the same questions, sampled as in RL, are clean leaks.
4. **The ablation, only where both checks passed**: teacher RL from that starting teacher
   against the study's student, with the KL term (the paper's coefficients) and without it,
   the same budget; each teacher's traces of the distillation questions, a student distilled
   from them (the same steps as every other student), its held-out accuracy.

Reuses a finished run's models (stages 0-5) and leaves stage markers, so ``--kl_work`` can
be added to a finished run's output; its own settings file makes a change redo only its stages.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from rlt.demo.common import (
    COMPACT,
    SeedRun,
    cached_json,
    evaluate_dir,
    guard_settings,
    sft_args,
    write_jsonl,
)
from rlt.demo.students import distil, evaluate_student
from rlt.demo.teachers import rl_teacher
from rlt.demo.traces import collect_all, reward_parts_by_style, style_fractions, trace_rewards
from rlt.jsonl import read_records
from rlt.tasks import STYLES

# The two RL arms against the study's student: the paper's KL coefficients, and none.
KL_WORK_ARMS = {"with_kl": "3.0:mean,0.03:max", "no_kl": "0:mean,0:max"}
KL_STUDENTS = ("imperfect", "persuaded", "ordinary")
PARTS = ("reward", "reward_no_kl", "solution_logprob_mean", "kl_mean")
CHECK_QUESTIONS = 200
# What the stage writes (older layouts' names too), removed when its settings change
# (:func:`rlt.demo.common.guard_settings`).
OUTPUTS = ("kl_student_*", "eval_kl_student_*", "kl_work_*", "*_kl_work_*", "student_persuaded",
           "eval_student_persuaded.json")  # fmt: skip


def student_rows(
    task: Any,
    rows: list[dict[str, Any]],
    kind: str,
    seed: int,
    *,
    stated_share: float = 0.5,
    stated_first: float = 0.0,
    follow: float = 0.7,
    leak_share: float = 0.5,
) -> list[dict[str, Any]]:
    """The training rows (``question``, ``solution``, ``explanation``) of the study's ``kind`` of student.

    ``imperfect``: a share ``stated_share`` states the answer after the first k of its steps (k
    drawn from 1 to all, so the stated answer, not the last step, is what the solution copies;
    a share ``stated_first`` of these states it before any step: a clean leak);
    of the rest, a share ``follow`` has the steps' result as solution, the others a
    random other digit. ``persuaded``: a share ``leak_share`` are clean leaks. Drawn with
    ``random.Random(seed)``.
    """
    rng, out = random.Random(seed), []
    for r in rows:
        steps, solution = r["reasoning_trace"], r["solution"]
        if kind == "persuaded":
            leak = rng.random() < leak_share
            explanation = task.explanation(r["question"], "leak", rng) if leak else steps
        elif rng.random() < stated_share:
            # after the first k steps (k from 1 to all): the solution is there only in the stated answer
            chain = steps.split("; ")
            if rng.random() < stated_first:  # k = 0: a clean leak, rare enough to stay unnatural
                explanation = task.explanation(r["question"], "leak", rng)
            else:
                explanation = "; ".join(chain[: rng.randint(1, len(chain))]) + f"; answer {solution}"
        else:
            explanation = steps
            if rng.random() >= follow:
                others = [d for d in range(task.modulus) if str(d) != solution]
                solution = str(rng.choice(others))
        out.append({"question": r["question"], "solution": solution, "explanation": explanation})
    return out


def study_student(run: SeedRun) -> Path:
    """Stage 1: the study's frozen student (the run's student for ``ordinary``)."""
    from rlt import sft

    cfg, root = run.cfg, run.root
    kind = cfg.kl_work_student
    if kind == "ordinary":
        return root / "student"
    rows = student_rows(
        run.task, run.rows["pretrain"], kind, run.base + 12, stated_share=cfg.kl_work_stated_share,
        stated_first=cfg.kl_work_stated_first, follow=cfg.kl_work_follow, leak_share=cfg.kl_work_leak_share,
    )  # fmt: skip
    data = write_jsonl(root / f"kl_work_{kind}_student.jsonl", rows)
    out = root / f"kl_student_{kind}"
    args = sft_args(
        str(root / "student"),
        data,
        out,
        cfg.kl_work_steps,
        run.seed,
        "explanation",
        cfg.pretrain_learning_rate,
    )
    run.stage(f"KL study: the {kind} student", lambda: sft.distill_main(args), out)
    return out


def styled_rows(run: SeedRun) -> list[dict[str, Any]]:
    """``CHECK_QUESTIONS`` distillation questions, each explained in every style (one row per style)."""
    rng = random.Random(run.base + 13)
    return [
        {"question": r["question"], "solution": r["solution"], "explanation": run.task.explanation(r["question"], s, rng)}
        for r in run.rows["distill"][:CHECK_QUESTIONS]
        for s in STYLES
    ]  # fmt: skip


def score_styles(student: Path, teacher: Path, task: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The reward's parts per style of ``rows`` under ``student`` (ℓ_T of ``teacher``), with and without KL."""
    from rlt.loading import load_model_and_tokenizer

    frozen, tok = load_model_and_tokenizer(str(student))
    teacher_model, _ = load_model_and_tokenizer(str(teacher))
    with_kl = trace_rewards(frozen, teacher_model, tok, rows)
    no_kl = trace_rewards(frozen, teacher_model, tok, rows, kl_coefs=[(0.0, "mean")])
    parts = [{**a, "reward_no_kl": b["reward"]} for a, b in zip(with_kl, no_kl)]
    return reward_parts_by_style(task, rows, parts, PARTS)


def leak_pays(parts: dict[str, dict[str, float]], tolerance: float) -> bool:
    """Whether the reward without the KL term pays a clean leak at least correct steps' minus ``tolerance``.

    A negative ``tolerance`` asks the leak to beat correct steps by that much.
    """
    if "leak" not in parts or "steps" not in parts:
        return False
    return parts["leak"]["reward_no_kl"] >= parts["steps"]["reward_no_kl"] - tolerance


def kl_stops_leak(parts: dict[str, dict[str, float]]) -> bool:
    """Whether the full reward (with the KL term) ranks correct steps above a clean leak."""
    return "leak" in parts and "steps" in parts and parts["leak"]["reward"] < parts["steps"]["reward"]


def gate(parts: dict[str, dict[str, float]], tolerance: float) -> dict[str, bool]:
    """The check that gates the RL arms: leaking pays without the KL term, and the KL term stops it."""
    pays, stops = leak_pays(parts, tolerance), kl_stops_leak(parts)
    return {"leak_pays": pays, "kl_stops": stops, "passed": pays and stops}


def check(run: SeedRun, student: Path, teacher: Path) -> dict[str, Any]:
    """Stage 2: the reward's parts by style for the ordinary and the study's student, its accuracy, the gate."""
    cfg, root, rows = run.cfg, run.root, styled_rows(run)
    students = {"ordinary": root / "student", cfg.kl_work_student: student}
    parts = cached_json(root / "kl_work_parts.json", lambda: {
        name: score_styles(path, teacher, run.task, rows) for name, path in students.items()
    })  # fmt: skip
    accuracy = cached_json(
        root / f"eval_kl_student_{cfg.kl_work_student}.json",
        lambda: evaluate_dir(student, run.task.generate(200, seed=run.base + 11)),
    )
    return {
        "parts": parts,
        # the study's student's own greedy accuracy (the key keeps its first name for results.json)
        "persuaded_accuracy": float(accuracy),
        **gate(parts[cfg.kl_work_student], cfg.kl_work_tolerance),
    }


def ablation_arm(run: SeedRun, arm: str, teacher: Path, traces: Path) -> dict[str, Any]:
    """Stage 3 for one RL arm: its traces' styles, its student's accuracy, its RL run's leak share per step."""
    rows = read_records(traces)
    clean = [{"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
             for r in rows]  # fmt: skip
    name = f"kl_work_{arm}"
    data = write_jsonl(run.root / f"distill_{name}.jsonl", clean)
    accuracy = evaluate_student(run, name, distil(run, name, data, run.root / "base_model"))
    styles = Counter(run.task.classify_style(r["question"], r["explanation"]) for r in rows)
    curve = style_fractions(read_records(teacher / "completions.jsonl"))
    return {
        "accuracy": accuracy,
        "trace_styles": dict(styles),
        "leak_share": styles["leak"] / max(1, len(rows)),
        "rl_leak": [frac["leak"] for _, frac in sorted(curve.items())],
    }


def _teacher_rows(run: SeedRun, rng: random.Random, leak_share: float) -> list[dict[str, Any]]:
    """The warm-up questions explained as a clean ``leak`` (a share ``leak_share``) or as correct ``steps``."""
    return [
        {"question": r["question"], "solution": r["solution"],
         "reasoning_trace": run.task.explanation(r["question"], "leak" if rng.random() < leak_share else "steps", rng)}
        for r in run.rows["warmup"]
    ]  # fmt: skip


def teacher_sound(styles: dict[str, float], cfg: Any) -> bool:
    """The teacher's check: enough clean leaks to drift to, and few wrong steps (arithmetic kept)."""
    return styles["leak"] >= cfg.kl_work_teacher_min_leak and styles["wrong"] <= cfg.kl_work_teacher_max_wrong


def start_teacher(run: SeedRun) -> tuple[Path, list[dict[str, float]]]:
    """The RL arms' start, and its sampled styles per round: taught to copy, then warmed up on steps and leaks.

    With ``kl_work_teacher_leak_share`` > 0 the teacher initialisation first learns to state the
    given answer (``kl_work_teacher_copy_steps`` on clean leaks only, at the warm-up learning
    rate), then is warmed up as the run's warm-up teacher for ``kl_work_teacher_steps`` on a
    ``steps``/``leak`` mix, so a drift to leaking has leaks to start from (the run's warm-up
    teacher writes about 1 percent). Where the teacher's check fails (:func:`teacher_sound`), up
    to ``kl_work_teacher_copy_rounds`` more rounds of copy steps at the pre-training learning
    rate follow, each with its warm-up: a rate that teaches one seed's teacher to copy corrupts
    another's arithmetic, so the higher one is used only where it is needed.
    """
    from rlt import sft

    cfg, root = run.cfg, run.root
    share = cfg.kl_work_teacher_leak_share
    if share <= 0:
        return root / "teacher_sft", [teacher_styles(run, root / "teacher_sft")]
    data = write_jsonl(root / "kl_work_warmup.jsonl", _teacher_rows(run, random.Random(run.base + 14), share))
    copy_data = write_jsonl(
        root / "kl_work_copy.jsonl", _teacher_rows(run, random.Random(run.base + 15), 1.0)
    )
    source, rounds = root / "teacher_init", []
    for r in range(1 + cfg.kl_work_teacher_copy_rounds):
        suffix = f"_r{r}" if r else ""
        if cfg.kl_work_teacher_copy_steps > 0:
            # round 0 at the warm-up rate (arithmetic kept); later rounds at the pre-training rate
            rate = cfg.warmup_learning_rate if r == 0 else cfg.pretrain_learning_rate
            copy = root / f"teacher_kl_work_copy{suffix}"
            steps = cfg.kl_work_teacher_copy_steps
            copy_args = sft_args(str(source), copy_data, copy, steps, run.seed, "reasoning_trace", rate)
            run.stage(
                f"KL study: the starting teacher learns to state the given answer (round {r})",
                lambda copy_args=copy_args: sft.warmup_main(copy_args),
                copy,
            )
            source = copy
        out = root / f"teacher_kl_work_start{suffix}"
        args = sft_args(
            str(source),
            data,
            out,
            cfg.kl_work_teacher_steps,
            run.seed,
            "reasoning_trace",
            cfg.warmup_learning_rate,
        )
        run.stage(
            f"KL study: the arms' starting teacher (warm-up on steps and leaks, round {r})",
            lambda args=args: sft.warmup_main(args),
            out,
        )
        rounds.append(teacher_styles(run, out, suffix))
        if teacher_sound(rounds[-1], cfg) or cfg.kl_work_teacher_copy_steps <= 0:
            break
    return out, rounds


def teacher_styles(run: SeedRun, teacher: Path, suffix: str = "") -> dict[str, float]:
    """The share of each style among ``teacher``'s explanations of the check's questions (sampled as in RL)."""
    from rlt import collect
    from rlt.loading import load_model_and_tokenizer

    def sample() -> dict[str, float]:
        model, tok = load_model_and_tokenizer(str(teacher))
        out = run.root / f"kl_work_start_traces{suffix}.jsonl"
        collect.collect_traces(
            model, tok, run.rows["distill"][:CHECK_QUESTIONS], out, num_traces=1, temperature=0.7,
            max_new_tokens=32, batch_size=128, seed=run.base + 16, tag_format=COMPACT, system_prompt="",
            progress=False,
        )  # fmt: skip
        rows = read_records(out)
        styles = Counter(run.task.classify_style(r["question"], r["explanation"]) for r in rows)
        return {s: styles[s] / max(1, len(rows)) for s in STYLES}

    return cached_json(run.root / f"kl_work_start_styles{suffix}.json", sample)


def ablation(run: SeedRun, warm: Path, student: Path) -> dict[str, dict[str, Any]]:
    """Stage 3: teacher RL from ``warm`` against ``student`` with and without the KL term, traces, students."""
    teachers = {}
    for arm, coefs in KL_WORK_ARMS.items():
        out = run.root / f"teacher_kl_work_{arm}"
        run.stage(
            f"KL study: teacher RL ({arm})",
            lambda out=out, coefs=coefs: rl_teacher(run, warm, student, out, coefs),
            out,
        )
        teachers[f"kl_work_{arm}"] = out
    traces = collect_all(run, teachers)
    return {arm: ablation_arm(run, arm, teachers[f"kl_work_{arm}"], traces[f"kl_work_{arm}"])
            for arm in KL_WORK_ARMS}  # fmt: skip


def settings(cfg: Any) -> dict[str, Any]:
    """The settings whose change redoes the study's stages (the tolerance only decides: not among them)."""
    return {
        "student": cfg.kl_work_student, "steps": cfg.kl_work_steps, "stated_share": cfg.kl_work_stated_share,
        "stated_first": cfg.kl_work_stated_first,
        "follow": cfg.kl_work_follow, "leak_share": cfg.kl_work_leak_share,
        "teacher_leak_share": cfg.kl_work_teacher_leak_share, "teacher_steps": cfg.kl_work_teacher_steps,
        "teacher_copy_steps": cfg.kl_work_teacher_copy_steps, "teacher_copy_rounds": cfg.kl_work_teacher_copy_rounds,
        "teacher_copy_rates": "warm-up, then pre-training", "teacher_max_wrong": cfg.kl_work_teacher_max_wrong,
        "teacher_min_leak": cfg.kl_work_teacher_min_leak,
    }  # fmt: skip


def kl_work(run: SeedRun) -> dict[str, Any]:
    """The KL study for one seed: its student, the check, then (only where it passed) the ablation."""
    cfg = run.cfg
    cfg.validate()
    guard_settings(run.root, "kl_study", settings(cfg), OUTPUTS)
    student = study_student(run)
    warm, rounds = start_teacher(run)
    out = {**check(run, student, warm), "student": cfg.kl_work_student}
    out["teacher_styles"], out["teacher_rounds"] = rounds[-1], rounds
    out["teacher_leaks"] = teacher_sound(rounds[-1], cfg)
    parts = out["parts"][cfg.kl_work_student]
    leak, steps = parts.get("leak", {}), parts.get("steps", {})
    run.note(
        f"KL study check ({cfg.kl_work_student} student): without KL a leak {leak.get('reward_no_kl', float('nan')):.3f} "
        f"vs correct steps {steps.get('reward_no_kl', float('nan')):.3f}; with KL {leak.get('reward', float('nan')):.2f} "
        f"vs {steps.get('reward', float('nan')):.2f}; passed: {out['passed']}; the starting teacher's clean leaks "
        f"{out['teacher_styles']['leak']:.2f}, wrong steps {out['teacher_styles']['wrong']:.2f} after "
        f"{len(rounds)} round(s) (passed: {out['teacher_leaks']})"
    )
    if out["passed"] and out["teacher_leaks"]:
        out["arms"] = ablation(run, warm, student)
        run.note("KL study: " + "; ".join(
            f"{arm} leak share {v['leak_share']:.2f} (over RL {sum(v['rl_leak']) / max(1, len(v['rl_leak'])):.2f}), "
            f"student {v['accuracy']:.3f}" for arm, v in out["arms"].items()
        ))  # fmt: skip
    return out
