"""`rlt collect`: the trained teacher writes explanations for a whole data set.

Output is append-only JSONL with a stable id per (question, trace index). A re-run
after a crash or a kill skips what is done, redoes a half-written last line, never
duplicates (see :mod:`rlt.jsonl`). Each batch is sampled with a seed derived from its
ids, so a resumed run draws the same completions it would have drawn (for the same
batch size).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError
from rlt.formats import explanation_token_ids, extract_explanation, get_tags, teacher_rl_prompt
from rlt.generation import SamplingSettings, choose_backend, generate_transformers, generate_vllm
from rlt.jsonl import JsonlAppender, done_ids, read_records


def _row_id(row: dict[str, Any], index: int) -> str:
    """The question's id: the data's own ``id`` column when it has one, else its row index."""
    return str(row["id"]) if row.get("id") is not None else str(index)


def batch_seed(seed: int, ids: list[str]) -> int:
    """A torch seed that depends only on ``seed`` and the ids in the batch.

    A resumed run regroups the remaining ids into the same batches (for the same
    ``batch_size``), so it redraws exactly what the killed run would have drawn.
    CRC32 rather than ``hash()``: Python salts string hashes per process.
    """
    return (seed * 1_000_003 + zlib.crc32("\n".join(ids).encode())) % (2**63)


def collect_traces(
    teacher: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    num_traces: int = 1,
    temperature: float = 0.7,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    batch_size: int = 32,
    seed: int = 0,
    tag_format: str = "bespoke",
    system_prompt: str | None = None,
    reward: Any = None,
    llm: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``num_traces`` explanations per row to ``out_path``; returns a summary.

    ``rows`` have ``question`` and ``solution`` (and optionally ``id``). With ``reward``
    (an :class:`rlt.reward.RLTReward` whose ``teacher`` is this teacher), each record
    also carries the reward components of its explanation. ``llm`` is a vLLM engine to
    sample with instead of ``teacher.generate``.
    """
    tags = get_tags(tag_format)
    if reward is not None and getattr(reward, "teacher", None) is None:
        # Without the teacher the KL terms would silently be None; the teacher here is it.
        reward.teacher, reward.teacher_tokenizer = teacher, tokenizer
    done = done_ids(out_path)
    todo = []
    for i, row in enumerate(rows):
        for k in range(num_traces):
            rid = f"{_row_id(row, i)}-{k}"
            if rid not in done:
                todo.append((rid, row))
    settings = SamplingSettings(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    written = closed = 0
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("collecting traces", total=len(todo))
    try:
        with JsonlAppender(out_path) as out:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                prompts = [
                    teacher_rl_prompt(tokenizer, r["question"], r["solution"], tags, system_prompt)
                    for _, r in batch
                ]
                bseed = batch_seed(seed, [rid for rid, _ in batch])
                if llm is not None:
                    ids = generate_vllm(llm, prompts, settings, bseed)
                else:
                    ids = generate_transformers(teacher, tokenizer, prompts, settings, bseed)
                records = []
                for (rid, row), comp_ids in zip(batch, ids):
                    text = tokenizer.decode(comp_ids, skip_special_tokens=False)
                    expl = extract_explanation(text, tags)
                    records.append(
                        {
                            "id": rid,
                            "question": row["question"],
                            "solution": row["solution"],
                            "explanation": expl.text,
                            "closed": expl.closed,
                            "completion": text,
                        }
                    )
                    closed += expl.closed
                if reward is not None:
                    pairs = [explanation_token_ids(c, tokenizer, tags) for c in ids]
                    comps = reward.score_ids(
                        [r["question"] for r in records],
                        [r["solution"] for r in records],
                        [p[0] for p in pairs],
                        [p[1] for p in pairs],
                        teacher_prompt_ids=[
                            tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts
                        ],
                    )
                    for rec, comp in zip(records, comps):
                        rec.update({k: v for k, v in comp.items() if k != "closed"})
                out.write(records)
                written += len(records)
                if bar is not None:
                    bar.advance(task, len(records))
    finally:
        if bar is not None:
            bar.stop()
    return {"written": written, "skipped": len(done), "closed": closed, "path": str(out_path)}


def filter_traces(
    records: list[dict[str, Any]], drop_unclosed: bool = False, keep_best_k: int | None = None
) -> list[dict[str, Any]]:
    """Drop completions without the close tag; keep the best ``k`` traces per question by reward."""
    kept = [r for r in records if r.get("closed", True)] if drop_unclosed else list(records)
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
    """Rows ``{question, solution, explanation}`` (plus the trace ``id``, for provenance).

    That is what `rlt distill --explanation_column explanation` reads.
    """
    return [{k: r[k] for k in ("id", "question", "solution", "explanation")} for r in records]


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
    system_prompt: str | None = field(default=None, metadata={"help": "Teacher system prompt; '' = none."})
    backend: str = field(default="auto", metadata={"help": "auto, vllm or transformers."})
    score_with: str | None = field(
        default=None, metadata={"help": "A student: add the RLT reward components."}
    )
    drop_unclosed: bool = field(
        default=False, metadata={"help": "Export: drop explanations without the close tag."}
    )
    keep_best_k: int | None = field(
        default=None, metadata={"help": "Export: the best k traces per question."}
    )
    export_sft: str | None = field(default=None, metadata={"help": "Also write the distillation rows here."})


def main(argv: list[str] | None = None) -> int:
    from rlt.config import parse
    from rlt.data import DataArguments, load_rows
    from rlt.models import load_model_and_tokenizer

    args, data_args = parse([CollectArguments, DataArguments], argv)
    if args.num_traces < 1 or args.batch_size < 1:
        raise ConfigError("num_traces, batch_size: must be >= 1")
    if args.keep_best_k is not None and not args.score_with:
        raise ConfigError("keep_best_k: needs --score_with STUDENT (the traces are ranked by reward)")
    rows = load_rows(data_args).to_list()
    backend = choose_backend(args.backend)
    model, tok = load_model_and_tokenizer(args.teacher)
    llm = None
    if backend == "vllm":
        from vllm import LLM

        llm = LLM(model=args.teacher, seed=args.seed)
    reward = None
    if args.score_with:
        from rlt.reward import RLTReward, RLTRewardConfig

        student, student_tok = load_model_and_tokenizer(args.score_with)
        reward = RLTReward(
            student,
            student_tok,
            RLTRewardConfig(
                tag_format=data_args.tag_format,
                teacher_temperature=args.temperature,
                student_system_prompt=args.system_prompt,
                teacher_system_prompt=args.system_prompt,
            ),
            teacher=model,
            teacher_tokenizer=tok,
        )
    summary = collect_traces(
        model, tok, rows, args.out, args.num_traces, args.temperature, args.top_p, args.max_new_tokens,
        args.batch_size, args.seed, data_args.tag_format, args.system_prompt, reward, llm,
    )  # fmt: skip
    print(
        f"collect: wrote {summary['written']} traces ({summary['skipped']} already done) to {args.out}; "
        f"{summary['closed']}/{summary['written']} closed"
    )
    if args.export_sft:
        kept = filter_traces(read_records(args.out), args.drop_unclosed, args.keep_best_k)
        Path(args.export_sft).write_text("")  # an export is rewritten whole, not resumed
        with JsonlAppender(args.export_sft) as f:
            f.write(to_distillation_rows(kept))
        print(f"collect: exported {len(kept)} rows for `rlt distill` to {args.export_sft}")
    return 0
