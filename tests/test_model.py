import pytest
import torch

from evacamel.model import (SEED_PARAMETERS, CamelUNet, block_summary, block_table, build_model,
                            count_parameters, flops_per_sample, format_summary, receptive_field,
                            split_outputs, summary)
from evacamel.profiles import get_profile

# FACTS.md: parameters of each block of the seed (width 64)
SEED_BLOCKS = {"down0": 40_576, "down1": 73_984, "down2": 221_696, "down3": 295_424,
               "down4": 885_760, "down5": 1_180_672, "up4": 1_770_496, "up3": 590_336,
               "up2": 442_880, "up1": 147_712, "mask_head": 64, "depth_head": 64}


def test_seed_configuration_has_the_seed_parameter_count():
    model = CamelUNet(width=64)
    assert count_parameters(model) == SEED_PARAMETERS == 5_649_664
    for name, expected in SEED_BLOCKS.items():
        assert count_parameters(getattr(model, name)) == expected, name


def test_full_profile_builds_the_seed_model():
    assert count_parameters(build_model(get_profile("full"))) == SEED_PARAMETERS


def test_no_conv_has_a_bias_and_all_convs_are_3x3_or_heads():
    for name, m in CamelUNet(8).named_modules():
        if isinstance(m, torch.nn.Conv2d):
            assert m.bias is None, name
            assert m.kernel_size == ((1, 1) if name.endswith("head") else (3, 3)), name


@pytest.mark.parametrize("width,size", [(8, 64), (16, 96)])
def test_output_is_two_maps_at_half_the_input_size(width, size):
    out = CamelUNet(width)(torch.randn(2, 6, size, size))
    assert out.shape == (2, 2, size // 2, size // 2)
    mask, depth = split_outputs(out)
    assert mask.shape == depth.shape == (2, 1, size // 2, size // 2)
    assert torch.equal(torch.cat([mask, depth], 1), out)


def test_output_stride_1_predicts_at_the_input_size_with_one_more_block():
    seed, full = CamelUNet(8), CamelUNet(8, output_stride=1)
    out = full(torch.randn(2, 6, 64, 64))
    assert out.shape == (2, 2, 64, 64)
    # the seed's blocks are all still there, plus up0 (2w -> w, w -> w)
    extra = count_parameters(full) - count_parameters(seed)
    assert extra == (2 * 8 * 8 * 9 + 8 * 8 * 9) + 2 * (2 * 8), extra
    assert set(seed.state_dict()) < set(full.state_dict())
    with pytest.raises(ValueError, match="output_stride"):
        CamelUNet(8, output_stride=4)


def test_input_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        CamelUNet(8)(torch.randn(1, 6, 48, 48))


def test_summary_rows_add_up_and_show_shapes():
    model = CamelUNet(16)
    rows = summary(model, 64)
    assert sum(r.params for r in rows) == count_parameters(model)
    last = {r.name: r for r in rows}
    assert last["down0.5"].output_shape == (1, 16, 64, 64)
    assert last["down5.5"].output_shape == (1, 64, 2, 2)
    assert last["mask_head"].output_shape == (1, 1, 32, 32)
    text = format_summary(rows, 64)
    assert f"Total params: {count_parameters(model):,}" in text
    assert model.training  # summary leaves the mode as it was


def test_flops_scale_with_area_and_width():
    small, wide = CamelUNet(8), CamelUNet(16)
    f = flops_per_sample(small, 64)
    assert flops_per_sample(small, 128) == pytest.approx(4 * f, rel=0.01)
    # ~ width^2, a little less: the first conv (6 -> w) grows only with w
    assert 3.5 * f < flops_per_sample(wide, 64) < 4 * f
    assert flops_per_sample(small, 64, backward=True) > 2 * f


def test_receptive_field_is_measured_and_larger_than_a_conv():
    rf = receptive_field(CamelUNet(4), input_size=512)
    assert rf[0] == rf[1]
    assert 300 < rf[0] < 512  # deep U-Net: hundreds of pixels, but finite


def test_block_summary_has_one_row_per_block_with_its_cost():
    model = CamelUNet(width=64)
    rows = block_summary(model, input_size=64)
    assert {r.name: r.params for r in rows} == SEED_BLOCKS  # the seed's blocks, in order
    assert [r.name for r in rows] == list(SEED_BLOCKS)
    by_name = {r.name: r for r in rows}
    assert by_name["up4"].convs == [(512, 256), (256, 256)]
    assert by_name["down0"].output_shape == (64, 64, 64)
    assert by_name["mask_head"].output_shape == (1, 32, 32)
    # the blocks' FLOPs are the whole forward pass, and down0's is its two convolutions
    assert sum(r.flops for r in rows) == flops_per_sample(model, 64)
    assert by_name["down0"].flops == 2 * 9 * (6 * 64 + 64 * 64) * 64 * 64
    table = block_table(rows)
    assert "| up4 | 512→256, 256→256 | 256×4×4 | 1,770,496 |" in table
    assert f"| **total** | | | **{SEED_PARAMETERS:,}** |" in table
    assert model.training  # left in the mode it was in
