"""The world's parameters in datasets: recorded in meta.json, reproduced, looks passed on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from evacamel.dataset.format import CLASSIC_WORLD, identity, read_meta
from evacamel.dataset.plan import make_plan
from evacamel.dataset.worker import Worker
from evacamel.dataset.write import write_dataset
from evacamel.profiles import PROFILES, get_profile
from evacamel.world import Look, WorldParams, world_params
from evacamel.world.looks import LookParams, draw_looks
from evacamel.world.params import WORLDS, world_from_record, world_record

TINY = get_profile("quick").replace(n_backgrounds=4, n_camels=4, samples=8, source_size=64,
                                    depth_size=64, camel_size=64, world="classic", blend="paste")


def _write(root: Path, **world: str) -> Path:
    return write_dataset(root, TINY, workers=1, progress=False, **world)


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("wide") / "ds", world="wide", blend="realistic")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.parts[len(root.parts)] in ("bg", "fg", "fg_bg", "mask", "depth")}


def test_world_names_and_records():
    assert world_params("classic", "paste") == WorldParams.classic()
    for world in WORLDS:
        for blend in ("paste", "realistic"):
            params = world_params(world, blend)
            assert world_from_record(json.loads(json.dumps(world_record(params)))) == params
            assert (params.blend is None) == (blend == "paste")
    assert world_params("wide").scene.scrub == 0.0 < world_params("held-out").scene.scrub
    with pytest.raises(ValueError, match="choose one of classic, wide"):
        world_params("dunes")


def test_a_dataset_records_and_reproduces_its_world(wide, tmp_path):
    meta = read_meta(wide)
    assert meta["world"]["name"] == "wide" and meta["world"]["blend"] == "realistic"
    assert world_from_record(meta["world"]["params"]) == world_params("wide", "realistic")
    again = _write(tmp_path / "again", world=meta["world"]["name"], blend=meta["world"]["blend"])
    assert _files(again) == _files(wide)
    with pytest.raises(FileExistsError):  # the same folder, another world: refused
        _write(wide, world="classic")


def test_the_profile_world_is_the_default_and_classic_differs(wide, tmp_path):
    classic = _write(tmp_path / "classic")  # no world given: the profile's (classic here)
    meta = read_meta(classic)
    assert meta["world"] == CLASSIC_WORLD and TINY.world == "classic"
    records = json.loads((classic / "sources.json").read_text())["backgrounds"]
    assert all("look" not in r and "scene" not in r for r in records)
    assert _files(classic)["bg/bg_0000.jpg"] != _files(wide)["bg/bg_0000.jpg"]
    # a dataset written before worlds were recorded is the classic world's
    older = {k: v for k, v in meta.items() if k != "world"}
    assert identity(older) == identity(meta)


def test_the_camels_get_the_scene_look(wide):
    records = json.loads((wide / "sources.json").read_text())["backgrounds"]
    assert all("look" in r and r["scene"]["ground"] for r in records)
    plan = make_plan(TINY, seed=None, source="procedural", mode=None, clahe=False, zip_parts=0,
                     chunk_size=None, world="wide", blend="realistic")
    worker = Worker(wide, plan)
    for i, record in enumerate(records):
        look = worker.background(i).look
        assert isinstance(look, Look) and isinstance(look.cast, tuple)
        assert look == draw_looks([record["seed"]], LookParams())[0]
        assert dataclasses.asdict(look)["noise_seed"] == record["look"]["noise_seed"]


def test_profiles_name_known_worlds(tmp_path):
    for p in PROFILES.values():
        world_params(p.world, p.blend)
    p = TINY.replace(world="wide", blend="realistic")
    assert read_meta(write_dataset(tmp_path / "ds", p, workers=1, progress=False))["world"][
        "name"] == "wide"
