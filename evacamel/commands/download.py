"""``evacamel download``: fetch a dataset archive, verify its hash, extract it safely.

Every error a user or a server can cause (a bad argument, a refused archive, a failed
download, a full or read-only disk) ends in one line naming the file or URL and the
fix, with exit status 1; an interruption (Ctrl-C) leaves the ``.part`` file to resume.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from evacamel.cli_args import (byte_size, non_negative_int, plain_file_name,
                                     positive_float, positive_int)
from evacamel.dataset.archive import ExtractLimits
from evacamel.dataset.download import RetryPolicy, download_name, fetch, fetch_registered
from evacamel.dataset.registry import REGISTRY, registry_table
from evacamel.paths import data_dir

HELP = "download a dataset (registry name, URL or Google Drive id), verify it, extract safely"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default=None,
                   help="a registry name (see --list), an http(s) URL, or gdrive:<id>")
    p.add_argument("--dest", default=None,
                   help="folder to extract into (default: data/<name>)")
    p.add_argument("--downloads", default=None,
                   help="folder the downloaded files are kept in (default: downloads/ beside "
                        "--dest)")
    p.add_argument("--sha256", default=None, help="expected sha256 of the archive")
    p.add_argument("--md5", default=None, help="expected md5 of the archive")
    p.add_argument("--filename", type=plain_file_name, default=None,
                   help="name for the downloaded file (a plain name)")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --dest (or a file of the same name in it)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept a file whose hash is unknown (e.g. the seed's archives); an "
                        "archive must still read whole")
    p.add_argument("--max-files", type=positive_int, default=None,
                   help=f"refuse archives with more files (default {ExtractLimits.max_files})")
    p.add_argument("--max-bytes", type=byte_size, default=None,
                   help="refuse archives larger than this uncompressed, e.g. 50G (default: "
                        "only --max-ratio and the free disk space limit it)")
    p.add_argument("--max-ratio", type=positive_float, default=None,
                   help=f"refuse archives that expand more than this many times "
                        f"(default {ExtractLimits.max_ratio:g})")
    p.add_argument("--retries", type=non_negative_int, default=RetryPolicy.retries,
                   help="retries of a failing download, with waits of 1, 2, 4... s "
                        "(default %(default)s)")
    p.add_argument("--list", action="store_true", help="list the known datasets")


def _limits(args: argparse.Namespace) -> ExtractLimits:
    given = {"max_files": args.max_files, "max_bytes": args.max_bytes,
             "max_ratio": args.max_ratio}
    return ExtractLimits(**{k: v for k, v in given.items() if v is not None})


def _run(args: argparse.Namespace) -> Path:
    """Fetch what ``args`` names; returns where it went."""
    limits, retry = _limits(args), RetryPolicy(retries=args.retries)
    downloads = Path(args.downloads) if args.downloads else None
    if args.source in REGISTRY:
        dest = Path(args.dest) if args.dest else data_dir() / args.source
        return fetch_registered(args.source, dest, allow_unverified=args.allow_unverified,
                                downloads=downloads, overwrite=args.overwrite, limits=limits,
                                retry=retry)
    if not args.source.startswith(("http://", "https://", "gdrive:")):
        raise ValueError(f"{args.source!r}: not a known dataset, URL or gdrive:<id> "
                         f"(known datasets: {', '.join(REGISTRY)}; see --list)")
    name = download_name(args.source, args.filename)
    dest = Path(args.dest) if args.dest else data_dir() / (name.split(".")[0] or name)
    return fetch(args.source, dest, sha256=args.sha256, md5=args.md5, filename=args.filename,
                 downloads=downloads, extract=not args.no_extract, overwrite=args.overwrite,
                 allow_unverified=args.allow_unverified, limits=limits, retry=retry)


def _hint(exc: BaseException) -> str:
    """What to do about an error of the disk (the others say it themselves)."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return " (the disk is full: free some space or choose another --dest / --downloads)"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return " (not writable: choose a folder you can write to with --dest / --downloads)"
    if code in (errno.ENOTDIR, errno.EEXIST):
        return " (a file is in the way: choose another --dest / --downloads)"
    return ""


def main(args: argparse.Namespace) -> int:
    if args.list or not args.source:
        print(registry_table())
        return 0
    try:
        print(_run(args))
    except KeyboardInterrupt:
        print("evacamel download: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except (OSError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"evacamel download: error: {' '.join(str(message).split())}{_hint(exc)}",
              file=sys.stderr)
        return 1
    return 0
