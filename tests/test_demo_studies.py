"""The opt-in studies of `rlt demo` (#31) by hand: E5 as cold start vs cold start, and the KL miniature.

The quick end-to-end run (tests/test_demo.py) runs both stages; here the claim logic is
checked on numbers written out by hand (a tie is not a win; a check that fails stops the arms).
"""

import pytest

from rlt.demo.kl_work import leak_pays
from rlt.demo.report import claims, write_report
from rlt.demo.report_studies import cold_start_claims, cold_start_table, kl_work_claims, pooled_parts
from rlt.demo.results import _cold_starts, _kl_work


def _base():
    return {
        "arms": {"no_explanation": {"accuracy": [0.1, 0.1, 0.1]}, "sft_teacher": {"accuracy": [0.5, 0.6, 0.4]},
                 "rlt_teacher": {"accuracy": [0.9, 0.95, 0.9]}},
        "rl": {"reward": [-3, -2, -1, 0], "solution_logprob_mean": [-3, -2, -1, 0], "kl_mean": [0.1] * 4,
               "style_fraction": {"steps": [0.5, 0.9], "leak": [0.1, 0.0], "wrong": [0.2, 0.1], "filler": [0.2, 0.0]}},
        "seeds": [0, 1, 2], "config": {"kl_work_tolerance": 0.05}, "elapsed_s": 1.0,
    }  # fmt: skip


def _cold(rlt_after, sft_after, none_after, before=(0.9, 0.5, 0.1)):
    return {
        arm: {"before": [b] * 3, "after": list(after)}
        for arm, b, after in zip(("rlt_teacher", "sft_teacher", "no_explanation"), before, (rlt_after, sft_after, none_after))
    }  # fmt: skip


def _by_claim(found):
    return {c: (h, e) for c, h, e in found}


def test_cold_start_claims_paired_and_a_tie_is_not_a_win():
    res = _base()
    res["cold_starts"] = _cold([0.95, 0.92, 0.93], [0.6, 0.7, 0.5], [0.2, 0.1, 0.15])
    found = cold_start_claims(res)
    assert len(found) == 3 and all(h for _, h, _ in found)
    assert "ends above the one cold-started on the warm-up teacher's traces" in found[0][0]
    assert found[0][2].startswith("after RL 0.933 vs 0.600; 3/3 seeds agree (one-sided sign test p = 0.125)")
    assert found[0].figure == "0.933 vs 0.600; 3/3 seeds, +0.333 (p = 0.125)"
    # RL helps: rlt 0.9 -> 0.933 on every seed (each seed up)
    assert "rlt_teacher 0.900 → 0.933 (+0.033, 3/3 seeds up)" in found[2][2]
    # one seed ties with the warm-up cold start: not held (ties count against the claim)
    res["cold_starts"] = _cold([0.95, 0.7, 0.93], [0.6, 0.7, 0.5], [0.2, 0.1, 0.15])
    # ... and RL helps no arm on every seed: rlt falls on seed 1, the others tie before/after on one seed
    assert [h for _, h, _ in cold_start_claims(res)] == [False, True, False]
    # RL changes nothing on any arm: "RL helps at least one arm" is not held
    res["cold_starts"] = _cold([0.9] * 3, [0.5] * 3, [0.1] * 3)
    helps = cold_start_claims(res)[-1]
    assert helps[1] is False and "0/3 seeds up" in helps[2]
    # one arm up on two seeds and down on one: still not held
    res["cold_starts"] = _cold([0.9] * 3, [0.6, 0.6, 0.4], [0.1] * 3)
    assert cold_start_claims(res)[-1][1] is False
    assert cold_start_claims(_base()) == []


def test_cold_start_table_and_report(tmp_path):
    res = _base()
    res["cold_starts"] = _cold([0.95, 0.92, 0.93], [0.6, 0.7, 0.5], [0.2, 0.1, 0.15])
    row = cold_start_table(res).splitlines()[3]
    assert row.startswith(
        "| the warm-up teacher's traces | 0.500 (0.500, 0.500, 0.500) | 0.600 (0.600, 0.700, 0.500) | +0.100"
    )
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## E5: cold start vs cold start" in text and "| E5, cold start vs cold start" in text
    assert "KL miniature" not in text  # the stage did not run


def test_cold_starts_pooled_over_seeds():
    seeds = [{"seed": s, "findings": {"cold_starts": {"rlt_teacher": {"before": 0.1 * s, "after": 0.2 * s}}}}
             for s in range(3)]  # fmt: skip
    assert _cold_starts(seeds) == {"rlt_teacher": {"before": [0.0, 0.1, 0.2], "after": [0.0, 0.2, 0.4]}}
    assert _cold_starts([*seeds, {"seed": 3, "findings": {}}]) == {}  # a seed without the stage: none


def test_leak_pays_within_the_tolerance():
    steps = {"reward_no_kl": -0.02}
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": -0.06}}, 0.05) is True
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": -0.08}}, 0.05) is False
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": 0.0}}, 0.0) is True
    assert leak_pays({"steps": steps}, 1.0) is False  # no leak measured: nothing to say it pays


def _parts(leak_no_kl, n=4):
    return {
        "ordinary": {"steps": {"n": n, "reward": 0.0, "reward_no_kl": 0.0, "solution_logprob_mean": 0.0, "kl_mean": 0.0},
                     "leak": {"n": n, "reward": -20.0, "reward_no_kl": -6.0, "solution_logprob_mean": -6.0, "kl_mean": 4.0}},
        "persuaded": {"steps": {"n": n, "reward": -0.1, "reward_no_kl": 0.0, "solution_logprob_mean": 0.0, "kl_mean": 0.0},
                      "leak": {"n": n, "reward": -1.2, "reward_no_kl": leak_no_kl, "solution_logprob_mean": leak_no_kl,
                               "kl_mean": 0.4}},
    }  # fmt: skip


def _kl_results(
    arms=True, nokl_share=(0.4, 0.5, 0.3), kl_share=(0.0, 0.1, 0.0), rl_leak=(0.2, 0.3, 0.4, 0.5)
):
    res = _base()
    res["kl_work"] = {
        "parts": {str(s): _parts(-0.01 * (s + 1)) for s in range(3)},
        "leak_pays": [True, True, True], "persuaded_accuracy": [0.9, 0.8, 0.85],
    }  # fmt: skip
    if arms:
        res["kl_work"]["arms"] = {
            "with_kl": {"accuracy": [0.9, 0.95, 0.9], "leak_share": list(kl_share), "rl_leak": [0.25, 0.1, 0.05, 0.0]},
            "no_kl": {"accuracy": [0.6, 0.5, 0.7], "leak_share": list(nokl_share), "rl_leak": list(rl_leak)},
        }  # fmt: skip
    return res


def test_kl_work_claims_by_hand(tmp_path):
    found = kl_work_claims(_kl_results())
    assert [h for _, h, _ in found] == [True, True, True]
    check = found[0][2]
    assert check.startswith(
        "leak pays without KL on 3/3 seeds, KL stops it on 3/3; ordinary student: reward without KL, leak -6.00 vs steps 0.00"
    )
    assert "persuaded student: reward without KL, leak -0.02 vs steps 0.00; with KL, leak -1.20" in check
    assert "no KL +0.300, with KL -0.250" in found[1][2]
    assert found[2][2].startswith("0.917 vs 0.600; 3/3 seeds agree (one-sided sign test p = 0.125)")
    assert "mean per-seed difference +0.317" in found[2][2]
    # a student that finds leaks natural: the KL term rewards a leak on one seed, so it has no work there
    res = _kl_results()
    res["kl_work"]["parts"]["1"]["persuaded"]["leak"]["reward"] = 2.0
    assert kl_work_claims(res)[0][1] is False and "KL stops it on 2/3" in kl_work_claims(res)[0][2]
    res["kl_work"]["student"] = (
        "ordinary"  # the ordinary student's parts decide when it is the RL arms' student
    )
    assert kl_work_claims(res)[0][1] is True and "ordinary frozen student" in kl_work_claims(res)[0][0]
    # a tie in the leak share on one seed is not a drift; nor is a no-KL share that falls during RL
    assert kl_work_claims(_kl_results(nokl_share=(0.4, 0.1, 0.3)))[1][1] is False
    assert kl_work_claims(_kl_results(rl_leak=(0.5, 0.4, 0.3, 0.2)))[1][1] is False
    # the check failed on a seed: the arms never ran, and neither claim holds
    res = _kl_results(arms=False)
    res["kl_work"]["leak_pays"] = [True, False, True]
    found = kl_work_claims(res)
    assert [h for _, h, _ in found] == [False, False, False] and "not run" in found[1][2]
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## The KL miniature" in text and "| persuaded | `leak` | 12 |" in text
    assert "leaking pays without KL per seed: [True, False, True]" in text
    assert any(c.startswith("KL miniature") for c, _, _ in claims(res))


def test_kl_work_parts_pooled_by_count():
    res = _kl_results()
    res["kl_work"]["parts"]["0"]["persuaded"]["leak"]["n"] = (
        2  # seed 0 weighs half: (2 * -0.01 + 4 * -0.02 + 4 * -0.03) / 10
    )
    pooled = pooled_parts(res, "persuaded")
    assert pooled["leak"]["n"] == 10 and pooled["leak"]["reward_no_kl"] == pytest.approx(-0.022)
    assert pooled_parts(_base(), "persuaded") == {}


def test_kl_work_pooled_over_seeds():
    def seed(s, arms=True):
        k = {"parts": {"persuaded": {}}, "leak_pays": True, "persuaded_accuracy": 0.5 + s / 10}
        if arms:
            k["arms"] = {
                "no_kl": {
                    "accuracy": s / 10,
                    "leak_share": s / 5,
                    "rl_leak": [0.0, s],
                    "trace_styles": {"leak": s},
                }
            }
        return {"seed": s, "findings": {"kl_work": k}}  # fmt: skip

    out = _kl_work([seed(0), seed(1)])
    assert out["persuaded_accuracy"] == [0.5, 0.6] and out["leak_pays"] == [True, True]
    assert out["arms"]["no_kl"]["accuracy"] == [0.0, 0.1] and out["arms"]["no_kl"]["rl_leak"] == [0.0, 0.5]
    assert "arms" not in _kl_work([seed(0), seed(1, arms=False)])  # a seed without the arms: no arms
    assert _kl_work([{"seed": 0, "findings": {}}]) == {}


def test_a_study_redoes_its_stages_when_its_settings_change(tmp_path):
    from rlt.demo.common import guard_settings

    def write_outputs():
        (tmp_path / "e5c_rlt_teacher").mkdir()
        (tmp_path / "e5c_rlt_teacher" / ".rlt_stage_done").write_text("")
        (tmp_path / "eval_e5c_rlt_teacher.json").write_text("0.5")

    (tmp_path / "eval_rlt_teacher.json").write_text("{}")  # not the study's: always kept
    outputs = ("e5c_*", "eval_e5c_*")
    write_outputs()  # outputs without a settings file: of unknown settings, removed
    guard_settings(tmp_path, "cold_starts", {"steps": 80}, outputs)
    assert not (tmp_path / "e5c_rlt_teacher").exists()
    write_outputs()
    guard_settings(tmp_path, "cold_starts", {"steps": 80}, outputs)  # same settings: kept
    assert (tmp_path / "e5c_rlt_teacher" / ".rlt_stage_done").exists()
    guard_settings(tmp_path, "cold_starts", {"steps": 40}, outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cold_starts_settings.json",
        "eval_rlt_teacher.json",
    ]


def test_a_bad_kl_work_student_is_refused_before_any_work(tmp_path):
    from rlt.demo import main
    from rlt.errors import ConfigError

    with pytest.raises(ConfigError, match="kl_work_student: 'teacher'; expected ordinary or persuaded"):
        main(["--kl_work", "--kl_work_student", "teacher", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "seed0").exists()
