"""Display helpers the chapters print and draw: the trainer's per-epoch table, depth maps
with a colour bar in meters, crops around the camel (issue 14: no 300-character log
lines, depth with colour bars in meters, worst cases one can see)."""

from __future__ import annotations

import inspect
import textwrap

import matplotlib
import torch

matplotlib.use("Agg")

from evacamel.train import EPOCH_HEADER, Trainer, _epoch_line  # noqa: E402
from evacamel.viz import crop_to_masks, show_depth_maps  # noqa: E402

ROW = {"epoch": 12, "train_loss": 123.456, "train_bce": 0.1234, "train_dssim": 0.0123,
       "train_l1": 0.0456, "test_l1": 0.0351, "mask_iou": 0.7512, "depth_ssim": 0.9181,
       "depth_delta1": 0.3731, "train_samples_per_s": 12345.0}


def test_epoch_rows_fit_the_column_under_their_header():
    line = _epoch_line(ROW, 18)
    assert len(EPOCH_HEADER) <= 80 and len(line) <= 80
    # each number ends where its column's title ends
    for title, value in (("loss", "123.46"), ("IoU", "0.751"), ("delta1", "0.373"),
                         ("samples/s", "12345")):
        assert line.index(value) + len(value) == EPOCH_HEADER.index(title) + len(title)


def test_the_training_step_chapter_05_prints_fits_the_column():
    for method in (Trainer._forward, Trainer.train_step):
        source = textwrap.dedent(inspect.getsource(method))
        assert max(len(line) for line in source.splitlines()) <= 80


def test_depth_maps_have_one_colour_bar_in_meters():
    depth = torch.full((2, 1, 8, 8), 1000.0)
    depth[:, :, 4:] = 5.0
    fig = show_depth_maps(depth, titles=["a", "b"], size=1.0)
    bars = [ax for ax in fig.axes if "m" in ax.get_ylabel()]
    assert len(bars) == 1 and "depth (m" in bars[0].get_ylabel()
    assert fig.get_size_inches()[0] <= 7.0
    matplotlib.pyplot.close(fig)


def test_crops_are_centred_on_the_true_camel():
    n, s = 1, 32
    samples = {"fg_bg": torch.zeros(n, 3, 2 * s, 2 * s), "mask": torch.zeros(n, 1, s, s),
               "mask_prob": torch.zeros(n, 1, s, s), "iou": torch.tensor([0.5])}
    samples["mask"][0, 0, 20:24, 4:8] = 1.0  # a 4-px camel near the bottom left
    samples["fg_bg"][0, :, 40:48, 8:16] = 1.0  # the same place at the input size
    out = crop_to_masks(samples, margin=0.5, min_side=1)
    # the 8-px crop holds the camel in its middle, enlarged four times
    assert out["mask"].shape == samples["mask"].shape
    assert float(out["mask"].mean()) == (4 * 4) / (8 * 8)
    assert bool(out["mask"][0, 0, s // 2, s // 2] == 1.0)
    assert torch.equal(out["mask"], out["fg_bg"][:, :1, ::2, ::2])
    assert torch.equal(out["iou"], samples["iou"])


def test_show_map_rows_puts_a_colour_bar_in_meters_beside_depth_rows(monkeypatch):
    import matplotlib.pyplot as plt

    from evacamel.viz import show_map_rows

    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    images = torch.rand(4, 3, 8, 8)
    depth = torch.full((4, 1, 8, 8), 20.0)
    show_map_rows({"composite": images, "exact depth": depth}, size=1.0)
    fig = figures[-1]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [b.get_visible() for b in bars] == [False, True]
    assert bars[1].get_ylabel() == "depth (m)"
    assert fig.get_size_inches()[0] <= 7.0
    plt.close(fig)
