"""The seed U-Net: a (background, camel-on-background) pair in, a mask and a depth map out.

Architecture (FACTS.md; the ``width=64`` configuration has exactly 5,649,664 parameters)::

    input  B x 6 x S x S  (bg RGB, fg_bg RGB, normalised)
    down0  6 -> w,   w  -> w    S      (never used as a skip: "no last up-sampling")
    down1  w -> w,   w  -> w    S/2
    down2  w -> 2w,  2w -> 2w   S/4
    down3  2w -> 2w, 2w -> 2w   S/8
    down4  2w -> 4w, 4w -> 4w   S/16
    down5  4w -> 4w, 4w -> 4w   S/32   bottleneck
    up4    8w -> 4w, 4w -> 4w   S/16   (up(down5) ++ down4)
    up3    6w -> 2w, 2w -> 2w   S/8    (up(up4) ++ down3)
    up2    4w -> 2w, 2w -> 2w   S/4    (up(up3) ++ down2)
    up1    3w -> w,  w  -> w    S/2    (up(up2) ++ down1)
    heads  1x1 w -> 1 (mask logits), 1x1 w -> 1 (depth, linear)
    output B x 2 x S/2 x S/2

With ``output_stride=1`` (not the seed's) one more block restores the input's resolution,
so thin legs survive a small input::

    up0    2w -> w,  w  -> w    S      (up(up1) ++ down0)
    output B x 2 x S x S

Every 3x3 conv has padding 1 and no bias and is followed by BatchNorm and ReLU; 2x2
max-pooling follows down0..down4; up-sampling is bilinear x2 with
``align_corners=True``. ``S`` must be a multiple of 32.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DoubleConv",
    "CamelUNet",
    "build_model",
    "split_outputs",
    "count_parameters",
    "SummaryRow",
    "summary",
    "format_summary",
    "BlockRow",
    "block_summary",
    "block_table",
    "flops_per_sample",
    "receptive_field",
    "SEED_PARAMETERS",
    "OUTPUT_STRIDES",
]

OUTPUT_STRIDES = (1, 2)
"""Input side over output side: 2 is the seed's U-Net, 1 predicts at the input's side."""

SEED_PARAMETERS = 5_649_664
"""Parameter count of the seed configuration (width 64), as the seed's torchsummary printed."""


class DoubleConv(nn.Sequential):
    """(3x3 conv without bias, BatchNorm, ReLU) twice.

    Shape: ``B x cin x H x W -> B x cout x H x W``.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class CamelUNet(nn.Module):
    """The seed U-Net with a configurable base width.

    Args:
        width: base channel count ``w`` (64 = the seed, 5,649,664
            parameters; 16 has about 16x fewer, for CPU training).
        in_channels: input channels (6: background RGB, composite RGB).
        output_stride: 2 (the seed: outputs at half the input's side) or 1
            (an ``up0`` block brings them to the input's side).

    Shape:
        input ``B x in_channels x S x S`` float, ``S`` a multiple of 32;
        output ``B x 2 x S/k x S/k``, ``k = output_stride``: channel 0
        mask logits, channel 1 depth (linear, trained towards the [0, 1]
        target of :mod:`evacamel.depth_units`).
    """

    def __init__(self, width: int = 64, in_channels: int = 6,
                 output_stride: int = 2) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"output_stride must be 1 or 2, not {output_stride!r}")
        w = width
        self.width = width
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.down0 = DoubleConv(in_channels, w)
        self.down1 = DoubleConv(w, w)
        self.down2 = DoubleConv(w, 2 * w)
        self.down3 = DoubleConv(2 * w, 2 * w)
        self.down4 = DoubleConv(2 * w, 4 * w)
        self.down5 = DoubleConv(4 * w, 4 * w)
        self.up4 = DoubleConv(8 * w, 4 * w)
        self.up3 = DoubleConv(6 * w, 2 * w)
        self.up2 = DoubleConv(4 * w, 2 * w)
        self.up1 = DoubleConv(3 * w, w)
        if output_stride == 1:
            self.up0 = DoubleConv(2 * w, w)
        self.mask_head = nn.Conv2d(w, 1, 1, bias=False)
        self.depth_head = nn.Conv2d(w, 1, 1, bias=False)

    @staticmethod
    def _up(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear",
                          align_corners=True)
        return torch.cat([x, skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            size = tuple(x.shape[-2:])
            raise ValueError(f"input size {size} must be a multiple of 32")
        x0 = self.down0(x)
        x1 = self.down1(F.max_pool2d(x0, 2))
        x2 = self.down2(F.max_pool2d(x1, 2))
        x3 = self.down3(F.max_pool2d(x2, 2))
        x4 = self.down4(F.max_pool2d(x3, 2))
        x5 = self.down5(F.max_pool2d(x4, 2))
        y = self.up4(self._up(x5, x4))
        y = self.up3(self._up(y, x3))
        y = self.up2(self._up(y, x2))
        y = self.up1(self._up(y, x1))
        if self.output_stride == 1:
            y = self.up0(self._up(y, x0))
        return torch.cat([self.mask_head(y), self.depth_head(y)], dim=1)


def build_model(profile_or_width: "int | object" = 64) -> CamelUNet:
    """A :class:`CamelUNet` for a profile (its ``width`` and ``output_stride``) or a plain width."""
    width = getattr(profile_or_width, "width", profile_or_width)
    stride = getattr(profile_or_width, "output_stride", 2)
    return CamelUNet(width=int(width), output_stride=int(stride))  # type: ignore[arg-type]


def split_outputs(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``B x 2 x H x W`` model output -> ``(mask_logits B x 1 x H x W, depth B x 1 x H x W)``."""
    return out[:, 0:1], out[:, 1:2]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BatchNorm weights and biases included, as torchsummary counts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class SummaryRow:
    """One layer of :func:`summary`: its dotted name, type, output shape and own parameters."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def summary(model: nn.Module, input_size: int = 256, in_channels: int | None = None,
            batch_size: int = 1) -> list[SummaryRow]:
    """Run one forward pass and record every leaf layer's output shape and parameters.

    Like the seed's ``torchsummary`` table, with no extra dependency. The model is run in
    eval mode on zeros under ``torch.no_grad`` and left in the mode it was in.
    """
    in_channels = in_channels or getattr(model, "in_channels", 6)
    rows: list[SummaryRow] = []
    hooks = []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:
            def hook(mod: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
                rows.append(SummaryRow(name, type(mod).__name__, tuple(out.shape),
                                       sum(p.numel() for p in mod.parameters(recurse=False))))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, in_channels, input_size, input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def format_summary(rows: list[SummaryRow], input_size: int | None = None,
                   in_channels: int = 6, bytes_per_value: int = 4) -> str:
    """The :func:`summary` rows as a text table with totals and memory estimates (MB)."""
    lines = [f"{'Layer (type)':<28}{'Output Shape':>24}{'Param #':>14}", "=" * 66]
    for r in rows:
        shape = "[-1, " + ", ".join(str(s) for s in r.output_shape[1:]) + "]"
        lines.append(f"{r.name + ' (' + r.kind + ')':<28}{shape:>24}{r.params:>14,}")
    total = sum(r.params for r in rows)
    acts = sum(int(torch.tensor(r.output_shape[1:]).prod()) for r in rows)
    lines += ["=" * 66, f"Total params: {total:,}", f"Trainable params: {total:,}",
              "Non-trainable params: 0", "-" * 66]
    mb = 1024 ** 2
    if input_size:
        in_mb = in_channels * input_size ** 2 * bytes_per_value / mb
        lines.append(f"Input size (MB): {in_mb:.2f}")
    # forward + backward: each activation stored once and its gradient once (as torchsummary)
    lines.append(f"Forward/backward pass size (MB): {2 * acts * bytes_per_value / mb:.2f}")
    lines.append(f"Params size (MB): {total * bytes_per_value / mb:.2f}")
    return "\n".join(lines)


@dataclass
class BlockRow:
    """One block of :func:`block_summary` (``down0`` ... ``depth_head``).

    ``convs``: ``(in, out)`` channels of each convolution, in order; ``output_shape``:
    ``(C, H, W)`` of the block's output; ``params``: its parameters (BatchNorm's
    included); ``flops``: its forward FLOPs for one sample (a multiply-add = 2).
    """

    name: str
    convs: list[tuple[int, int]]
    output_shape: tuple[int, int, int]
    params: int
    flops: int


def block_summary(model: nn.Module, input_size: int = 256) -> list[BlockRow]:
    """Per top-level block of ``model``: its convolutions, output shape, parameters and
    forward FLOPs for one ``in_channels x input_size x input_size`` sample.

    The compact companion of :func:`summary` (one row per block, not per layer), with
    the cost of each block from torch's flop counter. The model is left in its mode.
    """
    from torch.utils.flop_counter import FlopCounterMode  # as flops_per_sample

    shapes: dict[str, tuple[int, int, int]] = {}
    with FlopCounterMode(display=False) as counter:
        for row in summary(model, input_size):  # one forward pass, counted
            shapes[row.name.split(".")[0]] = row.output_shape[1:]  # type: ignore[assignment]
    flops = counter.get_flop_counts()
    prefix = type(model).__name__
    rows = []
    for name, block in model.named_children():
        convs = [(m.in_channels, m.out_channels) for m in block.modules()
                 if isinstance(m, nn.Conv2d)]
        cost = sum(flops.get(f"{prefix}.{name}", {}).values())
        rows.append(BlockRow(name, convs, shapes[name], count_parameters(block), int(cost)))
    return rows


def block_table(rows: list[BlockRow]) -> str:
    """The :func:`block_summary` rows as a markdown table, with a total row."""
    lines = ["| block | convolutions (in→out) | output (C×H×W) | parameters | "
             "GFLOP forward |", "|---|---|---|---:|---:|"]
    for r in rows:
        convs = ", ".join(f"{a}→{b}" for a, b in r.convs)
        shape = "×".join(str(s) for s in r.output_shape)
        lines.append(f"| {r.name} | {convs} | {shape} | {r.params:,} | {r.flops / 1e9:.2f} |")
    params, flops = sum(r.params for r in rows), sum(r.flops for r in rows)
    lines.append(f"| **total** | | | **{params:,}** | **{flops / 1e9:.2f}** |")
    return "\n".join(lines)


def flops_per_sample(model: nn.Module, input_size: int = 256, in_channels: int | None = None,
                     backward: bool = False) -> int:
    """FLOPs of one sample's forward pass (x3 with ``backward=True``), by torch's flop counter.

    A multiply-add counts as 2 FLOPs. Only matrix/conv work is counted (as is usual).
    """
    from torch.utils.flop_counter import FlopCounterMode

    in_channels = in_channels or getattr(model, "in_channels", 6)
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, input_size, input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            if backward:
                model.train()
                x.requires_grad_(True)
                model(torch.cat([x, x])).sum().backward()  # batch of 2: BatchNorm needs > 1
                return counter.get_total_flops() // 2
            with torch.no_grad():
                model(x)
        return counter.get_total_flops()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)


def receptive_field(model: nn.Module, input_size: int = 512, in_channels: int | None = None
                    ) -> tuple[int, int]:
    """Measured receptive field (height, width in input pixels) of the centre output pixel.

    A copy of the model gets all-positive conv weights and identity BatchNorm, so every
    ReLU passes and every input pixel that *can* influence the output gets a non-zero
    gradient; the extent of those pixels is the receptive field. If it equals
    ``input_size`` the field covers the whole input (try a larger ``input_size``).
    """
    in_channels = in_channels or getattr(model, "in_channels", 6)
    probe = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
    x = torch.ones(1, in_channels, input_size, input_size, requires_grad=True)
    out = probe(x)
    h, w = out.shape[-2:]
    out[0, :, h // 2, w // 2].sum().backward()
    hit = x.grad[0].abs().sum(0) > 0
    rows = hit.any(1).nonzero()
    cols = hit.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
