"""``evacamel evaluate CKPT``: the metric table of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse
import json

from evacamel.cli_args import positive_int

HELP = "print the metric table of a checkpoint on a dataset split (default: test)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training checkpoint (runs/<profile>/best.pt)")
    p.add_argument("--data", default=None,
                   help="dataset folder (default: the checkpoint's profile's dataset)")
    p.add_argument("--split", default="test", choices=("train", "test", "all"))
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel evaluate --help` and argument errors must not
    # wait for torch (measured on a loaded 2-core machine: --help 0.2 s, torch 2-30 s).
    from evacamel.evaluate import evaluate, format_metrics
    from evacamel.predict import load_model, open_split

    model = load_model(args.checkpoint, device=args.device)
    dataset = open_split(model, args.data, args.split)
    if len(dataset) == 0:
        where = args.data or "the checkpoint's dataset"
        raise ValueError(f"{where}: the {args.split} split has no samples; nothing to evaluate "
                         f"(choose another --split or --data)")
    metrics = evaluate(model.model, dataset, model.transform, batch_size=args.batch_size,
                       progress=not args.json)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_metrics(metrics, title=f"{args.checkpoint} on the {args.split} split"))
    return 0
