"""Resident memory of one vLLM engine on vLLM's CPU build, with and without rlt's kept linear weights.

Usage: python scripts/vllm_cpu_memory.py MODEL_DIR [--keep]

Prints ``/proc/self/status``'s VmRSS, VmHWM, RssAnon and RssFile (GB = 1e9 bytes) before the
engine, after ``vllm.LLM(...)`` (fp32, eager, in-process, 1 GiB of KV cache) and after one
generation. ``--keep`` builds the engine inside :func:`rlt.vllm_engine.cpu_linear_weights_kept`,
as ``rlt train --use_vllm`` does (no packed copies of the linear weights); without it, as
``rlt collect``/``rlt eval`` build theirs. docs/training.md, "Memory at Qwen2.5-0.5B's shape".
"""

from __future__ import annotations

import contextlib
import os
import sys


def status() -> dict[str, float]:
    got = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                got[key] = round(int(value.split()[0]) * 1024 / 1e9, 2)
    return got


def main() -> int:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    from rlt.vllm_engine import cpu_linear_weights_kept

    model, keep = sys.argv[1], "--keep" in sys.argv[2:]
    print("before engine", status(), flush=True)
    with cpu_linear_weights_kept() if keep else contextlib.nullcontext():
        llm = LLM(model=model, dtype="float32", enforce_eager=True, max_model_len=512, seed=0)
    print("engine built", "(linear weights kept)" if keep else "(as vLLM builds it)", status(), flush=True)
    llm.generate(["hello"], SamplingParams(max_tokens=8), use_tqdm=False)
    print("after generating", status(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
