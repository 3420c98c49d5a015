"""Fixtures of the reward tests."""

import pytest

from rlt.models import tiny_model


@pytest.fixture(scope="module")
def models():
    """A tiny student (seed 1) and teacher (seed 0) sharing the character tokenizer."""
    student, tok = tiny_model("tiny", seed=1)
    teacher, _ = tiny_model("tiny", seed=0)
    return student, teacher, tok
