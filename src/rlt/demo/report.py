"""The demo's report: the paper's claims checked against the measured numbers, a table and plots.

Everything here reads ``results.json`` as :mod:`rlt.demo` writes it, so a report can
be re-made from a finished run (``python -m rlt.demo.report DIR``).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rlt.demo.report_studies import cold_start_claims, cold_start_table, kl_work_claims, kl_work_tables
from rlt.demo.stats import RULE, Claim, Paired, mean_std, paired  # noqa: F401 - re-exported
from rlt.demo.stats import trend as _trend
from rlt.tasks import STYLES

ARMS = ("no_explanation", "sft_teacher", "rlt_teacher", "rlt_no_kl_teacher")
ARM_LABELS = {
    "no_explanation": "question → answer, no explanation",
    "sft_teacher": "traces of the warm-up (SFT) teacher",
    "rlt_teacher": "traces of the RLT teacher",
    "rlt_no_kl_teacher": "traces of the RLT teacher without the KL term",
}


def arms_of(results: dict[str, Any]) -> list[str]:
    """The arms this run has, in report order (the no-KL arm only with ``--kl_ablation``)."""
    return [arm for arm in ARMS if arm in results["arms"]]


def style_shares(results: dict[str, Any], arm: str) -> dict[str, float] | None:
    """Share of each explanation style in ``arm``'s traces, mean over seeds; None without trace styles."""

    counts = [seed[arm] for seed in results.get("trace_styles", {}).values() if arm in seed]
    if not counts:
        return None
    return {s: statistics.fmean(c.get(s, 0) / max(1, sum(c.values())) for c in counts) for s in STYLES}


def _steps_share(results: dict[str, Any], *arms: str) -> str:
    """``"; correct-step traces 0.92 vs 0.91"`` for ``arms``, or ``""`` without trace styles."""
    shares = [style_shares(results, arm) for arm in arms]
    if any(s is None for s in shares):
        return ""
    return "; correct-step traces " + " vs ".join(f"{s['steps']:.2f}" for s in shares)


def reward_parts(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every teacher's traces' reward parts per explanation style, pooled over seeds (weighted by count)."""
    pooled: dict[str, dict[str, float]] = {}
    for seed in (results.get("reward_parts_by_style") or {}).values():
        for style, parts in seed.items():
            acc = pooled.setdefault(
                style, {"n": 0, "reward": 0.0, "solution_logprob_mean": 0.0, "kl_mean": 0.0}
            )
            acc["n"] += parts["n"]
            for k in ("reward", "solution_logprob_mean", "kl_mean"):
                acc[k] += parts[k] * parts["n"]
    for acc in pooled.values():
        for k in ("reward", "solution_logprob_mean", "kl_mean"):
            acc[k] /= acc["n"]
    return {s: pooled[s] for s in STYLES if s in pooled}


def kl_has_work(results: dict[str, Any]) -> tuple[bool, str] | None:
    """Whether this run's design lets the KL term show its work, and the measured reason.

    The paper's KL term stops a teacher drifting to explanations that raise the student's
    solution log-prob but are unnatural to it (a leaked answer). That drift can only happen
    where such an explanation scores at least as well on the solution term as correct steps.
    None when the run has no leaked and no correct-step traces to compare.
    """
    parts = reward_parts(results)
    if "leak" not in parts or "steps" not in parts:
        return None
    leak, steps = parts["leak"], parts["steps"]
    work = leak["solution_logprob_mean"] >= steps["solution_logprob_mean"]
    why = (
        f"the frozen student's solution log-prob after a leaked answer {leak['solution_logprob_mean']:.2f} "
        f"(KL {leak['kl_mean']:.2f}, {leak['n']} traces) vs after correct steps "
        f"{steps['solution_logprob_mean']:.2f} (KL {steps['kl_mean']:.2f}, {steps['n']} traces)"
    )
    if work:
        return True, why + ": leaking pays on the solution term, and only the KL term can stop it"
    return False, (
        why + ": correct steps already win on the solution term alone, so a teacher gains nothing by "
        "leaking on these traces, with or without the KL term (most traces counted as `leak` here are garbled text "
        "that contains the answer digit; `--kl_work` builds a frozen student for which a clean leak beats correct "
        "steps without the KL term)"
    )


def parts_table(results: dict[str, Any]) -> str:
    """The RLT reward's parts per explanation style over every teacher's traces; "" when not measured."""
    parts = reward_parts(results)
    if not parts:
        return ""
    lines = [
        "| style | traces | reward | solution log-prob (mean) | KL (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{s}` | {p['n']} | {p['reward']:.2f} | {p['solution_logprob_mean']:.2f} | {p['kl_mean']:.2f} |"
        for s, p in parts.items()
    ]
    return "\n".join(lines)


def _e4_evidence(seed: dict[str, Any]) -> str:
    outcomes = " / ".join(f"{b['outcome_mean']:.2f}" for b in seed["bins"])
    rho = "n/a" if seed["spearman"] is None else f"{seed['spearman']:+.2f}"
    return f"quartile outcomes {outcomes}, Spearman {rho}"


def claims(results: dict[str, Any]) -> list[Claim]:
    """The paper's claims as ``(claim, held, evidence)`` :class:`Claim` s, decided from the numbers only.

    The student claims are paired comparisons over seeds (:func:`paired`): held when every
    seed agrees (:data:`RULE`). With 3 seeds the smallest one-sided sign-test p is 0.125; the
    evidence says so rather than hiding it, beside the mean difference and its interval.
    """
    return (
        _student_claims(results) + _finding_claims(results) + cold_start_claims(results)
        + kl_work_claims(results) + _rl_claims(results)
    )  # fmt: skip


def _student_claims(results: dict[str, Any]) -> list[Claim]:
    """The distilled students' and the read-out's claims, paired over seeds."""
    acc = {arm: results["arms"][arm]["accuracy"] for arm in arms_of(results)}
    rlt, sft = acc["rlt_teacher"], acc["sft_teacher"]
    vs_sft = paired(rlt, sft)
    work = kl_has_work(results)
    no_work = work is not None and not work[0]
    out = [
        Claim(
            "Students taught by the RLT teacher beat those taught by the warm-up teacher (paired over seeds)",
            vs_sft.held,
            f"{mean_std(rlt)[0]:.3f} vs {mean_std(sft)[0]:.3f}; {vs_sft.describe()}",
            label="RLT teacher's students > warm-up teacher's",
            figure=f"{mean_std(rlt)[0]:.3f} vs {mean_std(sft)[0]:.3f}; {vs_sft.short()}",
        )
    ]
    if "rlt_no_kl_teacher" in acc:
        nokl = acc["rlt_no_kl_teacher"]
        vs_nokl = paired(rlt, nokl)
        out.append(
            Claim(
                "Removing the KL term makes the traces worse (RLT without KL below RLT, paired over seeds)",
                vs_nokl.held,
                f"{mean_std(nokl)[0]:.3f} vs {mean_std(rlt)[0]:.3f}; {vs_nokl.describe()}"
                + _steps_share(results, "rlt_no_kl_teacher", "rlt_teacher")
                + ("; not testable in this run (see “What the KL term has to do”)" if no_work else ""),
                label="RLT teacher's students > no-KL teacher's",
                figure=f"{mean_std(rlt)[0]:.3f} vs {mean_std(nokl)[0]:.3f}; {vs_nokl.short()}",
            )
        )
    arms = results["arms"]
    if "trace_read_out" in arms["rlt_teacher"] and "trace_read_out" in arms["sft_teacher"]:
        read = paired(arms["rlt_teacher"]["trace_read_out"], arms["sft_teacher"]["trace_read_out"])
        out.append(
            Claim(
                "The RLT teacher's traces serve the frozen student better than the warm-up teacher's "
                "(read-out: the student given each trace writes the answer; no distillation; paired)",
                read.held,
                read.describe(),
                label="read-out: RLT traces > warm-up traces",
                figure=read.short(),
            )
        )
    return out


def _finding_claims(results: dict[str, Any]) -> list[Claim]:
    """E4 (reward against outcome, per seed), E5 and E6 (paired over seeds), where the run has them."""
    out = []
    e4 = results.get("e4") or []
    if e4:
        rising = [
            s["bins"][-1]["outcome_mean"] > s["bins"][0]["outcome_mean"] and (s["spearman"] or 0) > 0
            for s in e4
        ]
        rhos = [s["spearman"] for s in e4 if s["spearman"] is not None]
        out.append(
            Claim(
                "E4: a trace's RLT reward predicts how useful it is (top reward quartile above the bottom one "
                "and Spearman > 0 on every seed; outcome = the frozen student given the trace answers right)",
                all(rising),
                "per seed: " + "; ".join(_e4_evidence(s) for s in e4),
                label="E4: reward predicts a trace's use",
                figure=f"{sum(rising)}/{len(rising)} seeds"
                + (f", Spearman {min(rhos):+.2f} … {max(rhos):+.2f}" if len(set(rhos)) > 1 else "")
                + (f", Spearman {rhos[0]:+.2f}" if len(set(rhos)) == 1 else ""),
            )
        )
    for key, a, b, label, claim in (
        ("e5", "cold_start", "from_scratch", "E5: RL from RLT student > from base",
         "E5: student RL from the RLT-distilled student beats the same RL from "
         "the base model (cold start vs from scratch, same RL budget, paired)"),
        ("e6", "rlt_teacher", "sft_teacher", "E6: Countdown zero-shot, RLT > warm-up",
         "E6: explaining Countdown zero-shot, the RLT digits teacher's students "
         "beat the warm-up teacher's (Countdown accuracy, paired)"),
    ):  # fmt: skip
        if results.get(key):
            x, y = results[key][a], results[key][b]
            found = paired(x, y)
            means = f"{mean_std(x)[0]:.3f} vs {mean_std(y)[0]:.3f}"
            out.append(
                Claim(
                    claim,
                    found.held,
                    f"{means}; {found.describe()}",
                    label=label,
                    figure=f"{means}; {found.short()}",
                )
            )
    return out


def _rl_claims(results: dict[str, Any]) -> list[Claim]:
    """The RL curves' claims: the reward rises; without KL, leaks rise."""
    out = []
    rl = results["rl"]
    reward = rl["reward"]
    if reward:
        out.append(
            Claim(
                "The RLT reward rises during RL",
                _trend(reward) > 0,
                f"mean reward first quarter → last quarter: {_trend(reward):+.3f}",
                label="RLT reward rises during RL",
                figure=f"{_trend(reward):+.3f} (first → last quarter, mean over seeds)",
            )
        )
    fractions = rl.get("no_kl_style_fraction", {})
    if fractions.get("leak"):
        leak = fractions["leak"]
        out.append(
            Claim(
                "Without the KL term the teacher drifts to leak-like explanations",
                _trend(leak) > 0,
                f"share of `leak` explanations, first quarter → last quarter: {_trend(leak):+.3f}",
                label="no KL: teacher drifts to leaking",
                figure=f"`leak` share {_trend(leak):+.3f} (first → last quarter)",
            )
        )
    return out


def verdicts(results: dict[str, Any]) -> Any:
    """The claims as a terminal table (rich): the claim's short name, its verdict and its paired figure."""
    from rich.table import Table
    from rich.text import Text

    out = Table(title="The paper's claims", title_justify="left")
    for column in ("claim", "verdict", "paired figure"):
        out.add_column(column)
    for claim in claims(results):
        held = claim[1]
        out.add_row(
            Text(claim.label),
            Text("held" if held else "not held", style="bold green" if held else "bold red"),
            Text(claim.figure),
        )
    return out


def table(results: dict[str, Any]) -> str:
    """Distilled students' accuracy per arm; with the read-out, the frozen student's accuracy given the traces."""
    arms = arms_of(results)
    read = any("trace_read_out" in results["arms"][arm] for arm in arms)
    head = "| arm | student trained on | accuracy (mean ± std) | per seed |"
    lines = [head + (" frozen student given the traces |" if read else ""), "| --- " * (4 + read) + "|"]
    for arm in arms:
        vals = results["arms"][arm]["accuracy"]
        m, s = mean_std(vals)
        row = f"| `{arm}` | {ARM_LABELS[arm]} | {m:.3f} ± {s:.3f} | {', '.join(f'{v:.3f}' for v in vals)} |"
        if read:
            ro = results["arms"][arm].get("trace_read_out")
            row += f" {mean_std(ro)[0]:.3f} ({', '.join(f'{v:.3f}' for v in ro)}) |" if ro else " – |"
        lines.append(row)
    return "\n".join(lines)


def trace_table(results: dict[str, Any]) -> str:
    """Share of each explanation style in the traces each arm's student learned from (mean over seeds).

    A distilled student can only be as right as what it read, so this table says why the
    accuracies differ. Empty when ``results`` has no ``trace_styles``.
    """

    rows = [(arm, shares) for arm in arms_of(results) if (shares := style_shares(results, arm)) is not None]
    if not rows:
        return ""
    lines = ["| arm | " + " | ".join(f"`{s}`" for s in STYLES) + " |", "| --- |" + " --- |" * len(STYLES)]
    lines += [f"| `{arm}` | " + " | ".join(f"{shares[s]:.2f}" for s in STYLES) + " |" for arm, shares in rows]
    return "\n".join(lines)


def plot(results: dict[str, Any], out_dir: Path) -> list[str]:
    """Write the three PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    rl = results["rl"]

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (
        ("reward", "reward"),
        ("solution_logprob_mean", "solution log-prob (mean)"),
        ("kl_mean", "KL (mean)"),
    ):
        if rl.get(key):
            ax.plot(range(1, len(rl[key]) + 1), rl[key], label=label)
    if rl.get("no_kl_reward"):
        ax.plot(range(1, len(rl["no_kl_reward"]) + 1), rl["no_kl_reward"], "--", label="reward, no-KL run")
    ax.set_xlabel("RL step")
    ax.set_title("RLT reward components during teacher RL (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "reward.png", dpi=110)
    plt.close(fig)
    names.append("reward.png")

    panels = [
        (k, t) for k, t in (("style_fraction", "RLT"), ("no_kl_style_fraction", "RLT without KL")) if k in rl
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), sharey=True, squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for style, values in rl[key].items():
            ax.plot(range(1, len(values) + 1), values, label=style)
        ax.set_title(f"explanation styles: {title}")
        ax.set_xlabel("RL step")
    axes[0][0].set_ylabel("share of completions")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "styles.png", dpi=110)
    plt.close(fig)
    names.append("styles.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    arms = arms_of(results)
    stats = [mean_std(results["arms"][arm]["accuracy"]) for arm in arms]
    ax.bar(
        range(len(arms)),
        [m for m, _ in stats],
        yerr=[s for _, s in stats],
        capsize=4,
        color=["#999999", "#6a9fd4", "#2e7d32", "#d48a6a"][: len(arms)],
    )
    ax.set_xticks(range(len(arms)), [a.replace("_", "\n") for a in arms], fontsize=8)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"distilled students ({len(results['seeds'])} seeds, mean ± std)")
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=110)
    plt.close(fig)
    names.append("accuracy.png")
    return names


def write_report(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.md`` and the plots next to ``results.json``."""
    out_dir = Path(out_dir)
    pictures = plot(results, out_dir)
    lines = [
        "# rlt demo: the paper's effect in miniature",
        "",
        f"Seeds: {results['seeds']}; elapsed {results['elapsed_s']:.0f} s.",
        "",
        *(
            [
                "The frozen student (pre-trained, then trained on until sound) answers "
                + ", ".join(f"{a:.3f}" for a in results["student_accuracy"])
                + " of 200 fresh questions by itself (per seed).",
                "",
            ]
            if results.get("student_accuracy")
            else []
        ),
        "## Students (held-out accuracy of the student writing its own reasoning)",
        "",
        table(results),
        "",
        "## The paper's claims",
        "",
        RULE,
        "",
        "| claim | held? | evidence |",
        "| --- | --- | --- |",
    ]
    for claim, held, evidence in claims(results):
        lines.append(f"| {claim} | {'held' if held else 'not held'} | {evidence} |")
    traces = trace_table(results)
    if traces:
        lines += ["", "## What each student read (share of trace styles, mean over seeds)", "", traces]
    parts = parts_table(results)
    if parts:
        lines += ["", "## What the KL term has to do (the reward's parts by explanation style)", "", parts]
        work = kl_has_work(results)
        if work is not None:
            lines += [
                "",
                ("The KL term has work here: " if work[0] else "The KL term has no work here: ")
                + work[1]
                + ".",
            ]
    for title, body in (
        (
            "E5: cold start vs cold start under the same student RL (held-out accuracy)",
            cold_start_table(results),
        ),
        (
            "The KL miniature: where the KL term has work (reward parts by style, then the RL arms)",
            kl_work_tables(results),
        ),
    ):
        if body:
            lines += ["", f"## {title}", "", body]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in pictures]
    lines += ["", "## Settings", "", "```json", json.dumps(results["config"], indent=2), "```", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    d = Path(sys.argv[1])
    print(write_report(json.loads((d / "results.json").read_text()), d))
