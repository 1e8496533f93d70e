"""``evacamel stats``: exact mean/std per channel, cached in meta.json, as the seed's table."""

from __future__ import annotations

import argparse
import time

from evacamel.cli_args import positive_int

HELP = "exact mean/std of fg_bg, bg, mask and depth (cached in meta.json), as the seed's table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="sizes from this profile (default: auto)")
    p.add_argument("--root", default=None,
                   help="dataset folder (default: the profile's, made if missing)")
    p.add_argument("--split", default="train", choices=["train", "test", "all"])
    p.add_argument("--recompute", action="store_true", help="ignore the cached statistics")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: CPU count)")
    p.add_argument("--seed-table", action="store_true",
                   help="also print the seed's published table (rows put right)")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel <command> --help` and argument errors
    # must not wait for torch (measured on a loaded 2-core machine: --help 0.2 s,
    # importing the dataset writer 7-11 s).
    from evacamel.loading.stats import SEED_STATS, ensure_stats, stats_table

    t0 = time.perf_counter()
    stats = ensure_stats(args.profile, root=args.root, split=args.split,
                         recompute=args.recompute, workers=args.workers)
    print(f"statistics of the {stats['split']} split: {stats['count']} samples, from "
          f"{stats.get('computed_from', '?')} ({time.perf_counter() - t0:.1f} s)")
    print(stats_table(stats))
    if not str(stats.get("computed_from", "")).startswith("packed"):
        print("(computed by decoding the files; `evacamel pack` first makes this, and "
              "training, much faster)")
    if args.seed_table:
        print("\nthe seed's published table (mask and depth rows put right):")
        print(stats_table(SEED_STATS))
    return 0
