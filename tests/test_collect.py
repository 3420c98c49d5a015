import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from rlt.cli import main as cli
from rlt.collect import collect_traces, filter_traces, to_distillation_rows
from rlt.jsonl import read_records
from rlt.loading import load_model_and_tokenizer
from rlt.tasks import DigitsTask


def test_collect_then_resume_without_duplicates(tiny_model_dir, tmp_path):
    model, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = DigitsTask().generate(6, seed=0)
    out = tmp_path / "traces.jsonl"
    s1 = collect_traces(
        model, tok, rows[:3], out, num_traces=2, max_new_tokens=8, batch_size=4, progress=False
    )
    assert s1["written"] == 6
    s2 = collect_traces(model, tok, rows, out, num_traces=2, max_new_tokens=8, batch_size=4, progress=False)
    assert (s2["written"], s2["skipped"]) == (6, 6)
    recs = read_records(out)
    assert sorted(r["id"] for r in recs) == sorted(f"{i}-{k}" for i in range(6) for k in range(2))
    assert set(recs[0]) >= {"id", "question", "solution", "explanation", "closed", "completion"}


def test_same_ids_same_samples(tiny_model_dir, tmp_path):
    model, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = DigitsTask().generate(4, seed=1)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path in (a, b):
        collect_traces(model, tok, rows, path, max_new_tokens=8, batch_size=2, progress=False)
    assert read_records(a) == read_records(b)
    collect_traces(model, tok, rows, c, max_new_tokens=8, batch_size=2, seed=1, progress=False)
    assert [r["completion"] for r in read_records(c)] != [r["completion"] for r in read_records(a)]


class _Killed(Exception):
    pass


def test_resumed_collect_equals_an_uninterrupted_one(tiny_model_dir, tmp_path, monkeypatch):
    """Killed after some batches and resumed, collect writes exactly what one run writes."""
    import rlt.collect as collect_mod

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = DigitsTask().generate(5, seed=4)
    kw = dict(num_traces=2, max_new_tokens=8, batch_size=3, seed=5, progress=False)
    whole, resumed = tmp_path / "whole.jsonl", tmp_path / "resumed.jsonl"
    collect_traces(model, tok, rows, whole, **kw)
    real, seeds = collect_mod.generate_transformers, []

    def dies_on_the_third_batch(*args, **kwargs):
        seeds.append(args[4])  # the batch's seed
        if len(seeds) == 3:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(collect_mod, "generate_transformers", dies_on_the_third_batch)
    with pytest.raises(_Killed):
        collect_traces(model, tok, rows, resumed, **kw)
    assert len(read_records(resumed)) == 6  # two batches of three were durable
    monkeypatch.setattr(collect_mod, "generate_transformers", real)
    summary = collect_traces(model, tok, rows, resumed, **kw)
    assert (summary["written"], summary["skipped"]) == (4, 6)
    assert read_records(resumed) == read_records(whole)  # every completion, in the same order
    # Not vacuous: the batches were sampled with different seeds, and sampling depends on them.
    assert len(set(seeds)) == 3
    assert len({r["completion"] for r in read_records(whole)}) > 1


def test_score_with_student_and_filters(tiny_model_dir, tiny_student_dir, tmp_path):
    from naive import naive_reward

    from rlt.formats import get_tags
    from rlt.rewards import RLTReward

    teacher, tok = load_model_and_tokenizer(tiny_model_dir)
    student, stok = load_model_and_tokenizer(tiny_student_dir)
    reward = RLTReward(student, stok, teacher=teacher, teacher_tokenizer=tok)
    rows = DigitsTask().generate(2, seed=2)
    out = tmp_path / "t.jsonl"
    collect_traces(teacher, tok, rows, out, num_traces=3, max_new_tokens=8, reward=reward, progress=False)
    recs = read_records(out)
    assert len(recs) == 6
    for r in recs:
        # Each record's components are those of its own explanation, computed independently.
        want = naive_reward(student, stok, get_tags("bespoke"), r["question"], r["solution"], r["explanation"],
                            teacher=teacher, closed=r["closed"])  # fmt: skip
        for key in (
            "reward",
            "kl_mean",
            "kl_max",
            "solution_logprob_mean",
            "penalty",
            "num_explanation_tokens",
        ):
            assert r[key] == pytest.approx(want[key], abs=1e-5), (r["id"], key)
    assert len({r["reward"] for r in recs}) == 6
    best = filter_traces(recs, keep_best_k=1)
    assert [b["id"] for b in best] == [
        max((r for r in recs if r["id"].startswith(f"{q}-")), key=lambda r: r["reward"])["id"] for q in "01"
    ]
    two = filter_traces(recs, keep_best_k=2)
    assert len(two) == 4 and {r["id"] for r in best} < {r["id"] for r in two}
    assert to_distillation_rows(best) == [
        {
            "id": b["id"],
            "question": b["question"],
            "solution": b["solution"],
            "explanation": b["explanation"],
            "closed": b["closed"],
        }
        for b in best
    ]


def test_cli_export_and_unknown_backend(tiny_model_dir, tmp_path, capsys):
    out, sft = tmp_path / "t.jsonl", tmp_path / "sft.jsonl"
    argv = ["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "3", "--out", str(out),
            "--max_new_tokens", "6", "--export_sft", str(sft)]  # fmt: skip
    assert cli(argv) == 0
    assert len(read_records(out)) == 3 and len(read_records(sft)) == 3
    assert cli([*argv, "--backend", "tpu"]) == 2
    assert "backend" in capsys.readouterr().err


def test_sigkill_midway_then_resume(tiny_model_dir, tmp_path):
    out = tmp_path / "k.jsonl"
    argv = [sys.executable, "-m", "rlt.cli", "collect", "--teacher", tiny_model_dir, "--task", "digits",
            "--task_size", "16", "--out", str(out), "--batch_size", "2", "--max_new_tokens", "8"]  # fmt: skip
    # Poll until the first batch is durable, then SIGKILL mid-run (no cleanup handlers run).
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size == 0):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = len(read_records(out))
    assert 0 < first < 16
    with open(out, "ab") as f:  # as if the kill had landed mid-line
        f.write(b'{"id": "15-0", "quest')
    assert subprocess.run(argv, capture_output=True).returncode == 0
    ids = [r["id"] for r in read_records(out)]
    assert sorted(ids) == sorted(f"{i}-0" for i in range(16))  # exactly one record per id, none lost
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_cli_config_file_and_filters(tiny_model_dir, tmp_path):
    out, sft = tmp_path / "c.jsonl", tmp_path / "c_sft.jsonl"
    recipe = tmp_path / "collect.yaml"
    recipe.write_text(
        f"teacher: {tiny_model_dir}\ntask: digits\ntask_size: 2\nout: {out}\nnum_traces: 2\n"
        f"max_new_tokens: 6\nexport_sft: {sft}\ndrop_unclosed: true\n"
    )
    assert cli(["collect", "--config", str(recipe)]) == 0
    recs = read_records(out)
    assert len(recs) == 4
    assert len(read_records(sft)) == sum(r["closed"] for r in recs)
    assert filter_traces([{"id": "0-0", "closed": False}], drop_unclosed=True) == []
    assert cli(["collect", "--config", str(recipe), "--keep_best_k", "1"]) == 2  # needs --score_with


class _FakeSamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class _FakeLLM:
    """Stands in for ``vllm.LLM``: the completion names the request's seed, then closes and ends."""

    def __init__(self, tok):
        self.tok, self.seen = tok, []

    def generate(self, prompts, params, use_tqdm=False):
        from types import SimpleNamespace

        from rlt.formats import get_tags

        assert isinstance(params, list) and len(params) == len(prompts)  # one SamplingParams per prompt
        self.seen += [p.seed for p in params]
        close = get_tags("bespoke").explanation_close
        outs = []
        for p in params:
            ids = (
                self.tok(f"s{p.seed}{close}", add_special_tokens=False)["input_ids"]
                + [self.tok.eos_token_id] * 2
            )
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids)]))
        return outs


def test_vllm_path_seeds_each_trace(tiny_model_dir, tmp_path, monkeypatch):
    import types

    from rlt.loading import load_tokenizer

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_FakeSamplingParams))
    tok = load_tokenizer(tiny_model_dir)
    llm = _FakeLLM(tok)
    rows = DigitsTask().generate(2, seed=0)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    collect_traces(None, tok, rows, a, num_traces=3, batch_size=4, llm=llm, progress=False)
    recs = read_records(a)
    assert len(recs) == 6 and all(r["closed"] for r in recs)
    assert len({r["explanation"] for r in recs}) == 6  # the copies of a prompt are not identical
    assert not any(tok.eos_token in r["completion"] for r in recs)  # end-of-sequence cut as in transformers
    collect_traces(None, tok, rows, b, num_traces=3, batch_size=1, llm=_FakeLLM(tok), progress=False)
    assert read_records(a) == read_records(b)  # per-trace seeds: batching does not matter


def test_filters_without_export_write_filtered_file(tiny_model_dir, tmp_path):
    from rlt.collect import filtered_path

    out = tmp_path / "f.jsonl"
    # Hyphenated spellings work too (HfArgumentParser adds them).
    argv = ["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "3", "--out", str(out),
            "--max-new-tokens", "6", "--num-traces", "2", "--drop_unclosed", "true"]  # fmt: skip
    assert cli(argv) == 0
    assert filtered_path(out) == tmp_path / "f.filtered.jsonl"
    kept = read_records(filtered_path(out))
    assert [r["id"] for r in kept] == [r["id"] for r in read_records(out) if r["closed"]]
    assert cli([*argv, "--keep_best_k", "0", "--score_with", tiny_model_dir]) == 2


def test_duplicate_question_ids_are_refused(tiny_model_dir, tmp_path):
    import pytest

    from rlt.errors import DataError

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = [{"id": "q", "question": "a", "solution": "1"}, {"id": "q", "question": "b", "solution": "2"}]
    with pytest.raises(DataError, match="repeats"):
        collect_traces(model, tok, rows, tmp_path / "d.jsonl", progress=False)


def test_cli_gives_each_role_its_system_prompt(tiny_model_dir, tiny_student_dir, tmp_path, monkeypatch):
    """--teacher_system_prompt reaches the teacher's prompts, --student_system_prompt the scoring student."""
    import rlt.collect as collect_mod
    import rlt.rewards as reward_mod

    seen: dict = {"prompts": []}
    real_generate, real_reward = collect_mod.generate_transformers, reward_mod.RLTReward

    def generate(model, tok, prompts, *args, **kwargs):
        seen["prompts"].extend(prompts)
        seen["teacher"] = (model, tok)
        return real_generate(model, tok, prompts, *args, **kwargs)

    class Reward(real_reward):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["reward"] = self

    monkeypatch.setattr(collect_mod, "generate_transformers", generate)
    monkeypatch.setattr(reward_mod, "RLTReward", Reward)
    out = tmp_path / "t.jsonl"
    assert cli(["collect", "--teacher", tiny_model_dir, "--task", "digits", "--task_size", "2", "--out", str(out),
                "--max_new_tokens", "4", "--chat_format", "compact", "--score_with", tiny_student_dir,
                "--teacher_system_prompt", "TEACH", "--student_system_prompt", "STUDY", "--tag_format", "r1",
                "--temperature", "0.9"]) == 0  # fmt: skip
    assert seen["prompts"] and all(
        p.startswith("<|im_start|>system\nTEACH<|im_end|>") for p in seen["prompts"]
    )
    reward = seen["reward"]
    assert reward.config.teacher_system_prompt == "TEACH" and reward.config.student_system_prompt == "STUDY"
    assert reward.tags.chat == "compact" and reward.tags.name == "r1"
    assert reward.config.teacher_temperature == 0.9  # ℓ_T at the temperature the teacher sampled at
    # The teacher that sampled, with its own tokenizer (not the student's), gives ℓ_T.
    assert reward.teacher is seen["teacher"][0] and reward.teacher_tokenizer is seen["teacher"][1]
    seg = reward.segments("q", "1")
    assert reward.student_tokenizer.decode(seg.prefix_ids).startswith("<|im_start|>system\nSTUDY<|im_end|>")
    assert all(r["kl_mean"] is not None for r in read_records(out))


# --------------------------------------------------------------------------- written for mutation survivors


def test_collect_defaults_are_the_clis():
    """The library call and `rlt collect` sample alike unless told otherwise."""
    import dataclasses
    import inspect

    from rlt.collect import CollectArguments

    params = inspect.signature(collect_traces).parameters
    fields = {f.name: f.default for f in dataclasses.fields(CollectArguments)}
    for name in ("num_traces", "temperature", "top_p", "max_new_tokens", "batch_size", "seed"):
        assert params[name].default == fields[name], name


def test_collect_defaults_in_use_and_its_progress_bar(tiny_model_dir, tmp_path, monkeypatch):
    """What a call without settings really samples with (the signature above may be a
    wrapper's), and the progress bar it shows by default: one task, every trace, then gone."""
    import rich.progress

    import rlt.collect as collect_mod
    from rlt.collect import CollectArguments
    from rlt.generation import SamplingSettings

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    seen, bars = [], []

    class Bar:
        def __init__(self, *columns, **kwargs):
            self.kwargs, self.tasks, self.advanced, self.stopped = kwargs, [], 0, False
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stop()

        def add_task(self, description, total):
            self.tasks.append((description, total))
            return 7

        def advance(self, task, n):
            assert task == 7
            self.advanced += n

        def stop(self):
            self.stopped = True

    monkeypatch.setattr(rich.progress, "Progress", Bar)
    monkeypatch.setattr(
        collect_mod, "generate_transformers",
        lambda m, t, prompts, settings, seed: seen.append((len(prompts), settings)) or [[]] * len(prompts),
    )  # fmt: skip
    args = CollectArguments(teacher="t", out="o")
    collect_traces(model, tok, DigitsTask().generate(args.batch_size + 1, seed=3), tmp_path / "d.jsonl")
    want = SamplingSettings(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens
    )
    assert seen == [(args.batch_size, want), (1, want)]
    (bar,) = bars
    assert bar.kwargs == {"transient": True} and bar.tasks == [("collect", args.batch_size + 1)]
    assert bar.advanced == args.batch_size + 1 and bar.stopped


def test_seeds_are_in_range_and_tell_ids_apart():
    from rlt.runner import batch_seed, item_seeds

    ids = [f"{q}-{k}" for q in range(300) for k in range(4)]
    seeds = item_seeds(3, ids)
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)  # vLLM takes a 32-bit seed
    assert len(set(seeds)) == len(ids)
    assert item_seeds(3, ["7-0"]) != item_seeds(4, ["7-0"])
    batches = [batch_seed(seed, ids[i : i + 3]) for seed in (0, 1, 2**40, 2**62) for i in range(0, 60, 3)]
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in batches)  # torch.manual_seed's range
    assert len(set(batches)) == len(batches)


def test_collect_passes_its_settings_and_scores_with_its_own_prompts(
    tiny_model_dir, tiny_student_dir, tmp_path, monkeypatch
):
    """Sampling settings reach the generator; the reward gets the teacher (when it has none),
    the prompts actually sampled from (custom system prompt) and each row's student system."""
    from naive import naive_reward

    import rlt.collect as collect_mod
    from rlt.formats import get_tags
    from rlt.generation import SamplingSettings
    from rlt.rewards import RLTReward

    teacher, tok = load_model_and_tokenizer(tiny_model_dir)
    student, stok = load_model_and_tokenizer(tiny_student_dir)
    reward = RLTReward(student, stok)  # no teacher: collect hands it its own
    rows = [{**r, "system": "Be brief."} for r in DigitsTask().generate(3, seed=8)]
    real, seen = collect_mod.generate_transformers, []

    def recording(model, tokenizer, prompts, settings, seed):
        seen.append(settings)
        return real(model, tokenizer, prompts, settings, seed)

    monkeypatch.setattr(collect_mod, "generate_transformers", recording)
    out = tmp_path / "deep" / "er" / "t.jsonl"
    summary = collect_traces(
        teacher, tok, rows, out, temperature=0.9, top_p=0.8, max_new_tokens=7, batch_size=2,
        system_prompt="Explain.", reward=reward, progress=False,
    )  # fmt: skip
    assert seen == [SamplingSettings(temperature=0.9, top_p=0.8, max_new_tokens=7)] * 2
    recs = read_records(out)
    assert summary == {"written": 3, "skipped": 0, "closed": sum(r["closed"] for r in recs), "path": str(out)}
    assert reward.teacher is teacher
    for r in recs:
        want = naive_reward(student, stok, get_tags("bespoke"), r["question"], r["solution"], r["explanation"],
                            teacher=teacher, closed=r["closed"], student_system="Be brief.",
                            teacher_system="Explain.")  # fmt: skip
        for key in ("reward", "kl_mean", "solution_logprob_mean"):
            assert r[key] == pytest.approx(want[key], abs=1e-5), (r["id"], key)


def test_closed_count_in_the_summary(tiny_model_dir, tmp_path, monkeypatch):
    import rlt.collect as collect_mod
    from rlt.formats import get_tags

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    tags = get_tags("bespoke")
    texts = ["ok" + tags.explanation_close, "no tag", "fine" + tags.explanation_close]
    monkeypatch.setattr(
        collect_mod, "generate_transformers",
        lambda m, t, prompts, s, seed: [t(x, add_special_tokens=False)["input_ids"] for x in texts[: len(prompts)]],
    )  # fmt: skip
    summary = collect_traces(
        model, tok, DigitsTask().generate(3, seed=9), tmp_path / "c.jsonl", progress=False
    )
    assert summary["closed"] == 2
    assert [r["closed"] for r in read_records(tmp_path / "c.jsonl")] == [True, False, True]


def test_repeated_ids_are_listed(tiny_model_dir, tmp_path):
    from rlt.errors import DataError

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    rows = [{"id": f"q{i % 6}", "question": "1+1", "solution": "2"} for i in range(13)]
    rows.append({"id": "a-once", "question": "1+2", "solution": "3"})  # not repeated: not listed
    want = "id: the data's id column repeats ['q0', 'q1', 'q2', 'q3', 'q4']; trace ids must be unique per question"
    with pytest.raises(DataError, match=f"^{re.escape(want)}$"):
        collect_traces(model, tok, rows, tmp_path / "x.jsonl", progress=False)


def test_filters_by_hand():
    from rlt.errors import ConfigError

    recs = [
        {"id": "a-b-0", "reward": 1.0, "explanation": "xx"},  # no "closed": a stored trace counts as closed
        {"id": "a-b-1", "reward": 3.0, "explanation": "xxx", "closed": True},
        {"id": "a-c-0", "reward": 2.0, "explanation": None, "closed": False},
        {"id": "a-c-1", "reward": 0.0, "explanation": "xxxxxxx", "closed": True},
    ]
    assert [r["id"] for r in filter_traces(recs, drop_unclosed=True)] == ["a-b-0", "a-b-1", "a-c-1"]
    assert [r["id"] for r in filter_traces(recs, max_trace_tokens=3, count_tokens=len)] == [
        "a-b-0",
        "a-b-1",
        "a-c-0",
    ]
    # Ids with "-" inside: the question id is everything before the last "-".
    assert [r["id"] for r in filter_traces(recs, keep_best_k=1)] == ["a-b-1", "a-c-0"]
    with pytest.raises(
        ConfigError, match=r"^max_trace_tokens: needs a token counter \(the teacher's tokenizer\)$"
    ):
        filter_traces(recs, max_trace_tokens=3)
    with pytest.raises(
        ConfigError, match=r"^keep_best_k: needs rewards in the traces \(collect with --score_with STUDENT\)$"
    ):
        filter_traces([{"id": "a-0"}], keep_best_k=1)


def test_filtered_file_names_and_folders(tmp_path):
    from rlt.collect import _rewrite, filtered_path

    assert filtered_path("out/traces.jsonl").as_posix() == "out/traces.filtered.jsonl"
    assert filtered_path("out/traces").as_posix() == "out/traces.filtered.jsonl"
    target = tmp_path / "new" / "folder" / "f.jsonl"
    _rewrite(target, [{"id": "1"}])
    assert read_records(target) == [{"id": "1"}]


# --------------------------------------------------------------------------- `rlt collect` (main) end to end
# The teacher's sampling is scripted, so which trace is closed and how long each explanation
# is are known: the i-th prompt gets _SCRIPT[i % 4].
_SCRIPT = [("", True), ("ab", True), ("abc", False), ("abcdef", True)]


@pytest.fixture()
def scripted(monkeypatch):
    """Replaces the teacher's sampling in `rlt collect`; records what it was asked."""
    import rlt.collect as collect_mod

    calls: list = []

    def generate(model, tok, prompts, settings, seed):
        calls.append(
            {"model": model, "tok": tok, "prompts": list(prompts), "settings": settings, "seed": seed}
        )
        done = sum(len(c["prompts"]) for c in calls[:-1])
        out = []
        for i in range(len(prompts)):
            text, closed = _SCRIPT[(done + i) % len(_SCRIPT)]
            out.append(tok(text + (scripted.close if closed else ""), add_special_tokens=False)["input_ids"])
        return out

    def scripted(close: str) -> list:
        scripted.close = close
        return calls

    monkeypatch.setattr(collect_mod, "generate_transformers", generate)
    return scripted


def _argv(model_dir, out, *extra):
    return ["collect", "--teacher", model_dir, "--task", "digits", "--task_size", "2", "--num_traces", "2",
            "--out", str(out), "--chat_format", "compact", *extra]  # fmt: skip


def _ids(path):
    return [r["id"] for r in read_records(path)]


def test_main_writes_logs_and_filters_nothing_unasked(tiny_model_dir, tmp_path, scripted, capsys):
    from rlt.collect import filtered_path, main
    from rlt.formats import get_tags

    calls = scripted(get_tags("bespoke").explanation_close)
    out = tmp_path / "t.jsonl"
    # Called as a library function (not through `rlt`): it parses the argv it is given.
    assert main(_argv(tiny_model_dir, out)[1:]) == 0
    recs = read_records(out)
    assert [(r["id"], r["explanation"], r["closed"]) for r in recs] == [
        ("0-0", "", True), ("0-1", "ab", True), ("1-0", "abc", False), ("1-1", "abcdef", True)
    ]  # fmt: skip
    assert len(calls) == 1 and len(calls[0]["prompts"]) == 4
    assert not filtered_path(out).exists()  # no filter asked: nothing derived is written
    err = capsys.readouterr().err
    assert re.search(
        rf"collect: wrote 4 traces \(0 already done\) to {re.escape(str(out))} in [\d.]+s\n", err
    )
    assert f"collect: 4 traces in {out}, 3 closed; backend transformers\n" in err
    assert "collect: runs on cpu\n" in err  # the device, named


def test_main_passes_its_settings(tiny_model_dir, tmp_path, scripted):
    from rlt.data import DataArguments
    from rlt.formats import teacher_rl_prompt
    from rlt.generation import SamplingSettings
    from rlt.runner import batch_seed

    tags = DataArguments(task="digits", tag_format="r1", chat_format="compact").tags()
    calls = scripted(tags.explanation_close)
    out = tmp_path / "t.jsonl"
    argv = _argv(tiny_model_dir, out, "--temperature", "0.3", "--top_p", "0.9", "--max_new_tokens", "7",
                 "--batch_size", "1", "--seed", "5", "--tag_format", "r1", "--teacher_system_prompt", "T.")  # fmt: skip
    assert cli(argv) == 0
    ids = ["0-0", "0-1", "1-0", "1-1"]
    assert [c["settings"] for c in calls] == [
        SamplingSettings(temperature=0.3, top_p=0.9, max_new_tokens=7)
    ] * 4
    assert [c["seed"] for c in calls] == [batch_seed(5, [i]) for i in ids]
    rows = DigitsTask().generate(2, seed=0)
    tok = calls[0]["tok"]
    want = [teacher_rl_prompt(tok, r["question"], r["solution"], tags, "T.") for r in rows for _ in range(2)]
    assert [c["prompts"][0] for c in calls] == want
    assert [r["closed"] for r in read_records(out)] == [True, True, False, True]  # r1's close tag


@pytest.mark.parametrize(
    ("extra", "kept", "log"),
    [
        (["--drop_unclosed", "true"], ["0-0", "0-1", "1-1"], "collect: kept 3/4 traces in {filtered}"),
        # Explanations of 0, 2, 3 and 6 characters (one token each with the character tokenizer).
        (["--max_trace_tokens", "3"], ["0-0", "0-1", "1-0"], "collect: 1/4 traces have more than 3 tokens"),
        (["--max_trace_tokens", "2"], ["0-0", "0-1"], "collect: 2/4 traces have more than 2 tokens"),
    ],
)
def test_main_filters_each_alone(tiny_model_dir, tmp_path, scripted, capsys, extra, kept, log):
    from rlt.collect import filtered_path
    from rlt.formats import get_tags

    scripted(get_tags("bespoke").explanation_close)
    out = tmp_path / "t.jsonl"
    assert cli(_argv(tiny_model_dir, out, *extra)) == 0
    assert _ids(filtered_path(out)) == kept
    assert log.format(filtered=filtered_path(out)) + "\n" in capsys.readouterr().err


def test_main_keeps_the_best_and_exports(tiny_model_dir, tiny_student_dir, tmp_path, scripted, capsys):
    from rlt.collect import filtered_path
    from rlt.formats import get_tags

    scripted(get_tags("bespoke").explanation_close)
    out, sft = tmp_path / "t.jsonl", tmp_path / "sft.jsonl"
    assert cli(_argv(tiny_model_dir, out, "--score_with", tiny_student_dir, "--keep_best_k", "1")) == 0
    recs = read_records(out)
    best = [
        max((r for r in recs if r["id"].startswith(q)), key=lambda r: r["reward"])["id"] for q in ("0-", "1-")
    ]
    assert _ids(filtered_path(out)) == best
    capsys.readouterr()
    # Export: the kept traces as distillation rows, and no `.filtered` file.
    out2 = tmp_path / "u.jsonl"
    assert cli(_argv(tiny_model_dir, out2, "--drop_unclosed", "true", "--export_sft", str(sft))) == 0
    assert read_records(sft) == [
        {k: r[k] for k in ("id", "question", "solution", "explanation", "closed")}
        for r in read_records(out2)
        if r["closed"]
    ]
    assert not filtered_path(out2).exists()
    assert f"collect: exported 3/4 traces for `rlt distill` to {sft}\n" in capsys.readouterr().err


def test_main_accepts_the_smallest_settings(tiny_model_dir, tiny_student_dir, tmp_path, scripted):
    from rlt.collect import filtered_path
    from rlt.formats import get_tags

    scripted(get_tags("bespoke").explanation_close)
    out = tmp_path / "t.jsonl"
    argv = _argv(tiny_model_dir, out, "--num_traces", "1", "--batch_size", "1", "--keep_best_k", "1",
                 "--score_with", tiny_student_dir, "--max_trace_tokens", "1", "--decontaminate_ngram", "1")  # fmt: skip
    assert cli(argv) == 0
    assert _ids(out) == ["0-0", "1-0"] and _ids(filtered_path(out)) == ["0-0"]  # "ab" (2 tokens) is cut


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num_traces", "0"], "num_traces, batch_size: must be >= 1"),
        (["--batch_size", "0"], "num_traces, batch_size: must be >= 1"),
        (["--keep_best_k", "1"], "keep_best_k: needs --score_with STUDENT (the traces are ranked by reward)"),
        (["--keep_best_k", "0", "--score_with", "S"], "keep_best_k: must be >= 1, got 0"),
        (["--max_trace_tokens", "0"], "max_trace_tokens: must be >= 1, got 0"),
        (["--decontaminate_ngram", "0"], "decontaminate_ngram: must be >= 1, got 0"),
    ],
)
def test_main_refuses_bad_settings_by_name(tmp_path, capsys, extra, message):
    out = tmp_path / "t.jsonl"
    assert cli(_argv("no-such-teacher", out, *extra)) == 2
    assert capsys.readouterr().err == f"rlt collect: error: {message}\n"
    assert not out.exists()  # refused before anything is loaded or written


def test_main_decontaminates_rows_without_ids(tiny_model_dir, tmp_path, scripted, capsys):
    from rlt.formats import get_tags

    scripted(get_tags("bespoke").explanation_close)
    shared = "the quick brown fox jumps over the lazy dog again and again"
    train = [
        {"question": "What is 1 + 1? Answer with one digit only.", "solution": "2"},
        {"question": f"Warm-up: {shared}.", "solution": "3"},
        {"question": "What is 2 + 2? Answer with one digit only.", "solution": "4"},
    ]
    data, ev, out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in train))
    ev.write_text(json.dumps({"question": f"Say: {shared}!", "solution": "1"}) + "\n")
    argv = ["collect", "--teacher", tiny_model_dir, "--dataset_name", str(data), "--out", str(out),
            "--decontaminate_against", str(ev), "--decontaminate_ngram", "10"]  # fmt: skip
    assert cli(argv) == 0
    assert _ids(out) == ["0-0", "2-0"]  # row 1 is dropped; the others keep their index ids
    # The overlap is 12 words: with 13-grams nothing is contaminated (the resumed run adds row 1).
    assert cli([*argv[:-1], "13"]) == 0
    assert _ids(out) == ["0-0", "2-0", "1-0"]
    capsys.readouterr()
    assert cli([*argv[:8], str(data), "--decontaminate_ngram", "3"]) == 2  # against itself
    assert capsys.readouterr().err.endswith(
        "\nrlt collect: error: decontaminate_against: every training question is contaminated; nothing to collect\n"
    )


def test_main_samples_with_vllm_when_asked(tiny_model_dir, tmp_path, monkeypatch):
    """--backend vllm: one engine for the teacher, seeded and sized from the flags; the
    teacher's weights are not loaded into transformers unless a reward needs them."""
    import types

    import rlt.collect as collect_mod
    import rlt.loading as loading
    from rlt.runner import item_seeds

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_FakeSamplingParams))
    engines = []

    def engine(model, seed, vllm_args, tok, prompts, max_new_tokens):
        engines.append((model, seed, vllm_args.gpu_memory_utilization))
        engines.append(_FakeLLM(loading.load_tokenizer(model)))
        return engines[-1]

    def no_weights(*args, **kwargs):
        raise AssertionError("the teacher's weights were loaded")

    monkeypatch.setattr(collect_mod, "start_engine", engine)
    monkeypatch.setattr(loading, "load_model_and_tokenizer", no_weights)
    out = tmp_path / "v.jsonl"
    argv = _argv(tiny_model_dir, out, "--backend", "vllm", "--seed", "3", "--gpu_memory_utilization", "0.5")
    assert cli(argv) == 0
    assert engines[0] == (tiny_model_dir, 3, 0.5)
    ids = ["0-0", "0-1", "1-0", "1-1"]
    assert engines[1].seen == item_seeds(3, ids)
    assert _ids(out) == ids and all(r["closed"] for r in read_records(out))


def test_collect_keeps_the_rewards_own_teacher(tiny_model_dir, tiny_student_dir, tmp_path, monkeypatch):
    """Only a reward without a teacher gets the sampling one; a reward's own teacher stays."""
    import rlt.collect as collect_mod
    from rlt.rewards import RLTReward

    teacher, tok = load_model_and_tokenizer(tiny_model_dir)
    student, stok = load_model_and_tokenizer(tiny_student_dir)
    monkeypatch.setattr(
        collect_mod, "generate_transformers", lambda m, t, prompts, s, seed: [[5, 6]] * len(prompts)
    )
    reward = RLTReward(student, stok, teacher=student, teacher_tokenizer=stok)
    collect_traces(
        teacher, tok, DigitsTask().generate(1, seed=4), tmp_path / "k.jsonl", reward=reward, progress=False
    )
    assert reward.teacher is student and reward.teacher_tokenizer is stok
