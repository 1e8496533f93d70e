"""What the commands share: argument types that refuse bad values, and one-line errors.

Argument types make ``argparse`` refuse a value with its usage message (exit status 2);
:func:`one_line_errors` turns what a user can cause at run time (a missing or corrupt
file, a full or read-only disk, a bad image, a bad value) into one line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from PIL import Image

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float",
           "fraction", "one_line_errors", "USER_ERRORS"]

USER_ERRORS = (OSError, ValueError, KeyError, RuntimeError, EOFError, Image.DecompressionBombError)
"""Exceptions a user's input or machine can cause (OSError covers missing files, full or
read-only disks and unreadable images; RuntimeError covers running out of GPU memory)."""


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


def one_line_errors(main: Callable[[argparse.Namespace], int | None]
                    ) -> Callable[[argparse.Namespace], int]:
    """Wrap a command's ``main``: :data:`USER_ERRORS` print one line and return 1."""

    @functools.wraps(main)
    def run(args: argparse.Namespace) -> int:
        try:
            return int(main(args) or 0)
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            text = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
            print(f"evacamel {getattr(args, 'command', '')}: error: {text}", file=sys.stderr)
            return 1

    return run
