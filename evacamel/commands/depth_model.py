"""``evacamel depth-model --out FOLDER``: train (reproduce) the shipped monocular depth model."""

from __future__ import annotations

import argparse
import shlex
import sys

from evacamel.cli_args import non_negative_int, positive_int

HELP = "train the small monocular depth model shipped with the package (fg_bg in, depth out)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True,
                   help="folder for mono_depth.pt (fp16 weights) and mono_depth.json (its record); "
                        "evacamel/weights --overwrite reproduces the shipped files")
    p.add_argument("--profile", default="quick",
                   help="dataset and model sizes (default quick: the shipped model's; made if missing)")
    p.add_argument("--data", default=None, help="dataset folder (default: the profile's, made if missing)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 6)")
    p.add_argument("--device", default=None, help="torch device (default cpu: the shipped model's)")
    p.add_argument("--heldout-sample", type=non_negative_int, default=None,
                   help="samples of the small held-out dataset scored in the record, which the tests "
                        "check (default 128; 0: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace mono_depth.pt and mono_depth.json if --out has them")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or epoch lines")


def main(args: argparse.Namespace) -> int:
    # Imported here: `evacamel depth-model --help` must not wait for torch (see depth.py).
    from pathlib import Path

    from evacamel.monodepth import HELDOUT_SAMPLE_SIZE, train_mono_depth
    from evacamel.profiles import get_profile

    get_profile(args.profile)  # an unknown profile is refused before --out is made
    for name in ("mono_depth.pt", "mono_depth.json"):  # refused before minutes of training
        if (Path(args.out) / name).exists() and not args.overwrite:
            raise FileExistsError(f"{Path(args.out) / name}: exists; pass --overwrite to replace "
                                  "it, or choose another --out")

    command = "evacamel " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    sample = HELDOUT_SAMPLE_SIZE if args.heldout_sample is None else args.heldout_sample
    record = train_mono_depth(args.profile, out=args.out, data=args.data, command=command,
                              heldout_sample=sample, progress=not args.no_progress,
                              epochs=args.epochs, device=args.device)
    scores = record["heldout_split"]["scores"]
    print(f"{args.out}: mono_depth.pt ({record['parameters']:,} parameters) and mono_depth.json; "
          f"trained in {record['training']['seconds']:.0f} s")
    print(f"held-out test split ({record['heldout_split']['samples']} samples), ground pixels, no fit: "
          f"AbsRel {scores['ground/no fit/absrel']:.3f}, delta1 {scores['ground/no fit/delta1']:.3f}")
    return 0
