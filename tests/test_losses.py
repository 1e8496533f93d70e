import kornia
import pytest
import torch
import torch.nn.functional as F

from evacamel.losses import SEED_WEIGHTS, CamelLoss, camel_loss, dice_loss


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    depth_t = torch.rand(3, 1, 32, 32, generator=g)
    mask_t = (torch.rand(3, 1, 32, 32, generator=g) > 0.7).float()
    logits = torch.randn(3, 1, 32, 32, generator=g)
    depth_p = (depth_t + 0.1 * torch.randn(3, 1, 32, 32, generator=g)).clamp(0, 1)
    return logits, depth_p, mask_t, depth_t


def test_total_is_the_seed_weighted_sum_of_the_terms(batch):
    terms = camel_loss(*batch)
    assert SEED_WEIGHTS == {"mask_weight": 10.0, "dssim_weight": 100.0, "l1_weight": 0.1}
    expected = 10 * terms.bce + 100 * terms.dssim + 0.1 * terms.l1
    assert torch.allclose(terms.total, expected)


def test_terms_are_what_their_names_say(batch):
    logits, depth_p, mask_t, depth_t = batch
    terms = camel_loss(*batch)
    assert torch.allclose(terms.bce, F.binary_cross_entropy_with_logits(logits, mask_t))
    assert torch.allclose(terms.l1, (depth_p - depth_t).abs().mean())
    ssim = kornia.metrics.ssim(depth_p, depth_t, 11).mean()
    assert torch.allclose(terms.dssim, (1 - ssim) / 2, atol=1e-6)  # DSSIM, not SSIM


def test_perfect_depth_has_zero_depth_terms(batch):
    logits, _, mask_t, depth_t = batch
    terms = camel_loss(logits, depth_t, mask_t, depth_t)
    assert terms.dssim.item() == pytest.approx(0, abs=1e-6)
    assert terms.l1.item() == 0


def test_module_uses_its_constants_and_gradients_flow(batch):
    logits, depth_p, mask_t, depth_t = batch
    logits, depth_p = logits.requires_grad_(), depth_p.clone().requires_grad_()
    terms = CamelLoss(mask_weight=1, dssim_weight=0, l1_weight=2)(logits, depth_p, mask_t, depth_t)
    assert torch.allclose(terms.total, terms.bce + 2 * terms.l1)
    terms.total.backward()
    assert logits.grad.abs().sum() > 0 and depth_p.grad.abs().sum() > 0
    assert set(terms.as_dict()) == {"total", "bce", "dssim", "l1", "dice"}
    with_dice = CamelLoss(mask_weight=1, dssim_weight=0, l1_weight=2, dice_weight=3)(logits, depth_p, mask_t, depth_t)
    assert torch.allclose(with_dice.total, terms.total + 3 * with_dice.dice)
    dice = with_dice.dice.detach()
    assert float(dice) > 0 and torch.allclose(dice, dice_loss(logits.detach(), mask_t))


def test_dice_loss_is_zero_for_the_exact_mask_and_counts_only_camel_pixels():
    target = torch.zeros(2, 1, 16, 16)
    target[0, :, 4:8, 4:8] = 1
    sure = (target * 2 - 1) * 30  # logits: certain, right everywhere
    assert float(dice_loss(sure, target)) < 1e-6
    assert float(dice_loss(-sure, target)) > 0.9  # everything wrong (eps: 1 of 17)
    # none predicted: BCE is small (few camel pixels), Dice is the worst possible
    nothing = torch.full_like(target, -30.0)
    assert float(dice_loss(nothing, target)) > 0.9
    assert float(torch.nn.functional.binary_cross_entropy_with_logits(nothing, target)) < 2.0
    assert float(dice_loss(nothing, torch.zeros_like(target))) < 1e-6  # no camel, none predicted
