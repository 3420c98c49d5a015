"""Train the teacher with vLLM rollouts for three steps and report what happened (tests/test_vllm.py).

Usage: python tests/vllm_train_probe.py TEACHER STUDENT OUTPUT_DIR RESULT.json [--field value ...]

A script, not a test: TRL's colocated engine is built inside ``GRPOTrainer.__init__`` in the
calling process, and vLLM needs the ``if __name__ == "__main__"`` idiom. It builds the trainer
as ``rlt train`` does (``parse_train_args`` + ``build_trainer`` on recipes/tiny/teacher_rlt.yaml),
counts the calls to vLLM's and transformers' generation, trains, then compares the engine's
weights and greedy decoding with the policy's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def engine_model(trainer):
    return trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model


def policy_state(trainer) -> dict[str, torch.Tensor]:
    """The policy's weights under vLLM's names (adapters merged into a copy, as TRL pushes them)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def engine_vs_policy(trainer) -> float:
    """Largest |engine − policy| over the engine's parameters that have a policy counterpart."""
    policy = policy_state(trainer)
    worst = 0.0
    compared = 0
    for name, param in engine_model(trainer).named_parameters():
        if param.numel() == 0:
            raise AssertionError(f"vLLM dropped the weight of {name} (packed for a CPU kernel)")
        if name.endswith("qkv_proj.weight"):
            base = name[: -len("qkv_proj.weight")]
            ref = torch.cat([policy[f"{base}{p}_proj.weight"] for p in "qkv"])
        elif name.endswith("qkv_proj.bias"):
            base = name[: -len("qkv_proj.bias")]
            ref = torch.cat([policy[f"{base}{p}_proj.bias"] for p in "qkv"])
        elif name.endswith("gate_up_proj.weight"):
            base = name[: -len("gate_up_proj.weight")]
            ref = torch.cat([policy[f"{base}gate_proj.weight"], policy[f"{base}up_proj.weight"]])
        else:
            ref = policy.get(name)
        if ref is None:
            continue
        diff = float((param.detach().float() - ref.float()).abs().max())
        if diff > 0:
            print(f"engine vs policy: {name} differs by {diff:.3g}", file=sys.stderr)
        worst = max(worst, diff)
        compared += 1
    assert compared >= 10, f"only {compared} engine parameters matched the policy's names"
    return worst


def greedy(trainer, prompt: str, engine: bool) -> list[int]:
    from vllm import SamplingParams

    tok = trainer.processing_class
    if engine:
        out = trainer.vllm_generation.llm.generate([prompt], SamplingParams(temperature=0, max_tokens=24),
                                                   use_tqdm=False)  # fmt: skip
        return list(out[0].outputs[0].token_ids)
    model = trainer.accelerator.unwrap_model(trainer.model)
    enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
    was = model.training
    model.eval()
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    model.train(was)
    return ids[0, enc["input_ids"].shape[1] :].tolist()


def instrument(trainer: Any) -> tuple[dict[str, int], list[float]]:
    """Count the trainer's vLLM and transformers generate calls and the RLT reward's calls; keep its rewards.

    Returns the live counts (``vllm``, ``transformers``, ``reward``) and the list of every reward
    value, both filled in as the trainer runs.
    """
    counts = {"vllm": 0, "transformers": 0, "reward": 0}
    rewards: list[float] = []
    gen = trainer.vllm_generation.generate

    def counted_generate(*args: Any, **kwargs: Any) -> Any:
        counts["vllm"] += 1
        return gen(*args, **kwargs)

    trainer.vllm_generation.generate = counted_generate
    model = trainer.accelerator.unwrap_model(trainer.model)
    hf_generate = model.generate

    def counted_hf(*args: Any, **kwargs: Any) -> Any:
        counts["transformers"] += 1
        return hf_generate(*args, **kwargs)

    model.generate = counted_hf
    reward = trainer.rlt_reward
    call = reward.__call__

    class Counted:
        __name__ = "rlt"

        def __call__(self, *args: Any, **kwargs: Any) -> list[float]:
            counts["reward"] += 1
            values = call(*args, **kwargs)
            rewards.extend(values)
            return values

    trainer.reward_funcs = [Counted() if f is reward else f for f in trainer.reward_funcs]
    return counts, rewards


def main() -> int:
    from rlt.train import build_trainer, parse_train_args

    teacher, student, out_dir, result, *extra = sys.argv[1:]
    argv = [
        "--config", str(ROOT / "recipes/tiny/teacher_rlt.yaml"),
        "--model_name_or_path", teacher, "--student_model_name_or_path", student, "--output_dir", out_dir,
        "--chat_format", "stratos", "--task_size", "16", "--max_steps", "3", "--learning_rate", "1e-2",
        "--max_completion_length", "24", "--use_vllm", "true", "--vllm_mode", "colocate",
        "--vllm_gpu_memory_utilization", "0.3", "--vllm_max_model_length", "1024",
        "--sync_ref_model", "false", "--rlt_log_completions_steps", "0", "--rlt_vllm_dtype", "float32", *extra,
    ]  # fmt: skip
    trainer = build_trainer(*parse_train_args(argv))
    counts, rewards = instrument(trainer)
    prompt = trainer.train_dataset[0]["prompt"]
    initial = greedy(trainer, prompt, engine=True)
    before = policy_state(trainer)
    trainer.train()
    counts_after_train = dict(counts)
    trainer.vllm_generation.sync_weights()  # what the next step's rollout would do first
    after = policy_state(trainer)
    report = {
        "global_step": trainer.state.global_step,
        "vllm_generate_calls": counts_after_train["vllm"],
        "transformers_generate_calls": counts_after_train["transformers"],
        "rlt_reward_calls": counts_after_train["reward"],
        "rewards": rewards,
        "max_weight_change": max(float((after[k] - before[k]).abs().max()) for k in before),
        "engine_vs_policy_max_diff": engine_vs_policy(trainer),
        "initial_greedy": initial,
        "engine_greedy": greedy(trainer, prompt, engine=True),
        "policy_greedy": greedy(trainer, prompt, engine=False),
        "peft": hasattr(trainer.accelerator.unwrap_model(trainer.model), "merge_and_unload"),
    }
    Path(result).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
