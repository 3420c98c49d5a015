"""`rlt eval`: accuracy and pass@k of a model answering in its own (student) format.

Answers are read from between the solution tags and checked by the task's verifier
(``digits``, ``countdown``) or by math-verify in a worker process with a hard timeout
(math-verify's own timeout uses signals: main thread only, and it cannot stop a
runaway sympy call in C). pass@k uses the unbiased estimator of Chen et al. (2021).
`rlt eval` runs on :mod:`rlt.runner`: resumable alone or under ``accelerate launch`` (each
process answers its share on its own device; the main process summarises all samples).
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
from rlt.generation import SamplingSettings, choose_backend, generate_transformers, generate_vllm, stop_ids
from rlt.metrics import pass_at_k
from rlt.runner import Batch, Job, partial_samples, sample_jobs, sample_key
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
    ``num_samples == 1``, else sampled at ``temperature``. With ``out_dir``, writes
    ``results.json``, ``results.md`` and ``samples.jsonl`` there. ``llm`` is a vLLM engine
    to generate with instead of ``model.generate``. One process, in memory: `rlt eval`
    runs the same work on :mod:`rlt.runner`, resumably and on many processes.
    """
    check_ks(ks, num_samples)
    name, check, fallback, closer = _resolve_task(task, math_timeout)
    work = answer_work(model, tokenizer, rows, num_samples=num_samples, temperature=temperature,
                       max_new_tokens=max_new_tokens, tags=get_tags(tag_format), system_prompt=system_prompt,
                       llm=llm, check=check, fallback=fallback)  # fmt: skip
    try:
        with Job(f"eval {name}", None, key=sample_key, seed=seed, progress=progress) as job:
            samples = job.run(*sample_jobs(len(rows), num_samples), batch_size, work) or []
    finally:
        if closer is not None:
            closer()
    results = summarise(name, len(rows), num_samples, ks, samples)
    if out_dir is not None:
        write_results(results, samples, out_dir)
    return results


def check_ks(ks: Collection[int], num_samples: int) -> None:
    """Every pass@k needs ``1 <= k <= num_samples``: refused before any work, not at the summary."""
    if num_samples < 1 or any(k < 1 or k > num_samples for k in ks):
        raise ConfigError(f"k: every k must be in 1..num_samples ({num_samples}), got {list(ks)}")


def _resolve_task(task: str | EvalTask | Checker, math_timeout: float) -> tuple[str, Checker, bool, Any]:
    """``(name, check, fallback, closer)`` of a task name, an :class:`EvalTask` or a checker."""
    from rlt.tasks import TASKS

    if isinstance(task, EvalTask):
        return task.name, task.check, task.fallback, None
    if isinstance(task, str):
        check, verifier = task_checker(task, math_timeout)
        return task, check, task not in TASKS, (verifier.close if verifier else None)
    return getattr(task, "__name__", "custom"), task, True, None


def answer_work(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], *, num_samples: int, temperature: float,
    max_new_tokens: int, tags: TagSet, system_prompt: str | None, llm: Any, check: Checker, fallback: bool,
) -> Callable[[Batch[tuple[int, int]]], list[dict[str, Any]]]:  # fmt: skip
    """The work on one batch of ``(question, sample)`` items: answer in the student format, check.

    Greedy when ``num_samples == 1``. vLLM seeds each sample (``batch.seeds``), transformers
    the batch (``batch.seed``).
    """
    settings = SamplingSettings(
        temperature=0.0 if num_samples == 1 else temperature, max_new_tokens=max_new_tokens
    )

    def work(batch: Batch[tuple[int, int]]) -> list[dict[str, Any]]:
        prompts = [
            student_prompt(tokenizer, rows[i]["question"], tags, row_system(rows[i], system_prompt))
            for i, _ in batch.items
        ]
        if llm is not None:
            ids = generate_vllm(llm, prompts, settings, batch.seeds, stop_ids(tokenizer))
        else:
            ids = generate_transformers(model, tokenizer, prompts, settings, batch.seed)
        samples = []
        for (i, s), comp in zip(batch.items, ids):
            text = decode_answer(tokenizer, comp, tags)
            answer = extract_answer(text, tags, fallback=fallback)
            correct, status = check(rows[i], answer) if answer is not None else (False, "no_answer")
            samples.append({"index": i, "sample": s, "question": rows[i]["question"],
                            "solution": rows[i]["solution"], "completion": text, "answer": answer,
                            "correct": bool(correct), "status": status})  # fmt: skip
        return samples

    return work


def eval_manifest(args: EvalArguments, backend: str) -> dict[str, Any]:
    """What decides an eval sample; a partial eval resumes only under these."""
    return {k: getattr(args, k) for k in ("model", "task", "harness", "dataset_name", "limit", "num_samples",
            "temperature", "max_new_tokens", "tag_format", "chat_format", "system_prompt", "seed")} | {
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
    check_ks(args.k, args.num_samples)
    with Job(f"eval {args.task}", partial_samples(args.out), eval_manifest(args, backend), noun="samples",
             key=sample_key, seed=args.seed, keep=False) as job:  # fmt: skip
        task = load_eval_task(args.task, args.dataset_name, args.limit, math_timeout=args.math_timeout)
        try:
            args.max_new_tokens = fit_eval_budget(args, task.rows)  # before any weights load
            tags = get_tags(args.tag_format, args.chat_format)
            llm = None
            if backend == "vllm":
                model, tok = None, load_tokenizer(args.model)
                prompts = [student_prompt(tok, r["question"], tags, row_system(r, args.system_prompt))
                           for r in task.rows]  # fmt: skip
                with job.engine_environment(vllm_args.tensor_parallel_size):
                    llm = start_engine(args.model, args.seed, vllm_args, tok, prompts, args.max_new_tokens)
            else:
                model, tok = load_model_and_tokenizer(args.model, device=job.device)
            work = answer_work(model, tok, task.rows, num_samples=args.num_samples, temperature=args.temperature,
                               max_new_tokens=args.max_new_tokens, tags=tags, system_prompt=args.system_prompt,
                               llm=llm, check=task.check, fallback=task.fallback)  # fmt: skip
            samples = job.run(*sample_jobs(len(task.rows), args.num_samples), args.batch_size, work)
        finally:
            if task.closer is not None:
                task.closer()
        if samples is None:
            return 0  # not the main process: its share is written, the main one reports
        res = summarise(task.name, len(task.rows), args.num_samples, tuple(args.k), samples)
        write_results(res, samples, args.out)  # before the job ends and removes its partial samples
    logger.info(f"eval {task.name}: accuracy {res['accuracy']:.3f} over {res['num_questions']} questions "
          f"({res['num_samples']} samples each); pass@k {res['pass_at_k']}; "
          f"{res['timeouts']} timeouts, {res['no_answer']} without an answer; results in {args.out}")  # fmt: skip
    return 0
