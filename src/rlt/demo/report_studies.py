"""The report's part for the opt-in studies: E5 as cold start vs cold start, and the KL miniature.

Reads ``results.json``'s ``cold_starts`` (``rlt demo --cold_starts``, :mod:`rlt.demo.cold_starts`)
and ``kl_work`` (``--kl_work``, :mod:`rlt.demo.kl_work`); every claim is a paired comparison
over seeds (:func:`rlt.demo.stats.paired`: a claim holds when every seed agrees; a tie is not a win).
"""

from __future__ import annotations

from typing import Any

from rlt.demo.stats import Claim, mean_std, paired, trend

SHORT_LABELS = {"rlt_teacher": "RLT", "sft_teacher": "warm-up", "no_explanation": "no explanation"}
COLD_START_LABELS = {
    "rlt_teacher": "the RLT teacher's traces",
    "sft_teacher": "the warm-up teacher's traces",
    "no_explanation": "no explanation",
}


def _values(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def rl_gains(results: dict[str, Any]) -> dict[str, Any]:
    """Per cold start, the paired statistics of accuracy after the student RL against before it."""
    return {arm: paired(v["after"], v["before"]) for arm, v in results.get("cold_starts", {}).items()}


def cold_start_claims(results: dict[str, Any]) -> list[Claim]:
    """E5 as the paper means it: after the same RL the RLT cold start ends highest; RL helps some arm."""
    cs = results.get("cold_starts")
    if not cs or "rlt_teacher" not in cs:
        return []
    rlt = cs["rlt_teacher"]["after"]
    out = []
    for other in (a for a in cs if a != "rlt_teacher"):
        found = paired(rlt, cs[other]["after"])
        means = f"{mean_std(rlt)[0]:.3f} vs {mean_std(cs[other]['after'])[0]:.3f}"
        out.append(Claim(
            f"E5, cold start vs cold start: after the same student RL, the student cold-started on the RLT "
            f"teacher's traces ends above the one cold-started on {COLD_START_LABELS.get(other, other)} (paired)",
            found.held,
            f"after RL {means}; {found.describe()}",
            label=f"E5 cold starts, after RL: RLT > {SHORT_LABELS.get(other, other)}",
            figure=f"{means}; {found.short()}",
        ))  # fmt: skip
    gains = rl_gains(results)
    evidence = "; ".join(
        f"{arm} {mean_std(cs[arm]['before'])[0]:.3f} → {mean_std(cs[arm]['after'])[0]:.3f} "
        f"({g.mean:+.3f}, {g.wins}/{len(g.diffs)} seeds up)"
        for arm, g in gains.items()
    )
    helped = [SHORT_LABELS.get(arm, arm) for arm, g in gains.items() if g.held]
    out.append(Claim(
        "E5: the student RL itself helps at least one cold start (accuracy after above before, paired)",
        bool(helped),
        evidence,
        label="E5 cold starts: student RL helps one",
        figure="helps " + (", ".join(helped) if helped else "none")
        + "; " + ", ".join(f"{SHORT_LABELS.get(a, a)} {g.wins}/{len(g.diffs)} up" for a, g in gains.items()),
    ))  # fmt: skip
    return out


def cold_start_table(results: dict[str, Any]) -> str:
    """Every cold start's held-out accuracy before and after the same student RL, per seed; "" without."""
    cs = results.get("cold_starts")
    if not cs:
        return ""
    gains = rl_gains(results)
    lines = [
        "| cold start (distilled from) | before RL (per seed) | after RL (per seed) | after − before (paired) |",
        "| --- | --- | --- | --- |",
    ]
    for arm, v in cs.items():
        g = gains[arm]
        lines.append(
            f"| {COLD_START_LABELS.get(arm, arm)} | {mean_std(v['before'])[0]:.3f} ({_values(v['before'])}) | "
            f"{mean_std(v['after'])[0]:.3f} ({_values(v['after'])}) | {g.mean:+.3f} "
            f"(CI {g.ci[0]:+.3f} … {g.ci[1]:+.3f}; {g.wins}/{len(g.diffs)} seeds up) |"
        )
    return "\n".join(lines)


def pooled_parts(results: dict[str, Any], student: str) -> dict[str, dict[str, float]]:
    """``student``'s (``ordinary``/``persuaded``) reward parts per style, pooled over seeds by count."""
    pooled: dict[str, dict[str, float]] = {}
    for seed in results.get("kl_work", {}).get("parts", {}).values():
        for style, parts in seed.get(student, {}).items():
            acc = pooled.setdefault(style, {"n": 0})
            acc["n"] += parts["n"]
            for key, value in parts.items():
                if key != "n":
                    acc[key] = acc.get(key, 0.0) + value * parts["n"]
    return {
        style: {k: (v if k == "n" else v / acc["n"]) for k, v in acc.items()} for style, acc in pooled.items()
    }


def _check_evidence(results: dict[str, Any]) -> str:
    """The pooled no-KL and full rewards of a leak against correct steps, for both students."""
    out = []
    for student in ("ordinary", "persuaded"):
        parts = pooled_parts(results, student)
        if "leak" in parts and "steps" in parts:
            leak, steps = parts["leak"], parts["steps"]
            out.append(
                f"{student} student: reward without KL, leak {leak['reward_no_kl']:.2f} vs steps "
                f"{steps['reward_no_kl']:.2f}; with KL, leak {leak['reward']:.2f} vs steps {steps['reward']:.2f}"
            )
    return "; ".join(out)


def kl_stops_leaks(results: dict[str, Any], student: str) -> list[bool]:
    """Per seed, whether the full reward (with the KL term) ranks correct steps above a leak for ``student``."""
    out = []
    for seed in results.get("kl_work", {}).get("parts", {}).values():
        parts = seed.get(student, {})
        out.append(
            "leak" in parts and "steps" in parts and parts["leak"]["reward"] < parts["steps"]["reward"]
        )
    return out


def kl_work_claims(results: dict[str, Any]) -> list[Claim]:
    """The KL miniature: leaking pays without KL (every seed); then no-KL leaks more and teaches worse (paired)."""
    kw = results.get("kl_work")
    if not kw:
        return []
    pays, student = kw["leak_pays"], kw.get("student", "persuaded")
    tol = results.get("config", {}).get("kl_work_tolerance", 0.0)
    stops = kl_stops_leaks(results, student)
    out = [Claim(
        f"KL miniature: the KL term has work (for the RL arms' {student} frozen student: without it the reward pays "
        f"a leaked answer as much as correct steps, no-KL reward of a leak ≥ steps' − {tol}; with it a leak earns "
        "less than correct steps; every seed)",
        all(pays) and all(stops),
        f"leak pays without KL on {sum(pays)}/{len(pays)} seeds, KL stops it on {sum(stops)}/{len(stops)}; "
        + _check_evidence(results),
        label="KL miniature: the KL term has work",
        figure=f"leak pays without KL {sum(pays)}/{len(pays)}, KL stops it {sum(stops)}/{len(stops)} seeds",
    )]  # fmt: skip
    arms = kw.get("arms")
    if not arms:
        why = "not run: leaking did not pay without the KL term on every seed (see the check above and its parts)"
        return out + [Claim("KL miniature: without the KL term the teacher drifts to leaking", False, why,
                            label="KL miniature: no-KL teacher drifts to leaking", figure="not run"),
                      Claim("KL miniature: without the KL term its students learn less", False, why,
                            label="KL miniature: no-KL students learn less", figure="not run")]  # fmt: skip
    nokl, kl = arms["no_kl"], arms["with_kl"]
    drift = paired(nokl["leak_share"], kl["leak_share"])
    rise = trend(nokl["rl_leak"]) if nokl["rl_leak"] else 0.0
    out.append(Claim(
        "KL miniature: without the KL term the teacher drifts to leaking (its traces' `leak` share above the KL "
        "teacher's, paired, and rising during its RL); with it, it does not",
        drift.held and rise > 0,
        f"`leak` share of the traces {mean_std(nokl['leak_share'])[0]:.2f} vs {mean_std(kl['leak_share'])[0]:.2f}; "
        f"{drift.describe()}; during RL (first → last quarter) no KL {rise:+.3f}, with KL "
        f"{trend(kl['rl_leak']) if kl['rl_leak'] else 0.0:+.3f}",
        label="KL miniature: no-KL teacher drifts to leaking",
        figure=f"`leak` share {mean_std(nokl['leak_share'])[0]:.2f} vs {mean_std(kl['leak_share'])[0]:.2f}; "
        f"{drift.short()}",
    ))  # fmt: skip
    learn = paired(kl["accuracy"], nokl["accuracy"])
    means = f"{mean_std(kl['accuracy'])[0]:.3f} vs {mean_std(nokl['accuracy'])[0]:.3f}"
    out.append(Claim(
        "KL miniature: without the KL term its students learn less (students of the KL teacher above the no-KL "
        "teacher's, paired)",
        learn.held,
        f"{means}; {learn.describe()}",
        label="KL miniature: no-KL students learn less",
        figure=f"{means}; {learn.short()}",
    ))  # fmt: skip
    return out


def kl_work_tables(results: dict[str, Any]) -> str:
    """The check's reward parts per style for both students, and the two RL arms per seed; "" without."""
    kw = results.get("kl_work")
    if not kw:
        return ""
    lines = [
        "| student | style | texts | reward | reward without KL | solution log-prob (mean) | KL (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for student in ("ordinary", "persuaded"):
        for style, p in pooled_parts(results, student).items():
            lines.append(
                f"| {student} | `{style}` | {p['n']} | {p['reward']:.2f} | {p['reward_no_kl']:.2f} | "
                f"{p['solution_logprob_mean']:.2f} | {p['kl_mean']:.2f} |"
            )
    lines += ["", f"The persuaded student's own accuracy: {_values(kw['persuaded_accuracy'])} (per seed); "
              f"leaking pays without KL per seed: {kw['leak_pays']}."]  # fmt: skip
    if kw.get("arms"):
        student = kw.get("student", "persuaded")
        lines += ["", f"| teacher RL against the {student} student | `leak` share of its traces | its students |",
                  "| --- | --- | --- |"]  # fmt: skip
        for arm, v in kw["arms"].items():
            lines.append(f"| {arm} | {_values(v['leak_share'])} | {_values(v['accuracy'])} |")
    return "\n".join(lines)
