"""Batched generation: vLLM's offline engine when installed, transformers ``generate`` otherwise.

The engine itself (settings, checks, start) is :mod:`rlt.vllm_engine`'s.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class SamplingSettings:
    """Sampling of one generation call; ``temperature == 0`` is greedy."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 512


def vllm_available() -> bool:
    """Whether vLLM can be imported (it is an optional extra)."""
    return importlib.util.find_spec("vllm") is not None


def choose_backend(backend: str) -> str:
    """``auto`` → vLLM when importable and a GPU is there, else transformers."""
    if backend not in ("auto", "vllm", "transformers"):
        from rlt.errors import ConfigError

        raise ConfigError(f"backend: expected auto, vllm or transformers, got {backend!r}")
    if backend == "auto":
        return "vllm" if vllm_available() and torch.cuda.is_available() else "transformers"
    return backend


@torch.no_grad()
def generate_transformers(
    model: Any, tokenizer: Any, prompts: list[str], settings: SamplingSettings, seed: int
) -> list[list[int]]:
    """Completion token ids (without prompt, end-of-sequence and padding) for each prompt.

    Prompts are left-padded so every completion starts at the same column. ``seed``
    fixes the sampling of this batch, so a resumed run redraws the same completions.
    """
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    torch.manual_seed(seed)
    greedy = settings.temperature == 0
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            **enc,
            max_new_tokens=settings.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else settings.temperature,
            top_p=None if greedy else settings.top_p,
            top_k=None if greedy else 0,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    finally:
        model.train(was_training)
    new = out[:, enc["input_ids"].shape[1] :].tolist()
    return [cut_at_stop(ids, stop_ids(tokenizer)) for ids in new]


def generate_vllm(
    llm: Any,
    prompts: list[str],
    settings: SamplingSettings,
    seeds: int | list[int],
    stop_token_ids: list[int] | None = None,
) -> list[list[int]]:
    """The same with a ``vllm.LLM`` engine (token ids as the engine sampled them).

    ``seeds`` is one seed per prompt (or one for all). Per-prompt seeds matter: vLLM
    seeds each request on its own, so one shared seed would make the ``num_traces``
    copies of a prompt identical. Trailing end-of-sequence/padding ids
    (``stop_token_ids``) are cut, as :func:`generate_transformers` does.
    """
    from vllm import SamplingParams

    per_prompt = seeds if isinstance(seeds, list) else [seeds + i for i in range(len(prompts))]
    greedy = settings.temperature == 0
    params = [
        SamplingParams(
            temperature=settings.temperature,
            top_p=1.0 if greedy else settings.top_p,
            max_tokens=settings.max_new_tokens,
            seed=s,
        )
        for s in per_prompt
    ]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [cut_at_stop(list(out.outputs[0].token_ids), stop_token_ids or ()) for out in outputs]


def cut_at_stop(ids: list[int], stop: Collection[int]) -> list[int]:
    """``ids`` up to (without) the first end-of-sequence or padding id in ``stop``."""
    return next((ids[:i] for i, t in enumerate(ids) if t in stop), ids)


def stop_ids(tokenizer: Any) -> list[int]:
    """End-of-sequence and padding ids of ``tokenizer`` (where a completion ends)."""
    return sorted({tokenizer.eos_token_id, tokenizer.pad_token_id} - {None})
