"""Log-probabilities of chosen tokens without full logits (spec §3, "compute logsumexp and a gather").

Only the model *body* runs over a whole sequence; the LM head is applied chunk by chunk
to the positions that are scored, so ``[tokens × vocab]`` logits never exist at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlt.errors import RewardError

# --------------------------------------------------------------------------- log-probs of chosen tokens


def chunked_token_logprobs(
    hidden: torch.Tensor,
    lm_head: nn.Module | torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = 256,
) -> torch.Tensor:
    """``log_softmax(lm_head(hidden) / temperature)[targets]`` without full logits.

    Args:
        hidden: ``[N, H]`` hidden states, each the input of the prediction of one target.
        lm_head: the output projection: an ``nn.Linear`` (its weight ``[V, H]`` and bias are
            used directly), any module mapping ``[n, H] -> [n, V]``, or a weight ``[V, H]``.
        targets: ``[N]`` token ids.
        temperature: logits are divided by it before the softmax.
        chunk_size: positions per chunk; only ``[chunk_size, V]`` logits exist at a time.

    Returns:
        ``[N]`` fp32 log-probabilities. Per chunk, the logits are computed (in the head's
        dtype) into a reused fp32 ``[chunk_size, V]`` buffer, divided by the temperature,
        and turned into log-probs by ``torch.log_softmax(..., out=)`` into a second
        reused buffer; only the targets' entries are gathered. Peak extra memory is
        ``2 · chunk_size · V · 4`` bytes whatever ``N`` is. (The fused log-softmax kernel
        is the logsumexp + gather of spec §3 in one vectorised pass, and faster on CPU
        than separate max/exp/sum passes; reusing buffers avoids the page faults of
        allocating ``[chunk, V]`` tensors, which dominate at large vocabularies.)
        A position whose logits contain NaN or +inf comes back non-finite, never
        silently finite, so callers can say which sample was affected.
    """
    if hidden.dim() != 2 or targets.dim() != 1 or hidden.shape[0] != targets.shape[0]:
        raise ValueError(
            f"expected hidden [N, H] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}"
        )
    n = hidden.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    if n == 0:
        return out
    weight: torch.Tensor | None
    bias: torch.Tensor | None = None
    if isinstance(lm_head, torch.Tensor):
        weight = lm_head
    elif type(lm_head) is nn.Linear:  # exactly Linear: subclasses (LoRA, quantised) may override forward
        weight, bias = lm_head.weight, lm_head.bias
    else:
        weight = None
    targets = targets.to(hidden.device)
    inv_t = 1.0 / float(temperature)
    # An fp32 head can take the temperature on the [n, H] input instead of the [n, V]
    # logits and write straight into the buffer: one pass over [n, V] less.
    direct = weight is not None and weight.dtype == torch.float32 and hidden.dtype == torch.float32
    logits_buf: torch.Tensor | None = None
    lsm_buf: torch.Tensor | None = None
    # A reward: nothing flows back, and the `out=` kernels refuse inputs that need gradients.
    # (A context, not a decorator: mutmut does not mutate decorated functions.)
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            h = hidden[start : start + chunk_size]
            t = targets[start : start + chunk_size, None]
            m = h.shape[0]
            if direct:
                assert weight is not None
                if logits_buf is None:
                    logits_buf = torch.empty(
                        min(chunk_size, n), weight.shape[0], dtype=torch.float32, device=h.device
                    )
                logits = logits_buf[:m]
                if bias is None:
                    torch.matmul(h * inv_t, weight.t(), out=logits)
                else:
                    torch.addmm(bias * inv_t, h * inv_t, weight.t(), out=logits)
            else:
                z = F.linear(h, weight, bias) if weight is not None else lm_head(h)  # type: ignore[operator]
                if logits_buf is None:
                    logits_buf = torch.empty(
                        min(chunk_size, n), z.shape[-1], dtype=torch.float32, device=h.device
                    )
                logits = logits_buf[:m]
                logits.copy_(z)
                del z
                logits.mul_(inv_t)
            if lsm_buf is None:
                lsm_buf = torch.empty_like(logits_buf)
            lp = torch.log_softmax(logits, dim=1, out=lsm_buf[:m]).gather(1, t).squeeze(1)
            # A NaN anywhere in the row makes every log-prob NaN, a +inf makes it -inf or NaN:
            # the chosen entry alone tells (a separate logsumexp check was found redundant by
            # mutation testing). -inf becomes NaN so that callers see one marker.
            out[start : start + m] = torch.where(torch.isfinite(lp), lp, torch.full_like(lp, float("nan")))
    return out


def body_and_head(model: nn.Module, who: str) -> tuple[nn.Module, nn.Module]:
    """The decoder body (hidden states) and the LM head of a causal LM."""
    config = getattr(model, "config", None)
    for attr in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, attr, None) not in (None, 1.0):
            raise RewardError(
                f"the {who} applies {attr} to its logits; the RLT reward's chunked head does not support that"
            )
    body = model.get_decoder() if hasattr(model, "get_decoder") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or head is None:
        raise RewardError(
            f"the {who} ({type(model).__name__}) does not expose get_decoder()/get_output_embeddings(); "
            "the RLT reward needs a causal LM body and head"
        )
    return body, head


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def span_logprobs(
    model: nn.Module,
    sequences: list[list[int]],
    spans: list[list[tuple[int, int]]],
    temperature: float,
    chunk_size: int,
    padding_side: str = "right",
    pad_id: int = 0,
    micro_batch_size: int | None = None,
) -> list[list[torch.Tensor]]:
    """Log-probs of the tokens in ``spans`` of each sequence, one body forward per micro-batch.

    Args:
        sequences: ``B`` token-id lists.
        spans: per sequence, ``[start, end)`` position ranges with ``start >= 1`` (position
            ``t`` is predicted from the hidden state at ``t - 1``).
    Returns:
        Per sequence, one fp32 CPU tensor ``[end - start]`` per span; non-finite where the
        logits were (see :func:`chunked_token_logprobs`).
    """
    body, head = body_and_head(model, "model")
    device = model_device(model)
    results: list[list[torch.Tensor]] = [[] for _ in sequences]
    step = micro_batch_size or max(1, len(sequences))
    for lo in range(0, len(sequences), step):
        group = list(range(lo, min(lo + step, len(sequences))))
        lengths = [len(sequences[i]) for i in group]
        width = max(lengths)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        offsets = []
        for row, i in enumerate(group):
            off = width - lengths[row] if padding_side == "left" else 0
            offsets.append(off)
            ids[row, off : off + lengths[row]] = torch.tensor(sequences[i], dtype=torch.long)
            mask[row, off : off + lengths[row]] = 1
        # Explicit positions: left padding must not shift the rotary positions of real tokens.
        positions = (mask.cumsum(dim=1) - 1).clamp_(min=0)
        rows, cols, targets = [], [], []
        for row, i in enumerate(group):
            for start, end in spans[i]:
                if start < 1 or end > lengths[row] or start > end:
                    raise RewardError(
                        f"span [{start}, {end}) is outside sequence {i} of length {lengths[row]}"
                    )
                pos = torch.arange(start, end)
                rows.append(torch.full((end - start,), row, dtype=torch.long))
                cols.append(pos - 1 + offsets[row])
                targets.append(torch.tensor(sequences[i][start:end], dtype=torch.long))
        if not rows:  # nothing to score in this micro-batch: no forward
            continue
        hidden = body(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        ).last_hidden_state
        r, c = torch.cat(rows).to(device), torch.cat(cols).to(device)
        lp = chunked_token_logprobs(hidden[r, c], head, torch.cat(targets), temperature, chunk_size).cpu()
        del hidden
        at = 0
        for i in group:
            for start, end in spans[i]:
                results[i].append(lp[at : at + end - start])
                at += end - start
    return results
