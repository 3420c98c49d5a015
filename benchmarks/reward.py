"""CPU benchmark of the RLT reward: time and peak memory against a naive reference.

For each vocabulary size and sequence length, a tiny random Qwen2 student (hidden 64,
2 layers by default) with that vocabulary scores ``--batch`` student sequences of
``T`` tokens each (prefix ≈ T/8, solution ≈ T/16, the rest explanation; the teacher's
log-probs are given, as a trainer that already has them would pass, so both sides
do the same student-only work). Four variants, each in its own fresh subprocess:

- ``rlt``:       ``RLTReward.score_ids`` (body forward + chunked LM head on the needed
                 positions: logsumexp + gather per chunk, fp32).
- ``reference``: the naive way: ``model(...).logits`` ([B, T, V]), then per row a
                 full-vocabulary ``log_softmax`` in fp32 and a gather, then the same
                 reductions written out by hand.
- ``forward``:   the floor: ONE plain student forward ``model(input_ids)`` producing the
                 full logits. Any log-prob computation needs at least this much work
                 (the LM head over every position we need), so ``rlt / forward`` is the
                 overhead of the reward over the unavoidable forward.
- ``body``:      the model body alone (``model.model(...)``, no LM head), reported for
                 reference: it shows how much of the cost is the head.

Time: median wall-clock of ``--repeats`` calls after one warm-up call.
Peak memory: Linux peak RSS (VmHWM) of the subprocess during the *first* call, minus
its RSS just before that call (the model and inputs already resident). VmHWM is reset
before the call by writing ``5`` to ``/proc/self/clear_refs``, so earlier transient
peaks (model construction) do not hide the variant's own. This counts every byte the
process touches (torch's CPU allocations go through malloc, which ``tracemalloc``
does not see); freed-and-reused heap memory within the call is counted once, as the
OS sees it.

``--in-process`` runs the variants in the parent process instead (no subprocess start-up,
for smoke tests); its memory numbers are less isolated (heap memory freed by one variant
can be reused by the next without raising RSS).

Usage::

    python benchmarks/reward.py                 # 32k and 152k vocab × 512, 2048, 4096 tokens
    python benchmarks/reward.py --quick         # seconds: small sizes (the test suite's smoke run)
    python benchmarks/reward.py --vocab 152064 --seq 2048 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/ is not a package: the shared inputs, reference and forwards live next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    bare_forward,
    body_forward,
    make_batch,
    reference_rewards,
    reset_peak_rss,
    reward_rewards,
    rss_kb,
)

VARIANTS = ("rlt", "reference", "forward", "body")
TARGET_POINT = (152064, 2048)  # where the speed and memory targets are judged


# --------------------------------------------------------------------------- child process


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlt.models import char_tokenizer
    from rlt.rewards import RLTReward, RLTRewardConfig

    torch.manual_seed(0)
    vocab, seq, batch, variant = spec["vocab"], spec["seq"], spec["batch"], spec["variant"]
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=spec["hidden"],
        intermediate_size=spec["hidden"] * 2,
        num_hidden_layers=spec["layers"],
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max(8192, seq * 2),
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(cfg).eval().requires_grad_(False)
    tok = char_tokenizer()
    config = RLTRewardConfig(student_system_prompt="", chunk_size=spec["chunk_size"])
    reward = RLTReward(model, tok, config)

    b = make_batch(reward, vocab, seq, batch, tok.pad_token_id)
    tau = config.student_temperature

    def run_rlt() -> list[float]:
        return reward_rewards(reward, b)

    def run_reference() -> list[float]:
        return reference_rewards(model, b, tau)

    def run_forward() -> None:
        bare_forward(model, b)

    def run_body() -> None:
        body_forward(model, b)

    fn = {"rlt": run_rlt, "reference": run_reference, "forward": run_forward, "body": run_body}[variant]
    reset_ok = reset_peak_rss()
    before = rss_kb("VmRSS")
    rewards = fn()
    peak = rss_kb("VmHWM")
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {
        "time_s": statistics.median(times),
        "peak_mb": max(0, peak - before) / 1024 if reset_ok else float("nan"),
        "rewards": rewards,
        "tokens": b.tokens,
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- parent


def measure(spec: dict[str, Any], in_process: bool = False) -> dict[str, Any]:
    if in_process:
        return child(spec)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    print(
        f"RLT reward benchmark (CPU, {os.cpu_count()} cores): tiny Qwen2 hidden {args.hidden}, "
        f"{args.layers} layers, batch {args.batch}, chunk {args.chunk_size}, median of {args.repeats}"
    )
    header = (
        f"{'vocab':>7} {'T':>5} | {'rlt ms':>8} {'ref ms':>8} {'fwd ms':>8} {'body ms':>8} | "
        f"{'rlt MB':>7} {'ref MB':>7} {'fwd MB':>7} | {'speedup':>7} {'mem':>6} {'/fwd':>5} {'/body':>6} | "
        f"{'max|Δr|':>8}"
    )
    print(header)
    print("-" * len(header))
    for vocab in args.vocab:
        for seq in args.seq:
            res = {}
            for variant in VARIANTS:
                spec = {
                    "vocab": vocab,
                    "seq": seq,
                    "batch": args.batch,
                    "variant": variant,
                    "hidden": args.hidden,
                    "layers": args.layers,
                    "repeats": args.repeats,
                    "chunk_size": args.chunk_size,
                }
                res[variant] = measure(spec, args.in_process)
            diff = max(abs(a - b) for a, b in zip(res["rlt"]["rewards"], res["reference"]["rewards"]))
            row = {
                "vocab": vocab,
                "seq": seq,
                **{f"{v}_s": res[v]["time_s"] for v in VARIANTS},
                **{f"{v}_mb": res[v]["peak_mb"] for v in VARIANTS},
                "speedup": res["reference"]["time_s"] / res["rlt"]["time_s"],
                "mem_ratio": res["rlt"]["peak_mb"] / max(res["reference"]["peak_mb"], 1e-9),
                "vs_forward": res["rlt"]["time_s"] / res["forward"]["time_s"],
                "vs_body": res["rlt"]["time_s"] / res["body"]["time_s"],
                "max_diff": diff,
            }
            rows.append(row)
            print(
                f"{vocab:>7} {seq:>5} | {row['rlt_s'] * 1e3:>8.1f} {row['reference_s'] * 1e3:>8.1f} "
                f"{row['forward_s'] * 1e3:>8.1f} {row['body_s'] * 1e3:>8.1f} | {row['rlt_mb']:>7.0f} "
                f"{row['reference_mb']:>7.0f} {row['forward_mb']:>7.0f} | {row['speedup']:>6.2f}x "
                f"{row['mem_ratio']:>6.3f} {row['vs_forward']:>5.2f} {row['vs_body']:>6.2f} | {diff:>8.1e}",
                flush=True,
            )
    print(
        "speedup = reference time / rlt time; mem = rlt peak / reference peak; "
        "/fwd, /body = rlt time / bare forward (logits) / body-only time"
    )
    _targets(rows)
    return rows


def _targets(rows: list[dict[str, Any]]) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    at = [r for r in rows if (r["vocab"], r["seq"]) == TARGET_POINT]
    print("targets:")
    if at:
        r = at[0]
        print(
            f"  >= 3x faster than reference at 152k vocab, 2k tokens: {r['speedup']:.2f}x  {verdict(r['speedup'] >= 3)}"
        )
        print(
            f"  <= 1/4 reference peak memory at 152k vocab, 2k tokens: {r['mem_ratio']:.3f}  {verdict(r['mem_ratio'] <= 0.25)}"
        )
        print(
            f"  <= 1.3x bare forward at 152k vocab, 2k tokens: {r['vs_forward']:.2f}x  {verdict(r['vs_forward'] <= 1.3)}"
        )
    else:
        print("  (152k vocab × 2048 tokens not measured in this run: speed/memory targets not judged)")
    worst_fwd = max(r["vs_forward"] for r in rows)
    print(f"  <= 1.3x bare forward at every size: worst {worst_fwd:.2f}x  {verdict(worst_fwd <= 1.3)}")
    worst = max(r["max_diff"] for r in rows)
    print(f"  rewards equal to the reference within 1e-5 (fp32): worst {worst:.1e}  {verdict(worst <= 1e-5)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 152064])
    parser.add_argument("--seq", type=int, nargs="+", default=[512, 2048, 4096])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--chunk-size", "--chunk_size", type=int, default=None, help="default: RLTRewardConfig's"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument(
        "--in-process",
        "--in_process",
        action="store_true",
        help="run the variants in this process (fast start; peak memory less isolated): for smoke tests",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.chunk_size is None:
        from rlt.rewards import RLTRewardConfig

        args.chunk_size = RLTRewardConfig().chunk_size
    if args.quick:
        args.vocab, args.seq, args.repeats, args.batch = [500], [64, 128], 1, 2
    rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
