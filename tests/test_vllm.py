"""rlt's vLLM paths against a real engine (vLLM's CPU build in the .venv-vllm lane).

One engine serves the whole module (its start is most of the cost): in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), fp32, on a random Qwen2 model with the real Qwen2.5
vocabulary and head_dim 64 (``rlt tiny-model --size tiny64``; vLLM's CPU attention has no
head_dim 16). The weights are redrawn at std 0.1 so greedy decoding does not repeat one
token: agreement between the backends is then a statement about real, varied sequences.
The command-line and training runs start their own engines in subprocesses, as a user's do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.vllm

ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
TESTS = Path(__file__).resolve().parent


def _varied_model(out: Path, seed: int) -> str:
    from rlt.loading import save_tokenizer
    from rlt.models import tiny_model

    model, tok = tiny_model("tiny64", seed=seed, tokenizer="qwen2.5")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.1, generator=gen)
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    return str(out)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> str:
    return _varied_model(tmp_path_factory.mktemp("vllm_teacher"), seed=0)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> str:
    return _varied_model(tmp_path_factory.mktemp("vllm_student"), seed=1)


@pytest.fixture(scope="module")
def engine(teacher_dir):
    from rlt.vllm_engine import VLLMArguments, make_engine

    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    args = VLLMArguments(vllm_dtype="float32", enforce_eager=True)
    # Processed log-probs: those of the distribution sampled from (after temperature), as TRL asks for.
    llm = make_engine(teacher_dir, 0, args, 1024, logprobs_mode="processed_logprobs")
    yield llm
    del llm
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    from rlt.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(teacher_dir, dtype=torch.float32)
    return model.eval(), tok


def _rows(n: int = 4, seed: int = 0) -> list[dict]:
    from rlt.tasks import DigitsTask

    return DigitsTask().generate(n, seed=seed)


def _collect(teacher, tok, out, llm=None, **kwargs):
    from rlt.collect import collect_traces
    from rlt.jsonl import read_records

    collect_traces(teacher, tok, _rows(), out, llm=llm, progress=False, **kwargs)
    return read_records(out)


# --------------------------------------------------------------------------- collection


def test_greedy_collection_gives_the_transformers_ids(engine, teacher, tmp_path):
    """fp32 greedy: every completion of vLLM equals transformers' token for token (64 tokens each)."""
    model, tok = teacher
    kw = {"temperature": 0.0, "max_new_tokens": 64, "num_traces": 1}
    ours = _collect(None, tok, tmp_path / "v.jsonl", llm=engine, **kw)
    ref = _collect(model, tok, tmp_path / "t.jsonl", **kw)
    assert [r["id"] for r in ours] == [r["id"] for r in ref] == ["0-0", "1-0", "2-0", "3-0"]
    assert [r["completion"] for r in ours] == [r["completion"] for r in ref]
    lengths = [len(tok(r["completion"], add_special_tokens=False)["input_ids"]) for r in ours]
    assert min(lengths) >= 32  # real sequences, not an immediate end of turn
    assert len({r["completion"] for r in ours}) == 4  # four questions, four different completions


def test_sampled_copies_differ_and_the_seed_redraws_them(engine, teacher, tmp_path):
    _, tok = teacher
    kw = {"temperature": 1.0, "max_new_tokens": 24, "num_traces": 3, "seed": 5}
    first = _collect(None, tok, tmp_path / "a.jsonl", llm=engine, **kw)
    again = _collect(None, tok, tmp_path / "b.jsonl", llm=engine, batch_size=2, **kw)
    other = _collect(None, tok, tmp_path / "c.jsonl", llm=engine, **{**kw, "seed": 6})
    assert len(first) == 12
    for q in range(4):
        copies = [r["completion"] for r in first if r["id"].startswith(f"{q}-")]
        assert len(set(copies)) == 3  # the num_traces copies of a prompt are not one trace thrice
    assert again == first  # same seed, other batching: the same traces (vLLM seeds each request)
    assert [r["completion"] for r in other] != [r["completion"] for r in first]


def test_collection_killed_midway_and_resumed_equals_an_uninterrupted_one(engine, teacher, tmp_path):
    from rlt.jsonl import read_records

    _, tok = teacher
    kw = {"temperature": 1.0, "max_new_tokens": 16, "num_traces": 2, "seed": 9, "batch_size": 3}
    whole = _collect(None, tok, tmp_path / "whole.jsonl", llm=engine, **kw)

    class DiesAfterTwoBatches:
        calls = 0

        def generate(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 2:
                raise KeyboardInterrupt  # as a kill between two durable writes
            return engine.generate(*args, **kwargs)

    part = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _collect(None, tok, part, llm=DiesAfterTwoBatches(), **kw)
    assert len(read_records(part)) == 6  # two batches of three landed
    resumed = _collect(None, tok, part, llm=engine, **kw)
    assert resumed == whole


def test_cli_collect_with_vllm_equals_the_transformers_backend(teacher_dir, tmp_path):
    """`rlt collect --backend vllm` as a user runs it (its own engine, settings from flags)."""
    from rlt.cli import main as cli
    from rlt.jsonl import read_records

    common = ["collect", "--teacher", teacher_dir, "--task", "digits", "--task_size", "3",
              "--temperature", "0", "--max_new_tokens", "24"]  # fmt: skip
    proc = _rlt(*common, "--backend", "vllm", "--vllm_dtype", "float32", "--enforce_eager", "true",
                "--out", str(tmp_path / "v.jsonl"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "vllm: starting an engine" in proc.stderr and "backend vllm" in proc.stderr
    assert "max_model_len 3" in proc.stderr  # sized from the longest prompt + max_new_tokens, not 4096
    assert cli([*common, "--backend", "transformers", "--out", str(tmp_path / "t.jsonl")]) == 0
    ours, ref = read_records(tmp_path / "v.jsonl"), read_records(tmp_path / "t.jsonl")
    assert [(r["id"], r["completion"]) for r in ours] == [(r["id"], r["completion"]) for r in ref]


def _rlt(*argv: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV}
    return subprocess.run(
        [sys.executable, "-m", "rlt.cli", *argv], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_two_processes_with_their_own_engines_write_what_one_engine_writes(
    engine, teacher, teacher_dir, tmp_path
):
    """`accelerate launch` of 2 CPU processes, each with its own vLLM engine on its own core:
    the merged traces equal one engine's (every trace has its own seed)."""
    from rlt.collect import collect_traces
    from rlt.data import DataArguments, load_rows
    from rlt.jsonl import read_records

    _, tok = teacher
    port = subprocess.run([sys.executable, "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                           "print(s.getsockname()[1])"], capture_output=True, text=True).stdout.strip()  # fmt: skip
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    out = tmp_path / "two.jsonl"
    argv = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
            "-m", "rlt.cli", "collect", "--teacher", teacher_dir, "--task", "digits", "--task_size", "4",
            "--num_traces", "2", "--batch_size", "2", "--temperature", "1.0", "--max_new_tokens", "16",
            "--seed", "4", "--backend", "vllm", "--vllm_dtype", "float32", "--enforce_eager", "true",
            "--out", str(out)]  # fmt: skip
    env = {**os.environ, **ENV, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.count("vllm: starting an engine") == 2  # one engine per process
    assert "collect: merged 8 traces" in proc.stderr
    rows = load_rows(DataArguments(task="digits", task_size=4)).to_list()
    collect_traces(None, tok, rows, tmp_path / "one.jsonl", llm=engine, num_traces=2, temperature=1.0,
                   max_new_tokens=16, seed=4, progress=False)  # fmt: skip
    two, one = read_records(out), read_records(tmp_path / "one.jsonl")
    assert (
        [r["id"] for r in two] == [r["id"] for r in one] == [f"{q}-{k}" for q in range(4) for k in range(2)]
    )
    assert [r["completion"] for r in two] == [r["completion"] for r in one]


# --------------------------------------------------------------------------- evaluation


def test_eval_with_vllm_gives_the_transformers_accuracy(engine, teacher):
    """Greedy: the same completions, so the same answers and accuracy (a checker that depends on them)."""
    from rlt.evaluate import EvalTask, evaluate_model

    model, tok = teacher
    rows = _rows(6, seed=3)
    # The random model never writes the solution tags: the fallback reads the last line, and
    # "correct" is a property of that text, so equal accuracies need equal completions.
    task = EvalTask("parity", rows, lambda row, answer: (len(answer) % 2 == 0, "checked"), fallback=True)
    kw = {"num_samples": 1, "max_new_tokens": 32, "progress": False}
    ours = evaluate_model(None, tok, rows, task, llm=engine, **kw)
    ref = evaluate_model(model, tok, rows, task, **kw)
    assert ours == ref
    assert 0.0 < ref["accuracy"] < 1.0  # the checker tells these completions apart


def test_cli_eval_with_vllm_equals_the_transformers_backend(teacher_dir, tmp_path):
    from rlt.cli import main as cli

    common = ["eval", "--model", teacher_dir, "--task", "digits", "--limit", "4", "--max_new_tokens", "16",
              "--chat_format", "compact"]  # fmt: skip
    proc = _rlt(*common, "--backend", "vllm", "--vllm_dtype", "float32", "--enforce_eager", "true",
                "--out", str(tmp_path / "v"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cli([*common, "--backend", "transformers", "--out", str(tmp_path / "t")]) == 0
    samples = [
        [json.loads(line)["completion"] for line in (tmp_path / d / "samples.jsonl").read_text().splitlines()]
        for d in ("v", "t")
    ]
    assert samples[0] == samples[1]
    assert json.loads((tmp_path / "v" / "results.json").read_text()) == json.loads(
        (tmp_path / "t" / "results.json").read_text()
    )


# --------------------------------------------------------------------------- the reward


def test_reward_of_vllm_samples_equals_direct_scoring(engine, teacher, student_dir):
    """The reward of vLLM-sampled ids, with vLLM's own log-probs as ℓ_T, equals scoring them directly.

    ``canonical`` student tokenisation: completions whose last explanation token merged with
    the close tag are re-tokenised, and their ℓ_T must come from the teacher (the sampled
    log-probs no longer fit); the others use the sampler's ℓ_T as TRL hands it over.
    """
    from vllm import SamplingParams

    from rlt.formats import get_tags, teacher_rl_prompt
    from rlt.loading import load_model_and_tokenizer
    from rlt.rewards import RLTReward, RLTRewardConfig

    model, tok = teacher
    student, stok = load_model_and_tokenizer(student_dir, dtype=torch.float32)
    tags = get_tags("bespoke")
    rows = _rows(4, seed=11)
    prompts = [teacher_rl_prompt(tok, r["question"], r["solution"], tags, None) for r in rows]
    params = [SamplingParams(temperature=0.7, max_tokens=20, seed=i, logprobs=0) for i in range(len(rows))]
    outs = engine.generate(prompts, params, use_tqdm=False)
    sampled = [list(o.outputs[0].token_ids) for o in outs]
    logps = [
        torch.tensor([lp[t].logprob for lp, t in zip(o.outputs[0].logprobs, ids)])
        for o, ids in zip(outs, sampled)
    ]
    # Two completions end their explanation on a token that merges with the close tag.
    close = tok(f".{tags.explanation_close}", add_special_tokens=False)["input_ids"]
    ids = [s + close if i % 2 else s for i, s in enumerate(sampled)]
    given = [torch.cat([lp, torch.zeros(len(x) - len(lp))]) for lp, x in zip(logps, ids)]
    cfg = RLTRewardConfig(teacher_temperature=0.7, student_tokenization="canonical")
    via_trainer = RLTReward(student, stok, cfg, teacher=model, teacher_tokenizer=tok)
    via_trainer.pending_teacher_logprobs = given
    got = via_trainer(prompts=prompts, completion_ids=ids, question=[r["question"] for r in rows],
                      solution=[r["solution"] for r in rows])  # fmt: skip
    direct = RLTReward(student, stok, cfg, teacher=model, teacher_tokenizer=tok)
    want = direct(prompts=prompts, completion_ids=ids, question=[r["question"] for r in rows],
                  solution=[r["solution"] for r in rows])  # fmt: skip
    assert got == pytest.approx(want, abs=1e-4)
    kl = [c["kl_mean"] for c in via_trainer.last_components]
    assert all(k is not None for k in kl)  # the KL term was computed, from vLLM's ℓ_T or the teacher's


def test_vllm_logprobs_are_the_teachers(engine, teacher):
    """vLLM's processed log-probs of its samples = the teacher's log-softmax at τ (fp32, 1e-4)."""
    from vllm import SamplingParams

    from rlt.formats import get_tags, teacher_rl_prompt

    model, tok = teacher
    row = _rows(1, seed=2)[0]
    prompt = teacher_rl_prompt(tok, row["question"], row["solution"], get_tags("bespoke"), None)
    out = engine.generate([prompt], [SamplingParams(temperature=0.7, max_tokens=16, seed=3, logprobs=0)],
                          use_tqdm=False)[0].outputs[0]  # fmt: skip
    ids = list(out.token_ids)
    theirs = torch.tensor([lp[t].logprob for lp, t in zip(out.logprobs, ids)])
    p_ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    full = torch.cat([p_ids, torch.tensor([ids])], dim=1)
    with torch.no_grad():
        logits = model(full).logits[0, p_ids.shape[1] - 1 : -1].float() / 0.7
    ours = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
    assert torch.allclose(theirs, ours, atol=1e-4), (theirs - ours).abs().max()


def test_the_cpu_build_drops_linear_weights_without_rlts_workaround(engine):
    """Why rlt.vllm_engine.cpu_linear_weights_kept exists: an engine built without it (this
    module's) keeps no ``weight`` in its linear layers, so TRL's ``load_weights`` cannot sync.
    Fails once vLLM keeps them: then the workaround can go."""
    model = engine.llm_engine.model_executor.driver_worker.model_runner.model
    emptied = [n for n, p in model.named_parameters() if n.endswith("proj.weight") and p.numel() == 0]
    assert emptied and all(hasattr(m, "cpu_linear") for n, m in model.named_modules() if n.endswith("o_proj"))


# --------------------------------------------------------------------------- validation


def test_unsupported_head_size_is_one_line_before_any_model_loads(tiny_model_dir, tmp_path):
    from rlt.cli import main as cli

    proc = _rlt("collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "2",
                "--backend", "vllm", "--out", str(tmp_path / "x.jsonl"), timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "rlt collect: error: model: head_dim 16 is not supported by vLLM's CPU attention (supported: "
        "[32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512]); use --backend transformers, or a model such "
        "as `rlt tiny-model --size tiny64`"
    )
    assert "starting an engine" not in proc.stderr
    assert cli(["eval", "--model", tiny_model_dir, "--task", "digits", "--backend", "vllm"]) == 2


def test_short_max_model_len_and_tensor_parallel_on_cpu_are_refused(teacher_dir, capsys):
    from rlt.cli import main as cli

    base = ["eval", "--model", teacher_dir, "--task", "digits", "--limit", "2", "--backend", "vllm"]
    assert cli([*base, "--max_new_tokens", "64", "--max_model_len", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "rlt eval: error: max_model_len: 100 is shorter than the longest prompt plus max_new_tokens ("
    )
    assert cli([*base, "--max_new_tokens", "64", "--tensor_parallel_size", "2"]) == 2
    # One line naming the field (the GPU layout check of rlt.sharding or the engine's own CPU check).
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].startswith("rlt eval: error: tensor_parallel_size: ")
    )
    assert cli([*base, "--max_new_tokens", "64", "--vllm_dtype", "float8"]) == 2
    assert "vllm_dtype: unknown dtype 'float8'" in capsys.readouterr().err


# --------------------------------------------------------------------------- training


def _train_probe(tmp_path: Path, teacher_dir: str, student_dir: str, *extra: str) -> dict:
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, str(TESTS / "vllm_train_probe.py"), teacher_dir, student_dir, str(tmp_path / "run"),
         str(out), *extra],
        capture_output=True, text=True, env={**os.environ, **ENV}, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_teacher_trains_on_vllm_rollouts_and_vllm_follows_the_weights(teacher_dir, student_dir, tmp_path):
    """`rlt train --use_vllm true` (colocate): three GRPO steps with the RLT reward, every rollout from
    vLLM, and after each step the engine holds the policy's weights and decodes as the policy does."""
    probe = _train_probe(tmp_path, teacher_dir, student_dir)
    assert probe["global_step"] == 3
    assert probe["vllm_generate_calls"] >= 3 and probe["transformers_generate_calls"] == 0
    assert probe["rlt_reward_calls"] >= 3 and all(isinstance(x, float) for x in probe["rewards"])
    assert probe["max_weight_change"] > 1e-4  # the policy moved
    assert probe["engine_vs_policy_max_diff"] == 0.0  # and the engine's weights moved with it
    assert probe["engine_greedy"] == probe["policy_greedy"]
    assert probe["engine_greedy"] != probe["initial_greedy"]


def test_lora_teacher_trains_with_vllm_and_syncs_merged_weights(teacher_dir, student_dir, tmp_path):
    probe = _train_probe(tmp_path, teacher_dir, student_dir, "--use_peft", "true", "--lora_r", "8",
                         "--lora_alpha", "16", "--learning_rate", "5e-2", "--sync_ref_model", "false")  # fmt: skip
    assert probe["global_step"] == 3 and probe["vllm_generate_calls"] >= 3
    assert probe["peft"] is True
    assert probe["engine_vs_policy_max_diff"] < 1e-5  # merged adapters, as TRL pushes them
    assert probe["engine_greedy"] == probe["policy_greedy"]


def test_generation_benchmark_prints_its_ratio():
    proc = subprocess.run(
        [sys.executable, str(TESTS.parent / "benchmarks" / "generation.py"), "--batch-sizes", "1", "4",
         "--new_tokens", "8", "--repeats", "1"],
        capture_output=True, text=True, env={**os.environ, **ENV}, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("batch")]
    assert len(rows) == 2 and all("vLLM / transformers" in r and r.endswith("x") for r in rows)
