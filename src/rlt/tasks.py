"""Built-in tasks, generated from a seed (no downloads), each with a verifier.

``digits``: a running value modulo m under k operations, e.g.
``start 7; +5; *3; -4 (mod 10)`` -> ``2``; its reasoning trace lists every
intermediate value (``7+5=2; 2*3=6; 6-4=2``). It also writes explanations in four
styles for the miniature reproduction (``steps``, ``leak``, ``wrong``, ``filler``)
and classifies an explanation's style by parsing it.

``countdown``: numbers and a target; the answer is an arithmetic expression that
uses each number exactly once. The verifier parses with :mod:`ast` (never ``eval``)
and computes with :class:`fractions.Fraction`, so ``6/4*2 == 3`` is exact.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

STYLES = ("steps", "leak", "wrong", "filler")

_OPS = {"+": lambda a, b, m: (a + b) % m, "-": lambda a, b, m: (a - b) % m, "*": lambda a, b, m: (a * b) % m}
_QUESTION_RE = re.compile(r"^start (\d+); (.*) \(mod (\d+)\)$")
_STEP_RE = re.compile(r"(\d+)\s*([+\-*])\s*(\d+)\s*=\s*(\d+)")
_FILLER = (
    "let me think about this",
    "this one needs care",
    "we work it out slowly",
    "keep going and check",
    "it follows from the rules",
    "think it through",
)


@dataclass(frozen=True)
class DigitsProblem:
    start: int
    ops: tuple[tuple[str, int], ...]
    modulus: int

    @property
    def question(self) -> str:
        body = "; ".join(f"{op}{n}" for op, n in self.ops)
        return f"start {self.start}; {body} (mod {self.modulus})"

    def chain(self) -> list[tuple[int, str, int, int]]:
        """Every step as ``(value before, op, operand, value after)``."""
        out, v = [], self.start
        for op, n in self.ops:
            w = _OPS[op](v, n, self.modulus)
            out.append((v, op, n, w))
            v = w
        return out

    @property
    def answer(self) -> int:
        return self.chain()[-1][3] if self.ops else self.start

    @classmethod
    def parse(cls, question: str) -> DigitsProblem:
        match = _QUESTION_RE.match(question.strip())
        if not match:
            raise ValueError(f"not a digits question: {question!r}")
        ops = []
        for part in match.group(2).split(";"):
            part = part.strip()
            if not part or part[0] not in _OPS or not part[1:].isdigit():
                raise ValueError(f"bad operation {part!r} in digits question {question!r}")
            ops.append((part[0], int(part[1:])))
        return cls(int(match.group(1)), tuple(ops), int(match.group(3)))


def _format_steps(steps: list[tuple[int, str, int, int]]) -> str:
    return "; ".join(f"{a}{op}{n}={b}" for a, op, n, b in steps)


@dataclass
class DigitsTask:
    """Running-value arithmetic modulo ``modulus`` with ``num_ops`` operations."""

    num_ops: int = 3
    modulus: int = 10
    style_mix: dict[str, float] = field(default_factory=lambda: {s: 0.25 for s in STYLES})
    name: str = "digits"

    def sample(self, rng: random.Random) -> DigitsProblem:
        ops = tuple((rng.choice("+-*"), rng.randrange(1, self.modulus)) for _ in range(self.num_ops))
        return DigitsProblem(rng.randrange(self.modulus), ops, self.modulus)

    def generate(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` rows with ``question``, ``solution``, ``reasoning_trace`` (the ``steps`` explanation)."""
        rng = random.Random(seed)
        rows = []
        for _ in range(n):
            p = self.sample(rng)
            rows.append(
                {
                    "question": p.question,
                    "solution": str(p.answer),
                    "reasoning_trace": _format_steps(p.chain()),
                }
            )
        return rows

    # --- explanation styles for the miniature reproduction

    def explanation(self, question: str, style: str, rng: random.Random) -> str:
        """An explanation of ``question`` in ``style`` (one of :data:`STYLES`)."""
        p = DigitsProblem.parse(question)
        if style == "steps":
            return _format_steps(p.chain())
        if style == "leak":
            return f"answer {p.answer}"
        if style == "wrong":
            steps = p.chain()
            i = rng.randrange(len(steps))
            v = steps[i][0]
            out = steps[:i]
            for j, (_, op, n, right) in enumerate(steps[i:]):
                w = _OPS[op](v, n, p.modulus)
                if j == 0:  # one slip, then carried on consistently from the wrong value
                    w = (right + rng.randrange(1, p.modulus)) % p.modulus
                out.append((v, op, n, w))
                v = w
            return _format_steps(out)
        if style == "filler":
            return ", ".join(rng.sample(_FILLER, 2))
        raise ValueError(f"unknown explanation style {style!r}; expected one of {STYLES}")

    def mixed_explanations(self, questions: list[str], seed: int = 0) -> list[tuple[str, str]]:
        """``(style, explanation)`` per question, styles drawn from :attr:`style_mix`."""
        unknown = set(self.style_mix) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown styles in style_mix: {sorted(unknown)}; expected {STYLES}")
        if any(w < 0 for w in self.style_mix.values()) or sum(self.style_mix.values()) <= 0:
            raise ValueError(f"style_mix weights must be >= 0 with a positive sum, got {self.style_mix}")
        rng = random.Random(seed)
        styles, weights = zip(*self.style_mix.items())
        out = []
        for q in questions:
            style = rng.choices(styles, weights)[0]
            out.append((style, self.explanation(q, style, rng)))
        return out

    @staticmethod
    def classify_style(question: str, explanation: str) -> str:
        """Which style an explanation is, by parsing it against the question.

        ``steps``: every operation's step, all correct; ``wrong``: step-shaped text with
        a mistake or a missing step; ``leak``: no steps, but states the answer;
        ``filler``: neither steps nor the answer.
        """
        p = DigitsProblem.parse(question)
        found = [(int(a), op, int(n), int(b)) for a, op, n, b in _STEP_RE.findall(explanation)]
        if found:
            return "steps" if found == p.chain() else "wrong"
        if str(p.answer) in re.findall(r"\d+", explanation):
            return "leak"
        return "filler"

    def verify(self, question: str, answer: str) -> bool:
        """True when ``answer`` is the final value of ``question``."""
        try:
            return int(answer.strip()) == DigitsProblem.parse(question).answer
        except ValueError:
            return False


# --------------------------------------------------------------------------- countdown


class CountdownError(ValueError):
    """An expression the countdown verifier refuses (and why)."""


def _eval_node(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        a, b = _eval_node(node.left, used), _eval_node(node.right, used)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise CountdownError("division by zero")
        return a / b
    raise CountdownError(f"not allowed in a countdown expression: {ast.dump(node)[:60]}")


def evaluate_countdown(expression: str, numbers: list[int]) -> Fraction:
    """Value of ``expression``; raises :class:`CountdownError` unless it uses each number exactly once."""
    text = expression.replace("×", "*").replace("÷", "/").replace("−", "-").strip()
    if len(text) > 200:
        raise CountdownError("expression too long")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise CountdownError(f"cannot parse {expression!r}") from err
    used: list[int] = []
    value = _eval_node(tree, used)
    if Counter(used) != Counter(numbers):
        raise CountdownError(f"uses {sorted(used)}, must use each of {sorted(numbers)} exactly once")
    return value


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
# TinyZero gives a well-formed but wrong countdown answer a small credit.
COUNTDOWN_FORMAT_CREDIT = 0.1


@dataclass
class CountdownTask:
    """TinyZero-style countdown: reach ``target`` from ``numbers`` with + - * / and parentheses."""

    num_numbers: int = 3
    max_number: int = 20
    name: str = "countdown"

    def generate(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        rows = []
        while len(rows) < n:
            nums = [rng.randint(1, self.max_number) for _ in range(self.num_numbers)]
            expr = str(nums[0])
            for x in nums[1:]:
                op = rng.choice("+-*/")
                expr = f"({expr}){op}{x}" if op in "*/" and any(c in expr for c in "+-") else f"{expr}{op}{x}"
            try:
                value = evaluate_countdown(expr, nums)
            except CountdownError:
                continue
            if value.denominator != 1 or value <= 0:
                continue
            order = nums[:]
            rng.shuffle(order)
            rows.append(
                {
                    "question": f"Using the numbers {order}, create an expression that equals {value}. "
                    "Use each number exactly once with + - * / and parentheses. "
                    "Give the expression in <answer></answer> tags.",
                    "solution": f"<answer>{expr}</answer>",
                    "reasoning_trace": f"{expr} = {value}",
                    "numbers": order,
                    "target": int(value),
                }
            )
        return rows

    @staticmethod
    def parse_question(question: str) -> tuple[list[int], Fraction]:
        m = re.search(r"numbers \[([\d,\s]+)\], create an expression that equals (-?\d+)", question)
        if not m:
            raise ValueError(f"not a countdown question: {question[:80]!r}")
        return [int(x) for x in m.group(1).split(",")], Fraction(int(m.group(2)))

    @staticmethod
    def extract_expression(answer: str) -> str | None:
        found = _ANSWER_RE.findall(answer)
        return found[-1].strip() if found else None

    def partial_credit(self, answer: str) -> float:
        """TinyZero's credit for a wrong answer: :data:`COUNTDOWN_FORMAT_CREDIT` when well-formed."""
        return COUNTDOWN_FORMAT_CREDIT if self.extract_expression(answer) is not None else 0.0

    def verify(self, question: str, answer: str) -> bool:
        """True when ``answer`` (an expression, optionally in ``<answer>`` tags) reaches the target."""
        numbers, target = self.parse_question(question)
        expr = self.extract_expression(answer)
        expr = answer if expr is None else expr
        try:
            return evaluate_countdown(expr, numbers) == target
        except CountdownError:
            return False


TASKS = {"digits": DigitsTask, "countdown": CountdownTask}


def get_task(name: str, **kwargs: Any) -> DigitsTask | CountdownTask:
    """A built-in task by name, with its settings (e.g. ``num_ops``, ``modulus``)."""
    if name not in TASKS:
        raise ValueError(f"unknown built-in task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name](**kwargs)
