"""``evacamel train``: train a profile's model, with checkpoints, exact resume and DDP."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from evacamel.cli_args import (fraction, input_size, non_negative_float, non_negative_int,
                                     positive_float, positive_int, seed)
from evacamel.paths import run_dir
from evacamel.profiles import get_profile

if TYPE_CHECKING:
    from evacamel.train import Trainer

HELP = "train the model on a profile's dataset (AMP on CUDA, checkpoints, --resume, torchrun)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None,
                   help="quick, cpu or full (default: $EVACAMEL_PROFILE, else full on CUDA, else quick)")
    p.add_argument("--data", default=None,
                   help="dataset folder (default: data/<profile>, made if missing)")
    p.add_argument("--out", default=None,
                   help="run folder for checkpoints and history (default: runs/<profile>, or the "
                        "checkpoint's folder with --resume CKPT); e.g. a mounted Google Drive folder")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue a run exactly from CKPT (default: <out>/last.pt)")
    g = p.add_argument_group("schedule (default: the profile's)")
    g.add_argument("--epochs", type=positive_int)
    g.add_argument("--batch-size", type=positive_int, help="samples per step over all processes")
    g.add_argument("--lr", type=positive_float, help="peak learning rate")
    g.add_argument("--schedule", choices=("onecycle", "cosine", "constant"))
    g.add_argument("--warmup", type=fraction, help="fraction of steps warming up, in [0, 1) (default 0.15)")
    g.add_argument("--optimizer", choices=("adam", "adamw"))
    g.add_argument("--weight-decay", type=non_negative_float)
    g.add_argument("--accum-steps", type=positive_int, help="gradient-accumulation micro-batches per step")
    g.add_argument("--seed", type=seed, help="random seed, 0 or more")
    g.add_argument("--augment", choices=("auto", "full", "flip", "off"),
                   help="full: flips + colour jitter, flip: flips only, off; "
                        "auto (default): full on CUDA, flip on CPU")
    m = p.add_argument_group("model and loss")
    m.add_argument("--width", type=positive_int, help="U-Net base width (64 = the seed model)")
    m.add_argument("--input-size", type=input_size, help="model input side (multiple of 32)")
    m.add_argument("--mask-weight", type=non_negative_float, help="BCE weight (seed: 10)")
    m.add_argument("--dssim-weight", type=non_negative_float, help="DSSIM weight (seed: 100)")
    m.add_argument("--l1-weight", type=non_negative_float, help="L1 weight (seed: 0.1)")
    m.add_argument("--dice-weight", type=non_negative_float, help="mask Dice weight (seed: 0)")
    m.add_argument("--output-stride", type=int, choices=(1, 2),
                   help="input side / output side: 2 (the seed) or 1 (masks at the input's side)")
    s = p.add_argument_group("speed and checkpoints")
    s.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    s.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"),
                   help="autocast dtype (auto: bf16 on CUDA, fp32 on CPU)")
    s.add_argument("--channels-last", choices=("auto", "on", "off"))
    s.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    s.add_argument("--num-workers", type=non_negative_int, help="DataLoader worker processes")
    s.add_argument("--checkpoint-every", type=non_negative_int, metavar="STEPS",
                   help="also save last.pt every STEPS optimiser steps (default: each epoch only)")
    s.add_argument("--best-metric",
                   help="the validation metric that picks best.pt (default mask_iou; see "
                        "evacamel.metrics.METRIC_NAMES)")
    s.add_argument("--stop-after-steps", type=positive_int, metavar="N",
                   help="stop after N steps without saving, as a disconnect would (to try --resume)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")


_OPTIONS = ("epochs", "batch_size", "lr", "schedule", "warmup", "optimizer", "weight_decay",
            "accum_steps", "seed", "augment", "width", "input_size", "mask_weight",
            "dssim_weight", "l1_weight", "dice_weight", "output_stride", "device", "amp", "channels_last", "compile",
            "num_workers", "checkpoint_every", "best_metric", "data", "out")
"""The options that are :class:`evacamel.train.TrainConfig` fields."""


def _checkpoint_to_resume(args: argparse.Namespace) -> Path | None:
    """``--resume CKPT``, or with a bare ``--resume`` the run folder's ``last.pt``."""
    if args.resume != "auto":
        return Path(args.resume) if args.resume is not None else None
    folder = Path(args.out) if args.out else run_dir(get_profile(args.profile).name)
    if not (folder / "last.pt").is_file():
        raise FileNotFoundError(f"{folder / 'last.pt'}: no checkpoint to resume "
                                f"(train first, or pass --resume CKPT)")
    return folder / "last.pt"


def _summary(trainer: "Trainer") -> str:
    out, best = trainer.cfg.run_dir(), trainer.best
    if not trainer.finished:
        if not (out / "last.pt").is_file():  # stopped as a crash would: nothing saved yet
            return (f"stopped after step {trainer.global_step} as asked, before any checkpoint "
                    f"(one is saved at each epoch's end, or every --checkpoint-every steps)")
        return (f"stopped after step {trainer.global_step} as asked; continue with "
                f"--resume {out / 'last.pt'}")
    if best["value"] is None:
        return f"finished; no epoch had a {best['metric']} to compare: {out}"
    return f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}: {out / 'best.pt'}"


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `evacamel train --help` and argument errors must not
    # wait for torch (measured on a loaded 2-core machine: --help 0.2 s, torch 2-30 s).
    from evacamel.distributed import destroy_distributed
    from evacamel.train import stop_after, train

    overrides = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    on_step = stop_after(args.stop_after_steps) if args.stop_after_steps else None
    try:
        trainer = train(args.profile, resume=_checkpoint_to_resume(args), on_step=on_step,
                        progress=args.progress, **overrides)
        if trainer.dist.is_main:
            print(_summary(trainer))
    finally:
        destroy_distributed()
    return 0
