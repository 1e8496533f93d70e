"""The simplest honest answers to the task, scored exactly as a model is.

A network's numbers mean something only beside what no network achieves as well. Four
baselines, each fitted on one split (default ``train``) and scored on another (default
``test``) with the :class:`~evacamel.metrics.MetricAccumulator` that
:func:`evacamel.evaluate.evaluate` uses, so every number is computed the same way::

    rows = evaluate_baselines("data/quick", input_size=64, output_size=32)
    rows["network"] = evaluate(model, test_set, transform)      # evacamel.evaluate
    print(format_comparison(rows))

* ``"all background"``: no camel anywhere (mask accuracy is high, IoU is 0).
* ``"difference |fg_bg - bg|"``: camel where the mean absolute RGB difference of the two
  images (area-resized to the output size) exceeds a threshold. The threshold is the one
  with the best dataset-level IoU on ``fit_split``, never on the split it is scored on
  (it is returned as ``"mask_threshold"``, in [0, 1] image units). A camel that is the
  colour of the ground, a shadow, sensor noise or a JPEG artefact all fool it.
* ``"constant depth"``: every pixel at the mean depth target of ``fit_split``.
* ``"per-row mean depth"``: each row at its mean over ``fit_split`` (the ground recedes
  up the picture: a "depth" model that only learnt the rows scores this).

Mask baselines report NaN for the depth metrics and depth baselines NaN for the mask
metrics (:func:`format_comparison` prints them as ``-``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from evacamel.evaluate import BatchTransform, evaluate
from evacamel.loading.batch import resize_area
from evacamel.loading.loader import collate_for, open_dataset
from evacamel.loading.transforms import batch_to_float
from evacamel.metrics import METRIC_NAMES, MetricAccumulator

__all__ = ["BASELINES", "MASK_METRICS", "DEPTH_METRICS", "FittedBaselines", "fit_baselines",
           "difference_map", "evaluate_baselines", "format_comparison", "difference_scores",
           "compare_masks", "format_mask_comparison"]

BASELINES = ("all background", "difference |fg_bg - bg|", "constant depth",
             "per-row mean depth")
"""The baselines' names, in the order :func:`evaluate_baselines` returns them."""

MASK_METRICS = ("mask_accuracy", "mask_iou", "mask_dice")
DEPTH_METRICS = tuple(m for m in METRIC_NAMES if m not in MASK_METRICS)

_BINS = 512  # threshold resolution of the difference baseline: 1/512 of the image range


@dataclass(frozen=True)
class FittedBaselines:
    """What the baselines learnt from the fitting split.

    ``threshold``: the difference baseline's, in [0, 1] (a multiple of 1/512);
    ``depth_mean``: the mean depth target; ``row_means``: float64 ``s`` per-row means
    (top row first), depth in target units ([0, 1], :mod:`evacamel.depth_units`).
    """

    threshold: float
    depth_mean: float
    row_means: torch.Tensor


def _batches(root: str | os.PathLike, split: str, input_size: int, output_size: int,
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(image, mask, depth)`` float32 in [0, 1] batches of a split, in order, on the CPU."""
    dataset = open_dataset(root, split, input_size=input_size, output_size=output_size)
    if not len(dataset):
        raise ValueError(f"{root}: the {split!r} split has no samples")
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_for(dataset))
    for batch in loader:
        yield batch_to_float(batch)


def difference_map(image: torch.Tensor, output_size: int) -> torch.Tensor:
    """Mean absolute RGB difference of fg_bg and bg, area-resized to the output size.

    ``image``: float ``B x 6 x S x S`` in [0, 1] (bg RGB, fg_bg RGB) -> float32
    ``B x 1 x s x s`` in [0, 1].
    """
    diff = (image[:, 3:6] - image[:, :3]).abs().mean(1, keepdim=True)
    return resize_area(diff, output_size)


def _levels(diff: torch.Tensor) -> torch.Tensor:
    """Difference -> integer level in 0..511 (level k holds [k/512, (k+1)/512))."""
    return (diff * _BINS).floor().clamp(0, _BINS - 1).long()


def _best_threshold(camel: torch.Tensor, ground: torch.Tensor) -> float:
    """The threshold with the best IoU from per-level pixel counts (float64 ``512`` each):
    predicting camel at levels >= k gives intersection = camel pixels at levels >= k."""
    inter = camel.flip(0).cumsum(0).flip(0)
    pred = inter + ground.flip(0).cumsum(0).flip(0)
    union = pred + camel.sum() - inter
    score = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    return float(int(score.argmax())) / _BINS


def fit_baselines(root: str | os.PathLike, split: str = "train", *, input_size: int,
                  output_size: int, batch_size: int = 64) -> FittedBaselines:
    """Fit the baselines on one split of the dataset at ``root`` (one pass over it)."""
    camel = torch.zeros(_BINS, dtype=torch.float64)
    ground = torch.zeros(_BINS, dtype=torch.float64)
    rows = torch.zeros(output_size, dtype=torch.float64)
    count = 0
    for image, mask, depth in _batches(root, split, input_size, output_size, batch_size):
        levels, true = _levels(difference_map(image, output_size)), mask >= 0.5
        camel += torch.bincount(levels[true], minlength=_BINS).double()
        ground += torch.bincount(levels[~true], minlength=_BINS).double()
        rows += depth.double().sum((0, 1, 3))
        count += depth.shape[0] * depth.shape[-1]
    row_means = rows / count
    return FittedBaselines(threshold=_best_threshold(camel, ground),
                           depth_mean=float(row_means.mean()), row_means=row_means)


def _mask_logits(image: torch.Tensor, fitted: FittedBaselines, output_size: int) -> torch.Tensor:
    """Logits positive exactly where the difference's level reaches the threshold's."""
    k = round(fitted.threshold * _BINS)
    return _levels(difference_map(image, output_size)).float() - (k - 0.5)


def _score(root: str | os.PathLike, split: str, fitted: FittedBaselines, input_size: int,
           output_size: int, batch_size: int) -> tuple[dict[str, MetricAccumulator], int]:
    """Each baseline's accumulated metrics on ``split``, and the number of samples."""
    accs = {name: MetricAccumulator() for name in BASELINES}
    samples = 0
    for image, mask, depth in _batches(root, split, input_size, output_size, batch_size):
        samples += image.shape[0]
        empty = torch.full_like(mask, -1.0)
        constant = torch.full_like(depth, fitted.depth_mean)
        rows = fitted.row_means.float().view(1, 1, -1, 1).expand_as(depth)
        accs["all background"].update(empty, constant, mask, depth)
        accs["difference |fg_bg - bg|"].update(_mask_logits(image, fitted, output_size),
                                               constant, mask, depth)
        accs["constant depth"].update(empty, constant, mask, depth)
        accs["per-row mean depth"].update(empty, rows, mask, depth)
    return accs, samples


def evaluate_baselines(data: str | os.PathLike, split: str = "test", *, fit_split: str = "train",
                       input_size: int, output_size: int,
                       batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Every baseline of :data:`BASELINES`, fitted on ``fit_split`` and scored on ``split``.

    Args:
        data: a dataset folder (its packed cache, files or zip parts, as
            :func:`~evacamel.loading.loader.open_dataset` finds them).
        split: the split scored (``"test"``, ``"train"`` or ``"all"``).
        fit_split: the split the threshold and the depth means are fitted on.
        input_size, output_size: the model's sizes (``S`` and ``s``): the baselines see
            the same pixels as the model they are compared with.

    Returns:
        baseline name -> the metric dict :func:`evacamel.evaluate.evaluate` returns
        (:data:`~evacamel.metrics.METRIC_NAMES` and ``samples``), NaN for the metrics a
        baseline does not predict; the difference baseline also has ``mask_threshold``.
    """
    fitted = fit_baselines(data, fit_split, input_size=input_size, output_size=output_size,
                           batch_size=batch_size)
    accs, samples = _score(data, split, fitted, input_size, output_size, batch_size)
    result = {}
    for name, acc in accs.items():
        unused = DEPTH_METRICS if name in BASELINES[:2] else MASK_METRICS
        metrics = {k: (math.nan if k in unused else v) for k, v in acc.compute().items()}
        result[name] = {**metrics, "samples": float(samples)}
    result["difference |fg_bg - bg|"]["mask_threshold"] = fitted.threshold
    return result


_COLUMNS = (("mask IoU", "mask_iou"), ("RMSE m", "depth_rmse_m"), ("AbsRel", "depth_absrel"),
            ("delta1", "depth_delta1"), ("SSIM", "depth_ssim"))


def format_comparison(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one row per method (a baseline or a model's metrics), under
    80 characters wide: mask IoU; depth RMSE (meters), AbsRel and delta1 on ground
    pixels (not the sky); depth SSIM. A metric a method does not predict prints ``-``."""
    width = max([len("method")] + [len(name) for name in rows])
    width = min(width, 80 - 9 * len(_COLUMNS))
    lines = [f"{'method':<{width}}" + "".join(f"{title:>9}" for title, _ in _COLUMNS)]
    for name, metrics in rows.items():
        cells = []
        for _, key in _COLUMNS:
            value = metrics.get(key, math.nan)
            cells.append(f"{'-':>9}" if value is None or math.isnan(value) else f"{value:>9.3f}")
        lines.append(f"{name[:width]:<{width}}" + "".join(cells))
    lines.append("depth RMSE (m), AbsRel, delta1: ground pixels only (the sky has no depth)")
    return "\n".join(lines)


def difference_scores(data: str | os.PathLike, split: str, threshold: float, *, input_size: int,
                      output_size: int, batch_size: int = 64) -> dict[str, float]:
    """The difference baseline's metrics on ``split`` of ``data`` with a given ``threshold``
    (e.g. one fitted on another dataset by :func:`fit_baselines`); mask metrics only."""
    fitted = FittedBaselines(threshold, 0.0, torch.zeros(output_size, dtype=torch.float64))
    acc = MetricAccumulator()
    for image, mask, depth in _batches(data, split, input_size, output_size, batch_size):
        acc.update(_mask_logits(image, fitted, output_size), depth, mask, depth)
    return {k: v for k, v in acc.compute().items() if k in MASK_METRICS}


def compare_masks(model: nn.Module, transform: BatchTransform,
                  sets: dict[str, tuple[str | os.PathLike, str]], *, fit_data: str | os.PathLike,
                  input_size: int, output_size: int,
                  batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Mask IoU of a network beside the difference baseline on several datasets.

    Args:
        model, transform: a trained network and its batch transform (e.g.
            ``loaded.model, loaded.transform`` of :func:`evacamel.predict.load_model`).
        sets: a name -> ``(dataset folder, split)`` for each row of the table.
        fit_data: the network's training dataset: the baseline's threshold is fitted on
            its ``train`` split, as the network was (what a fair comparison allows).

    Returns:
        set name -> ``{"network", "difference", "difference (oracle)", "threshold",
        "oracle threshold"}``: mask IoUs and thresholds. The oracle's threshold is the best
        on the scored set itself: an upper bound no honest method reaches, shown as one.
    """
    fitted = fit_baselines(fit_data, "train", input_size=input_size, output_size=output_size,
                           batch_size=batch_size)
    table = {}
    for name, (root, split) in sets.items():
        dataset = open_dataset(root, split, input_size=input_size, output_size=output_size)
        net = evaluate(model, dataset, transform, batch_size=batch_size)
        oracle = fit_baselines(root, split, input_size=input_size, output_size=output_size,
                               batch_size=batch_size).threshold
        sizes = dict(input_size=input_size, output_size=output_size, batch_size=batch_size)
        table[name] = {
            "network": net["mask_iou"],
            "difference": difference_scores(root, split, fitted.threshold, **sizes)["mask_iou"],
            "difference (oracle)": difference_scores(root, split, oracle, **sizes)["mask_iou"],
            "threshold": fitted.threshold, "oracle threshold": oracle, "samples": float(len(dataset))}
    return table


def format_mask_comparison(table: dict[str, dict[str, float]]) -> str:
    """:func:`compare_masks`' result as a plain-text table under 80 characters wide."""
    width = max([len("data")] + [len(name) for name in table])
    lines = [f"{'data':<{width}}  {'network':>8}  {'|fg_bg - bg|':>12}  {'(oracle)':>9}  "
             f"{'samples':>7}"]
    for name, row in table.items():
        lines.append(f"{name:<{width}}  {row['network']:>8.3f}  {row['difference']:>12.3f}  "
                     f"{row['difference (oracle)']:>9.3f}  {int(row['samples']):>7d}")
    lines.append("mask IoU. |fg_bg - bg|: its threshold fitted on the training split.")
    lines.append("(oracle): the best threshold for the scored data itself,")
    lines.append("an upper bound, not a method.")
    return "\n".join(lines)
