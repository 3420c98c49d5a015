"""The RLT reward on the real Qwen2.5 tokenizer against a reference built from the rendered text.

The reference renders the official student and teacher chats as strings, tokenises each
whole, finds the explanation and solution tokens by character offsets and takes full
forward passes with a full-vocabulary log-softmax: no segments, no chunking, no split logic.
"""

from __future__ import annotations

import pytest
import torch

from rlt.formats import STRATOS_SYSTEM_PROMPT, get_tags, teacher_rl_prompt
from rlt.rewards import RLTReward, RLTRewardConfig

TAGS = get_tags("bespoke")
ROWS = [  # (question, padded solution as in Bespoke-Stratos-17k, what the teacher wrote before its close tag)
    ("What is $2+5$?", "\n\nThe answer is $\\boxed{7}$.\n\n", "Add 2 and 5: that is 7.\n\n"),
    ("Solve $x^2=4$, $x>0$.", "\n\n$x = 2$\n\n", "Since x > 0, take the positive root.\n\nSo x = 2.\n\n"),
    ("Name a prime.", "\n\n2\n\n", "Two is prime, so it works!"),  # no padding: ".<"-style merge
    ("数学: 1+1?", "\n\n2\n\n", "一加一等于二。"),
]


@pytest.fixture(scope="module")
def models():
    from rlt.models import tiny_model

    # Random weights at Qwen2.5's 151,936-row vocabulary: the student (seed 1) and the teacher (seed 0).
    return tiny_model("nano", seed=1, tokenizer="qwen2.5")[0].eval(), tiny_model(
        "nano", seed=0, tokenizer="qwen2.5"
    )[0].eval()


def _inside(offsets, start, end):
    return [i for i, (a, b) in enumerate(offsets) if a >= start and b <= end and b > a]


def _logprobs(model, ids, temperature):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits / temperature, dim=-1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[
        :, 0
    ]


def reference(student, teacher, tok, question, solution, written):
    """Components from the rendered official texts (released code's reading: canonical tokens)."""
    head = (f"<|im_start|>system\n{STRATOS_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            "<|im_start|>assistant\n<|begin_of_thought|>\n\n")  # fmt: skip
    mid = "<|end_of_thought|>\n\n<|begin_of_solution|>"
    text = f"{head}{written}{mid}{solution}<|end_of_solution|><|im_end|>\n"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, off = enc["input_ids"], enc["offset_mapping"]
    e = _inside(off, len(head), len(head) + len(written))
    s0 = len(head) + len(written) + len(mid)
    a = _inside(off, s0, s0 + len(solution))
    ls = _logprobs(student, ids, 0.7)
    ls_e, ls_a = ls[[i - 1 for i in e]], ls[[i - 1 for i in a]]
    prompt = teacher_rl_prompt(tok, question, solution, TAGS)
    t_text = f"{prompt}{written}<|end_of_explanation|><|im_end|>\n"
    t_enc = tok(t_text, add_special_tokens=False, return_offsets_mapping=True)
    te = _inside(t_enc["offset_mapping"], len(prompt), len(prompt) + len(written))
    assert [t_enc["input_ids"][i] for i in te] == [ids[i] for i in e]  # the same explanation tokens
    lt_e = _logprobs(teacher, t_enc["input_ids"], 0.7)[[i - 1 for i in te]]
    k = lt_e - ls_e
    return {
        "solution_logprob_mean": float(ls_a.mean()),
        "solution_logprob_min": float(ls_a.min()),
        "kl_mean": float(k.mean()),
        "kl_max": float(k.max()),
        "reward": float(ls_a.mean() + 0.01 * ls_a.min() - 3 * k.mean() - 0.03 * k.max()),
        "num_explanation_tokens": len(e),
    }


@pytest.mark.parametrize("tokenization", ["segments", "canonical"])
def test_reward_agrees_with_the_rendered_text_reference(models, qwen_tok, tokenization):
    student, teacher = models
    reward = RLTReward(student, qwen_tok, RLTRewardConfig(student_tokenization=tokenization),
                       teacher=teacher, teacher_tokenizer=qwen_tok)  # fmt: skip
    prompts = [teacher_rl_prompt(qwen_tok, q, s, TAGS) for q, s, _ in ROWS]
    # The teacher "sampled" the canonical tokens of its completion, close tag and end of turn.
    completions = [w + TAGS.explanation_close + "<|im_end|>" for _, _, w in ROWS]
    ids = [qwen_tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    out = reward(prompts=prompts, completions=completions, completion_ids=ids,
                 question=[q for q, _, _ in ROWS], solution=[s for _, s, _ in ROWS],
                 system=[STRATOS_SYSTEM_PROMPT] * len(ROWS))  # fmt: skip
    for (q, s, w), got, r in zip(ROWS, reward.last_components, out):
        want = reference(student, teacher, qwen_tok, q, s, w)
        merged = not w.endswith("\n\n")  # the last character merges with the student's close tag
        if tokenization == "segments" and merged:
            # The sampled ids stand in the student sequence: one token more than the canonical text has.
            assert got["num_explanation_tokens"] == want["num_explanation_tokens"] + 1
            continue
        assert got["num_explanation_tokens"] == want["num_explanation_tokens"]
        for key in ("solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max", "reward"):
            assert got[key] == pytest.approx(want[key], abs=2e-4), (q, key)
        assert r == pytest.approx(got["reward"])


def test_conversational_prompts_are_tokenised_as_grpo_renders_them(models, qwen_tok):
    """A data set whose ``prompt`` is a chat: the teacher's context is that chat, rendered.

    Ending with an assistant turn, it is continued (no end of turn after it); ending with a
    user turn, the generation prompt follows.
    """
    from rlt.formats import teacher_assistant_prefix, teacher_messages

    student, teacher = models
    reward = RLTReward(student, qwen_tok, teacher=teacher, teacher_tokenizer=qwen_tok)
    q, s, _ = ROWS[0]
    prefix = teacher_assistant_prefix(s, TAGS).rstrip()  # the chat template strips a final message
    chat = [*teacher_messages(q, TAGS), {"role": "assistant", "content": prefix}]
    user_only = teacher_messages(q, TAGS)
    got = reward._prompt_ids([chat, user_only, "plain text"])
    head = f"<|im_start|>system\n{teacher_messages(q, TAGS)[0]['content']}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
    assert qwen_tok.decode(got[0]) == head + "<|im_start|>assistant\n" + prefix
    assert qwen_tok.decode(got[1]) == head + "<|im_start|>assistant\n"
    assert got[2] == qwen_tok("plain text")["input_ids"]


def test_trainer_logprobs_of_sampled_ids_are_not_used_for_retokenised_ones(models, qwen_tok):
    """Where the close tag merged with the last character, the scored ids are not the sampled
    ones: the trainer's ℓ_T of the sampled ids must be replaced by a fresh teacher forward."""
    student, teacher = models
    cfg = RLTRewardConfig(student_tokenization="canonical")  # segments never retokenises
    reward = RLTReward(student, qwen_tok, cfg, teacher=teacher, teacher_tokenizer=qwen_tok)
    prompts = [teacher_rl_prompt(qwen_tok, q, s, TAGS) for q, s, _ in ROWS]
    ids = [
        qwen_tok(w + TAGS.explanation_close + "<|im_end|>", add_special_tokens=False)["input_ids"]
        for _, _, w in ROWS
    ]
    kw = dict(
        prompts=prompts,
        completion_ids=ids,
        question=[q for q, _, _ in ROWS],
        solution=[s for _, s, _ in ROWS],
    )
    plain = reward(**kw)
    # What a trainer holds: ℓ_T of every sampled id (explanation, close tag, end of turn).
    prompt_ids = [qwen_tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    reward.pending_teacher_logprobs = reward.compute_teacher_logprobs(prompt_ids, ids)
    assert reward(**kw) == pytest.approx(plain, abs=1e-4)
    assert any(not w.endswith("\n\n") for _, _, w in ROWS)  # some rows are retokenised


def test_given_logprobs_are_used_exactly_where_the_scored_ids_are_the_sampled_ones(models, qwen_tok):
    """Canonical tokenisation with a sentinel ℓ_T: it must move the KL of samples scored on
    their sampled ids and must not touch a retokenised one (its ℓ_T comes from a teacher forward).

    Random weights over 151,936 rows give every token ℓ ≈ −log V, so a comparison with the
    teacher's true ℓ_T of other tokens cannot tell them apart; a sentinel can.
    """
    from rlt.formats import explanation_token_ids

    student, teacher = models
    cfg = RLTRewardConfig(student_tokenization="canonical")
    reward = RLTReward(student, qwen_tok, cfg, teacher=teacher, teacher_tokenizer=qwen_tok)
    qs, ss = [q for q, _, _ in ROWS], [s for _, s, _ in ROWS]
    ids = [
        explanation_token_ids(qwen_tok(w + TAGS.explanation_close, add_special_tokens=False)["input_ids"],
                              qwen_tok, TAGS)[0]
        for _, _, w in ROWS
    ]  # fmt: skip
    # Without its "\n\n" padding, the text's last character merges with what follows it in
    # the student's text, so those rows are retokenised.
    kept = [w.endswith("\n\n") for _, _, w in ROWS]
    assert True in kept and False in kept
    plain = reward.score_ids(qs, ss, ids, [True] * len(ids))
    sentinel = [torch.full((len(e) + 2,), -3.0) for e in ids]  # + close tag and end of turn
    given = reward.score_ids(qs, ss, ids, [True] * len(ids), sentinel)
    for p, g, same in zip(plain, given, kept, strict=True):
        if same:
            assert g["kl_mean"] != pytest.approx(p["kl_mean"], abs=1e-2)
        else:
            assert g["kl_mean"] == pytest.approx(p["kl_mean"], abs=1e-6)
