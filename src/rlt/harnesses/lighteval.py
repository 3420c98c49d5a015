"""lighteval (huggingface/lighteval v0.9.2, open-r1's pinned ``d3da6b9`` for these tasks) as it words, reads and scores.

Prompts: ``tasks/default_prompts.py``; checking: ``metrics/metrics.py``,
``metrics/utils/extractive_match_utils.py``, reproduced with math-verify (the library
lighteval's math extraction and comparison was split out into) under lighteval's settings.
"""

from __future__ import annotations

import random
import re
from itertools import groupby
from typing import Any

# --------------------------------------------------------------------------- prompts

# lighteval v0.9.2 tasks/default_prompts.py: aime_prompt_fn and math_500 (the same text;
# two spaces after "clearly.").
LIGHTEVAL_MATH_TEMPLATE = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be "
    "of the following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' "
    "(without quotes) where ANSWER is just the final number or expression that solves the problem. "
    "Think step by step before answering.\n\n{Question}"
)
# lighteval v0.9.2 tasks/default_prompts.py: gpqa_instruct (no strip of the question or options).
LIGHTEVAL_GPQA_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step "
    "before answering.\n\n{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)


def lighteval_question(benchmark: str, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One row as ``{"question": user message, "solution": reference}`` in lighteval's words.

    GPQA: the correct answer goes in at ``rng.randint(0, 3)`` among the incorrect ones
    (``rng`` goes on from row to row). MATH-500's reference is the whole solution (its
    last ``\\boxed{}`` is extracted); AIME's is the answer.
    """
    if benchmark == "gpqa_diamond":
        gold_index = rng.randint(0, 3)
        choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
        choices.insert(gold_index, row["Correct Answer"])
        question = LIGHTEVAL_GPQA_TEMPLATE.format(
            Question=row["Question"], A=choices[0], B=choices[1], C=choices[2], D=choices[3]
        )
        return {"question": question, "solution": "ABCD"[gold_index]}
    gold = row["solution"] if benchmark == "math500" else row["answer"]
    return {"question": LIGHTEVAL_MATH_TEMPLATE.format(Question=row["problem"]), "solution": str(gold)}


# --------------------------------------------------------------------------- lighteval's checking


class _DocAsPrecision:
    """Stands where lighteval v0.9.2 passes its ``Doc`` as the rounding precision."""


_DOC_AS_PRECISION: Any = _DocAsPrecision()


def _lighteval_math_configs() -> list[Any]:
    """lighteval v0.9.2's math targets as math-verify configs: Latex (boxed priority 55, not
    math-verify's 50) then Expr. lighteval's ``equations=True`` is left out: with
    latex2sympy2_extended 1.11 the parser handles equations and the flag only warns."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, LatexNormalizationConfig

    norm = LatexNormalizationConfig(
        basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="all"
    )
    return [LatexExtractionConfig(boxed_match_priority=55, normalization_config=norm), ExprExtractionConfig()]


def lighteval_math_check(gold: str, completion: str) -> bool:
    """lighteval v0.9.2 ``math_pass@1`` on one sample (``PassAtK(strip_strings=True)``).

    Both sides are stripped and extracted with ``fallback_mode="no_fallback"`` (an empty
    output scores 0); ``compare_gold_target`` gets the prediction first and the reference
    second, as PassAtK passes them.
    """
    from math_verify import parse, verify

    configs = _lighteval_math_configs()
    gold_extracted = parse(gold.strip(), configs, fallback_mode="no_fallback", parsing_timeout=None)
    if not completion:
        return False
    pred_extracted = parse(completion.strip(), configs, fallback_mode="no_fallback", parsing_timeout=None)
    # PassAtK calls compare_gold_target(pred, gold, formatted_doc): the Doc lands in the
    # ``precision`` argument, so a comparison that reaches float rounding (a Float on
    # either side, e.g. 0.5 vs 1/2) raises and scores 0. Reproduced with the same kind of
    # argument; math-verify has the same structure (the error ends that pair's comparison).
    return bool(
        verify(pred_extracted, gold_extracted, float_rounding=_DOC_AS_PRECISION, timeout_seconds=None)
    )


def _lighteval_letter_regexes() -> list[tuple[re.Pattern[str], int]]:
    """lighteval v0.9.2 ``lazy_indices_regex`` for English, letters A–D."""
    indices = "(?P<indices>A|B|C|D)"
    suffix = r"(?:\*\*)?(?:[\.\.]|[\,\,]|[\:\:]|\ |$)"
    answer_re = rf"(^|\ )(?:\*\*)?{indices}{suffix}"
    patterns = [
        (rf"(?i:final answer is)\:?\s*{indices}\.?\s?I hope", 0),
        (rf"(?i:final answer.{{0,100}}?)\s+is\:?\s*{indices}", 50),
        (rf"(?i:answer)[\:\:].{{0,50}}?{answer_re}", 100),
        (rf"(?i:answer).{{0,50}}?{answer_re}", 150),
        (rf"^(?:\*\*)?{indices}{suffix}", 200),
        (answer_re, 250),
        (indices, 300),
    ]
    return [(re.compile(p), priority) for p, priority in patterns]


def lighteval_letter(text: str) -> str | None:
    """The letter lighteval extracts: the best-priority pattern that matches, and within it the
    match that ends last (``extract_target_from_pred``); None when no pattern matches."""
    for _, group in groupby(_lighteval_letter_regexes(), key=lambda x: x[1]):
        matches = [m for pattern, _ in group for m in pattern.finditer(text)]
        if matches:
            return max(matches, key=lambda m: (m.end(), -m.start())).group("indices")
    return None


def lighteval_check(benchmark: str, gold: str, completion: str) -> bool:
    """lighteval's verdict on one sample (``math_pass@1``/``gpqa_pass@1`` metrics)."""
    if benchmark == "gpqa_diamond":
        # multilingual_extractive_match_metric: both sides extracted; equal, non-empty strings.
        return bool(completion) and lighteval_letter(completion) == lighteval_letter(gold)
    return lighteval_math_check(gold, completion)
