"""The paper's pipeline at Qwen2.5-0.5B-Instruct's exact architecture, through the commands a GPU user runs.

Random weights at the released configuration (``rlt tiny-model --size qwen2.5-0.5b``: 24 layers,
hidden 896, 14 query / 2 KV heads, the tied 151,936-row head, the real tokenizer and chat
template) and the recipes of ``recipes/qwen2.5-0.5b/`` (the 7B recipes with what a CPU must
change), each stage a few steps on the official Stratos chats of a local stand-in for
Bespoke-Stratos-17k: warm-up, teacher RL with the RLT reward, a frozen student of the same
shape and vLLM colocated rollouts (the tied head through TRL's weight sync), collection with
vLLM, scoring, distillation, and SkyThought's evaluation with vLLM on a stand-in MATH-500.

Every stage runs in its own process from a working directory where the recipes' relative
paths (``runs/qwen2.5-0.5b/...``) resolve; its wall time and peak resident memory (the
process's ``ru_maxrss``; vLLM runs in-process, ``VLLM_ENABLE_V1_MULTIPROCESSING=0``) are
written to ``$RLT_REAL_SHAPES_REPORT`` (default: the test's tmp dir) and checked against the
memory plan of docs/training.md, "Memory at Qwen2.5-0.5B's shape". One 0.5B process runs at a
time; the machine needs ~16 GB free.

Run as a script (``python tests/test_real_shapes.py train-probe RESULT.json -- ARGS``), the
file is the train stage's wrapper: ``rlt.cli.main(["train", *ARGS])``, then, with the trainer
the CLI built, the engine's weights against the policy's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "qwen2.5-0.5b"
RUNS = "runs/qwen2.5-0.5b"
ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine in the stage's process: its memory is counted there
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache, not a fraction of the machine's memory
    "TOKENIZERS_PARALLELISM": "false",
}
GB = 1e9  # the plan counts in 10^9 bytes

# The plan's figure for each stage (docs/training.md, "Memory at Qwen2.5-0.5B's shape"), GB, and
# the slack the plan allows: a stage over plan + slack fails, so a change that grows a stage's
# memory shows up here.
PLAN_GB = {"model": 2.8, "warmup": 9.3, "train": 15.6, "collect": 5.9, "score": 5.1, "distill": 9.3,
           "eval": 5.9}  # fmt: skip
SLACK_GB = 1.5

STRATOS_ROWS = [
    ("What is 2+3?", "Adding 2 and 3 gives 5.", "$\\boxed{5}$"),
    ("What is 7 times 6?", "Seven sixes are 42.", "$\\boxed{42}$"),
    ("What is 10-4?", "Taking 4 from 10 leaves 6.", "$\\boxed{6}$"),
    ("What is half of 18?", "18 / 2 = 9.", "$\\boxed{9}$"),
]
MATH500_ROWS = [
    {"problem": "What is $1+1$?", "solution": "$\\boxed{2}$", "answer": "2", "subject": "Algebra", "level": 1,
     "unique_id": "test/algebra/1.json"},
    {"problem": "What is $3 \\cdot 3$?", "solution": "$\\boxed{9}$", "answer": "9", "subject": "Algebra",
     "level": 1, "unique_id": "test/algebra/2.json"},
]  # fmt: skip


def write_stand_ins(work: Path) -> tuple[str, str]:
    """Bespoke-Stratos-17k's ShareGPT rows (system + conversations, the official tags and padding)
    and MATH-500's columns, a few rows each."""
    from rlt.formats import STRATOS_SYSTEM_PROMPT

    stratos, math500 = work / "stratos.jsonl", work / "math500.jsonl"
    with open(stratos, "w") as f:
        for q, thought, sol in STRATOS_ROWS:
            reply = (f"<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n"
                     f"<|begin_of_solution|>\n\n{sol}\n\n<|end_of_solution|>")  # fmt: skip
            turns = [{"from": "user", "value": q}, {"from": "assistant", "value": reply}]
            f.write(json.dumps({"system": STRATOS_SYSTEM_PROMPT, "conversations": turns}) + "\n")
    math500.write_text("".join(json.dumps(r) + "\n" for r in MATH500_ROWS))
    return stratos.name, math500.name


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GB
    return float("inf")  # not Linux: no check


def wait_for_memory(name: str, patience: float = 600.0) -> None:
    """On a shared machine, start a stage only when its planned peak fits in what is free."""
    need = PLAN_GB[name] + SLACK_GB
    deadline = time.monotonic() + patience
    while available_gb() < need:
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: needs {need:.1f} GB available, the machine has {available_gb():.1f} GB")
        time.sleep(10)


def run_stage(work: Path, name: str, argv: list[str], report: dict, timeout: int = 900) -> str:
    """Run one stage in its own process; record its wall time and peak RSS; return its output."""
    wait_for_memory(name)
    log = work / f"{name}.log"
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, cwd=work, env={**os.environ, **ENV}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    text = log.read_text()
    peak = usage.ru_maxrss * 1024 / GB  # Linux: KiB
    report[name] = {"seconds": round(seconds, 1), "peak_rss_gb": round(peak, 2), "plan_gb": PLAN_GB[name],
                    "command": " ".join(argv[1:] if argv[0] == sys.executable else argv)}  # fmt: skip
    assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{text[-5000:]}"
    assert seconds < timeout, f"{name}: {seconds:.0f} s"
    return text


def rlt(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlt.cli", *args]


def test_released_configuration_is_qwen25_05b_instructs(tmp_path, capsys):
    """The configuration `rlt tiny-model --size qwen2.5-0.5b` writes: Qwen/Qwen2.5-0.5B-Instruct's
    config.json, 494,032,768 parameters (counted on the meta device: nothing allocated)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from rlt.cli import main as cli
    from rlt.models import released_config

    cfg = released_config("qwen2.5-0.5b")
    got = {k: getattr(cfg, k) for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                          "num_attention_heads", "num_key_value_heads", "vocab_size",
                                          "tie_word_embeddings", "max_position_embeddings", "rms_norm_eps",
                                          "bos_token_id", "eos_token_id", "max_window_layers", "hidden_act")}  # fmt: skip
    assert got == {"num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
                   "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
                   "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "bos_token_id": 151643,
                   "eos_token_id": 151645, "max_window_layers": 21, "hidden_act": "silu"}  # fmt: skip
    assert cfg.rope_parameters["rope_theta"] == 1e6 and not cfg.use_sliding_window
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == 494_032_768  # the tied head counted once
    assert cli(["tiny-model", "--size", "qwen2.5-0.5b", "--tokenizer", "char", "--out", str(tmp_path)]) == 2
    assert "it takes --tokenizer qwen2.5" in capsys.readouterr().err


@pytest.mark.vllm
@pytest.mark.slow
def test_pipeline_at_qwen25_05b_shape(tmp_path):
    work = tmp_path
    report: dict[str, dict] = {}
    report_path = Path(os.environ.get("RLT_REAL_SHAPES_REPORT", work / "report.json"))
    stratos, math500 = write_stand_ins(work)
    try:
        _pipeline(work, stratos, math500, report)
    finally:
        report_path.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
    over = {k: v["peak_rss_gb"] for k, v in report.items() if v["peak_rss_gb"] > PLAN_GB[k] + SLACK_GB}
    assert not over, f"stages over the plan (+{SLACK_GB} GB): {over}; plan {PLAN_GB}"


def _pipeline(work: Path, stratos: str, math500: str, report: dict) -> None:
    # the models: the released configuration, random weights; the student another draw
    run_stage(work, "model", ["bash", "-c", f"{sys.executable} -m rlt.cli tiny-model --size qwen2.5-0.5b "
              f"--out {RUNS}/init --seed 0 && {sys.executable} -m rlt.cli tiny-model --size qwen2.5-0.5b "
              f"--out {RUNS}/student --seed 1"], report)  # fmt: skip
    cfg = json.loads((work / RUNS / "init" / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["vocab_size"], cfg["tie_word_embeddings"]) == (
            24, 896, 4864, 14, 2, 151936, True)  # fmt: skip

    # 1. warm-up (the recipe's command; the data set's hub id replaced by the stand-in)
    run_stage(work, "warmup", rlt("warmup", "--config", str(RECIPES / "teacher_warmup.yaml"),
                                  "--dataset_name", stratos), report)  # fmt: skip
    state = json.loads((work / RUNS / "teacher_warmup" / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    # 2. teacher RL, RLT reward, frozen student of the same shape, vLLM colocated (fp32 rollouts)
    probe = work / "train_probe.json"
    run_stage(work, "train", [sys.executable, str(Path(__file__).resolve()), "train-probe", str(probe), "--",
                              "--config", str(RECIPES / "teacher_rlt.yaml"), "--dataset_name", stratos,
                              "--use_vllm", "true", "--vllm_mode", "colocate"], report)  # fmt: skip
    result = json.loads(probe.read_text())
    assert result["global_step"] == 2 and result["vllm_generate_calls"] >= 1
    assert result["transformers_generate_calls"] == 0  # every rollout from vLLM
    assert len(result["rewards"]) == 4 and all(isinstance(r, float) for r in result["rewards"])
    assert result["policy_head_is_embedding"]  # tied, in the trained policy
    assert result["engine_head_vs_policy_embedding"] == 0.0  # and in the engine after the sync
    assert result["engine_vs_policy_max_diff"] == 0.0 and result["compared"] >= 24 * 7
    assert result["max_weight_change"] > 0.0
    assert (work / RUNS / "teacher_rlt" / "model.safetensors").exists()

    # 3. collect with vLLM (the random teacher never closes its explanation: keep the unclosed ones)
    run_stage(work, "collect", rlt("collect", "--teacher", f"{RUNS}/teacher_rlt", "--dataset_name", stratos,
                                   "--out", f"{RUNS}/traces_raw.jsonl", "--max_new_tokens", "32", "--batch_size",
                                   "256", "--drop_unclosed", "false", "--export_sft", f"{RUNS}/traces.jsonl",
                                   "--backend", "vllm", "--vllm_dtype", "float32", "--enforce_eager", "true"),
              report)  # fmt: skip
    traces = [json.loads(x) for x in (work / RUNS / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == len(STRATOS_ROWS) and all(t["explanation"] for t in traces)

    # 4. score the traces with the frozen student (the RLT reward's components per trace). The raw
    # file, not the export: it has the `closed` column, so the unclosed explanations kept above get
    # the format penalty (the export has none, and `rlt score` reads a missing column as closed)
    run_stage(work, "score", rlt("score", "--student", f"{RUNS}/student", "--teacher", f"{RUNS}/teacher_rlt",
                                 "--input", f"{RUNS}/traces_raw.jsonl", "--output", f"{RUNS}/traces_scored.jsonl",
                                 "--dtype", "float32"), report)  # fmt: skip
    scored = [json.loads(x) for x in (work / RUNS / "traces_scored.jsonl").read_text().splitlines()]
    assert len(scored) == len(traces) and all(isinstance(s.get("reward"), float) for s in scored)
    assert all(s["penalty"] == -1.0 for s in scored if not s["closed"])

    # 5. distil the student on the traces (the recipe reads runs/qwen2.5-0.5b/traces.jsonl)
    run_stage(work, "distill", rlt("distill", "--config", str(RECIPES / "student_distill.yaml")), report)
    assert (work / RUNS / "student_distill" / "model.safetensors").exists()

    # 6. SkyThought's evaluation with vLLM on a MATH-500 stand-in
    run_stage(work, "eval", rlt("eval", "--harness", "skythought", "--model", f"{RUNS}/student_distill",
                                "--task", "math500", "--dataset_name", math500, "--max_new_tokens", "16",
                                "--backend", "vllm", "--vllm_dtype", "float32", "--enforce_eager", "true",
                                "--out", "eval/sky/math500", "--table", "eval/table"), report)  # fmt: skip
    results = json.loads((work / "eval" / "sky" / "math500" / "results.json").read_text())
    assert results["harness"] == "skythought" and results["num_questions"] == len(MATH500_ROWS)
    assert "| math500 | skythought" in (work / "eval" / "table.md").read_text()


# --------------------------------------------------------------------------- the train stage's wrapper


def _train_probe(result_path: str, argv: list[str]) -> int:
    """`rlt train ARGV` through the CLI; then the engine against the policy, tied head included."""
    import torch
    from vllm_train_probe import instrument

    import rlt.train
    from rlt.cli import main as cli

    built = {}
    build = rlt.train.build_trainer

    def keep(*args, **kwargs):
        trainer = build(*args, **kwargs)
        built["trainer"] = trainer
        built["counts"], built["rewards"] = instrument(trainer)
        model = trainer.accelerator.unwrap_model(trainer.model)
        built["before"] = {k: v.detach()[:4].clone() for k, v in model.state_dict().items()}  # a sliver
        return trainer

    rlt.train.build_trainer = keep
    rc = cli(["train", *argv])
    if rc != 0:
        return rc
    trainer, counts, rewards = built["trainer"], built["counts"], built["rewards"]
    trainer.vllm_generation.sync_weights()  # what the next step's rollout would do first
    policy = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.detach() for k, v in policy.state_dict().items()}
    engine = trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model
    worst, compared = 0.0, 0
    with torch.no_grad():
        for name, param in engine.named_parameters():
            if param.numel() == 0:
                raise AssertionError(f"vLLM dropped the weight of {name} (packed for a CPU kernel)")
            for fused, parts in (
                ("qkv_proj", ("q_proj", "k_proj", "v_proj")),
                ("gate_up_proj", ("gate_proj", "up_proj")),
            ):
                if f".{fused}." in name:
                    base, leaf = name.split(f".{fused}.")
                    ref = torch.cat([state[f"{base}.{p}.{leaf}"] for p in parts])
                    break
            else:
                ref = state.get(name)
            if ref is None:
                continue
            worst = max(worst, float((param - ref).abs().max()))
            compared += 1
        head = engine.lm_head.weight
        report = {
            "global_step": trainer.state.global_step,
            "vllm_generate_calls": counts["vllm"],
            "transformers_generate_calls": counts["transformers"],
            "rewards": rewards,
            "engine_vs_policy_max_diff": worst,
            "compared": compared,
            "policy_head_is_embedding": policy.lm_head.weight.data_ptr()
            == policy.model.embed_tokens.weight.data_ptr(),
            "engine_head_vs_policy_embedding": float((head - state["model.embed_tokens.weight"]).abs().max()),
            "max_weight_change": max(
                float((state[k][:4] - v).abs().max()) for k, v in built["before"].items()
            ),
        }
    Path(result_path).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "train-probe" or sys.argv[3] != "--":
        raise SystemExit(
            "usage: python tests/test_real_shapes.py train-probe RESULT.json -- RLT_TRAIN_ARGS..."
        )
    raise SystemExit(_train_probe(sys.argv[2], sys.argv[4:]))
