"""``evacamel proxy``: a trained network against the |fg_bg - bg| baseline, on its own
synthetic test split and on the offline proxy of real photographs.

Examples::

    evacamel proxy --checkpoint runs/cpu/best.pt
    evacamel proxy --checkpoint runs/cpu/best.pt --data data/cpu --out data/proxy-cpu

The proxy (:mod:`evacamel.dataset.proxy`: procedural camels on real photographs that
scikit-image ships, and a held-out family of scenes) is written once into ``--out``.
"""

from __future__ import annotations

import argparse

from evacamel.commands._args import positive_int

HELP = "network vs the |fg_bg - bg| baseline on the synthetic test split and the real-photo proxy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a training checkpoint (best.pt, last.pt)")
    p.add_argument("--data", default=None,
                   help="the network's training dataset (default: the checkpoint's, or its "
                        "profile's); the baseline's threshold is fitted on its train split")
    p.add_argument("--out", default=None,
                   help="proxy folder (default: data/proxy-<profile>), made if missing")
    p.add_argument("--samples", type=positive_int, default=360, help="samples per proxy part")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `--help` and argument errors must not wait for torch.
    from evacamel.baselines import compare_masks, format_mask_comparison
    from evacamel.dataset.proxy import write_proxy
    from evacamel.dataset.write import ensure_dataset
    from evacamel.paths import dataset_dir
    from evacamel.predict import load_model

    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: must be at least 1")
    model = load_model(args.checkpoint)
    config = model.info.get("config") or {}
    profile = config.get("profile") or "quick"
    data = args.data or config.get("data") or ensure_dataset(profile)
    proxy = write_proxy(args.out or dataset_dir(f"proxy-{profile}"), profile,
                        samples=args.samples, progress=True)
    sets = {"synthetic test": (data, "test"), **{k: (v, "all") for k, v in proxy.items()}}
    table = compare_masks(model.model, model.transform, sets, fit_data=data,
                          input_size=model.input_size, output_size=model.output_size)
    print(format_mask_comparison(table))
    return 0
