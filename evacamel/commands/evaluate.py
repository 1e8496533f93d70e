"""``evacamel evaluate CKPT``: the metric table of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse

HELP = "print the metric table of a checkpoint on a dataset split (default: test)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training checkpoint (runs/<profile>/best.pt)")
    p.add_argument("--data", default=None,
                   help="dataset folder (default: the checkpoint's profile's dataset)")
    p.add_argument("--split", default="test", choices=("train", "test", "all"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def main(args: argparse.Namespace) -> int:
    import json

    from evacamel.predict import evaluate, format_metrics, load_model

    model = load_model(args.checkpoint, device=args.device)
    metrics = evaluate(model, args.data, args.split, batch_size=args.batch_size,
                       progress=not args.json)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_metrics(metrics, title=f"{args.checkpoint} on the {args.split} split"))
    return 0
