"""`rlt eval --harness skythought|lighteval`: AIME24, MATH-500 and GPQA-Diamond as a published harness runs them.

A number is comparable with a published one only when everything around the model is
the harness's: which rows, in which order; the system and user prompts; how the GPQA
options are shuffled; the sampling; how an answer is read from the output and compared
with the reference; and how the scores are averaged. This module reproduces that for

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
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError, DataError
from rlt.evaluate import pass_at_k
from rlt.formats import STRATOS_SYSTEM_PROMPT
from rlt.verify import MathVerifier

logger = logging.getLogger(__name__)

HARNESSES = ("rlt", "skythought", "lighteval")
BENCHMARKS = ("aime24", "math500", "gpqa_diamond")
GPQA_OPTIONS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

# SkyThought's `skythought` system prompt (models/model_configs.yaml) as YAML parses it:
# the Bespoke-Stratos text, except that YAML turns its '\n\n' into two real newlines.
SKY_T1_SYSTEM_PROMPT = STRATOS_SYSTEM_PROMPT.replace("'\\n\\n'", "'\n\n'")


# --------------------------------------------------------------------------- harness settings


@dataclass(frozen=True)
class HarnessSpec:
    """Where a harness reads a benchmark and how it samples it.

    ``dataset`` is ``(hub id, config, split)``; ``num_samples`` is the harness's n for
    the benchmark (lighteval's largest ``pass@1:n_samples`` metric).
    """

    harness: str
    source: str
    dataset: tuple[str, str | None, str]
    temperature: float
    top_p: float
    max_new_tokens: int
    num_samples: int
    seed: int
    system_prompt: str | None


SPECS: dict[tuple[str, str], HarnessSpec] = {
    # SkyThought: cli.py SAMPLING_PARAMS_DEFAULT "temperature=0,top_p=1,max_tokens=32768",
    # n=1, --seed 41; the task YAMLs' data sets; system prompt: the `skythought` entry.
    ("skythought", "aime24"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("AI-MO/aimo-validation-aime", None, "train"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    ("skythought", "math500"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("qq8933/MATH500", None, "test"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    ("skythought", "gpqa_diamond"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("Idavidrein/gpqa", "gpqa_diamond", "train"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    # lighteval as open-r1 runs it: temperature 0.6, top_p 0.95, 32768 tokens, no system
    # prompt, pass@1 from 64 (AIME), 4 (MATH-500), 8 (GPQA) samples; random.seed(1234).
    ("lighteval", "aime24"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("HuggingFaceH4/aime_2024", "default", "train"), 0.6, 0.95, 32768, 64, 1234, None),
    ("lighteval", "math500"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("HuggingFaceH4/MATH-500", "default", "test"), 0.6, 0.95, 32768, 4, 1234, None),
    ("lighteval", "gpqa_diamond"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("Idavidrein/gpqa", "gpqa_diamond", "train"), 0.6, 0.95, 32768, 8, 1234, None),
}  # fmt: skip


def get_spec(harness: str, benchmark: str) -> HarnessSpec:
    """The settings of ``harness`` on ``benchmark``; a ConfigError naming the field otherwise."""
    if harness not in HARNESSES:
        raise ConfigError(f"harness: unknown harness {harness!r}; expected one of {list(HARNESSES)}")
    if (harness, benchmark) not in SPECS:
        raise ConfigError(f"task: harness {harness} runs {list(BENCHMARKS)}, not {benchmark!r}")
    return SPECS[(harness, benchmark)]


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


def skythought_gpqa_options(row: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """``(options line, correct letter)`` of gpqa_diamond_handler.get_multiple_choice_answers.

    The four answers, correct first, are shuffled in place by the global ``random``
    (seeded once with ``--seed``, 41, then drawn row after row), joined as
    ``A) …, B) …, C) …, D) …`` on one line; the letter is the first whose text equals
    the correct answer.
    """
    answers = [row[c] for c in GPQA_OPTIONS]
    rng.shuffle(answers)
    letters = "ABCD"
    line = ", ".join(f"{letter}) {answer}" for letter, answer in zip(letters, answers))
    correct = next(letter for letter, answer in zip(letters, answers) if answer == row["Correct Answer"])
    return line, correct


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
SKYTHOUGHT_MATH_TEMPLATE = "Return your final response within \\boxed{{}}. {prompt}"
SKYTHOUGHT_GPQA_TEMPLATE = (
    "Return your final response within \\boxed{{}} and only include the letter choice (A, B, C, or D) "
    "as your final response. {prompt}"
)


def build_questions(
    harness: str, benchmark: str, rows: list[dict[str, Any]], seed: int | None = None
) -> list[dict[str, Any]]:
    """Rows as ``{"question": user message, "solution": reference}``, as the harness words them.

    ``seed`` (default: the harness's, 41 or 1234) seeds the one generator that shuffles
    every GPQA row in order, so the options depend on a row's position, as in the harness.
    """
    spec = get_spec(harness, benchmark)
    rng = random.Random(spec.seed if seed is None else seed)
    out = []
    for row in rows:
        if benchmark == "gpqa_diamond":
            if harness == "skythought":
                line, letter = skythought_gpqa_options(row, rng)
                question = SKYTHOUGHT_GPQA_TEMPLATE.format(prompt=f"{row['Question']}\n{line}")
            else:
                gold_index = rng.randint(0, 3)
                choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
                choices.insert(gold_index, row["Correct Answer"])
                question = LIGHTEVAL_GPQA_TEMPLATE.format(
                    Question=row["Question"], A=choices[0], B=choices[1], C=choices[2], D=choices[3]
                )
                letter = "ABCD"[gold_index]
            out.append({"question": question, "solution": letter})
        elif harness == "skythought":
            out.append(
                {
                    "question": SKYTHOUGHT_MATH_TEMPLATE.format(prompt=row["problem"]),
                    "solution": str(row["answer"]),
                }
            )
        else:
            # lighteval's MATH-500 reference is the whole solution (its last \boxed{} is
            # extracted); AIME's is the answer.
            gold = row["solution"] if benchmark == "math500" else row["answer"]
            out.append(
                {"question": LIGHTEVAL_MATH_TEMPLATE.format(Question=row["problem"]), "solution": str(gold)}
            )
    return out


def chat_prompt(tokenizer: Any, question: str, system_prompt: str | None) -> str:
    """The chat the harness sends: an optional system turn, then the user message, rendered
    with the model's template and its generation prompt (vLLM ``LLM.chat`` in SkyThought,
    ``--use-chat-template`` in lighteval)."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# --------------------------------------------------------------------------- SkyThought's checking
# Reproduced from skythought/evals/util/math_parsing_util.py at 4bb8f3e (Apache-2.0, itself
# from QwenLM/Qwen2.5-Math); kept line for line so a diff against the source stays readable.


def _convert_word_number(text: str) -> str:
    from word2number import w2n  # SkyThought's own dependency, called as it calls it

    try:
        text = str(w2n.word_to_num(text))
    except Exception:
        pass
    return text


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        for substr in substrs[1:]:
            new_str += "\\frac"
            if len(substr) > 0 and substr[0] == "{":
                new_str += substr
            else:
                if len(substr) < 2:
                    return string
                a, b = substr[0], substr[1]
                if b != "{":
                    new_str += "{" + a + "}{" + b + "}" + substr[2:]
                else:
                    new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        if "sqrt" not in a:
            a = int(a)
        if "sqrt" not in b:
            b = int(b)
        assert string == f"{a}/{b}"
        return "\\frac{" + str(a) + "}{" + str(b) + "}"
    except Exception:
        return string


def strip_answer_string(string: Any) -> str:
    """SkyThought's answer normalisation (fractions, units, ``\\text{}``, number words, …)."""
    string = str(string).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    string = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", string)
    string = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", string)
    string = string.replace("bmatrix", "pmatrix").replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    string = string.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")

    def replace_match(match: re.Match[str]) -> str:
        word = match.group(1).lower()
        return match.group(0) if _convert_word_number(word) == word else _convert_word_number(word)

    string = re.sub(r"\\text\{([a-zA-Z]+)\}", replace_match, string)
    string = re.sub(r"(cm|inches)\}\^2", r"\1}", string)
    _string = re.sub(r"\\text{.*?}$", "", string).strip()
    if _string != "" and _string != string:
        string = _string
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    string = _convert_word_number(string)
    string = re.sub(r"\\text\{(.*?)\}", r"\1", string)
    for key in ["x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"]:
        string = string.replace(key, "")
    string = string.replace("\\emptyset", r"{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    string = string.replace("\\%", "").replace("%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if (
        string.startswith("{") and string.endswith("}") and string.isalnum()
        or string.startswith("(") and string.endswith(")") and string.isalnum()
        or string.startswith("[") and string.endswith("]") and string.isalnum()
    ):  # fmt: skip
        string = string[1:-1]
    string = string.replace("infinity", "\\infty")
    if "\\infty" not in string:
        string = string.replace("inf", "\\infty")
    string = string.replace("+\\inity", "\\infty")
    string = string.replace("and", "").replace("\\mathbf", "")
    string = re.sub(r"\\mbox{.*?}", "", string)
    if "j" in string and "i" not in string:
        string = string.replace("j", "i")
    string = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", string)
    string = re.sub(r"(\d+)\.0*$", r"\1", string)
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]
    string = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    string = _fix_a_slash_b(string)
    string = re.sub(r"\\(?=\-?\d+(\\|\)|,|\]|$))", "", string)
    string = re.sub(r"thgrade$", "", string)
    if re.fullmatch(r"(\s*-?\d+\s*,)*\s*-?\d+\s*", string):
        try:
            integer_list = list(map(int, string.split(",")))
        except Exception:
            integer_list = [-1, -1]
        string = ",".join(map(str, sorted(integer_list)))
    return string


def skythought_extract_answer(pred_str: str) -> str:
    """SkyThought's ``extract_answer``: the text after the *last* ``boxed`` with braces
    matched (unclosed: everything after it), else "he answer is"/"final answer is", else
    the last number; then :func:`strip_answer_string`."""
    pred_str = pred_str.replace("\u043a\u0438", "")
    if "final answer is $" in pred_str and "$. I hope" in pred_str:
        pred = pred_str.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in pred_str:
        ans = pred_str.split("boxed")[-1]
        if len(ans) == 0:
            return ""
        if ans[0] == "{":
            stack, a = 1, ""
            for c in ans[1:]:
                if c == "{":
                    stack += 1
                elif c == "}":
                    stack -= 1
                    if stack == 0:
                        break
                a += c
        else:
            a = ans.split("$")[0].strip()
        pred = a
    elif "he answer is" in pred_str:
        pred = pred_str.split("he answer is")[-1].strip()
    elif "final answer is" in pred_str:
        pred = pred_str.split("final answer is")[-1].strip()
    elif "答案是" in pred_str:
        pred = pred_str.split("答案是")[1].strip().split("\n\n")[0].strip()
    else:
        numbers = re.findall(r"-?\d*\.?\d+", pred_str.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    pred = re.sub(r"\n\s*", "", pred)
    if pred != "" and pred[0] == ":":
        pred = pred[1:]
    if pred != "" and pred[-1] == ".":
        pred = pred[:-1]
    if pred != "" and pred[-1] == "/":
        pred = pred[:-1]
    return strip_answer_string(pred)


def skythought_choice(pred: str) -> str:
    """SkyThought's ``get_multiple_choice_answer``: the last standalone A–D of the upper-cased
    output (a letter inside the reasoning counts when none follows), else the text itself."""
    found = re.findall(r"\b(A|B|C|D)\b", pred.upper())
    pred = found[-1] if found else pred.strip().strip(".")
    return pred.rstrip(".").rstrip("/")


def _choice_answer_clean(pred: str) -> str:
    pred = pred.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = re.findall(r"\b(A|B|C|D|E)\b", pred.upper())
    pred = found[-1] if found else pred.strip().strip(".")
    return pred.rstrip(".").rstrip("/")


def _parse_digits(num: Any) -> float | None:
    num = str(num).replace(",", "")
    try:
        return float(num)
    except Exception:
        if num.endswith("%"):
            num = num[:-1]
            if num.endswith("\\"):
                num = num[:-1]
            try:
                return float(num) / 100
            except Exception:
                pass
    return None


def _str_to_pmatrix(input_str: str) -> str:
    out = []
    for m in re.findall(r"\{.*,.*\}", input_str.strip()):
        m = m.strip("{}")
        out.append(r"\begin{pmatrix}" + m.replace(",", "\\") + r"\end{pmatrix}")
    return ", ".join(out)


def _numeric_equal(prediction: float, reference: float) -> bool:
    return math.isclose(reference, prediction, rel_tol=1e-4)


def _symbolic_equal(a: str, b: str) -> bool:
    from latex2sympy2_extended import latex2sympy
    from sympy import N, simplify
    from sympy.parsing.sympy_parser import parse_expr

    def _parse(s: str) -> Any:
        # SkyThought tries sympy's parse_latex first; in its environment (latex2sympy2
        # pins antlr4 4.7.2) that needs antlr4 >= 4.11 and raises on every call, so the
        # chain that runs there is parse_expr, then latex2sympy.
        for f in (parse_expr, latex2sympy):
            try:
                return f(s.replace("\\\\", "\\"))
            except Exception:
                try:
                    return f(s)
                except Exception:
                    pass
        return s

    a, b = _parse(a), _parse(b)
    try:
        if str(a) == str(b) or a == b:
            return True
    except Exception:
        pass
    try:
        if a.equals(b) or simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        if (abs(a.lhs - a.rhs)).equals(abs(b.lhs - b.rhs)):
            return True
    except Exception:
        pass
    try:
        if _numeric_equal(float(N(a)), float(N(b))):
            return True
    except Exception:
        pass
    try:
        if a.shape == b.shape and a.applyfunc(lambda x: round(x, 3)).equals(
            b.applyfunc(lambda x: round(x, 3))
        ):
            return True
    except Exception:
        pass
    return False


def skythought_math_equal(prediction: str, reference: str, include_percentage: bool = True) -> bool:  # noqa: C901
    """SkyThought's ``math_equal``: text, then numeric (rel. 1e-4, also ×/÷100), then symbolic."""
    if prediction is None or reference is None:
        return False
    if str(prediction.strip().lower()) == str(reference.strip().lower()):
        return True
    if reference in ["A", "B", "C", "D", "E"] and _choice_answer_clean(prediction) == reference:
        return True
    try:
        if _parse_digits(prediction) is not None and _parse_digits(reference) is not None:
            pred_num, ref_num = _parse_digits(prediction), _parse_digits(reference)
            candidates = [ref_num / 100, ref_num, ref_num * 100] if include_percentage else [ref_num]
            return any(_numeric_equal(pred_num, item) for item in candidates)
    except Exception:
        pass
    if not prediction and prediction not in [0, False]:
        return False
    reference, prediction = str(reference).strip(), str(prediction).strip()
    if "pmatrix" in prediction and "pmatrix" not in reference:
        reference = _str_to_pmatrix(reference)
    pred_str, ref_str = prediction, reference
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for s in ["{", "}", "(", ")"]:
        ref_str, pred_str = ref_str.replace(s, ""), pred_str.replace(s, "")
    if pred_str.lower() == ref_str.lower():
        return True
    if (
        re.match(r"(\(|\[).+(\)|\])", prediction) is not None
        and re.match(r"(\(|\[).+(\)|\])", reference) is not None
    ):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            skythought_math_equal(p, r, include_percentage) for p, r in zip(pred_parts, ref_parts)
        ):
            return True
    begin, end = "\\begin{pmatrix}", "\\end{pmatrix}"
    if (
        prediction.startswith((begin, "\\begin{bmatrix}")) and prediction.endswith((end, "\\end{bmatrix}"))
        and reference.startswith((begin, "\\begin{bmatrix}")) and reference.endswith((end, "\\end{bmatrix}"))
    ):  # fmt: skip
        pred_lines = [x.strip() for x in prediction[len(begin) : -len(end)].split("\\\\") if x.strip()]
        ref_lines = [x.strip() for x in reference[len(begin) : -len(end)].split("\\\\") if x.strip()]
        matched = len(pred_lines) == len(ref_lines)
        for pred_line, ref_line in zip(pred_lines, ref_lines) if matched else ():
            pp, rp = pred_line.split("&"), ref_line.split("&")
            if len(pp) != len(rp) or not all(
                skythought_math_equal(p, r, include_percentage) for p, r in zip(pp, rp)
            ):
                matched = False
                break
        if matched:
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        p, r = prediction.split("="), reference.split("=")
        pred = f"{p[0].strip()} - ({p[1].strip()})"
        ref = f"{r[0].strip()} - ({r[1].strip()})"
        if _symbolic_equal(pred, ref) or _symbolic_equal(f"-({pred})", ref):
            return True
    elif prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        if skythought_math_equal(prediction.split("=")[1], reference, include_percentage):
            return True
    elif reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        if skythought_math_equal(prediction, reference.split("=")[1], include_percentage):
            return True
    return _symbolic_equal(prediction, reference)


def skythought_check(benchmark: str, gold: str, completion: str) -> bool:
    """SkyThought's verdict on one output (``check_correctness`` of the task's handler).

    The output is stripped first (``_parse_response_for_idx``); math: extract, normalise
    both sides, ``math_equal(pred, answer)``; GPQA: the letter equals the correct one.
    """
    completion = completion.strip()
    if benchmark == "gpqa_diamond":
        return skythought_choice(completion) == gold
    return skythought_math_equal(skythought_extract_answer(completion), strip_answer_string(gold))


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


def skythought_ks(n: int) -> list[int]:
    """The k of SkyThought's pass@k (metrics.py): n, then halving; a non-power-of-two n
    goes next to the largest power of two below it."""
    ks, k = [], n
    power_of_2 = n == 2 ** int(math.log2(n))
    while k > 0:
        ks.append(k)
        k = 2 ** int(math.log2(n)) if (not power_of_2 and k == n) else k // 2
    return ks


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
    """Generate ``num_samples`` outputs per question and score them as ``harness`` does.

    ``rows`` are :func:`build_questions`' rows. Every (question, sample) has its own
    seed (vLLM), so a run is the same whatever the batching; transformers seeds each
    batch. ``generate(prompts, seed) -> texts`` replaces the model (tests). Returns the
    summary and the per-sample records.
    """
    from rlt.generation import SamplingSettings, generate_transformers, generate_vllm, stop_ids

    if num_samples < 1:
        raise ConfigError(f"num_samples: must be >= 1, got {num_samples}")
    if temperature == 0 and num_samples > 1:
        # cli.py: "Temperature 0 does not support multiple samples. Setting n=1."
        logger.warning(
            "num_samples: temperature 0 gives one distinct sample; using num_samples=1 (as SkyThought)"
        )
        num_samples = 1
    prompts_by_row = [chat_prompt(tokenizer, r["question"], system_prompt) for r in rows]
    if generate is None:
        longest = max(
            (len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts_by_row), default=0
        )
        max_new_tokens = cap_budget(max_new_tokens, model_context_length(model, tokenizer, llm), longest)
    settings = SamplingSettings(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    jobs = [(i, s) for i in range(len(rows)) for s in range(num_samples)]
    texts: list[str] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        prompts = [prompts_by_row[i] for i, _ in batch]
        if generate is not None:
            texts.extend(generate(prompts, seed + start))
            continue
        if llm is not None:
            seeds = [seed * 1_000_003 + i * 1_009 + s for i, s in batch]
            ids = generate_vllm(llm, prompts, settings, seeds, stop_ids(tokenizer))
        else:
            ids = generate_transformers(model, tokenizer, prompts, settings, seed + start)
        # Both harnesses score the text vLLM returns: special tokens skipped.
        texts.extend(tokenizer.decode(x, skip_special_tokens=True) for x in ids)
    samples, correct = [], [[False] * num_samples for _ in rows]
    with HarnessChecker(timeout=math_timeout) as checker:
        for (i, s), text in zip(jobs, texts):
            ok, status = checker.check_output(harness, benchmark, rows[i]["solution"], text)
            correct[i][s] = ok
            samples.append({"index": i, "sample": s, "question": rows[i]["question"], "solution": rows[i]["solution"],
                            "completion": text, "correct": ok, "status": status})  # fmt: skip
    ks = skythought_ks(num_samples) if harness == "skythought" else [1]
    summary = summarise_harness(correct, ks)
    summary.update(
        harness=harness, benchmark=benchmark, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
        seed=seed, timeouts=sum(x["status"] == "timeout" for x in samples),
        errors=sum(x["status"] == "error" for x in samples),
    )  # fmt: skip
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

    from rlt.generation import choose_backend
    from rlt.loading import load_model_and_tokenizer, load_tokenizer
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
    logger.info(
        f"eval {args.task} as {spec.source}: {len(questions)} questions, n={num_samples}, "
        f"temperature {temperature}, top_p {spec.top_p}, {max_new_tokens} new tokens, seed {seed}"
    )
    backend = choose_backend(args.backend)
    llm = None
    if backend == "vllm":
        model, tok = None, load_tokenizer(args.model)
        prompts = [chat_prompt(tok, q["question"], system) for q in questions]
        llm = start_engine(args.model, seed, vllm_args or VLLMArguments(), tok, prompts, max_new_tokens)
    else:
        model, tok = load_model_and_tokenizer(args.model)
    summary, samples = run_harness(
        model, tok, args.harness, args.task, questions, num_samples=num_samples, temperature=temperature,
        top_p=spec.top_p, max_new_tokens=max_new_tokens, system_prompt=system, seed=seed,
        batch_size=args.batch_size, llm=llm, math_timeout=args.math_timeout,
    )  # fmt: skip
    summary["source"] = spec.source
    out = Path(args.out)
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
