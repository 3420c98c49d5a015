"""`rlt collect`: the trained teacher writes explanations for a whole data set.

The job runs on :mod:`rlt.runner` (alone or under ``accelerate launch``): output is
append-only JSONL with a stable id per (question, trace index); a re-run after a crash or
a kill skips what is done, redoes a half-written last line, never duplicates; a second
launch on the same ``--out`` is refused while the first runs. Each batch is sampled with a
seed derived from its ids (transformers), each trace with its own (vLLM), so a resumed run
draws the same completions it would have drawn.

Each record: ``id`` (``"{question}-{trace}"``; the question is the data's ``id``
column or its row index), ``question``, ``solution``, ``explanation`` (the text
before the close tag), ``closed``, ``completion`` (raw), and with ``--score_with``
the reward components of :class:`rlt.rewards.RLTReward`.

Filters run as a post-pass over the whole output, never on the resumable file itself:
``--drop_unclosed``, ``--max_trace_tokens N`` (explanations of at most ``N`` teacher
tokens, so traces fit the student's context, as the official README advises) and then
``--keep_best_k K`` (of each question's remaining traces, by reward).

``--decontaminate_against`` drops, before anything is sampled, every question that shares
a word n-gram with an evaluation set (:mod:`rlt.decontaminate`, open-r1's method); the
removed rows are logged. Row ids are taken before the drop, so trace ids do not move.
With ``--export_sft FILE`` the kept traces go to ``FILE`` as
``{id, question, solution, explanation, closed}`` rows, what `rlt distill
--explanation_column explanation` reads; without it, the kept records go to
``<out>.filtered.jsonl``. Both are rewritten whole on every run.

Under ``accelerate launch`` each process samples its share on its own device, and the main
process filters and exports once. ``<out>.manifest.json`` records the settings that decide
a trace; a relaunch with others is refused.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.config import system_prompt_field
from rlt.errors import ConfigError, DataError
from rlt.formats import TagSet, explanation_token_ids, extract_explanation, get_tags, teacher_rl_prompt
from rlt.generation import SamplingSettings, choose_backend, generate_transformers, generate_vllm, stop_ids
from rlt.jsonl import JsonlAppender, read_records
from rlt.runner import Batch, Job
from rlt.sharding import Shard
from rlt.vllm_engine import VLLMArguments, start_engine

logger = logging.getLogger(__name__)


def _row_id(row: dict[str, Any], index: int) -> str:
    """The question's id: the data's own ``id`` column when it has one, else its row index."""
    return str(row["id"]) if row.get("id") is not None else str(index)


def trace_ids(rows: list[dict[str, Any]], num_traces: int) -> list[str]:
    """Every trace id of ``rows``, in data-set order: ``"{question}-{trace}"``."""
    return [f"{_row_id(row, i)}-{k}" for i, row in enumerate(rows) for k in range(num_traces)]


def check_question_ids(rows: list[dict[str, Any]]) -> None:
    """Refuse two questions with one id: they would share trace ids, and one would be skipped as done."""
    seen: set[str] = set()
    dup = sorted({q for q in (_row_id(row, i) for i, row in enumerate(rows)) if q in seen or seen.add(q)})
    if dup:
        raise DataError(f"id: the data's id column repeats {dup[:5]}; trace ids must be unique per question")


def trace_work(
    teacher: Any,
    tokenizer: Any,
    *,
    tags: TagSet,
    settings: SamplingSettings,
    system_prompt: str | None = None,
    reward: Any = None,
    llm: Any = None,
) -> Callable[[Batch[dict[str, Any]]], list[dict[str, Any]]]:
    """The work on one batch of ``(trace id, row)`` items: sample, cut at the close tag, score.

    vLLM seeds each trace (``batch.seeds``: batching does not matter); transformers seeds
    the batch (``batch.seed``). With ``reward``, each record carries the reward components.
    """

    def work(batch: Batch[dict[str, Any]]) -> list[dict[str, Any]]:
        prompts = [
            teacher_rl_prompt(tokenizer, r["question"], r["solution"], tags, system_prompt)
            for r in batch.items
        ]
        if llm is not None:
            ids = generate_vllm(llm, prompts, settings, batch.seeds, stop_ids(tokenizer))
        else:
            ids = generate_transformers(teacher, tokenizer, prompts, settings, batch.seed)
        records = []
        for rid, row, comp_ids in zip(batch.keys, batch.items, ids):
            text = tokenizer.decode(comp_ids, skip_special_tokens=False)
            expl = extract_explanation(text, tags)
            records.append({"id": rid, "question": row["question"], "solution": row["solution"],
                            "explanation": expl.text, "closed": expl.closed, "completion": text})  # fmt: skip
        if reward is not None:
            pairs = [explanation_token_ids(c, tokenizer, tags) for c in ids]
            comps = reward.score_ids(
                [r["question"] for r in records],
                [r["solution"] for r in records],
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                teacher_prompt_ids=[tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts],
                systems=[r.get("system") for r in batch.items],
            )
            for rec, comp in zip(records, comps):
                rec.update({k: v for k, v in comp.items() if k != "closed"})
        return records

    return work


def collect_traces(
    teacher: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    *,
    num_traces: int = 1,
    temperature: float = 0.7,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    batch_size: int = 32,
    seed: int = 0,
    tag_format: str | TagSet = "bespoke",
    system_prompt: str | None = None,
    reward: Any = None,
    llm: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``num_traces`` explanations per row to ``out_path`` (one process); returns a summary.

    ``rows`` have ``question`` and ``solution`` (and optionally ``id``). With ``reward``
    (an :class:`rlt.rewards.RLTReward` whose ``teacher`` is this teacher), each record
    also carries the reward components of its explanation. ``llm`` is a vLLM engine to
    sample with instead of ``teacher.generate`` (``teacher`` may then be None unless a
    reward needs its log-probs). `rlt collect` runs the same work on many processes.
    """
    check_question_ids(rows)
    tags = get_tags(tag_format)  # a TagSet keeps its chat style; a name gets stratos
    if reward is not None and getattr(reward, "teacher", None) is None:
        # Without the teacher the KL terms would silently be None; the teacher here is it.
        reward.teacher, reward.teacher_tokenizer = teacher, tokenizer
    settings = SamplingSettings(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    work = trace_work(teacher, tokenizer, tags=tags, settings=settings, system_prompt=system_prompt,
                      reward=reward, llm=llm)  # fmt: skip
    closed = 0

    def counted(batch: Batch[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal closed
        records = work(batch)
        closed += sum(r["closed"] for r in records)
        return records

    with Job("collect", out_path, noun="traces", seed=seed, shard=Shard(), progress=progress) as job:
        job.run(_trace_items(rows, num_traces), trace_ids(rows, num_traces), batch_size, counted)
    return {"written": job.written, "skipped": job.skipped, "closed": closed, "path": str(out_path)}


def _trace_items(rows: list[dict[str, Any]], num_traces: int) -> list[dict[str, Any]]:
    """Each row ``num_traces`` times, in :func:`trace_ids`' order."""
    return [row for row in rows for _ in range(num_traces)]


def filter_traces(
    records: list[dict[str, Any]],
    drop_unclosed: bool = False,
    keep_best_k: int | None = None,
    *,
    max_trace_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> list[dict[str, Any]]:
    """Drop completions without the close tag, then explanations longer than ``max_trace_tokens``
    (``count_tokens(explanation)``, the teacher tokenizer's count), then keep the best ``k``
    remaining traces per question by reward."""
    kept = [r for r in records if r.get("closed", True)] if drop_unclosed else list(records)
    if max_trace_tokens is not None:
        if count_tokens is None:
            raise ConfigError("max_trace_tokens: needs a token counter (the teacher's tokenizer)")
        kept = [r for r in kept if count_tokens(str(r.get("explanation") or "")) <= max_trace_tokens]
    if keep_best_k is None:
        return kept
    if any(r.get("reward") is None for r in kept):
        raise ConfigError("keep_best_k: needs rewards in the traces (collect with --score_with STUDENT)")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in kept:
        groups[str(r["id"]).rsplit("-", 1)[0]].append(r)
    out = []
    for group in groups.values():
        out.extend(sorted(group, key=lambda r: r["reward"], reverse=True)[:keep_best_k])
    return out


def to_distillation_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{question, solution, explanation}`` (plus the trace ``id``, for provenance, and
    ``closed``, so that `rlt score` of an export gives an unclosed explanation its penalty).

    That is what `rlt distill --explanation_column explanation` reads.
    """
    return [{k: r[k] for k in EXPORT_COLUMNS if k in r} for r in records]


EXPORT_COLUMNS = ("id", "question", "solution", "explanation", "closed")


@dataclass
class CollectArguments:
    """Arguments of `rlt collect` (the rows come from the data arguments)."""

    teacher: str = field(metadata={"help": "The trained teacher (hub id or directory)."})
    out: str = field(metadata={"help": "Output JSONL; re-running resumes it."})
    num_traces: int = field(default=1, metadata={"help": "Explanations per question."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (the teacher's RL one)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling."})
    max_new_tokens: int = field(default=512, metadata={"help": "Longest explanation, in tokens."})
    batch_size: int = field(
        default=32, metadata={"help": "Prompts per generation call (and per durable write)."}
    )
    seed: int = field(default=0, metadata={"help": "Base seed; each batch's seed derives from its ids."})
    teacher_system_prompt: str | None = system_prompt_field("teacher")
    student_system_prompt: str | None = system_prompt_field("student", of=" of --score_with")
    backend: str = field(default="auto", metadata={"help": "auto, vllm or transformers."})
    score_with: str | None = field(
        default=None, metadata={"help": "A student: add the RLT reward components."}
    )
    drop_unclosed: bool = field(
        default=False, metadata={"help": "Filter: drop explanations without the close tag."}
    )
    keep_best_k: int | None = field(
        default=None,
        metadata={"help": "Filter: the best k traces per question by reward (needs score_with)."},
    )
    max_trace_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Filter: keep only explanations of at most this many teacher tokens (before keep_best_k), so "
            "the traces fit the student's context (the official README's advice for a 32B student)."
        },
    )
    decontaminate_against: list[str] | None = field(
        default=None,
        metadata={
            "help": "Evaluation sets (rlt eval task names such as math500 aime24 gpqa_diamond, or data files): "
            "drop every training question sharing a word n-gram with one of their questions, before sampling."
        },
    )
    decontaminate_ngram: int = field(
        default=8, metadata={"help": "n of the word n-grams of --decontaminate_against (open-r1: 8)."}
    )
    export_sft: str | None = field(
        default=None,
        metadata={"help": "Write the (filtered) distillation rows {question, solution, explanation} here."},
    )


def manifest_settings(
    args: CollectArguments, tag_format: str, chat_format: str, backend: str
) -> dict[str, Any]:
    """What decides a trace: a resumed output must have been written with these (:mod:`rlt.sharding`).

    Not the filters, decontamination or ``num_traces`` (they select or add traces, and may
    change between runs); ``batch_size`` only for transformers (it seeds per batch; vLLM per trace).
    """
    return {
        "teacher": args.teacher, "seed": args.seed, "temperature": args.temperature, "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens, "backend": backend, "tag_format": tag_format,
        "chat_format": chat_format, "teacher_system_prompt": args.teacher_system_prompt,
        "score_with": args.score_with, "student_system_prompt": args.student_system_prompt,
        "batch_size": args.batch_size if backend == "transformers" else None,
    }  # fmt: skip


def filtered_path(out: str | Path) -> Path:
    """``traces.jsonl`` → ``traces.filtered.jsonl``: where the filters write without ``export_sft``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.filtered{out.suffix or '.jsonl'}")


def _rewrite(path: str | Path, records: list[dict[str, Any]]) -> None:
    # A derived file is rewritten whole (it is cheap), never resumed.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("")
    with JsonlAppender(path) as f:
        f.write(records)


def _decontaminate(rows: list[dict[str, Any]], args: CollectArguments) -> list[dict[str, Any]]:
    """``rows`` without the questions that share a word n-gram with ``--decontaminate_against``.

    Ids first: a row's index-based id must not move when rows before it are dropped.
    """
    from rlt.decontaminate import decontaminate_rows, load_eval_questions

    rows = [{**row, "id": _row_id(row, i)} for i, row in enumerate(rows)]
    against = load_eval_questions(args.decontaminate_against or [])
    kept = decontaminate_rows(rows, against, args.decontaminate_ngram)[0]
    if not kept:
        raise DataError("decontaminate_against: every training question is contaminated; nothing to collect")
    return kept


def _reward(args: CollectArguments, data_args: Any, teacher: Any, tok: Any, device: str) -> Any:
    """The RLT reward of ``--score_with``, the sampling teacher giving it its log-probs."""
    from rlt.loading import load_model_and_tokenizer
    from rlt.rewards import RLTReward, RLTRewardConfig

    student, student_tok = load_model_and_tokenizer(args.score_with, device=device)
    config = RLTRewardConfig(
        tag_format=data_args.tag_format,
        chat_format=data_args.chat_format,
        teacher_temperature=args.temperature,
        student_system_prompt=args.student_system_prompt,
        teacher_system_prompt=args.teacher_system_prompt,
    )
    return RLTReward(student, student_tok, config, teacher=teacher, teacher_tokenizer=tok)


def main(argv: list[str] | None = None) -> int:
    """`rlt collect`: sample, write resumably, then filter/export (see the module docstring)."""
    from rlt.budgets import fit_collect_budget
    from rlt.config import parse
    from rlt.data import DataArguments, load_rows
    from rlt.loading import load_model_and_tokenizer, load_tokenizer

    args, data_args, vllm_args = parse([CollectArguments, DataArguments, VLLMArguments], argv)
    if args.num_traces < 1 or args.batch_size < 1:
        raise ConfigError("num_traces, batch_size: must be >= 1")
    if args.keep_best_k is not None and not args.score_with:
        raise ConfigError("keep_best_k: needs --score_with STUDENT (the traces are ranked by reward)")
    if args.keep_best_k is not None and args.keep_best_k < 1:
        raise ConfigError(f"keep_best_k: must be >= 1, got {args.keep_best_k}")
    if args.max_trace_tokens is not None and args.max_trace_tokens < 1:
        raise ConfigError(f"max_trace_tokens: must be >= 1, got {args.max_trace_tokens}")
    if args.decontaminate_ngram < 1:
        raise ConfigError(f"decontaminate_ngram: must be >= 1, got {args.decontaminate_ngram}")
    backend = choose_backend(args.backend)
    settings = manifest_settings(args, data_args.tag_format, data_args.chat_format, backend)
    rows = load_rows(data_args).to_list()
    check_question_ids(rows)
    with Job("collect", args.out, settings, noun="traces", seed=args.seed) as job:
        if args.decontaminate_against:
            rows = job.once(
                lambda: _decontaminate(rows, args)
            )  # it may fetch the sets, and it logs the drops
        args.max_new_tokens = fit_collect_budget(args, data_args, rows)  # before any weights load
        tags = data_args.tags()
        llm = None
        if backend == "vllm":
            prompt_tok = load_tokenizer(args.teacher)
            prompts = [
                teacher_rl_prompt(prompt_tok, r["question"], r["solution"], tags, args.teacher_system_prompt)
                for r in rows
            ]
            with job.engine_environment(vllm_args.tensor_parallel_size):
                llm = start_engine(
                    args.teacher, args.seed, vllm_args, prompt_tok, prompts, args.max_new_tokens
                )
        if llm is None or args.score_with:
            # The transformers teacher samples (no vLLM) or gives the reward its log-probs.
            model, tok = load_model_and_tokenizer(args.teacher, device=job.device)
        else:
            model, tok = None, load_tokenizer(args.teacher)
        reward = _reward(args, data_args, model, tok, job.device) if args.score_with else None
        sampling = SamplingSettings(args.temperature, args.top_p, args.max_new_tokens)
        work = trace_work(model, tok, tags=tags, settings=sampling, system_prompt=args.teacher_system_prompt,
                          reward=reward, llm=llm)  # fmt: skip
        records = job.run(
            _trace_items(rows, args.num_traces), trace_ids(rows, args.num_traces), args.batch_size, work
        )
    if records is None:
        return 0  # not the main process: the filters and the export run once, on the main one
    closed = sum(bool(r.get("closed")) for r in records)
    logger.info(f"collect: {len(records)} traces in {args.out}, {closed} closed; backend {backend}")
    filtering = args.drop_unclosed or args.keep_best_k is not None or args.max_trace_tokens is not None
    if filtering or args.export_sft:
        records = read_records(args.out)

        def count_tokens(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

        kept = filter_traces(
            records, args.drop_unclosed, args.keep_best_k,
            max_trace_tokens=args.max_trace_tokens, count_tokens=count_tokens,
        )  # fmt: skip
        if args.max_trace_tokens is not None:
            long = sum(
                1 for r in records if count_tokens(str(r.get("explanation") or "")) > args.max_trace_tokens
            )
            logger.info(
                f"collect: {long}/{len(records)} traces have more than {args.max_trace_tokens} tokens"
            )
        if args.export_sft:
            _rewrite(args.export_sft, to_distillation_rows(kept))
            logger.info(
                f"collect: exported {len(kept)}/{len(records)} traces for `rlt distill` to {args.export_sft}"
            )
        else:
            _rewrite(filtered_path(args.out), kept)
            logger.info(f"collect: kept {len(kept)}/{len(records)} traces in {filtered_path(args.out)}")
    return 0
