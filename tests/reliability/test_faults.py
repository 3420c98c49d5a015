"""Bad inputs and faults not covered elsewhere; docs/reliability.md lists every case and its test."""

import errno
import json
import logging
import math
import os
import random

import pytest
import torch

from rlt.cli import main as cli
from rlt.data import DataArguments, load_rows
from rlt.errors import ConfigError, DataError, RLTError
from rlt.formats import explanation_token_ids, extract_explanation, get_tags
from rlt.jsonl import JsonlAppender, read_records
from rlt.models import char_tokenizer, tiny_model
from rlt.rewards import RLTReward, RLTRewardConfig
from rlt.train import build_dataset

Q, S = "start 7; +5; *3 (mod 10)", "6"


# --------------------------------------------------------------------------- data


def test_non_utf8_bytes_name_the_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"question": "q\xff\xfe", "solution": "1"}\n')
    with pytest.raises(DataError, match="bad.jsonl"):
        load_rows(DataArguments(dataset_name=str(path)))


def test_jsonl_with_one_broken_line_names_the_file(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "q", "solution": "1"}\n{"question": "q2", "solu\n')
    with pytest.raises(DataError, match="broken.jsonl"):
        load_rows(DataArguments(dataset_name=str(path)))


def test_duplicate_ids_in_score_input_are_refused(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    rows = [{"id": "a", "question": Q, "solution": S, "explanation": "x"}] * 2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = cli(
        ["score", "--student", tiny_model_dir, "--input", str(path), "--output", str(tmp_path / "o.jsonl")]
    )
    assert code == 2
    assert "duplicate id 'a'" in capsys.readouterr().err


def test_long_questions_are_dropped_with_a_count_not_cut(caplog):
    _, tok = tiny_model()
    args = DataArguments(task="digits", task_size=6, num_ops=2)
    long_args = DataArguments(task="digits", task_size=6, num_ops=12)
    cfg = RLTRewardConfig(teacher_system_prompt="")
    short = build_dataset("teacher", args, tok, cfg, max_prompt_length=None)
    limit = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in short["prompt"])
    with caplog.at_level(logging.INFO, logger="rlt"), pytest.raises(DataError, match="no rows after"):
        build_dataset("teacher", long_args, tok, cfg, max_prompt_length=limit)
    assert "dropped 6 of 6 rows longer than max_prompt_length" in caplog.text
    kept = build_dataset("teacher", args, tok, cfg, max_prompt_length=limit)
    assert kept["solution"] == short["solution"]  # kept rows are whole, the solution intact


# --------------------------------------------------------------------------- models


def test_model_path_that_does_not_exist(capsys):
    assert cli(["eval", "--model", "/nonexistent/model", "--task", "digits", "--limit", "1"]) == 2
    assert "/nonexistent/model" in capsys.readouterr().err


def test_tags_missing_from_the_vocabulary_still_split_exactly():
    tok, tags = char_tokenizer(with_tags=False), get_tags("bespoke")
    expl = tok("7+5=2", add_special_tokens=False)["input_ids"]
    close = tok(tags.explanation_close, add_special_tokens=False)["input_ids"]
    assert len(close) > 1  # the tag is many tokens here
    assert explanation_token_ids(expl + close + [3], tok, tags) == (expl, True)


# --------------------------------------------------------------------------- completions and numerics


@pytest.fixture(scope="module")
def reward():
    student, tok = tiny_model("tiny", seed=1)
    teacher, _ = tiny_model("tiny", seed=0)
    return RLTReward(
        student, tok, RLTRewardConfig(student_system_prompt=""), teacher=teacher, teacher_tokenizer=tok
    )


def test_explanation_of_only_special_tokens(reward):
    tok = reward.student_tokenizer
    ids, closed = explanation_token_ids(
        [tok.pad_token_id, tok.eos_token_id, tok.pad_token_id], tok, reward.tags
    )
    assert (ids, closed) == ([], False)
    (c,) = reward.score_ids([Q], [S], [ids], [closed])
    assert math.isfinite(c["reward"]) and c["penalty"] == -1.0


def test_reward_batch_of_one(reward):
    from rlt.formats import teacher_rl_prompt

    prompt = teacher_rl_prompt(reward.student_tokenizer, Q, S, reward.tags, system="")
    (c,) = reward([prompt], ["7+5=2; 2*3=6<|end_of_explanation|>"], question=[Q], solution=[S])
    assert math.isfinite(c)


def test_fp16_student_gives_finite_rewards():
    student, tok = tiny_model("tiny", seed=1)
    with torch.no_grad():
        student.model.embed_tokens.weight.mul_(200.0)  # large logits: overflow-prone in fp16
    r = RLTReward(student.half(), tok, RLTRewardConfig(student_system_prompt=""))
    out = r.score_texts([Q] * 3, [S] * 3, ["7+5=2; 2*3=6", "", "answer 6"], [True, True, False])
    assert all(math.isfinite(c["reward"]) for c in out)


def test_empty_tagged_solution(reward):
    (c,) = reward.score_texts([Q], ["<|begin_of_solution|><|end_of_solution|>"], ["7+5=2"], [True])
    assert c["num_solution_tokens"] == 0 and math.isfinite(c["reward"]) and c["penalty"] == -1.0


# --------------------------------------------------------------------------- configs


def test_unknown_recipe_keys_are_named(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: digits\nuse_cpu: true\nbf16: false\nlearning_rat: 0.1\n")
    assert cli(["warmup", "--config", str(recipe)]) == 2
    assert "learning_rat" in capsys.readouterr().err


def test_wrong_type_on_the_command_line():
    with pytest.raises(SystemExit):
        cli(["collect", "--teacher", "x", "--out", "o.jsonl", "--task", "digits", "--num_traces", "many"])


@pytest.mark.parametrize(
    "kwargs",
    [{"student_temperature": 0.0}, {"teacher_temperature": -1.0}, {"kl_coefs": [(float("nan"), "mean")]},
     {"solution_coefs": [(1.0, "median")]}, {"chunk_size": 0}],
)  # fmt: skip
def test_out_of_range_reward_settings(kwargs):
    with pytest.raises(ConfigError):
        RLTRewardConfig(**kwargs)


# --------------------------------------------------------------------------- faults


def test_disk_full_on_write_keeps_the_existing_output(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    with JsonlAppender(path) as out:
        out.write([{"id": "0"}, {"id": "1"}])
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with JsonlAppender(path) as out, pytest.raises(OSError, match="no space left.*intact"):
        out.write([{"id": "2"}, {"id": "3"}])
    assert path.read_bytes() == before
    assert [r["id"] for r in read_records(path)] == ["0", "1"]


# --------------------------------------------------------------------------- determinism and fuzz


def test_same_seed_same_rewards():
    def scores():
        student, tok = tiny_model("tiny", seed=3)
        r = RLTReward(student, tok, RLTRewardConfig(student_system_prompt=""))
        return [c["reward"] for c in r.score_texts([Q] * 2, [S] * 2, ["7+5=2; 2*3=6", "answer 6"])]

    assert scores() == scores()


def test_same_seed_same_training_losses(tmp_path, tiny_model_dir):
    def losses(out):
        argv = ["warmup", "--model_name_or_path", tiny_model_dir, "--task", "digits", "--task_size", "16",
                "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "4",
                "--logging_steps", "1", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
                "--save_strategy", "no", "--system_prompt", "", "--seed", "7"]  # fmt: skip
        assert cli(argv) == 0
        state = json.loads((out / "trainer_state.json").read_text())
        return [e["loss"] for e in state["log_history"] if "loss" in e]

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) == 3 and a == b


def test_fuzz_parser_and_reward(reward):
    rng = random.Random(0)
    tok, tags = reward.student_tokenizer, reward.tags
    vocab = len(tok)
    texts, ids_list = [], []
    for _ in range(300):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(40))).decode("utf-8", errors="replace")
        if rng.random() < 0.3:
            raw += rng.choice(tags.all_tags)
        ex = extract_explanation(raw, tags)
        assert isinstance(ex.text, str) and isinstance(ex.closed, bool)
        texts.append(raw)
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(30))]
        e_ids, closed = explanation_token_ids(ids, tok, tags)
        assert e_ids == ids[: len(e_ids)]
        ids_list.append((e_ids, closed))
    for start in range(0, 60, 20):
        batch = ids_list[start : start + 20]
        try:
            out = reward.score_ids(
                [Q] * len(batch), [S] * len(batch), [b[0] for b in batch], [b[1] for b in batch]
            )
        except RLTError:
            continue
        assert all(math.isfinite(c["reward"]) for c in out)
    out = reward.score_texts([Q] * 20, [S] * 20, texts[:20])
    assert all(math.isfinite(c["reward"]) for c in out)
