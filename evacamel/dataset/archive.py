"""Untrusted archives: what a file is, whether it is whole, and extracting it safely.

* :func:`archive_kind` tells a zip, a tar (compressed or not) or a compressed stream from
  other files, by the first bytes and by the name (a truncated zip still says zip).
* :func:`check_whole` refuses an archive that does not read whole: every zip member's
  CRC, a tar to its end-of-archive marker, a compressed stream to its end.
* :func:`safe_extract` checks every entry before anything is written: absolute names,
  ``..``, drive letters, NUL bytes, links, devices, duplicate names and files used as
  folders are refused, and so are archives over :class:`ExtractLimits` (file count,
  total bytes, size relative to the archive, the free disk space). Bytes are counted
  while extracting (headers can lie). Files go into a temporary folder beside the
  destination that takes its place at the end; on any failure it is removed, so a
  refused archive leaves nothing behind.

Every refusal is an :class:`ArchiveError` (a ``ValueError``) naming the archive, the
entry, and the option that raises a limit.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from evacamel.colab import progress_bar

__all__ = ["ArchiveError", "ExtractLimits", "archive_kind", "check_whole", "check_archive",
           "is_extracted", "safe_extract"]

_CHUNK = 1 << 20
_Archive = zipfile.ZipFile | tarfile.TarFile


class ArchiveError(ValueError):
    """An archive or download refused: unsafe, corrupt, truncated, over a limit, or not
    matching its hash. Nothing of it was extracted or promoted."""


@dataclass(frozen=True)
class ExtractLimits:
    """What an archive may hold. The defaults fit the seed's 40,000-sample dataset
    (about 200,000 files, tens of GB of images that barely compress) and stop bombs
    (which expand 1,000 to 1,000,000 times)."""

    max_files: int = 1_000_000
    """Most files (``--max-files``)."""
    max_bytes: int | None = None
    """Most bytes extracted in all (``--max-bytes``); None: the ratio and the disk decide."""
    max_ratio: float = 100.0
    """Most bytes extracted per byte of archive, in all and per zip entry (``--max-ratio``)."""
    ratio_floor: int = 16 << 20
    """Sizes up to this are never refused for their ratio (a small archive of text)."""

    def __post_init__(self) -> None:
        for name in ("max_files", "max_bytes", "max_ratio", "ratio_floor"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"ExtractLimits.{name} must be positive, got {value!r}")



_MAX_NAME_BYTES = 255
"""Longest file or folder name (one path component) ext4, APFS, NTFS and FAT can store."""
_TAR_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA,
                getattr(zipfile, "ZIP_ZSTANDARD", zipfile.ZIP_STORED)}  # zstd: Python 3.14
_COMPRESSED = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
# What the archive libraries raise on a corrupt, truncated or hostile archive. The set is
# not documented (struct.error and ValueError come out of malformed headers), so a
# refused archive is recognised by all of them, and only while reading the archive.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError,
                zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError, struct.error,
                ValueError, OSError, UnicodeError, OverflowError)


def archive_kind(path: str | os.PathLike, name: str | None = None) -> str | None:
    """``"zip"``, ``"tar"`` (compressed or not), ``"compressed"`` (a gzip, bzip2 or xz
    stream that is not a tar) or None.

    Decided by the first bytes, then by ``name``'s suffix (default: the path's), then by
    the archive libraries' own tests. A zip cut short has lost its central directory,
    but its first bytes or its name still say zip, so it is refused as a broken zip
    rather than taken for a plain file.
    """
    path, name = Path(path), (name or Path(path).name).lower()
    with open(path, "rb") as f:
        head = f.read(tarfile.BLOCKSIZE)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    if any(head.startswith(magic) for magic in _COMPRESSED):
        return "tar" if tarfile.is_tarfile(path) else "compressed"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):  # a zip after other bytes (self-extracting)
        return "zip"
    return "tar" if tarfile.is_tarfile(path) else None  # an old tar without "ustar"


_REDOWNLOAD = "delete it and download it again"
"""What to do about a truncated or corrupt archive (the default ``fix`` of messages)."""


def _corrupt(archive: Path | str, exc: BaseException, member: str | None = None,
             fix: str = _REDOWNLOAD) -> ArchiveError:
    where = f"{archive}: entry {member!r}" if member is not None else f"{archive}"
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return ArchiveError(f"{where} cannot be read whole ({reason}); the file is truncated or "
                        f"corrupt: {fix}")


@contextlib.contextmanager
def _open_archive(archive: Path) -> Iterator[_Archive]:
    """The zip or tar archive, open for reading; errors while opening become ArchiveError."""
    kind = archive_kind(archive)
    if kind not in ("zip", "tar"):
        raise ArchiveError(f"{archive}: neither a zip nor a tar archive; nothing to extract "
                           f"(download it with --no-extract)")
    try:
        handle = zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive)
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc) from None
    with handle:
        yield handle


def _tar_members(archive: Path | str, tf: tarfile.TarFile,
                 fix: str = _REDOWNLOAD) -> list[tarfile.TarInfo]:
    """Every member, reading the whole archive (a truncated compressed stream fails here).

    tarfile stops silently when a plain tar ends between two members; a whole tar ends
    with a zero block, which tarfile has just read when the iteration ends, so the file
    position is then one block past ``tf.offset``.
    """
    members = list(tf)
    if tf.fileobj.tell() - tf.offset != tarfile.BLOCKSIZE:
        raise ArchiveError(f"{archive}: the tar ends before its end-of-archive marker (after "
                           f"{len(members)} entries); the file is truncated: {fix}")
    return members


def check_whole(path: str | os.PathLike, *, name: str | None = None,
                label: str | None = None, fix: str = _REDOWNLOAD) -> None:
    """Refuse an archive that does not read whole: every zip member is read and its CRC
    checked, a tar is read to its end-of-archive marker, a compressed stream to its end.
    Other files pass (nothing tells a truncated text file from a whole one).

    Args:
        name: the name that decides the kind with the first bytes (default: the path's).
        label: what the message calls the file (default: its path), e.g. its URL.
        fix: what the message tells the user to do.

    Raises:
        ArchiveError: the archive is truncated or corrupt.
    """
    path = Path(path)
    kind, label = archive_kind(path, name), label or str(path)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise ArchiveError(f"{label}: zip entry {bad!r} fails its CRC check; the file "
                                   f"is corrupt: {fix}")
        elif kind == "tar":
            with tarfile.open(path) as tf:
                _tar_members(label, tf, fix)
        elif kind == "compressed":
            with _COMPRESSED[next(m for m in _COMPRESSED if _head(path).startswith(m))](path) as f:
                while f.read(_CHUNK):
                    pass
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise _corrupt(label, exc, fix=fix) from None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


# -- planning an extraction: every entry checked before anything is written ----------------

@dataclass(frozen=True)
class _Entry:
    """One member of an archive, checked: where it goes and how big it says it is."""

    name: str
    """As written in the archive (for messages)."""
    path: str
    """Its safe relative POSIX path under the destination."""
    size: int
    """Declared uncompressed bytes (0 for a folder)."""
    packed: int | None
    """Declared compressed bytes (zip), None when unknown (tar)."""
    is_dir: bool
    member: zipfile.ZipInfo | tarfile.TarInfo


def _safe_path(archive: Path, name: str) -> str:
    """The entry's safe relative POSIX path, or ArchiveError."""
    if "\x00" in name:
        raise ArchiveError(f"{archive}: entry {name!r} has a NUL byte; refusing the archive")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        raise ArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing the archive")
    parts = [p for p in PurePosixPath(posix).parts if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: entry {name!r} climbs out of the target ('..'); "
                           f"refusing the archive")
    if any(len(p.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for p in parts):
        raise ArchiveError(f"{archive}: entry {name[:60]!r}... has a name longer than "
                           f"{_MAX_NAME_BYTES} bytes, which no common disk can store; "
                           f"refusing the archive")
    return "/".join(parts)


def _refuse_type(archive: Path, name: str, what: str) -> ArchiveError:
    return ArchiveError(f"{archive}: entry {name!r} is {what}; a dataset archive holds only "
                        f"plain files and folders, refusing the archive")


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> list[_Entry]:
    """Check every zip member's name and type (no links, no encryption)."""
    entries = []
    for info in zf.infolist():
        # zipfile cuts a name at its first NUL; the name as stored is orig_filename.
        path = _safe_path(archive, info.orig_filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise _refuse_type(archive, info.filename,
                               "a symlink" if kind == stat.S_IFLNK else "a special file")
        if info.flag_bits & 0x1:
            raise _refuse_type(archive, info.filename, "an encrypted file")
        if info.compress_type not in _ZIP_METHODS:
            raise _refuse_type(archive, info.filename,
                               f"compressed with method {info.compress_type}, which Python "
                               f"cannot read")
        entries.append(_Entry(info.filename, path, 0 if info.is_dir() else info.file_size,
                              info.compress_size, info.is_dir(), info))
    return entries


def _tar_entries(archive: Path, tf: tarfile.TarFile) -> list[_Entry]:
    """Check every tar member's name and type (regular files and folders only)."""
    entries = []
    for member in _tar_members(archive, tf):
        path = _safe_path(archive, member.name)
        if member.issym() or member.islnk():
            raise _refuse_type(archive, member.name,
                               "a symlink" if member.issym() else "a hardlink")
        if not (member.isfile() or member.isdir()):
            raise _refuse_type(archive, member.name, "a device, fifo or other special file")
        entries.append(_Entry(member.name, path, member.size if member.isfile() else 0,
                              None, member.isdir(), member))
    return entries


def _check_tree(archive: Path, entries: list[_Entry]) -> None:
    """Refuse entries that would land on each other: a file named twice (also when the
    names differ only in case, as on macOS and Windows disks), a file used as a folder,
    a file without a name."""
    kinds: dict[str, bool] = {}  # case-folded path -> is a folder
    for e in entries:
        key = e.path.casefold()
        if not key and not e.is_dir:
            raise ArchiveError(f"{archive}: entry {e.name!r} is a file without a name; "
                               f"refusing the archive")
        if key in kinds and not (e.is_dir and kinds[key]):
            raise ArchiveError(f"{archive}: entry {e.name!r} appears twice (names compared "
                               f"ignoring case); refusing the archive")
        kinds[key] = e.is_dir
    for key in kinds:
        parent = PurePosixPath(key).parent
        while str(parent) != ".":
            if kinds.get(str(parent)) is False:
                raise ArchiveError(f"{archive}: entry {key!r} is inside {str(parent)!r}, "
                                   f"which is a file; refusing the archive")
            parent = parent.parent


def _check_entry_ratios(archive: Path, entries: list[_Entry], limits: ExtractLimits) -> None:
    """Refuse a zip entry that expands more than ``limits.max_ratio`` times."""
    for e in entries:
        ratio = e.size / max(e.packed or 0, 1)
        if e.packed is not None and ratio > limits.max_ratio and e.size > limits.ratio_floor:
            raise ArchiveError(f"{archive}: entry {e.name!r} expands {ratio:.0f}x "
                               f"(limit {limits.max_ratio:g}x); refusing a likely archive bomb "
                               f"(raise the limit with --max-ratio if you trust it)")


def _plan(archive: Path, limits: ExtractLimits) -> list[_Entry]:
    """Every entry of the archive, checked (names, types, overlaps, count, zip ratios).
    Reads the whole tar (compressed ones included), the zip's central directory only."""
    with _open_archive(archive) as handle:
        try:
            if isinstance(handle, zipfile.ZipFile):
                entries = _zip_entries(archive, handle)
            else:
                entries = _tar_entries(archive, handle)
        except ArchiveError:
            raise
        except _READ_ERRORS as exc:
            raise _corrupt(archive, exc) from None
    _check_tree(archive, entries)
    files = sum(not e.is_dir for e in entries)
    if files > limits.max_files:
        raise ArchiveError(f"{archive}: {files} files, more than the limit of "
                           f"{limits.max_files}; refusing the archive (raise the limit with "
                           f"--max-files if you trust it)")
    _check_entry_ratios(archive, entries, limits)
    return entries


def _free_bytes(folder: Path) -> int:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _check_total(archive: Path, entries: list[_Entry], limits: ExtractLimits) -> None:
    """Refuse an archive whose entries add up to more than the archive size allows
    (``max_ratio``) or than ``max_bytes``."""
    total, packed = sum(e.size for e in entries), archive.stat().st_size
    if limits.max_bytes is not None and total > limits.max_bytes:
        raise ArchiveError(f"{archive}: expands to {total} bytes, more than the limit of "
                           f"{limits.max_bytes}; refusing the archive (raise the limit with "
                           f"--max-bytes if you trust it)")
    if total > max(limits.ratio_floor, limits.max_ratio * packed):
        raise ArchiveError(f"{archive}: expands to {_size(total)}, {total / max(packed, 1):.0f}x "
                           f"its size (limit {limits.max_ratio:g}x); refusing a likely archive "
                           f"bomb (raise the limit with --max-ratio if you trust it)")


def _check_free(archive: Path, dest: Path, entries: list[_Entry]) -> None:
    """Refuse an archive that needs more than the free space of ``dest``'s disk."""
    total, free = sum(e.size for e in entries), _free_bytes(dest.parent)
    if total > free:
        raise ArchiveError(f"{archive}: needs {_size(total)} but only {_size(free)} are free "
                           f"beside {dest}; free some space or choose another --dest")


def check_archive(archive: str | os.PathLike,
                  limits: ExtractLimits = ExtractLimits()) -> tuple[int, int]:
    """Inspect every entry of a zip or tar archive, as :func:`safe_extract` does first.

    Returns:
        ``(files, total_bytes)`` (declared, uncompressed).

    Raises:
        ArchiveError: an unsafe entry (absolute, ``..``, link, device, duplicate), a
            truncated or corrupt archive, or one over ``limits`` (the free disk space is
            checked by :func:`safe_extract`, which knows the destination).
    """
    archive = Path(archive)
    entries = _plan(archive, limits)
    _check_total(archive, entries, limits)
    return sum(not e.is_dir for e in entries), sum(e.size for e in entries)


# -- extracting ------------------------------------------------------------------------------

def _open_entry(archive: Path, handle: _Archive, entry: _Entry) -> BinaryIO:
    try:
        if isinstance(handle, zipfile.ZipFile):
            return handle.open(entry.member)
        src = handle.extractfile(entry.member)
        assert src is not None  # a regular file (checked by the plan)
        return src
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc, entry.name) from None


def _copy_entry(archive: Path, entry: _Entry, src: BinaryIO, dst: BinaryIO) -> int:
    """Copy an entry's bytes, counting them: never more than its header declares (zip's
    CRC check and tar's sparse maps happen in the reads), and refuse fewer."""
    done = 0
    while True:
        try:
            block = src.read(_CHUNK)
        except _READ_ERRORS as exc:
            raise _corrupt(archive, exc, entry.name) from None
        if not block:
            break
        done += len(block)
        if done > entry.size:
            raise ArchiveError(f"{archive}: entry {entry.name!r} holds more bytes than its "
                               f"header says ({entry.size}); refusing the archive")
        dst.write(block)
    if done != entry.size:
        raise ArchiveError(f"{archive}: entry {entry.name!r} holds {done} bytes but its header "
                           f"says {entry.size}; refusing a malformed archive")
    return done


def _extract_entry(archive: Path, handle: _Archive, entry: _Entry, root: Path) -> int:
    """Write one planned entry under ``root`` (a fresh folder); returns the bytes written."""
    target = root / entry.path
    if entry.is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    # "xb": a file never replaces another one (the plan refused duplicates already).
    with _open_entry(archive, handle, entry) as src, open(target, "xb") as dst:
        return _copy_entry(archive, entry, src, dst)


def _extract_to_temp(archive: Path, dest: Path, entries: list[_Entry],
                     progress: bool | None) -> Path:
    """Every entry into a new temporary folder beside ``dest``; removed on any failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        with _open_archive(archive) as handle, \
                progress_bar(total=sum(e.size for e in entries), unit="B", unit_scale=True,
                     unit_divisor=1024, desc=f"extract {archive.name}",
                     disable=None if progress is None else not progress) as bar:
            for entry in entries:
                bar.update(_extract_entry(archive, handle, entry, tmp))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _promote_folder(tmp: Path, dest: Path) -> None:
    """Put the extracted folder in ``dest``'s place; an old ``dest`` is removed last."""
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def is_extracted(archive: str | os.PathLike, dest: str | os.PathLike,
                 limits: ExtractLimits = ExtractLimits()) -> bool:
    """Whether the folder ``dest`` holds every entry of ``archive`` with its declared
    size (a rerun after an extraction that went well: nothing to do)."""
    dest = Path(dest)
    return all((dest / e.path).is_dir() if e.is_dir else
               (dest / e.path).is_file() and (dest / e.path).stat().st_size == e.size
               for e in _plan(Path(archive), limits))


def _check_folder(dest: Path) -> None:
    """Refuse a destination that exists but is not a folder."""
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest}: is a file, not a folder; choose another --dest")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 limits: ExtractLimits = ExtractLimits(), overwrite: bool = False,
                 progress: bool | None = None) -> Path:
    """Extract a zip or tar archive into the folder ``dest``, safely.

    All entries are checked first (names, types, limits, free space); files are then
    written into a temporary folder beside ``dest``, counting their bytes, and that
    folder takes ``dest``'s place at the end. On any error the temporary folder is
    removed and ``dest`` is untouched.

    Raises:
        FileExistsError: ``dest`` is a file, or a folder that is not empty (unless
            ``overwrite``, which replaces it).
        ArchiveError: an unsafe, corrupt or oversized archive (nothing is written).
        OSError: the disk refused a write (full, read-only); nothing is left behind.
    """
    archive, dest = Path(archive), Path(dest)
    _check_folder(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"{dest}: already exists and is not empty; refusing to extract "
                              f"{archive.name} over it (pass --overwrite to replace it, or "
                              f"choose another --dest)")
    entries = _plan(archive, limits)
    _check_total(archive, entries, limits)
    _check_free(archive, dest, entries)
    _promote_folder(_extract_to_temp(archive, dest, entries, progress), dest)
    return dest


def _size(n: float) -> str:
    """``n`` bytes, for people: ``2.1 GB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
