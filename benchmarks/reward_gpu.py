"""GPU benchmark of the RLT reward at Qwen2.5 shapes (random weights, built from committed configs).

Side by side in one run, for each explanation + solution length and batch size:

- ``rlt``:       ``RLTReward.score_ids`` (body forward + chunked LM head on the needed
                 positions), the teacher's log-probs given, as the trainer passes them;
- ``reference``: the naive way: full ``[B, T, V]`` logits, per-row fp32 ``log_softmax``, gather;
- ``forward``:   the floor, one plain student forward producing the logits.

Printed: tokens/s, peak GPU memory (``torch.cuda.max_memory_allocated``, reset per
variant), the ratios, and for the bare forward the achieved fraction of the GPU's dense
bf16 matmul peak (FLOPs ≈ 2 · parameters · tokens + the attention term). A variant that
runs out of memory is reported as OOM (the reference running out where the reward does
not counts as a win). ``--device cpu --tiny`` shrinks the models and lengths so the script
runs anywhere in seconds (the test suite's smoke run); its numbers say nothing about GPUs.

Usage::

    python benchmarks/reward_gpu.py --model 1.5b --lengths 2048 8192 16384 --batch-sizes 1 4
    python benchmarks/reward_gpu.py --model 7b --lengths 8192 --batch-sizes 1
    python benchmarks/reward_gpu.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

CONFIGS = Path(__file__).parent / "configs"
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def load_config(name: str, tiny: bool) -> Any:
    from transformers import Qwen2Config

    raw = json.loads((CONFIGS / f"qwen2.5-{name}.json").read_text())
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "torch_dtype")}
    if tiny:  # same vocabulary, a sliver of the body: the head's share is what the reward changes
        fields.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2)  # fmt: skip
    return Qwen2Config(**fields)


def build_inputs(reward: Any, vocab: int, length: int, batch: int) -> tuple[list, list, list, list]:
    """Random questions/solutions/explanation ids whose student sequences have ``length`` tokens."""
    g = torch.Generator().manual_seed(0)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 +-*/=()"
    qs, ss, expl = [], [], []
    for b in range(batch):
        q = "".join(
            letters[i] for i in torch.randint(len(letters), (max(1, length // 16),), generator=g).tolist()
        )
        s = "".join(letters[i] for i in torch.randint(26, (max(1, length // 16),), generator=g).tolist())
        overhead = len(reward.segments(q, s).build([])[0])
        qs.append(q)
        ss.append(s)
        expl.append(torch.randint(vocab, (max(1, length - overhead - b),), generator=g).tolist())
    teacher_lp = [-5.0 * torch.rand(len(e), generator=g) for e in expl]
    return qs, ss, expl, teacher_lp


def measure(fn: Any, device: str, repeats: int) -> dict[str, Any]:
    """Median time and peak memory of ``fn``; ``{"oom": True}`` when it runs out of memory."""
    cuda = device.startswith("cuda")
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out = fn()
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        return {"time_s": statistics.median(times), "peak_mb": peak, "out": out, "oom": False}
    except torch.OutOfMemoryError:
        return {"oom": True}


def run_case(model: Any, tok: Any, reward: Any, device: str, length: int, batch: int, repeats: int) -> dict:
    vocab = model.config.vocab_size
    qs, ss, expl, tlp = build_inputs(reward, vocab, length, batch)
    built = [reward.segments(q, s).build(e) for q, s, e in zip(qs, ss, expl)]
    width = max(len(ids) for ids, _, _ in built)
    input_ids = torch.full((batch, width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for b, (ids, _, _) in enumerate(built):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    tau = reward.config.student_temperature

    def rlt() -> list[float]:
        return [c["reward"] for c in reward.score_ids(qs, ss, expl, [True] * batch, tlp)]

    def reference() -> list[float]:
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            out = []
            for b, (ids, e_sl, a_sl) in enumerate(built):
                lp = torch.log_softmax(logits[b].float() / tau, dim=-1)
                tgt = torch.tensor(ids, device=device)
                ls_e = lp[e_sl.start - 1 : e_sl.stop - 1].gather(1, tgt[e_sl][:, None]).squeeze(1)
                ls_a = lp[a_sl.start - 1 : a_sl.stop - 1].gather(1, tgt[a_sl][:, None]).squeeze(1)
                k = tlp[b].to(device) - ls_e
                out.append(
                    float(ls_a.double().mean() + 0.01 * ls_a.min() - 3.0 * k.double().mean() - 0.03 * k.max())
                )
                del lp
            return out

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=mask).logits.sum()

    res = {name: measure(fn, device, repeats) for name, fn in (("rlt", rlt), ("reference", reference),
                                                               ("forward", forward))}  # fmt: skip
    res["tokens"] = int(mask.sum())
    return res


def flops_fraction(model: Any, tokens: int, seconds: float, length: int) -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        return None
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    attn = (
        2 * cfg.num_hidden_layers * tokens * length * cfg.hidden_size
    )  # QK^T and AV, causal ≈ half of 4·L·T·d
    return (2 * params * tokens + attn) / seconds / (peak * 1e12)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["1.5b", "7b"], default="1.5b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--tiny", action="store_true", help="tiny body and lengths: a smoke run, on any device")
    p.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 16384])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.tiny:
        args.lengths = (
            [min(x, 256) for x in args.lengths][:2] if args.lengths != [2048, 8192, 16384] else [128, 256]
        )
    from transformers import Qwen2ForCausalLM

    from rlt.models import char_tokenizer
    from rlt.reward import RLTReward, RLTRewardConfig

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    cfg = load_config(args.model, args.tiny)
    model = Qwen2ForCausalLM(cfg).to(device=args.device, dtype=dtype).eval().requires_grad_(False)
    tok = char_tokenizer()
    reward = RLTReward(model, tok, RLTRewardConfig(student_system_prompt=""))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"RLT reward on {device_name}: Qwen2.5-{args.model} shapes{' (tiny body)' if args.tiny else ''}, "
          f"vocab {cfg.vocab_size}, {args.dtype}, median of {args.repeats}")  # fmt: skip
    print(f"{'T':>6} {'B':>3} | {'rlt tok/s':>10} {'ref tok/s':>10} {'fwd tok/s':>10} | {'rlt MB':>8} {'ref MB':>8} "
          f"{'fwd MB':>8} | {'speedup':>8} {'mem':>6} {'/fwd':>6} | {'fwd MFU':>7} | max|Δr|")  # fmt: skip
    rows = []
    for length in args.lengths:
        for batch in args.batch_sizes:
            r = run_case(model, tok, reward, args.device, length, batch, args.repeats)
            n = r["tokens"]

            def tps(v: dict, n: int = n) -> str:
                return "OOM" if v["oom"] else f"{n / v['time_s']:.0f}"

            def mb(v: dict) -> str:
                return "OOM" if v["oom"] else f"{v['peak_mb']:.0f}"

            ok = not (r["rlt"]["oom"] or r["reference"]["oom"])
            speed = r["reference"]["time_s"] / r["rlt"]["time_s"] if ok else float("nan")
            mem = r["rlt"]["peak_mb"] / r["reference"]["peak_mb"] if ok else float("nan")
            over = (
                r["rlt"]["time_s"] / r["forward"]["time_s"]
                if not (r["rlt"]["oom"] or r["forward"]["oom"])
                else float("nan")
            )
            diff = (
                max(abs(a - b) for a, b in zip(r["rlt"]["out"], r["reference"]["out"]))
                if ok
                else float("nan")
            )
            mfu = (
                flops_fraction(model, n, r["forward"]["time_s"], length) if not r["forward"]["oom"] else None
            )
            win = (
                " (reference OOM, reward ran: a win)" if r["reference"]["oom"] and not r["rlt"]["oom"] else ""
            )
            print(f"{length:>6} {batch:>3} | {tps(r['rlt']):>10} {tps(r['reference']):>10} {tps(r['forward']):>10} | "
                  f"{mb(r['rlt']):>8} {mb(r['reference']):>8} {mb(r['forward']):>8} | {speed:>7.2f}x {mem:>6.3f} "
                  f"{over:>6.2f} | {'n/a' if mfu is None else f'{mfu:.1%}':>7} | {diff:.1e}{win}")  # fmt: skip
            rows.append({"length": length, "batch": batch, "speed": speed, "mem": mem, "over": over})
    at8k = [x for x in rows if x["length"] == 8192]
    if at8k and not args.tiny:
        print(f"target >= 3x reference speed at 8k: {min(x['speed'] for x in at8k):.2f}x")
        print(f"target <= 1/4 reference peak memory at 8k: {max(x['mem'] for x in at8k):.3f}")
    print(f"target <= 1.2x bare forward: worst {max(x['over'] for x in rows):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
