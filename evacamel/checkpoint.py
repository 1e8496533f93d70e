"""Checkpoints that survive a disconnect: atomic writes, ``weights_only`` loads, RNG states.

A checkpoint is a plain ``dict`` of tensors, numbers, strings, lists and dicts, so that
:func:`load_checkpoint` can use ``torch.load(..., weights_only=True)`` (no pickled
Python objects, nothing executed on load). The training loop's keys are described in
:mod:`evacamel.train`; this module knows only how to write and read such a dict safely,
and how to capture and restore every random number generator a run uses:

* torch's CPU generator (``torch.get_rng_state``, a ``uint8`` tensor),
* every CUDA device's generator (a list of ``uint8`` tensors; empty without CUDA),
* numpy's global ``MT19937`` state (its 624-word key stored as an ``int64`` tensor),
* Python's :mod:`random` state (a version int, a list of 625 ints, ``gauss_next``).

Writes go to a temporary file in the destination folder, are flushed to disk, and then
``os.replace`` the old file, so a run killed mid-save (a Colab disconnect, a full Google
Drive) leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

__all__ = ["save_checkpoint", "copy_checkpoint", "load_checkpoint", "check_weights",
           "load_weights", "rng_state", "set_rng_state"]


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save ``state`` (tensors and primitive containers only) to ``path`` atomically.

    Raises:
        TypeError: ``state`` holds something ``weights_only`` loading would refuse
            (checked before anything is written, so the old file is kept).
    """
    path = Path(path)
    _check_loadable(state, "state")
    with _atomic_file(path) as f:
        torch.save(state, f)
    return path


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the checkpoint ``src`` to ``dst`` atomically (e.g. ``last.pt`` -> ``best.pt``).

    The copy goes to a fresh temporary name beside ``dst`` and replaces it only when
    complete; on any failure (a full disk) the temporary file is removed and ``dst`` is
    left as it was.
    """
    dst = Path(dst)
    with open(src, "rb") as source, _atomic_file(dst) as f:
        shutil.copyfileobj(source, f, 1 << 20)
    return dst


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint (truncated, not a torch file,
            or holding pickled objects); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise  # unreadable (permissions, I/O): the message names the file already
    except Exception as exc:  # torch raises several types for a bad file
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            raise ValueError(f"{path}: holds pickled Python code ({found.group(1)}), which is never "
                             f"loaded; a checkpoint holds only tensors, numbers, strings, lists "
                             f"and dicts (use one written by `evacamel train`)") from exc
        raise ValueError(f"{path}: not a readable evacamel checkpoint (truncated, or not written "
                         f"by `evacamel train`: {type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: a checkpoint must hold a dict, found {type(state).__name__}")
    return state


def check_weights(expected: Mapping[str, torch.Tensor], weights: Any, model: str = "model") -> None:
    """Raise ValueError, in one line, unless ``weights`` has exactly the tensors (names and
    shapes) of ``expected`` (a model's ``state_dict()``; on the ``meta`` device is enough).

    The first missing, unexpected or differently shaped tensor is named: a model of
    another width shows here.
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"the model weights are a {type(weights).__name__}, not a dict of tensors")
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [k for k in expected if k in weights and (
        not isinstance(weights[k], torch.Tensor) or weights[k].shape != expected[k].shape)]
    if wrong:
        k = wrong[0]
        found = list(weights[k].shape) if isinstance(weights[k], torch.Tensor) else type(weights[k]).__name__
        raise ValueError(f"weights of another model: {k} is {found} there, "
                         f"{list(expected[k].shape)} in this {model} ({len(wrong)} tensors differ; "
                         f"another width?)")
    if missing or unexpected:
        first = f"no {missing[0]!r}" if missing else f"an unexpected {unexpected[0]!r}"
        raise ValueError(f"weights of another model: {first} ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected for this {model})")


def load_weights(model: torch.nn.Module, weights: Any) -> None:
    """``model.load_state_dict(weights)`` after :func:`check_weights` (ValueError, one line)."""
    check_weights(model.state_dict(), weights, type(model).__name__)
    model.load_state_dict(weights)


_PRIMITIVES = (type(None), bool, int, float, str, torch.Tensor, torch.Size)


def _check_loadable(obj: Any, where: str) -> None:
    """Raise TypeError if ``obj`` holds anything but tensors, primitives, lists, tuples, dicts."""
    if isinstance(obj, _PRIMITIVES):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not str or int")
            _check_loadable(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_loadable(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}; a checkpoint may hold only tensors, "
                    "numbers, strings, lists, tuples and dicts (weights_only loading)")


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and primitives (see the module docstring)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": list(words), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by :func:`rng_state`.

    CUDA states are restored only when CUDA is available and the device count matches
    (a run may resume on other hardware; its data order is still exact, its CUDA
    sampling then is not).
    """
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
