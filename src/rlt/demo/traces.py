"""Stage 4a of a seed, the traces: each teacher explains the distillation questions; and what they are worth.

- :func:`collect_all`: every teacher's traces (resumable JSONL, as ``rlt collect``), plus the
  ``no_explanation`` arm's question → answer rows;
- :func:`read_out`: the frozen student's accuracy given each trace as its thinking;
- :func:`trace_rewards`: each trace's RLT reward and its two terms;
- :func:`style_fractions`, :func:`reward_parts_by_style`: the styles the RL teacher wrote, and
  what the reward's parts make of each style.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from rlt.demo.common import COMPACT, SeedRun, write_jsonl
from rlt.tasks import STYLES

REWARD_PARTS = ("reward", "solution_logprob_mean", "kl_mean")
_QUESTION_IN_PROMPT = re.compile(r"start \d+;[^\n<]*\(mod \d+\)")


def collect_all(run: SeedRun, teachers: dict[str, Path]) -> dict[str, Path]:
    """Each teacher arm's traces of the distillation questions, and the ``no_explanation`` rows."""
    from rlt import collect
    from rlt.loading import load_model_and_tokenizer

    traces: dict[str, Path] = {}
    for arm, teacher_dir in teachers.items():
        model, tok = load_model_and_tokenizer(str(teacher_dir))
        out = run.root / f"traces_{arm}.jsonl"
        run.stage(
            f"collect ({arm})",
            lambda model=model, tok=tok, out=out: collect.collect_traces(
                model, tok, run.rows["distill"], out, num_traces=1, temperature=0.7, max_new_tokens=32,
                batch_size=128, seed=run.base, tag_format=COMPACT, system_prompt="", progress=False,
            ),
        )  # fmt: skip
        traces[arm] = out
    bare = [{**r, "explanation": ""} for r in run.rows["distill"]]
    traces["no_explanation"] = write_jsonl(run.root / "traces_no_explanation.jsonl", bare)
    return traces


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


def trace_rewards(
    student: Any,
    teacher: Any,
    tok: Any,
    rows: list[dict[str, Any]],
    kl_coefs: list[tuple[float, str]] | None = None,
) -> list[dict[str, float]]:
    """The RLT reward of each collected trace and its two terms (its own teacher, the frozen student).

    For E4 (reward against outcome) and for the check of what the KL term has to do (reward
    parts by explanation style). ``kl_coefs`` replaces the reward's KL coefficients (the
    paper's by default; ``[(0.0, "mean")]`` scores the reward without the KL term).
    """
    from rlt.rewards import RLTReward, RLTRewardConfig

    cfg = RLTRewardConfig(chat_format="compact", student_system_prompt="", teacher_system_prompt="")
    if kl_coefs is not None:
        cfg = RLTRewardConfig(
            chat_format="compact", student_system_prompt="", teacher_system_prompt="", kl_coefs=kl_coefs
        )
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
    task: Any, rows: list[dict[str, Any]], parts: list[dict[str, float]], keys: tuple[str, ...] = REWARD_PARTS
) -> dict[str, dict[str, float]]:
    """Mean reward parts ``keys`` of ``rows`` per explanation style (``task.classify_style``), with counts ``n``."""
    groups: dict[str, list[dict[str, float]]] = {}
    for r, p in zip(rows, parts):
        groups.setdefault(task.classify_style(r["question"], r["explanation"]), []).append(p)
    return {
        style: {"n": len(ps), **{k: statistics.fmean(p[k] for p in ps) for k in keys}}
        for style, ps in groups.items()
    }
