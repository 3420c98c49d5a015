import io
import json

import pytest

from rlt.demo import style_fractions
from rlt.demo.report import claims, paired, trace_table, write_report
from rlt.tasks import DigitsTask


def _results(rlt, sft, nokl, reward, leak):
    return {
        "arms": {"no_explanation": {"accuracy": [0.1, 0.12]}, "sft_teacher": {"accuracy": sft},
                 "rlt_teacher": {"accuracy": rlt}, "rlt_no_kl_teacher": {"accuracy": nokl}},
        "rl": {"reward": reward, "solution_logprob_mean": reward, "kl_mean": [0.1] * len(reward),
               "style_fraction": {"steps": [0.5, 0.9], "leak": [0.1, 0.0], "wrong": [0.2, 0.1], "filler": [0.2, 0.0]},
               "no_kl_reward": reward, "no_kl_style_fraction": {"steps": [0.5, 0.4], "leak": leak,
                                                                "wrong": [0.2, 0.1], "filler": [0.2, 0.0]}},
        "seeds": [0, 1], "config": {"quick": False}, "elapsed_s": 12.0,
    }  # fmt: skip


def test_claims_are_decided_from_the_numbers():
    held = {
        c: h for c, h, _ in claims(_results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5]))
    }
    assert all(held.values()) and len(held) == 4
    # one of two seeds goes the other way: not held, whatever the means say
    not_held = claims(_results([0.5, 0.9], [0.55, 0.5], [0.9, 0.95], [0, -1, -2, -3], [0.3, 0.1]))
    assert not any(h for _, h, _ in not_held)


def test_paired_statistics_by_hand():
    p = paired([0.8, 0.6, 0.7], [0.5, 0.5, 0.8])  # differences +0.3, +0.1, -0.1
    assert p.diffs == pytest.approx((0.3, 0.1, -0.1)) and p.wins == 2
    assert p.sign_p == pytest.approx(4 / 8)  # P(X >= 2 | n=3, 1/2) = (3 + 1) / 8
    assert p.d_z == pytest.approx(0.1 / 0.2)  # mean 0.1, sd 0.2
    assert -0.1 - 1e-9 <= p.ci[0] < 0.1 < p.ci[1] <= 0.3 + 1e-9 and not p.held
    q = paired([0.9, 0.8, 0.7, 0.9, 0.8, 0.7], [0.5, 0.6, 0.6, 0.4, 0.5, 0.6])
    assert q.wins == 6 and q.sign_p == pytest.approx(1 / 64) and q.ci[0] > 0 and q.held
    assert paired([0.5], [0.4]).d_z is None  # one seed: no spread, no effect size


def test_report_and_plots(tmp_path):
    write_report(_results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5]), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| `rlt_teacher` |" in text and "held" in text
    for png in ("reward.png", "styles.png", "accuracy.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_report_without_the_kl_ablation(tmp_path):
    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    del res["arms"]["rlt_no_kl_teacher"], res["rl"]["no_kl_reward"], res["rl"]["no_kl_style_fraction"]
    found = claims(res)
    assert not any("KL term makes" in c for c, _, _ in found) and found[0][1] is True
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| `rlt_teacher` |" in text and "rlt_no_kl_teacher" not in text
    assert (tmp_path / "styles.png").read_bytes()[:4] == b"\x89PNG"


def test_trace_table_averages_style_shares_over_seeds(tmp_path):
    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    res["trace_styles"] = {"0": {"rlt_teacher": {"steps": 9, "wrong": 1}},
                           "1": {"rlt_teacher": {"steps": 7, "leak": 3}}}  # fmt: skip
    assert trace_table(res).splitlines()[2] == "| `rlt_teacher` | 0.80 | 0.15 | 0.05 | 0.00 |"
    write_report(res, tmp_path)
    assert "| `rlt_teacher` | 0.80 |" in (tmp_path / "report.md").read_text()
    assert trace_table(_results([0.8], [0.4], [0.3], [0.0], [0.0])) == ""
    res["trace_styles"]["0"]["rlt_no_kl_teacher"] = {"steps": 1, "leak": 9}
    evidence = [e for c, _, e in claims(res) if "KL term makes" in c][0]
    assert evidence.startswith("0.325 vs 0.850; 2/2 seeds agree (one-sided sign test p = 0.250); ")
    assert evidence.endswith(
        "mean per-seed difference +0.525 (95 % bootstrap CI +0.500 … +0.550); effect size d_z = 14.85; "
        "correct-step traces 0.10 vs 0.80"
    )


def test_style_fractions_parse_the_logged_completions():
    prompt = "<|im_start|>user\nstart 7; +5; *3; -4 (mod 10)<|im_end|>\n<|im_start|>assistant\n"
    recs = [
        {"step": 0, "prompt": prompt, "completion": "7+5=2; 2*3=6; 6-4=2<|end_of_explanation|>"},
        {"step": 0, "prompt": prompt, "completion": "answer 2<|end_of_explanation|>"},
        {"step": 1, "prompt": prompt, "completion": "think it through"},
    ]
    fr = style_fractions(recs)
    assert fr[0] == {"steps": 0.5, "leak": 0.5, "wrong": 0.0, "filler": 0.0}
    assert fr[1]["filler"] == 1.0


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    from rlt.cli import main as cli

    out = tmp_path / "demo"
    assert cli(["demo", "--quick", "--kl_ablation", "true", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["arms"]) == {"no_explanation", "sft_teacher", "rlt_teacher", "rlt_no_kl_teacher"}
    for arm in res["arms"].values():
        assert len(arm["accuracy"]) == 1 and 0.0 <= arm["accuracy"][0] <= 1.0
    assert len(res["rl"]["reward"]) == 4 and set(res["rl"]["style_fraction"]) == {
        "steps",
        "leak",
        "wrong",
        "filler",
    }
    assert res["seeds"] == [0] and res["config"]["quick"] is True and res["elapsed_s"] > 0
    report = (out / "report.md").read_text()
    assert "## The paper's claims" in report and "| `sft_teacher` |" in report
    for png in ("reward.png", "styles.png", "accuracy.png"):
        assert (out / png).exists()
    # The frozen student's read-out of each teacher's traces is reported beside the students.
    assert 0.0 <= res["arms"]["rlt_teacher"]["trace_read_out"][0] <= 1.0
    assert "frozen student given the traces" in report
    # The frozen student trained on in rounds while below the bar (the quick one is weak: all rounds run)
    rounds = json.loads((out / "seed0" / "student_accuracy.json").read_text())
    assert all(a < 0.95 for a in rounds[:-1]) and (rounds[-1] >= 0.95 or len(rounds) == 3)
    assert res["student_accuracy"] == [rounds[-1]] and "(pre-trained, then trained on until sound)" in report
    # A resumed run redoes no finished distillation or evaluation: same files, same numbers.
    seed_dir = out / "seed0"
    stamps = {p: p.stat().st_mtime_ns for p in seed_dir.glob("*/model.safetensors")}
    stamps |= {p: p.stat().st_mtime_ns for p in seed_dir.glob("eval_*.json")}
    assert len(stamps) >= 4 + 6  # 4 distilled students + base, student, teachers; 4 evaluations
    # ... and adding --findings, --cold_starts and --kl_work to the finished run only runs those stages
    # (a tolerance and teacher bounds that make both KL checks pass, so the quick run reaches the
    # KL arms too: its starting teacher, 10 + 30 steps, writes few clean leaks and many wrong steps)
    extra = ["--findings", "--cold_starts", "--kl_work", "--kl_work_tolerance", "1000"]
    extra += ["--kl_work_teacher_min_leak", "0", "--kl_work_teacher_max_wrong", "1"]
    assert cli(["demo", "--quick", "--kl_ablation", "true", *extra, "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = json.loads((out / "results.json").read_text())
    assert again["arms"] == res["arms"] and "e5" not in res
    assert set(again["e5"]) == {"cold_start", "from_scratch"} and set(again["e6"]) == {
        "sft_teacher",
        "rlt_teacher",
    }
    # the E5/E6 accuracies are the students' recounted from their own evaluation files
    for name, arms in (("e5", again["e5"]), ("e6", again["e6"])):
        for arm, values in arms.items():
            assert values == [json.loads((seed_dir / f"eval_{name}_{arm}.json").read_text())]
    assert (seed_dir / "e5_from_scratch" / "model.safetensors").exists()
    assert len((seed_dir / "e6_traces_rlt_teacher.jsonl").read_text().splitlines()) == 32
    report = (out / "report.md").read_text()
    assert "| E5: student RL" in report and "| E6: explaining Countdown" in report
    _check_studies(again, seed_dir, report)
    # a starting teacher that fails its check gets a second round of copy steps, then no RL arms
    assert cli(["demo", "--quick", "--kl_ablation", "true", *extra[:-1], "0", "--out", str(out)]) == 0
    kw = json.loads((out / "results.json").read_text())["kl_work"]
    assert kw["teacher_rounds"] == [2] and "arms" not in kw
    assert (seed_dir / "teacher_kl_work_copy_r1" / ".rlt_stage_done").exists()
    assert kw["teacher_wrong"] == [
        json.loads((seed_dir / "kl_work_start_styles_r1.json").read_text())["wrong"]
    ]
    assert "not run on seed 0 (its starting teacher's clean leaks" in (out / "report.md").read_text()


def _check_studies(res, seed_dir, report):
    """The quick run's --cold_starts and --kl_work numbers are those of their own files."""
    cold = res["cold_starts"]
    assert list(cold) == ["rlt_teacher", "sft_teacher", "no_explanation"]
    for arm, v in cold.items():  # before: the distilled student's evaluation; after: the RL'd student's
        assert v["before"] == [res["arms"][arm]["accuracy"][0]]
        assert v["after"] == [json.loads((seed_dir / f"eval_e5c_{arm}.json").read_text())]
        assert (seed_dir / f"e5c_{arm}" / "model.safetensors").exists()
    kw = res["kl_work"]
    assert set(kw["parts"]["0"]) == {"ordinary", "imperfect"} and kw["student"] == "imperfect"
    for parts in kw["parts"]["0"].values():  # 64 distillation questions, each in every style
        assert {s: p["n"] for s, p in parts.items()} == {"steps": 64, "leak": 64, "wrong": 64, "filler": 64}
    own = json.loads((seed_dir / "eval_kl_student_imperfect.json").read_text())
    assert kw["persuaded_accuracy"] == [own]  # the study's student's own accuracy, from its file
    # the starting teacher's check: its sampled explanations of the 64 check questions, by style
    start = [json.loads(line) for line in (seed_dir / "kl_work_start_traces.jsonl").read_text().splitlines()]
    leaks = sum(DigitsTask.classify_style(r["question"], r["explanation"]) == "leak" for r in start)
    assert len(start) == 64 and kw["teacher_leak"] == [leaks / 64] and kw["teacher_leaks"] == [True]
    assert "arms" in kw  # the quick run's checks pass: its RL arms ran
    for arm in ("with_kl", "no_kl"):
        v = kw["arms"][arm]
        assert v["accuracy"] == [json.loads((seed_dir / f"eval_kl_work_{arm}.json").read_text())["accuracy"]]
        assert sum(v["trace_styles"][0].values()) == 64 and 0 <= v["leak_share"][0] <= 1
        assert len(v["rl_leak"]) == res["config"]["rl_steps"]  # one logged share per RL step
    assert "## E5: cold start vs cold start" in report and "## The KL miniature" in report
    for claim in ("the KL term has work", "without the KL term the teacher drifts to leaking",
                  "the no-KL teacher's students fall below the with-KL teacher's",
                  "the no-KL teacher's students fall below the no-explanation baseline"):  # fmt: skip
        assert f"| KL study: {claim}" in report


def test_e4_reward_quartiles_against_the_read_out():
    from rlt.demo import _e4

    # 8 traces: reward rises, outcome 0 for the lower half and 1 for the upper half.
    pairs = [(float(r), float(r >= 4)) for r in range(8)]
    seed = _e4(pairs)
    assert [b["outcome_mean"] for b in seed["bins"]] == [0.0, 0.0, 1.0, 1.0]
    assert seed["spearman"] == pytest.approx(
        32 / (42 * 32) ** 0.5
    )  # ranks 1..8 vs two tied groups (2.5, 6.5)
    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    res["e4"] = [seed, _e4([(float(r), float(r < 4)) for r in range(8)])]  # second seed: reversed
    e4 = [(h, e) for c, h, e in claims(res) if c.startswith("E4")]
    assert e4 and e4[0][0] is False and "Spearman +0.87" in e4[0][1] and "Spearman -0.87" in e4[0][1]
    res["e4"] = [seed, seed]
    assert [h for c, h, _ in claims(res) if c.startswith("E4")] == [True]


def test_kl_work_check_pools_reward_parts_over_seeds(tmp_path):
    from rlt.demo import reward_parts_by_style
    from rlt.demo.report import kl_has_work, parts_table, reward_parts
    from rlt.tasks import DigitsTask

    q = "start 7; +2; *3; -1 (mod 10)"  # 7+2=9, 9*3=7, 7-1=6
    rows = [{"question": q, "explanation": e} for e in ("7+2=9; 9*3=7; 7-1=6", "the answer is 6", "7+2=1")]
    parts = [
        {"reward": r, "solution_logprob_mean": s, "kl_mean": k}
        for r, s, k in ((0, -0.1, 0.1), (-5, -2.0, 3.0), (-9, -8.0, 1.0))
    ]
    by_style = reward_parts_by_style(DigitsTask(num_ops=3, modulus=10), rows, parts)
    assert by_style["steps"] == {"n": 1, "reward": 0, "solution_logprob_mean": -0.1, "kl_mean": 0.1}
    assert set(by_style) == {"steps", "leak", "wrong"}
    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    # seed 1 has three leaks at -1.0: pooled leak = (1 * -2.0 + 3 * -1.0) / 4 = -1.25
    res["reward_parts_by_style"] = {
        "0": by_style, "1": {"leak": {"n": 3, "reward": -1.0, "solution_logprob_mean": -1.0, "kl_mean": 1.0}}
    }  # fmt: skip
    pooled = reward_parts(res)
    assert list(pooled) == ["steps", "leak", "wrong"] and pooled["leak"]["n"] == 4
    assert pooled["leak"]["solution_logprob_mean"] == pytest.approx(-1.25)
    assert pooled["leak"]["kl_mean"] == pytest.approx((3.0 + 3 * 1.0) / 4)
    work, why = kl_has_work(res)
    assert work is False and "-1.25" in why and "`--kl_work` builds a frozen student" in why
    kl_claim = [e for c, _, e in claims(res) if "KL term makes" in c][0]
    assert kl_claim.endswith("not testable in this run (see “What the KL term has to do”)")
    assert parts_table(res).splitlines()[3] == "| `leak` | 4 | -2.00 | -1.25 | 1.50 |"
    # a leak the student believes as much as correct steps: the KL term has work to do
    res["reward_parts_by_style"]["1"]["leak"]["solution_logprob_mean"] = 1.0  # pooled (-2 + 3) / 4 = 0.25
    assert kl_has_work(res)[0] is True
    assert "not testable" not in [e for c, _, e in claims(res) if "KL term makes" in c][0]
    write_report(res, tmp_path)
    assert "The KL term has work here" in (tmp_path / "report.md").read_text()
    assert kl_has_work(_results([0.8], [0.4], [0.3], [0.0], [0.0])) is None


def test_e5_e6_claims_are_paired_over_seeds():
    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    res["e5"] = {"cold_start": [0.9, 0.95], "from_scratch": [0.2, 0.1]}
    res["e6"] = {"rlt_teacher": [0.0, 0.0], "sft_teacher": [0.0, 0.0]}  # a tie is not a win
    found = {c[:3]: (h, e) for c, h, e in claims(res)}
    assert found["E5:"][0] is True and found["E5:"][1].startswith(
        "0.925 vs 0.150; 2/2 seeds agree (one-sided sign test p = 0.250); mean per-seed difference +0.775"
    )
    assert found["E6:"][0] is False and "0/2 seeds" in found["E6:"][1]


def test_a_claim_holds_when_every_seed_agrees_and_the_interval_then_excludes_0():
    # every per-seed difference positive: every bootstrap resample's mean is too, so the interval
    # condition the rule used to name decides nothing; one tie or loss and the claim does not hold
    for diffs in ([0.001, 0.5, 0.2], [0.3, 0.01], [0.2] * 6, [0.9]):
        p = paired([d + 0.1 for d in diffs], [0.1] * len(diffs))
        assert p.held and p.ci[0] > 0
    assert not paired([0.5, 0.1, 0.4], [0.1, 0.1, 0.1]).held  # a tie is not a win
    assert paired([0.5, 0.6, 0.7], [0.1] * 3).sign_p == pytest.approx(0.125)  # 3 seeds: p >= 0.125
    assert paired([0.5] * 6, [0.1] * 6).sign_p == pytest.approx(1 / 64)  # --seeds 6: 0.016


def test_the_terminal_ends_with_the_claims_their_verdicts_and_paired_figures(tmp_path):
    from rich.console import Console

    from rlt.demo.report import RULE, verdicts

    res = _results([0.8, 0.9], [0.4, 0.5], [0.3, 0.35], [-5, -3, -1, 0], [0.1, 0.5])
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(verdicts(res))
    text = console.export_text()
    assert "RLT teacher's students > warm-up teacher's │ held " in text
    assert "0.850 vs 0.450; 2/2 seeds, +0.400 (p = 0.250)" in text
    assert "RLT teacher's students > no-KL teacher's" in text and "0.850 vs 0.325" in text
    res["arms"]["sft_teacher"]["accuracy"] = [0.4, 0.95]  # one seed goes the other way
    console.print(verdicts(res))
    assert "RLT teacher's students > warm-up teacher's │ not held" in console.export_text()
    assert [c.label for c in claims(res)] and all(c.figure for c in claims(res))
    assert "every seed agrees" in RULE and "p = 0.125" in RULE and "p = 0.016" in RULE
    write_report(res, tmp_path)
    assert RULE in (tmp_path / "report.md").read_text()  # the report states the rule too
