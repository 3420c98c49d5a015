"""Generated tokens per second: transformers ``generate`` vs vLLM, same model, prompts and lengths.

Both backends decode the same prompts greedily for exactly ``--new_tokens`` tokens (no
end-of-sequence stop: ``ignore_eos`` in vLLM, ``min_new_tokens`` in transformers), at each
batch size, one after the other in one run, so the printed ratio compares like with like on
a shared, noisy machine. The model is random (weights do not change the speed) at one of:

- ``--model cpu`` (default): a small Qwen2 with the real Qwen2.5 vocabulary, hidden 256,
  4 layers, head_dim 64 (vLLM's CPU attention supports 64, not 16), fp32;
- ``--model 1.5b``: Qwen2.5-1.5B's shapes from ``benchmarks/configs/qwen2.5-1.5b.json``, bf16
  (for a GPU).

Run in the vLLM environment (``bash scripts/setup.sh --vllm``)::

    VLLM_CPU_KVCACHE_SPACE=2 .venv-vllm/bin/python benchmarks/generation.py
    python benchmarks/generation.py --model 1.5b --batch-sizes 1 8 64 --new_tokens 512 --json gen.json  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = Path(__file__).resolve().parent / "configs"


def build_model(kind: str, out: Path, device: str) -> tuple[str, str]:
    """A random model saved to ``out`` (vLLM loads by path); returns ``(path, dtype)``."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from rlt.loading import save_tokenizer
    from rlt.qwen import VOCAB_SIZE, qwen25_tokenizer

    tok = qwen25_tokenizer()
    if kind == "cpu":
        cfg = Qwen2Config(vocab_size=VOCAB_SIZE, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                          tie_word_embeddings=True)  # fmt: skip
        dtype = "float32"
    else:
        cfg = Qwen2Config.from_dict(json.loads((CONFIGS / f"qwen2.5-{kind}.json").read_text()))
        dtype = "bfloat16"
    cfg.torch_dtype = dtype
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    del model
    return str(out), dtype


def prompts_for(batch: int) -> list[str]:
    """``batch`` distinct prompts of about 40 tokens (distinct: prefix caching must not help one side)."""
    return [
        f"Question {i}: add {i} and {3 * i + 1}, then multiply the sum by {i % 7 + 2}. Explain."
        for i in range(batch)
    ]


def hf_tokens_per_s(model, tok, prompts: list[str], new_tokens: int, device: str) -> float:
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)  # fmt: skip
    sync()
    seconds = time.perf_counter() - t0
    made = (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts)
    return made / seconds


def vllm_tokens_per_s(llm, prompts: list[str], new_tokens: int) -> float:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True)
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - t0
    return sum(len(o.outputs[0].token_ids) for o in outs) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["cpu", "1.5b", "7b"], default="cpu")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per cell (median), after one warm-up")
    p.add_argument("--json", default=None, help="also write the table here")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from transformers import AutoModelForCausalLM

    from rlt.loading import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        path, dtype = build_model(args.model, Path(tmp) / "model", device)
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
        from vllm import LLM

        t0 = time.perf_counter()
        llm = LLM(model=path, dtype=dtype, seed=0, max_model_len=512, enforce_eager=device == "cpu",
                  gpu_memory_utilization=0.5, enable_prefix_caching=False)  # fmt: skip
        start_s = time.perf_counter() - t0
        rows = []
        for batch in args.batch_sizes:
            prompts = prompts_for(batch)
            hf_tokens_per_s(model, tok, prompts, 4, device)  # warm-up
            vllm_tokens_per_s(llm, prompts, 4)
            hf = statistics.median(hf_tokens_per_s(model, tok, prompts, args.new_tokens, device)
                                   for _ in range(args.repeats))  # fmt: skip
            vl = statistics.median(
                vllm_tokens_per_s(llm, prompts, args.new_tokens) for _ in range(args.repeats)
            )
            rows.append({"batch": batch, "transformers_tok_s": hf, "vllm_tok_s": vl, "ratio": vl / hf})
            print(f"batch {batch:4d}: transformers {hf:9.1f} tok/s   vLLM {vl:9.1f} tok/s   vLLM / transformers {vl / hf:6.2f}x",
                  flush=True)  # fmt: skip
    import vllm

    head = {"model": args.model, "dtype": dtype, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "new_tokens": args.new_tokens, "vllm": vllm.__version__,
            "engine_start_s": start_s}  # fmt: skip
    print(f"engine start {start_s:.1f} s (not in the rates); {head}")
    if args.json:
        Path(args.json).write_text(json.dumps({**head, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
