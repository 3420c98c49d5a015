"""Log-probs of chosen tokens (``rlt.rewards.logprobs``) against full forwards and log_softmax.

Several tests here were written to kill mutants that survived ``scripts/mutation.sh
logprobs`` (docs/testing.md): defaults, shape checks, the fp32 direct path, buffer reuse,
devices (the ``meta`` device stands in for an accelerator on CPU) and span validation.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rlt.errors import RewardError
from rlt.rewards.logprobs import body_and_head, chunked_token_logprobs, model_device, span_logprobs


def _reference(
    head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``[N]`` fp32: full logits, full log_softmax, gather."""
    with torch.no_grad():
        logits = head(hidden).double() / temperature
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1).float()


# --------------------------------------------------------------------------- chunked head


@pytest.mark.parametrize(
    "kind", ["linear", "linear_bias", "module", "weight", "bf16", "fp64_bias", "fp64_weight"]
)
def test_chunked_token_logprobs_matches_log_softmax(kind):
    torch.manual_seed(0)
    n, h, v = 37, 16, 101
    hidden = torch.randn(n, h)
    targets = torch.randint(0, v, (n,))
    lin = nn.Linear(h, v, bias=kind in ("linear_bias", "fp64_bias"))
    head: nn.Module | torch.Tensor = lin
    if kind == "module":
        head = nn.Sequential(lin)
    elif kind == "weight":
        head = lin.weight
    elif kind == "bf16":
        lin, hidden = lin.to(torch.bfloat16), hidden.to(torch.bfloat16)
        head = lin
    elif kind.startswith("fp64"):  # not the fp32 direct path: F.linear with the head's own bias
        lin, hidden = lin.double(), hidden.double()
        head = lin if kind == "fp64_bias" else lin.weight
    want = _reference(lin, hidden, targets, 0.7)
    got = chunked_token_logprobs(hidden, head, targets, temperature=0.7, chunk_size=8)
    assert got.dtype == torch.float32 and got.shape == (n,)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [1, 2, 300])
def test_defaults_are_temperature_one_and_any_number_of_positions(n):
    torch.manual_seed(n)
    lin = nn.Linear(8, 13)
    hidden, targets = torch.randn(n, 8), torch.randint(0, 13, (n,))
    got = chunked_token_logprobs(hidden, lin, targets)  # temperature 1, chunk 256 (n=300: two chunks)
    torch.testing.assert_close(got, _reference(lin, hidden, targets, 1.0), atol=1e-5, rtol=0)


def test_chunked_token_logprobs_flags_non_finite_logits():
    hidden = torch.randn(4, 8)
    weight = torch.randn(10, 8)
    hidden[2, 0] = float("nan")
    weight_inf = weight.clone()
    out = chunked_token_logprobs(hidden, weight, torch.tensor([1, 2, 3, 4]), chunk_size=3)
    assert torch.isfinite(out[[0, 1, 3]]).all() and torch.isnan(out[2])
    weight_inf[5, 0] = float("inf")
    out = chunked_token_logprobs(torch.ones(2, 8), weight_inf, torch.tensor([1, 5]), chunk_size=3)
    assert torch.isnan(out).all()  # -inf (row with a +inf elsewhere) and NaN both come back NaN


@pytest.mark.parametrize(
    ("hidden_shape", "targets_shape"), [((3, 1, 4), (3,)), ((3, 4), (3, 1)), ((3, 4), (2,))]
)
def test_shapes_are_checked_and_named(hidden_shape, targets_shape):
    hidden = torch.zeros(hidden_shape)
    targets = torch.zeros(targets_shape, dtype=torch.long)
    want = f"expected hidden [N, H] and targets [N], got {hidden_shape} and {targets_shape}"
    with pytest.raises(ValueError, match=want.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        chunked_token_logprobs(hidden, torch.zeros(5, 4), targets)


def test_an_fp32_head_is_used_directly_without_forward_or_linear(monkeypatch):
    """The fp32 direct path: the head's weight in one matmul into the buffer, no module call."""
    torch.manual_seed(0)
    lin = nn.Linear(8, 11)
    hidden, targets = torch.randn(9, 8), torch.randint(0, 11, (9,))
    bare = nn.Linear(8, 11, bias=False)
    bare.weight = lin.weight
    wants = {
        id(lin): _reference(lin, hidden, targets, 0.5),
        id(lin.weight): _reference(bare, hidden, targets, 0.5),
    }
    lin.register_forward_hook(lambda *_: pytest.fail("the head's forward ran"))

    def no_linear(*_a, **_k):
        raise AssertionError("F.linear ran on the fp32 path")

    monkeypatch.setattr(torch.nn.functional, "linear", no_linear)
    for head in (lin, lin.weight):
        got = chunked_token_logprobs(hidden, head, targets, temperature=0.5, chunk_size=4)
        torch.testing.assert_close(got, wants[id(head)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("head_kind", ["linear", "module"])
def test_buffers_are_reused_at_their_shape(head_kind):
    """torch warns when an ``out=`` buffer has the wrong shape and is resized: none may be."""
    torch.manual_seed(0)
    lin = nn.Linear(8, 11)
    head = lin if head_kind == "linear" else nn.Sequential(lin)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunked_token_logprobs(torch.randn(10, 8), head, torch.randint(0, 11, (10,)), chunk_size=4)


def test_trainable_heads_need_no_grad_context():
    lin = nn.Linear(8, 11)  # requires_grad: `out=` kernels refuse it unless gradients are off
    out = chunked_token_logprobs(torch.randn(3, 8), lin, torch.tensor([0, 5, 10]))
    assert not out.requires_grad


@pytest.mark.parametrize("head_kind", ["linear", "weight", "module"])
def test_results_stay_on_the_inputs_device(head_kind):
    """The ``meta`` device plays the accelerator: every buffer must follow ``hidden``."""
    lin = nn.Linear(4, 7, device="meta")
    head = {"linear": lin, "weight": lin.weight, "module": nn.Sequential(lin)}[head_kind]
    hidden = torch.empty(5, 4, device="meta")
    for targets in (torch.zeros(5, dtype=torch.long, device="meta"), torch.zeros(5, dtype=torch.long)):
        out = chunked_token_logprobs(hidden, head, targets, chunk_size=2)
        assert out.device.type == "meta" and out.shape == (5,) and out.dtype == torch.float32


def test_output_is_fp32_whatever_the_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = chunked_token_logprobs(torch.randn(3, 4), torch.randn(6, 4), torch.tensor([0, 1, 5]))
    finally:
        torch.set_default_dtype(old)
    assert out.dtype == torch.float32


# --------------------------------------------------------------------------- body and head


class _FakeLM(nn.Module):
    def __init__(self, config=None, decoder=True, head=True):
        super().__init__()
        self.config = config
        if decoder:
            self.get_decoder = lambda: nn.Identity()
        if head:
            self.get_output_embeddings = lambda: nn.Linear(2, 3)


@pytest.mark.parametrize("attr", ["final_logit_softcapping", "logit_scale"])
def test_logit_transforms_the_chunked_head_cannot_apply_are_refused(attr):
    with pytest.raises(
        RewardError, match=f"^the student applies {attr} to its logits; the RLT reward's chunked"
    ):
        body_and_head(_FakeLM(SimpleNamespace(**{attr: 30.0})), "student")
    for harmless in (None, 1.0):  # unset or the identity
        body_and_head(_FakeLM(SimpleNamespace(**{attr: harmless})), "student")
    with pytest.raises(
        RewardError, match="^the model applies logit_scale"
    ):  # span_logprobs names "the model"
        span_logprobs(_FakeLM(SimpleNamespace(logit_scale=2.0)), [[1, 2]], [[(1, 2)]], 1.0, 8)


@pytest.mark.parametrize(("decoder", "head"), [(False, True), (True, False), (False, False)])
def test_models_without_body_or_head_are_refused_by_name(decoder, head):
    want = (
        r"^the teacher \(_FakeLM\) does not expose get_decoder\(\)/get_output_embeddings\(\); "
        "the RLT reward needs a causal LM body and head$"
    )
    with pytest.raises(RewardError, match=want):
        body_and_head(_FakeLM(decoder=decoder, head=head), "teacher")


def test_a_model_without_parameters_is_on_the_cpu():
    assert model_device(nn.Identity()) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


# --------------------------------------------------------------------------- spans of a batch


def _full_forward_logprobs(model, ids: list[int], temperature: float) -> torch.Tensor:
    """ℓ(t) for t = 1..L-1 of one unpadded sequence: ``[L-1]``."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits / temperature, dim=-1)
    return lp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1).float()


@pytest.mark.parametrize(("padding_side", "micro_batch_size"), [("right", None), ("left", None), ("left", 2)])
def test_spans_of_unequal_sequences_equal_unpadded_forwards(models, padding_side, micro_batch_size):
    """Padding (either side, with a pad id that is a real token) must not change a span's log-probs."""
    student, _, _ = models
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(3, 30, (n,), generator=g).tolist() for n in (5, 12, 2, 9)]
    spans = [[(1, 3), (4, 5)], [(1, 12)], [(1, 2)], [(6, 9), (2, 2)]]
    got = span_logprobs(
        student,
        seqs,
        spans,
        0.8,
        4,
        padding_side=padding_side,
        pad_id=seqs[1][0],
        micro_batch_size=micro_batch_size,
    )
    for seq, seq_spans, parts in zip(seqs, spans, got, strict=True):
        full = _full_forward_logprobs(student, seq, 0.8)
        assert len(parts) == len(seq_spans)
        for (start, end), part in zip(seq_spans, parts, strict=True):
            torch.testing.assert_close(part, full[start - 1 : end - 1], atol=1e-5, rtol=0)


def test_left_pads_are_masked_where_attention_infers_nothing_from_positions(models, monkeypatch):
    """The mask, not transformers' packed-sequence inference, hides left pads.

    Without a 2-D mask, transformers 5 reads a restart of ``position_ids`` as a new packed
    sequence, which happens to hide left pads too; other attention paths (and versions) do
    not. With that inference switched off, the pads must still be invisible.
    """
    from transformers import masking_utils

    monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)
    student, _, _ = models
    seqs = [[7, 8, 9, 10, 11, 12], [5, 6, 7]]
    got = span_logprobs(student, seqs, [[(1, 6)], [(1, 3)]], 1.0, 4, padding_side="left", pad_id=4)
    for seq, (part,) in zip(seqs, got, strict=True):
        torch.testing.assert_close(part, _full_forward_logprobs(student, seq, 1.0), atol=1e-5, rtol=0)


def test_sequences_without_spans_get_none_and_cost_no_forward(models):
    student, _, _ = models
    calls = []
    handle = student.get_decoder().register_forward_hook(lambda *_: calls.append(1))
    try:
        out = span_logprobs(student, [[1, 2, 3], [4, 5]], [[], []], 1.0, 8, micro_batch_size=1)
        assert out == [[], []] and calls == []
        out = span_logprobs(student, [[1, 2, 3], [4, 5]], [[], [(1, 2)]], 1.0, 8, micro_batch_size=1)
        assert out[0] == [] and out[1][0].shape == (1,) and calls == [1]
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("span", "ok"), [((0, 2), False), ((2, 6), False), ((3, 2), False), ((1, 2), True), ((1, 5), True)]
)
def test_spans_must_lie_inside_their_sequence(models, span, ok):
    student, _, _ = models
    seqs = [[7, 8, 9, 10, 11], [3, 4]]
    if ok:
        (part,) = span_logprobs(student, seqs, [[span], []], 1.0, 8)[0]
        full = _full_forward_logprobs(student, seqs[0], 1.0)
        torch.testing.assert_close(part, full[span[0] - 1 : span[1] - 1], atol=1e-5, rtol=0)
    else:
        with pytest.raises(
            RewardError, match=rf"^span \[{span[0]}, {span[1]}\) is outside sequence 0 of length 5$"
        ):
            span_logprobs(student, seqs, [[span], []], 1.0, 8)
