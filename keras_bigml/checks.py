"""Checks of parameter values, each failing with one `ConfigError` sentence that names the value.

>>> positive_int("epochs", 3)
3
>>> positive_int("epochs", 0)
Traceback (most recent call last):
...
keras_bigml.errors.ConfigError: epochs must be a whole number of at least 1, got 0.
>>> fraction("test_size", 1.5)
Traceback (most recent call last):
...
keras_bigml.errors.ConfigError: test_size must lie strictly between 0 and 1, got 1.5.
"""

import math
from collections.abc import Collection
from typing import TypeVar

from keras_bigml.errors import ConfigError

T = TypeVar("T")


def positive_int(name: str, value: object, minimum: int = 1, optional: bool = False) -> int | None:
    """``value`` if it is an int of at least ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, got {value!r}.")
    return value


def positive_ints(name: str, values: object, optional: bool = False) -> tuple[int, ...] | None:
    """A tuple of ints of at least 1 (layer widths, label lists), non-empty."""
    if values is None and optional:
        return None
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values:
        raise ConfigError(f"{name} needs at least one value.")
    for value in values:
        positive_int(name, value)
    return values


def positive_number(name: str, value: object, allow_zero: bool = False, optional: bool = False) -> float | None:
    """A finite number above 0 (or at least 0 with ``allow_zero``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            value < 0 or (value == 0 and not allow_zero):
        bound = "at least 0" if allow_zero else "above 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}.")
    return value


def fraction(name: str, value: object) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{name} must lie strictly between 0 and 1, got {value!r}.")
    return value


def one_of(name: str, value: T, allowed: Collection) -> T:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"Unknown {name} {value!r}: use one of {', '.join(map(str, allowed))}.")
    return value
