"""`rlt eval --harness skythought|lighteval` (see :mod:`rlt.harnesses.run`)."""

from __future__ import annotations

from rlt.harnesses.run import (
    BENCHMARKS,
    HARNESSES,
    SKY_T1_SYSTEM_PROMPT,
    build_questions,
    cap_budget,
    get_spec,
    harness_check,
    lighteval_letter,
    load_benchmark_rows,
    main_harness,
    markdown_table,
    model_context_length,
    run_harness,
    skythought_choice,
    skythought_extract_answer,
    skythought_ks,
    strip_answer_string,
    summarise_harness,
    table_row,
    update_table,
)

__all__ = [
    "BENCHMARKS", "HARNESSES", "SKY_T1_SYSTEM_PROMPT", "build_questions", "cap_budget", "get_spec",
    "harness_check", "lighteval_letter", "load_benchmark_rows", "main_harness", "markdown_table",
    "model_context_length", "run_harness", "skythought_choice", "skythought_extract_answer", "skythought_ks",
    "strip_answer_string", "summarise_harness", "table_row", "update_table",
]  # fmt: skip
