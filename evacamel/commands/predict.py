"""``evacamel predict CKPT --bg B --fg-bg F``: a mask and a depth map for one image pair."""

from __future__ import annotations

import argparse

from evacamel.cli_args import plain_file_name


HELP = "predict the mask and depth of an image pair of any size (PNGs out)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training checkpoint (runs/<profile>/best.pt)")
    p.add_argument("--bg", required=True, help="the background image")
    p.add_argument("--fg-bg", required=True, help="the same background with the camel")
    p.add_argument("--out", default=None, help="output folder (default: beside --fg-bg)")
    p.add_argument("--name", default=None, type=plain_file_name,
                   help="output file prefix, a plain name (default: the --fg-bg stem)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel predict --help` and argument errors must not
    # wait for torch (measured on a loaded 2-core machine: --help 0.2 s, torch 2-30 s).
    from evacamel.predict import load_model, predict_files

    model = load_model(args.checkpoint, device=args.device)
    paths = predict_files(model, args.bg, args.fg_bg, args.out, name=args.name,
                          overwrite=args.overwrite)
    for kind, path in paths.items():
        print(f"{kind:8s} {path}")
    return 0
