import numpy as np
import pytest
import torch

from evacamel.depth_units import (FAR_M, NEAR_M, meters_to_png, meters_to_target,
                                       png_to_meters, target_to_meters)


def test_png_round_trip_is_exact_to_a_64th_of_a_meter():
    d = torch.tensor([1.0, 7.3, 123.456, 999.99, FAR_M])
    back = png_to_meters(meters_to_png(d))
    assert meters_to_png(d).dtype == np.uint16
    assert torch.all((back - d).abs() <= 0.5 / 64 + 1e-6)


def test_target_is_near_bright_log_depth():
    d = torch.tensor([NEAR_M, 10.0, 100.0, FAR_M, 5000.0, 0.1])
    t = meters_to_target(d)
    assert t.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0, 0.0, 1.0], abs=1e-6)


def test_target_round_trip():
    d = torch.logspace(0, 3, 50)
    assert torch.allclose(target_to_meters(meters_to_target(d)), d, rtol=1e-4)
