"""`rlt eval`: accuracy and pass@k of a model answering in its own (student) format.

Answers are read from between the solution tags and checked by the task's verifier
(``digits``, ``countdown``) or by math-verify in a worker process with a hard timeout
(math-verify's own timeout uses signals: main thread only, and it cannot stop a
runaway sympy call in C). pass@k uses the unbiased estimator of Chen et al. (2021).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError, DataError
from rlt.formats import get_tags, student_prompt
from rlt.generation import SamplingSettings, generate_transformers
from rlt.rewards import extract_solution

HUB_TASKS = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "problem", "answer"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "problem", "answer"),
    "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train", "Question", "Correct Answer"),
}
LETTERS = "ABCD"


# --------------------------------------------------------------------------- pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: ``1 − C(n−c, k) / C(n, k)``, as a product (no huge binomials)."""
    if k > n:
        raise ValueError(f"k={k} > n={n} samples")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


# --------------------------------------------------------------------------- math-verify, safely


def _math_verify_worker(gold: str, answer: str) -> bool:
    from math_verify import parse, verify

    # In a worker process of our own: no signal-based timeouts, our future's timeout rules.
    return bool(verify(parse(gold, parsing_timeout=None), parse(answer, parsing_timeout=None), timeout_seconds=None))


class MathVerifier:
    """math-verify with a hard per-item timeout, usable from any thread.

    Each check runs in a worker process; a check past ``timeout`` returns False
    (status ``"timeout"``) and the stuck worker is replaced.
    """

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing as mp

            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        return self._pool

    def check(self, gold: str, answer: str) -> tuple[bool, str]:
        """``(correct, status)`` with status ``ok``, ``timeout`` or ``error``."""
        future = self._get_pool().submit(_math_verify_worker, gold, answer)
        try:
            return future.result(timeout=self.timeout), "ok"
        except FutureTimeout:
            self._kill()
            return False, "timeout"
        except Exception:
            return False, "error"

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# --------------------------------------------------------------------------- tasks


@dataclass
class EvalTask:
    """Rows to answer and how to check an answer: ``check(row, answer) -> (correct, status)``."""

    name: str
    rows: list[dict[str, Any]]
    check: Callable[[dict[str, Any], str], tuple[bool, str]]


def gpqa_row(row: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """A GPQA row as a multiple-choice question: options shuffled with a fixed per-question seed."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(f"{seed}:{row['Question']}").shuffle(order)
    shuffled = [options[i] for i in order]
    letter = LETTERS[order.index(0)]
    body = "\n".join(f"{LETTERS[i]}) {str(opt).strip()}" for i, opt in enumerate(shuffled))
    question = f"{str(row['Question']).strip()}\n\n{body}\n\nAnswer with the letter of the correct option."
    return {"question": question, "solution": letter}


def _load_hub(name: str, path: str | None) -> list[dict[str, Any]]:
    hub_id, config, split, q_col, a_col = HUB_TASKS[name]
    from rlt.data import DataArguments, load_raw

    source = path or hub_id
    ds = load_raw(DataArguments(dataset_name=source, dataset_config=None if path else config, dataset_split=split))
    rows = ds.to_list()
    if name == "gpqa_diamond":
        return [gpqa_row(r) for r in rows]
    missing = [c for c in (q_col, a_col) if c not in ds.column_names]
    if missing:
        raise DataError(f"{source}: missing columns {missing} for {name}; it has {ds.column_names}")
    return [{"question": str(r[q_col]), "solution": str(r[a_col])} for r in rows]


def load_eval_task(
    task: str, path: str | None = None, limit: int | None = None, seed: int = 12345, math_timeout: float = 5.0
) -> EvalTask:
    """``digits``/``countdown`` (generated with a held-out seed), a hub benchmark, or a question/solution file."""
    from rlt.tasks import TASKS, get_task

    if task in TASKS:
        t = get_task(task)
        rows = t.generate(limit or 200, seed=seed)
        return EvalTask(task, rows, lambda row, ans: (t.verify(row["question"], ans), "ok"))
    if task in HUB_TASKS:
        rows = _load_hub(task, path)
    elif Path(task).suffix:
        from rlt.data import DataArguments, load_rows

        rows = load_rows(DataArguments(dataset_name=task)).to_list()
    else:
        raise ConfigError(f"task: unknown task {task!r}; expected {sorted(TASKS) + sorted(HUB_TASKS)} or a file")
    if limit:
        rows = rows[:limit]
    if task == "gpqa_diamond":
        return EvalTask(task, rows, lambda row, ans: (ans.strip().strip("()").upper()[:1] == row["solution"], "ok"))
    verifier = MathVerifier(timeout=math_timeout)
    return EvalTask(task, rows, lambda row, ans: verifier.check(row["solution"], ans))


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    task: str | EvalTask,
    num_samples: int = 1,
    ks: tuple[int, ...] = (1,),
    temperature: float = 0.7,
    max_new_tokens: int = 1024,
    batch_size: int = 32,
    tag_format: str = "bespoke",
    system_prompt: str | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy (pass@1 averaged over ``num_samples``) and pass@k; greedy when ``num_samples == 1``."""
    tags = get_tags(tag_format)
    checker = task if isinstance(task, EvalTask) else None
    if checker is None:
        from rlt.tasks import TASKS, get_task

        if task not in TASKS:
            raise ConfigError(f"task: evaluate_model takes a built-in task name or an EvalTask, got {task!r}")
        t = get_task(task)
        checker = EvalTask(task, rows, lambda row, ans: (t.verify(row["question"], ans), "ok"))
    if any(k > num_samples for k in ks):
        raise ConfigError(f"k: every k must be <= num_samples ({num_samples}), got {list(ks)}")
    settings = SamplingSettings(temperature=0.0 if num_samples == 1 else temperature, max_new_tokens=max_new_tokens)
    jobs = [(i, s) for i in range(len(rows)) for s in range(num_samples)]
    samples: list[dict[str, Any]] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        prompts = [student_prompt(tokenizer, rows[i]["question"], tags, system_prompt) for i, _ in batch]
        ids = generate_transformers(model, tokenizer, prompts, settings, seed + start)
        for (i, s), comp in zip(batch, ids):
            text = tokenizer.decode(comp, skip_special_tokens=True)
            answer = extract_solution(text, tags)
            correct, status = checker.check(rows[i], answer) if answer is not None else (False, "no_answer")
            samples.append({"index": i, "sample": s, "completion": text, "answer": answer,
                            "correct": bool(correct), "status": status})  # fmt: skip
    correct_per_row = [0] * len(rows)
    for smp in samples:
        correct_per_row[smp["index"]] += smp["correct"]
    n = len(rows)
    results = {
        "task": checker.name,
        "num_questions": n,
        "num_samples": num_samples,
        "accuracy": sum(correct_per_row) / (n * num_samples) if n else 0.0,
        "pass_at_k": {str(k): sum(pass_at_k(num_samples, c, k) for c in correct_per_row) / n if n else 0.0
                      for k in ks},  # fmt: skip
        "timeouts": sum(1 for smp in samples if smp["status"] == "timeout"),
        "no_answer": sum(1 for smp in samples if smp["status"] == "no_answer"),
    }
    if out_dir is not None:
        write_results(results, samples, out_dir)
    return results


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
    out: str = field(default="eval_out", metadata={"help": "Directory for results.json/results.md/samples.jsonl."})
    dataset_path: str | None = field(default=None, metadata={"help": "Local stand-in for a hub benchmark."})
    limit: int | None = field(default=None, metadata={"help": "First N questions."})
    num_samples: int = field(default=1, metadata={"help": "Samples per question (1 = greedy)."})
    k: list[int] = field(default_factory=lambda: [1], metadata={"help": "pass@k values."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature when num_samples > 1."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Longest answer."})
    batch_size: int = field(default=32, metadata={"help": "Prompts per generation call."})
    tag_format: str = field(default="bespoke", metadata={"help": "bespoke or r1."})
    system_prompt: str | None = field(default=None, metadata={"help": "Student system prompt; '' = none."})
    math_timeout: float = field(default=5.0, metadata={"help": "Seconds per math-verify check."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})


def main(argv: list[str] | None = None) -> int:
    from rlt.config import parse
    from rlt.models import load_model_and_tokenizer

    (args,) = parse([EvalArguments], argv)
    task = load_eval_task(args.task, args.dataset_path, args.limit, math_timeout=args.math_timeout)
    model, tok = load_model_and_tokenizer(args.model)
    res = evaluate_model(
        model, tok, task.rows, task, args.num_samples, tuple(args.k), args.temperature, args.max_new_tokens,
        args.batch_size, args.tag_format, args.system_prompt, args.out, args.seed,
    )  # fmt: skip
    print(f"eval {task.name}: accuracy {res['accuracy']:.3f} over {res['num_questions']} questions; "
          f"pass@k {res['pass_at_k']}; results in {args.out}")  # fmt: skip
    return 0
