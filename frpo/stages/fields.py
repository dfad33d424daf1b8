"""Field checks every run spec makes first: declared types and ranges, each error naming its field.

A :class:`SpecError` carries the field's name (``max_steps``, ``source.size``), so a profile
check (:mod:`frpo.book.params`) can point at the parameter that set it.
"""

from __future__ import annotations

import dataclasses
import math


class SpecError(ValueError):
    """A spec field with a bad value; ``field`` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


_EXPECTED = {  # field annotation -> (accepted check, words for the message)
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
        "a finite number",
    ),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "tuple[str, ...]": (
        lambda v: isinstance(v, list | tuple) and all(isinstance(x, str) for x in v),
        "a list of strings",
    ),
    "tuple[tuple[str, str], ...]": (
        lambda v: (
            isinstance(v, list | tuple)
            and all(isinstance(p, list | tuple) and len(p) == 2 for p in v)
            and all(isinstance(x, str) for p in v for x in p)
        ),
        "(name, path-or-id) string pairs",
    ),
}


def check_field_types(spec) -> None:
    """SpecError for the first field whose value is not of its declared type (``max_steps:
    3.5``, ``lr: "2e-4"``); the spec classes call it first, so every rule lives here."""
    for f in dataclasses.fields(spec):
        check = _EXPECTED.get(str(f.type))
        value = getattr(spec, f.name)
        if check is not None and not check[0](value):
            raise SpecError(
                f.name,
                f"{type(spec).__name__}.{f.name} must be {check[1]}, got {value!r} "
                f"({type(value).__name__})",
            )


def positive(name: str, value: float) -> None:
    """SpecError unless ``value`` is a finite number > 0."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise SpecError(name, f"{name} must be > 0, got {value!r}")


def non_negative(name: str, value: int) -> None:
    """SpecError unless ``value`` >= 0."""
    if value < 0:
        raise SpecError(name, f"{name} must be >= 0, got {value!r}")
