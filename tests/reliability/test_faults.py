"""Bad inputs and faults not covered elsewhere; docs/reliability.md lists every case and its test."""

import copy
import errno
import json
import logging
import math
import os
import random

import pytest
import torch
from naive import naive_reward

from rlt.cli import main as cli
from rlt.data import DataArguments, load_rows
from rlt.errors import ConfigError, DataError
from rlt.formats import (
    ExplanationIds,
    explanation_token_ids,
    extract_explanation,
    get_tags,
    split_completion_ids,
)
from rlt.jsonl import JsonlAppender, read_records
from rlt.models import char_tokenizer, tiny_model
from rlt.rewards import RLTReward, RLTRewardConfig
from rlt.train import build_dataset

Q, S = "start 7; +5; *3 (mod 10)", "6"
TAGS = get_tags("bespoke")


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
    assert len(close) == len(tags.explanation_close)  # the tag is many tokens here
    assert split_completion_ids(expl + close + [3], tok, tags) == ExplanationIds(expl, True, len(expl))
    # Cut mid-tag: unclosed, every sampled id kept (trailing padding and end-of-sequence dropped).
    eos, pad = tok.eos_token_id, tok.pad_token_id
    cut = expl + close[:-1]
    assert split_completion_ids([*cut, eos, pad], tok, tags) == ExplanationIds(cut, False, len(cut))


@pytest.mark.parametrize(
    ("body", "sampled"),
    [("7+5=2; 2*3=6", 12), ("so the answer is 6.", 6), ("x)", 1)],  # ".<" and ")<" merge under BPE
)
def test_tags_missing_from_the_qwen_vocabulary_split_exactly(qwen_tok, body, sampled):
    # The real tokenizer: the bespoke close tag is 6 BPE tokens, the first may merge with text.
    tags = get_tags("bespoke")
    ids = qwen_tok(body + tags.explanation_close + "<|im_end|>", add_special_tokens=False)["input_ids"]
    want = qwen_tok(body, add_special_tokens=False)["input_ids"]
    split = split_completion_ids(ids, qwen_tok, tags)
    assert split == ExplanationIds(want, closed=True, sampled=sampled)
    assert split.ids[:sampled] == ids[:sampled] and qwen_tok.decode(split.ids) == body


def test_a_token_straddling_the_close_tag_is_retokenised():
    # A character tokenizer with one merged token ".<|end": the tag starts inside a sampled token
    # (as ".<" merges under BPE). The ids before it are kept as sampled; the token's text before
    # the tag (".") is re-tokenised and appended, so decode(ids) is exactly the text before the tag.
    tok, tags = char_tokenizer(with_tags=False), get_tags("bespoke")
    tok.add_tokens([".<|end"])
    sampled = tok("7+5=2.<|end_of_explanation|>x", add_special_tokens=False)["input_ids"]
    expl = tok("7+5=2", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(sampled[len(expl)]) == ".<|end"  # the straddling token
    split = split_completion_ids(sampled, tok, tags)
    dot = tok(".", add_special_tokens=False)["input_ids"]
    assert split == ExplanationIds([*expl, *dot], closed=True, sampled=len(expl))
    assert tok.decode(split.ids) == "7+5=2."
    # The straddling token first: nothing sampled is kept, only the re-tokenised ".".
    split = split_completion_ids(sampled[len(expl) :], tok, tags)
    assert split == ExplanationIds(dot, closed=True, sampled=0)


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
    want = naive_reward(reward.student, tok, TAGS, Q, S, "", teacher=reward.teacher, closed=False,
                        student_system="")  # fmt: skip
    assert c["penalty"] == -1.0 and c["kl_mean"] == c["kl_max"] == 1.0  # W = 1 for the empty set
    for key in ("reward", "solution_logprob_mean", "solution_logprob_min"):
        assert c[key] == pytest.approx(want[key], abs=1e-5), key


def test_reward_batch_of_one(reward):
    from rlt.formats import teacher_rl_prompt

    prompt = teacher_rl_prompt(reward.student_tokenizer, Q, S, reward.tags, system="")
    (c,) = reward([prompt], ["7+5=2; 2*3=6<|end_of_explanation|>"], question=[Q], solution=[S])
    # The teacher's log-probs come from the prompt TRL passed (no system prompt here).
    want = naive_reward(reward.student, reward.student_tokenizer, TAGS, Q, S, "7+5=2; 2*3=6",
                        teacher=reward.teacher, student_system="", teacher_system="")  # fmt: skip
    assert c == pytest.approx(want["reward"], abs=1e-5)
    assert reward.last_components[0]["kl_mean"] == pytest.approx(want["kl_mean"], abs=1e-5)


def test_fp16_student_gives_finite_rewards():
    student, tok = tiny_model("tiny", seed=1)
    with torch.no_grad():
        student.model.embed_tokens.weight.mul_(200.0)  # large logits: overflow-prone in fp16
    fp32 = RLTReward(copy.deepcopy(student), tok, RLTRewardConfig(student_system_prompt=""))
    r = RLTReward(student.half(), tok, RLTRewardConfig(student_system_prompt=""))
    args = ([Q] * 3, [S] * 3, ["7+5=2; 2*3=6", "", "answer 6"], [True, True, False])
    out, want = r.score_texts(*args), fp32.score_texts(*args)
    assert all(math.isfinite(c["reward"]) for c in out)
    # Finite and right: the fp16 numbers are the fp32 ones to fp16's precision (~230 here).
    assert [c["reward"] for c in out] == pytest.approx([c["reward"] for c in want], rel=1e-3)
    assert [c["penalty"] for c in out] == [0.0, -1.0, -1.0]


def test_empty_tagged_solution(reward):
    (c,) = reward.score_texts([Q], ["<|begin_of_solution|><|end_of_solution|>"], ["7+5=2"], [True])
    assert c["num_solution_tokens"] == 0 and math.isfinite(c["reward"]) and c["penalty"] == -1.0
    # No solution token: every solution statistic is −W (W = 1), then the penalty.
    assert c["solution_logprob_mean"] == c["solution_logprob_min"] == -1.0
    assert c["reward"] == pytest.approx(-1.01 - (3.0 * c["kl_mean"] + 0.03 * c["kl_max"]) - 1.0)


# --------------------------------------------------------------------------- configs


def test_unknown_recipe_keys_are_named(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: m\ntask: digits\nuse_cpu: true\nbf16: false\nlearning_rat: 0.1\n")
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
    def scores(seed):
        student, tok = tiny_model("tiny", seed=seed)
        r = RLTReward(student, tok, RLTRewardConfig(student_system_prompt=""))
        return [c["reward"] for c in r.score_texts([Q] * 2, [S] * 2, ["7+5=2; 2*3=6", "answer 6"])]

    first = scores(3)
    assert first == scores(3)  # bit for bit
    student, tok = tiny_model("tiny", seed=3)
    want = [naive_reward(student, tok, TAGS, Q, S, e, student_system="")["reward"]
            for e in ("7+5=2; 2*3=6", "answer 6")]  # fmt: skip
    assert first == pytest.approx(want, abs=1e-5)
    assert scores(4) != pytest.approx(first, abs=1e-3)  # the seed does change the model


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
    close_id = tok.convert_tokens_to_ids(tags.explanation_close)
    drop = {tok.pad_token_id, tok.eos_token_id}
    vocab = len(tok)
    texts, ids_list = [], []
    seen = {"closed": 0, "closed_nonempty": 0, "unclosed": 0}
    for _ in range(300):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(40))).decode("utf-8", errors="replace")
        if rng.random() < 0.3:
            raw += rng.choice(tags.all_tags)
        # The parser's answer, from the string alone: after a leading open tag, up to the first close.
        body = raw[len(tags.explanation_open) :] if raw.startswith(tags.explanation_open) else raw
        ex = extract_explanation(raw, tags)
        assert ex.closed == (tags.explanation_close in body)
        assert ex.text == (body[: body.index(tags.explanation_close)] if ex.closed else body)
        texts.append(raw)
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(30))]
        if rng.random() < 0.4:
            ids.insert(rng.randrange(len(ids) + 1), close_id)
        # The expected split, from the ids alone (the tag is one token in this vocabulary).
        if close_id in ids:
            want, want_closed = ids[: ids.index(close_id)], True
        else:
            want, want_closed = list(ids), False
            while want and want[-1] in drop:
                want.pop()
        e_ids, closed = explanation_token_ids(ids, tok, tags)
        assert (e_ids, closed) == (want, want_closed)
        seen["closed" if closed else "unclosed"] += 1
        seen["closed_nonempty"] += closed and bool(e_ids)
        ids_list.append((e_ids, closed))
    assert min(seen.values()) >= 30, seen  # every kind of split was tried, many times
    for start in range(0, 60, 20):
        batch = ids_list[start : start + 20]
        out = reward.score_ids(
            [Q] * len(batch), [S] * len(batch), [b[0] for b in batch], [b[1] for b in batch]
        )
        for c, (e_ids, closed) in zip(out, batch):
            assert math.isfinite(c["reward"]) and c["closed"] == closed
            assert c["num_explanation_tokens"] == len(e_ids)
            assert c["penalty"] == (0.0 if closed and e_ids else -1.0)
    out = reward.score_texts([Q] * 20, [S] * 20, texts[:20])
    assert all(math.isfinite(c["reward"]) for c in out)
