"""Recipe (YAML) faults: a one-line error naming the field or the file, before any model loads."""

import pytest

from rlt.cli import main as cli
from rlt.errors import ConfigError
from rlt.sft import parse_sft_args

# a model first: without one, that is the first error (tests/test_cli.py)
BASE = "model_name_or_path: unused\ntask: digits\nuse_cpu: true\nbf16: false\n"


def recipe(tmp_path, extra: str, base: str = BASE) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(base + extra)
    return str(path)


def test_yaml_float_for_an_int_field_is_refused(tmp_path):
    # argparse types only string defaults: without rlt.config's check, max_steps would stay 1.5
    with pytest.raises(ConfigError, match=r"max_steps: expected int, got 1.5"):
        parse_sft_args(["--config", recipe(tmp_path, "max_steps: 1.5\n")])


def test_yaml_text_for_a_number_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_sft_args(["--config", recipe(tmp_path, "max_steps: many\n")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max_steps" in err and "invalid int value: 'many'" in err  # argparse types string defaults


def test_yaml_list_for_a_flag_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"use_cpu: expected bool, got \[1, 2\]"):
        parse_sft_args(
            [
                "--config",
                recipe(
                    tmp_path,
                    "use_cpu: [1, 2]\n",
                    base="model_name_or_path: unused\ntask: digits\nbf16: false\n",
                ),
            ]
        )


def test_recipe_file_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert cli(["warmup", "--config", str(missing)]) == 2
    assert "nope.yaml" in capsys.readouterr().err
