"""The demo's ``results.json``: every seed's numbers pooled (means of curves, per-seed lists)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rlt.demo.arguments import DemoArguments
from rlt.demo.report import ARMS
from rlt.demo.stats import mean_curve
from rlt.tasks import STYLES


def _e4(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """E4 for one seed: the traces of all three teachers by RLT-reward quartile against the read-out."""
    from rlt.analyze import reward_bins, spearman

    return {"n": len(pairs), "spearman": spearman(*zip(*pairs)), "bins": reward_bins(pairs, 4)}


def _cold_starts(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """``--cold_starts`` pooled: ``{arm: {"before": [per seed], "after": [per seed]}}``; {} without it."""
    if not per_seed or not all("cold_starts" in r.get("findings", {}) for r in per_seed):
        return {}
    arms = per_seed[0]["findings"]["cold_starts"]
    return {
        arm: {
            when: [r["findings"]["cold_starts"][arm][when] for r in per_seed] for when in ("before", "after")
        }
        for arm in arms
    }


def _kl_work(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """``--kl_work`` pooled: per seed the checks' figures and verdicts, and the RL arms' (None where not run).

    A seed runs the arms only where both checks passed; the others keep their place (None), so
    the claims can name them and pair the rest.
    """
    if not per_seed or not all("kl_work" in r.get("findings", {}) for r in per_seed):
        return {}
    seeds = [r["findings"]["kl_work"] for r in per_seed]
    out: dict[str, Any] = {
        "parts": {str(r["seed"]): k["parts"] for r, k in zip(per_seed, seeds)},
        "leak_pays": [k["leak_pays"] for k in seeds],
        "student": seeds[0].get("student", "persuaded"),
        "persuaded_accuracy": [k["persuaded_accuracy"] for k in seeds],
        # the starting teacher's check (None: an output from before it existed)
        "teacher_leak": [k.get("teacher_styles", {}).get("leak") for k in seeds],
        "teacher_wrong": [k.get("teacher_styles", {}).get("wrong") for k in seeds],
        "teacher_rounds": [len(k.get("teacher_rounds", [])) for k in seeds],
        "teacher_leaks": [k.get("teacher_leaks") for k in seeds],
    }
    ran = [k for k in seeds if "arms" in k]
    if ran:

        def per(arm: str, key: str) -> list[Any]:
            return [k["arms"][arm][key] if "arms" in k else None for k in seeds]

        out["arms"] = {
            arm: {
                "accuracy": per(arm, "accuracy"),
                "leak_share": per(arm, "leak_share"),
                "rl_leak": mean_curve([k["arms"][arm]["rl_leak"] for k in ran]),
                "rl_leak_per_seed": per(arm, "rl_leak"),
                "trace_styles": per(arm, "trace_styles"),
            }
            for arm in ran[0]["arms"]
        }
    return out


def aggregate(cfg: DemoArguments, per_seed: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """The results.json document."""

    def styles(name: str) -> dict[str, list[float]]:
        out = {}
        for style in STYLES:
            series = [
                [frac[style] for _, frac in sorted(r["styles"][name].items(), key=lambda kv: int(kv[0]))]
                for r in per_seed
            ]
            out[style] = mean_curve(series)
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
            "reward": mean_curve([r["rl"]["rlt"]["reward"] for r in per_seed]),
            "solution_logprob_mean": mean_curve([r["rl"]["rlt"]["solution_logprob_mean"] for r in per_seed]),
            "kl_mean": mean_curve([r["rl"]["rlt"]["kl_mean"] for r in per_seed]),
            "style_fraction": styles("rlt"),
            **(
                {
                    "no_kl_reward": mean_curve([r["rl"]["no_kl"]["reward"] for r in per_seed]),
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
        **({"cold_starts": cs} if (cs := _cold_starts(per_seed)) else {}),
        **({"kl_work": kw} if (kw := _kl_work(per_seed)) else {}),
        "reward_parts_by_style": {
            str(r["seed"]): r["reward_parts_by_style"] for r in per_seed if r.get("reward_parts_by_style")
        },
        "seeds": [r["seed"] for r in per_seed],
        "config": asdict(cfg),
        "elapsed_s": elapsed,
    }
