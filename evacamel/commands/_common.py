"""Argument types the commands share: ``argparse`` refuses a bad value with its usage
message and exit status 2, before anything runs (run-time errors are one line and exit
status 1, see :mod:`evacamel.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float", "fraction"]


def _number(kind: Callable[[str], float], text: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(_number(int, text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(_number(int, text))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(float, text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(float, text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a number >= 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a fraction in [0, 1)")
    return value
