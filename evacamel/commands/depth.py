"""``evacamel depth DATASET --estimator exact|MODEL``: regenerate a dataset's depth maps."""

from __future__ import annotations

import argparse
from pathlib import Path

from evacamel.cli_args import positive_int

HELP = "regenerate a dataset's depth maps with exact depth or a pretrained monocular model (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="the dataset folder (with meta.json and dataset_info.csv)")
    p.add_argument("--estimator", default="exact",
                   help="'exact' (the synthetic world's depth, kept in DATASET/exact_depth/) or a transformers "
                        "depth model: a Hugging Face id such as depth-anything/Depth-Anything-V2-Small-hf, or a "
                        "local folder saved with save_pretrained (default: exact)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="side of the written maps in pixels (default: meta.json depth_size; the seed used 512)")
    p.add_argument("--seed-normalisation", action="store_true",
                   help="store the original project's maps: per-image min-max, inverted so near is bright "
                        "(not comparable across images; for comparison only)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per estimator call (default 8)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="model precision: auto = bf16/fp16 autocast on CUDA, float32 on CPU")
    p.add_argument("--force", action="store_true", help="redo every map even if this estimator made them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel <command> --help` and argument errors
    # must not wait for torch (measured on a loaded 2-core machine: --help 0.2 s,
    # importing the dataset writer 7-11 s).
    from evacamel.dataset.format import read_meta
    from evacamel.depth.estimators import ExactDepth, HFDepthEstimator
    from evacamel.depth.rewrite import RewriteOptions, rewrite_depth

    root = Path(args.dataset)
    read_meta(root)  # a dataset? (before a model is loaded)
    if args.estimator == "exact":
        estimator = ExactDepth(root, device=args.device)
    else:
        estimator = HFDepthEstimator(args.estimator, device=args.device, dtype=args.dtype)
    options = RewriteOptions(size=args.size, batch_size=args.batch_size, force=args.force,
                             normalisation="seed" if args.seed_normalisation else "auto",
                             progress=False if args.no_progress else None)
    result = rewrite_depth(root, estimator, options)
    name = result.source if isinstance(result.source, str) else result.source.get("model") or result.source["kind"]
    if result.written == 0:
        print(f"{root}: all {result.total} depth maps already come from {name}; nothing to do (--force redoes them)")
    else:
        print(f"{root}: wrote {result.written} depth maps from {name} "
              f"({result.skipped} already done); meta.json records the source")
    if result.stale_zips:
        print(f"warning: the zip parts {', '.join(result.stale_zips)} still hold the old depth maps; "
              "delete them (or rebuild them) before training from zip parts")
    return 0
