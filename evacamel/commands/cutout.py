"""``evacamel cutout``: camel cut-outs (RGBA PNGs) from ordinary photos, for ``make-dataset``.

Examples::

    evacamel cutout camel.jpg --box 120,80,400,360 --out cutouts/
    evacamel cutout photos/*.jpg --out cutouts/            # a centred box in each photo
    evacamel make-dataset --profile quick --out mine --backgrounds deserts/ --camels cutouts/

Each photo gives ``<out>/<stem>.png`` (the camel, alpha = mask, by OpenCV's GrabCut from
the box) and ``<out>/preview/<stem>.png`` (the mask over the photo): look at the previews
and redo a photo with a tighter ``--box`` where the mask is wrong.
"""

from __future__ import annotations

import argparse

from evacamel.cli_args import non_empty_path, xywh_box

HELP = "cut camels out of ordinary photos (OpenCV GrabCut from a box) as RGBA PNGs + previews"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files (JPEG, PNG ...)")
    p.add_argument("--box", default=None, type=xywh_box, metavar="X,Y,W,H",
                   help="the box around the camel in the photo's pixels (left, top, width, "
                        "height); default: a centred box leaving a tenth of each side "
                        "(one box for every photo given)")
    p.add_argument("--out", required=True, type=non_empty_path, metavar="DIR",
                   help="folder for the cut-outs (never the photos' own: inputs are not replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace cut-outs that exist")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel cutout --help` must not wait for OpenCV.
    from evacamel.dataset.cutout import Box, check_outputs, cut_out

    box = Box(*args.box) if args.box is not None else None
    check_outputs(args.photos, args.out, args.overwrite)  # before the first photo is cut
    for photo in args.photos:
        cut, preview, share = cut_out(photo, args.out, box, overwrite=args.overwrite)
        print(f"{photo}: {cut} (mask covers {share:.0%} of the box); check {preview}")
    return 0
