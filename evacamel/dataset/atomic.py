"""Files written whole or not at all: a temporary name in the same folder, then ``os.replace``.

A killed process leaves at most a ``.<name>.<pid>.tmp`` file, which
:func:`clean_stale_temps` removes once that process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["tmp_name", "atomic_write", "write_json", "pid_alive", "clean_stale_temps", "folder_lock"]


def tmp_name(path: Path) -> Path:
    """The temporary name ``path`` is written under: ``.<name>.<pid>.tmp`` in its folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (UTF-8, newline at the end), written atomically."""
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folders: Iterable[Path]) -> None:
    """Remove ``.name.<pid>.tmp`` files left in ``folders`` by dead processes (killed runs)."""
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if name.startswith(".") and name.endswith(".tmp"):
                    pid = name[:-4].rsplit(".", 1)[-1]
                    if pid.isdigit() and not pid_alive(int(pid)):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)


@contextlib.contextmanager
def folder_lock(folder: Path, poll_s: float = 0.5) -> Iterator[None]:
    """Hold ``<folder>.lock`` (created with ``O_CREAT | O_EXCL``, holding our pid).

    One process at a time builds a folder; the others wait here until it is done. A lock
    left by a process that died is taken over (the build it guarded is resumable).
    """
    lock = folder.with_name(folder.name + ".lock")
    folder.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            try:
                age = time.time() - lock.stat().st_mtime
            except OSError:
                continue  # released meanwhile
            # A dead holder's lock, or one left empty by a process killed between creating
            # and writing it, is taken over (the build it guarded resumes).
            if (pid and not pid_alive(pid)) or (not pid and age > 60):
                with contextlib.suppress(OSError):
                    lock.unlink()
                continue
            time.sleep(poll_s)
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()

