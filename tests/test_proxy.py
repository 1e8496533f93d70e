"""The proxy of real photographs: offline, deterministic, exact masks, loadable."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evacamel.dataset.format import read_index, read_meta
from evacamel.dataset.proxy import PROXY_PARTS, PROXY_PHOTOS, write_proxy
from evacamel.loading.loader import open_dataset
from evacamel.profiles import get_profile

TINY = get_profile("quick").replace(source_size=64, depth_size=64, camel_size=64,
                                    image_format="png", input_size=32)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> dict[str, Path]:
    mp = pytest.MonkeyPatch()

    def no_network(*args, **kwargs):
        raise AssertionError("the proxy must not touch the network")

    mp.setattr(socket.socket, "connect", no_network)
    try:
        return write_proxy(tmp_path_factory.mktemp("proxy") / "p", TINY, samples=12, workers=1)
    finally:
        mp.undo()


def test_parts_and_photos(proxy):
    assert set(proxy) == set(PROXY_PARTS)
    photos = sorted(p.stem for p in (proxy["real photographs"].parent / "photos").iterdir())
    assert photos == sorted(PROXY_PHOTOS)
    meta = read_meta(proxy["real photographs"])
    assert meta["generator"]["backgrounds"]["files"] == len(PROXY_PHOTOS)
    assert read_meta(proxy["held-out scenes"])["world"]["name"] == "held-out"
    for root in proxy.values():
        ds = open_dataset(root, "all", input_size=32)
        assert len(ds) == 12 and ds[0]["image"].shape == (6, 32, 32)


def test_masks_are_exact(proxy):
    """Outside the camel's box (from the index, 2 px margin) the composite is the photo,
    pixel for pixel, and the mask is empty; the mask is binary and marks changed pixels."""
    root = proxy["real photographs"]
    for row in read_index(root):
        bg = np.asarray(Image.open(root / row["selected_bg_paths"]).convert("RGB"))
        fg = np.asarray(Image.open(root / row["fg_bg_paths"]).convert("RGB"))
        mask = np.asarray(Image.open(root / row["mask_paths"]))
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
        outside = np.ones(mask.shape, bool)
        outside[max(0, int(y) - 2):int(np.ceil(y + h)) + 2,
                max(0, int(x) - 2):int(np.ceil(x + w)) + 2] = False
        assert np.array_equal(fg[outside], bg[outside]) and not mask[outside].any()
        changed = (fg != bg).any(2)
        assert changed[mask > 0].mean() > 0.5  # the camel is where the mask says


def test_deterministic(proxy, tmp_path):
    again = write_proxy(tmp_path / "p", TINY, samples=12, workers=1)
    for name, root in proxy.items():
        for sub in ("fg_bg", "mask", "depth"):
            a = sorted((root / sub).iterdir())
            b = sorted((again[name] / sub).iterdir())
            assert [p.name for p in a] == [p.name for p in b]
            assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
