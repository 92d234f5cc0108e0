"""The pieces every config check is made of: one error per field, read one way.

Each check adds `<field> must be <what was expected>; got <value>`; a field the config
does not have (MISSING) is skipped: a config may drop what it does not use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MISSING = object()


class ConfigError(ValueError):
    """One or more config values are invalid; the message lists each field."""


def get(config, field: str):
    node = config
    for part in field.split("."):
        if part not in node:
            return MISSING
        node = node[part]
    return node


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


class Checker:
    def __init__(self, config):
        self.config = config
        self.errors: list[str] = []

    def fail(self, field: str, expected: str, value) -> None:
        self.errors.append(f"{field} must be {expected}; got {value!r}")

    def one_of(self, field: str, choices: Sequence[str]) -> None:
        value = get(self.config, field)
        if value is not MISSING and value not in choices:
            self.fail(field, f"one of {', '.join(map(str, choices))}", value)

    def flag(self, field: str) -> None:
        value = get(self.config, field)
        if value is not MISSING and not isinstance(value, bool):
            self.fail(field, "True or False", value)

    def integer(self, field: str, minimum: int) -> None:
        value = get(self.config, field)
        if value is not MISSING and not (is_int(value) and value >= minimum):
            self.fail(field, f"an integer >= {minimum}", value)

    def number(
        self, field: str, low: float, high: float = math.inf, *, open_low=False, open_high=False
    ) -> None:
        value = get(self.config, field)
        if value is MISSING:
            return
        above = value > low if open_low else value >= low
        below = value < high if open_high else value <= high
        if not (is_number(value) and above and below):
            left, right = "(" if open_low else "[", ")" if open_high or high == math.inf else "]"
            expected = (
                f"a finite number {'>' if open_low else '>='} {low:g}"
                if high == math.inf
                else f"a number in {left}{low:g}, {high:g}{right}"
            )
            self.fail(field, expected, value)
