"""The report's part for the opt-in studies: E5 as cold start vs cold start, and the KL miniature.

Reads ``results.json``'s ``cold_starts`` (``rlt demo --cold_starts``, :mod:`rlt.demo.cold_starts`)
and ``kl_work`` (``--kl_work``, :mod:`rlt.demo.kl_work`); every claim is a paired comparison
over seeds (:func:`rlt.demo.stats.paired`: a claim holds when every seed agrees; a tie is not a win).
"""

from __future__ import annotations

from typing import Any

from rlt.demo.stats import Claim, mean_curve, mean_std, paired, trend

SHORT_LABELS = {"rlt_teacher": "RLT", "sft_teacher": "warm-up", "no_explanation": "no explanation"}
COLD_START_LABELS = {
    "rlt_teacher": "the RLT teacher's traces",
    "sft_teacher": "the warm-up teacher's traces",
    "no_explanation": "no explanation",
}


def _values(values: list[float | None]) -> str:
    return ", ".join("—" if v is None else f"{v:.3f}" for v in values)


def _paired_claim(
    claim: str, label: str, higher: list[float], lower: list[float], *, prefix: str, lower_first: bool = False
) -> Claim:
    """``claim``, held when ``higher`` beats ``lower`` on every seed (paired); means (and with
    ``lower_first`` the per-seed values, ``lower`` first), then the statistics."""
    found = paired(higher, lower)
    shown = (lower, higher) if lower_first else (higher, lower)
    means = f"{mean_std(shown[0])[0]:.3f} vs {mean_std(shown[1])[0]:.3f}"
    listed = f" ({_values(shown[0])} vs {_values(shown[1])})" if lower_first else ""
    return Claim(claim, found.held, f"{prefix}{means}{listed}; {found.describe()}", label=label,
                 figure=f"{means}; {found.short()}")  # fmt: skip


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
        out.append(_paired_claim(
            f"E5, cold start vs cold start: after the same student RL, the student cold-started on the RLT "
            f"teacher's traces ends above the one cold-started on {COLD_START_LABELS.get(other, other)} (paired)",
            f"E5 cold starts, after RL: RLT > {SHORT_LABELS.get(other, other)}",
            rlt, cs[other]["after"], prefix="after RL ",
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
    """``student``'s (``ordinary``/the study's) reward parts per style, pooled over seeds by count."""
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


def _students(kw: dict[str, Any]) -> list[str]:
    """The students the check scored: the study's (the RL arms') first, then the run's ordinary one."""
    study = kw.get("student", "persuaded")
    names = {name for seed in kw.get("parts", {}).values() for name in seed}
    return [study] + sorted(names - {study})


def check_rows(results: dict[str, Any], student: str) -> list[dict[str, float]]:
    """Per seed (the run's order), ``student``'s leak and correct steps with and without the KL term.

    Each row: ``leak_no_kl``, ``steps_no_kl``, ``leak``, ``steps`` (full reward), the solution
    log-probs ``leak_solution``, ``steps_solution`` and the leak's KL (mean) ``leak_kl``; NaN
    where a style was not measured.
    """
    nan, out = float("nan"), []
    for seed in results.get("kl_work", {}).get("parts", {}).values():
        parts = seed.get(student, {})
        leak, steps = parts.get("leak", {}), parts.get("steps", {})
        out.append({
            "leak_no_kl": leak.get("reward_no_kl", nan), "steps_no_kl": steps.get("reward_no_kl", nan),
            "leak": leak.get("reward", nan), "steps": steps.get("reward", nan),
            "leak_solution": leak.get("solution_logprob_mean", nan),
            "steps_solution": steps.get("solution_logprob_mean", nan), "leak_kl": leak.get("kl_mean", nan),
        })  # fmt: skip
    return out


def kl_stops_leaks(results: dict[str, Any], student: str) -> list[bool]:
    """Per seed, whether the full reward (with the KL term) ranks correct steps above a leak for ``student``."""
    return [r["leak"] < r["steps"] for r in check_rows(results, student)]


def _subset(values: list[Any], index: list[int]) -> list[Any]:
    return [values[i] for i in index]


def seed_groups(results: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """The seed groups the KL study's claims are decided on: all seeds, and with more than 3, each block of 3.

    The demo's design seeds are 0-2; with ``--seeds 6`` the claims are decided on seeds 0-2,
    on seeds 3-5 (which played no part in the design) and on all six.
    """
    seeds = results.get("seeds", [])
    groups = [("", list(range(len(seeds))))]
    if len(seeds) > 3:
        for lo in range(0, len(seeds), 3):
            index = list(range(lo, min(lo + 3, len(seeds))))
            groups.append((f" (seeds {seeds[index[0]]}–{seeds[index[-1]]})", index))
    return groups


def kl_work_claims(results: dict[str, Any]) -> list[Claim]:
    """The KL study's four claims, decided on every seed group of :func:`seed_groups` (paired over seeds)."""
    kw = results.get("kl_work")
    if not kw:
        return []
    out = []
    for label, index in seed_groups(results):
        out += _kl_claims(results, index, label)
    return out


def _margin(tolerance: float) -> str:
    """How a leak's no-KL reward must compare with correct steps' under ``tolerance`` (nats), in words."""
    if tolerance < 0:
        return f"beats correct steps' by at least {-tolerance}"
    return f"is at least correct steps' − {tolerance}"


def arms_ran(results: dict[str, Any], index: list[int]) -> list[int]:
    """The positions among ``index`` of the seeds that ran the KL study's RL arms."""
    acc = results["kl_work"].get("arms", {}).get("no_kl", {}).get("accuracy", [])
    return [i for i in index if i < len(acc) and acc[i] is not None]


def why_not_run(results: dict[str, Any], index: list[int]) -> str:
    """Which seeds at ``index`` did not run the RL arms, and which check stopped each; "" when all ran."""
    kw, ran = results["kl_work"], set(arms_ran(results, index))
    rows, seeds = check_rows(results, kw.get("student", "persuaded")), results.get("seeds", [])
    config = results.get("config", {})
    minimum, maximum = (
        config.get("kl_work_teacher_min_leak", 0.0),
        config.get("kl_work_teacher_max_wrong", 1.0),
    )
    wrong = kw.get("teacher_wrong") or [None] * len(seeds)
    reasons = []
    for i in (i for i in index if i not in ran):
        if not (kw["leak_pays"][i] and rows[i]["leak"] < rows[i]["steps"]):
            reasons.append(f"seed {seeds[i]} (the student's check failed)")
        elif (share := (kw.get("teacher_leak") or [None] * len(seeds))[i]) is not None:
            slips = "" if wrong[i] is None else f", wrong steps {wrong[i]:.2f} (at most {maximum})"
            reasons.append(
                f"seed {seeds[i]} (its starting teacher's clean leaks {share:.2f} (at least {minimum}){slips})"
            )
        else:  # results written before a seed's arms were kept apart from the others'
            reasons.append(f"seed {seeds[i]} (no RL-arm figures)")
    return "not run on " + ", ".join(reasons) if reasons else ""


def _kl_claims(results: dict[str, Any], index: list[int], group: str) -> list[Claim]:
    """The KL study's claims on the seeds at ``index`` of the run; ``group`` names them in each claim.

    The RL-arm claims pair the seeds that ran the arms; a seed of the group that did not run
    them (a check failed) makes each of them not held, with the reason first in its evidence.
    """
    kw = results["kl_work"]
    student = kw.get("student", "persuaded")
    tol = results.get("config", {}).get("kl_work_tolerance", 0.0)
    rows = _subset(check_rows(results, student), index)
    pays = _subset(kw["leak_pays"], index)
    stops = [r["leak"] < r["steps"] for r in rows]
    no_kl = paired([r["leak_no_kl"] for r in rows], [r["steps_no_kl"] for r in rows])
    with_kl = paired([r["steps"] for r in rows], [r["leak"] for r in rows])
    out = [Claim(
        f"KL study{group}: the KL term has work (for the RL arms' {student} frozen student, a clean leak's reward "
        f"without the KL term {_margin(tol)}, and with it a leak earns less than correct "
        "steps; every seed)",
        all(pays) and all(stops),
        f"leak pays without KL on {sum(pays)}/{len(pays)} seeds, KL stops it on {sum(stops)}/{len(stops)}; "
        f"without KL, leak − steps: {no_kl.describe()}; with KL, steps − leak: {with_kl.describe()}",
        label=f"KL study{group}: the KL term has work",
        figure=f"leak pays without KL {sum(pays)}/{len(pays)} ({no_kl.mean:+.3f}), KL stops it "
        f"{sum(stops)}/{len(stops)} ({with_kl.mean:+.2f}) seeds",
    )]  # fmt: skip
    names = (("the no-KL teacher drifts to leaking", "no-KL teacher drifts to leaking"),
             ("the no-KL teacher's students fall below the with-KL teacher's (paired)", "no-KL students below with-KL's"),
             ("the no-KL teacher's students fall below the no-explanation baseline (paired)", "no-KL students below baseline"))  # fmt: skip
    ran, missing = arms_ran(results, index), why_not_run(results, index)
    if not ran:
        return out + [Claim(f"KL study{group}: {long}", False, missing, label=f"KL study{group}: {short}",
                            figure="not run") for long, short in names]  # fmt: skip
    arms = kw["arms"]
    nokl, kl = arms["no_kl"], arms["with_kl"]
    share_nokl, share_kl = _subset(nokl["leak_share"], ran), _subset(kl["leak_share"], ran)
    drift = paired(share_nokl, share_kl)
    curves = {arm: _group_curve(arms[arm], ran) for arm in ("no_kl", "with_kl")}
    rise = trend(curves["no_kl"]) if curves["no_kl"] else 0.0
    shares = f"{mean_std(share_nokl)[0]:.2f} vs {mean_std(share_kl)[0]:.2f}"
    found = [Claim(
        f"KL study{group}: without the KL term the teacher drifts to leaking (its final traces' `leak` share above "
        "the with-KL teacher's, paired, and its share rising during RL, first → last quarter of the seeds' mean curve)",
        drift.held and rise > 0,
        f"`leak` share of the final traces {shares} ({_values(share_nokl)} vs {_values(share_kl)}); "
        f"{drift.describe()}; during RL (first → last quarter of these seeds' mean curve) no KL {rise:+.3f}, "
        f"with KL {trend(curves['with_kl']) if curves['with_kl'] else 0.0:+.3f}",
        label=f"KL study{group}: {names[0][1]}",
        figure=f"`leak` share {shares}; {drift.short()}; during RL {rise:+.2f}",
    )]  # fmt: skip
    acc_nokl = _subset(nokl["accuracy"], ran)
    base = results["arms"].get("no_explanation", {}).get("accuracy", [])
    for (long, short), values in zip(names[1:], (kl["accuracy"], base)):
        if len(values) != len(nokl["accuracy"]):
            continue
        found.append(_paired_claim(
            f"KL study{group}: {long}", f"KL study{group}: {short}", _subset(values, ran), acc_nokl,
            prefix="no KL ", lower_first=True,
        ))  # fmt: skip
    if missing:  # a seed of the group did not run the arms: nothing over the group can hold
        found = [Claim(c[0], False, f"{missing}; on the {len(ran)} that ran: {c[2]}", label=c.label,
                       figure=f"not run on {len(index) - len(ran)}/{len(index)} seeds; {c.figure}")
                 for c in found]  # fmt: skip
    return out + found


def _group_curve(arm: dict[str, Any], ran: list[int]) -> list[float]:
    """The mean `leak`-share curve over RL of the seeds at ``ran`` (the run's mean curve for older results)."""
    per_seed = arm.get("rl_leak_per_seed")
    return arm["rl_leak"] if per_seed is None else mean_curve([per_seed[i] for i in ran])


def _nan(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:+.{digits}f}"


def kl_work_tables(results: dict[str, Any]) -> str:
    """The check per seed and pooled, the RL arms' leak shares and students, the paired comparisons; "" without."""
    kw = results.get("kl_work")
    if not kw:
        return ""
    students = _students(kw)
    study = students[0]
    lines = [
        f"The check, per seed, for the {study} student (the RL arms'): a clean leak (`answer 6`) against correct "
        "steps, with ℓ_T of the teacher the arms start from.",
        "",
        "| seed | reward without KL: leak | steps | with KL: leak | steps | solution log-prob: leak | steps "
        "| leak's KL (mean) | passed | starting teacher: clean leaks / wrong steps (copy rounds) | RL arms run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    seeds = results.get("seeds", [])
    leaks, ran = (
        kw.get("teacher_leak") or [None] * len(seeds),
        set(arms_ran(results, list(range(len(seeds))))),
    )
    wrong = kw.get("teacher_wrong") or [None] * len(seeds)
    rounds = kw.get("teacher_rounds") or [1] * len(seeds)  # copy rounds its check needed
    for i, (seed, r, pays, stops) in enumerate(zip(seeds, check_rows(results, study), kw["leak_pays"],
                                                   kl_stops_leaks(results, study))):  # fmt: skip
        lines.append(
            f"| {seed} | {_nan(r['leak_no_kl'])} | {_nan(r['steps_no_kl'])} | {_nan(r['leak'], 2)} | "
            f"{_nan(r['steps'], 2)} | {_nan(r['leak_solution'])} | {_nan(r['steps_solution'])} | "
            f"{_nan(r['leak_kl'], 2)} | {'yes' if pays and stops else 'no'} | "
            f"{'n/a' if leaks[i] is None else f'{leaks[i]:.2f}'} / {'n/a' if wrong[i] is None else f'{wrong[i]:.2f}'}"
            f"{f' ({rounds[i]} rounds)' if rounds[i] > 1 else ''} | "
            f"{'yes' if i in ran else 'no'} |"
        )
    minimum = results.get("config", {}).get("kl_work_teacher_min_leak")
    if minimum is not None:
        maximum = results.get("config", {}).get("kl_work_teacher_max_wrong", 1.0)
        lines += ["", f"A seed runs the RL arms when its check passed and, among its starting teacher's explanations "
                  f"of the check's questions (sampled as in RL), at least {minimum} are clean leaks and at most "
                  f"{maximum} wrong steps."]  # fmt: skip
    lines += [
        "",
        "Pooled over seeds, every style:",
        "",
        "| student | style | texts | reward | reward without KL | solution log-prob (mean) | KL (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for student in students:
        for style, p in pooled_parts(results, student).items():
            lines.append(
                f"| {student} | `{style}` | {p['n']} | {p['reward']:.2f} | {p['reward_no_kl']:.3f} | "
                f"{p['solution_logprob_mean']:.3f} | {p['kl_mean']:.2f} |"
            )
    lines += [
        "",
        f"The {study} student's own (greedy) accuracy: {_values(kw['persuaded_accuracy'])} (per seed).",
    ]
    arms = kw.get("arms")
    if not arms:
        return "\n".join(lines)
    lines += ["", f"| teacher RL against the {study} student | `leak` share over RL (mean; first → last step) "
              "| `leak` share of the final traces (per seed) | its students (per seed) |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for arm, v in arms.items():
        curve = v["rl_leak"]
        over = f"{mean_std(curve)[0]:.2f}; {curve[0]:.2f} → {curve[-1]:.2f}" if curve else "n/a"
        lines.append(f"| {arm} | {over} | {_values(v['leak_share'])} | {_values(v['accuracy'])} |")
    lines += ["", "Paired over seeds (every seed must agree; a tie is not a win):", "",
              "| students of | against | difference per seed | paired |", "| --- | --- | --- | --- |"]  # fmt: skip
    others = {"with-KL teacher": arms["with_kl"]["accuracy"]} | {
        f"{SHORT_LABELS[a]} ({a})": results["arms"][a]["accuracy"]
        for a in ("rlt_teacher", "sft_teacher", "no_explanation") if a in results.get("arms", {})
    }  # fmt: skip
    for arm in ("no_kl", "with_kl"):
        for name, values in others.items():
            if arm == "with_kl" and name == "with-KL teacher":
                continue
            both = [
                i
                for i, (a, b) in enumerate(zip(arms[arm]["accuracy"], values))
                if a is not None and b is not None
            ]
            found = paired(_subset(arms[arm]["accuracy"], both), _subset(values, both))
            lines.append(
                f"| {arm} teacher | {name} | {', '.join(f'{d:+.3f}' for d in found.diffs)} | "
                f"{found.wins}/{len(found.diffs)} above, {found.mean:+.3f} (CI {found.ci[0]:+.3f} … {found.ci[1]:+.3f}, "
                f"p = {found.sign_p:.3f}, d_z {'n/a' if found.d_z is None else f'{found.d_z:.2f}'}) |"
            )
    return "\n".join(lines)
