"""`decision.target`: what the operating threshold is chosen for.

f1             the threshold of the highest F1 (the default)
recall:R       the highest threshold whose recall is at least R, R in (0, 1]
precision:P    the lowest threshold whose precision is at least P, P in (0, 1]
cost:K         the lowest expected cost K * FN + FP (a missed positive costs K
               false alarms), K > 0
threshold:T    a fixed threshold T in [0, 1]
"""

from __future__ import annotations

import dataclasses
import math

KINDS = ("f1", "recall", "precision", "cost", "threshold")
_FORMS = "f1, recall:R, precision:P, cost:K or threshold:T"
_RANGES = {
    "recall": ("R", "in (0, 1]", lambda v: 0 < v <= 1),
    "precision": ("P", "in (0, 1]", lambda v: 0 < v <= 1),
    "cost": ("K", "> 0 (a missed positive costs K false alarms)", lambda v: v > 0),
    "threshold": ("T", "in [0, 1]", lambda v: 0 <= v <= 1),
}


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed target: `kind` in KINDS and its number (None for f1)."""

    kind: str
    value: float | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value!r}"


def parse_target(text, *, argument: str = "decision.target") -> Target:
    """The Target of "f1", "recall:0.9", "precision:0.8", "cost:10" or "threshold:0.3".

    Raises:
      ValueError: naming `argument`, the text received and the form or range expected.
    """
    if isinstance(text, Target):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{argument} must be a string ({_FORMS}); got {text!r}")
    kind, _, number = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "f1" and not number:
        return Target("f1")
    if kind not in _RANGES or not number:
        raise ValueError(f"{argument} must be {_FORMS}; got {text!r}")
    name, expected, valid = _RANGES[kind]
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not valid(value):
        raise ValueError(f"{argument} {text!r}: {name} must be a number {expected}; got {number!r}")
    return Target(kind, value)
