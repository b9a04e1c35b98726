"""Dataset parsers on generated layouts of empty files, errors, image reading, real counts."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import reid
from reid.data.datasets import DatasetLayoutError, build_dataset, combine_datasets
from reid.data.image import CorruptImageError, read_image
from reid.data.torch_dataset import ImageSampleDataset, check_images

SHARED = Path(reid.__file__).resolve().parents[2] / "shared" / "data"


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def make_market(base: Path) -> None:
    for name in ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000001_01.jpg",
                 "0000_c1s1_000001_00.jpg", "-1_c1s1_000002_00.jpg", "Thumbs.db"]:
        touch(base / "bounding_box_train" / name)
    for name in ["0003_c1s1_000001_00.jpg", "0005_c6s1_000001_00.jpg"]:
        touch(base / "query" / name)
    for name in ["0003_c2s1_000001_00.jpg", "0005_c1s1_000001_00.jpg", "0000_c4s1_000001_00.jpg",
                 "-1_c3s1_000001_00.jpg", ".hidden.jpg"]:
        touch(base / "bounding_box_test" / name)


def test_market_junk_distractors_relabel(tmp_path):
    make_market(tmp_path / "market1501")
    ds = build_dataset("market1501", str(tmp_path))
    assert sorted((Path(p).name, pid, c) for p, pid, c in ds.train) == [
        ("0002_c1s1_000451_03.jpg", 0, 0), ("0002_c2s1_000551_01.jpg", 0, 1),
        ("0007_c3s1_000001_01.jpg", 1, 2)]
    assert sorted((pid, c) for _, pid, c in ds.query) == [(3, 0), (5, 5)]
    assert sorted((pid, c) for _, pid, c in ds.gallery) == [(0, 3), (3, 1), (5, 0)]


@pytest.mark.parametrize("name,folder,kwargs", [
    ("dukemtmcreid", "dukemtmcreid/DukeMTMC-reID", {}),
    ("cuhk03_np", "cuhk03-np/labeled", {"labeled": True}),
    ("personx", "personx", {}),
])
def test_market_style_sets(tmp_path, name, folder, kwargs):
    make_market(tmp_path / folder)
    ds = build_dataset(name, str(tmp_path), **kwargs)
    assert (ds.num_train_pids, len(ds.train), len(ds.query), len(ds.gallery)) == (2, 3, 2, 3)
    if name == "personx":  # cameras 1,2,3,4,6 present -> contiguous ranks
        assert sorted({c for _, _, c in ds.query}) == [0, 4]


def test_unparsable_image_name_raises(tmp_path):
    make_market(tmp_path / "market1501")
    touch(tmp_path / "market1501" / "query" / "badname.jpg")
    with pytest.raises(DatasetLayoutError, match="badname.jpg"):
        build_dataset("market1501", str(tmp_path))


def test_missing_layout_names_paths(tmp_path):
    (tmp_path / "market1501" / "query").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        build_dataset("market1501", str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "market1501") in msg and "bounding_box_train" in msg
    assert "market1501:" in msg and "expected layout" in msg


def test_empty_split_raises(tmp_path):
    make_market(tmp_path / "market1501")
    for p in (tmp_path / "market1501" / "query").iterdir():
        p.unlink()
    with pytest.raises(DatasetLayoutError, match="query split is empty"):
        build_dataset("market1501", str(tmp_path))


def test_msmt17_lists(tmp_path):
    base = tmp_path / "msmt17"
    lines = {"list_train.txt": ["0000/0000_000_01_0303morning_0015_0.jpg 0",
                                "0001/0001_000_05_0303morning_0016_0.jpg 1"],
             "list_val.txt": ["0000/0000_001_03_0303morning_0017_0.jpg 0"],
             "list_query.txt": ["0002/0002_000_15_0303noon_0001_0.jpg 2"],
             "list_gallery.txt": ["0002/0002_001_02_0303noon_0002_0.jpg 2"]}
    for f, ls in lines.items():
        d = "train" if f in ("list_train.txt", "list_val.txt") else "test"
        for line in ls:
            touch(base / d / line.split()[0])
        (base / f).write_text("\n".join(ls) + "\n")
    ds = build_dataset("msmt17", str(tmp_path))
    assert sorted((pid, c) for _, pid, c in ds.train) == [(0, 0), (0, 2), (1, 4)]
    assert ds.query[0][1:] == (2, 14) and ds.gallery[0][1:] == (2, 1)
    (base / "test" / "0002/0002_001_02_0303noon_0002_0.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match="0002_001_02_0303noon_0002_0.jpg"):
        build_dataset("msmt17", str(tmp_path))


def test_veri_lists_define_split(tmp_path):
    base = tmp_path / "veri"
    for n in ["0001_c001_00016450_0.jpg", "0001_c002_00016460_0.jpg", "0003_c001_1_0.jpg"]:
        touch(base / "image_train" / n)
    touch(base / "image_query" / "0002_c003_1_0.jpg")
    touch(base / "image_test" / "0002_c020_1_0.jpg")
    touch(base / "image_test" / "0004_c005_1_0.jpg")
    (base / "name_train.txt").write_text("0001_c001_00016450_0.jpg\n0003_c001_1_0.jpg\n")
    ds = build_dataset("veri", str(tmp_path))
    assert sorted((pid, c) for _, pid, c in ds.train) == [(0, 0), (1, 0)]
    assert ds.query[0][1:] == (2, 2) and sorted(s[1:] for s in ds.gallery) == [(2, 19), (4, 4)]
    (tmp_path / "vx").mkdir()
    with pytest.raises(DatasetLayoutError, match="vx"):
        build_dataset("vehiclex", str(tmp_path / "vx"))


def test_vehiclex_train_only(tmp_path):
    for n in ["0001_c001_1.jpg", "0002_c003_1.jpg"]:
        touch(tmp_path / "vehiclex" / "image_train" / n)
    ds = build_dataset("vehiclex", str(tmp_path))
    assert len(ds.train) == 2 and ds.query == [] and ds.extra["train_only"]


def test_vehicleid_protocol(tmp_path):
    base = tmp_path / "vehicleid"
    for n in ["0000001", "0000002", "0000003", "0000004", "0000005"]:
        touch(base / "image" / f"{n}.jpg")
    split = base / "train_test_split"
    split.mkdir()
    (split / "train_list.txt").write_text("0000001 10\n0000002 12\n")
    (split / "test_list_800.txt").write_text("0000003 7\n0000004 7\n0000005 9\n")
    ds = build_dataset("vehicleid", str(tmp_path), test_size=800)
    assert [s[1] for s in ds.train] == [0, 1]
    assert ds.query == ds.gallery and [s[1] for s in ds.query] == [7, 7, 9]
    assert ds.extra["protocol"] == "vehicleid"
    with pytest.raises(ValueError, match="test_size"):
        build_dataset("vehicleid", str(tmp_path), test_size=900)


def _split_ok(ds, n_ids):
    tr, te = {s[1] for s in ds.train}, {s[1] for s in ds.query}
    assert len(tr) == n_ids // 2 and len(te) == n_ids - n_ids // 2


def test_viper_prid450s_split_seed(tmp_path):
    for i in range(1, 11):
        touch(tmp_path / "viper" / "VIPeR" / "cam_a" / f"{i:03d}_45.bmp")
        touch(tmp_path / "viper" / "VIPeR" / "cam_b" / f"{i:03d}_90.bmp")
        touch(tmp_path / "prid450s" / "cam_a" / f"img_{i:04d}.png")
        touch(tmp_path / "prid450s" / "cam_a" / f"man_{i:04d}.png")
        touch(tmp_path / "prid450s" / "cam_b" / f"img_{i:04d}.png")
    a = build_dataset("viper", str(tmp_path), split_seed=0)
    b = build_dataset("viper", str(tmp_path), split_seed=1)
    _split_ok(a, 10)
    assert a.query != b.query and a.query == build_dataset("viper", str(tmp_path)).query
    assert {s[2] for s in a.query} == {0} and {s[2] for s in a.gallery} == {1}
    assert {s[1] for s in a.query} == {s[1] for s in a.gallery}
    p = build_dataset("prid450s", str(tmp_path))
    _split_ok(p, 10)
    assert len(p.train) == 10


def test_prid2011_single_shot_distractors(tmp_path):
    shot = tmp_path / "prid2011" / "prid_2011" / "single_shot"
    for i in range(1, 7):
        touch(shot / "cam_a" / f"person_{i:04d}.png")
    for i in list(range(1, 5)) + [9, 10]:
        touch(shot / "cam_b" / f"person_{i:04d}.png")
    ds = build_dataset("prid2011", str(tmp_path))
    test_ids = {s[1] for s in ds.query}
    assert len(test_ids) == 2 and len(ds.train) == 4
    assert sorted(s[1] for s in ds.gallery) == sorted(test_ids | {9, 10})


def test_grid(tmp_path):
    base = tmp_path / "grid" / "underground_reid"
    for i in range(1, 5):
        touch(base / "probe" / f"{i:04d}_1_25004_107_32_106_221.jpeg")
        touch(base / "gallery" / f"{i:04d}_5_25004_107_32_106_221.jpeg")
    for j in range(3):
        touch(base / "gallery" / f"0000_8_2500{j}_1_1_1_1.jpeg")
    ds = build_dataset("grid", str(tmp_path))
    assert len(ds.train) == 4 and len(ds.query) == 2 and len(ds.gallery) == 5
    assert sum(s[1] == 0 for s in ds.gallery) == 3 and {s[2] for s in ds.train} == {0, 4}


@pytest.mark.parametrize("sub", ["campus", ""])
def test_cuhk01_layouts(tmp_path, sub):
    for pid in range(1, 6):
        for k in range(1, 5):
            touch(tmp_path / "cuhk01" / sub / f"{pid:04d}{k:03d}.png")
    ds = build_dataset("cuhk01", str(tmp_path))
    assert ds.num_train_pids == 2 and len(ds.train) == 8  # pids 2, 4
    assert sorted((Path(p).name, pid, c) for p, pid, c in ds.query)[:2] == [
        ("0001001.png", 1, 0), ("0001003.png", 1, 1)]
    assert len(ds.query) == 6 and len(ds.gallery) == 6


def test_cuhk03_detected_cameras(tmp_path):
    for pid in (0, 1, 843, 1466):
        for k in (0, 4, 5, 9):
            touch(tmp_path / "cuhk03_detected" / f"{pid:04d}_{k:02d}.jpg")
    ds = build_dataset("cuhk03_detected", str(tmp_path))
    cams = {(pid, Path(p).name): c for p, pid, c in ds.query + ds.gallery}
    assert cams[(1, "0001_00.jpg")] == 0 and cams[(1, "0001_05.jpg")] == 1
    assert sorted({s[2] for s in ds.train}) == [0, 1, 8, 9]  # pids 0 (pair 1), 1466 (pair 5)
    assert sorted(Path(s[0]).name for s in ds.query) == [
        "0001_00.jpg", "0001_05.jpg", "0843_00.jpg", "0843_05.jpg"]


def test_custom(tmp_path):
    base = tmp_path / "mine"
    for n in ["a/1.jpg", "a/2.jpg", "b/3.jpg", "q.jpg", "g.jpg"]:
        touch(base / n)
    (base / "train.txt").write_text("a/1.jpg 10 0\n# comment\na/2.jpg 20 1\nb/3.jpg -1 0\n")
    (base / "query.txt").write_text("q.jpg 5 0\n")
    (base / "gallery.txt").write_text("g.jpg 5 1\n")
    ds = build_dataset("custom:mine", str(tmp_path))
    assert [s[1:] for s in ds.train] == [(0, 0), (1, 1)] and ds.name == "custom:mine"
    (base / "query.txt").write_text("q.jpg five 0\n")
    with pytest.raises(DatasetLayoutError, match="query.txt:1"):
        build_dataset("custom:mine", str(tmp_path))


def test_combine_disjoint(tmp_path):
    make_market(tmp_path / "market1501")
    make_market(tmp_path / "dukemtmcreid")
    m, d = build_dataset("market1501", str(tmp_path)), build_dataset("dukemtmcreid", str(tmp_path))
    train = combine_datasets([m, d])
    assert [s[1] for s in train] == [0, 0, 1, 2, 2, 3]
    assert [s[2] for s in train] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        combine_datasets([])


def test_mars_savemat(tmp_path, write_mars):
    base = tmp_path / "mars"
    train_names = [f"0001C1T0001F{i:03d}.jpg" for i in range(1, 4)] + \
        [f"0003C2T0001F{i:03d}.jpg" for i in range(1, 3)]
    test_names = ["0002C1T0001F001.jpg", "0002C1T0001F002.jpg", "0002C3T0002F001.jpg",
                  "0000C2T0001F001.jpg", "00-1C4T0001F001.jpg"]
    write_mars(base, train_names, test_names, [[1, 3, 1, 1], [4, 5, 3, 2]],
               [[1, 2, 2, 1], [3, 3, 2, 3], [4, 4, 0, 2], [5, 5, -1, 4]], [1])
    ds = build_dataset("mars", str(tmp_path))
    assert ds.is_video and [(len(t[0]), t[1], t[2]) for t in ds.train] == [(3, 0, 0), (2, 1, 1)]
    assert [(len(t[0]), t[1], t[2]) for t in ds.query] == [(2, 2, 0)]
    assert [(t[1], t[2]) for t in ds.gallery] == [(2, 2), (0, 1)]
    assert ds.train[0][0][0].endswith("bbox_train/0001/0001C1T0001F001.jpg")
    scipy.io.savemat(base / "info" / "tracks_train_info.mat",
                     {"track_train_info": np.array([[1, 3, 2, 1]])})
    with pytest.raises(DatasetLayoutError, match="0001C1T0001F001"):
        build_dataset("mars", str(tmp_path))


def test_video_folder_sets(tmp_path):
    seq = tmp_path / "ilidsvid" / "i-LIDS-VID" / "sequences"
    ms = tmp_path / "prid2011" / "prid_2011" / "multi_shot"
    for p in range(1, 5):
        for c in (1, 2):
            for f in range(3):
                touch(seq / f"cam{c}" / f"person{p:03d}" / f"cam{c}_person{p:03d}_{f:05d}.png")
        for cam in ("cam_a", "cam_b"):
            for f in range(1, (30 if p != 4 else 20) + 1):
                touch(ms / cam / f"person_{p:04d}" / f"{f:04d}.png")
    il = build_dataset("ilidsvid", str(tmp_path))
    assert len(il.train) == 4 and len(il.query) == 2 and len(il.train[0][0]) == 3
    pv = build_dataset("prid2011_video", str(tmp_path))
    assert 4 not in {t[1] for t in pv.query + pv.gallery} and len(pv.train) == 2  # 3 ids kept
    duke = tmp_path / "dukemtmcvidreid"
    for split, pid, cam in [("train", 1, 6), ("train", 2, 1), ("query", 5, 2), ("gallery", 5, 3)]:
        touch(duke / split / f"{pid:04d}" / "0001" / f"{pid:04d}_C{cam}_F0001_X1.jpg")
    dv = build_dataset("dukemtmcvidreid", str(tmp_path))
    assert [(t[1], t[2]) for t in dv.train] == [(0, 5), (1, 0)] and dv.gallery[0][2] == 2
    (duke / "train" / "0002" / "0009").mkdir()
    with pytest.raises(DatasetLayoutError, match="0009"):
        build_dataset("dukemtmcvidreid", str(tmp_path))


def test_read_image_and_skip_corrupt(tmp_path):
    good = []
    for i in range(3):
        Image.new("RGB", (4, 6), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
        good.append(str(tmp_path / f"{i}.png"))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes((tmp_path / "0.png").read_bytes()[:40])
    with pytest.raises(CorruptImageError, match="trunc.png"):
        read_image(trunc)
    with pytest.raises(CorruptImageError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")
    assert read_image(good[1]).size == (4, 6)
    samples = [(good[0], 0, 0), (str(trunc), 1, 1), (good[2], 2, 0)]
    assert check_images(samples) == [str(trunc)]
    with pytest.raises(CorruptImageError, match="trunc.png"):
        ImageSampleDataset(samples)[1]
    ds = ImageSampleDataset(samples, skip_corrupt=True, domain=3)
    item = ds[1]
    assert (item["index"], item["pid"], item["domain"], item["path"]) == (2, 2, 3, good[2])
    assert item["img"].shape == (3, 6, 4) and abs(float(item["img"][0, 0, 0]) - 100 / 255) < 1e-6
    assert ds.num_skipped == 1 and ds.bad_paths == {str(trunc)}


@pytest.mark.realdata
def test_real_shared_counts():
    if not (SHARED / "cuhk03_detected").is_dir() or not (SHARED / "cuhk01").is_dir():
        pytest.skip(f"real data not found at {SHARED}")
    c3 = build_dataset("cuhk03_detected", str(SHARED))
    assert c3.num_train_pids == 734 and c3.num_query_pids == 733
    assert len(c3.train) + len(c3.query) + len(c3.gallery) == 14097
    # reference: recompute the split from the file names with the README's rule
    names = sorted(p.name for p in (SHARED / "cuhk03_detected").glob("*.jpg"))
    test = [(int(n[:4]), int(n[5:7])) for n in names if int(n[:4]) % 2 == 1]
    assert len(c3.train) == len(names) - len(test)
    assert len(c3.query) == len({(p, k < 5) for p, k in test})
    assert {s[2] for s in c3.train} == set(range(10)) == {s[2] for s in c3.gallery}
    assert (len(c3.train), len(c3.query), len(c3.gallery)) == (7076, 1466, 5555)
    c1 = build_dataset("cuhk01", str(SHARED))
    assert (c1.num_train_pids, len(c1.train)) == (485, 1940)
    assert (c1.num_query_pids, len(c1.query), len(c1.gallery)) == (486, 972, 972)
    assert {s[2] for s in c1.query} == {0, 1} == {s[2] for s in c1.train}
