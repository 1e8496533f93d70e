"""``evacamel download``: fetch a dataset archive, verify its hash, extract it safely."""

from __future__ import annotations

import argparse

HELP = "download a dataset (registry name, URL or Google Drive id), verify it, extract safely"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default=None,
                   help="a registry name (see --list), an http(s) URL, or gdrive:<id>")
    p.add_argument("--dest", default=None,
                   help="folder to extract into (default: data/<name>)")
    p.add_argument("--sha256", default=None, help="expected sha256 of the archive")
    p.add_argument("--md5", default=None, help="expected md5 of the archive")
    p.add_argument("--filename", default=None, help="name for the downloaded file")
    p.add_argument("--no-extract", action="store_true", help="download and verify only")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept a file whose hash is unknown (e.g. the seed's archives)")
    p.add_argument("--max-files", type=int, default=None, help="refuse archives with more files")
    p.add_argument("--max-bytes", type=int, default=None,
                   help="refuse archives larger than this uncompressed")
    p.add_argument("--list", action="store_true", help="list the known datasets")


def main(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from evacamel.dataset.download import ExtractLimits, fetch, fetch_registered
    from evacamel.dataset.registry import REGISTRY, registry_table
    from evacamel.paths import data_dir

    if args.list or not args.source:
        print(registry_table())
        return 0
    limits = ExtractLimits()
    if args.max_files:
        limits = replace(limits, max_files=args.max_files)
    if args.max_bytes:
        limits = replace(limits, max_total_bytes=args.max_bytes)
    if args.source in REGISTRY:
        dest = Path(args.dest) if args.dest else data_dir() / args.source
        out = fetch_registered(args.source, dest, allow_unverified=args.allow_unverified,
                               limits=limits)
    else:
        if not args.source.startswith(("http://", "https://", "gdrive:")):
            raise ValueError(f"{args.source!r}: not a known dataset, URL or gdrive:<id> "
                             f"(known: {', '.join(REGISTRY)})")
        name = args.filename or args.source.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        dest = Path(args.dest) if args.dest else data_dir() / name.split(".")[0]
        out = fetch(args.source, dest, sha256=args.sha256, md5=args.md5, filename=args.filename,
                    extract=not args.no_extract, allow_unverified=args.allow_unverified,
                    limits=limits)
    print(out)
    return 0
