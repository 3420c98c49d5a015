"""Generation budgets that fit the model: refused when chosen, capped (one line) when defaulted."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from rlt.cli import main as cli
from rlt.errors import ConfigError
from rlt.loading import check_generation_budget, model_context
from rlt.models import save_tiny_model, tiny_config


def _run(argv: list[str]) -> int:
    try:
        return cli(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _without_weights(model_dir: Path) -> Path:
    """The model's config and tokenizer, its weights removed: what loads weights fails."""
    for weights in model_dir.glob("*.safetensors"):
        weights.unlink()
    return model_dir


@pytest.fixture(scope="module")
def context_4096(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("ctx4096"), "nano", max_position_embeddings=4096)


@pytest.fixture(scope="module")
def context_96(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("ctx96"), "nano", max_position_embeddings=96)


# --------------------------------------------------------------------------- the rule


def test_a_budget_that_fits_is_kept_silently(caplog):
    with caplog.at_level(logging.INFO, logger="rlt"):
        assert check_generation_budget(tiny_config(), 100, 3996, "max_new_tokens", explicit=True) == 3996
    assert not caplog.records


def test_a_chosen_budget_that_does_not_fit_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as err:
        check_generation_budget(tiny_config(), 50, 16384, "max_new_tokens", explicit=True)
    assert str(err.value) == (
        "max_new_tokens: 16384 new tokens do not fit: the longest prompt has 50 tokens and the model's "
        "context is 4096 (max_position_embeddings); set --max_new_tokens 4046 or less"
    )


def test_a_default_budget_that_does_not_fit_is_capped_with_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="rlt"):
        got = check_generation_budget(
            tiny_config(), 50, 16384, "max_new_tokens", explicit=False, command="rlt eval"
        )
    assert got == 4096 - 50
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("rlt eval: max_new_tokens capped at 4046 (default 16384)")


@pytest.mark.parametrize("explicit", [True, False])
def test_a_prompt_that_fills_the_context_is_always_refused(explicit):
    with pytest.raises(ConfigError, match=r"^max_completion_length: no room for any new token"):
        check_generation_budget(tiny_config(), 4096, 1, "max_completion_length", explicit=explicit)


def test_a_config_without_a_context_length_is_not_checked():
    class NoContext:
        pass

    assert check_generation_budget(NoContext(), 10**6, 10**6, "max_new_tokens", explicit=True) == 10**6


def test_the_context_is_read_from_the_config_alone(context_96, tmp_path):
    bare = _without_weights(Path(shutil.copytree(context_96, tmp_path / "bare")))
    assert model_context(str(bare)) == 96 and model_context(tiny_config(max_position_embeddings=7)) == 7


# --------------------------------------------------------------------------- the commands


def test_eval_of_a_chosen_budget_past_a_4096_context_is_refused_before_any_weights_load(
    context_4096, tmp_path, capsys
):
    # 16384 itself is the default (capped, below); any other value is the user's choice
    bare = _without_weights(Path(shutil.copytree(context_4096, tmp_path / "bare")))
    argv = ["eval", "--model", str(bare), "--task", "digits", "--limit", "2", "--max_new_tokens", "8192"]
    assert _run([*argv, "--out", str(tmp_path / "ev")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "rlt eval: error: max_new_tokens: 8192 new tokens do not fit: the longest prompt has"
    )
    assert "context is 4096 (max_position_embeddings); set --max_new_tokens" in line


def test_eval_of_the_default_16384_tokens_on_a_4096_model_is_capped_with_one_line(
    context_4096, tmp_path, capsys, monkeypatch
):
    from rlt import evaluate

    seen = {}

    def fake_work(model, tok, rows, **kwargs):  # no 4,000-token generation in a unit test
        seen.update(kwargs)
        return lambda batch: [
            {"index": i, "sample": s, "correct": False, "status": "no_answer"} for i, s in batch.items
        ]

    monkeypatch.setattr(evaluate, "answer_work", fake_work)
    argv = ["eval", "--model", str(context_4096), "--task", "digits", "--limit", "2", "--out", str(tmp_path)]
    assert _run(argv) == 0
    capped = [line for line in capsys.readouterr().err.splitlines() if "capped" in line]
    assert len(capped) == 1 and capped[0].startswith("rlt eval: max_new_tokens capped at ")
    longest = int(capped[0].split("the longest prompt has ")[1].split()[0])
    assert seen["max_new_tokens"] == 4096 - longest < 16384


def test_eval_on_a_short_context_generates_within_it(context_96, tmp_path, capsys):
    import json

    argv = ["eval", "--model", str(context_96), "--task", "digits", "--limit", "2", "--chat_format", "compact",
            "--system_prompt", "", "--out", str(tmp_path / "ev")]  # fmt: skip
    assert _run(argv) == 0
    err = capsys.readouterr().err
    assert "max_new_tokens capped at" in err and "max_length" not in err  # no transformers length warning
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["num_questions"] == 2


def test_collect_refuses_a_chosen_budget_and_caps_the_default(context_96, tmp_path, capsys):
    base = ["collect", "--teacher", str(context_96), "--task", "digits", "--task_size", "2",
            "--chat_format", "compact", "--teacher_system_prompt", ""]  # fmt: skip
    assert _run([*base, "--out", str(tmp_path / "a.jsonl"), "--max_new_tokens", "1000"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("rlt collect: error: max_new_tokens: 1000 new tokens do not fit")
    assert _run([*base, "--out", str(tmp_path / "b.jsonl")]) == 0
    capped = [line for line in capsys.readouterr().err.splitlines() if "capped" in line]
    assert len(capped) == 1 and capped[0].startswith("rlt collect: max_new_tokens capped at ")
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 2


def test_train_refuses_a_chosen_completion_length_before_any_weights_load(context_4096, tmp_path, capsys):
    bare = _without_weights(Path(shutil.copytree(context_4096, tmp_path / "bare")))
    argv = ["train", "--config", "recipes/tiny/student_rl.yaml", "--model_name_or_path", str(bare),
            "--output_dir", str(tmp_path / "rl"), "--task_size", "4", "--max_completion_length", "8000"]  # fmt: skip
    assert _run(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rlt train: error: max_completion_length: 8000 new tokens do not fit")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # GRPOConfig's own gradient_checkpointing default
def test_train_caps_the_default_completion_length(context_96, tmp_path, caplog):
    from datasets import Dataset

    from rlt.budgets import fit_train_budget
    from rlt.loading import load_tokenizer_for
    from rlt.train import RLTGRPOConfig

    args = RLTGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=2,
                         num_generations=2)  # fmt: skip
    assert args.max_completion_length == 512  # TRL's default, far past a 96-token context
    tok = load_tokenizer_for(str(context_96), "model_name_or_path")
    prompts = Dataset.from_dict({"prompt": ["x" * 30, "y" * 40]})["prompt"]
    with caplog.at_level(logging.INFO, logger="rlt"):
        assert fit_train_budget(str(context_96), tok, prompts, args) == 96 - 40
    assert [r.getMessage()[:45] for r in caplog.records] == ["rlt train: max_completion_length capped at 56"]
