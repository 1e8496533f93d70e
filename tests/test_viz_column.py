"""The book's column-sized figures (chapters 03 and 04): as wide as the column, and drawn
from the numbers they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from evacamel.loading.stats import Histograms  # noqa: E402
from evacamel.model import CamelUNet, block_summary  # noqa: E402
from evacamel.viz import (COLUMN_INCHES, plot_block_costs, plot_camel_distributions,  # noqa: E402
                          plot_value_distributions)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _histograms(sky_rows: int) -> Histograms:
    """Two 8 x 8 samples whose depth targets are sky (0) in the top ``sky_rows`` rows."""
    g = torch.Generator().manual_seed(0)
    depth = torch.full((2, 1, 4, 4), 40_000, dtype=torch.uint16)
    depth[:, :, :sky_rows] = 0
    hist = Histograms()
    hist.add_batch({"image": torch.randint(0, 256, (2, 6, 8, 8), dtype=torch.uint8, generator=g),
                    "mask": torch.tensor([0, 255], dtype=torch.uint8).repeat(16).view(2, 1, 4, 4),
                    "depth": depth})
    return hist


@pytest.mark.parametrize("sky_rows,title", [(1, "25%"), (3, "75%")])
def test_value_distributions_fit_the_column_and_name_the_sky_share(sky_rows, title):
    fig = plot_value_distributions(_histograms(sky_rows))
    assert fig.get_size_inches()[0] <= COLUMN_INCHES
    assert len(fig.axes) == 3  # stacked: images, masks, depth
    assert title in fig.axes[2].get_title()


def test_camel_distributions_draw_each_split_as_shares():
    rows = [{"split": "train", "w": 32, "distance_m": 5 + i, "visible_fraction": 1.0} for i in range(30)]
    rows += [{"split": "test", "w": 64, "distance_m": 9.0, "visible_fraction": 0.5}] * 10
    fig = plot_camel_distributions(rows, source_size=128, width=6.0)
    assert tuple(fig.get_size_inches())[0] == 6.0
    for ax in fig.axes:
        # one outline per split, and each split's shares add up to 1 whatever its size
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["test (10)", "train (30)"]
    size_axis = fig.axes[1]
    heights = {}
    for patch in size_axis.patches:
        ys = patch.get_xy()[:, 1]
        heights[patch.get_label()] = ys.max()
    assert heights["test (10)"] == pytest.approx(1.0)  # all ten test camels in one bin


def test_block_costs_show_every_block_with_its_flops():
    rows = block_summary(CamelUNet(width=8), input_size=64)
    fig = plot_block_costs(rows)
    assert fig.get_size_inches()[0] <= COLUMN_INCHES
    bars = fig.axes[1].patches
    assert len(bars) == len(rows)
    assert [b.get_height() for b in bars] == pytest.approx([r.flops / 1e9 for r in rows])
