"""The one evaluation loop: a model over a dataset, in eval mode, without gradients, in fp32.

Everything that measures a model calls :func:`evaluate`: the Trainer's per-epoch test
metrics, ``evacamel evaluate``, per-sample scores (:func:`score_samples`) and the
predictions chapter 06 shows (:func:`predict_samples`), as torchvision's references use
one ``evaluate`` for training and for testing. So the metrics a checkpoint records are
the ones the command reports::

    model = load_model("runs/quick/best.pt")              # evacamel.predict
    test_set = open_split(model, split="test")
    metrics = evaluate(model.model, test_set, model.transform)
    print(format_metrics(metrics))

Each pass puts the model in eval mode (BatchNorm uses its running statistics), turns
gradients off, and runs the forward pass in fp32 even inside an ``autocast`` block: a
model trained with bf16 autocast is measured as ``evacamel evaluate`` measures it. The
loop's DataLoader has a generator of its own, so evaluating never moves the global RNG
that training augmentation draws from (a run evaluated every epoch trains the same
weights as one never evaluated).

Metric names, directions and descriptions are :mod:`evacamel.metrics`'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from evacamel.colab import progress_bar
from evacamel.loading.loader import collate_for
from evacamel.loading.render import loader_options
from evacamel.losses import CamelLoss, LossTerms
from evacamel.metrics import (METRIC_DESCRIPTIONS, METRIC_NAMES, MetricAccumulator,
                              per_sample_depth_ssim, per_sample_iou)
from evacamel.model import split_outputs

__all__ = ["EvalBatch", "evaluate", "score_samples", "predict_samples", "format_metrics",
           "LOSS_TERMS", "loss_sums", "mean_losses"]

BatchTransform = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]

LOSS_TERMS = ("loss", "bce", "dssim", "l1", "dice")
"""The loss terms a run reports: the weighted total, then each term unweighted."""


def loss_sums(terms: LossTerms, n: int) -> torch.Tensor:
    """``[n, n*loss, n*bce, n*dssim, n*l1, n*dice]`` float64 on the terms' device, to add
    up over batches (no host-device copy: reading it would wait for the GPU)."""
    values = torch.stack([terms.total, terms.bce, terms.dssim, terms.l1, terms.dice]).detach().double()
    return torch.cat([values.new_full((1,), float(n)), n * values])


def mean_losses(sums: torch.Tensor) -> dict[str, float]:
    """Summed :func:`loss_sums` -> the mean of each of :data:`LOSS_TERMS` (NaN for 0 samples)."""
    n = float(sums[0])
    return {k: float(sums[i + 1]) / n if n else math.nan for i, k in enumerate(LOSS_TERMS)}


@dataclass
class EvalBatch:
    """One evaluated batch, on the model's device.

    ``image`` uint8 ``B x 6 x S x S`` (bg RGB, fg_bg RGB); ``mask`` and ``depth`` the
    float32 targets ``B x 1 x s x s`` in [0, 1]; ``mask_logits`` and ``depth_pred`` the
    model's fp32 outputs ``B x 1 x s x s`` (depth in target units, not clamped).
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    mask_logits: torch.Tensor
    depth_pred: torch.Tensor


def _loader(dataset: Dataset, order: Sequence[int], batch_size: int, collate_fn: Callable,
            num_workers: int, device: torch.device) -> DataLoader:
    # A generator of its own: making the loader's iterator draws a seed from it, and
    # must not draw from the global RNG that training augmentation uses.
    num_workers, pin = loader_options(dataset, num_workers, device)
    return DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate_fn,
                      num_workers=num_workers, pin_memory=pin,
                      prefetch_factor=4 if num_workers else None,
                      generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, transform: BatchTransform, *,
             batch_size: int = 64, indices: Sequence[int] | None = None,
             loss_fn: CamelLoss | None = None, threshold: float = 0.5, rank: int = 0,
             world_size: int = 1, collate_fn: Callable | None = None,
             num_workers: int = 0, on_batch: Callable[[EvalBatch], None] | None = None,
             progress: bool = False) -> dict[str, float]:
    """The full metric set of ``model`` on ``dataset`` (or its ``indices``), exactly.

    ``model`` maps normalised ``B x 6 x S x S`` inputs to ``B x 2 x s x s`` (mask logits,
    depth), e.g. :class:`~evacamel.model.CamelUNet`, and runs on its parameters' device
    (its train/eval mode is restored afterwards). ``transform`` turns a batch dict on
    that device into ``(x, mask, depth)`` float32, e.g.
    :class:`~evacamel.loading.transforms.EvalTransform`. ``indices``: only these samples,
    in this order. ``loss_fn``: also report the mean of each of :data:`LOSS_TERMS`.
    ``rank`` of ``world_size`` (a ``torch.distributed`` process group): evaluate every
    ``world_size``-th sample from ``rank`` on (nothing padded or repeated) and all-reduce
    the sums, so every process gets the exact values of the whole set. ``on_batch`` sees each
    :class:`EvalBatch` of this process. ``collate_fn`` defaults to
    :func:`~evacamel.loading.loader.collate_for` the dataset.

    Returns every metric of :data:`evacamel.metrics.METRIC_NAMES` (dataset-level: IoU is
    the total intersection over the total union), ``samples``, and with ``loss_fn`` the
    loss terms. Raises ValueError when there is no sample to evaluate.
    """
    device = next(model.parameters()).device
    order = list(indices) if indices is not None else range(len(dataset))
    if not len(order):
        raise ValueError("nothing to evaluate: the dataset (or the indices given) has no samples")
    loader = _loader(dataset, order[rank::world_size], batch_size,
                     collate_fn or collate_for(dataset), num_workers, device)
    acc = MetricAccumulator(threshold=threshold, device=device)
    losses = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        for batch in progress_bar(loader, disable=not progress, desc="evaluate", unit="batch",
                                  leave=False, mininterval=1.0):  # few refreshes: each is a message in a notebook
            batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
            x, mask, depth = transform(batch)
            with torch.autocast(device.type, enabled=False):  # fp32, whatever the caller uses
                mask_logits, depth_pred = split_outputs(model(x).float())
            acc.update(mask_logits, depth_pred, mask, depth)
            if loss_fn is not None:
                losses += loss_sums(loss_fn(mask_logits, depth_pred, mask, depth), x.shape[0])
            if on_batch is not None:
                on_batch(EvalBatch(batch["image"], mask, depth, mask_logits, depth_pred))
    finally:
        model.train(was_training)
    if world_size > 1:
        dist.all_reduce(acc.state)
        dist.all_reduce(losses)
    result = {**acc.compute(), "samples": float(len(order))}
    return {**result, **mean_losses(losses.cpu())} if loss_fn is not None else result


def score_samples(model: nn.Module, dataset: Dataset, transform: BatchTransform, *,
                  batch_size: int = 64, indices: Sequence[int] | None = None,
                  progress: bool = False) -> dict[str, torch.Tensor]:
    """Per-sample scores ``{"iou": N, "depth_ssim": N}`` (float64, CPU) in dataset order,
    e.g. to find the worst cases: ``scores["iou"].argsort()[:8]``. One process."""
    scores: dict[str, list[torch.Tensor]] = {"iou": [], "depth_ssim": []}

    def keep(b: EvalBatch) -> None:
        scores["iou"].append(per_sample_iou(b.mask_logits, b.mask).cpu())
        scores["depth_ssim"].append(per_sample_depth_ssim(b.depth_pred, b.depth).cpu())

    evaluate(model, dataset, transform, batch_size=batch_size, indices=indices, on_batch=keep,
             progress=progress)
    return {k: torch.cat(v) for k, v in scores.items()}


def predict_samples(model: nn.Module, dataset: Dataset, transform: BatchTransform,
                    indices: Sequence[int], *, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Inputs, targets and predictions of some samples, as float CPU tensors. One process.

    Returns ``{"bg", "fg_bg"}`` ``N x 3 x S x S`` in [0, 1]; ``"mask"``, ``"depth"``
    (targets) and ``"mask_prob"``, ``"depth_pred"`` (predictions, depth in target units
    clamped to [0, 1]) ``N x 1 x s x s``; ``"iou"``, ``"depth_ssim"`` ``N`` per-sample
    scores; in the order of ``indices``.
    """
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (
        "bg", "fg_bg", "mask", "depth", "mask_prob", "depth_pred", "iou", "depth_ssim")}

    def keep(b: EvalBatch) -> None:
        image = b.image.float() / 255.0
        values = {"bg": image[:, :3], "fg_bg": image[:, 3:], "mask": b.mask, "depth": b.depth,
                  "mask_prob": torch.sigmoid(b.mask_logits), "depth_pred": b.depth_pred.clamp(0, 1),
                  "iou": per_sample_iou(b.mask_logits, b.mask),
                  "depth_ssim": per_sample_depth_ssim(b.depth_pred, b.depth)}
        for k, v in values.items():
            out[k].append(v.cpu())

    evaluate(model, dataset, transform, batch_size=batch_size, indices=indices, on_batch=keep)
    return {k: torch.cat(v) for k, v in out.items()}


def format_metrics(metrics: dict[str, float], title: str | None = None) -> str:
    """A plain-text table: one metric per line with its value and what it measures."""
    lines = [title] if title else []
    lines.append(f"{'metric':<15}{'value':>10}  definition")
    for name in METRIC_NAMES:
        if name in metrics:
            lines.append(f"{name:<15}{metrics[name]:>10.4f}  {METRIC_DESCRIPTIONS[name]}")
    if "samples" in metrics:
        lines.append(f"{'samples':<15}{int(metrics['samples']):>10d}")
    return "\n".join(lines)
