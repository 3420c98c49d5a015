"""`rlt eval --harness skythought|lighteval`: AIME24, MATH-500 and GPQA-Diamond as a published harness runs them.

A number is comparable with a published one only when everything around the model is
the harness's: which rows, in which order; the system and user prompts; how the GPQA
options are shuffled; the sampling; how an answer is read from the output and compared
with the reference; and how the scores are averaged. This package reproduces that for

- ``skythought``: NovaSky-AI/SkyThought at commit ``4bb8f3e`` (the RLT paper's
  evaluation, SakanaAI/RLT README), files ``skythought/evals/tasks/{aime,math,
  gpqa_diamond}/*``, ``skythought/evals/util/math_parsing_util.py``,
  ``skythought/evals/util/metrics.py``, ``skythought/evals/cli.py``;
- ``lighteval``: huggingface/lighteval v0.9.2 (= open-r1's pinned commit ``d3da6b9``
  for these tasks), ``tasks/default_prompts.py``, ``tasks/default_tasks.py``,
  ``metrics/metrics.py``, ``metrics/utils/extractive_match_utils.py``.

Neither package can be installed beside rlt (docs/pipeline.md, "Evaluating as the
paper did"): ``skythought`` 0.1.0 requires Python <3.11 and ``vllm==0.7.0``;
``lighteval`` pins ``latex2sympy2_extended==1.0.6`` where math-verify 0.9 pins 1.11.0.
So their behaviour is reproduced here, function by function, with the source named
at each; the tests check it on the harnesses' own examples. SkyThought's number-word
conversion is its dependency ``word2number``'s own code (called, not copied); its
``latex2sympy2`` (which pins antlr4 4.7.2) is replaced by ``latex2sympy2_extended``'s
``latex2sympy``; lighteval's math extraction/comparison is math-verify (the library it
was split out into) with lighteval's settings.

The package:

- :mod:`~rlt.harnesses.specs`: each harness's settings per benchmark (data set, sampling, seed, system prompt);
- :mod:`~rlt.harnesses.skythought`: SkyThought's prompts, GPQA shuffle, answer extraction,
  normalisation and equality, the k of its pass@k;
- :mod:`~rlt.harnesses.lighteval`: lighteval's prompts, GPQA shuffle, letter extraction, math-verify settings;
- :mod:`~rlt.harnesses.run`: rows and chats, sampling, checking in a worker, metrics, the
  results table, ``main_harness`` (`rlt eval --harness ...`).
"""

from __future__ import annotations

from rlt.harnesses.lighteval import (
    LIGHTEVAL_GPQA_TEMPLATE,
    LIGHTEVAL_MATH_TEMPLATE,
    lighteval_check,
    lighteval_letter,
    lighteval_math_check,
    lighteval_question,
)
from rlt.harnesses.run import (
    HarnessChecker,
    build_questions,
    cap_budget,
    chat_prompt,
    harness_check,
    load_benchmark_rows,
    main_harness,
    markdown_table,
    model_context_length,
    rlt_commit,
    run_harness,
    summarise_harness,
    table_row,
    update_table,
)
from rlt.harnesses.skythought import (
    SKYTHOUGHT_GPQA_TEMPLATE,
    SKYTHOUGHT_MATH_TEMPLATE,
    skythought_check,
    skythought_choice,
    skythought_extract_answer,
    skythought_gpqa_options,
    skythought_ks,
    skythought_math_equal,
    skythought_question,
    strip_answer_string,
)
from rlt.harnesses.specs import (
    BENCHMARKS,
    GPQA_OPTIONS,
    HARNESSES,
    SKY_T1_SYSTEM_PROMPT,
    SPECS,
    HarnessSpec,
    get_spec,
)

__all__ = [
    "BENCHMARKS", "GPQA_OPTIONS", "HARNESSES", "LIGHTEVAL_GPQA_TEMPLATE", "LIGHTEVAL_MATH_TEMPLATE",
    "SKYTHOUGHT_GPQA_TEMPLATE", "SKYTHOUGHT_MATH_TEMPLATE", "SKY_T1_SYSTEM_PROMPT", "SPECS", "HarnessChecker",
    "HarnessSpec", "build_questions", "cap_budget", "chat_prompt", "get_spec", "harness_check",
    "lighteval_check", "lighteval_letter", "lighteval_math_check", "lighteval_question", "load_benchmark_rows",
    "main_harness", "markdown_table", "model_context_length", "rlt_commit", "run_harness", "skythought_check",
    "skythought_choice", "skythought_extract_answer", "skythought_gpqa_options", "skythought_ks",
    "skythought_math_equal", "skythought_question", "strip_answer_string", "summarise_harness", "table_row",
    "update_table",
]  # fmt: skip
