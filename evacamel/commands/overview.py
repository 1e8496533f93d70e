"""``evacamel overview CKPT --out FILE``: the course's front picture from a checkpoint."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from evacamel.cli_args import IMAGE_FORMATS, image_file, positive_int
from evacamel.dataset.atomic import atomic_write

HELP = "draw new scenes with their true and predicted mask and depth (the README's picture)"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by `evacamel train` (best.pt)")
    parser.add_argument("--out", required=True, type=image_file, help="image file to write (.png or .jpg)")
    parser.add_argument("--scenes", type=positive_int, default=4, help="how many new scenes (default 4)")
    parser.add_argument("--size", type=positive_int, default=256,
                        help="scene size in pixels, at least 32 (default 256)")
    parser.add_argument("--data", default=None,
                        help="the training dataset, whose scene seeds are avoided (default: none)")
    parser.add_argument("--dpi", type=positive_int, default=80)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = IMAGE_FORMATS[out.suffix.lower()]
    if args.size < 32:
        raise ValueError(f"--size {args.size}: scenes need at least 32 pixels")
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"{args.checkpoint}: no such checkpoint (train one with `evacamel train`)")
    # Imported here, not at the top: `evacamel overview --help` and argument errors must not
    # wait for torch (measured on a loaded 2-core machine: --help 0.2 s, torch 2-30 s).
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: before pyplot is imported
    from evacamel.predict import load_model, predict_pair, render_new_pairs
    from evacamel.viz import depth_to_rgb, overlay_mask, show_rows

    model = load_model(args.checkpoint)
    profile = (model.info.get("config") or {}).get("profile")
    new = render_new_pairs(profile, args.scenes, size=args.size, exclude_from=args.data)
    preds = [predict_pair(model, new["bg"][i], new["fg_bg"][i]) for i in range(args.scenes)]
    fig = show_rows({
        "fg_bg (input)": list(new["fg_bg"]),
        "true mask": [overlay_mask(x, m, color=(0.1, 0.8, 0.2)) for x, m in zip(new["fg_bg"], new["mask"])],
        "predicted mask": [overlay_mask(x, p.mask) for x, p in zip(new["fg_bg"], preds)],
        "true depth": [depth_to_rgb(d, vmin=1, vmax=1000) for d in new["depth_m"]],
        "predicted depth": [depth_to_rgb(p.depth_m, vmin=1, vmax=1000) for p in preds],
    }, size=2.0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=args.dpi, bbox_inches="tight",
                **({"pil_kwargs": {"quality": 85, "optimize": True}} if fmt == "jpeg" else {}))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, buffer.getvalue())
    print(f"wrote {args.out}")
    return 0
