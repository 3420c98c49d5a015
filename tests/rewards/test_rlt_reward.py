"""The RLT reward (spec §3) against independent, naive computations."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch
from torch import nn

from rlt.errors import ConfigError, RewardError
from rlt.formats import get_tags, student_sft_example, teacher_rl_prompt
from rlt.models import char_tokenizer
from rlt.rewards import RLTReward, RLTRewardConfig
from rlt.rewards.rlt import parse_coefs, summarize

# The character tokenizer and tiny models: the compact chat (no padding, short prompts).
TAGS = get_tags("bespoke", "compact")


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def _naive_logprobs(model, ids: list[int], temperature: float) -> torch.Tensor:
    """ℓ(t) for t = 1..L-1 from a full forward and a full-vocabulary log_softmax: ``[L-1]``."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits / temperature, dim=-1)
    return lp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)


def naive_reward(
    student,
    teacher,
    tok,
    question,
    solution,
    explanation,
    closed=True,
    cfg=None,
    student_system=None,
    teacher_system=None,
):
    """The reward computed independently: rendered strings, full forward passes, full log-softmax."""
    cfg = cfg or RLTRewardConfig(chat_format="compact")
    ex = student_sft_example(tok, question, solution, explanation, TAGS, student_system)
    full = ex["prompt"] + ex["completion"]
    # Character tokenizer: positions follow from string lengths of the rendered pieces.
    head = ex["prompt"] + TAGS.think_open
    e0 = len(_ids(tok, head))
    e1 = e0 + len(_ids(tok, explanation))
    a0 = e1 + len(_ids(tok, TAGS.think_close + "\n\n" + TAGS.solution_open))
    answer = solution.replace(TAGS.solution_open, "").replace(TAGS.solution_close, "").strip()
    a1 = a0 + len(_ids(tok, answer))
    ids = _ids(tok, full)
    assert ids[a0:a1] == _ids(tok, answer)
    ls = _naive_logprobs(student, ids, cfg.student_temperature)
    ls_e, ls_a = ls[e0 - 1 : e1 - 1], ls[a0 - 1 : a1 - 1]
    r_ss = 1.0 * ls_a.mean() + 0.01 * ls_a.min()
    out = {"solution_logprob_mean": float(ls_a.mean()), "solution_logprob_min": float(ls_a.min())}
    r_kl = 0.0
    if teacher is not None:
        prompt = _ids(tok, teacher_rl_prompt(tok, question, solution, TAGS, teacher_system))
        lt = _naive_logprobs(teacher, prompt + _ids(tok, explanation), cfg.teacher_temperature)
        lt_e = lt[len(prompt) - 1 :]
        k = lt_e - ls_e
        r_kl = 3.0 * k.mean() + 0.03 * k.max()
        out.update(kl_mean=float(k.mean()), kl_max=float(k.max()))
    penalty = 0.0 if closed and explanation else -1.0
    out["reward"] = float(r_ss - r_kl + penalty)
    return out


def _random_batch(n: int, seed: int):
    rng = random.Random(seed)
    alphabet = "abcdefghij 0123456789+-=.,"
    qs = [
        f"What is {rng.randint(1, 99)} + {rng.randint(1, 99)}?" + "x" * rng.randint(0, 20) for _ in range(n)
    ]
    ss = [str(rng.randint(1, 9999)) for _ in range(n)]
    es = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]
    return qs, ss, es


# --------------------------------------------------------------------------- exact values


def test_hand_checkable_reward(models):
    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    # A four-token solution, so the mean and the min of its log-probs differ (one token: min = mean).
    q, s, e = "What is 2 + 3 + 1020?", "1025", "Two plus three: count up 3 from 2, giving 5."
    got = reward.score_texts([q], [s], [e])[0]
    want = naive_reward(student, teacher, tok, q, s, e)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-5), key
    assert got["penalty"] == 0.0
    assert got["num_explanation_tokens"] == len(e) and got["num_solution_tokens"] == len(s)
    assert got["solution_logprob_mean"] - got["solution_logprob_min"] > 0.1
    assert got["kl_max"] - got["kl_mean"] > 0.1
    # r = r_SS − r_KL + p, from the returned components.
    r = (
        got["solution_logprob_mean"]
        + 0.01 * got["solution_logprob_min"]
        - (3.0 * got["kl_mean"] + 0.03 * got["kl_max"])
    )
    assert got["reward"] == pytest.approx(r, abs=1e-6)
    # Each coefficient weighs its own statistic: swap two and the reward moves by the difference.
    swapped = RLTReward(
        student,
        tok,
        RLTRewardConfig(chat_format="compact", solution_coefs=[(0.01, "mean"), (1.0, "min")]),
        teacher=teacher,
        teacher_tokenizer=tok,
    ).score_texts([q], [s], [e])[0]
    delta = 0.99 * (got["solution_logprob_min"] - got["solution_logprob_mean"])
    assert swapped["reward"] == pytest.approx(got["reward"] + delta, abs=1e-6)


def test_agrees_with_naive_reference_on_random_batches(models):
    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    for seed in range(2):
        qs, ss, es = _random_batch(5, seed)
        got = reward.score_texts(qs, ss, es)
        for g, q, s, e in zip(got, qs, ss, es):
            want = naive_reward(student, teacher, tok, q, s, e)
            for key, value in want.items():
                assert g[key] == pytest.approx(value, abs=1e-5), key


def test_independent_of_batch_padding_side_and_chunk_size(models):
    student, teacher, tok = models
    qs, ss, es = _random_batch(6, seed=3)
    base = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    batch = [c["reward"] for c in base.score_texts(qs, ss, es)]
    alone = [base.score_texts([q], [s], [e])[0]["reward"] for q, s, e in zip(qs, ss, es)]
    assert batch == pytest.approx(alone, abs=1e-5)
    for kw in ({"padding_side": "left"}, {"chunk_size": 1}, {"chunk_size": 7}, {"micro_batch_size": 4}):
        other = RLTReward(
            student, tok, RLTRewardConfig(chat_format="compact", **kw), teacher=teacher, teacher_tokenizer=tok
        )
        assert [c["reward"] for c in other.score_texts(qs, ss, es)] == pytest.approx(batch, abs=1e-5), kw


def test_given_teacher_logprobs_equal_computed(models):
    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    qs, ss, es = _random_batch(3, seed=4)
    ids = [_ids(tok, e) for e in es]
    computed = reward.score_ids(qs, ss, ids, [True] * 3)
    lt = reward.compute_teacher_logprobs(reward.teacher_prompt_ids(qs, ss), ids)
    padded = [torch.cat([x, torch.zeros(5)]) for x in lt]  # trailing entries (close tag, padding) ignored
    given = RLTReward(student, tok, RLTRewardConfig(chat_format="compact")).score_ids(
        qs, ss, ids, [True] * 3, teacher_logprobs=padded
    )
    assert [c["reward"] for c in given] == pytest.approx([c["reward"] for c in computed], abs=1e-6)
    with pytest.raises(RewardError, match="sample 0"):
        reward.score_ids(qs, ss, ids, [True] * 3, teacher_logprobs=[x[:1] for x in lt])


def test_temperatures_enter_as_in_the_spec(models):
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", student_temperature=1.3, teacher_temperature=0.5)
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    q, s, e = "Compute 6*7.", "42", "six sevens are forty-two"
    got = reward.score_texts([q], [s], [e])[0]
    want = naive_reward(student, teacher, tok, q, s, e, cfg=cfg)
    assert got["reward"] == pytest.approx(want["reward"], abs=1e-5)


# --------------------------------------------------------------------------- penalties and ablations


def test_penalties_are_finite(models):
    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    close = _ids(tok, TAGS.explanation_close)
    q, s = "What is 1+1?", "2"
    cases = {
        "closed": _ids(tok, "one and one") + close + [tok.eos_token_id],
        "no_close": _ids(tok, "one and one") + [tok.eos_token_id],
        "truncated": _ids(tok, "one and o"),
        "empty": close + [tok.eos_token_id],
        "nothing": [tok.eos_token_id],
    }
    out = reward(
        prompts=[teacher_rl_prompt(tok, q, s, TAGS)] * len(cases),
        completions=[tok.decode(c) for c in cases.values()],
        completion_ids=list(cases.values()),
        question=[q] * len(cases),
        solution=[s] * len(cases),
    )
    comps = dict(zip(cases, reward.last_components))
    assert all(math.isfinite(r) for r in out)
    assert comps["closed"]["penalty"] == 0.0
    for name in ("no_close", "truncated", "empty", "nothing"):
        assert comps[name]["penalty"] == -1.0, name
    assert not comps["no_close"]["closed"] and comps["no_close"]["num_explanation_tokens"] == len(
        "one and one"
    )
    # An empty explanation: its KL statistics take W = empty_term_value (1, the released code's value).
    w = 1.0
    empty = comps["empty"]
    assert empty["num_explanation_tokens"] == 0 and empty["kl_mean"] == empty["kl_max"] == pytest.approx(w)
    assert empty["reward"] == pytest.approx(
        empty["solution_logprob_mean"] + 0.01 * empty["solution_logprob_min"] - 3.03 * w - 1.0
    )
    # The truncated explanation is still scored.
    want = naive_reward(student, teacher, tok, q, s, "one and o", closed=False)
    assert comps["truncated"]["reward"] == pytest.approx(want["reward"], abs=1e-5)


def test_empty_solution_is_worst_case_and_penalised(models):
    student, _, tok = models
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact", empty_term_value=10.0))
    got = reward.score_texts(["q"], [""], ["something"])[0]
    assert got["num_solution_tokens"] == 0
    assert got["solution_logprob_mean"] == got["solution_logprob_min"] == -10.0
    assert got["reward"] == pytest.approx(-10.0 - 0.1 - 1.0)


def test_zero_kl_coefficients_give_solution_terms_plus_penalty(models):
    student, teacher, tok = models
    cfg = RLTRewardConfig(chat_format="compact", kl_coefs=[(0.0, "mean"), (0.0, "max")])
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    qs, ss, es = _random_batch(3, seed=5)
    got = reward.score_texts(qs, ss, es, closed=[True, False, True])
    for g in got:
        assert g["kl_mean"] is not None  # still measured and logged
        r_ss = g["solution_logprob_mean"] + 0.01 * g["solution_logprob_min"]
        assert g["reward"] == pytest.approx(r_ss + g["penalty"], abs=1e-9)
    assert got[1]["penalty"] == -1.0


def test_without_teacher_kl_is_none(models):
    student, teacher, tok = models
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    q, s, e = "What is 2 + 3?", "5", "count up"
    got = reward.score_texts([q], [s], [e])[0]
    assert got["kl_mean"] is None and got["kl_max"] is None
    want = naive_reward(student, None, tok, q, s, e)
    assert got["reward"] == pytest.approx(want["reward"], abs=1e-5)


# --------------------------------------------------------------------------- errors


def test_vocabulary_mismatch_is_refused(models):
    student, teacher, tok = models
    other = char_tokenizer()
    other.add_tokens(["<|extra_token|>"])
    with pytest.raises(RewardError, match="share a vocabulary.*sizes"):
        RLTReward(student, tok, teacher=teacher, teacher_tokenizer=other)


def test_nan_logits_name_the_sample(models):
    student, teacher, tok = models
    reward = RLTReward(student, tok)
    qs, ss, es = ["first question", "second question"], ["1", "2"], ["a", "b"]

    def poison_row_1(module, args, output):
        output = output.clone()
        output[1] = float("nan")
        return output

    handle = student.get_decoder().embed_tokens.register_forward_hook(poison_row_1)
    try:
        with pytest.raises(RewardError, match=r"student.*sample 1 \(question 'second question'\)"):
            reward.score_texts(qs, ss, es)
    finally:
        handle.remove()
    assert all(math.isfinite(c["reward"]) for c in reward.score_texts(qs, ss, es))


def test_config_validation_and_coefficient_forms():
    assert RLTRewardConfig(chat_format="compact", solution_coefs=[[2, "mean"]]).solution_coefs == [
        (2.0, "mean")
    ]
    assert RLTRewardConfig(chat_format="compact", kl_coefs="3:mean, 0.03:max").kl_coefs == [
        (3.0, "mean"),
        (0.03, "max"),
    ]
    assert parse_coefs("1:min", "x", ("min",)) == [(1.0, "min")]
    for kwargs, name in [
        ({"solution_coefs": [(1.0, "max")]}, "solution_coefs"),
        ({"kl_coefs": [(1.0, "min")]}, "kl_coefs"),
        ({"kl_coefs": [(float("inf"), "mean")]}, "kl_coefs"),
        ({"student_temperature": 0}, "student_temperature"),
        ({"teacher_temperature": -1.0}, "teacher_temperature"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"tag_format": "xml"}, "tag_format"),
    ]:
        with pytest.raises(ConfigError, match=name):
            RLTRewardConfig(chat_format="compact", **kwargs)


# --------------------------------------------------------------------------- TRL signature


def test_trl_call_signature_and_metrics(models):
    from trl.trainer.utils import get_callable_name

    student, teacher, tok = models
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher_tokenizer=tok)
    reward.teacher = teacher  # as a trainer does, after construction
    assert get_callable_name(reward) == "rlt" and not isinstance(reward, nn.Module)
    qs, ss, es = _random_batch(4, seed=6)
    prompts = [teacher_rl_prompt(tok, q, s, TAGS) for q, s in zip(qs, ss)]
    completions = [e + TAGS.explanation_close for e in es]
    completion_ids = [_ids(tok, c) + [tok.eos_token_id] for c in completions]
    metrics: dict[str, list[float]] = {}
    out = reward(
        prompts=prompts,
        completions=completions,
        completion_ids=completion_ids,
        question=qs,
        solution=ss,
        trainer_state=None,
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
    )
    assert len(out) == 4 and all(isinstance(r, float) for r in out)
    want = [naive_reward(student, teacher, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)]
    assert out == pytest.approx(want, abs=1e-5)
    for name in ("reward", "solution_logprob_mean", "kl_mean", "kl_max", "penalty", "missing_close_tag_frac"):
        assert f"rlt/{name}" in metrics, name
    assert metrics["rlt/explanation_tokens"] == [pytest.approx(sum(len(e) for e in es) / 4)]
    assert metrics["rlt/reward"][0] == pytest.approx(sum(out) / 4)
    # Log-probs a trainer already has are used once, then dropped.
    reward.pending_teacher_logprobs = [torch.zeros(len(c)) for c in completion_ids]
    zero = reward(
        prompts=prompts, completions=completions, completion_ids=completion_ids, question=qs, solution=ss
    )
    assert reward.pending_teacher_logprobs is None
    assert zero != pytest.approx(out)
    # Texts only (no completion_ids): tokenised with the student tokenizer, same numbers here.
    again = reward(prompts=prompts, completions=completions, question=qs, solution=ss)
    assert again == pytest.approx(out, abs=1e-6)
    with pytest.raises(RewardError, match="question"):
        reward(prompts=prompts, completions=completions, completion_ids=completion_ids, solution=ss)


def test_student_is_frozen(models):
    student, _, tok = models
    RLTReward(student, tok)
    assert not student.training and not any(p.requires_grad for p in student.parameters())


def test_offload_student_gives_the_same_numbers(models):
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=7)
    plain = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    offload = RLTReward(
        student,
        tok,
        RLTRewardConfig(chat_format="compact", offload_student=True),
        teacher=teacher,
        teacher_tokenizer=tok,
    )
    want = [c["reward"] for c in plain.score_texts(qs, ss, es)]
    assert [c["reward"] for c in offload.score_texts(qs, ss, es)] == pytest.approx(want, abs=1e-6)
    assert next(student.parameters()).device.type == "cpu"


def test_offload_student_moves_it_per_call_and_back(models, monkeypatch):
    """On CPU, a fake accelerator: the teacher reports cuda:0, the student's moves are recorded.

    The student must be moved to the teacher's device before its forward, every call, and
    back to the CPU after it, even when the forward fails.
    """
    import rlt.rewards.rlt as rlt_mod

    student, teacher, tok = models
    accel = torch.device("cuda", 0)
    moves: list[str] = []
    at_forward: list[str] = []
    real_device = rlt_mod.model_device
    monkeypatch.setattr(rlt_mod, "model_device", lambda m: accel if m is teacher else real_device(m))
    # The move itself is recorded, not done (there is no GPU); the forward sees where it "is".
    monkeypatch.setattr(student, "to", lambda device, *a, **k: moves.append(str(device)) or student)
    hook = student.get_decoder().register_forward_pre_hook(
        lambda mod, args: at_forward.append(moves[-1] if moves else "-")
    )
    try:
        qs, ss, es = _random_batch(2, seed=7)
        cfg = RLTRewardConfig(chat_format="compact", offload_student=True)
        reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
        assert moves == ["cpu"]  # kept on the CPU between calls from the start
        got = [c["reward"] for c in reward.score_texts(qs, ss, es)]
        assert moves == ["cpu", "cuda:0", "cpu"] and at_forward == ["cuda:0"]
        reward.score_texts(qs, ss, es)
        assert moves == ["cpu", "cuda:0", "cpu", "cuda:0", "cpu"]  # per call
        want = [naive_reward(student, teacher, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)]
        assert got == pytest.approx(want, abs=1e-5)
        # A failing forward still sends the student back.
        with pytest.raises(RewardError, match="outside the student's vocabulary"):
            reward.score_ids(qs[:1], ss[:1], [[10**6]], [True])
        bad = student.get_decoder().register_forward_pre_hook(lambda mod, args: 1 / 0)
        try:
            with pytest.raises(ZeroDivisionError):
                reward.score_texts(qs[:1], ss[:1], es[:1])
        finally:
            bad.remove()
        assert moves[-2:] == ["cuda:0", "cpu"]
        # Without offloading, or without a teacher to follow, the student is never moved.
        moves.clear()
        RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
                  ).score_texts(qs, ss, es)  # fmt: skip
        RLTReward(student, tok, RLTRewardConfig(chat_format="compact", offload_student=True)).score_texts(
            qs, ss, es
        )
        assert moves == ["cpu"]  # the constructor's, and no per-call move (the student stays where it is)
    finally:
        hook.remove()


# --------------------------------------------------------------------------- where ℓ_T and prompts come from


def _batch_ids(tok, es):
    completions = [e + TAGS.explanation_close for e in es]
    return completions, [_ids(tok, c) + [tok.eos_token_id] for c in completions]


def test_teacher_logprobs_fn_gets_the_prompts_and_sampled_ids(models):
    """A trainer's ``teacher_logprobs_fn`` (ZeRO-3/FSDP) stands in for the teacher forward."""
    student, teacher, tok = models
    qs, ss, es = _random_batch(3, seed=11)
    prompts = [teacher_rl_prompt(tok, q, s, TAGS) for q, s in zip(qs, ss)]
    completions, completion_ids = _batch_ids(tok, es)
    helper = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher)
    calls = []

    def fn(prompt_ids, explanation_ids):
        calls.append((prompt_ids, explanation_ids))
        # Extra trailing entries (the close tag, padding) must be ignored.
        return [
            torch.cat([lp, torch.full((3,), 5.0)])
            for lp in helper.compute_teacher_logprobs(prompt_ids, explanation_ids)
        ]

    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher_tokenizer=tok)
    reward.teacher_logprobs_fn = fn
    out = reward(prompts=prompts, completion_ids=completion_ids, question=qs, solution=ss)  # no texts
    want = [naive_reward(student, teacher, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)]
    assert out == pytest.approx(want, abs=1e-5)
    assert calls == [([_ids(tok, p) for p in prompts], [_ids(tok, e) for e in es])]


def test_prompts_given_by_the_trainer_are_the_teachers_context(models):
    """ℓ_T is taken under the prompts the teacher sampled from (here a custom system prompt)."""
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=12)
    prompts = [teacher_rl_prompt(tok, q, s, TAGS, "Be brief.") for q, s in zip(qs, ss)]
    completions, completion_ids = _batch_ids(tok, es)
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    want = [
        naive_reward(student, teacher, tok, q, s, e, teacher_system="Be brief.")["reward"]
        for q, s, e in zip(qs, ss, es)
    ]
    for pending in (None, [None, None]):  # nothing given, or given for no sample
        reward.pending_teacher_logprobs = pending
        out = reward(
            prompts=prompts, completions=completions, completion_ids=completion_ids, question=qs, solution=ss
        )
        assert out == pytest.approx(want, abs=1e-5)
    default = [naive_reward(student, teacher, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)]
    assert default != pytest.approx(want, abs=1e-5)  # the system prompt matters: the test can fail


def test_the_system_column_is_the_students_system_prompt(models):
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=13)
    completions, completion_ids = _batch_ids(tok, es)
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    out = reward(
        completions=completions,
        completion_ids=completion_ids,
        question=qs,
        solution=ss,
        system=["Be brief."] * 2,
    )
    want = [
        naive_reward(student, None, tok, q, s, e, student_system="Be brief.")["reward"]
        for q, s, e in zip(qs, ss, es)
    ]
    assert out == pytest.approx(want, abs=1e-5)
    assert [c["reward"] for c in reward.score_texts(qs, ss, es, systems=["Be brief."] * 2)] == pytest.approx(
        want, abs=1e-5
    )
    # A column of another length is not this batch's: the default system prompt.
    out = reward(
        completions=completions, completion_ids=completion_ids, question=qs, solution=ss, system=["Be brief."]
    )
    default = [naive_reward(student, None, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)]
    assert out == pytest.approx(default, abs=1e-5) and default != pytest.approx(want, abs=1e-5)


def test_given_teacher_logprobs_per_sample(models):
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=14)
    ids = [_ids(tok, e) for e in es]
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher)
    zeros = [torch.zeros(len(i)) for i in ids]  # exactly as many entries as tokens
    computed = reward.score_ids(qs, ss, ids, [True, True])
    all_given = reward.score_ids(qs, ss, ids, [True, True], zeros)
    mixed = reward.score_ids(qs, ss, ids, [True, True], [None, zeros[1]])
    assert mixed[0]["kl_mean"] == pytest.approx(computed[0]["kl_mean"], abs=1e-6)
    assert mixed[1]["kl_mean"] == pytest.approx(all_given[1]["kl_mean"], abs=1e-6)
    assert all_given[1]["kl_mean"] != pytest.approx(computed[1]["kl_mean"], abs=1e-3)
    with pytest.raises(RewardError, match=r"^got 1 teacher log-prob tensors for 2 samples$"):
        reward.score_ids(qs, ss, ids, [True, True], [zeros[0]])
    bad = zeros[1].clone()
    bad[0] = float("nan")
    long_q = ["q" * 61, "x" * 60]
    with pytest.raises(
        RewardError, match=r"^non-finite teacher logits \(NaN or inf\) for sample 1 \(question 'x{60}'\)$"
    ):
        reward.score_ids(long_q, ss, ids, [True, True], [zeros[0], bad])
    with pytest.raises(
        RewardError, match=r"^non-finite teacher logits \(NaN or inf\) for sample 0 \(question 'q{60}…'\)$"
    ):
        reward.score_ids(long_q, ss, ids, [True, True], [bad[:1].expand(len(ids[0])).clone(), zeros[1]])
    no_teacher = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    many = _random_batch(6, seed=15)
    with pytest.raises(
        RewardError,
        match=r"^samples \[0, 1, 2, 3, 4\] need the teacher's log-probs of re-tokenised explanation tokens, "
        "but no teacher model or teacher_logprobs_fn is set$",
    ):
        no_teacher.score_ids(many[0], many[1], [_ids(tok, e) for e in many[2]], [True] * 6, [None] * 6)


def test_non_finite_logprobs_from_the_trainer_name_the_sample(models):
    student, _, tok = models
    qs, ss, es = _random_batch(2, seed=16)
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    reward.teacher_logprobs_fn = lambda prompts, expl: [
        torch.zeros(len(expl[0])),
        torch.full((len(expl[1]),), float("inf")),
    ]
    with pytest.raises(
        RewardError, match=r"^non-finite teacher logits \(NaN or inf\) for sample 1 \(question "
    ):
        reward.score_ids(qs, ss, [_ids(tok, e) for e in es], [True, True])


def test_trl_call_errors_name_what_is_missing(models):
    student, _, tok = models
    qs, ss, es = _random_batch(2, seed=17)
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    with pytest.raises(RewardError, match=r"^the RLT reward needs completions or completion_ids$"):
        reward(question=qs, solution=ss)
    with pytest.raises(
        RewardError,
        match=re.escape(
            "the RLT reward needs the data-set columns 'question' and 'solution' (got columns: ['answer', 'problem'])"
        ),
    ):
        reward(completions=es, problem=qs, answer=ss, trainer_state=None, log_extra=None)
    with pytest.raises(RewardError, match=r"^2 completions but 1 questions and 2 solutions$"):
        reward(completions=es, question=qs[:1], solution=ss)
    with pytest.raises(RewardError, match=r"^2 completions but 2 questions and 3 solutions$"):
        reward(completions=es, question=qs, solution=[*ss, "1"])


def test_reward_state_and_its_checker(models, monkeypatch):
    import rlt.verify

    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact", empty_term_value=None), task="gpqa_diamond"
    )
    assert reward.last_components == [] and reward.pending_teacher_logprobs is None
    assert reward.empty_value == pytest.approx(math.log(student.get_output_embeddings().weight.shape[0]))
    reward.close()  # nothing started yet: nothing to stop
    seg = reward.segments("q", "s")
    assert reward.segments("q", "s") is seg  # cached: GRPO repeats each question G times
    asked, closed = [], []

    class FakeVerifier:
        def close(self):
            closed.append(True)

    def fake_task_checker(task):
        asked.append(task)
        return (lambda row, answer: (answer == row["solution"], "ok")), FakeVerifier()

    monkeypatch.setattr(rlt.verify, "task_checker", fake_task_checker)
    assert reward._check({"question": "q", "solution": "B"}, "B") == (True, "ok")
    reward.close()
    plain = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    plain._check({"question": "q", "solution": "B"}, "C")
    assert asked == ["gpqa_diamond", "math"] and closed == [True]


def test_a_headless_student_is_named(models):
    student, _, tok = models
    with pytest.raises(RewardError, match=r"^the student \(Identity\) does not expose get_decoder"):
        RLTReward(nn.Identity(), tok, RLTRewardConfig(chat_format="compact"))


def test_summarize_by_hand():
    comps = [
        {"reward": 1.0, "solution_logprob_mean": -1.0, "solution_logprob_min": -2.0, "kl_mean": None, "kl_max": None,
         "penalty": 0.0, "closed": True, "num_explanation_tokens": 0, "num_solution_tokens": 3},
        {"reward": -3.0, "solution_logprob_mean": -3.0, "solution_logprob_min": -4.0, "kl_mean": 2.0, "kl_max": 5.0,
         "penalty": -1.0, "closed": False, "num_explanation_tokens": 6, "num_solution_tokens": 5},
        {"reward": 0.0, "solution_logprob_mean": -2.0, "solution_logprob_min": -6.0, "kl_mean": 4.0, "kl_max": 7.0,
         "penalty": 0.0, "closed": True, "num_explanation_tokens": 3, "num_solution_tokens": 1},
    ]  # fmt: skip
    assert summarize(comps) == {
        "reward": pytest.approx(-2 / 3), "solution_logprob_mean": -2.0, "solution_logprob_min": -4.0,
        "kl_mean": 3.0, "kl_max": 6.0, "penalty": pytest.approx(-1 / 3),
        "missing_close_tag_frac": pytest.approx(1 / 3), "empty_explanation_frac": pytest.approx(1 / 3),
        "explanation_tokens": 3.0, "solution_tokens": 3.0,
    }  # fmt: skip
    assert summarize([]) == {}


def test_configured_teacher_system_prompt_is_the_teachers_context(models):
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=18)
    cfg = RLTRewardConfig(chat_format="compact", teacher_system_prompt="Explain.")
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    got = [c["reward"] for c in reward.score_texts(qs, ss, es)]  # no prompts given: rendered from the config
    want = [
        naive_reward(student, teacher, tok, q, s, e, teacher_system="Explain.")["reward"]
        for q, s, e in zip(qs, ss, es)
    ]
    assert got == pytest.approx(want, abs=1e-5)
    assert want != pytest.approx(
        [naive_reward(student, teacher, tok, q, s, e)["reward"] for q, s, e in zip(qs, ss, es)], abs=1e-5
    )


def test_teacher_logprobs_without_a_teacher_say_what_to_do(models):
    student, _, tok = models
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"))
    want = "no teacher model is set; pass teacher_logprobs or set reward.teacher"
    with pytest.raises(RewardError, match=f"^{re.escape(want)}$"):
        reward.compute_teacher_logprobs([[1, 2]], [[3]])


def test_score_ids_refuses_bad_batches_by_name(models):
    student, teacher, tok = models
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    rows = student.get_input_embeddings().num_embeddings

    def refused(want, *args, **kwargs):
        with pytest.raises(RewardError, match=f"^{re.escape(want)}$"):
            reward.score_ids(*args, **kwargs)

    refused(
        "batch fields differ in length: 2 questions, 2 solutions, 1 explanations, 2 closed flags",
        ["a", "b"], ["1", "2"], [[5]], [True, True],
    )  # fmt: skip
    refused("got 3 system prompts for 1 samples", ["a"], ["1"], [[5]], [True], systems=["s"] * 3)
    # The first id past the table is refused (not only far-off ids); at most five are listed.
    ids = [rows - 1, rows, rows + 1, rows + 2, rows + 3, rows + 4, rows + 5]
    refused(
        f"sample 1: explanation token id(s) {ids[1:6]} outside the student's vocabulary (0..{rows - 1}); "
        "were the ids produced by another tokenizer?",
        ["a", "b"], ["1", "2"], [[5], ids], [True, True],
    )  # fmt: skip
    assert reward.score_ids(["a"], ["1"], [[rows - 1]], [True])[0]["num_explanation_tokens"] == 1


def test_without_the_teacher_entropy_no_teacher_is_needed(models):
    """include_teacher_entropy=false: the KL is −ℓ_S alone, so ℓ_T is neither needed nor computed."""
    student, teacher, tok = models
    qs, ss, es = _random_batch(2, seed=18)
    cfg = RLTRewardConfig(chat_format="compact", include_teacher_entropy=False)
    reward = RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)
    calls = []
    hook = teacher.get_decoder().register_forward_hook(lambda *_: calls.append(1))
    try:
        with_teacher = reward.score_texts(qs, ss, es)
    finally:
        hook.remove()
    assert calls == []  # no teacher forward spent on an unused ℓ_T
    assert RLTReward(student, tok, cfg).score_texts(qs, ss, es) == with_teacher


def test_non_finite_student_logprobs_in_either_span_are_refused(models, monkeypatch):
    student, teacher, tok = models
    qs, ss, es = _random_batch(1, seed=19)
    reward = RLTReward(
        student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher, teacher_tokenizer=tok
    )
    real = reward._student_span_logprobs
    for part in (0, 1):  # the explanation's span, then the solution's

        def poisoned(seqs, spans, part=part):
            out = real(seqs, spans)
            out[0][part] = out[0][part].clone().fill_(float("nan"))
            return out

        monkeypatch.setattr(reward, "_student_span_logprobs", poisoned)
        want = f"non-finite student logits (NaN or inf) for sample 0 (question {qs[0]!r})"
        with pytest.raises(RewardError, match=f"^{re.escape(want)}$"):
            reward.score_texts(qs, ss, es)


def test_non_finite_teacher_logprobs_without_questions(models):
    """compute_teacher_logprobs alone (no questions given) still names the sample."""
    student, teacher, tok = models
    reward = RLTReward(student, tok, RLTRewardConfig(chat_format="compact"), teacher=teacher)

    def nan_hidden_states(module, args, out):
        out[0].fill_(float("nan"))

    hook = teacher.get_decoder().register_forward_hook(nan_hidden_states)
    try:
        want = "non-finite teacher logits (NaN or inf) for sample 0 (question '')"
        with pytest.raises(RewardError, match=f"^{re.escape(want)}$"):
            reward.compute_teacher_logprobs([[1, 2, 3]], [[4, 5]])
    finally:
        hook.remove()
