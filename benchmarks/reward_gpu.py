"""GPU benchmark of the RLT reward at Qwen2.5 shapes (random weights, built from committed configs).

The student is ``AutoModelForCausalLM.from_config`` of ``benchmarks/configs/qwen2.5-<model>.json``
(the real Qwen2.5 ``config.json`` contents), initialised directly on ``--device`` in
``--dtype``; no weights are downloaded. Random weights cost exactly what trained ones do.

Side by side in one run, for each student-sequence length ``T`` and batch size ``B``
(inputs from ``benchmarks/_common.py``: question ≈ T/8 tokens, solution ≈ T/16, the rest
explanation; the same builder, reference and forward as the CPU benchmark ``reward.py``):

- ``rlt``:       ``RLTReward.score_ids`` with the teacher's log-probs *given*, as the trainer
                 passes them when TRL already has them; so only the student pass is measured,
                 the same work as the other two variants. (The policy's own no-grad forward for
                 ``ℓ_T``, where TRL has none, is timed by ``train_step_gpu.py``.)
- ``reference``: the naive way: full ``[B, T, V]`` logits, a full-vocabulary fp32
                 ``log_softmax`` per row, gather, the reductions by hand;
- ``forward``:   the floor: one plain student forward producing the logits.

Printed per case: tokens/s; peak memory above what was resident before the call (model and
inputs) and the absolute peak, from ``torch.cuda.max_memory_allocated`` reset per variant (on
CPU: Linux peak RSS, ``VmHWM``); the ratios; and, for the bare forward, the achieved fraction
of the GPU's dense bf16 matmul peak (FLOPs = 2 · parameters of the linear layers · tokens +
causal attention 2 · layers · T² · d per sequence; peaks: H100 SXM and H200 989 TFLOPS).
A variant that runs out of memory prints ``OOM``; the reference running out where the reward
does not is printed as a win and counts as meeting the speed and memory targets.

Targets (printed met / NOT met): at T = 8192, ≥ 3× the reference's speed and ≤ ¼ of its peak
memory (memory above the resident model, the part the computation adds; the absolute peaks
are printed too); everywhere, ≤ 1.2× the bare forward's time.

``--tiny`` shrinks the body (2 layers, hidden 64; the vocabulary stays real) and the lengths
(64 and 128) so that ``--device cpu --tiny`` runs in seconds: the test suite's smoke run. Its
numbers say nothing about the GPU targets.

Usage::

    python benchmarks/reward_gpu.py --model 1.5b --lengths 2048 8192 16384 --batch-sizes 1 4
    python benchmarks/reward_gpu.py --model 7b --lengths 2048 8192 16384 --batch-sizes 1
    python benchmarks/reward_gpu.py --device cpu --tiny --dtype fp32
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

# benchmarks/ is not a package: the shared inputs, reference and forwards live next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    StudentBatch,
    bare_forward,
    make_batch,
    reference_rewards,
    reset_peak_rss,
    reward_rewards,
    rss_kb,
)

CONFIGS = Path(__file__).resolve().parent / "configs"
VARIANTS = ("rlt", "reference", "forward")
# Dense bf16 tensor-core peaks (TFLOPS, no sparsity), matched against torch.cuda.get_device_name()
# in this order: the more specific names first ("H100 PCIe" before "H100").
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
)
TARGET_LENGTH = 8192
TARGET_SPEEDUP, TARGET_MEMORY, TARGET_OVER_FORWARD = 3.0, 0.25, 1.2
TINY_BODY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
TINY_LENGTHS = [64, 128]
FULL_LENGTHS = [2048, 8192, 16384]


# --------------------------------------------------------------------------- the student


def load_config(model: str, tiny: bool = False, min_positions: int = 0) -> Any:
    """The committed Qwen2.5 config (``--tiny``: the same vocabulary with a sliver of the body)."""
    from transformers import AutoConfig

    raw = json.loads((CONFIGS / f"qwen2.5-{model}.json").read_text())
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "torch_dtype")}
    if tiny:  # the vocabulary is what the reward's chunked head changes, so it stays real
        fields.update(TINY_BODY)
    # Rotary positions extrapolate; only the config's bound would refuse a longer sequence.
    fields["max_position_embeddings"] = max(fields["max_position_embeddings"], min_positions)
    return AutoConfig.for_model(raw["model_type"], **fields)


def build_student(cfg: Any, device: str, dtype: torch.dtype, attn: str) -> nn.Module:
    """A random-weight student initialised directly on ``device`` (no CPU copy of a 7B model)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
    return model.eval().requires_grad_(False)


def linear_params(model: nn.Module) -> int:
    """Parameters that take part in matmuls (every ``nn.Linear``, the LM head included; not the embedding)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def forward_flops(model: nn.Module, lengths: list[int]) -> float:
    """FLOPs of one forward over sequences of ``lengths``: 2·P·tokens + causal attention."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    d_attn = cfg.num_attention_heads * head_dim
    # QKᵀ and AV are 2·L²·d FLOPs each per layer; the causal mask halves the useful part.
    attn = sum(2 * cfg.num_hidden_layers * n * n * d_attn for n in lengths)
    return 2.0 * linear_params(model) * sum(lengths) + attn


def bf16_peak_tflops(device: str) -> tuple[str, float | None]:
    """The accelerator's name and its dense bf16 peak (None: CPU or a GPU not in the table)."""
    if not device.startswith("cuda"):
        return "CPU", None
    name = torch.cuda.get_device_name(torch.device(device))
    return name, next((v for k, v in BF16_PEAK_TFLOPS if k in name), None)


# --------------------------------------------------------------------------- measuring


def _is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure (a RuntimeError or MemoryError)."""
    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(err)


def measure(fn: Callable[[], Any], device: str, repeats: int) -> dict[str, Any]:
    """Peak memory of a first call, then the median time of ``repeats`` more; ``oom`` on running out.

    Memory: the peak during the first call above what was allocated just before it
    (``extra_mb``: the model and inputs excluded) and the absolute peak (``peak_mb``). CUDA:
    ``max_memory_allocated`` after ``reset_peak_memory_stats``; CPU: ``VmHWM`` after a reset,
    which counts freed-and-reused heap once (variants run in one process, so a later variant
    can reuse what an earlier one freed; the reward runs first, so that error favours the
    reference).
    """
    cuda = device.startswith("cuda")
    oom = False
    try:
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            out = fn()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            reset_ok = reset_peak_rss()
            before = rss_kb("VmRSS") * 1024
            out = fn()
            peak = rss_kb("VmHWM") * 1024 if reset_ok else math.nan
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    except (torch.OutOfMemoryError, RuntimeError, MemoryError) as err:
        if not _is_oom(err):
            raise
        oom = True
    if oom:
        # The exception (and the frames holding the half-built tensors) is gone here: free the cache.
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        return {"oom": True}
    return {
        "oom": False,
        "time_s": statistics.median(times),
        "extra_mb": max(0.0, peak - before) / 2**20,
        "peak_mb": peak / 2**20,
        "out": out,
    }


def run_case(model: nn.Module, reward: Any, pad_id: int, device: str, length: int, batch: int,
             repeats: int) -> dict[str, Any]:  # fmt: skip
    """The three variants on one batch of ``batch`` sequences of ``length`` tokens."""
    b: StudentBatch = make_batch(reward, model.config.vocab_size, length, batch, pad_id, device)
    tau = reward.config.student_temperature
    fns: dict[str, Callable[[], Any]] = {
        "rlt": lambda: reward_rewards(reward, b),
        "reference": lambda: reference_rewards(model, b, tau),
        "forward": lambda: bare_forward(model, b),
    }
    # The reward first: on CPU a later variant may reuse heap the earlier ones freed.
    res: dict[str, Any] = {name: measure(fns[name], device, repeats) for name in VARIANTS}
    res.update(length=length, batch=batch, tokens=b.tokens, lengths=b.lengths)
    return res


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    """Speed and memory against the reference, time against the bare forward, reward agreement."""
    rlt, ref, fwd = r["rlt"], r["reference"], r["forward"]
    both = not (rlt["oom"] or ref["oom"])
    out: dict[str, Any] = {
        "speedup": ref["time_s"] / rlt["time_s"] if both else math.nan,
        "mem_ratio": rlt["extra_mb"] / max(ref["extra_mb"], 1e-9) if both else math.nan,
        "peak_ratio": rlt["peak_mb"] / max(ref["peak_mb"], 1e-9) if both else math.nan,
        "over_forward": rlt["time_s"] / fwd["time_s"] if not (rlt["oom"] or fwd["oom"]) else math.nan,
        "max_diff": max(abs(a - b) for a, b in zip(rlt["out"], ref["out"])) if both else math.nan,
        "reference_oom_win": ref["oom"] and not rlt["oom"],
        "rlt_oom": rlt["oom"],
    }
    return out


# --------------------------------------------------------------------------- printing


def _tps(v: dict[str, Any], tokens: int) -> str:
    return "OOM" if v["oom"] else f"{tokens / v['time_s']:.0f}"


def _mb(v: dict[str, Any], key: str) -> str:
    return "OOM" if v["oom"] else ("n/a" if math.isnan(v[key]) else f"{v[key]:.0f}")


def _x(value: float, fmt: str) -> str:
    return "n/a" if math.isnan(value) else format(value, fmt)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_targets(rows: list[dict[str, Any]], tiny: bool) -> list[dict[str, Any]]:
    """Print the targets, judged at T = 8192 (or, when the run has no 8192, at its longest length,
    said so); return them as ``{"target", "value", "verdict"}`` records for the JSON."""
    judged_targets: list[dict[str, Any]] = []
    lengths = sorted({r["length"] for r in rows})
    at = TARGET_LENGTH if TARGET_LENGTH in lengths else lengths[-1]
    note = "" if at == TARGET_LENGTH else f" (no T={TARGET_LENGTH} in this run: judged at T={at})"
    if tiny:
        note += " [--tiny smoke run: says nothing about the GPU targets]"
    print(f"targets{note}:")
    judged = [r for r in rows if r["length"] == at]
    for key, name, ok_fn, fmt in (
        ("speedup", f">= {TARGET_SPEEDUP:g}x reference speed", lambda v: v >= TARGET_SPEEDUP, ".2f"),
        ("mem_ratio", "<= 1/4 reference memory", lambda v: v <= TARGET_MEMORY, ".3f"),
    ):
        for r in judged:
            q = r["ratios"]
            if q["reference_oom_win"]:
                value, ok = "reference OOM, reward ran (a win)", True
            elif q["rlt_oom"]:
                value, ok = "reward OOM", False
            else:
                value, ok = _x(q[key], fmt), ok_fn(q[key])
            print(f"  {name} at T={at}, B={r['batch']}: {value}  {_verdict(ok)}")
            judged_targets.append({"target": f"{name} at T={at}, B={r['batch']}", "value": value,
                                   "verdict": _verdict(ok)})  # fmt: skip
    overs = [r["ratios"]["over_forward"] for r in rows if not math.isnan(r["ratios"]["over_forward"])]
    if overs:
        worst = max(overs)
        value, ok = f"worst {worst:.2f}x", worst <= TARGET_OVER_FORWARD
    else:
        value, ok = "not measured (OOM)", False
    name = f"<= {TARGET_OVER_FORWARD:g}x bare forward (every case)"
    print(f"  {name}: {value}  {_verdict(ok)}")
    judged_targets.append({"target": name, "value": value, "verdict": _verdict(ok)})
    diffs = [r["ratios"]["max_diff"] for r in rows if not math.isnan(r["ratios"]["max_diff"])]
    if diffs:
        print(f"  rewards agree with the reference: max|Δr| {max(diffs):.1e} (informational)")
    return judged_targets


def write_json(args: argparse.Namespace, device: str, rows: list[dict[str, Any]],
               targets: list[dict[str, Any]] | None) -> None:  # fmt: skip
    """The rows (and, once judged, the targets and the overall verdict) to ``args.json``."""
    keep = ("length", "batch", "tokens", "ratios", "forward_mfu")
    dump = [
        {**{k: r[k] for k in keep}, **{v: {k: x for k, x in r[v].items() if k != "out"} for v in VARIANTS}}
        for r in rows
    ]
    report = {
        "benchmark": "reward_gpu",
        "device": device,
        "model": args.model,
        "tiny": args.tiny,
        "dtype": args.dtype,
        "rows": dump,
        "targets": targets or [],
        # met only when every target is; a --tiny run's verdict says nothing about the GPU targets.
        # "partial": written after a case, before the targets were judged (a timeout stopped the run).
        "verdict": "partial" if targets is None else _verdict(all(t["verdict"] == "met" for t in targets)),
    }
    Path(args.json).write_text(json.dumps(report, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build the student, run every (length, batch size), print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["1.5b", "7b"], default="1.5b")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--tiny", action="store_true", help="tiny body and lengths: a smoke run, on any device")
    p.add_argument("--lengths", type=int, nargs="+", default=None, help=f"default {FULL_LENGTHS} "
                   f"(--tiny: {TINY_LENGTHS})")  # fmt: skip
    p.add_argument("--batch-sizes", "--batch_sizes", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=3, help="timed calls after one (memory-measuring) call")
    p.add_argument("--chunk-size", "--chunk_size", type=int, default=None, help="default: RLTRewardConfig's")
    p.add_argument("--attn", default="sdpa", help="attn_implementation of the student")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --tiny for a smoke run)")
    lengths = args.lengths or (TINY_LENGTHS if args.tiny else FULL_LENGTHS)

    from rlt.models import char_tokenizer
    from rlt.rewards import RLTReward, RLTRewardConfig

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    cfg = load_config(args.model, args.tiny, min_positions=max(lengths) + 64)
    model = build_student(cfg, args.device, dtype, args.attn)
    # The character tokenizer builds the prefix/suffix segments; explanation ids are random over
    # the model's whole vocabulary, so the tokenizer's own size does not matter here.
    tok = char_tokenizer()
    rcfg = RLTRewardConfig(student_system_prompt="")
    if args.chunk_size is not None:
        rcfg.chunk_size = args.chunk_size
    reward = RLTReward(model, tok, rcfg)
    device_name, peak_tflops = bf16_peak_tflops(args.device)
    n_params = sum(q.numel() for q in model.parameters())
    mem_src = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "peak RSS (VmHWM)"
    print(
        f"RLT reward on {device_name}: Qwen2.5-{args.model} shapes{' (--tiny body)' if args.tiny else ''}, "
        f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, vocab {cfg.vocab_size}, "
        f"{n_params / 1e6:.1f}M parameters, {args.dtype}, chunk {rcfg.chunk_size}, median of {args.repeats}; "
        f"memory: {mem_src}"
    )
    header = (
        f"{'T':>6} {'B':>3} | {'rlt tok/s':>10} {'ref tok/s':>10} {'fwd tok/s':>10} | "
        f"{'rlt +MB':>8} {'ref +MB':>8} {'fwd +MB':>8} | {'rlt MB':>8} {'ref MB':>8} | {'fwd MFU':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for length in lengths:
        for batch in args.batch_sizes:
            r = run_case(model, reward, tok.pad_token_id, args.device, length, batch, args.repeats)
            r["ratios"] = ratios(r)
            fwd = r["forward"]
            mfu = None
            if peak_tflops is not None and not fwd["oom"]:
                mfu = forward_flops(model, r["lengths"]) / fwd["time_s"] / (peak_tflops * 1e12)
            r["forward_mfu"] = mfu
            n = r["tokens"]
            print(
                f"{length:>6} {batch:>3} | {_tps(r['rlt'], n):>10} {_tps(r['reference'], n):>10} "
                f"{_tps(fwd, n):>10} | {_mb(r['rlt'], 'extra_mb'):>8} {_mb(r['reference'], 'extra_mb'):>8} "
                f"{_mb(fwd, 'extra_mb'):>8} | {_mb(r['rlt'], 'peak_mb'):>8} {_mb(r['reference'], 'peak_mb'):>8} "
                f"| {'n/a' if mfu is None else f'{mfu:.1%}':>7}",
                flush=True,
            )
            rows.append(r)
            if args.json:  # after every case, so that a timeout keeps the cases done
                write_json(args, device_name, rows, None)
    print(
        "+MB: peak above the resident model and inputs; MB: absolute peak; "
        "fwd MFU: bare forward's share of the dense bf16 peak"
        + (f" ({peak_tflops:g} TFLOPS)" if peak_tflops else " (n/a: CPU or GPU not in the table)")
    )
    print("ratios:")
    for r in rows:
        q = r["ratios"]
        win = "  (reference OOM, reward ran: a win)" if q["reference_oom_win"] else ""
        print(
            f"  T={r['length']} B={r['batch']}: speed vs reference {_x(q['speedup'], '.2f')}x | "
            f"memory vs reference {_x(q['mem_ratio'], '.3f')} (absolute peaks {_x(q['peak_ratio'], '.3f')}) | "
            f"reward / bare forward {_x(q['over_forward'], '.2f')}x | max|Δr| {_x(q['max_diff'], '.1e')}{win}"
        )
    targets = print_targets(rows, args.tiny)
    if args.json:
        write_json(args, device_name, rows, targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
