"""Fetch dataset files (URL or Google Drive id), verify them, install them in a dataset.

A file from the internet is untrusted input. What this module promises about it:

* **Where it writes.** A download goes to ``<downloads>/<name>.part`` and is renamed to
  ``<downloads>/<name>`` only when it is complete and verified; ``downloads`` defaults
  to ``downloads/`` beside the destination folder. An archive is then extracted into the
  destination by :func:`evacamel.dataset.archive.safe_extract` (checked entries, limits,
  a temporary folder renamed at the end); another file is copied into it through a
  temporary name. An existing file or non-empty folder is never replaced unless asked
  (``overwrite``); a rerun leaves what is there already.
* **Resumable downloads.** A retry, or a later call, asks the server for the rest of the
  ``.part`` file (HTTP ``Range``). Transient errors (connection refused or reset,
  timeouts, HTTP 5xx, 408, 429, bodies cut short) are retried with exponential backoff
  (:class:`RetryPolicy`).
* **Nothing is promoted unverified.** A body shorter than announced (``Content-Length``
  or the total of ``Content-Range``) is never complete. With a sha256/md5 the file must
  match it. Without one (``allow_unverified``) an archive must at least read whole
  (:func:`~evacamel.dataset.archive.check_whole`): a body cut short *without* a
  ``Content-Length`` looks complete otherwise.

Errors: ``ValueError`` (:class:`~evacamel.dataset.archive.ArchiveError` for a refused
file or a hash mismatch), ``ConnectionError`` / ``FileNotFoundError`` for downloads that
fail, ``FileExistsError`` for what would be replaced; each names the file or URL and
what to do.

Google Drive ids go through ``gdown`` (which handles Drive's confirmation pages).
"""

from __future__ import annotations

import filecmp
import hashlib
import http.client
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from evacamel.colab import progress_bar

from evacamel.dataset.archive import (ArchiveError, ExtractLimits, archive_kind, check_whole,
                                      is_extracted, safe_extract)
from evacamel.dataset.atomic import tmp_name
from evacamel.dataset.registry import get_entry

__all__ = [
    "RetryPolicy",
    "file_hash",
    "verify_file",
    "download_url",
    "download_gdrive",
    "download",
    "verify_and_extract",
    "download_name",
    "fetch",
    "fetch_registered",
    "make_archive",
]

_CHUNK = 1 << 20
_REMOVED = "the partial download was removed; rerun to download it again"


@dataclass(frozen=True)
class RetryPolicy:
    """How a download copes with a flaky network: ``retries`` attempts after the first,
    waiting ``backoff_s * 2**k`` seconds before attempt ``k + 1`` (1+2+4+8+16 = 31 s by
    default); ``timeout_s`` for each socket operation. ``sleep`` defaults to ``time.sleep``,
    looked up when a wait begins (so a test may replace either)."""

    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    sleep: Callable[[float], object] | None = None


# -- hashes -----------------------------------------------------------------------------

def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, *, sha256: str | None = None,
                md5: str | None = None, label: str | None = None,
                fix: str = "check the hash, or download the file again") -> None:
    """Check a file's hash.

    Args:
        label: what the message calls the file (default: its path), e.g. its URL.
        fix: what the message tells the user to do.

    Raises:
        ValueError: no hash given. ArchiveError (a ValueError): a mismatch; the message
            names the file and both digests.
    """
    label = label or str(path)
    if not sha256 and not md5:
        raise ValueError(f"{label}: no sha256 or md5 to verify against")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_hash(path, algorithm)
            if actual.lower() != expected.lower():
                raise ArchiveError(f"{label}: {algorithm} mismatch: expected {expected.lower()}, "
                                   f"got {actual} (a corrupt or tampered file, or a wrong "
                                   f"hash): {fix}")


# -- downloading ---------------------------------------------------------------------------

# What a flaky network raises (urllib's URLError and ssl errors are OSErrors too, but so
# are a full disk and a read-only folder, which no retry mends: those are not listed).
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                   TimeoutError, ssl.SSLError)
_RETRIED_HTTP = (408, 425, 429)


@dataclass
class _Transfer:
    """One file being downloaded: where its bytes go, and what the server showed."""

    url: str
    part: Path
    range_ignored: bool = False
    """The server answered a Range request with another range or the whole body: the
    ``.part`` cannot be resumed from it."""


def _announced(value: str | None) -> int | None:
    """A header's byte count, or None when absent or not a number (a hostile server)."""
    return int(value) if value is not None and value.strip().isdigit() else None


def _response_span(t: _Transfer, resp, have: int) -> tuple[int, int | None]:
    """Where the response's body starts in the file, and the file's announced size."""
    if getattr(resp, "status", 200) == 206:
        return _range_start(t, resp, have)
    if have:
        t.range_ignored = True  # the whole file again: start over
    return 0, _announced(resp.headers.get("Content-Length"))


def _range_start(t: _Transfer, resp, have: int) -> tuple[int, int | None]:
    """Check a 206 answer's ``Content-Range: bytes FIRST-LAST/TOTAL`` against ``have``."""
    spec = (resp.headers.get("Content-Range") or "").removeprefix("bytes ").strip()
    span, _, total = spec.partition("/")
    first = span.partition("-")[0]
    if not first.isdigit() or int(first) != have:
        t.range_ignored = True
        t.part.unlink(missing_ok=True)
        raise ConnectionError(f"asked for bytes {have}- but the server sent {spec or 'no range'}")
    if _announced(total) is not None:
        return have, _announced(total)
    length = _announced(resp.headers.get("Content-Length"))
    return have, have + length if length is not None else None


def _fetch_once(t: _Transfer, *, timeout: float, progress: bool | None,
                headers: dict[str, str]) -> None:
    """One attempt: write the rest of ``t.url`` to ``t.part`` (resuming with Range).

    Raises:
        One of ``_NETWORK_ERRORS`` (retried), or OSError from the local disk (not retried).
    """
    have = t.part.stat().st_size if t.part.exists() else 0
    req = urllib.request.Request(t.url, headers={"User-Agent": "evacamel", **headers})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the file is complete
            return
        raise
    with resp:
        start, total = _response_span(t, resp, have)
        with open(t.part, "ab" if start else "wb") as f, \
                progress_bar(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=t.part.name[:-5],
                     disable=None if progress is None else not progress) as bar:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    size = t.part.stat().st_size
    if total is not None and size < total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes")


def _final(exc: BaseException) -> bool:
    """An error no retry mends: an HTTP 4xx other than 408/425/429."""
    return isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 \
        and exc.code not in _RETRIED_HTTP


def _give_up(t: _Transfer, exc: BaseException, attempts: int) -> OSError:
    """The one error to raise when a download fails for good; decides about ``.part``.

    The ``.part`` is kept when a rerun can resume it (the network went down, the server
    timed out, cut bodies short, or answered 5xx: its bytes are still the file's first
    bytes, and a changed file is caught by the hash or the archive check). It is removed
    when no rerun could use it: the URL is wrong (HTTP 4xx), the server ignores Range
    (a rerun starts from zero anyway), or it is empty.
    """
    code = exc.code if isinstance(exc, urllib.error.HTTPError) else None
    if _final(exc) or t.range_ignored or (t.part.exists() and t.part.stat().st_size == 0):
        t.part.unlink(missing_ok=True)
    if code in (404, 410):
        return FileNotFoundError(f"{t.url}: HTTP {code} {exc.reason}: check the URL")
    if code is not None and _final(exc):
        return ConnectionError(f"{t.url}: HTTP {code} {exc.reason}: check the URL and that "
                               f"the file is public")
    reason = f"HTTP {code} {exc.reason}" if code else getattr(exc, "reason", None) or exc
    resume = (f"; rerun the same command to resume from the {t.part.stat().st_size} bytes "
              f"in {t.part}" if t.part.exists() else "")
    return ConnectionError(f"{t.url}: download failed after {attempts} attempt"
                           f"{'s' * (attempts > 1)} ({reason}); check the network or try "
                           f"again later{resume}")


def _fetch_with_retries(t: _Transfer, retry: RetryPolicy, progress: bool | None,
                        headers: dict[str, str]) -> None:
    """:func:`_fetch_once` until the file is whole, at most ``retry.retries + 1`` times."""
    for attempt in range(retry.retries + 1):
        try:
            _fetch_once(t, timeout=retry.timeout_s, progress=progress, headers=headers)
            return
        except _NETWORK_ERRORS as exc:
            if _final(exc) or attempt == retry.retries:
                raise _give_up(t, exc, attempt + 1) from None
            (retry.sleep or time.sleep)(retry.backoff_s * 2**attempt)


def download_url(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                 md5: str | None = None, retry: RetryPolicy = RetryPolicy(),
                 progress: bool | None = None, allow_unverified: bool = False,
                 headers: dict[str, str] | None = None) -> Path:
    """Download ``url`` to ``dest``, resumable and verified.

    Bytes go to ``dest + ".part"``; an interrupted download (this call's retries, or a
    later call) continues from there with an HTTP Range request. The file is renamed to
    ``dest`` only when whole and verified (see :func:`_promote_download`).

    Args:
        sha256, md5: the expected digest (one is required unless ``allow_unverified``).
        retry: attempts, backoff and timeout.
        allow_unverified: accept a file without a known hash (the seed's archives); an
            archive must still open whole.

    Returns:
        ``dest``. If it already exists and verifies, nothing is downloaded.

    Raises:
        ValueError: not http(s); no hash and not ``allow_unverified``.
        ArchiveError: hash mismatch, or an archive that does not read whole.
        FileNotFoundError: HTTP 404/410.
        ConnectionError: other HTTP errors, or still failing after all retries.
        OSError: the local disk refused a write (full, read-only): not retried, and the
            ``.part`` is kept to resume.
    """
    dest = Path(dest)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url}: not an http(s) URL")
    if _already_there(url, dest, sha256, md5, allow_unverified):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(url, dest.with_name(dest.name + ".part"))
    _fetch_with_retries(transfer, retry, progress, headers or {})
    return _promote_download(url, transfer.part, dest, sha256, md5)


def _already_there(what: str, dest: Path, sha256: str | None, md5: str | None,
                   allow_unverified: bool) -> bool:
    """Refuse an unverifiable download; True when ``dest`` already holds the (verified) file."""
    if not (sha256 or md5 or allow_unverified):
        raise ValueError(f"{what}: no sha256/md5 given; refusing an unverified download "
                         f"(pass --sha256 HASH, or --allow-unverified / allow_unverified=True "
                         f"to accept it unchecked)")
    if not dest.exists():
        return False
    if sha256 or md5:
        verify_file(dest, sha256=sha256, md5=md5,
                    fix=f"check the hash, or delete {dest} to download it again")
    return True


def _promote_download(what: str, part: Path, dest: Path, sha256: str | None,
                      md5: str | None) -> Path:
    """Rename the finished ``part`` to ``dest`` if it matches its hash, or, with none, if
    it is not an archive that fails to open whole. A refused ``part`` is deleted: a
    rerun could only resume it into the same wrong file."""
    try:
        if sha256 or md5:
            verify_file(part, sha256=sha256, md5=md5, label=what, fix=_REMOVED)
        else:
            check_whole(part, name=dest.name, label=what, fix=_REMOVED)
    except ArchiveError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def download_gdrive(file_id: str, dest: str | os.PathLike, *, sha256: str | None = None,
                    md5: str | None = None, progress: bool | None = None,
                    allow_unverified: bool = False) -> Path:
    """Download a Google Drive file by id with ``gdown`` (resumable), then verify it.

    Raises:
        ConnectionError: gdown failed (private file, wrong id, quota, network).
        ValueError / ArchiveError: as :func:`download_url`.
    """
    dest, label = Path(dest), f"Google Drive id {file_id}"
    if not file_id or "/" in file_id:
        raise ValueError(f"{file_id!r}: not a Google Drive id (give gdrive:<id>, the part "
                         f"of the sharing link after /d/)")
    if _already_there(label, dest, sha256, md5, allow_unverified):
        return dest
    # gdown (with requests and BeautifulSoup) takes 0.4-0.8 s to import, and only Drive
    # downloads need it: imported here so that URL downloads and --list stay quick.
    import gdown

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        out = gdown.download(id=file_id, output=str(part), quiet=progress is False, resume=True)
    except Exception as exc:  # noqa: BLE001 (gdown's errors differ between its versions)
        out, reason = None, " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    else:
        reason = f"gdown returned {out!r}"
    if not out or not part.exists():
        raise ConnectionError(f"{label}: download failed ({reason}); check the id and that "
                              f"the file is shared with 'Anyone with the link', then rerun")
    return _promote_download(label, part, dest, sha256, md5)


def download(source: str, dest: str | os.PathLike, *, retry: RetryPolicy = RetryPolicy(),
             **kwargs) -> Path:
    """:func:`download_url` for ``http(s)://`` URLs, :func:`download_gdrive` otherwise
    (``gdrive:ID`` or a bare Drive id); ``kwargs`` are theirs."""
    if source.startswith(("http://", "https://")):
        return download_url(source, dest, retry=retry, **kwargs)
    return download_gdrive(source.removeprefix("gdrive:"), dest, **kwargs)


def verify_and_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                       sha256: str | None = None, md5: str | None = None,
                       limits: ExtractLimits = ExtractLimits(), overwrite: bool = False,
                       progress: bool | None = None) -> Path:
    """:func:`verify_file` then :func:`safe_extract`: nothing is extracted unless the
    archive's hash matches."""
    verify_file(archive, sha256=sha256, md5=md5)
    return safe_extract(archive, dest, limits=limits, overwrite=overwrite, progress=progress)


# -- fetch: download, then extract or place ---------------------------------------------------

def download_name(source: str, filename: str | None = None) -> str:
    """The name a download is saved under: ``filename``, or the URL's last component.

    Raises:
        ValueError: a name with a path separator, ``..``, or nothing at all.
    """
    name = filename or source.rstrip("/").rsplit("/", 1)[-1].split("?")[0].split("#")[0]
    if source.startswith("gdrive:") and not filename:
        name = source.removeprefix("gdrive:")
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00") \
            or PureWindowsPath(name).drive:
        raise ValueError(f"{name!r}: not a plain file name for the download of {source}; "
                         f"give one with --filename NAME (no folders, no '..')")
    return name


def _extract_once(archive: Path, dest: Path, limits: ExtractLimits, overwrite: bool,
                  progress: bool | None) -> Path:
    """:func:`safe_extract`, unless ``dest`` holds the archive's files already."""
    if not overwrite and dest.is_dir() and any(dest.iterdir()) \
            and is_extracted(archive, dest, limits):
        return dest
    return safe_extract(archive, dest, limits=limits, overwrite=overwrite, progress=progress)


def _place_file(file: Path, target: Path, overwrite: bool) -> Path:
    """Copy ``file`` to ``target`` through a temporary name. An existing different
    ``target`` is replaced only with ``overwrite``; an identical one is left alone."""
    if target.exists():
        if target.is_file() and filecmp.cmp(file, target, shallow=False):
            return target
        if target.is_dir():
            raise FileExistsError(f"{target}: is a folder; refusing to put the file {file} "
                                  f"there (choose another --dest)")
        if not overwrite:
            raise FileExistsError(f"{target}: already exists; refusing to replace it with "
                                  f"{file} (pass --overwrite to replace it, or choose another "
                                  f"--dest)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(target)
    try:
        shutil.copyfile(file, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _refuse_file(dest: Path) -> None:
    """Refuse a destination folder that is a file, before downloading anything."""
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest}: is a file, not a folder; choose another --dest")


def _install(file: Path, dest: Path, limits: ExtractLimits, overwrite: bool,
             progress: bool | None) -> Path:
    """Extract an archive into ``dest``, or place any other file in it."""
    if archive_kind(file) in ("zip", "tar"):
        return _extract_once(file, dest, limits, overwrite, progress)
    dest.mkdir(parents=True, exist_ok=True)
    return _place_file(file, dest / file.name, overwrite)


def fetch(source: str, dest: str | os.PathLike, *, sha256: str | None = None,
          md5: str | None = None, filename: str | None = None,
          downloads: str | os.PathLike | None = None, extract: bool = True,
          allow_unverified: bool = False, overwrite: bool = False,
          limits: ExtractLimits = ExtractLimits(), retry: RetryPolicy = RetryPolicy(),
          progress: bool | None = None) -> Path:
    """Download (URL or Drive id), verify, and extract an archive into ``dest``.

    Args:
        source: ``http(s)://...`` or a Google Drive id (``gdrive:ID``).
        dest: the folder to extract into (a file that is not an archive is copied into it).
        filename: the downloaded file's name (default: the URL's last component).
        downloads: where downloaded files are kept (default: ``dest``'s parent /
            ``downloads``).
        extract: False: only download and verify.
        overwrite: replace a non-empty ``dest`` (or a file of the same name in it).

    Returns:
        ``dest`` (extracted), the file placed in it, or the downloaded file (``extract=False``).
    """
    dest = Path(dest)
    name = download_name(source, filename)
    _refuse_file(dest)
    folder = Path(downloads) if downloads else dest.parent / "downloads"
    file = download(source, folder / name, sha256=sha256, md5=md5, progress=progress,
                    allow_unverified=allow_unverified, retry=retry)
    if not extract:
        return file
    return _install(file, dest, limits, overwrite, progress)


def fetch_registered(name: str, dest: str | os.PathLike, *, allow_unverified: bool = False,
                     downloads: str | os.PathLike | None = None, overwrite: bool = False,
                     limits: ExtractLimits = ExtractLimits(), retry: RetryPolicy = RetryPolicy(),
                     progress: bool | None = None) -> Path:
    """Fetch every file of a registry entry (:mod:`evacamel.dataset.registry`) into ``dest``.

    Archives marked ``extract`` go to ``dest/<their stem>``; other files into ``dest``.
    A rerun skips what is there already.

    Raises:
        KeyError: unknown name. ValueError: the entry is unverified and
            ``allow_unverified`` is false. And as :func:`fetch`.
    """
    entry = get_entry(name)
    if not entry.verified and not allow_unverified:
        raise ValueError(f"dataset {name!r} has no known hashes (unverified): a tampered "
                         f"download could not be detected; pass --allow-unverified "
                         f"(allow_unverified=True) to fetch it anyway")
    dest = Path(dest)
    _refuse_file(dest)
    folder = Path(downloads) if downloads else dest.parent / "downloads"
    for f in entry.files:
        file = download(f.source, folder / f.filename, sha256=f.sha256, md5=f.md5,
                        progress=progress, allow_unverified=allow_unverified, retry=retry)
        if f.extract and archive_kind(file) in ("zip", "tar"):
            _extract_once(file, dest / f.folder, limits, overwrite, progress)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            _place_file(file, dest / f.filename, overwrite)
    return dest


# -- sharing a dataset -----------------------------------------------------------------------

def make_archive(root: str | os.PathLike, archive: str | os.PathLike, *,
                 entries: tuple[str, ...] | None = None,
                 progress: bool | None = None) -> tuple[Path, str]:
    """Zip a dataset folder to share it: its files under their dataset-relative paths,
    stored without recompression (images are compressed already; stored members are
    also the fastest for :class:`evacamel.loading.files.ZipDataset` to read).

    Written to a temporary name and renamed, so a half-written archive never exists.

    Args:
        entries: the files and folders of ``root`` to put in (default: the dataset's
            own, :data:`evacamel.dataset.format.DATASET_ENTRIES`).

    Returns:
        ``(archive, sha256)``: publish the hash beside the archive.
    """
    # The format module imports torch (2 s warm, 8 s cold on the 2-core machine), which
    # downloading never needs: imported here, where the folder list is used.
    from evacamel.dataset.format import DATASET_ENTRIES

    entries = DATASET_ENTRIES if entries is None else entries
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
    tmp = tmp_name(archive)
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
