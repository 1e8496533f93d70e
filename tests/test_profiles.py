import pytest

from evacamel.dataset.plan import COMPOSE_MODES
from evacamel.model import OUTPUT_STRIDES
from evacamel.profiles import PROFILES, Profile, default_profile_name, get_profile


def test_env_variable_chooses_the_profile(monkeypatch):
    monkeypatch.setenv("EVACAMEL_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("EVACAMEL_PROFILE", "quick")
    assert get_profile().name == "quick"


def test_without_env_the_hardware_decides(monkeypatch):
    import torch

    monkeypatch.delenv("EVACAMEL_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_profile_name() == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_profile_name() == "quick"


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(KeyError, match="quick"):
        get_profile("huge")


@pytest.mark.parametrize("name", list(PROFILES))
def test_profiles_are_consistent(name):
    p = get_profile(name)
    assert isinstance(p, Profile) and p.name == name
    assert p.input_size % 32 == 0 and p.output_size * p.output_stride == p.input_size
    assert p.output_stride in OUTPUT_STRIDES
    assert p.source_size >= p.input_size and p.depth_size >= p.output_size
    assert 0 < p.test_fraction < 0.5
    assert p.image_format in {"jpg", "png"}
    assert p.compose_mode in COMPOSE_MODES and p.dice_weight >= 0


def test_full_profile_has_the_seed_sizes():
    p = get_profile("full")
    assert (p.n_backgrounds, p.n_camels, p.source_size, p.input_size, p.output_size, p.width) == (
        100, 100, 1024, 256, 128, 64)


def test_replace_makes_a_variant():
    quick = get_profile("quick")
    p = quick.replace(epochs=quick.epochs + 1)
    assert p.epochs == quick.epochs + 1 and p.name == "quick" and p is not quick
    assert p.as_dict()["output_size"] == p.output_size
