"""`rlt eval`: accuracy and pass@k of a model answering in its own (student) format.

Answers are read from between the solution tags and checked by the task's verifier
(``digits``, ``countdown``) or by math-verify in a worker process with a hard timeout
(math-verify's own timeout uses signals: main thread only, and it cannot stop a
runaway sympy call in C). pass@k uses the unbiased estimator of Chen et al. (2021).
Under ``accelerate launch`` each process answers its share of the batches into a resumable
shard and the main process summarises all samples at once (:mod:`rlt.sharding`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.data import row_system
from rlt.errors import ConfigError, DataError
from rlt.formats import TagSet, get_tags, student_prompt
from rlt.generation import (
    SamplingSettings,
    choose_backend,
    generate_transformers,
    generate_vllm,
    stop_ids,
)
from rlt.jsonl import JsonlAppender, read_records
from rlt.metrics import pass_at_k
from rlt.sharding import (
    Shard,
    barrier,
    check_manifest,
    current_shard,
    engine_environment,
    gather_shards,
    progress_for,
    remove_shards,
    shard_batches,
    shard_file,
    shard_files,
    shards_dir,
    timed,
    written_keys,
)
from rlt.verify import Checker, MathVerifier, extract_answer, gpqa_letter, gpqa_row, task_checker
from rlt.vllm_engine import VLLMArguments, start_engine

logger = logging.getLogger(__name__)

GPQA_COLUMNS = (
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
)
HUB_TASKS = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "problem", "answer"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "problem", "answer"),
    "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train", "Question", "Correct Answer"),
}
__all__ = [
    "EvalTask", "MathVerifier", "evaluate_model", "gpqa_letter", "gpqa_row", "load_aime24", "load_eval_task",
    "load_gpqa_diamond", "load_math500", "pass_at_k",
]  # fmt: skip


# --------------------------------------------------------------------------- tasks


@dataclass
class EvalTask:
    """Rows to answer and how to check an answer: ``check(row, answer) -> (correct, status)``.

    ``fallback`` lets answers be read from ``\\boxed{}``/the last line when the solution
    tags are missing (math benchmarks); ``closer`` releases a checker's worker process.
    """

    name: str
    rows: list[dict[str, Any]]
    check: Checker
    fallback: bool = True
    closer: Callable[[], None] | None = None


def _load_hub(name: str, path: str | None) -> list[dict[str, Any]]:
    """Rows of a hub benchmark; ``path`` is a local stand-in with the same columns (tests, offline)."""
    hub_id, config, split, q_col, a_col = HUB_TASKS[name]
    from rlt.data import DataArguments, load_raw

    source = path or hub_id
    # The real code path is datasets' load_dataset(hub_id, config, split=...), via rlt.data.
    ds = load_raw(
        DataArguments(dataset_name=source, dataset_config=None if path else config, dataset_split=split)
    )
    needed = GPQA_COLUMNS if name == "gpqa_diamond" else (q_col, a_col)
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise DataError(f"{source}: missing columns {missing} for {name}; it has {ds.column_names}")
    if name == "gpqa_diamond":
        return [gpqa_row(r) for r in ds.to_list()]
    return [{"question": str(r[q_col]), "solution": str(r[a_col])} for r in ds.to_list()]


def load_aime24(path: str | None = None) -> list[dict[str, Any]]:
    """AIME 2024 (``HuggingFaceH4/aime_2024``: ``problem``, ``answer``) as question/solution rows."""
    return _load_hub("aime24", path)


def load_math500(path: str | None = None) -> list[dict[str, Any]]:
    """MATH-500 (``HuggingFaceH4/MATH-500``: ``problem``, ``answer``) as question/solution rows."""
    return _load_hub("math500", path)


def load_gpqa_diamond(path: str | None = None) -> list[dict[str, Any]]:
    """GPQA-Diamond (``Idavidrein/gpqa``, config ``gpqa_diamond``, gated) as lettered multiple choice.

    Options are shuffled per question with a fixed seed (:func:`rlt.verify.gpqa_row`);
    the solution is the correct letter.
    """
    return _load_hub("gpqa_diamond", path)


def load_eval_task(
    task: str, path: str | None = None, limit: int | None = None, seed: int = 12345, math_timeout: float = 5.0
) -> EvalTask:
    """An evaluation task by name.

    ``digits``/``countdown``: generated with a held-out ``seed`` (training uses other
    seeds), ``limit`` questions (default 200). ``aime24``/``math500``/``gpqa_diamond``:
    the hub benchmark, or ``path`` with the same columns. Anything else is a data set
    (hub id or local file) with ``question``/``solution`` columns, checked by math-verify.
    """
    from rlt.tasks import TASKS, get_task

    if task in TASKS:
        rows = get_task(task).generate(limit or 200, seed=seed)
        check, _ = task_checker(task)
        return EvalTask(task, rows, check, fallback=False)
    if task in HUB_TASKS:
        rows = _load_hub(task, path)
    elif path or "/" in task or Path(task).suffix or Path(task).exists():
        from rlt.data import DataArguments, load_rows

        rows = load_rows(DataArguments(dataset_name=path or task)).to_list()
    else:
        raise ConfigError(
            f"task: unknown task {task!r}; expected {sorted(TASKS) + sorted(HUB_TASKS)} or a data set"
        )
    if limit:
        rows = rows[:limit]
    check, verifier = task_checker(task, math_timeout)
    return EvalTask(task, rows, check, closer=verifier.close if verifier else None)


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    task: str | EvalTask | Checker,
    *,
    num_samples: int = 1,
    ks: tuple[int, ...] = (1,),
    temperature: float = 0.7,
    max_new_tokens: int = 1024,
    batch_size: int = 32,
    tag_format: str | TagSet = "bespoke",
    system_prompt: str | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    math_timeout: float = 5.0,
    llm: Any = None,
) -> dict[str, Any]:
    """Accuracy (pass@1 averaged over ``num_samples``) and unbiased pass@k of ``model`` on ``rows``.

    ``task`` is a task name (``digits``, ``countdown``, ``gpqa_diamond``, or anything
    else for math-verify), an :class:`EvalTask`, or a checker ``(row, answer) ->
    (correct, status)``. The model answers in the student format; greedy when
    ``num_samples == 1``, else sampled at ``temperature`` (seeded per batch). With
    ``out_dir``, writes ``results.json``, ``results.md`` and ``samples.jsonl`` there.
    ``llm`` is a vLLM engine to generate with instead of ``model.generate``.
    """
    tags = get_tags(tag_format)
    if num_samples < 1 or any(k < 1 or k > num_samples for k in ks):
        raise ConfigError(f"k: every k must be in 1..num_samples ({num_samples}), got {list(ks)}")
    name, check, fallback, closer = _resolve_task(task, math_timeout)
    settings = SamplingSettings(
        temperature=0.0 if num_samples == 1 else temperature, max_new_tokens=max_new_tokens
    )
    jobs = [(i, s) for i in range(len(rows)) for s in range(num_samples)]
    samples: list[dict[str, Any]] = []
    bar = _progress(progress, f"eval {name}", len(jobs))
    try:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            samples += _answer_batch(model, tokenizer, rows, batch, start, settings, tags, system_prompt,
                                     seed, llm, check, fallback)  # fmt: skip
            if bar is not None:
                bar[0].advance(bar[1], len(batch))
    finally:
        if bar is not None:
            bar[0].stop()
        if closer is not None:
            closer()
    results = summarise(name, len(rows), num_samples, ks, samples)
    if out_dir is not None:
        write_results(results, samples, out_dir)
    return results


def _resolve_task(task: str | EvalTask | Checker, math_timeout: float) -> tuple[str, Checker, bool, Any]:
    """``(name, check, fallback, closer)`` of a task name, an :class:`EvalTask` or a checker."""
    from rlt.tasks import TASKS

    if isinstance(task, EvalTask):
        return task.name, task.check, task.fallback, None
    if isinstance(task, str):
        check, verifier = task_checker(task, math_timeout)
        return task, check, task not in TASKS, (verifier.close if verifier else None)
    return getattr(task, "__name__", "custom"), task, True, None


def _answer_batch(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], batch: list[tuple[int, int]], start: int,
    settings: SamplingSettings, tags: TagSet, system_prompt: str | None, seed: int, llm: Any, check: Checker,
    fallback: bool,
) -> list[dict[str, Any]]:  # fmt: skip
    """The checked samples of one batch of ``(question, sample)`` jobs starting at job ``start``."""
    prompts = [
        student_prompt(tokenizer, rows[i]["question"], tags, row_system(rows[i], system_prompt))
        for i, _ in batch
    ]
    if llm is not None:
        # One seed per (question, sample): independent of batching.
        seeds = [seed * 1_000_003 + i * 1_009 + s for i, s in batch]
        ids = generate_vllm(llm, prompts, settings, seeds, stop_ids(tokenizer))
    else:
        ids = generate_transformers(model, tokenizer, prompts, settings, seed + start)
    samples = []
    for (i, s), comp in zip(batch, ids):
        text = decode_answer(tokenizer, comp, tags)
        answer = extract_answer(text, tags, fallback=fallback)
        correct, status = check(rows[i], answer) if answer is not None else (False, "no_answer")
        samples.append({"index": i, "sample": s, "question": rows[i]["question"],
                        "solution": rows[i]["solution"], "completion": text, "answer": answer,
                        "correct": bool(correct), "status": status})  # fmt: skip
    return samples


# --------------------------------------------------------------------------- many processes


def sample_key(sample: dict[str, Any]) -> str:
    """The resume key of an eval sample: ``"{question index}-{sample}"``."""
    return f"{sample['index']}-{sample['sample']}"


def evaluate_share(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    task: str | EvalTask | Checker,
    shard: Shard,
    samples_path: str | Path,
    *,
    num_samples: int = 1,
    temperature: float = 0.7,
    max_new_tokens: int = 1024,
    batch_size: int = 32,
    tag_format: str | TagSet = "bespoke",
    system_prompt: str | None = None,
    seed: int = 0,
    math_timeout: float = 5.0,
    llm: Any = None,
    done: Collection[str] = (),
) -> dict[str, int]:
    """:func:`evaluate_model`'s samples for ``shard``'s batches, appended resumably to ``samples_path``.

    The same batches (and so seeds) as one process (:func:`rlt.sharding.shard_batches`);
    ``done`` are sample keys already written (by any shard) and skipped. The main process
    summarises all shards afterwards (:func:`merge_eval`). Returns ``{written, skipped}``.
    """
    tags = get_tags(tag_format)
    if num_samples < 1:
        raise ConfigError(f"num_samples: must be >= 1, got {num_samples}")
    name, check, fallback, closer = _resolve_task(task, math_timeout)
    settings = SamplingSettings(
        temperature=0.0 if num_samples == 1 else temperature, max_new_tokens=max_new_tokens
    )
    jobs = [(i, s) for i in range(len(rows)) for s in range(num_samples)]
    done = set(done) | {sample_key(r) for r in read_records(samples_path, repair=True)}
    mine = shard_batches(jobs, batch_size, shard)
    written = skipped = 0
    try:
        with JsonlAppender(samples_path) as out:
            for start, batch in mine:
                todo = [(i, s) for i, s in batch if f"{i}-{s}" not in done]
                skipped += len(batch) - len(todo)
                if todo:
                    out.write(_answer_batch(model, tokenizer, rows, todo, start, settings, tags, system_prompt,
                                            seed, llm, check, fallback))  # fmt: skip
                    written += len(todo)
    finally:
        if closer is not None:
            closer()
    return {"written": written, "skipped": skipped}


def merge_eval(
    name: str, num_questions: int, num_samples: int, ks: tuple[int, ...], samples_file: Path
) -> dict[str, Any]:
    """Main process, after the barrier: every shard's samples, in job order, summarised as one
    process would (pass@k per question over all its samples), written, then the shards removed."""
    order = [f"{i}-{s}" for i in range(num_questions) for s in range(num_samples)]
    wanted = set(order)
    # Only this run's samples: a shard of an earlier, longer run (a larger --limit) may hold more.
    samples = [
        r
        for r in gather_shards(samples_file, order, sample_key, include_out=False)
        if sample_key(r) in wanted
    ]
    if len(samples) != len(order):
        raise DataError(
            f"{shards_dir(samples_file)}: {len(order) - len(samples)} of {len(order)} samples are missing after the merge"
        )
    results = summarise(name, num_questions, num_samples, ks, samples)
    write_results(results, samples, samples_file.parent)
    remove_shards(samples_file)
    return results


def eval_manifest(args: EvalArguments, backend: str) -> dict[str, Any]:
    """What decides an eval sample; a partial multi-process eval resumes only under these."""
    return {k: getattr(args, k) for k in ("model", "task", "dataset_name", "limit", "num_samples", "temperature",
            "max_new_tokens", "tag_format", "chat_format", "system_prompt", "seed")} | {
        "backend": backend, "batch_size": args.batch_size if backend == "transformers" else None}  # fmt: skip


def decode_answer(tokenizer: Any, ids: list[int], tags: Any) -> str:
    """Completion text without special tokens, except the format's tags.

    ``skip_special_tokens=True`` would also erase the solution tags of a tokenizer that
    registers them as special tokens, and every answer would silently be "missing".
    """
    unk = tokenizer.unk_token_id
    keep = {tokenizer.convert_tokens_to_ids(t) for t in tags.all_tags} - {None, unk}
    special = set(tokenizer.all_special_ids)
    # Registered special tokens that the special-token attributes do not list (e.g. after
    # add_special_tokens replaced the extra ones).
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special |= {i for i, tok in decoder.items() if getattr(tok, "special", False)}
    drop = special - keep
    return tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)


def _progress(enabled: bool, label: str, total: int) -> tuple[Any, Any] | None:
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    return bar, bar.add_task(label, total=total)


def summarise(
    name: str, num_questions: int, num_samples: int, ks: tuple[int, ...], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """Accuracy and pass@k from per-sample ``correct`` flags (``index`` = question)."""
    correct_per_row = [0] * num_questions
    for smp in samples:
        correct_per_row[smp["index"]] += smp["correct"]
    n = num_questions
    return {
        "task": name,
        "num_questions": n,
        "num_samples": num_samples,
        "accuracy": sum(correct_per_row) / (n * num_samples) if n else 0.0,
        "pass_at_k": {
            str(k): sum(pass_at_k(num_samples, c, k) for c in correct_per_row) / n if n else 0.0 for k in ks
        },  # fmt: skip
        "timeouts": sum(1 for smp in samples if smp["status"] == "timeout"),
        "errors": sum(1 for smp in samples if smp["status"] == "error"),
        "no_answer": sum(1 for smp in samples if smp["status"] == "no_answer"),
    }


def write_results(results: dict[str, Any], samples: list[dict[str, Any]], out_dir: str | Path) -> None:
    """``results.json``, ``results.md`` and ``samples.jsonl`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    ks = " | ".join(f"pass@{k}" for k in results["pass_at_k"])
    vals = " | ".join(f"{v:.3f}" for v in results["pass_at_k"].values())
    (out / "results.md").write_text(
        f"| task | questions | samples | accuracy | {ks} |\n|---|---|---|---|{'---|' * len(results['pass_at_k'])}\n"
        f"| {results['task']} | {results['num_questions']} | {results['num_samples']} | "
        f"{results['accuracy']:.3f} | {vals} |\n"
    )


@dataclass
class EvalArguments:
    """Arguments of `rlt eval`."""

    model: str = field(metadata={"help": "Model to evaluate (hub id or directory)."})
    task: str = field(metadata={"help": "digits, countdown, aime24, math500, gpqa_diamond, or a data file."})
    harness: str = field(
        default="rlt",
        metadata={
            "help": "rlt (the student format, rlt's checking), skythought (as the RLT paper: SkyThought@4bb8f3e) "
            "or lighteval (as open-r1: lighteval 0.9.2) for aime24, math500, gpqa_diamond; the harness's "
            "data, prompts, sampling and checking, unless num_samples/temperature/max_new_tokens/seed/"
            "system_prompt are given.",
        },
    )
    table: str | None = field(
        default=None,
        metadata={"help": "Harness runs: table to add a row to (PATH.json, PATH.md; default <out>/table)."},
    )
    out: str = field(
        default="eval_out", metadata={"help": "Directory for results.json/results.md/samples.jsonl."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A local file (or other hub id) with the benchmark's columns, in place of its hub id; "
            "for a generic task, the data set itself.",
            "aliases": ["--dataset_path"],
        },
    )
    limit: int | None = field(default=None, metadata={"help": "First N questions."})
    num_samples: int = field(default=1, metadata={"help": "Samples per question (1 = greedy)."})
    k: list[int] = field(default_factory=lambda: [1], metadata={"help": "pass@k values."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature when num_samples > 1."})
    max_new_tokens: int = field(
        default=16384,
        metadata={
            "help": "Longest answer, in tokens. Reasoning students think for thousands of tokens (the paper's "
            "budget is 16k-32k); a short limit cuts the thought before the solution and scores it wrong."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Prompts per generation call."})
    tag_format: str = field(default="bespoke", metadata={"help": "bespoke or r1."})
    chat_format: str = field(
        default="stratos",
        metadata={"help": "stratos (the student's STRATOS system prompt, as it was trained) or compact."},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "Student system prompt; None = the data's `system` column, else the chat format's "
            "(stratos: STRATOS_SYSTEM_PROMPT); '' = none."
        },
    )
    math_timeout: float = field(default=5.0, metadata={"help": "Seconds per math-verify check."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    backend: str = field(
        default="auto", metadata={"help": "auto (vLLM when importable on a GPU), vllm, transformers."}
    )


def _evaluate_sharded(
    args: EvalArguments, shard: Shard, task: EvalTask, model: Any, tok: Any, llm: Any, backend: str
) -> dict[str, Any] | None:
    """`rlt eval` under ``accelerate launch``: this process's share into its shard, then (main
    process) the summary of all shards. None on the other processes."""
    samples_file = Path(args.out) / "samples.jsonl"
    if any(k < 1 or k > args.num_samples for k in args.k):  # before the work, not at the summary
        raise ConfigError(f"k: every k must be in 1..num_samples ({args.num_samples}), got {list(args.k)}")
    check_manifest(samples_file, eval_manifest(args, backend), shard, path=eval_manifest_path(samples_file))
    # Not samples.jsonl itself: that is a finished eval's (maybe another model's), never resumed.
    done = written_keys(samples_file, sample_key, include_out=False)
    barrier(shard)  # every process has read what is done before any writes more
    left = sum(f"{i}-{s}" not in done for i in range(len(task.rows)) for s in range(args.num_samples))
    path = shard_file(samples_file, shard)
    with progress_for(shard, samples_file, left, f"eval {task.name}"), timed() as seconds:
        share = evaluate_share(
            model, tok, task.rows, task, shard, path, num_samples=args.num_samples, temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
            tag_format=get_tags(args.tag_format, args.chat_format), system_prompt=args.system_prompt,
            seed=args.seed, math_timeout=args.math_timeout, llm=llm, done=done,
        )  # fmt: skip
    logger.info(
        f"eval {task.name}: {shard.label} wrote {share['written']} samples ({share['skipped']} already done) "
        f"to {path} in {seconds():.1f}s"
    )
    barrier(shard)  # every share is written
    if not shard.is_main:
        return None
    return merge_eval(task.name, len(task.rows), args.num_samples, tuple(args.k), samples_file)


def eval_manifest_path(samples_file: Path) -> Path:
    """Among the shards: a finished eval leaves none, so the next one (any model) starts afresh."""
    return shards_dir(samples_file) / "manifest.json"


def main(argv: list[str] | None = None) -> int:
    """`rlt eval`: load the task, answer, check, write ``results.json``/``results.md``/``samples.jsonl``."""
    from rlt.budgets import fit_eval_budget
    from rlt.config import parse
    from rlt.loading import load_model_and_tokenizer, load_tokenizer

    args, vllm_args = parse([EvalArguments, VLLMArguments], argv)
    if args.harness != "rlt":
        from rlt.harnesses import main_harness

        return main_harness(args, argv, vllm_args)
    backend = choose_backend(args.backend)
    shard = current_shard()
    samples_file = Path(args.out) / "samples.jsonl"
    # Many processes, or one resuming a partial multi-process eval: shards, then a merge.
    sharded = shard.count > 1 or bool(shard_files(samples_file))
    if sharded:  # a mismatch stops the run before the slow loads
        path = eval_manifest_path(samples_file)
        check_manifest(samples_file, eval_manifest(args, backend), shard, write=False, path=path)
    task = load_eval_task(args.task, args.dataset_name, args.limit, math_timeout=args.math_timeout)
    try:
        args.max_new_tokens = fit_eval_budget(args, task.rows)  # before any weights load
        llm = None
        if backend == "vllm":
            model, tok = None, load_tokenizer(args.model)
            tags = get_tags(args.tag_format, args.chat_format)
            prompts = [
                student_prompt(tok, r["question"], tags, row_system(r, args.system_prompt)) for r in task.rows
            ]
            with engine_environment(shard, vllm_args.tensor_parallel_size):
                llm = start_engine(args.model, args.seed, vllm_args, tok, prompts, args.max_new_tokens)
        else:
            model, tok = load_model_and_tokenizer(args.model)
        if sharded:
            res = _evaluate_sharded(args, shard, task, model, tok, llm, backend)
            if res is None:
                return 0  # not the main process: its share is written, the main one reports
        else:
            res = evaluate_model(
                model, tok, task.rows, task, num_samples=args.num_samples, ks=tuple(args.k),
                temperature=args.temperature, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                tag_format=get_tags(args.tag_format, args.chat_format), system_prompt=args.system_prompt,
                out_dir=args.out, seed=args.seed, math_timeout=args.math_timeout, llm=llm,
            )  # fmt: skip
    finally:
        if task.closer is not None:
            task.closer()
    logger.info(f"eval {task.name}: accuracy {res['accuracy']:.3f} over {res['num_questions']} questions "
          f"({res['num_samples']} samples each); pass@k {res['pass_at_k']}; "
          f"{res['timeouts']} timeouts, {res['no_answer']} without an answer; results in {args.out}")  # fmt: skip
    return 0
