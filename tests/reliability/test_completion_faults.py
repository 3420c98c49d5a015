"""Teacher completions the parser and the reward must survive (basics: tests/rewards/test_rlt_reward.py)."""

import math

import pytest
import torch

from rlt.errors import RewardError
from rlt.formats import explanation_token_ids, get_tags
from rlt.models import char_tokenizer, tiny_model
from rlt.rewards import RLTReward, RLTRewardConfig

TAGS = get_tags("bespoke")


@pytest.fixture(scope="module")
def reward():
    student, tok = tiny_model("tiny", seed=1)
    teacher, _ = tiny_model("tiny", seed=0)
    cfg = RLTRewardConfig(student_system_prompt="")
    return RLTReward(student, tok, cfg, teacher=teacher, teacher_tokenizer=tok)


def test_repeated_close_tag_in_token_ids_ends_at_the_first():
    tok = char_tokenizer(with_tags=False)  # the close tag is many tokens
    e = tok("7+5=2", add_special_tokens=False)["input_ids"]
    close = tok(TAGS.explanation_close, add_special_tokens=False)["input_ids"]
    assert explanation_token_ids(e + close + e + close, tok, TAGS) == (e, True)


def test_cut_inside_a_multi_token_close_tag_is_unclosed_and_kept():
    # A completion cut at max length mid-tag: no close tag was sampled, so nothing is dropped;
    # the partial tag stays in the scored explanation and the sample gets the penalty.
    tok = char_tokenizer(with_tags=False)
    e = tok("7+5=2", add_special_tokens=False)["input_ids"]
    close = tok(TAGS.explanation_close, add_special_tokens=False)["input_ids"]
    assert explanation_token_ids(e + close[:5], tok, TAGS) == (e + close[:5], False)


def test_token_id_outside_the_vocabulary_names_the_sample(reward):
    # was a bare IndexError from the embedding; now a RewardError naming the sample
    tok = reward.student_tokenizer
    good = tok("7+5=2", add_special_tokens=False)["input_ids"]
    with pytest.raises(RewardError, match=r"sample 1: explanation token id\(s\) \[99999\] outside"):
        reward.score_ids(["q", "q"], ["1", "1"], [good, [*good, 99999]], [True, True])


def test_inf_in_teacher_logits_names_the_sample(reward):
    def poison(module, args, output):
        output = output.clone()
        output[0] = float("inf")
        return output

    tok = reward.student_tokenizer
    handle = reward.teacher.get_decoder().embed_tokens.register_forward_hook(poison)
    try:
        with pytest.raises(RewardError, match=r"non-finite teacher logits.*sample 0 \(question 'q'\)"):
            reward.score_ids(["q"], ["1"], [tok("abc", add_special_tokens=False)["input_ids"]], [True])
    finally:
        handle.remove()


def test_only_the_close_tag_gives_penalty_and_finite_reward(reward):
    tok = reward.student_tokenizer
    close = tok(TAGS.explanation_close, add_special_tokens=False)["input_ids"]
    ids, closed = explanation_token_ids(close + [tok.eos_token_id], tok, TAGS)
    assert (ids, closed) == ([], True)
    (c,) = reward.score_ids(["q"], ["1"], [ids], [closed])
    assert c["penalty"] == -1.0 and math.isfinite(c["reward"]) and c["num_explanation_tokens"] == 0


def test_very_long_explanation_is_scored_in_chunks(reward, monkeypatch):
    # 800 explanation tokens with a chunk of 7: every log-softmax sees at most 7 rows, and the
    # numbers are those of one full forward with a float64 log-softmax over the whole vocabulary.
    tok = reward.student_tokenizer
    ids = tok("7+5=2; " * 120, add_special_tokens=False)["input_ids"][:800]
    small = RLTReward(reward.student, tok, RLTRewardConfig(student_system_prompt="", chunk_size=7),
                      teacher=reward.teacher, teacher_tokenizer=tok)  # fmt: skip
    rows, real = [], torch.log_softmax

    def recording(x, *args, **kwargs):
        rows.append(x.shape[0])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch, "log_softmax", recording)
    (a,) = small.score_ids(["q"], ["1"], [ids], [True])
    monkeypatch.setattr(torch, "log_softmax", real)
    # student: 800 + 5 solution tokens; teacher: 800 tokens; in chunks of 7 (the last ones shorter)
    assert max(rows) == 7 and sum(rows) == 805 + 800 and len(rows) == 115 + 115

    def full(model, seq, temperature):
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits[0].double()
        return torch.log_softmax(logits / temperature, -1)[:-1].gather(1, torch.tensor(seq[1:])[:, None])[
            :, 0
        ]

    seq, e, a_ = small.segments("q", "1").build(ids)
    ls = full(reward.student, seq, 0.7)
    prompt = small.teacher_prompt_ids(["q"], ["1"])[0]
    lt = full(reward.teacher, prompt + ids, 0.7)[len(prompt) - 1 :]
    k, sol = lt - ls[e.start - 1 : e.stop - 1], ls[a_.start - 1 : a_.stop - 1]
    assert len(k) == 800 and len(sol) == 5
    want = {"kl_mean": float(k.mean()), "kl_max": float(k.max()), "solution_logprob_mean": float(sol.mean()),
            "solution_logprob_min": float(sol.min())}  # fmt: skip
    for key, value in want.items():
        assert a[key] == pytest.approx(value, abs=1e-5), key
    r = (
        want["solution_logprob_mean"]
        + 0.01 * want["solution_logprob_min"]
        - 3 * want["kl_mean"]
        - 0.03 * want["kl_max"]
    )
    assert a["reward"] == pytest.approx(r, abs=1e-4)
