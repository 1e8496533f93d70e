"""Fetch dataset archives (URL or Google Drive id), verify them, extract them safely.

What the seed's students lost hours to, and what this module guarantees instead:

* **Downloads that die halfway** are resumed: bytes go to ``<file>.part``; a retry asks
  the server for the rest (HTTP ``Range``) and appends. Transient errors are retried
  with exponential backoff. A tqdm bar shows progress.
* **Nothing is used before it is verified**: the finished file's sha256 (or md5) must
  match, else it is deleted and a ``ValueError`` names both hashes. Only then is the
  ``.part`` renamed to its final name.
* **Extraction cannot escape or explode**: every entry is checked *before* anything is
  written: absolute paths, ``..`` components, drive letters, symlinks, hardlinks and
  device files are refused, and so are archives whose file count or total size exceeds
  configurable limits (zip bombs). Files are extracted into a temporary folder beside the
  target, and renamed into place only when all went well, so a bad archive never leaves
  anything in the dataset folder.

Google Drive ids go through ``gdown`` (which handles Drive's confirmation pages).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from evacamel.colab import progress_bar

__all__ = [
    "ExtractLimits",
    "file_hash",
    "verify_file",
    "download_url",
    "download_gdrive",
    "download",
    "check_archive",
    "safe_extract",
    "verify_and_extract",
    "fetch",
    "fetch_registered",
    "make_archive",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExtractLimits:
    """What an archive may hold. The defaults fit the seed's 40,000-sample dataset
    (about 200,000 files, tens of GB) with room to spare, and stop zip bombs."""

    max_files: int = 1_000_000
    max_total_bytes: int = 200 * 1024**3
    max_ratio: float = 1000.0
    """Largest uncompressed / compressed size ratio of a zip entry (bombs reach 10^6)."""


# -- hashes -----------------------------------------------------------------------------

def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, *, sha256: str | None = None,
                md5: str | None = None) -> None:
    """Check a file's hash.

    Raises:
        ValueError: no hash given, or a mismatch (the message names the file and both
            digests).
    """
    if not sha256 and not md5:
        raise ValueError(f"{path}: no sha256 or md5 to verify against")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_hash(path, algorithm)
            if actual.lower() != expected.lower():
                raise ValueError(f"{path}: {algorithm} mismatch: expected {expected.lower()}, "
                                 f"got {actual} (corrupt or tampered download)")


# -- downloading ---------------------------------------------------------------------------

def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool | None,
                headers: dict[str, str]) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (resuming with Range)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "evacamel", **headers})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the file is complete
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # server ignored Range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, progress_bar(total=total, initial=have, unit="B",
                                                 unit_scale=True, unit_divisor=1024,
                                                 desc=part.name[:-5],
                                                 disable=None if progress is None
                                                 else not progress) as bar:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"{url}: connection closed after {part.stat().st_size} "
                                  f"of {total} bytes")


def download_url(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                 md5: str | None = None, retries: int = 5, backoff: float = 1.0,
                 timeout: float = 60.0, progress: bool | None = None,
                 allow_unverified: bool = False, headers: dict[str, str] | None = None) -> Path:
    """Download ``url`` to ``dest``, resumable and verified.

    Bytes go to ``dest + ".part"``; an interrupted download (this call's retries, or a
    later call) continues from there with an HTTP Range request. The hash is checked
    before the file is renamed to ``dest``; on a mismatch the part file is deleted.

    Args:
        sha256, md5: the expected digest (one is required unless ``allow_unverified``).
        retries: attempts after the first, waiting ``backoff * 2**k`` seconds.
        allow_unverified: accept a file without a known hash (the seed's archives).

    Returns:
        ``dest``. If it already exists and verifies, nothing is downloaded.

    Raises:
        ValueError: no hash and not ``allow_unverified``; hash mismatch.
        ConnectionError: still failing after all retries.
    """
    dest = Path(dest)
    if _already_there(url, dest, sha256, md5, allow_unverified):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress, headers=headers or {})
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403, 404, 410):
                raise FileNotFoundError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            if attempt == retries:
                raise ConnectionError(f"{url}: download failed after {retries + 1} attempts "
                                      f"({exc}); rerun to resume from {part}") from None
            time.sleep(backoff * 2**attempt)
    return _verify_and_promote(part, dest, sha256, md5)


def _already_there(what: str, dest: Path, sha256: str | None, md5: str | None,
                   allow_unverified: bool) -> bool:
    """Refuse an unverifiable download; True when ``dest`` already holds the (verified) file."""
    if not (sha256 or md5 or allow_unverified):
        raise ValueError(f"{what}: no sha256/md5 given; refusing an unverified download "
                         f"(pass allow_unverified=True / --allow-unverified to accept it)")
    if dest.exists():
        if sha256 or md5:
            verify_file(dest, sha256=sha256, md5=md5)
        return True
    return False


def _verify_and_promote(part: Path, dest: Path, sha256: str | None, md5: str | None) -> Path:
    """Verify the finished ``.part`` file (deleting it if wrong), then rename it to ``dest``."""
    if sha256 or md5:
        try:
            verify_file(part, sha256=sha256, md5=md5)
        except ValueError:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return dest


def download_gdrive(file_id: str, dest: str | os.PathLike, *, sha256: str | None = None,
                    md5: str | None = None, progress: bool | None = None,
                    allow_unverified: bool = False) -> Path:
    """Download a Google Drive file by id with ``gdown`` (resumable), then verify it."""
    dest = Path(dest)
    if _already_there(f"Google Drive id {file_id}", dest, sha256, md5, allow_unverified):
        return dest
    import gdown

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    out = gdown.download(id=file_id, output=str(part), quiet=progress is False, resume=True)
    if not out or not part.exists():
        raise ConnectionError(f"Google Drive id {file_id}: download failed (gdown returned "
                              f"{out!r}); check the id and that the file is shared publicly")
    return _verify_and_promote(part, dest, sha256, md5)


def download(source: str, dest: str | os.PathLike, **kwargs) -> Path:
    """:func:`download_url` for ``http(s)://`` URLs, :func:`download_gdrive` otherwise
    (``gdrive:ID`` or a bare Drive id)."""
    if source.startswith(("http://", "https://")):
        return download_url(source, dest, **kwargs)
    file_id = source.removeprefix("gdrive:")
    for key in ("retries", "backoff", "timeout", "headers"):
        kwargs.pop(key, None)
    return download_gdrive(file_id, dest, **kwargs)


# -- safe extraction ---------------------------------------------------------------------------

def _check_name(archive: Path, name: str) -> str:
    """The entry's safe relative POSIX path, or ValueError."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        raise ValueError(f"{archive}: entry {name!r} has an absolute path; refusing the archive")
    parts = [p for p in PurePosixPath(posix).parts if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{archive}: entry {name!r} climbs out of the target ('..'); "
                         f"refusing the archive")
    if "\x00" in name:
        raise ValueError(f"{archive}: entry {name!r} has a NUL byte; refusing the archive")
    return "/".join(parts)


def _kind(archive: Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"{archive}: neither a zip nor a tar archive")


def check_archive(archive: str | os.PathLike,
                  limits: ExtractLimits = ExtractLimits()) -> tuple[int, int]:
    """Inspect every entry of a zip or tar archive before extraction.

    Returns:
        ``(files, total_bytes)`` (uncompressed).

    Raises:
        ValueError: an unsafe entry (absolute, ``..``, link, device), too many files, too
            many bytes, or a zip entry with an absurd compression ratio; the message
            names the archive and the entry.
    """
    archive = Path(archive)
    files = total = 0
    if _kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_name(archive, info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ValueError(f"{archive}: entry {info.filename!r} is a symlink; "
                                     f"refusing the archive")
                if info.is_dir():
                    continue
                files += 1
                total += info.file_size
                if info.file_size > limits.max_ratio * max(info.compress_size, 1) and \
                        info.file_size > _CHUNK:
                    raise ValueError(f"{archive}: entry {info.filename!r} expands "
                                     f"{info.file_size / max(info.compress_size, 1):.0f}x; "
                                     f"refusing a likely zip bomb")
                _check_totals(archive, files, total, limits)
    else:
        with tarfile.open(archive) as tf:
            for member in tf:
                _check_name(archive, member.name)
                if member.issym() or member.islnk():
                    raise ValueError(f"{archive}: entry {member.name!r} is a "
                                     f"{'symlink' if member.issym() else 'hardlink'}; "
                                     f"refusing the archive")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ValueError(f"{archive}: entry {member.name!r} is not a regular file "
                                     f"(device/fifo); refusing the archive")
                files += 1
                total += member.size
                _check_totals(archive, files, total, limits)
    return files, total


def _check_totals(archive: Path, files: int, total: int, limits: ExtractLimits) -> None:
    if files > limits.max_files:
        raise ValueError(f"{archive}: more than {limits.max_files} files; refusing the archive "
                         f"(raise ExtractLimits.max_files if this is expected)")
    if total > limits.max_total_bytes:
        raise ValueError(f"{archive}: more than {limits.max_total_bytes} bytes uncompressed; "
                         f"refusing the archive (raise ExtractLimits.max_total_bytes if expected)")


def _copy_limited(src, dst, limit: int, name: str) -> int:
    """Copy at most ``limit`` bytes (an entry must not grow past its declared size)."""
    done = 0
    while True:
        block = src.read(_CHUNK)
        if not block:
            return done
        done += len(block)
        if done > limit:
            raise ValueError(f"{name}: entry is larger than its header says; refusing the archive")
        dst.write(block)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 limits: ExtractLimits = ExtractLimits(), overwrite: bool = False,
                 progress: bool | None = None) -> Path:
    """Extract a zip or tar archive into ``dest`` safely.

    All entries are checked first (:func:`check_archive`); files are then written into a
    temporary folder beside ``dest`` and that folder is renamed to ``dest`` at the end.
    On any error the temporary folder is removed and ``dest`` is untouched.

    Raises:
        FileExistsError: ``dest`` exists and is not empty (unless ``overwrite``).
        ValueError: an unsafe or oversized archive (nothing is written).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"{dest}: already exists and is not empty; refusing to extract "
                              f"{archive.name} over it")
    files, total = check_archive(archive, limits)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"extract {archive.name}",
                          disable=None if progress is None else not progress) as bar:
            if _kind(archive) == "zip":
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        rel = _check_name(archive, info.filename)
                        target = tmp / rel
                        if info.is_dir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, open(target, "wb") as dst:
                            bar.update(_copy_limited(src, dst, info.file_size,
                                                     f"{archive}:{info.filename}"))
            else:
                with tarfile.open(archive) as tf:
                    for member in tf:
                        rel = _check_name(archive, member.name)
                        target = tmp / rel
                        if member.isdir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        if not member.isfile():
                            raise ValueError(f"{archive}: entry {member.name!r} is not a "
                                             f"regular file; refusing the archive")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        src = tf.extractfile(member)
                        assert src is not None
                        with src, open(target, "wb") as dst:
                            bar.update(_copy_limited(src, dst, member.size,
                                                     f"{archive}:{member.name}"))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def verify_and_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                       sha256: str | None = None, md5: str | None = None,
                       limits: ExtractLimits = ExtractLimits(), overwrite: bool = False,
                       progress: bool | None = None) -> Path:
    """:func:`verify_file` then :func:`safe_extract`: nothing is extracted unless the
    archive's hash matches."""
    verify_file(archive, sha256=sha256, md5=md5)
    return safe_extract(archive, dest, limits=limits, overwrite=overwrite, progress=progress)


def fetch(source: str, dest: str | os.PathLike, *, sha256: str | None = None,
          md5: str | None = None, filename: str | None = None,
          downloads: str | os.PathLike | None = None, extract: bool = True,
          allow_unverified: bool = False, limits: ExtractLimits = ExtractLimits(),
          progress: bool | None = None,
          downloader: Callable[..., Path] | None = None) -> Path:
    """Download (URL or Drive id), verify, and extract an archive into ``dest``.

    Args:
        source: ``http(s)://...`` or a Google Drive id (``gdrive:ID``).
        dest: the folder to extract into (or, with ``extract=False``, the folder the
            downloaded file is moved into).
        filename: the downloaded file's name (default: the URL's last component).
        downloads: where archives are kept (default: ``dest``'s parent / ``downloads``).

    Returns:
        ``dest`` (extracted) or the downloaded file (``extract=False``).
    """
    dest = Path(dest)
    name = filename or source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download"
    folder = Path(downloads) if downloads else dest.parent / "downloads"
    file = (downloader or download)(source, folder / name, sha256=sha256, md5=md5,
                                    progress=progress, allow_unverified=allow_unverified)
    if not extract:
        return file
    if not (zipfile.is_zipfile(file) or tarfile.is_tarfile(file)):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest / file.name)
        return dest
    return safe_extract(file, dest, limits=limits, progress=progress,
                        overwrite=dest.exists() and not any(dest.iterdir()))


def fetch_registered(name: str, dest: str | os.PathLike, *, allow_unverified: bool = False,
                     downloads: str | os.PathLike | None = None,
                     limits: ExtractLimits = ExtractLimits(),
                     progress: bool | None = None) -> Path:
    """Fetch every file of a registry entry (:mod:`evacamel.dataset.registry`) into ``dest``.

    Raises:
        ValueError: the entry is unverified and ``allow_unverified`` is false.
    """
    from evacamel.dataset.registry import get_entry

    entry = get_entry(name)
    if not entry.verified and not allow_unverified:
        raise ValueError(f"dataset {name!r} has no known hashes (unverified): a truncated or "
                         f"tampered download could not be detected; pass "
                         f"allow_unverified=True (--allow-unverified) to fetch it anyway")
    dest = Path(dest)
    folder = Path(downloads) if downloads else dest.parent / "downloads"
    dest.mkdir(parents=True, exist_ok=True)
    for f in entry.files:
        file = download(f.source, folder / f.filename, sha256=f.sha256, md5=f.md5,
                        progress=progress, allow_unverified=allow_unverified)
        if f.extract and (zipfile.is_zipfile(file) or tarfile.is_tarfile(file)):
            sub = dest / Path(f.filename).name.split(".")[0]
            safe_extract(file, sub, limits=limits, progress=progress)
        else:
            target = dest / f.filename
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copy2(file, tmp)
            os.replace(tmp, target)
    return dest


DATASET_ENTRIES = ("meta.json", "dataset_info.csv", "sources.json", "bg", "fg", "fg_bg",
                   "mask", "depth", "bg_depth")
"""What :func:`make_archive` puts in a dataset archive (not caches or downloads)."""


def make_archive(root: str | os.PathLike, archive: str | os.PathLike, *,
                 entries: tuple[str, ...] = DATASET_ENTRIES,
                 progress: bool | None = None) -> tuple[Path, str]:
    """Zip a dataset folder to share it: its files under their dataset-relative paths,
    stored without recompression (images are compressed already; stored members are
    also the fastest for :class:`evacamel.loading.files.ZipDataset` to read).

    Written to a temporary name and renamed, so a half-written archive never exists.

    Returns:
        ``(archive, sha256)``: publish the hash beside the archive.
    """
    root, archive = Path(root), Path(archive)
    files = []
    for name in entries:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{root}: no dataset files to archive")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for path in progress_bar(files, desc=f"zip {archive.name}", unit="file",
                                     disable=None if progress is None else not progress):
                zf.write(path, path.relative_to(root).as_posix())
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return archive, file_hash(archive)
