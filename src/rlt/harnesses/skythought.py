"""SkyThought (NovaSky-AI/SkyThought at ``4bb8f3e``, the RLT paper's evaluation) as it words, reads and scores.

Prompts: ``skythought/evals/tasks/{aime,math,gpqa_diamond}/*`` (task YAMLs,
``gpqa_diamond_handler.py``); answer extraction, normalisation and equality:
``skythought/evals/util/math_parsing_util.py``; the k of pass@k: ``skythought/evals/util/metrics.py``.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from rlt.harnesses.specs import GPQA_OPTIONS

# --------------------------------------------------------------------------- prompts

SKYTHOUGHT_MATH_TEMPLATE = "Return your final response within \\boxed{{}}. {prompt}"
SKYTHOUGHT_GPQA_TEMPLATE = (
    "Return your final response within \\boxed{{}} and only include the letter choice (A, B, C, or D) "
    "as your final response. {prompt}"
)


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


def skythought_question(benchmark: str, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One row as ``{"question": user message, "solution": reference}`` in SkyThought's words
    (GPQA: the options shuffled by ``rng``, which goes on from row to row)."""
    if benchmark == "gpqa_diamond":
        line, letter = skythought_gpqa_options(row, rng)
        question = SKYTHOUGHT_GPQA_TEMPLATE.format(prompt=f"{row['Question']}\n{line}")
        return {"question": question, "solution": letter}
    return {
        "question": SKYTHOUGHT_MATH_TEMPLATE.format(prompt=row["problem"]),
        "solution": str(row["answer"]),
    }


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
