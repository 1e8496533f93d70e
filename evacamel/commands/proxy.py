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

from evacamel.cli_args import non_empty_path, positive_int

HELP = "network vs the |fg_bg - bg| baseline on the synthetic test split and the real-photo proxy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a training checkpoint (best.pt, last.pt)")
    p.add_argument("--data", default=None, type=non_empty_path,
                   help="the network's training dataset (default: the checkpoint's, or its "
                        "profile's); the baseline's threshold is fitted on its train split")
    p.add_argument("--out", default=None, type=non_empty_path,
                   help="proxy folder (default: data/proxy-<profile>), made if missing")
    p.add_argument("--samples", type=positive_int, default=360, help="samples per proxy part")


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `--help` and argument errors must not wait for torch.
    from evacamel.baselines import compare_masks, format_mask_comparison
    from evacamel.dataset.proxy import write_proxy
    from evacamel.paths import dataset_dir
    from evacamel.predict import load_model

    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: must be at least 1")
    model = load_model(args.checkpoint)
    profile = model.info["config"].get("profile") or "quick"
    data = _training_data(args.data, model, profile)
    proxy = write_proxy(args.out or dataset_dir(f"proxy-{profile}"), profile,
                        samples=args.samples, progress=True)
    sets = {"synthetic test": (data, "test"), **{k: (v, "all") for k, v in proxy.items()}}
    table = compare_masks(model.model, model.transform, sets, fit_data=data,
                          input_size=model.input_size, output_size=model.output_size)
    print(format_mask_comparison(table))
    return 0


def _training_data(data: str | None, model: object, profile: str) -> object:
    """The network's training dataset, opened once so that a missing or broken one is
    refused before the proxy is written (minutes), not after."""
    from pathlib import Path

    from evacamel.loading.loader import open_dataset
    from evacamel.loading.prepare import chapter_dataset

    # a rendering profile's run has no training files: its chapters' small dataset (never
    # trained on) stands in for the synthetic test and the baseline's fit
    data = data or model.info["config"].get("data") or chapter_dataset(profile)
    if not Path(data).is_dir():
        raise FileNotFoundError(f"{data}: not a dataset folder (from --data or the checkpoint); "
                                "name the network's training dataset with --data")
    open_dataset(data, "train", input_size=model.input_size, output_size=model.output_size)
    return data
