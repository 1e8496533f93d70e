"""``evacamel make-dataset``: write a dataset folder (procedural world or your own photos).

Examples::

    evacamel make-dataset --profile quick --out data/quick
    evacamel make-dataset --profile quick --out data/wide --world wide --blend realistic
    evacamel make-dataset --profile full --out D --zip-parts 10 --workers 8
    evacamel make-dataset --profile full --out D --shard 0/4    # on machine 0 of 4 ...
    evacamel make-dataset --profile full --out D --finalize     # ... then merge here
    evacamel make-dataset --profile quick --out mine --backgrounds photos/ \\
        --camels cutouts/ --camel-masks cutout_masks/

Interrupted, rerun the same command: it finishes without redoing what is written.
See :mod:`evacamel.dataset` for the layout and the guarantees.
"""

from __future__ import annotations

import argparse
import sys

from evacamel.cli_args import non_empty_path, non_negative_int, positive_int, seed, shard
from evacamel.paths import dataset_dir
from evacamel.profiles import get_profile

HELP = "write a dataset (bg, fg_bg, mask, depth, dataset_info.csv) from the procedural world or your photos"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None,
                   help="quick, cpu or full (default: $EVACAMEL_PROFILE, else full on CUDA, else quick)")
    p.add_argument("--out", default=None, type=non_empty_path, help="dataset folder (default: data/<profile>)")
    p.add_argument("--seed", type=seed, default=None,
                   help="dataset seed, 0 or more (default: the profile's)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="number of composites (default: the profile's)")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: all usable CPUs)")
    p.add_argument("--shard", default=None, type=shard, metavar="I/N",
                   help="write only part I of N (0-based), e.g. 0/4; merge with --finalize")
    p.add_argument("--finalize", action="store_true",
                   help="merge the shards written into --out and finish the dataset")
    p.add_argument("--zip-parts", type=non_negative_int, default=0, metavar="N",
                   help="also write N zip parts dataset_0.zip.. and dataset_bg.zip, as the seed shipped")
    p.add_argument("--clahe", action="store_true", help="equalise background brightness (CLAHE), as the seed")
    p.add_argument("--mode", choices=("perspective", "seed", "mixed"), default=None,  # plan.COMPOSE_MODES
                   help="perspective: camels stand on the terrain; seed: the seed's recipe (a large "
                        "square anywhere); mixed: each sample one or the other; default: the profile's")
    p.add_argument("--world", choices=("classic", "wide", "held-out"), default=None,
                   help="procedural world: classic dunes; wide (rock, gravel, roads, mesas, "
                        "structures, photographic looks, wider camels); held-out (wide scenes "
                        "that all have scrub, never trained on); default: the profile's")
    p.add_argument("--blend", choices=("paste", "realistic"), default=None,
                   help="camels hard-pasted (the seed's way) or realistic (colour-harmonised and "
                        "Poisson-blended; masks stay exact); default: the profile's")
    p.add_argument("--backgrounds", default=None, metavar="DIR",
                   help="your own background photos (no exact depth: seed mode, depth written later "
                        "by `evacamel depth`)")
    p.add_argument("--camels", default=None, metavar="DIR",
                   help="your own camel cut-outs: RGBA PNGs, or RGB with --camel-masks")
    p.add_argument("--camel-masks", default=None, metavar="DIR",
                   help="masks for RGB cut-outs, same file stem (white = camel)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _warn_empty_splits(root: object, counts: dict) -> None:
    """A dataset with an empty split is written, but not without a word (stderr)."""
    empty = [split for split in ("train", "test") if not counts.get(split)]
    if empty:
        print(f"warning: {root}: the {' and the '.join(empty)} split "
              f"{'is' if len(empty) == 1 else 'are'} empty ({counts.get('samples')} samples); "
              "training or evaluating on it will be refused: ask for more with --samples",
              file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel <command> --help` and argument errors
    # must not wait for torch (measured on a loaded 2-core machine: --help 0.2 s,
    # importing the dataset writer 7-11 s).
    from evacamel.dataset.format import read_meta
    from evacamel.dataset.sources import FolderSources
    from evacamel.dataset.write import finalize_dataset, write_dataset

    profile = get_profile(args.profile)
    if args.samples is not None:
        profile = profile.replace(samples=args.samples)
    if args.camel_masks and not args.camels:
        raise ValueError("--camel-masks needs --camels")
    if args.finalize and args.shard:
        raise ValueError("--finalize merges the shards: give it without --shard")
    source = FolderSources.of(args.backgrounds, args.camels, args.camel_masks)
    if source == FolderSources():
        source = "procedural"
    out = args.out or dataset_dir(profile.name)
    what = dict(seed=args.seed, source=source, zip_parts=args.zip_parts, clahe=args.clahe,
                mode=args.mode, world=args.world, blend=args.blend)
    if args.finalize:
        root = finalize_dataset(out, profile, **what)
    else:
        root = write_dataset(out, profile, shard=args.shard, workers=args.workers,
                             progress=not args.no_progress, **what)
    meta = read_meta(root)
    c = meta["counts"]
    if meta.get("complete"):
        print(f"{root}: complete: {c['samples']} samples ({c['train']} train, {c['test']} test) "
              f"from {c['backgrounds']} backgrounds and {c['camels']} camels, "
              f"{meta['source_size']} px, depth {meta['depth']['source']}, "
              f"{meta['world']['name']} world, {meta['world']['blend']} blend")
        _warn_empty_splits(root, c)
    else:
        print(f"{root}: shard {args.shard[0]}/{args.shard[1]} written; when every shard is in this folder run "
              f"the same command with --finalize instead of --shard")
    return 0
