"""Synthetic generator: determinism, layouts read back by the real parsers, disjoint ids,
domain gaps, auto-generation on first use and crash safety."""
from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid.data.datasets.synthetic  # noqa: F401  (registers the synthetic datasets)
import reid.data.synthetic.generate as gen
from reid.data.datasets.base import DatasetLayoutError
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.synthetic import (
    Renderer,
    make_spec,
    plan_shots,
    render_background,
    render_person,
    sample_camera,
    sample_person_identities,
    write_dataset,
)
from reid.data.synthetic.common import derive_rng
from reid.data.synthetic.person import PersonPose


def _tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parametrize("kind", ["person", "video"])
def test_same_seed_gives_identical_bytes(tmp_path, kind):
    spec = make_spec(kind, domain="B", ids=2, cams=2, seed=3, size=(64, 32))
    a = _tree_bytes(write_dataset(tmp_path / "a", spec, progress=False))
    b = _tree_bytes(write_dataset(tmp_path / "b", spec, progress=False))
    assert a.keys() == b.keys() and len(a) > 10
    assert all(a[k] == b[k] for k in a)
    other = _tree_bytes(write_dataset(tmp_path / "c", dataclasses.replace(spec, seed=4),
                                      progress=False))
    common = [k for k in a if k in other and k.endswith(".jpg")]
    assert common and all(a[k] != other[k] for k in common)


def test_image_depends_only_on_its_key():
    spec = make_spec("person", domain="A", ids=3, cams=3, seed=1)
    shots = plan_shots(spec)
    full = Renderer(spec)
    images = [full.image(s) for s in shots]
    alone = Renderer(spec)  # fresh caches, reversed order
    for shot, img in reversed(list(zip(shots, images, strict=True))[-5:]):
        np.testing.assert_array_equal(alone.image(shot), img)
    assert images[0].shape == (128, 64, 3) and images[0].dtype == np.uint8


def test_market_layout_read_back(tmp_path):
    ds = DATASET_REGISTRY.get("synthetic_person_a")(str(tmp_path), ids=4, cams=3, seed=0)
    marker = json.loads((tmp_path / "synthetic_person_a" / "synthetic.json").read_text())
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (
        marker["counts"]["train"], marker["counts"]["query"], marker["counts"]["gallery"])
    assert ds.num_train_pids == 4 and ds.num_query_pids == 4 and ds.num_gallery_pids == 4
    # one query per test id per camera, and every query camera also has gallery images
    pairs = Counter((pid, cam) for _, pid, cam in ds.query)
    assert set(pairs.values()) == {1}
    assert set(pairs) == {(pid, cam) for _, pid, cam in ds.gallery}
    assert all(len({c for p, c in pairs if p == pid}) >= 2 for pid, _ in pairs)
    assert {cam for _, _, cam in ds.train} <= {0, 1, 2}
    names = [Path(p).name for p, _, _ in ds.gallery + ds.query]
    assert all(len(n) == len("0002_c1s1_000451_00.jpg") and n.endswith("_00.jpg") for n in names)
    assert Image.open(ds.query[0][0]).size == (64, 128)


def test_veri_layout_read_back(tmp_path):
    ds = DATASET_REGISTRY.get("synthetic_vehicle_b")(str(tmp_path), ids=3, cams=2)
    base = tmp_path / "synthetic_vehicle_b"
    for split, fname in (("image_train", "name_train.txt"), ("image_query", "name_query.txt"),
                         ("image_test", "name_test.txt")):
        listed = (base / fname).read_text().split()
        assert sorted(listed) == sorted(p.name for p in (base / split).iterdir())
    assert ds.num_train_pids == 3 and ds.num_query_pids == 3
    assert len(ds.query) == len({(pid, cam) for _, pid, cam in ds.gallery})
    assert all(2001 <= pid <= 2006 for _, pid, _ in ds.query)  # domain B id range
    assert all(Path(p).name[4:6] == "_c" and Path(p).name.endswith("_0.jpg")
               for p, _, _ in ds.query)


def test_mars_layout_read_back(tmp_path):
    ds = DATASET_REGISTRY.get("synthetic_video_a")(str(tmp_path), ids=2, cams=2, size=(64, 32))
    assert ds.is_video and ds.num_train_pids == 2 and ds.num_query_pids == 2
    for frames, _, _ in ds.train + ds.query + ds.gallery:
        assert 8 <= len(frames) <= 32
        assert all(Path(f).is_file() for f in frames)
        n = [int(Path(f).stem[-3:]) for f in frames]
        assert n == list(range(1, len(frames) + 1))
    # each query has a gallery tracklet of its id from another camera (evaluable)
    for _, pid, cam in ds.query:
        assert any(p == pid and c != cam for _, p, c in ds.gallery)
    assert Path(ds.train[0][0][0]).name[4] == "C" and Path(ds.train[0][0][0]).name[6] == "T"
    # consecutive frames show a walk: they differ, but less than two different tracklets do
    a = [np.asarray(Image.open(f), dtype=np.float64) for f in ds.query[0][0][:2]]
    b = np.asarray(Image.open(ds.query[1][0][0]), dtype=np.float64)
    assert 0 < np.abs(a[0] - a[1]).mean() < np.abs(a[0] - b).mean()


def test_identities_disjoint_across_splits_and_domains():
    pids = {}
    for dom in ("A", "B", "C"):
        spec = make_spec("person", domain=dom, ids=20, cams=3)
        shots = plan_shots(spec)
        train = {s.pid for s in shots if s.split == "train"}
        test = {s.pid for s in shots if s.split != "train"}
        assert len(train) == 20 and len(test) == 20 and not train & test
        pids[dom] = train | test
    assert not pids["A"] & pids["B"] and not pids["B"] & pids["C"] and not pids["A"] & pids["C"]
    people = sample_person_identities(seed=0, kind="person", domain="A", count=200)
    assert len({p.key for p in people}) == 200
    assert sample_person_identities(seed=0, kind="person", domain="A", count=5) == people[:5]
    # no single attribute identifies a person: every value is shared by several identities
    for attr in ("upper_pattern", "sleeve", "lower_type", "hair_length", "carried"):
        counts = Counter(getattr(p, attr) for p in people)
        assert min(counts.values()) >= 3, (attr, counts)
    assert min(Counter(p.key[0] for p in people).values()) >= 3  # upper colour palette entry


def test_views_show_view_dependent_attributes():
    spec = make_spec("person", domain="A", ids=1, cams=2)
    base = sample_person_identities(seed=0, kind="person", domain="A", count=1)[0]
    cam = sample_camera(seed=0, kind="person", domain="A", cam=1)
    bg = render_background(cam, size=(360, 210), seed=0, kind="person", domain="A")

    def img(p, view):
        pose = PersonPose(view=view, phase=0.3, mirror=False, dx=0.0, dy=0.0, scale=1.0)
        return render_person(p, cam, bg, pose=pose, occluder=None, size=spec.size,
                             rng=derive_rng(0, 99))

    logo = dataclasses.replace(base, upper_pattern="logo", pattern_colour=(255, 0, 0))
    plain = dataclasses.replace(base, upper_pattern="plain")
    assert np.array_equal(img(logo, "back"), img(plain, "back"))
    assert not np.array_equal(img(logo, "front"), img(plain, "front"))
    pack = dataclasses.replace(base, carried="backpack", carried_colour=(0, 255, 0))
    none = dataclasses.replace(base, carried="none")
    diff_back = np.abs(img(pack, "back").astype(int) - img(none, "back")).sum()
    diff_front = np.abs(img(pack, "front").astype(int) - img(none, "front")).sum()
    assert diff_back > 3 * diff_front > 0


def test_domains_and_cameras_differ():
    feats, labels = [], []
    for d, dom in enumerate(("A", "B")):
        spec = make_spec("person", domain=dom, ids=6, cams=3)
        r = Renderer(spec)
        for shot in plan_shots(spec)[:60]:
            x = r.image(shot).astype(np.float64)
            feats.append([x.mean(), x.std(), *x.reshape(-1, 3).mean(0)])
            labels.append(d)
    f, y = np.asarray(feats), np.asarray(labels)
    assert f[y == 0, 0].mean() > f[y == 1, 0].mean() + 40  # A bright, B dim
    cams = [sample_camera(seed=0, kind="person", domain="A", cam=c) for c in (1, 2, 3)]
    assert len({(c.gain, c.background, c.bg_colours) for c in cams}) == 3


def test_auto_generation_reuse_regeneration_and_partial(tmp_path, caplog):
    load = DATASET_REGISTRY.get("synthetic_person_c")
    folder = tmp_path / "synthetic_person_c"
    with caplog.at_level(logging.INFO):
        load(str(tmp_path), ids=2, cams=2, size=(64, 32))
    assert "absent, generating" in caplog.text and str(folder) in caplog.text
    marker = folder / "synthetic.json"
    stamp = marker.stat().st_mtime_ns
    load(str(tmp_path), ids=2, cams=2, size=(64, 32))
    assert marker.stat().st_mtime_ns == stamp  # reused, not regenerated
    ds = load(str(tmp_path), ids=3, cams=2, size=(64, 32))  # other parameters: regenerated
    assert json.loads(marker.read_text())["ids"] == 3 and ds.num_train_pids == 3
    assert DATASET_REGISTRY.get("synthetic_person")(str(tmp_path), domain="C", ids=3, cams=2,
                                                    size=(64, 32)).num_train_pids == 3
    marker.unlink()  # a folder without the completion marker is never read
    with pytest.raises(DatasetLayoutError, match="synthetic_person_c.*synthetic.json"):
        load(str(tmp_path), ids=3, cams=2, size=(64, 32))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_crash_during_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = gen.encode_jpeg

    def failing(img):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full")
        return real(img)

    monkeypatch.setattr(gen, "encode_jpeg", failing)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "ds", make_spec("person", ids=2, cams=2), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="ids"):
        make_spec("person", ids=0)
    with pytest.raises(ValueError, match="cams"):
        make_spec("person", cams=10)
    with pytest.raises(ValueError, match="domain 'Z'"):
        make_spec("person", domain="Z")
    with pytest.raises(ValueError, match="kind 'car'"):
        make_spec("car")
    with pytest.raises(ValueError, match="size"):
        make_spec("vehicle", size=(8, 8))


def test_tool_main(tmp_path):
    from importlib.util import module_from_spec, spec_from_file_location

    path = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic.py"
    spec = spec_from_file_location("make_synthetic", path)
    tool = module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, grid = tmp_path / "veh", tmp_path / "grid.png"
    assert tool.main(["--kind", "vehicle", "--domain", "C", "--ids", "2", "--cams", "2",
                      "--out", str(out), "--seed", "5", "--size", "48x64",
                      "--preview", str(grid)]) == 0
    img = next((out / "image_train").iterdir())
    assert Image.open(img).size == (64, 48)
    assert Image.open(grid).size == (2 * 64, 2 * 48)
    with pytest.raises(FileExistsError):
        tool.main(["--kind", "vehicle", "--out", str(out)])
