"""Find written arithmetic steps that are wrong, such as `2 + 3 = 4`.

The five rewards check the format and the final number, never the steps that lead to it,
so an answer can be right while its reasoning is not. This checker is the measurement:
notebooks 04-06 count right answers whose written steps are wrong with it.

A step is an expression of numbers (the first may be negative) and `+ - * / × ÷`
(Python's precedence, no brackets) followed by `= number`; in a chain `a + b = c = d` each
`= number` is checked against the expression.
Numbers may carry thousands separators (`1,000`) and decimals. Anything else (words,
brackets, units between the numbers, an `x` for times) is not a step and is skipped, so
the count is a lower bound. Exact arithmetic (`Fraction`): `1 / 3 = 0.33` counts as
wrong, `12 / 4 = 3.0` as right. Standard library only, linear in the text's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_OPERATOR = r"[-+*/×÷]"
# An expression with at least one operator, then one or more "= result" claims. The look-
# behind keeps a step from starting inside a number or a longer expression.
_STEP = re.compile(
    rf"(?<![\d.,])(?<![-+*/×÷]\s)(?<![-+*/×÷])"
    rf"(?P<expression>-?{_NUMBER}(?:\s*{_OPERATOR}\s*{_NUMBER})+)"
    rf"(?P<results>(?:\s*=\s*-?{_NUMBER}(?![\d]))+)"
)
_TOKEN = re.compile(rf"{_NUMBER}|{_OPERATOR}")
_RESULT = re.compile(rf"-?{_NUMBER}")


@dataclass(frozen=True)
class Step:
    """One written step: its text, the value it claims and the value it has."""

    text: str
    written: Fraction
    actual: Fraction

    @property
    def correct(self) -> bool:
        return self.written == self.actual


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def evaluate(expression: str) -> Fraction | None:
    """The value of `a op b op c ...` with * and / before + and -; None on division by 0."""
    tokens = _TOKEN.findall(expression)
    first_sign = -1 if tokens[0] == "-" else 1
    tokens = tokens[1:] if first_sign == -1 else tokens
    terms: list[Fraction] = [_number(tokens[0])]
    signs: list[int] = [first_sign]
    for operator, operand in zip(tokens[1::2], tokens[2::2], strict=True):
        value = _number(operand)
        if operator in "*×":
            terms[-1] *= value
        elif operator in "/÷":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            terms.append(value)
            signs.append(1 if operator == "+" else -1)
    return sum((sign * term for sign, term in zip(signs, terms, strict=True)), Fraction(0))


def steps(text: str) -> list[Step]:
    """Every checkable step in `text`, in order; one entry per `= result` it claims."""
    found = []
    for match in _STEP.finditer(text):
        actual = evaluate(match["expression"])
        if actual is None:
            continue
        for result in _RESULT.findall(match["results"]):
            found.append(Step(f"{match['expression']} = {result}", _number(result), actual))
    return found


def wrong_steps(text: str) -> list[str]:
    """The steps in `text` whose written result is not the value of their expression."""
    return [step.text for step in steps(text) if not step.correct]
