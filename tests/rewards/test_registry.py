"""The reward registry of `rlt train`: names, the student-format parser, correctness and format."""

from __future__ import annotations

import pytest

from rlt.errors import ConfigError
from rlt.formats import extract_solution, get_tags
from rlt.rewards import (
    check_reward_names,
    correctness_reward,
    format_reward,
    has_student_format,
    make_reward_funcs,
)

B = get_tags("bespoke")
R1 = get_tags("r1")


def student(think: str, answer: str, tags=B) -> str:
    return f"{tags.think_open}{think}{tags.think_close}\n\n{tags.solution_open}{answer}{tags.solution_close}"


def test_extract_solution_reads_the_answer_after_the_thinking():
    assert extract_solution(student("3+4=7", " 7 "), B) == "7"
    assert extract_solution(student("x", "42", R1), R1) == "42"
    # a solution tag quoted inside the thinking does not count
    quoted = f"{B.think_open}maybe {B.solution_open}1{B.solution_close}{B.think_close}\n\n{B.solution_open}2{B.solution_close}"
    assert extract_solution(quoted, B) == "2"
    assert extract_solution(f"{B.think_open}x{B.think_close}{B.solution_open}7", B) is None  # unclosed
    assert extract_solution("just 7", B) is None


def test_has_student_format():
    assert has_student_format(student("a", "b"), B)
    assert not has_student_format(
        f"{B.think_open}a{B.solution_open}b{B.solution_close}", B
    )  # thinking never closed
    assert not has_student_format(f"{B.think_open}a{B.think_close} b", B)  # no solution
    assert has_student_format(
        f"a{B.think_close}{B.solution_open}b{B.solution_close}", B, prompt=f"x{B.think_open}"
    )
    assert format_reward(B)(prompts=["p", "p"], completions=[student("a", "b"), "nope"]) == [1.0, 0.0]


def test_correctness_digits_uses_the_task_verifier():
    f = correctness_reward(B, task="digits")
    q = "start 7; +5; *3; -4 (mod 10)"  # 7+5=2; 2*3=6; 6-4=2
    logged = {}
    out = f(
        prompts=["p"] * 3,
        completions=[student("steps", "2"), student("steps", "3"), "2"],
        question=[q] * 3,
        solution=["2"] * 3,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [1.0, 0.0, 0.0]
    assert logged["student/accuracy"] == pytest.approx(1 / 3)
    assert logged["student/answer_found_frac"] == pytest.approx(2 / 3)


def test_correctness_countdown_gives_format_credit():
    f = correctness_reward(B, task="countdown")
    q = "Using the numbers [3, 4, 5], create an expression that equals 17. Use each number exactly once"
    good, wrong = student("t", "<answer>3*4+5</answer>"), student("t", "<answer>3+4+5</answer>")
    answers = [good, wrong, student("t", "12"), student("t", "<answer>5+4*3</answer>"),
               student("t", "<answer>3*4+5+0</answer>"), student("t", "<answer>12+5</answer>"), "<answer>3*4+5</answer>"]  # fmt: skip
    out = f(completions=answers, question=[q] * 7, solution=["<answer>3*4+5</answer>"] * 7)
    # Right in another order: 1. A number not given (0, 12) or a wrong value: the format credit 0.1.
    # No answer tags ("12") or no solution tags: 0.
    assert out == [1.0, 0.1, 0.0, 1.0, 0.1, 0.1, 0.0]


def test_correctness_math_verify_on_other_data():
    f = correctness_reward(B, task=None)
    answers = ["\\frac{1}{2}", "0.5", "3", "\\frac{2}{4}"]
    logged = {}
    out = f(
        completions=[*(student("t", a) for a in answers), "1/2 without tags"],
        question=["q"] * 5,
        solution=[f"{B.solution_open}$\\frac{{1}}{{2}}${B.solution_close}"] * 5,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    # equal values in other forms count; a wrong value and an untagged answer do not
    assert out == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert logged == {"student/answer_found_frac": 4 / 5, "student/accuracy": 3 / 5}


def test_reward_names_are_checked():
    with pytest.raises(ConfigError, match=r"reward_funcs: unknown reward 'nope'"):
        check_reward_names(["correctness", "nope"])
    with pytest.raises(ConfigError, match="listed twice"):
        check_reward_names(["format", "format"])
    with pytest.raises(ConfigError, match="'rlt' needs"):
        make_reward_funcs(["rlt"], B)
    funcs = make_reward_funcs(["correctness", "format"], B, task="digits")
    assert [f.__name__ for f in funcs] == ["correctness", "format"]


def test_dotted_path_rewards_are_imported_and_checked(tmp_path, monkeypatch):
    (tmp_path / "registry_probe.py").write_text(
        "def short(completions, **kw):\n    return [1.0 for _ in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    check_reward_names(["correctness", "registry_probe:short"])
    funcs = make_reward_funcs(["format", "registry_probe:short"], B)
    assert funcs[1].__name__ == "short" and funcs[1](completions=["a", "b"]) == [1.0, 1.0]
    for bad, why in (("nope", "unknown reward 'nope'"), ("registry_probe:missing", "cannot import"),
                     ("no_such_module:f", "cannot import")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            check_reward_names([bad])


def test_the_architecture_docs_example_runs_through_rlt_train(tiny_model_dir, tmp_path, monkeypatch):
    """docs/architecture.md's user-defined reward, exactly as written there, in a student RL run."""
    import json
    import re
    from pathlib import Path

    from rlt.cli import main as cli

    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    code = re.search(r"```python\n# my_rewards.py\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "my_rewards.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the command names the recipe from the repo root
    command = re.search(r"rlt train (--config .*?)\n```", doc, re.S).group(1).replace("\\\n", " ").split()
    assert command[-5:] == ["my_rewards:brevity", "--reward_weights", "1.0", "0.2", "0.1"]
    out = tmp_path / "srl"
    argv = ["train", *command, "--model_name_or_path", tiny_model_dir, "--output_dir", str(out),
            "--max_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "2",
            "--max_completion_length", "8", "--chat_format", "compact"]  # fmt: skip
    assert cli(argv) == 0
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    step = next(h for h in logs if "loss" in h)
    assert 0.0 < step["rewards/brevity/mean"] <= 1.0
