"""An independent reference for the RLT reward, for tests outside tests/rewards/.

Everything is computed from the spec (docs/spec.md §3), not from ``rlt.rewards``: the
student text is written out by hand (the chat template, the tags, the stratos padding),
each model runs one full forward, and ``log_softmax`` runs over the whole vocabulary in
float64. Only for the character tokenizer with atomic tags (``rlt.models.char_tokenizer()``),
where one character or one tag is one token, so positions follow from the pieces' lengths.
"""

from __future__ import annotations

import math

import torch

from rlt.formats import STRATOS_SYSTEM_PROMPT, STRATOS_TEACHER_PROMPT, TagSet


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def chatml(system: str, user: str) -> str:
    """The ChatML generation prompt of rlt.models.CHAT_TEMPLATE, written out."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def token_logprobs(model, ids: list[int], temperature: float) -> torch.Tensor:
    """``ℓ(t)`` for ``t = 1..L-1``: full logits, float64 log-softmax over the vocabulary."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits / temperature, dim=-1)
    return lp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)


def naive_reward(
    student,
    tok,
    tags: TagSet,
    question: str,
    solution: str,
    explanation: str,
    *,
    teacher=None,
    closed: bool = True,
    student_system: str | None = None,
    teacher_system: str | None = None,
    student_temperature: float = 0.7,
    teacher_temperature: float = 0.7,
    solution_coefs=((1.0, "mean"), (0.01, "min")),
    kl_coefs=((3.0, "mean"), (0.03, "max")),
    penalty: float = -1.0,
) -> dict:
    """``r = Σ a·reduce(ℓ_S over A) − Σ b·reduce(ℓ_T − ℓ_S over E) + p`` for a stratos-chat tag set.

    ``student_system``/``teacher_system``: None = the official stratos prompts, "" = none.
    The solution must be untagged and not empty. An empty explanation scores as spec §3 says:
    every KL statistic is ``W = 1`` and the penalty applies.
    """
    assert tags.name == "bespoke" and tags.chat == "stratos" and solution
    pad = "\n\n"
    s_sys = STRATOS_SYSTEM_PROMPT if student_system is None else student_system
    # Student: prompt, THINK_OPEN + padding, the explanation as written, THINK_CLOSE, the tagged
    # solution (padding inside the tags, part of the scored solution field), the end of the turn.
    head = chatml(s_sys, question) + tags.think_open + pad
    mid = f"{tags.think_close}\n\n{tags.solution_open}"
    field = f"{pad}{solution}{pad}"
    tail = f"{tags.solution_close}<|im_end|>\n"
    e0 = len(_ids(tok, head))
    e1 = e0 + len(_ids(tok, explanation))
    a0 = e1 + len(_ids(tok, mid))
    a1 = a0 + len(_ids(tok, field))
    ids = _ids(tok, head + explanation + mid + field + tail)
    assert ids[a0:a1] == _ids(tok, field) and ids[e0:e1] == _ids(tok, explanation)
    ls = token_logprobs(student, ids, student_temperature)
    ls_e, ls_a = ls[e0 - 1 : e1 - 1], ls[a0 - 1 : a1 - 1]
    reduce = {
        "mean": lambda x: float(x.mean()),
        "min": lambda x: float(x.min()),
        "max": lambda x: float(x.max()),
    }
    out = {
        "solution_logprob_mean": reduce["mean"](ls_a),
        "solution_logprob_min": reduce["min"](ls_a),
        "num_explanation_tokens": e1 - e0,
        "num_solution_tokens": a1 - a0,
        "penalty": 0.0 if closed and explanation else penalty,
        "kl_mean": None,
        "kl_max": None,
    }
    r_ss = sum(c * reduce[name](ls_a) for c, name in solution_coefs)
    r_kl = 0.0
    if teacher is not None:
        t_sys = STRATOS_TEACHER_PROMPT if teacher_system is None else teacher_system
        prompt = (
            chatml(t_sys, question)
            + f"{tags.solution_open}{field}{tags.solution_close}\n\n{tags.explanation_open}{pad}"
        )
        p_ids = _ids(tok, prompt)
        lt = token_logprobs(teacher, p_ids + _ids(tok, explanation), teacher_temperature)[len(p_ids) - 1 :]
        k = lt - ls_e
        kl = {r: reduce[r](k) for r in ("mean", "max")} if explanation else {"mean": 1.0, "max": 1.0}
        out.update(kl_mean=kl["mean"], kl_max=kl["max"])
        r_kl = sum(c * kl[name] for c, name in kl_coefs)
    out["reward"] = r_ss - r_kl + out["penalty"]
    assert math.isfinite(out["reward"])
    return out
