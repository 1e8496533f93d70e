"""The argument types of every command and benchmark, in one place.

``argparse`` refuses a bad value with its usage message and exit status 2, before
anything runs (``evacamel train: error: argument --width: 0 must be at least 1``);
run-time errors are one line and exit status 1 (see :mod:`evacamel.cli`). Each type is
a function ``str -> value`` that raises :class:`argparse.ArgumentTypeError`.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import PureWindowsPath

__all__ = ["positive_int", "non_negative_int", "seed", "positive_float", "non_negative_float",
           "fraction", "byte_size", "input_size", "shard", "xywh_box", "non_empty_path",
           "plain_file_name", "image_file", "IMAGE_FORMATS"]

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
"""File suffixes an image may be written as, and their format names (matplotlib, PIL)."""


def _number(kind: Callable[[str], float], text: str) -> float:
    try:
        return kind(text.strip())
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None


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


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2**63) (what :class:`torch.Generator` takes)."""
    value = non_negative_int(text)
    if value >= 1 << 63:
        raise argparse.ArgumentTypeError(f"{value} must be below 2**63")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(float, text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(float, text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} must be a number >= 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a fraction in [0, 1)")
    return value


def byte_size(text: str) -> int:
    """Bytes above zero, with an optional binary unit: ``500M``, ``20G``, ``1.5T``, ``123456``."""
    number, unit = text.strip().lower().removesuffix("b").removesuffix("i"), 1
    if number[-1:] in _UNITS:
        number, unit = number[:-1], _UNITS[number[-1]]
    try:
        value = int(float(number) * unit)
    except (ValueError, OverflowError):  # "abc", "nan", "inf"
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a size above 0 such as 500M or 20G, got {text!r}")
    return value


def input_size(text: str) -> int:
    """A model input side: a positive multiple of 32 (the U-Net halves it five times)."""
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"{value} must be a multiple of 32 (the U-Net halves "
                                         "it five times)")
    return value


def shard(text: str) -> tuple[int, int]:
    """``I/N``: part I (0-based) of N, ``0 <= I < N``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 0/4")
    i, n = int(match[1]), int(match[2])
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: I/N needs 0 <= I < N (parts count from 0)")
    return i, n


def xywh_box(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H``: a box in pixels, left and top >= 0, width and height at least 2."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,W,H (four integers in pixels), "
                                         "e.g. 40,30,200,180")
    x, y, w, h = (non_negative_int(p) for p in parts)
    if w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: the width and height must be at least 2 "
                                         "pixels")
    return x, y, w, h


def non_empty_path(text: str) -> str:
    """A path that is not empty or blank (``--out ""`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a folder or file")
    return text


def plain_file_name(text: str) -> str:
    """A plain file name or prefix: not empty, no folders (``/`` or ``\\``), not ``.`` or
    ``..``, no NUL (so it cannot name a file outside the folder it is written in)."""
    if (not text.strip() or text in (".", "..") or any(c in text for c in "/\\\0")
            or PureWindowsPath(text).drive):
        raise argparse.ArgumentTypeError(f"must be a plain file name (no folders, no '..'), "
                                         f"got {text!r}")
    return text


def image_file(text: str) -> str:
    """A file name ending in .png, .jpg or .jpeg (the format is taken from it)."""
    path = non_empty_path(text)
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in IMAGE_FORMATS:
        raise argparse.ArgumentTypeError(f"{text!r}: name a .png or .jpg file")
    return path
