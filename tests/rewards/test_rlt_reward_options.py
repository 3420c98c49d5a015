"""The released code's reward options (issue #18) against a hand computation.

Each option is checked against the reward computed independently: ℓ_S and ℓ_T from full
forward passes and a full-vocabulary log-softmax over the rendered strings, then the
per-token transforms of the released ``TeacherKLBasedReward`` written out with ``math``
on Python floats (``_make_normalize_fn``: transform, then clamp; ``estimate_kl``:
``k − 1 + exp(−k)``; ``include_teacher_think_entropy=False``: ``−ℓ_S``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rlt.errors import ConfigError
from rlt.formats import get_tags, student_sft_example, teacher_rl_prompt
from rlt.rewards import RLTReward, RLTRewardConfig, summarize

TAGS = get_tags("bespoke", "compact")
ROOT = Path(__file__).resolve().parents[2]
Q, S, E = "What is 2 + 3?", "5", "Two plus three: count up 3 from 2, giving 5."
QS, SS, ES = [Q, "What is 17 + 25?"], [S, "42"], [E, "seven and five is twelve, carry one: 42"]


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def _logprobs(model, ids: list[int], temperature: float) -> list[float]:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits / temperature, dim=-1)
    return lp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1).tolist()


def raw_logprobs(student, teacher, tok, question, solution, explanation, tau=0.7):
    """``(ℓ_S on E, ℓ_S on A, ℓ_T on E)`` as Python floats, from the rendered strings."""
    ex = student_sft_example(tok, question, solution, explanation, TAGS)
    e0 = len(_ids(tok, ex["prompt"] + TAGS.think_open))
    e1 = e0 + len(_ids(tok, explanation))
    a0 = e1 + len(_ids(tok, TAGS.think_close + "\n\n" + TAGS.solution_open))
    a1 = a0 + len(_ids(tok, solution))
    ls = _logprobs(student, _ids(tok, ex["prompt"] + ex["completion"]), tau)
    prompt = _ids(tok, teacher_rl_prompt(tok, question, solution, TAGS))
    lt = _logprobs(teacher, prompt + _ids(tok, explanation), tau)[len(prompt) - 1 :]
    return ls[e0 - 1 : e1 - 1], ls[a0 - 1 : a1 - 1], lt


def _normalize(x: float, fn: str | None) -> float:
    return {None: x, "exp": math.exp(x), "exp_norm": 1 - math.exp(-x)}[fn]


def hand_reward(ls_e, ls_a, lt, cfg: RLTRewardConfig) -> dict[str, float]:
    """r = mean + 0.01·min over the solution values − (3·mean + 0.03·max over the KL values)."""
    sol = [_normalize(v, cfg.normalize_log_prob) for v in ls_a]
    if cfg.clip_log_prob is not None:
        sol = [max(v, -cfg.clip_log_prob) for v in sol]
    if cfg.include_teacher_entropy:
        ks = [t - s for t, s in zip(lt, ls_e)]
        if cfg.use_schulman_kl:
            ks = [k - 1 + math.exp(-k) for k in ks]
    else:
        ks = [-s for s in ls_e]
    ks = [_normalize(k, cfg.normalize_kl) for k in ks]
    if cfg.clip_kl is not None:
        ks = [min(k, cfg.clip_kl) for k in ks]
    out = {
        "solution_logprob_mean": sum(sol) / len(sol),
        "solution_logprob_min": min(sol),
        "kl_mean": sum(ks) / len(ks),
        "kl_max": max(ks),
    }
    out["reward"] = (
        out["solution_logprob_mean"]
        + 0.01 * out["solution_logprob_min"]
        - (3.0 * out["kl_mean"] + 0.03 * out["kl_max"])
    )
    return out


OPTIONS = [
    {"use_schulman_kl": True},
    {"normalize_log_prob": "exp"},
    {"normalize_log_prob": "exp_norm"},
    {"normalize_kl": "exp"},
    {"normalize_kl": "exp_norm"},
    {"clip_log_prob": 5.0},
    {"clip_kl": 0.5},
    {"normalize_kl": "exp_norm", "clip_kl": 0.2, "use_schulman_kl": True},
    {"normalize_log_prob": "exp", "clip_log_prob": 0.5, "normalize_kl": "exp"},
    {"include_teacher_entropy": False},
    {"include_teacher_entropy": False, "normalize_kl": "exp_norm"},
    {"include_teacher_entropy": False, "clip_kl": 4.8},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_option_matches_hand_computation(models, options):
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", **options)
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    got = reward.score_texts(QS, SS, ES)
    for g, q, s, e in zip(got, QS, SS, ES):
        ls_e, ls_a, lt = raw_logprobs(student, teacher, tok, q, s, e)
        want = hand_reward(ls_e, ls_a, lt, cfg)
        for key, value in want.items():
            assert g[key] == pytest.approx(value, rel=1e-6, abs=1e-5), key
        assert g["penalty"] == 0.0
        assert "correctness_bonus" not in g  # off: no component


def test_clipping_binds_in_the_parametrised_cases(models):
    """The clip values above are inside the range of the raw values, so they are really exercised."""
    student, teacher, tok = models
    ls_e, ls_a, lt = raw_logprobs(student, teacher, tok, Q, S, E)
    ks = [t - s for t, s in zip(lt, ls_e)]
    assert max(ks) > 0.5 > min(ks)  # clip_kl 0.5
    assert min(-s for s in ls_e) < 4.8 < max(-s for s in ls_e)  # clip_kl 4.8 on −ℓ_S
    ls_a2 = raw_logprobs(student, teacher, tok, QS[1], SS[1], ES[1])[1]
    assert min(ls_a + ls_a2) < -5.0 < max(ls_a + ls_a2)  # clip_log_prob 5


def test_schulman_estimate_is_nonnegative(models):
    """k − 1 + exp(−k) ≥ 0 at every token, where the plain estimate k is often negative."""
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", use_schulman_kl=True)
    got = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok).score_texts([Q], [S], [E])[0]
    ls_e, _, lt = raw_logprobs(student, teacher, tok, Q, S, E)
    assert min(t - s for t, s in zip(lt, ls_e)) < 0
    assert got["kl_mean"] >= 0 and got["kl_max"] >= got["kl_mean"]


def test_without_teacher_entropy_needs_no_teacher(models):
    """−ℓ_S alone: the KL term exists without any teacher, and a teacher does not change it."""
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", include_teacher_entropy=False)
    alone = RLTReward(student, tok, cfg).score_texts([Q], [S], [E])[0]
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    with_t = reward.score_texts([Q], [S], [E])[0]
    assert alone["kl_mean"] is not None
    assert alone == pytest.approx(with_t)
    ls_e, _, _ = raw_logprobs(student, teacher, tok, Q, S, E)
    assert alone["kl_mean"] == pytest.approx(-sum(ls_e) / len(ls_e), abs=1e-5)


def test_empty_sets_keep_the_released_fill_values_under_transforms(models):
    """An empty explanation: KL statistics +W, penalty, whatever the normalisation (the release's nan_to_num)."""
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", normalize_kl="exp_norm", normalize_log_prob="exp")
    got = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok).score_texts([Q], [S], [""])[0]
    assert got["kl_mean"] == 1.0 and got["kl_max"] == 1.0 and got["penalty"] == -1.0


def test_defaults_are_the_papers_and_leave_the_reward_unchanged(models):
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact")
    assert (cfg.use_schulman_kl, cfg.normalize_log_prob, cfg.normalize_kl) == (False, None, None)
    assert (cfg.clip_log_prob, cfg.clip_kl, cfg.include_teacher_entropy) == (None, None, True)
    assert (cfg.correctness_bonus, cfg.correctness_rollouts) == (0.0, 8)
    got = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok).score_texts([Q], [S], [E])[0]
    want = hand_reward(*raw_logprobs(student, teacher, tok, Q, S, E), cfg)
    assert got["reward"] == pytest.approx(want["reward"], abs=1e-5)
    # The released configs' clip of 100000 changes nothing either.
    huge = RLTRewardConfig(chat_format="compact", clip_log_prob=100000, clip_kl=100000)
    got2 = RLTReward(student, tok, huge, teacher=teacher, teacher_tokenizer=tok).score_texts([Q], [S], [E])[0]
    assert got2 == got


@pytest.mark.parametrize(
    "kwargs, field_name",
    [
        ({"normalize_kl": "softmax"}, "normalize_kl"),
        ({"normalize_log_prob": 3}, "normalize_log_prob"),
        ({"clip_log_prob": -1.0}, "clip_log_prob"),
        ({"clip_log_prob": 0}, "clip_log_prob"),
        ({"clip_kl": float("nan")}, "clip_kl"),
        ({"clip_kl": "big"}, "clip_kl"),
        ({"use_schulman_kl": "yes"}, "use_schulman_kl"),
        ({"use_schulman_kl": True, "include_teacher_entropy": False}, "include_teacher_entropy"),
        ({"correctness_bonus": float("inf")}, "correctness_bonus"),
        ({"correctness_rollouts": 0}, "correctness_rollouts"),
        ({"correctness_max_new_tokens": 0}, "correctness_max_new_tokens"),
    ],
)
def test_invalid_options_name_the_field(kwargs, field_name):
    with pytest.raises(ConfigError, match=field_name):
        RLTRewardConfig(**kwargs)


def test_normalisation_names_are_normalised():
    cfg = RLTRewardConfig(normalize_kl="EXP_norm", normalize_log_prob="none")
    assert cfg.normalize_kl == "exp_norm" and cfg.normalize_log_prob is None


def test_options_parse_from_the_command_line():
    from rlt.train import parse_train_args

    argv = [
        "--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"), "--use_cpu", "true",
        "--use_schulman_kl", "true", "--normalize_kl", "exp_norm", "--clip_kl", "5",
        "--normalize_log_prob", "exp", "--clip_log_prob", "100000",
        "--correctness_bonus", "0.5", "--correctness_rollouts", "4",
    ]  # fmt: skip
    reward = parse_train_args(argv)[-1]
    assert reward.use_schulman_kl is True and reward.normalize_kl == "exp_norm" and reward.clip_kl == 5.0
    assert reward.normalize_log_prob == "exp" and reward.clip_log_prob == 100000.0
    assert reward.correctness_bonus == 0.5 and reward.correctness_rollouts == 4
    with pytest.raises(ConfigError, match="normalize_kl"):
        parse_train_args([*argv, "--normalize_kl", "softmax"])


# --------------------------------------------------------------------------- correctness bonus


def test_correctness_bonus_counts_right_answers(models, monkeypatch):
    """The student's answers are stubbed; the prompt, the checking and the bonus are the real ones."""
    import rlt.generation

    student, teacher, tok = models
    right = f"{TAGS.solution_open}5{TAGS.solution_close}"
    wrong = f"{TAGS.solution_open}6{TAGS.solution_close}"
    answers = {Q: [right, wrong, right, "no tags"], "What is 1 + 1?": [wrong] * 4}
    seen = []

    def fake_generate(model, tokenizer, prompts, settings, seed):
        assert model is student and settings.temperature == 0.7 and settings.max_new_tokens == 16
        seen.append(prompts)
        q = next(q for q in answers if q in prompts[0])
        return [_ids(tokenizer, a) for a in answers[q][: len(prompts)]]

    monkeypatch.setattr(rlt.generation, "generate_transformers", fake_generate)
    base_cfg = RLTRewardConfig(chat_format="compact")
    cfg = RLTRewardConfig(
        chat_format="compact", correctness_bonus=2.0, correctness_rollouts=4, correctness_max_new_tokens=16
    )
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    # A checker of our own (the math path is exercised below): exact string match.
    reward._checker = lambda row, ans: (ans == row["solution"], "ok")
    qs, ss, es = [Q, "What is 1 + 1?"], [S, "2"], [E, "one and one"]
    got = reward.score_texts(qs, ss, es)
    base = RLTReward(student, tok, base_cfg, teacher=teacher, teacher_tokenizer=tok).score_texts(qs, ss, es)
    assert [g["student_correct_frac"] for g in got] == [0.5, 0.0]
    assert [g["correctness_bonus"] for g in got] == [1.0, 0.0]
    for g, b in zip(got, base):
        assert g["reward"] == pytest.approx(b["reward"] + g["correctness_bonus"], abs=1e-9)
    # The student read its own prompt, the explanation, and the closed thinking; 4 rollouts each.
    for prompts, q, e in zip(seen, qs, es):
        assert len(prompts) == 4 and len(set(prompts)) == 1
        ex = student_sft_example(tok, q, "x", e, TAGS)
        assert prompts[0] == ex["prompt"] + TAGS.think_open + e + TAGS.think_close + "\n\n"
    assert summarize(got)["correctness_bonus"] == 0.5
    assert summarize(got)["student_correct_frac"] == 0.25


def test_correctness_rollouts_read_the_explanation_as_sampled(models, monkeypatch):
    """Rollouts at τ_S from the explanation decoded as sampled (special tokens kept, an empty
    one empty), seeded by the prompt's CRC32 in 31 bits, checked against {question, solution}."""
    import zlib

    import rlt.generation
    from rlt.generation import SamplingSettings

    student, teacher, tok = models
    calls = []

    def fake_generate(model, tokenizer, prompts, settings, seed):
        calls.append((prompts, settings, seed))
        return [_ids(tokenizer, f"{TAGS.solution_open}5{TAGS.solution_close}")] * len(prompts)

    monkeypatch.setattr(rlt.generation, "generate_transformers", fake_generate)
    cfg = RLTRewardConfig(
        chat_format="compact",
        student_temperature=0.5,
        correctness_bonus=1.0,
        correctness_rollouts=2,
        correctness_max_new_tokens=9,
    )
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    rows = []
    reward._checker = lambda row, ans: (rows.append(row) or ans == row["solution"], "ok")
    qs, es = [Q, "What is 1 + 1?"], [f"a{tok.eos_token}b", ""]
    got = reward.score_texts(qs, [S, f"{TAGS.solution_open}5{TAGS.solution_close}"], es)
    assert [g["student_correct_frac"] for g in got] == [1.0, 1.0]
    assert [c[1] for c in calls] == [SamplingSettings(temperature=0.5, max_new_tokens=9)] * 2
    for (prompts, _, seed), q, e in zip(calls, qs, es, strict=True):
        prefix = student_sft_example(tok, q, "x", e, TAGS)["prompt"] + TAGS.think_open
        assert prompts == [prefix + e + TAGS.think_close + "\n\n"] * 2
        assert seed == zlib.crc32(prompts[0].encode()) % 2**31  # int, the same in every process
    assert rows == [{"question": Q, "solution": "5"}] * 2 + [{"question": qs[1], "solution": "5"}] * 2


def test_correctness_bonus_with_math_verify_checker(models, monkeypatch):
    """task None: answers are checked by math-verify in its worker process, as `rlt eval` does."""
    import rlt.generation

    student, _, tok = models
    outs = [f"{TAGS.solution_open}{a}{TAGS.solution_close}" for a in ("5", "5.0", "7")]
    monkeypatch.setattr(
        rlt.generation, "generate_transformers", lambda m, t, prompts, s, seed: [_ids(t, o) for o in outs]
    )
    cfg = RLTRewardConfig(chat_format="compact", correctness_bonus=3.0, correctness_rollouts=3)
    reward = RLTReward(student, tok, cfg)
    try:
        got = reward.score_texts([Q], [f"{TAGS.solution_open}5{TAGS.solution_close}"], [E])[0]
    finally:
        reward.close()
    assert got["student_correct_frac"] == pytest.approx(2 / 3)
    assert got["correctness_bonus"] == pytest.approx(2.0)


def test_correctness_bonus_runs_the_real_student(models):
    """Real sampling on the tiny student: deterministic per prompt, independent of the batch."""
    student, _, tok = models
    cfg = RLTRewardConfig(
        chat_format="compact", correctness_bonus=1.0, correctness_rollouts=2, correctness_max_new_tokens=6
    )
    from rlt.tasks import get_task

    reward = RLTReward(student, tok, cfg, task="digits")
    rows = get_task("digits").generate(2, seed=0)
    qs, ss = [r["question"] for r in rows], [r["solution"] for r in rows]
    es = [E, "four and four"]
    batch = reward.score_texts(qs, ss, es)
    alone = reward.score_texts(qs[1:], ss[1:], es[1:])
    assert batch[1] == alone[0]
    for g in batch:
        assert 0.0 <= g["student_correct_frac"] <= 1.0
        assert g["correctness_bonus"] == g["student_correct_frac"]
