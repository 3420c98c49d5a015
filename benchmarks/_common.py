"""Shared pieces of the reward benchmarks (``reward.py`` on CPU, ``reward_gpu.py`` at Qwen2.5 shapes).

Kept in one place so that every benchmark compares the project's reward against the *same*
naive reference and the *same* bare forward:

- :func:`make_batch`: random student sequences of a given length, built with the reward's own
  segments (prefix ≈ T/8 question tokens, solution ≈ T/16, the rest explanation), padded;
- :func:`reference_rewards`: the naive way, full ``[B, T, V]`` logits, a full-vocabulary fp32
  ``log_softmax`` per row, a gather and the reductions written out by hand;
- :func:`bare_forward` / :func:`body_forward`: one plain forward with / without the LM head;
- :func:`rss_kb` / :func:`reset_peak_rss`: Linux peak RSS, the CPU stand-in for
  ``torch.cuda.max_memory_allocated``.

``benchmarks/`` is not a package; the scripts put their own folder on ``sys.path`` and
``import _common``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# The paper's coefficients (RLTRewardConfig's defaults), written out by hand so the reference
# shares no code with the project's reward: r = mean(ℓ_A) + 0.01 min(ℓ_A) − 3 mean(k) − 0.03 max(k).
REF_SOLUTION_MEAN, REF_SOLUTION_MIN, REF_KL_MEAN, REF_KL_MAX = 1.0, 0.01, 3.0, 0.03
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789 +-*/=()"


# --------------------------------------------------------------------------- memory (CPU)


def rss_kb(field: str) -> int:
    """A field of ``/proc/self/status`` in kB (``VmRSS``: now, ``VmHWM``: peak since the last reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- inputs


@dataclass
class StudentBatch:
    """One benchmark batch: the reward's inputs and the same sequences as padded tensors."""

    questions: list[str]
    solutions: list[str]
    explanations: list[list[int]]
    teacher_logprobs: list[torch.Tensor]
    closed: list[bool]
    built: list[tuple[list[int], slice, slice]]  # (ids, explanation slice, solution slice) per row
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        """Real (unpadded) tokens in the batch."""
        return int(self.attention_mask.sum())

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids, _, _ in self.built]


def make_batch(
    reward: Any,
    vocab: int,
    seq: int,
    batch: int,
    pad_id: int,
    device: str | torch.device = "cpu",
    seed: int = 1,
) -> StudentBatch:
    """``batch`` random student sequences of about ``seq`` tokens for ``reward`` (an ``RLTReward``).

    Question ≈ T/8 characters, solution ≈ T/16, the explanation (random ids over the whole
    vocabulary, as a teacher may sample any token) fills the sequence to ``T``. Rows differ
    a little in length so that padding is real. The teacher's log-probs are random in
    ``[-5, 0]``: the reward takes them as given, as a trainer that already has them does.
    """
    g = torch.Generator().manual_seed(seed)
    questions, solutions, expl = [], [], []
    for b in range(batch):
        nq, ns = max(1, seq // 8), max(1, seq // 16)
        q = "".join(LETTERS[i] for i in torch.randint(len(LETTERS), (nq,), generator=g).tolist())
        s = "".join(LETTERS[i] for i in torch.randint(26, (ns,), generator=g).tolist())
        overhead = len(reward.segments(q, s).build([])[0])
        ne = max(1, seq - overhead - (b * seq) // (10 * batch))
        questions.append(q)
        solutions.append(s)
        expl.append(torch.randint(vocab, (ne,), generator=g).tolist())
    teacher_lp = [-5.0 * torch.rand(len(e), generator=g) for e in expl]
    built = [reward.segments(q, s).build(e) for q, s, e in zip(questions, solutions, expl)]
    width = max(len(ids) for ids, _, _ in built)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for b, (ids, _, _) in enumerate(built):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1
    return StudentBatch(
        questions, solutions, expl, teacher_lp, [True] * batch, built, input_ids.to(device), mask.to(device)
    )


# --------------------------------------------------------------------------- the variants


def reward_rewards(reward: Any, b: StudentBatch) -> list[float]:
    """The project's reward: ``RLTReward.score_ids`` with the teacher's log-probs given."""
    return [
        c["reward"]
        for c in reward.score_ids(b.questions, b.solutions, b.explanations, b.closed, b.teacher_logprobs)
    ]


@torch.no_grad()
def reference_rewards(model: Any, b: StudentBatch, tau: float) -> list[float]:
    """The naive reference: full logits, full-vocabulary fp32 ``log_softmax`` per row, gather, reduce."""
    device = b.input_ids.device
    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
    out = []
    for row, (ids, e_sl, a_sl) in enumerate(b.built):
        lp = torch.log_softmax(logits[row].float() / tau, dim=-1)
        tgt = torch.tensor(ids, device=device)
        # Position t is predicted from position t - 1.
        ls_e = lp[e_sl.start - 1 : e_sl.stop - 1].gather(1, tgt[e_sl][:, None]).squeeze(1)
        ls_a = lp[a_sl.start - 1 : a_sl.stop - 1].gather(1, tgt[a_sl][:, None]).squeeze(1)
        k = b.teacher_logprobs[row].to(device) - ls_e
        r_ss = REF_SOLUTION_MEAN * ls_a.double().mean() + REF_SOLUTION_MIN * ls_a.min()
        r_kl = REF_KL_MEAN * k.double().mean() + REF_KL_MAX * k.max()
        out.append(float(r_ss - r_kl))
        del lp
    return out


@torch.no_grad()
def bare_forward(model: Any, b: StudentBatch) -> None:
    """The floor: one plain forward producing the full logits (any log-prob needs at least this)."""
    model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.sum()


@torch.no_grad()
def body_forward(model: Any, b: StudentBatch) -> None:
    """The model body alone (no LM head): shows how much of the cost is the head."""
    model.model(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state.sum()
