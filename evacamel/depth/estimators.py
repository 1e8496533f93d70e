"""Depth estimators behind one small interface.

An estimator turns a batch of images into a batch of depth-like maps::

    out = estimator.estimate(images)          # B x 3 x H x W float in [0, 1]
    out.shape == (B, 1, H, W)                 # or (B, 1, *size) with size=...
    estimator.output_kind                     # what the values mean (see align.OUTPUT_KINDS)
    estimator.describe()                      # a JSON-able dict, recorded in meta.json

* :class:`ExactDepth`: the synthetic world's exact depth (meters), read from a dataset;
  the images are not needed, the maps are looked up by the samples' depth paths.
* :class:`HFDepthEstimator`: any ``transformers`` depth-estimation model
  (``AutoModelForDepthEstimation`` + ``AutoImageProcessor``), by Hugging Face model id
  or local folder; default :data:`DEFAULT_MODEL` (Depth Anything V2 Small: relative
  disparity). Batched, on CUDA when present with bf16/fp16 autocast, output resized
  back to the input size (or ``size``).

``transformers`` is an optional extra (``pip install "evacamel[depth]"``) and is imported
only when an :class:`HFDepthEstimator` is made; without it, or without the weights on
this machine and no network, :class:`DepthModelUnavailable` says what to install or
download.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from evacamel.dataset.codec import resize_depth
from evacamel.dataset.format import EXACT_DEPTH_DIR, read_meta, resolve_in_dataset
from evacamel.depth.align import METRIC_DEPTH, OUTPUT_KINDS, RELATIVE_DISPARITY
from evacamel.depth.files import read_depth_png

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "DepthEstimator",
    "DepthModelUnavailable",
    "ExactDepth",
    "HFDepthEstimator",
    "load_estimator",
    "find_local_model",
    "build_tiny_depth_model",
    "CourseEstimator",
    "pretrained_or_tiny",
    "pretrained_estimator",
]

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
"""The default monocular estimator: Depth Anything V2 Small (24.8 M parameters, relative disparity)."""
MODEL_ENV = "EVACAMEL_DEPTH_MODEL"
"""Environment variable naming a model id or local folder to use instead of the default."""

_INSTALL_HINT = 'pip install "evacamel[depth]"  (or: pip install transformers safetensors)'


class DepthModelUnavailable(RuntimeError):
    """The monocular model cannot be loaded here; the message says what to install or download."""


class DepthEstimator:
    """Base class: ``estimate(images, size=None, keys=None) -> B x 1 x h x w`` float32.

    Subclasses set :attr:`output_kind` (one of :data:`~evacamel.depth.align.OUTPUT_KINDS`)
    and :attr:`needs_images` (False when ``images`` may be ``None``, e.g. exact depth).
    """

    output_kind: str = METRIC_DEPTH
    needs_images: bool = True

    def estimate(self, images: torch.Tensor | None, *, size: tuple[int, int] | None = None,
                 keys: Sequence[str] | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, images: torch.Tensor | None, **kwargs) -> torch.Tensor:
        return self.estimate(images, **kwargs)


def _out_size(images: torch.Tensor | None, size: int | tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if images is None:
        raise ValueError("give images or size: the output size is unknown")
    return int(images.shape[-2]), int(images.shape[-1])


class ExactDepth(DepthEstimator):
    """The exact depth of a synthetic dataset, in meters (sky = ``FAR_M``).

    ``estimate(images, keys=[...])`` returns the maps whose dataset-relative depth paths
    are ``keys`` (e.g. ``"depth/img_00000001.png"``), resized (nearest sampling, as the
    dataset writer does) to the images' size or ``size``. It reads the untouched copies in ``<root>/exact_depth/``
    that ``evacamel depth`` keeps before it first overwrites exact maps, else the
    dataset's own maps if ``meta.json`` says they are exact.
    """

    output_kind = METRIC_DEPTH
    needs_images = False

    def __init__(self, root: str | os.PathLike, device: torch.device | str | None = None) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)  # checks it is a dataset
        self.device = torch.device(device or "cpu")
        self._folder()  # fails now, not halfway, if the dataset has no exact depth

    def _folder(self) -> Path:
        backup = self.root / EXACT_DEPTH_DIR
        if backup.is_dir():
            return backup
        source = read_meta(self.root).get("depth", {}).get("source", "exact")
        if source == "none":
            raise ValueError(f"{self.root} has no exact depth: it was made from your own pictures "
                             "(meta.json depth source 'none'); use a monocular estimator instead")
        if source != "exact":
            raise ValueError(f"{self.root} has no exact depth any more: its depth maps come from "
                             f"{source!r} and there is no {EXACT_DEPTH_DIR}/ copy; regenerate the dataset")
        return self.root

    def estimate(self, images: torch.Tensor | None = None, *, size: int | tuple[int, int] | None = None,
                 keys: Sequence[str] | None = None) -> torch.Tensor:
        """Exact depth for ``keys`` (dataset-relative depth paths): ``B x 1 x h x w`` meters."""
        if keys is None:
            raise ValueError("ExactDepth needs keys: the samples' depth paths relative to the dataset")
        if images is not None and len(keys) != images.shape[0]:
            raise ValueError(f"{len(keys)} keys for {images.shape[0]} images")
        folder = self._folder()
        hw = _out_size(images, size)
        maps = [resize_depth(read_depth_png(resolve_in_dataset(folder, k)), hw) for k in keys]
        return torch.stack(maps).to(self.device)

    def describe(self) -> dict:
        return {"kind": "exact", "model": None, "output": self.output_kind}


def find_local_model(model: str = DEFAULT_MODEL) -> str | None:
    """Where ``model`` can be loaded from without a network, or ``None``.

    A folder (``config.json`` inside) is returned as it is; a model id is looked up in
    the local Hugging Face cache (returned as the id; loading it then needs no network).
    """
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    try:  # optional (comes with transformers): imported only here, see the module doc
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - an id that is not a valid repo name is simply not cached
        return None
    return model if isinstance(hit, str) and Path(hit).is_file() else None


def _output_kind_of(config) -> str:
    model_type = getattr(config, "model_type", "")
    if model_type == "depth_anything":
        return METRIC_DEPTH if getattr(config, "depth_estimation_type", "relative") == "metric" else RELATIVE_DISPARITY
    if model_type in ("glpn", "zoedepth", "depth_pro"):
        return METRIC_DEPTH
    return RELATIVE_DISPARITY  # DPT / MiDaS-style relative inverse depth


def _autocast_dtype(device: torch.device, dtype: str | torch.dtype | None) -> torch.dtype | None:
    if isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    if dtype in (None, "float32", "fp32"):
        return None
    if dtype in ("float16", "fp16"):
        return torch.float16
    if dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    if dtype != "auto":
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    if device.type != "cuda":
        return None  # CPU half precision is slower than float32 for these models
    # bf16 only where the tensor cores have it (Ampere, sm_80, and newer); fp16 on a T4.
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


class HFDepthEstimator(DepthEstimator):
    """A ``transformers`` depth-estimation model (Depth Anything, DPT, GLPN, ZoeDepth, ...).

    Args:
        model: Hugging Face model id or a local folder saved with ``save_pretrained``
            (model and image-processor config). Default :data:`DEFAULT_MODEL`.
        device: default CUDA when available, else CPU.
        dtype: ``"auto"`` (CUDA: bf16 autocast where supported, else fp16; CPU: float32),
            ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        output_kind: what the model outputs; default from its config (Depth Anything
            "relative" and DPT: :data:`RELATIVE_DISPARITY`; metric Depth Anything, GLPN,
            ZoeDepth: :data:`METRIC_DEPTH`).
        local_files_only: never touch the network (default: only if ``model`` is a folder
            or already in the local cache).

    Raises:
        DepthModelUnavailable: ``transformers`` is missing, or the weights are neither
            local nor downloadable; the message says what to install or download.
    """

    needs_images = True

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, *, device: torch.device | str | None = None,
                 dtype: str | torch.dtype | None = "auto", output_kind: str | None = None,
                 local_files_only: bool | None = None) -> None:
        try:  # optional and heavy: imported only when a model is made (see the module doc)
            import transformers
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as exc:
            raise DepthModelUnavailable(
                f"the monocular depth estimator needs the transformers library ({exc}); install it with: "
                f"{_INSTALL_HINT}") from None
        name = str(model)
        path = Path(name).expanduser()
        looks_like_path = path.is_absolute() or name.startswith((".", "~")) or (os.sep in name and path.exists())
        if looks_like_path and not path.is_dir():
            raise FileNotFoundError(f"depth model folder not found: {path}")
        if path.is_dir():
            name = str(path)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not a saved transformers model (no config.json inside)")
        if local_files_only is None:
            local_files_only = find_local_model(name) is not None
        self.model_name = name
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.autocast_dtype = _autocast_dtype(self.device, dtype)
        major = int(transformers.__version__.split(".")[0])
        try:
            # transformers 4: ask for the torch ("fast") processor; 5: it is the default.
            self.processor = self._load(AutoImageProcessor, name, local_files_only,
                                        **({"use_fast": True} if major < 5 else {}))
            self.model = self._load(AutoModelForDepthEstimation, name, local_files_only)
        except (OSError, ValueError) as exc:
            if path.is_dir():
                raise DepthModelUnavailable(f"{path} holds no loadable transformers depth model and image "
                                            f"processor ({type(exc).__name__}: {exc})") from exc
            where = "is not in the local Hugging Face cache (offline)" if local_files_only else \
                "is not on this machine and could not be downloaded"
            raise DepthModelUnavailable(
                f"cannot load the depth model {name!r}: it {where} ({type(exc).__name__} from transformers). "
                f"Download it once with:  huggingface-cli download {name}  (or: hf download {name}), "
                f"or save it with save_pretrained and pass that folder (or set {MODEL_ENV} to it)") from exc
        self.model.eval().to(self.device)
        kind = output_kind or _output_kind_of(self.model.config)
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {kind!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
        self.output_kind = kind
        self._fast = type(self.processor).__name__.endswith("Fast") or major >= 5

    @staticmethod
    def _load(factory, name: str, local_files_only: bool, **kwargs):
        try:
            return factory.from_pretrained(name, local_files_only=local_files_only, **kwargs)
        except TypeError:
            return factory.from_pretrained(name, local_files_only=local_files_only)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        imgs = images.float().clamp(0, 1)
        kwargs = {"return_tensors": "pt", "do_rescale": False}
        if self._fast:
            out = self.processor(images=list(imgs.to(self.device)), device=self.device, **kwargs)
        else:
            out = self.processor(images=list(imgs.cpu()), **kwargs)
        return out["pixel_values"].to(self.device)

    @torch.inference_mode()
    def estimate(self, images: torch.Tensor, *, size: int | tuple[int, int] | None = None,
                 keys: Sequence[str] | None = None) -> torch.Tensor:
        """``B x 3 x H x W`` float in [0, 1] -> ``B x 1 x H x W`` (or ``size``) float32 on the model's device.

        Values are the model's raw output (:attr:`output_kind`: relative disparity for
        Depth Anything V2 Small), resized with antialiased bicubic interpolation.
        ``keys`` is ignored.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images B x 3 x H x W, got shape {tuple(images.shape)}")
        hw = _out_size(images, size)
        pixel_values = self._preprocess(images)
        ctx = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
               if self.autocast_dtype is not None else contextlib.nullcontext())
        with ctx:
            pred = self.model(pixel_values=pixel_values).predicted_depth
        pred = pred.float()
        if pred.ndim == 3:
            pred = pred[:, None]
        return F.interpolate(pred, size=hw, mode="bicubic", align_corners=False, antialias=True)

    def describe(self) -> dict:
        return {"kind": "transformers", "model": self.model_name, "output": self.output_kind,
                "architecture": type(self.model).__name__}


def load_estimator(spec: str, dataset: str | os.PathLike | None = None, *,
                   device: torch.device | str | None = None, **kwargs) -> DepthEstimator:
    """``"exact"`` -> :class:`ExactDepth` of ``dataset``; anything else -> :class:`HFDepthEstimator`."""
    if spec == "exact":
        if dataset is None:
            raise ValueError("the exact estimator needs the dataset folder")
        return ExactDepth(dataset, device=device)
    return HFDepthEstimator(spec, device=device, **kwargs)


def build_tiny_depth_model(folder: str | os.PathLike, *, seed: int = 0, image_size: int = 56) -> Path:
    """Save a tiny, randomly initialised Depth Anything model (+ its image processor) to ``folder``.

    Same family, config, preprocessing and output as Depth Anything V2 (a DINOv2 backbone
    with a DPT head; processor: keep aspect ratio, multiple of 14, ImageNet mean/std) but
    4 layers of width 32 (about 0.1 M parameters) and ``image_size`` px input, so the
    whole path runs in tests with no download. Its outputs are meaningless numbers.
    Returns the folder.
    """
    try:  # optional and heavy: imported only here (see the module doc)
        from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                                  DPTImageProcessor)
    except ImportError as exc:
        raise DepthModelUnavailable(f"building the tiny model needs transformers ({exc}): {_INSTALL_HINT}") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2,
                            image_size=image_size, patch_size=14, reshape_hidden_states=False,
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, depth_estimation_type="relative")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DepthAnythingForDepthEstimation(config)
    model.save_pretrained(folder)
    processor = DPTImageProcessor(do_resize=True, size={"height": image_size, "width": image_size},
                                  keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
                                  do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                  image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                                  do_pad=False)
    processor.save_pretrained(folder)
    return folder


class CourseEstimator(NamedTuple):
    """What :func:`pretrained_or_tiny` picked: the estimator, whether it is the real one, and why."""

    estimator: HFDepthEstimator
    pretrained: bool
    note: str


def pretrained_estimator(model: str | None = None, *, allow_download: bool | None = None,
                         device: torch.device | str | None = None) -> tuple[HFDepthEstimator | None, str]:
    """The pretrained estimator where its weights can be had: ``(estimator, note)``, or ``(None, why not)``.

    ``model`` defaults to ``$EVACAMEL_DEPTH_MODEL`` or :data:`DEFAULT_MODEL`. It is used
    if it is a local folder or already in the Hugging Face cache, or if downloading is
    allowed (default: on Colab, or when ``EVACAMEL_DEPTH_DOWNLOAD=1``). Nothing is
    downloaded otherwise; the note then says why there is no estimator.
    """
    model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if allow_download is None:
        allow_download = "google.colab" in sys.modules or os.environ.get("EVACAMEL_DEPTH_DOWNLOAD") == "1"
    if find_local_model(model) is None and not allow_download:
        return None, (f"{model} is not on this machine and downloading is off "
                      "(it is on in Colab, or with EVACAMEL_DEPTH_DOWNLOAD=1)")
    try:
        est = HFDepthEstimator(model, device=device)
    except DepthModelUnavailable as exc:
        return None, str(exc)
    return est, f"pretrained {model} ({est.num_parameters / 1e6:.1f} M parameters)"


def pretrained_or_tiny(model: str | None = None, *, tiny_dir: str | os.PathLike | None = None,
                       allow_download: bool | None = None,
                       device: torch.device | str | None = None) -> CourseEstimator:
    """The pretrained estimator where its weights can be had (:func:`pretrained_estimator`),
    else the tiny random one.

    Offline (CI, or the download fails) a tiny random model is built in ``tiny_dir``
    (default: one folder in the system's temporary directory, built once) so the same
    code path still runs; its numbers mean nothing, and :attr:`CourseEstimator.note` says so.
    """
    est, note = pretrained_estimator(model, allow_download=allow_download, device=device)
    if est is not None:
        return CourseEstimator(est, True, note)
    if tiny_dir is None:
        tiny_dir = _shared_tiny_model()
    elif not (Path(tiny_dir) / "config.json").is_file():
        build_tiny_depth_model(tiny_dir)
    est = HFDepthEstimator(tiny_dir, device=device)
    return CourseEstimator(est, False, f"TINY RANDOM model instead of the pretrained one ({note}): "
                                       "the path runs, but its depth maps and scores are meaningless")


def _shared_tiny_model() -> Path:
    """The tiny model in ``<tmp>/evacamel-tiny-depth``, built once (atomically: safe in parallel)."""
    final = Path(tempfile.gettempdir()) / "evacamel-tiny-depth"
    if (final / "model.safetensors").is_file() and (final / "preprocessor_config.json").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=".evacamel-tiny-depth-", dir=final.parent))
    build_tiny_depth_model(tmp)
    try:
        os.replace(tmp, final)
    except OSError:  # another process finished first (or a broken leftover is in the way)
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "model.safetensors").is_file():
            shutil.rmtree(final, ignore_errors=True)
            return build_tiny_depth_model(final)
    return final
