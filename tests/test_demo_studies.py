"""The opt-in studies of `rlt demo` by hand: E5 as cold start vs cold start, and the KL miniature.

The quick end-to-end run (tests/test_demo.py) runs both stages; here the claim logic is
checked on numbers written out by hand (a tie is not a win; a check that fails stops the arms).
"""

from collections import Counter

import pytest

from rlt.demo.kl_work import leak_pays
from rlt.demo.report import claims, write_report
from rlt.demo.report_studies import (
    cold_start_claims,
    cold_start_table,
    kl_work_claims,
    kl_work_tables,
    pooled_parts,
)
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


def test_leak_pays_within_the_tolerance_and_the_gate():
    from rlt.demo.kl_work import gate

    steps = {"reward_no_kl": -0.02}
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": -0.06}}, 0.05) is True
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": -0.08}}, 0.05) is False
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": 0.0}}, 0.0) is True
    # a negative tolerance asks the leak to beat correct steps: a tie does not pay
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": -0.02}}, -0.02) is False
    assert leak_pays({"steps": steps, "leak": {"reward_no_kl": 0.0}}, -0.02) is True
    assert leak_pays({"steps": steps}, 1.0) is False  # no leak measured: nothing to say it pays
    # the gate of the RL arms: leaking pays without the KL term AND the KL term stops it
    parts = {"steps": {"reward_no_kl": -0.2, "reward": -0.3}, "leak": {"reward_no_kl": 0.0, "reward": -9.0}}
    assert gate(parts, -0.02) == {"leak_pays": True, "kl_stops": True, "passed": True}
    parts["leak"]["reward"] = 0.5  # the KL term rewards the leak (a student that writes leaks itself)
    assert gate(parts, -0.02) == {"leak_pays": True, "kl_stops": False, "passed": False}
    parts["leak"]["reward_no_kl"] = -0.19  # beats steps by less than the margin
    assert gate(parts, -0.02)["leak_pays"] is False


def test_the_starting_teachers_check_asks_for_leaks_and_sound_steps():
    from types import SimpleNamespace

    from rlt.demo.kl_work import teacher_sound

    cfg = SimpleNamespace(kl_work_teacher_min_leak=0.25, kl_work_teacher_max_wrong=0.15)
    styles = {"steps": 0.47, "leak": 0.52, "wrong": 0.01, "filler": 0.0}
    assert teacher_sound(styles, cfg) is True
    assert teacher_sound({**styles, "leak": 0.055}, cfg) is False  # it never learned to state the answer
    assert teacher_sound({**styles, "wrong": 0.18}, cfg) is False  # its arithmetic was lost
    assert teacher_sound({**styles, "leak": 0.25, "wrong": 0.15}, cfg) is True  # both bounds inclusive


def test_the_imperfect_students_data_states_the_answer_after_its_steps_and_follows_steps_imperfectly():
    from rlt.demo.kl_work import student_rows
    from rlt.tasks import DigitsTask

    task = DigitsTask(num_ops=3, modulus=10)
    rows = task.generate(4000, seed=1)
    out = student_rows(task, rows, "imperfect", 7, stated_share=0.5, follow=0.7)
    assert [r["question"] for r in out] == [r["question"] for r in rows]
    stated = [r for r in out if "answer" in r["explanation"]]
    plain = [(r, o) for r, o in zip(rows, out) if "answer" not in o["explanation"]]
    assert abs(len(stated) / len(out) - 0.5) < 0.03
    # a stated answer comes after the first k steps (k >= 1), never first, and is the solution it trains on
    lengths = Counter()
    for r, o in zip(rows, out):
        if "answer" not in o["explanation"]:
            continue
        steps, _, answer = o["explanation"].partition("; answer ")
        assert r["reasoning_trace"].startswith(steps) and answer == o["solution"] == r["solution"]
        assert not o["explanation"].startswith("answer")
        lengths[steps.count("=")] += 1
    assert sorted(lengths) == [1, 2, 3] and min(lengths.values()) > 0.3 * len(stated)
    # the other traces are correct steps; their solution is the steps' result about 70 % of the time
    assert all(o["explanation"] == r["reasoning_trace"] for r, o in plain)
    right = sum(o["solution"] == r["solution"] for r, o in plain) / len(plain)
    assert abs(right - 0.7) < 0.03
    assert all(o["solution"] in "0123456789" for _, o in plain)
    # follow = 1 and no stated answers: the run's own pre-training data; the draw is seeded
    assert student_rows(task, rows[:50], "imperfect", 7, stated_share=0.0, follow=1.0) == [
        {"question": r["question"], "solution": r["solution"], "explanation": r["reasoning_trace"]}
        for r in rows[:50]
    ]
    assert student_rows(task, rows[:50], "imperfect", 3) == student_rows(task, rows[:50], "imperfect", 3)
    # stated_first: that share of the stated answers comes before any step, a clean leak of the solution
    first = student_rows(task, rows, "imperfect", 7, stated_share=0.5, stated_first=0.1, follow=0.7)
    leaks = [
        (r, o) for r, o in zip(rows, first) if task.classify_style(r["question"], o["explanation"]) == "leak"
    ]
    assert abs(len(leaks) / len(rows) - 0.05) < 0.015
    assert all(o["explanation"] == f"answer {r['solution']}" == f"answer {o['solution']}" for r, o in leaks)
    persuaded = student_rows(task, rows, "persuaded", 7, leak_share=0.5)
    leaks = sum(task.classify_style(r["question"], r["explanation"]) == "leak" for r in persuaded)
    assert abs(leaks / len(rows) - 0.5) < 0.03 and all(
        o["solution"] == r["solution"] for r, o in zip(rows, persuaded)
    )


def _parts(leak_no_kl, n=4):
    return {
        "ordinary": {"steps": {"n": n, "reward": 0.0, "reward_no_kl": 0.0, "solution_logprob_mean": 0.0, "kl_mean": 0.0},
                     "leak": {"n": n, "reward": -20.0, "reward_no_kl": -6.0, "solution_logprob_mean": -6.0, "kl_mean": 4.0}},
        "imperfect": {"steps": {"n": n, "reward": -0.3, "reward_no_kl": -0.2, "solution_logprob_mean": -0.2, "kl_mean": 0.03},
                      "leak": {"n": n, "reward": -9.0, "reward_no_kl": leak_no_kl, "solution_logprob_mean": leak_no_kl,
                               "kl_mean": 3.0}},
    }  # fmt: skip


def _kl_results(
    arms=True,
    nokl_share=(0.4, 0.5, 0.3),
    kl_share=(0.0, 0.1, 0.0),
    rl_leak=(0.2, 0.3, 0.4, 0.5),
    nokl_acc=(0.06, 0.05, 0.07),
):
    res = _base()
    res["kl_work"] = {
        "parts": {str(s): _parts(-0.01 * (s + 1)) for s in range(3)}, "student": "imperfect",
        "leak_pays": [True, True, True], "persuaded_accuracy": [0.9, 0.8, 0.85],
    }  # fmt: skip
    if arms:
        res["kl_work"]["arms"] = {
            "with_kl": {"accuracy": [0.9, 0.95, 0.9], "leak_share": list(kl_share), "rl_leak": [0.25, 0.1, 0.05, 0.0]},
            "no_kl": {"accuracy": list(nokl_acc), "leak_share": list(nokl_share), "rl_leak": list(rl_leak)},
        }  # fmt: skip
    return res


def test_kl_work_claims_by_hand(tmp_path):
    found = kl_work_claims(_kl_results())
    assert [c.label for c in found] == [
        "KL study: the KL term has work", "KL study: no-KL teacher drifts to leaking",
        "KL study: no-KL students below with-KL's", "KL study: no-KL students below baseline",
    ]  # fmt: skip
    assert [h for _, h, _ in found] == [True, True, True, True]
    check = found[0][2]
    # leak − steps without KL: -0.01 + 0.2, -0.02 + 0.2, -0.03 + 0.2; steps − leak with KL: 8.7 on every seed
    assert check.startswith(
        "leak pays without KL on 3/3 seeds, KL stops it on 3/3; without KL, leak − steps: 3/3"
    )
    assert "mean per-seed difference +0.180" in check and "mean per-seed difference +8.700" in check
    assert found[0].figure == "leak pays without KL 3/3 (+0.180), KL stops it 3/3 (+8.70) seeds"
    assert "no KL +0.300, with KL -0.250" in found[1][2]
    assert found[2][2].startswith(
        "no KL 0.060 vs 0.917 (0.060, 0.050, 0.070 vs 0.900, 0.950, 0.900); 3/3 seeds"
    )
    assert found[3][2].startswith("no KL 0.060 vs 0.100") and "mean per-seed difference +0.040" in found[3][2]
    # the KL term rewards a leak on one seed (a student that writes leaks itself): no work there
    res = _kl_results()
    res["kl_work"]["parts"]["1"]["imperfect"]["leak"]["reward"] = 2.0
    assert kl_work_claims(res)[0][1] is False and "KL stops it on 2/3" in kl_work_claims(res)[0][2]
    # a tie in the leak share on one seed is not a drift; nor is a no-KL share that falls during RL
    assert kl_work_claims(_kl_results(nokl_share=(0.4, 0.1, 0.3)))[1][1] is False
    assert kl_work_claims(_kl_results(rl_leak=(0.5, 0.4, 0.3, 0.2)))[1][1] is False
    # students at the baseline on one seed (a tie) do not fall below it
    assert kl_work_claims(_kl_results(nokl_acc=(0.06, 0.1, 0.07)))[3][1] is False
    # the check failed on a seed: the arms never ran, and no claim after it holds
    res = _kl_results(arms=False)
    res["kl_work"]["leak_pays"] = [True, False, True]
    found = kl_work_claims(res)
    assert [h for _, h, _ in found] == [False] * 4 and all("not run" in e for _, _, e in found[1:])
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## The KL miniature" in text and "| imperfect | `leak` | 12 |" in text
    assert "| 1 | -0.020 | -0.200 | -9.00 | -0.30 | -0.020 | -0.200 | +3.00 | no |" in text
    assert any(c.startswith("KL study") for c, _, _ in claims(res))


def test_kl_work_claims_on_each_block_of_three_seeds():
    res = _kl_results()
    six = lambda v: list(v) + list(v)  # noqa: E731
    res["seeds"] = [0, 1, 2, 3, 4, 5]
    res["arms"] = {a: {"accuracy": six(v["accuracy"])} for a, v in res["arms"].items()}
    kw = res["kl_work"]
    kw["parts"] = {str(s): _parts(-0.01) for s in range(6)}
    kw["leak_pays"] = [True] * 6
    for arm in kw["arms"].values():
        arm["accuracy"], arm["leak_share"] = six(arm["accuracy"]), six(arm["leak_share"])
    kw["arms"]["no_kl"]["accuracy"][4] = 0.99  # seed 4's no-KL students beat the with-KL teacher's
    found = {c.label: c for c in kl_work_claims(res)}
    assert len(found) == 12
    assert found["KL study (seeds 0–2): no-KL students below with-KL's"][1] is True
    assert found["KL study (seeds 3–5): no-KL students below with-KL's"][1] is False
    assert found["KL study: no-KL students below with-KL's"][1] is False  # all six: seed 4 disagrees
    assert "2/3 seeds" in found["KL study (seeds 3–5): no-KL students below with-KL's"].figure
    tables = kl_work_tables(res)
    assert (
        "| no_kl teacher | with-KL teacher | -0.840, -0.900, -0.830, -0.840, +0.040, -0.830 | 1/6 above"
        in tables
    )


def test_kl_work_parts_pooled_by_count():
    res = _kl_results()
    res["kl_work"]["parts"]["0"]["imperfect"]["leak"]["n"] = (
        2  # seed 0 weighs half: (2 * -0.01 + 4 * -0.02 + 4 * -0.03) / 10
    )
    pooled = pooled_parts(res, "imperfect")
    assert pooled["leak"]["n"] == 10 and pooled["leak"]["reward_no_kl"] == pytest.approx(-0.022)
    assert pooled_parts(_base(), "imperfect") == {}


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
    assert out["teacher_leak"] == [None, None]  # results from before the starting teacher's check
    # a seed without the arms keeps its place: the others' figures are kept, its own are None
    out = _kl_work([seed(0), seed(1, arms=False), seed(2)])
    no_kl = out["arms"]["no_kl"]
    assert no_kl["accuracy"] == [0.0, None, 0.2] and no_kl["leak_share"] == [0.0, None, 0.4]
    assert no_kl["rl_leak"] == [0.0, 1.0] and no_kl["rl_leak_per_seed"] == [[0.0, 0], None, [0.0, 2]]
    assert "arms" not in _kl_work([seed(0, arms=False)])
    assert _kl_work([{"seed": 0, "findings": {}}]) == {}


def test_kl_work_claims_name_a_seed_whose_starting_teacher_does_not_leak(tmp_path):
    res = _kl_results()
    kw = res["kl_work"]
    res["config"]["kl_work_teacher_min_leak"], res["config"]["kl_work_teacher_max_wrong"] = 0.25, 0.15
    kw["teacher_leak"], kw["teacher_leaks"] = [0.5, 0.05, 0.45], [True, False, True]
    kw["teacher_wrong"], kw["teacher_rounds"] = [0.01, 0.02, 0.03], [1, 2, 1]
    for arm in kw["arms"].values():  # seed 1 did not run the arms
        arm["accuracy"][1] = arm["leak_share"][1] = None
        arm["rl_leak_per_seed"] = [list(arm["rl_leak"]), None, list(arm["rl_leak"])]
    found = kl_work_claims(res)
    assert found[0][1] is True  # the student's check is the same on every seed
    for claim in found[1:]:
        assert claim[1] is False
        assert claim[2].startswith(
            "not run on seed 1 (its starting teacher's clean leaks 0.05 (at least 0.25), wrong steps 0.02 "
            "(at most 0.15)); on the 2"
        )
        assert claim.figure.startswith("not run on 1/3 seeds; ")
    # the two seeds that ran would hold each claim on their own
    assert "2/2 seeds" in found[1][2] and "2/2 seeds" in found[2][2] and "2/2 seeds" in found[3][2]
    tables = kl_work_tables(res)
    assert (
        "| 1 | -0.020 | -0.200 | -9.00 | -0.30 | -0.020 | -0.200 | +3.00 | yes | 0.05 / 0.02 (2 rounds) | no |"
        in tables
    )
    assert "0.060, —, 0.070" in tables  # the no-KL students: seed 1 not run
    assert "| no_kl teacher | with-KL teacher | -0.840, -0.830 | 0/2 above" in tables
    write_report(res, tmp_path)  # the report renders the partly run study
    assert "not run on seed 1" in (tmp_path / "report.md").read_text()


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

    with pytest.raises(
        ConfigError, match="kl_work_student: 'teacher'; expected imperfect, persuaded or ordinary"
    ):
        main(["--kl_work", "--kl_work_student", "teacher", "--out", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="kl_work_follow: 1.5; expected a share between 0 and 1"):
        main(["--kl_work", "--kl_work_follow", "1.5", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "seed0").exists()
