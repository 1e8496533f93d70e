"""Helpers for tests/test_hostile.py: run the CLI, judge its error, build hostile inputs.

Everything here drives evacamel only through ``evacamel.cli.main`` (the library's
internal modules are being moved around); numpy, PIL, torch, zipfile, tarfile and
http.server are used only to build fixtures.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import resource
import shutil
import struct
import tarfile
import threading
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

# -- running the CLI ---------------------------------------------------------------------


@dataclass
class Result:
    """What one ``evacamel ...`` call did."""

    argv: list[str]
    code: int
    out: str
    err: str
    seconds: float
    exception: BaseException | None = None

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        err = self.err if len(self.err) < 3000 else self.err[:1500] + "\n...\n" + self.err[-1500:]
        return (f"evacamel {' '.join(self.argv)}\n  exit {self.code} after {self.seconds:.1f} s\n"
                f"{self.raised()}  stdout: {self.out[-800:]!r}\n  stderr: {err}")

    def raised(self) -> str:
        """For an escaped exception: its type and message, and the innermost evacamel line."""
        if self.exception is None:
            return ""
        frames = [f for f in traceback.extract_tb(self.exception.__traceback__)
                  if f"{os.sep}evacamel{os.sep}" in f.filename]
        where = ""
        if frames:
            f = frames[-1]
            where = f" at evacamel{f.filename.rsplit(os.sep + 'evacamel', 1)[1]}:{f.lineno} ({f.name})"
        msg = str(self.exception).splitlines()[0][:200] if str(self.exception) else ""
        return f"  raised {type(self.exception).__name__}: {msg}{where}\n"


def run_cli(argv: Sequence[str]) -> Result:
    """``evacamel *argv`` in this process, as a console script would run it.

    An exception that escapes ``main`` is what a user sees as a traceback and exit 1:
    it is recorded that way (its traceback appended to stderr) instead of failing the
    test with it, so the assertions can say what went wrong.
    """
    from evacamel.cli import main

    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    exc: BaseException | None = None
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse, or a command that exits
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=err)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - this is what the test looks for
            exc = e
            code = 1
            err.write("Traceback (most recent call last):\n" + "".join(
                traceback.format_exception(type(e), e, e.__traceback__)[1:]))
    return Result(argv, int(code or 0), out.getvalue(), err.getvalue(),
                  time.perf_counter() - t0, exc)


# The contract says exit code 1 for every error a user can cause. For triage,
# HOSTILE_ERROR_CODES=1,2 also accepts today's 2, to see which tests fail for more
# than the exit code.
ERROR_CODES = tuple(int(c) for c in os.environ.get("HOSTILE_ERROR_CODES", "1").split(","))


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.strip()]


def assert_clean_error(result: Result, *, mentions: Iterable[str] = (), code: int = 1) -> None:
    """The contract for an error the user caused: exit ``code`` (1), no traceback, ONE
    line on stderr, and that line names the offending file/argument.

    ``mentions``: strings (or ``re:``-prefixed regexes) that must all appear in stderr;
    a tuple of alternatives means any one of them.
    """
    assert "Traceback" not in result.err, f"a traceback instead of a one-line error:\n{result}"
    assert result.code != 0, f"accepted (exit 0) instead of refusing:\n{result}"
    lines = stderr_lines(result)
    assert len(lines) == 1, f"stderr must be one line, got {len(lines)}:\n{result}"
    for m in mentions:
        alternatives = m if isinstance(m, tuple) else (m,)
        assert any(_found(a, result.err) for a in alternatives), \
            f"the error does not name {' or '.join(map(repr, alternatives))}:\n{result}"
    codes = ERROR_CODES if code == 1 else (code,)
    assert result.code in codes, f"exit code {result.code}, the contract says {code}:\n{result}"


def _found(needle: str, text: str) -> bool:
    if needle.startswith("re:"):
        return re.search(needle[3:], text) is not None
    return needle in text


def assert_refused_argument(result: Result, option: str) -> None:
    """A bad option value refused before any work: either argparse's own usage error
    (exit 2, ``usage:`` then ``evacamel CMD: error: argument OPTION ...``, the standard
    for a value argparse could have checked), or the contract's one-line error naming
    the option (exit 1)."""
    assert "Traceback" not in result.err, f"a traceback instead of refusing {option}:\n{result}"
    assert result.code != 0, f"{option}: accepted (exit 0):\n{result}"
    lines = stderr_lines(result)
    if result.code == 2 and lines and lines[0].startswith("usage:"):
        assert re.search(rf"error: argument {re.escape(option)}\b", result.err), \
            f"argparse error that does not name {option}:\n{result}"
        return
    assert_clean_error(result, mentions=[(option, option.lstrip("-"),
                                          option.lstrip("-").replace("-", "_"))])


# -- files and folders -------------------------------------------------------------------


def snapshot(folder: Path, *, skip: Path | None = None) -> dict[str, tuple[int, int, bytes | int]]:
    """Every path under ``folder`` (except under ``skip``) -> (inode, links, content or size)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        st = p.lstat()
        content: bytes | int = p.read_bytes() if p.is_file() and st.st_size < 1 << 20 else st.st_size
        out[str(p.relative_to(folder))] = (st.st_ino, st.st_nlink, content)
    return out


def leftovers(folder: Path, patterns: Sequence[str] = ("*.part", "*.tmp", ".*.extract-*",
                                                      ".*.old-*", ".*tmp*")) -> list[str]:
    """Temporary files/folders under ``folder`` that a failed command should have removed."""
    found: set[str] = set()
    for pat in patterns:
        found |= {str(p.relative_to(folder)) for p in folder.rglob(pat)}
    return sorted(found)


def read_rows(root: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(root / "dataset_info.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_rows(root: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with open(root / "dataset_info.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def edit_rows(root: Path, where: Callable[[dict[str, str]], bool], **changes: str) -> list[int]:
    """Set ``changes`` in the index rows for which ``where(row)``; returns their positions."""
    fields, rows = read_rows(root)
    hit = []
    for i, row in enumerate(rows):
        if where(row):
            row.update(changes)
            hit.append(i)
    write_rows(root, fields, rows)
    return hit


def first_of_split(split: str) -> Callable[[dict[str, str]], bool]:
    """A ``where`` for :func:`edit_rows` that picks only the first row of ``split``."""
    seen: list[bool] = []

    def where(row: dict[str, str]) -> bool:
        if row.get("split") == split and not seen:
            seen.append(True)
            return True
        return False
    return where


# -- images ------------------------------------------------------------------------------


def png_bytes_by_hand(width: int, height: int, *, bit_depth: int = 1, color_type: int = 0,
                      full: bool = True) -> bytes:
    """A valid PNG of any size, written with zlib (no pixel buffer in memory): a
    20000 x 20000 1-bit image of zeros is about 50 KB. ``full=False``: only a header and
    a few rows (a tiny file that claims a huge image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + (width * bit_depth * channels + 7) // 8)
    co = zlib.compressobj(9)
    if full:
        data = b"".join(co.compress(row) for _ in range(height)) + co.flush()
    else:
        data = co.compress(row * 2) + co.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def textured_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish colour image (not flat, not noise) as uint8 H x W x 3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + 1) , np.cos(5 * y), np.sin(3 * (x + y))], -1) * 0.4 + 0.5
    return (np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1) * 255).astype(np.uint8)


def save_rgba_cutout(path: Path, alpha: np.ndarray, color=(160, 120, 70)) -> None:
    h, w = alpha.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = color
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(path)


def own_sources(folder: Path, *, n_bg: int = 4, n_camels: int = 4, bg_size=(160, 200)) -> tuple[Path, Path]:
    """A student's folders: ``n_bg`` RGB backgrounds and ``n_camels`` RGBA cut-outs."""
    bgs, camels = folder / "backgrounds", folder / "camels"
    bgs.mkdir(parents=True, exist_ok=True)
    camels.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        Image.fromarray(textured_rgb(*bg_size, seed=i)).save(bgs / f"desert_{i}.png")
    for j in range(n_camels):
        alpha = np.zeros((48, 40), np.uint8)
        alpha[8:44, 6:34] = 255
        save_rgba_cutout(camels / f"camel_{j}.png", alpha)
    return bgs, camels


def jpeg_with_orientation(path: Path, stored: np.ndarray, orientation: int) -> None:
    """Save ``stored`` (H x W x 3) as a JPEG whose EXIF says how to turn it upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())


# -- archives ------------------------------------------------------------------------------


def tar_bytes(members: Sequence[tuple[tarfile.TarInfo, bytes | None]], compression: str = "gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def zeros_tar(size: int, compression: str) -> bytes:
    """A tar holding one file of ``size`` zero bytes, streamed (never ``size`` in memory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tf:
        info = tarfile.TarInfo("dataset/zeros.bin")
        info.size = size
        tf.addfile(info, _Zeros(size))
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def zip_bytes(entries: Sequence[tuple[str | zipfile.ZipInfo, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def small_dataset_tar() -> bytes:
    """A plausible, incompressible dataset archive of about 300 KB (tar.gz)."""
    rng = np.random.default_rng(1)
    members = [tar_file("dataset/meta.json", b'{"format": "evacamel-dataset"}')]
    members += [tar_file(f"dataset/fg_bg/img_{i:08d}.jpg", rng.bytes(60_000)) for i in range(5)]
    return tar_bytes(members, "gz")


# -- a local HTTP server ----------------------------------------------------------------------


@dataclass
class Route:
    """How the server answers one path.

    ``body``: the bytes; ``status``: the HTTP status; ``send``: how many bytes of the
    body to send before closing the connection (default all); ``length``: the
    Content-Length header (default ``len(body)``; ``None``: no header, the body ends
    when the connection closes).
    """

    body: bytes = b""
    status: int = 200
    send: int | None = None
    length: int | None | str = "auto"
    hits: list[str | None] = field(default_factory=list)


class Server:
    """A threaded HTTP/1.0 server on 127.0.0.1 serving :class:`Route` objects."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                route.hits.append(self.headers.get("Range"))
                if route.status != 200:
                    self.send_error(route.status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                length = len(route.body) if route.length == "auto" else route.length
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(route.body[:route.send] if route.send is not None else route.body)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- memory ------------------------------------------------------------------------------------


@contextlib.contextmanager
def address_space_limit(extra_bytes: int) -> Iterator[None]:
    """Cap this process's address space at its current size + ``extra_bytes`` for the
    block (so a command that tries to allocate gigabytes fails instead of swapping the
    shared machine to death); restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    cap = vm_kb * 1024 + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
