"""One GRPO step of a teacher with a frozen student through `rlt train`, timed by phase.

Teacher and student are random-weight models at Qwen2.5-1.5B shapes built from
``benchmarks/configs/qwen2.5-1.5b.json`` (``--tiny``: a sliver of the body and the tiny
character vocabulary, for a CPU smoke run). The run goes through ``rlt.train.main`` (the
CLI's code path); the phases are timed by wrapping ``RLTGRPOTrainer`` methods:
generation (``_generate``), reward (``_calculate_rewards``: the RLT reward's student
forward and, where needed, the teacher's no-grad forward) and the rest of the training
step (log-probs, loss, backward, optimiser). Printed: each phase's time and the reward's
share of the step (target ≤ 20 %). ``--use_vllm`` passes TRL's vLLM generation through.

Usage::

    python benchmarks/train_step_gpu.py                     # 1.5B shapes on the GPU, bf16
    python benchmarks/train_step_gpu.py --device cpu --tiny # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

CONFIGS = Path(__file__).parent / "configs"


def padded_tokenizer(vocab_size: int) -> Any:
    """The tiny character tokenizer with filler tokens up to ``vocab_size`` (random models sample any id)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from rlt.formats import TAG_SETS
    from rlt.models import CHARACTERS, CHAT_TEMPLATE, IM_END, IM_START, PAD, UNK

    vocab = {t: i for i, t in enumerate([PAD, UNK, IM_START, IM_END])}
    for ch in CHARACTERS:
        vocab.setdefault(ch, len(vocab))
    tags = sorted({t for ts in TAG_SETS.values() for t in ts.all_tags})
    for t in tags:
        vocab.setdefault(t, len(vocab))
    for i in range(len(vocab), vocab_size):
        vocab[f"<t{i}>"] = i
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IM_END, pad_token=PAD, unk_token=UNK,
                                  additional_special_tokens=[IM_START])  # fmt: skip
    tok.add_tokens(tags)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_models(out: Path, tiny: bool, dtype: torch.dtype) -> tuple[str, str]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlt.models import char_tokenizer, save_tokenizer

    raw = json.loads((CONFIGS / "qwen2.5-1.5b.json").read_text())
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "torch_dtype")}
    if tiny:
        tok = char_tokenizer()
        fields.update(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    else:
        tok = padded_tokenizer(fields["vocab_size"])
    cfg = Qwen2Config(**fields)
    cfg.pad_token_id, cfg.eos_token_id = tok.pad_token_id, tok.eos_token_id
    paths = []
    for name, seed in (("teacher", 0), ("student", 1)):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg).to(dtype)
        model.save_pretrained(out / name)
        save_tokenizer(tok, out / name)
        paths.append(str(out / name))
        del model
    return paths[0], paths[1]


def timed(cls: Any, name: str, times: dict[str, list[float]]) -> None:
    original = getattr(cls, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = original(self, *args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times[name].append(time.perf_counter() - t0)
        return out

    setattr(cls, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--batch", type=int, default=16, help="completions per step")
    p.add_argument("--num_generations", type=int, default=8)
    p.add_argument("--max_completion_length", type=int, default=1024)
    p.add_argument("--steps", type=int, default=2, help="steps; the first is a warm-up and is not reported")
    p.add_argument("--use_vllm", action="store_true")
    args = p.parse_args(argv)
    cpu = args.device == "cpu"
    if args.tiny:
        args.batch, args.num_generations, args.max_completion_length = 8, 4, 32
    dtype = torch.float32 if cpu else torch.bfloat16
    from rlt import train

    times: dict[str, list[float]] = defaultdict(list)
    for name in ("_generate", "_calculate_rewards", "training_step"):
        timed(train.RLTGRPOTrainer, name, times)
    with tempfile.TemporaryDirectory() as tmp:
        teacher, student = build_models(Path(tmp), args.tiny, dtype)
        argv_train = [
            "--model_name_or_path", teacher, "--student_model_name_or_path", student, "--task", "digits",
            "--task_size", "64", "--policy", "teacher", "--reward_funcs", "rlt",
            "--output_dir", str(Path(tmp) / "run"), "--max_steps", str(args.steps),
            "--per_device_train_batch_size", str(args.batch), "--num_generations", str(args.num_generations),
            "--max_completion_length", str(args.max_completion_length), "--temperature", "0.7",
            "--learning_rate", "1e-6", "--beta", "0.0", "--loss_type", "grpo", "--logging_steps", "1",
            "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
            "--use_cpu", "true" if cpu else "false", "--bf16", "false" if cpu else "true",
            "--dtype", "float32" if cpu else "bfloat16", "--student_dtype", "float32" if cpu else "bfloat16",
            "--gradient_checkpointing", "false" if args.tiny else "true",
        ]  # fmt: skip
        if args.use_vllm:
            argv_train += ["--use_vllm", "true", "--vllm_mode", "colocate"]
        train.main(argv_train)
    step = times["training_step"][-1]
    gen = times["_generate"][-1]
    rew = times["_calculate_rewards"][-1]
    device = "CPU" if cpu else torch.cuda.get_device_name()
    print(f"one GRPO step on {device} ({'tiny' if args.tiny else 'Qwen2.5-1.5B'} teacher and student, "
          f"{args.batch} completions, up to {args.max_completion_length} tokens), last of {args.steps} steps:")  # fmt: skip
    print(f"  generation     {gen:8.3f} s  ({gen / step:6.1%})")
    print(f"  reward         {rew:8.3f} s  ({rew / step:6.1%})")
    print(f"  policy update  {step - gen - rew:8.3f} s  ({(step - gen - rew) / step:6.1%})")
    print(f"  step           {step:8.3f} s")
    print(f"target: reward <= 20% of the step: {rew / step:.1%} {'met' if rew / step <= 0.2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
