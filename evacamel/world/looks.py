"""Photographic looks: how a photograph was exposed, edited, shot and saved.

Real desert photographs are rarely neutral: strong tone curves, boosted or muted
colour, "HDR" local-contrast edits, vignetting, colour casts, sensor noise, soft focus
and JPEG artefacts. :class:`LookParams` is a distribution over such looks; each image
draws its own :class:`Look` from its seed (:func:`draw_looks`), and :func:`apply_looks`
applies it to a batch (batched torch and kornia; only JPEG goes image by image through
torchvision's codec). Looks change pixels only, never depth or masks.

**A pair shares its look.** A (bg, fg_bg) pair is one scene shot twice from a tripod,
so both images have the same exposure and edit: the background is rendered with its
look, and :func:`~evacamel.world.compose.compose` gives the pasted camel the same look
(colour steps, vignetting at its place in the frame, blur and local contrast on its
pixels, fresh sensor noise of the same strength) while the rest of the composite keeps
the background's pixels exactly, as in the seed's (and the real test set's) pasted pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
import torchvision.io

from evacamel.world.rng import scene_rng

__all__ = ["LookParams", "Look", "draw_looks", "apply_looks", "look_colors", "vignette_factor", "sensor_noise",
           "soften", "local_contrast"]


@dataclass(frozen=True)
class LookParams:
    """The distribution of looks: for each edit, the probability an image gets it.

    Attributes:
        tone: exposure and a strong tone curve (contrast, lifted or crushed shadows).
        saturation: more or less colour.
        cast: a colour cast (white balance off: warm, cool, green, magenta).
        hdr: a local-contrast ("HDR", clarity) edit.
        vignette: darkened corners.
        noise: sensor noise (luminance and colour).
        blur: soft focus or a little camera shake.
        jpeg: an earlier low-quality JPEG save (blocks, ringing).
    """

    tone: float = 0.6
    saturation: float = 0.5
    cast: float = 0.4
    hdr: float = 0.3
    vignette: float = 0.4
    noise: float = 0.5
    blur: float = 0.3
    jpeg: float = 0.35

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"LookParams.{name} is a probability in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Look:
    """One image's look; the defaults change nothing.

    Attributes:
        exposure: stops (+1 doubles the light).
        contrast: S-curve strength (negative: flatter).
        gamma: power on the display values (< 1 lifts the shadows).
        saturation: chroma factor (1 unchanged).
        cast: RGB gains of the white balance.
        hdr: local-contrast amount (0 none, 1 strong).
        vignette: corner darkening (0 none .. 0.6 strong).
        noise: sensor noise standard deviation (display units).
        blur: Gaussian blur sigma as a fraction of the image side.
        jpeg: JPEG quality of an earlier save (100: none).
        noise_seed: seeds the noise pattern.
    """

    exposure: float = 0.0
    contrast: float = 0.0
    gamma: float = 1.0
    saturation: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hdr: float = 0.0
    vignette: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    jpeg: int = 100
    noise_seed: int = 0


def draw_looks(seeds: list[int], params: LookParams) -> list[Look]:
    """Each seed's look (deterministic per seed)."""
    looks = []
    for s in seeds:
        r = scene_rng(s, 30)
        on = {k: r.random() < getattr(params, k) for k in params.__dataclass_fields__}
        kw: dict = {"noise_seed": int(r.integers(0, 2**62))}
        if on["tone"]:
            kw.update(exposure=r.uniform(-0.7, 0.5), contrast=r.uniform(-0.3, 0.9), gamma=r.uniform(0.75, 1.3))
        if on["saturation"]:
            kw["saturation"] = r.uniform(0.45, 1.7)
        if on["cast"]:
            warm = r.uniform(-0.12, 0.12)
            kw["cast"] = (1 + warm, 1 + r.uniform(-0.05, 0.05), 1 - warm)
        if on["hdr"]:
            kw["hdr"] = r.uniform(0.3, 1.0)
        if on["vignette"]:
            kw["vignette"] = r.uniform(0.15, 0.6)
        if on["noise"]:
            kw["noise"] = float(math.exp(r.uniform(math.log(0.004), math.log(0.04))))
        if on["blur"]:
            kw["blur"] = r.uniform(0.0008, 0.004)
        if on["jpeg"]:
            kw["jpeg"] = int(r.integers(20, 70))
        looks.append(Look(**kw))
    return looks


def _column(values: list, like: torch.Tensor, shape=(-1, 1, 1, 1)) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)


def look_colors(rgb: torch.Tensor, looks: list[Look]) -> torch.Tensor:
    """The pointwise colour steps (exposure, cast, tone curve, saturation) of each image's look.

    Args:
        rgb: ``B x 3 x H x W`` float in [0, 1] (any ``H x W``: a whole image or a camel's box).

    Steps every look of the batch leaves at its default are skipped (the same result, faster).
    """
    x = rgb.clamp(0, 1)
    gains = [[2 ** k.exposure * c for c in k.cast] for k in looks]
    if any(g != [1.0, 1.0, 1.0] for g in gains):
        x = (x ** 2.2 * _column(gains, rgb, (-1, 3, 1, 1))).clamp(0, 1) ** (1 / 2.2)
    if any(k.contrast != 0 for k in looks):
        x = x + _column([k.contrast for k in looks], rgb) * (x * x * (3 - 2 * x) - x)
    if any(k.gamma != 1 for k in looks):
        x = x.clamp(0, 1) ** _column([k.gamma for k in looks], rgb)
    if any(k.saturation != 1 for k in looks):
        luma = (x * _column([0.299, 0.587, 0.114], rgb, (1, 3, 1, 1))).sum(1, keepdim=True)
        x = luma + (x - luma) * _column([k.saturation for k in looks], rgb)
    return x.clamp(0, 1)


def _has_colors(k: Look) -> bool:
    return (k.exposure, k.contrast, k.gamma, k.saturation, tuple(k.cast)) != (0.0, 0.0, 1.0, 1.0, (1.0, 1.0, 1.0))


def vignette_factor(looks: list[Look], rows: torch.Tensor, cols: torch.Tensor, size: int) -> torch.Tensor:
    """``B x 1 x h x w`` darkening of pixel rows ``rows`` (``h``) and columns ``cols`` (``w``) of ``size`` images."""
    v = (rows.float() + 0.5) / size - 0.5
    u = (cols.float() + 0.5) / size - 0.5
    r2 = (v[:, None] ** 2 + u[None, :] ** 2) * 2                     # 1 in the corners
    return 1 - _column([k.vignette for k in looks], r2) * r2[None, None] ** 1.5


def sensor_noise(looks: list[Look], shape: tuple[int, int], device, salt: int = 0) -> torch.Tensor:
    """``B x 3 x h x w`` noise (luminance plus weaker colour noise), seeded per look (CPU draws)."""
    out = []
    for k in looks:
        g = torch.Generator().manual_seed((k.noise_seed + 7919 * salt) % 2**63)
        n = torch.randn(4, *shape, generator=g)
        out.append((n[:1] + 0.35 * n[1:]) * k.noise)
    return torch.stack(out).to(device)


def soften(rgb: torch.Tensor, looks: list[Look], size: int) -> torch.Tensor:
    """Gaussian blur of sigma ``look.blur * size`` pixels (images without blur are returned unchanged).

    Blurs wider than 1.5 pixels run at half resolution (area down, bilinear up): a quarter
    of the work, and the same softness to the eye.
    """
    idx = [i for i, k in enumerate(looks) if k.blur * size >= 0.3]
    if not idx:
        return rgb
    x = rgb[idx]
    h, w = x.shape[-2:]
    half = float(max(looks[i].blur for i in idx)) * size > 1.5 and min(h, w) >= 8
    if half:
        x = F.interpolate(x, size=(h // 2, w // 2), mode="area")
    scale = 0.5 if half else 1.0
    sig = torch.tensor([[looks[i].blur * size * scale] * 2 for i in idx], dtype=rgb.dtype, device=rgb.device)
    ks = 2 * math.ceil(3 * float(sig.max())) + 1
    x = kornia.filters.gaussian_blur2d(x, (ks, ks), sig, border_type="replicate")
    if half:
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    out = rgb.clone()
    out[idx] = x
    return out


def local_contrast(rgb: torch.Tensor, looks: list[Look], size: int) -> torch.Tensor:
    """The "HDR" edit: detail against a smooth local mean (about 4% of the side) boosted, the mean compressed.

    The local mean is computed at 1/8 resolution (fast at any size) and upsampled.
    """
    idx = [i for i, k in enumerate(looks) if k.hdr > 0]
    if not idx:
        return rgb
    x = rgb[idx]
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(2, h // 8), max(2, w // 8)), mode="area")
    sig = max(0.6, 0.04 * size / 8)
    ks = 2 * math.ceil(3 * sig) + 1
    base = F.interpolate(kornia.filters.gaussian_blur2d(small, (ks, ks), (sig, sig), border_type="replicate"),
                         size=(h, w), mode="bilinear", align_corners=False)
    a = _column([looks[i].hdr for i in idx], x)
    mean = base.mean((1, 2, 3), keepdim=True)
    out = rgb.clone()
    out[idx] = (mean + (base - mean) * (1 - 0.5 * a) + (x - base) * (1 + 1.5 * a)).clamp(0, 1)
    return out


def _jpeg(rgb: torch.Tensor, looks: list[Look]) -> torch.Tensor:
    """Each image saved once as JPEG at its look's quality and read back (torchvision's codec, CPU)."""
    idx = [i for i, k in enumerate(looks) if k.jpeg < 100]
    if not idx:
        return rgb
    out = rgb.clone()
    for i in idx:
        u8 = rgb[i].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).cpu()
        back = torchvision.io.decode_jpeg(torchvision.io.encode_jpeg(u8, quality=looks[i].jpeg))
        out[i] = back.to(rgb.device, rgb.dtype) / 255.0
    return out


def apply_looks(rgb: torch.Tensor, looks: list[Look]) -> torch.Tensor:
    """Apply each image's look to a batch.

    Args:
        rgb: ``B x 3 x S x S`` float in [0, 1].
        looks: one :class:`Look` per image.

    Returns:
        ``B x 3 x S x S`` float in [0, 1]: colour steps, local contrast, vignetting, blur,
        noise, then JPEG, each only on the images whose look has it.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3 or len(looks) != rgb.shape[0]:
        raise ValueError(f"apply_looks needs B x 3 x H x W images and one look each, got "
                         f"{tuple(rgb.shape)} and {len(looks)} looks")
    B, _, H, W = rgb.shape
    x = rgb.clone()
    idx = [i for i, k in enumerate(looks) if _has_colors(k)]
    if idx:
        x[idx] = look_colors(rgb[idx], [looks[i] for i in idx])
    x = local_contrast(x, looks, W)
    x = x * vignette_factor(looks, torch.arange(H, device=x.device), torch.arange(W, device=x.device), W)
    x = soften(x, looks, W)
    noisy = [i for i, k in enumerate(looks) if k.noise > 0]
    if noisy:
        x[noisy] = (x[noisy] + sensor_noise([looks[i] for i in noisy], (H, W), x.device)).clamp(0, 1)
    return _jpeg(x, looks)
