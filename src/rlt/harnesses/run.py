"""A harness run end to end: its rows and chats, sampling, checking, metrics, the results table, `main_harness`.

What each harness does differently lives in :mod:`rlt.harnesses.skythought` and
:mod:`rlt.harnesses.lighteval`; their settings in :mod:`rlt.harnesses.specs`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError, DataError
from rlt.harnesses.lighteval import lighteval_check, lighteval_question
from rlt.harnesses.skythought import skythought_check, skythought_ks, skythought_question
from rlt.harnesses.specs import GPQA_OPTIONS, get_spec
from rlt.metrics import pass_at_k
from rlt.runner import Batch, Job, partial_samples, sample_jobs, sample_key
from rlt.verify import MathVerifier

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- data and prompts


def load_benchmark_rows(harness: str, benchmark: str, path: str | None = None) -> list[dict[str, Any]]:
    """The benchmark's rows as the harness selects and orders them (``path``: a local stand-in).

    SkyThought keeps the AIME rows whose ``url`` contains ``2024`` (aime_handler.py,
    ``str.contains(..., na=False)``); everything else is every row, in stored order.
    """
    from rlt.data import DataArguments, load_raw

    hub_id, config, split = get_spec(harness, benchmark).dataset
    source = path or hub_id
    # The real code path is datasets' load_dataset(hub_id, config, split=split), via rlt.data.
    ds = load_raw(
        DataArguments(dataset_name=source, dataset_config=None if path else config, dataset_split=split)
    )
    needed = GPQA_OPTIONS + ("Question",) if benchmark == "gpqa_diamond" else ("problem", "answer")
    if harness == "lighteval" and benchmark == "math500":
        needed = ("problem", "solution")
    if harness == "skythought" and benchmark == "aime24":
        needed = (*needed, "url")
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise DataError(
            f"{source}: missing columns {missing} for {harness} {benchmark}; it has {ds.column_names}"
        )
    rows = ds.to_list()
    if harness == "skythought" and benchmark == "aime24":
        rows = [r for r in rows if r["url"] is not None and re.search("2024", str(r["url"]))]
    return rows


def build_questions(
    harness: str, benchmark: str, rows: list[dict[str, Any]], seed: int | None = None
) -> list[dict[str, Any]]:
    """Rows as ``{"question": user message, "solution": reference}``, as the harness words them.

    ``seed`` (default: the harness's, 41 or 1234) seeds the one generator that shuffles
    every GPQA row in order, so the options depend on a row's position, as in the harness.
    """
    spec = get_spec(harness, benchmark)
    rng = random.Random(spec.seed if seed is None else seed)
    question = skythought_question if harness == "skythought" else lighteval_question
    return [question(benchmark, row, rng) for row in rows]


def chat_prompt(tokenizer: Any, question: str, system_prompt: str | None) -> str:
    """The chat the harness sends: an optional system turn, then the user message, rendered
    with the model's template and its generation prompt (vLLM ``LLM.chat`` in SkyThought,
    ``--use-chat-template`` in lighteval)."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# --------------------------------------------------------------------------- checking


def harness_check(harness: str, benchmark: str, gold: str, completion: str) -> bool:
    """The harness's verdict on one output (run in a worker process: sympy can hang)."""
    if harness == "skythought":
        return skythought_check(benchmark, gold, completion)
    return lighteval_check(benchmark, gold, completion)


class HarnessChecker(MathVerifier):
    """:func:`harness_check` in a killable worker process with a per-check timeout."""

    def check_output(self, harness: str, benchmark: str, gold: str, completion: str) -> tuple[bool, str]:
        """``(correct, status)``, status ``ok``, ``timeout`` or ``error``."""
        with self._lock:
            future = self._get_pool().submit(harness_check, harness, benchmark, gold, completion)
            try:
                return bool(future.result(timeout=self.timeout)), "ok"
            except FutureTimeout:
                self._kill()
                return False, "timeout"
            except Exception:
                self._kill()
                return False, "error"


# --------------------------------------------------------------------------- metrics


def summarise_harness(correct: list[list[bool]], ks: list[int]) -> dict[str, Any]:
    """Accuracy (mean over every sample = pass@1), its standard error over questions, pass@k.

    The standard error is lighteval's ``mean_stderr`` of the per-question accuracies:
    sample standard deviation (n − 1) over the square root of the number of questions.
    """
    per_question = [sum(c) / len(c) for c in correct]
    q = len(per_question)
    mean = sum(per_question) / q if q else 0.0
    se = math.sqrt(sum((x - mean) ** 2 for x in per_question) / (q - 1)) / math.sqrt(q) if q > 1 else 0.0
    n = len(correct[0]) if correct else 0
    return {
        "num_questions": q,
        "num_samples": n,
        "accuracy": mean,
        "stderr": se,
        "pass_at_k": {
            str(k): sum(pass_at_k(n, sum(c), k) for c in correct) / q if q else 0.0 for k in ks if k <= n
        },
    }


# --------------------------------------------------------------------------- budget


def model_context_length(model: Any = None, tokenizer: Any = None, llm: Any = None) -> int | None:
    """The longest sequence the model takes: vLLM's ``max_model_len``, else the config's
    ``max_position_embeddings``, else the tokenizer's ``model_max_length`` when it is real."""
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except Exception:
        pass
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(cfg, attr, None) or getattr(getattr(cfg, "text_config", None), attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else None


def cap_budget(max_new_tokens: int, context: int | None, longest_prompt: int) -> int:
    """``max_new_tokens`` capped so the longest prompt and its answer fit ``context`` (one
    logged line when it is cut); a ConfigError when not even one answer token fits."""
    if context is None or longest_prompt + max_new_tokens <= context:
        return max_new_tokens
    room = context - longest_prompt
    if room < 1:
        raise ConfigError(
            f"max_new_tokens: the longest prompt ({longest_prompt} tokens) fills the model's context ({context})"
        )
    logger.warning(
        f"max_new_tokens: {max_new_tokens} + the longest prompt ({longest_prompt}) exceed the model's context "
        f"({context}); capped at {room}, so numbers are not comparable with a {max_new_tokens}-token run"
    )
    return room


# --------------------------------------------------------------------------- run and table


def rlt_commit() -> str:
    """The commit of the rlt checkout this runs from ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def samples_at(temperature: float, num_samples: int) -> int:
    """How many samples a question gets: one at temperature 0 (SkyThought's cli.py:
    "Temperature 0 does not support multiple samples. Setting n=1."), else ``num_samples``."""
    if num_samples < 1:
        raise ConfigError(f"num_samples: must be >= 1, got {num_samples}")
    if temperature == 0 and num_samples > 1:
        logger.warning(
            "num_samples: temperature 0 gives one distinct sample; using num_samples=1 (as SkyThought)"
        )
        return 1
    return num_samples


def harness_work(
    model: Any, tokenizer: Any, harness: str, benchmark: str, rows: list[dict[str, Any]], prompts: list[str],
    settings: Any, checker: HarnessChecker, *, llm: Any = None, generate: Callable[[list[str], int], list[str]] | None = None,
) -> Callable[[Batch[tuple[int, int]]], list[dict[str, Any]]]:  # fmt: skip
    """The work on one batch of ``(question, sample)`` items: sample the harness's chat
    (``prompts[question]``), score the text as the harness does.

    vLLM seeds each sample (``batch.seeds``), transformers the batch (``batch.seed``);
    ``generate(prompts, seed) -> texts`` replaces the model (tests).
    """
    from rlt.generation import generate_transformers, generate_vllm, stop_ids

    def work(batch: Batch[tuple[int, int]]) -> list[dict[str, Any]]:
        batch_prompts = [prompts[i] for i, _ in batch.items]
        if generate is not None:
            texts = generate(batch_prompts, batch.seed)
        else:
            if llm is not None:
                ids = generate_vllm(llm, batch_prompts, settings, batch.seeds, stop_ids(tokenizer))
            else:
                ids = generate_transformers(model, tokenizer, batch_prompts, settings, batch.seed)
            # Both harnesses score the text vLLM returns: special tokens skipped.
            texts = [tokenizer.decode(x, skip_special_tokens=True) for x in ids]
        samples = []
        for (i, s), text in zip(batch.items, texts):
            ok, status = checker.check_output(harness, benchmark, rows[i]["solution"], text)
            samples.append({"index": i, "sample": s, "question": rows[i]["question"], "solution": rows[i]["solution"],
                            "completion": text, "correct": ok, "status": status})  # fmt: skip
        return samples

    return work


def summarise_samples(
    harness: str, benchmark: str, samples: list[dict[str, Any]], num_questions: int, num_samples: int,
    **sampling: Any,
) -> dict[str, Any]:  # fmt: skip
    """:func:`summarise_harness` of the samples, with the harness, benchmark, ``sampling`` settings and
    the checker's timeouts and errors."""
    correct = [[False] * num_samples for _ in range(num_questions)]
    for x in samples:
        correct[x["index"]][x["sample"]] = x["correct"]
    ks = skythought_ks(num_samples) if harness == "skythought" else [1]
    summary = summarise_harness(correct, ks)
    summary.update(harness=harness, benchmark=benchmark, **sampling,
                   timeouts=sum(x["status"] == "timeout" for x in samples),
                   errors=sum(x["status"] == "error" for x in samples))  # fmt: skip
    return summary


def run_harness(
    model: Any,
    tokenizer: Any,
    harness: str,
    benchmark: str,
    rows: list[dict[str, Any]],
    *,
    num_samples: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    system_prompt: str | None,
    seed: int,
    batch_size: int = 32,
    llm: Any = None,
    math_timeout: float = 5.0,
    generate: Callable[[list[str], int], list[str]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate ``num_samples`` outputs per question and score them as ``harness`` does (one
    process, in memory; `rlt eval --harness` runs the same work on :mod:`rlt.runner`).

    ``rows`` are :func:`build_questions`' rows. ``generate(prompts, seed) -> texts``
    replaces the model (tests). Returns the summary and the per-sample records.
    """
    from rlt.generation import SamplingSettings

    num_samples = samples_at(temperature, num_samples)
    prompts = [chat_prompt(tokenizer, r["question"], system_prompt) for r in rows]
    if generate is None:
        longest = max((len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts), default=0)
        max_new_tokens = cap_budget(max_new_tokens, model_context_length(model, tokenizer, llm), longest)
    settings = SamplingSettings(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    with (
        HarnessChecker(timeout=math_timeout) as checker,
        Job(f"eval {benchmark}", None, key=sample_key, seed=seed) as job,
    ):
        work = harness_work(model, tokenizer, harness, benchmark, rows, prompts, settings, checker, llm=llm,
                            generate=generate)  # fmt: skip
        samples = job.run(*sample_jobs(len(rows), num_samples), batch_size, work) or []
    summary = summarise_samples(harness, benchmark, samples, len(rows), num_samples, temperature=temperature,
                                top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)  # fmt: skip
    return summary, samples


def table_row(model: str, summary: dict[str, Any], source: str, commit: str) -> dict[str, Any]:
    """One row of the results table (accuracy and its standard error in percent)."""
    return {
        "model": model,
        "benchmark": summary["benchmark"],
        "harness": f"{summary['harness']} ({source})",
        "n": summary["num_samples"],
        "temperature": summary["temperature"],
        "top_p": summary["top_p"],
        "budget": summary["max_new_tokens"],
        "accuracy": round(100 * summary["accuracy"], 2),
        "stderr": round(100 * summary["stderr"], 2),
        "pass_at_k": {k: round(100 * v, 2) for k, v in summary["pass_at_k"].items()},
        "questions": summary["num_questions"],
        "commit": commit,
    }


def update_table(path: str | Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``row`` to the table at ``path`` (``.json`` + ``.md`` beside it), replacing the row of
    the same model, benchmark and harness: several `rlt eval` runs write one table."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".json", ".md") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path = base.with_suffix(".json")
    rows = json.loads(json_path.read_text()) if json_path.exists() else []
    key = (row["model"], row["benchmark"], row["harness"])
    rows = [r for r in rows if (r["model"], r["benchmark"], r["harness"]) != key] + [row]
    json_path.write_text(json.dumps(rows, indent=2))
    base.with_suffix(".md").write_text(markdown_table(rows))
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table as markdown: accuracy as ``mean ± SE`` (percent)."""
    head = "| model | benchmark | harness | n | temperature | top_p | budget | accuracy (%) | questions | commit |\n"
    head += "|---|---|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['model']} | {r['benchmark']} | {r['harness']} | {r['n']} | {r['temperature']} | {r['top_p']} | "
        f"{r['budget']} | {r['accuracy']:.1f} ± {r['stderr']:.1f} | {r['questions']} | {r['commit']} |\n"
        for r in rows
    )
    return head + body


def main_harness(args: Any, argv: list[str] | None, vllm_args: Any = None) -> int:
    """`rlt eval --harness skythought|lighteval`: the harness's data, prompts, sampling and checking.

    The harness's sampling (n, temperature, budget, seed, system prompt) applies unless the
    flag is given on the command line. Writes ``results.json``/``results.md``/``samples.jsonl``
    in ``--out``, and adds a row to ``--table`` (default ``<out>/table``).
    """
    import sys

    from rlt.generation import SamplingSettings, choose_backend
    from rlt.loading import (
        check_generation_budget,
        load_model_and_tokenizer,
        load_tokenizer,
        longest_prompt_tokens,
    )
    from rlt.vllm_engine import VLLMArguments, start_engine

    spec = get_spec(args.harness, args.task)
    given = _given_flags(sys.argv[1:] if argv is None else argv)
    num_samples = args.num_samples if "num_samples" in given else spec.num_samples
    temperature = args.temperature if "temperature" in given else spec.temperature
    max_new_tokens = args.max_new_tokens if "max_new_tokens" in given else spec.max_new_tokens
    seed = args.seed if "seed" in given else spec.seed
    system = (args.system_prompt or None) if "system_prompt" in given else spec.system_prompt
    rows = load_benchmark_rows(args.harness, args.task, args.dataset_name)
    questions = build_questions(args.harness, args.task, rows, seed)
    if args.limit:
        questions = questions[: args.limit]  # after the shuffle, as SkyThought's --start/--end
    tok = load_tokenizer(args.model)
    prompts = [chat_prompt(tok, q["question"], system) for q in questions]
    # The rule of every command (rlt.budgets): the harness's budget is capped to the model's
    # context with one logged line; a --max_new_tokens given on the command line is refused.
    max_new_tokens = check_generation_budget(
        args.model, longest_prompt_tokens(tok, prompts), max_new_tokens, "max_new_tokens",
        explicit="max_new_tokens" in given, command="rlt eval",
    )  # fmt: skip
    logger.info(
        f"eval {args.task} as {spec.source}: {len(questions)} questions, n={num_samples}, "
        f"temperature {temperature}, top_p {spec.top_p}, {max_new_tokens} new tokens, seed {seed}"
    )
    num_samples = samples_at(temperature, num_samples)
    backend = choose_backend(args.backend)
    settings = SamplingSettings(temperature=temperature, top_p=spec.top_p, max_new_tokens=max_new_tokens)
    manifest = {"model": args.model, "harness": args.harness, "task": args.task, "dataset_name": args.dataset_name,
                "limit": args.limit, "num_samples": num_samples, "temperature": temperature, "top_p": spec.top_p,
                "max_new_tokens": max_new_tokens, "seed": seed, "system_prompt": system, "backend": backend,
                "batch_size": args.batch_size if backend == "transformers" else None}  # fmt: skip
    out = Path(args.out)
    with Job(f"eval {args.task}", partial_samples(out), manifest, noun="samples", key=sample_key, seed=seed,
             keep=False) as job:  # fmt: skip
        llm = model = None
        if backend == "vllm":
            with job.engine_environment((vllm_args or VLLMArguments()).tensor_parallel_size):
                llm = start_engine(
                    args.model, seed, vllm_args or VLLMArguments(), tok, prompts, max_new_tokens
                )
        else:
            model, tok = load_model_and_tokenizer(args.model, device=job.device)
        with HarnessChecker(timeout=args.math_timeout) as checker:
            work = harness_work(
                model, tok, args.harness, args.task, questions, prompts, settings, checker, llm=llm
            )
            samples = job.run(*sample_jobs(len(questions), num_samples), args.batch_size, work)
        if samples is None:
            return 0  # not the main process: its share is written, the main one reports
        summary = summarise_samples(args.harness, args.task, samples, len(questions), num_samples,
                                    temperature=temperature, top_p=spec.top_p, max_new_tokens=max_new_tokens,
                                    seed=seed)  # fmt: skip
        summary["source"] = spec.source
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary, indent=2))
        (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
        row = table_row(args.model, summary, spec.source, rlt_commit())
        (out / "results.md").write_text(markdown_table([row]))
        update_table(args.table or out / "table", row)
    logger.info(
        f"eval {args.task} ({args.harness}): accuracy {100 * summary['accuracy']:.1f} ± {100 * summary['stderr']:.1f} % "
        f"over {summary['num_questions']} questions × {summary['num_samples']} samples; results in {out}"
    )
    return 0


def _given_flags(argv: list[str]) -> set[str]:
    """Field names given as ``--name`` or ``--name=value`` on the command line."""
    return {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}
