"""rlt.vllm_engine's checks, without an engine (every lane): each refusal is one line naming its field.

The real engine runs in tests/test_vllm.py (the .venv-vllm lane).
"""

from __future__ import annotations

import types

import pytest

import rlt.vllm_engine as ve
from rlt.errors import ConfigError
from rlt.vllm_engine import VLLMArguments, check_engine, check_training


@pytest.fixture()
def cpu_vllm(monkeypatch):
    """As if vLLM's CPU build were installed (no engine is ever started here)."""
    monkeypatch.setattr(ve, "vllm_installed", lambda: True)
    monkeypatch.setattr(ve, "on_cpu_platform", lambda: True)


def _model(tmp_path, head_dim: int = 64, context: int = 2048) -> str:
    from transformers import Qwen2Config

    heads = 2
    Qwen2Config(hidden_size=head_dim * heads, num_attention_heads=heads, num_key_value_heads=1,
                intermediate_size=64, num_hidden_layers=1, vocab_size=64,
                max_position_embeddings=context).save_pretrained(tmp_path)  # fmt: skip
    return str(tmp_path)


def test_missing_vllm_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(ve, "vllm_installed", lambda: False)
    with pytest.raises(ConfigError) as err:
        check_engine(_model(tmp_path), VLLMArguments(), 100)
    assert str(err.value).startswith(
        "backend: vllm is not installed; install it with `bash scripts/setup.sh --vllm`"
    )
    args = types.SimpleNamespace(use_vllm=True)
    with pytest.raises(ConfigError, match=r"^use_vllm: vllm is not installed; .* or use --use_vllm false$"):
        check_training(args, _model(tmp_path))


def test_max_model_len_defaults_to_what_the_data_needs(cpu_vllm, tmp_path):
    model = _model(tmp_path, context=2048)
    assert check_engine(model, VLLMArguments(), 300) == 300
    assert check_engine(model, VLLMArguments(max_model_len=512), 300) == 512
    with pytest.raises(ConfigError, match=r"^max_model_len: 200 is shorter than .* \(300 tokens\)"):
        check_engine(model, VLLMArguments(max_model_len=200), 300)
    with pytest.raises(ConfigError, match=r"^max_model_len: 4096 exceeds the model's context \(2048"):
        check_engine(model, VLLMArguments(max_model_len=4096), 300)
    # Prompt + budget against the model's context is the command's budget check (rlt.budgets), run first.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (VLLMArguments(gpu_memory_utilization=0.0), "gpu_memory_utilization: must be in (0, 1], got 0.0"),
        (VLLMArguments(vllm_dtype="fp8"), "vllm_dtype: unknown dtype 'fp8'"),
        (VLLMArguments(tensor_parallel_size=0), "tensor_parallel_size: must be >= 1, got 0"),
        (
            VLLMArguments(tensor_parallel_size=4),
            "tensor_parallel_size: 4 needs GPUs; vLLM on the CPU runs with 1",
        ),
    ],
)
def test_impossible_settings_are_refused_by_name(cpu_vllm, tmp_path, args, message):
    with pytest.raises(ConfigError) as err:
        check_engine(_model(tmp_path), args, 100)
    assert str(err.value).startswith(message)


def test_cpu_head_sizes_are_checked(cpu_vllm, tmp_path):
    with pytest.raises(ConfigError, match=r"^model: head_dim 16 is not supported by vLLM's CPU attention"):
        check_engine(_model(tmp_path, head_dim=16), VLLMArguments(), 100)
    assert check_engine(_model(tmp_path, head_dim=32), VLLMArguments(), 100) == 100


def _grpo(**kw):
    base = {"use_vllm": True, "vllm_mode": "colocate", "vllm_enable_sleep_mode": False,
            "max_completion_length": 100, "vllm_max_model_length": None}  # fmt: skip
    return types.SimpleNamespace(**{**base, **kw})


def test_training_settings_the_cpu_build_cannot_run(cpu_vllm, tmp_path):
    model = _model(tmp_path)
    check_training(_grpo(use_vllm=False, vllm_mode="server"), model)  # not using vLLM: nothing to check
    check_training(_grpo(), model, max_prompt_tokens=200)
    with pytest.raises(ConfigError, match=r"^vllm_mode: 'server' syncs weights over NCCL"):
        check_training(_grpo(vllm_mode="server"), model)
    with pytest.raises(ConfigError, match=r"^vllm_enable_sleep_mode: vLLM's sleep mode needs a GPU"):
        check_training(_grpo(vllm_enable_sleep_mode=True), model)
    with pytest.raises(ConfigError, match=r"^model_name_or_path: head_dim 16 is not supported"):
        check_training(_grpo(), _model(tmp_path / "h16", head_dim=16))
    with pytest.raises(ConfigError, match=r"^vllm_max_model_length: the longest prompt \(200 tokens\) plus"):
        check_training(_grpo(vllm_max_model_length=256), model, max_prompt_tokens=200)
    check_training(_grpo(vllm_max_model_length=2100), model, max_prompt_tokens=200)  # fits the engine


def test_unknown_engine_dtype_for_training_is_refused():
    with pytest.raises(ConfigError, match=r"^rlt_vllm_dtype: unknown dtype 'half'"):
        with ve.trl_colocated_engine("half"):
            pass


def test_colocated_engine_gets_the_dtype_and_is_restored(monkeypatch):
    import trl.generation.vllm_generation as trl_vllm

    seen = []
    monkeypatch.setattr(trl_vllm, "LLM", lambda *a, **kw: seen.append(kw) or "engine", raising=False)
    original = trl_vllm.LLM
    monkeypatch.setattr(ve, "vllm_installed", lambda: False)  # no CPU-build patch to apply here
    with ve.trl_colocated_engine("float32"):
        assert trl_vllm.LLM(model="m") == "engine"
        trl_vllm.LLM(model="m", dtype="bfloat16")  # a dtype TRL passes itself wins
    assert trl_vllm.LLM is original
    assert [kw.get("dtype") for kw in seen] == ["float32", "bfloat16"]
