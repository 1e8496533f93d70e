"""``evacamel pack``: build the packed training cache of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from evacamel.cli_args import input_size, non_negative_int
from evacamel.profiles import get_profile

HELP = "pack a dataset into the memory-mapped training cache (parallel, resumable, atomic)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="sizes from this profile (default: auto)")
    p.add_argument("--root", default=None,
                   help="dataset folder (default: the profile's, made if missing)")
    p.add_argument("--input-size", type=input_size, default=None,
                   help="override the profile's input size")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="processes (default: CPU count; 0: in this process)")
    p.add_argument("--force", action="store_true", help="rebuild even if current")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel <command> --help` and argument errors
    # must not wait for torch (measured on a loaded 2-core machine: --help 0.2 s,
    # importing the dataset writer 7-11 s).
    from evacamel.dataset.write import ensure_dataset
    from evacamel.loading.pack import ensure_packed, pack_dataset, read_manifest

    profile = get_profile(args.profile)
    if args.input_size is not None:
        profile = profile.replace(input_size=args.input_size)
    if args.root is None and not args.force:
        folder = ensure_packed(profile, workers=args.workers)
    else:
        root = Path(args.root) if args.root else ensure_dataset(profile)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: dataset folder not found")
        folder = pack_dataset(root, profile.input_size, profile.output_size,
                              workers=args.workers, force=args.force)
    m = read_manifest(folder)
    sizes = {k: len(v) for k, v in m["splits"].items()}
    print(f"{folder}: {m['count']} samples ({', '.join(f'{k} {v}' for k, v in sizes.items())}), "
          f"input {m['input_size']} px, targets {m['output_size']} px")
    return 0
