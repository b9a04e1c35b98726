"""Your own data (issue 26): folder datasets, NAME:PATH, progress / log lines, and the tools
extract, visualize, export and plot end to end on crops in plain camera folders."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.data.datasets import DatasetLayoutError, build_dataset
from reid.data.datasets.folder import split_query_gallery
from reid.engine import cli

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "MODEL.ARCH", "resnet10", "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]",
    "INPUT.PADDING", "2", "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "8",
    "SOLVER.ITERS", "1", "SOLVER.WARMUP_EPOCHS", "0", "SOLVER.AMP", "False",
    "TEST.IMS_PER_BATCH", "64", "CLUSTER.K1", "6", "CLUSTER.K2", "2", "CLUSTER.MIN_SAMPLES", "2",
    "DEVICE", "cpu",
]


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30),
                size: tuple[int, int] = (16, 32)) -> Path:
    """A small valid image (format from the suffix; ``size`` is PIL's (width, height))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    Image.new("RGB", size, colour).save(path, fmt[path.suffix.lower()])
    return path


def names(samples) -> list[tuple[str, int, int]]:
    return sorted((Path(p).name, pid, cam) for p, pid, cam in samples)


# --------------------------------------------------------------------------- folder: datasets
def test_folder_camera_from_first_level_folder_recursive_any_case(tmp_path):
    root = tmp_path / "crops"
    write_image(root / "cam10" / "day1" / "a.JPG")
    write_image(root / "cam10" / "b.png")
    write_image(root / "cam2" / "c.Bmp")
    write_image(root / "cam2" / "sub" / "deeper" / "d.webp")
    write_image(root / "cam2" / ".hidden.jpg")
    (root / "cam2" / "notes.txt").write_text("not an image")
    ds = build_dataset("folder:crops", str(tmp_path))
    assert ds.name == "folder:crops" and ds.extra["unlabelled"]
    # camera names sort as text here ("cam10" < "cam2")
    assert names(ds.train) == [("a.JPG", -1, 0), ("b.png", -1, 0), ("c.Bmp", -1, 1),
                               ("d.webp", -1, 1)]
    assert ds.query == [] and ds.gallery == []


def test_folder_numeric_camera_folders_sort_as_numbers(tmp_path):
    for cam in ("10", "2", "1"):
        write_image(tmp_path / "c" / cam / f"x{cam}.jpg")
    ds = build_dataset(f"folder:{tmp_path / 'c'}", "/nonexistent/root")
    assert names(ds.train) == [("x1.jpg", -1, 0), ("x10.jpg", -1, 2), ("x2.jpg", -1, 1)]


def test_folder_camera_regex_on_file_name(tmp_path):
    root = tmp_path / "flat"
    for name in ("p1_cam3_0001.jpg", "p2_cam1_0002.jpg", "p3_cam3_0003.png"):
        write_image(root / "any" / name)
    ds = build_dataset("folder:flat", str(tmp_path), camera_regex=r"_cam(\d+)_")
    assert names(ds.train) == [("p1_cam3_0001.jpg", -1, 1), ("p2_cam1_0002.jpg", -1, 0),
                               ("p3_cam3_0003.png", -1, 1)]
    write_image(root / "odd_name.jpg")
    with pytest.raises(DatasetLayoutError, match=r"matches nothing.*odd_name\.jpg"):
        build_dataset("folder:flat", str(tmp_path), camera_regex=r"_cam(\d+)_")


def test_folder_errors_empty_tree_and_image_outside_camera_folder(tmp_path):
    (tmp_path / "empty" / "cam1").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no image under"):
        build_dataset("folder:empty", str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="folder not found"):
        build_dataset("folder:missing", str(tmp_path))
    write_image(tmp_path / "mixed" / "cam1" / "ok.jpg")
    write_image(tmp_path / "mixed" / "loose.jpg")
    with pytest.raises(DatasetLayoutError, match=r"loose\.jpg is not inside a camera folder"):
        build_dataset("folder:mixed", str(tmp_path))


def test_folder_single_camera_is_a_warning(tmp_path, caplog):
    write_image(tmp_path / "one" / "cam" / "a.jpg")
    write_image(tmp_path / "one" / "cam" / "b.jpg")
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("folder:one", str(tmp_path))
    assert len(ds.train) == 2
    assert any("one camera" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_unreadable_files_are_listed_in_one_warning_and_skipped(tmp_path, caplog):
    root = tmp_path / "bad"
    good = [write_image(root / "c1" / "good.jpg"), write_image(root / "c2" / "good.png")]
    (root / "c1" / "empty.jpg").write_bytes(b"")
    (root / "c1" / "text.png").write_text("not a png")
    data = (root / "c1" / "good.jpg").read_bytes()
    (root / "c2" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("folder:bad", str(tmp_path))
    assert sorted(p for p, _, _ in ds.train) == sorted(map(str, good))
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1
    assert "skipping 3 unreadable image files (of 5)" in warnings[0]
    for name in ("empty.jpg", "text.png", "truncated.jpg"):
        assert name in warnings[0]


# --------------------------------------------------------------------------- identities:
def test_identities_split_follows_the_documented_seeded_rule(tmp_path):
    root = tmp_path / "ids"
    layout = {"alice": {"door": 3, "lift": 2}, "bob": {"door": 2}, "carol": {"door": 1,
                                                                             "lift": 4}}
    for pid, cams in layout.items():
        for cam, n in cams.items():
            for k in range(n):
                write_image(root / pid / cam / f"{pid}_{cam}_{k}.jpg")
    ds = build_dataset("identities:ids", str(tmp_path), split_seed=5)
    assert ds.name == "identities:ids"
    assert len(ds.train) == 12 and ds.num_train_pids == 3
    # reference: pairs in sorted (pid, cam) order; bob (one camera) is never a query
    rng = np.random.default_rng(5)
    expected = []
    for pid_name in ("alice", "carol"):
        for cam_name in ("door", "lift"):
            files = sorted(f"{pid_name}_{cam_name}_{k}.jpg"
                           for k in range(layout[pid_name][cam_name]))
            expected.append(files[int(rng.integers(len(files)))])
    assert sorted(Path(p).name for p, _, _ in ds.query) == sorted(expected)
    assert {(pid, cam) for _, pid, cam in ds.query} == {(0, 0), (0, 1), (2, 0), (2, 1)}
    assert sorted(ds.query + ds.gallery) == sorted(ds.train)
    assert all(pid == 1 for p, pid, _ in ds.gallery if "bob" in p)
    again = build_dataset("identities:ids", str(tmp_path), split_seed=5)
    assert again.query == ds.query
    # the split function itself: deterministic, one query per multi-camera (pid, cam) pair
    q, g = split_query_gallery(ds.train, seed=5)
    assert q == ds.query and g == ds.gallery


def test_identities_camera_regex_and_missing_identity_folder(tmp_path):
    root = tmp_path / "ids"
    write_image(root / "7" / "x_c1.jpg")
    write_image(root / "7" / "y_c2.jpg")
    write_image(root / "12" / "z_c2.jpg")
    ds = build_dataset("identities:ids", str(tmp_path), camera_regex=r"_c(\d)")
    assert names(ds.train) == [("x_c1.jpg", 0, 0), ("y_c2.jpg", 0, 1), ("z_c2.jpg", 1, 1)]
    write_image(root / "stray_c1.jpg")
    with pytest.raises(DatasetLayoutError, match="stray_c1.jpg is not inside an identity"):
        build_dataset("identities:ids", str(tmp_path), camera_regex=r"_c(\d)")


# --------------------------------------------------------------------------- NAME:PATH
def _market_files(base: Path) -> None:
    for split, files in (("bounding_box_train", ["0002_c1s1_01.jpg", "0002_c2s1_02.jpg"]),
                         ("query", ["0003_c1s1_01.jpg"]),
                         ("bounding_box_test", ["0003_c2s1_01.jpg", "0004_c1s1_01.jpg"])):
        for f in files:
            (base / split).mkdir(parents=True, exist_ok=True)
            (base / split / f).write_bytes(b"")


def test_benchmark_loader_at_its_own_path_keeps_the_users_name(tmp_path):
    _market_files(tmp_path / "elsewhere" / "my_set")
    name = f"market1501:{tmp_path / 'elsewhere' / 'my_set'}"
    ds = build_dataset(name, str(tmp_path / "root_without_market"))
    assert ds.name == name and (len(ds.train), len(ds.query), len(ds.gallery)) == (2, 1, 2)
    rel = build_dataset("dukemtmcreid:elsewhere/my_set", str(tmp_path))  # relative to the root
    assert rel.name == "dukemtmcreid:elsewhere/my_set" and len(rel.gallery) == 2
    _market_files(tmp_path / "release" / "Market-1501-v15.09.15")  # the release's inner folder
    inner = build_dataset("market1501:release", str(tmp_path))
    assert inner.root == str(tmp_path / "release" / "Market-1501-v15.09.15")
    with pytest.raises(DatasetLayoutError, match="nowhere"):
        build_dataset(f"market1501:{tmp_path / 'nowhere'}", str(tmp_path))
    with pytest.raises(ValueError, match="synthetic"):
        build_dataset("synthetic_person_a:/x", str(tmp_path))


@pytest.fixture(scope="module")
def synthetic_market(tmp_path_factory) -> Path:
    """A small generated person set (Market layout, 3 cameras, 64x32 images)."""
    from reid.data.synthetic import make_spec, write_dataset

    spec = make_spec("person", domain="A", ids=8, cams=3, size=(64, 32), seed=0)
    return write_dataset(tmp_path_factory.mktemp("syn") / "market_copy", spec, progress=False)


def test_market_folder_elsewhere_evaluates_under_its_name_and_saved_features(
        synthetic_market, tmp_path):
    """tools/test.py on market1501:PATH reports the user's name; TEST.SAVE_FEATURES then
    ``--features FILE`` (TEST.FEATURES) reproduces the same metrics without a model."""
    name = f"market1501:{synthetic_market}"
    args = ["--config-file", str(REPO / "configs/demo/usl_synthetic.yaml"), *TINY,
            "DATASETS.TARGET", "[]", "DATASETS.TEST", f"['{name}']"]
    first = cli.test_main([*args, "OUTPUT_DIR", str(tmp_path / "a"), "TEST.SAVE_FEATURES",
                           "True"])
    saved = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert list(saved["datasets"]) == [name]
    feats = list((tmp_path / "a").glob("features_*.npz"))
    assert [f.name for f in feats] == [
        "features_market1501_" + str(synthetic_market).strip("/").replace("/", "_") + ".npz"]
    again = cli.test_main(["--features", str(feats[0]), *args, "OUTPUT_DIR", str(tmp_path / "b")])
    for key in ("mAP", "mINP", "rank1", "rank5", "rank10"):
        assert again[key] == pytest.approx(first[key], abs=1e-6)
    assert 0.0 < first["mAP"] <= 1.0


# --------------------------------------------------------------------------- progress and logs
def test_log_progress_lines_every_tenth_and_capped_log_file(tmp_path):
    from reid.utils.logging import setup_logger
    from reid.utils.progress import LogProgress, progress

    setup_logger(tmp_path)
    try:
        bar = LogProgress(range(20), desc="work", min_seconds=0.0, every_seconds=1e9)
        assert sum(1 for _ in bar) == 20
        assert bar.lines == 10  # at 2, 4, ..., 20 of 20
        quiet = LogProgress(range(5), desc="quick")  # finishes within min_seconds
        list(quiet)
        assert quiet.lines == 0
        assert isinstance(progress(range(3)), LogProgress)  # stderr is not a terminal here
        logging.getLogger("reid.test").info("x" * 5000 + "\nsecond line\r" + "y" * 3000)
    finally:
        setup_logger(None)
    lines = (tmp_path / "log.txt").read_text(encoding="utf-8").splitlines()
    assert max(len(line) for line in lines) <= 1000
    assert sum("work: " in line for line in lines) == 10
    assert any("work: 20/20 (100%)" in line for line in lines)
    assert any("characters cut]" in line for line in lines)
    assert "second line" in lines


def test_jaccard_in_row_chunks_equals_one_pass():
    from reid.cluster.jaccard import jaccard_all, jaccard_rows, sparse_v_qe
    from reid.cluster.knn import knn

    x = np.random.default_rng(0).standard_normal((2500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, rank = knn(x, 10)
    v = sparse_v_qe(x, rank, 10, 3)
    chunked = jaccard_all(v)
    whole = jaccard_rows(v, np.arange(2500, dtype=np.int64))
    whole.setdiag(0.0)
    assert (chunked != whole).nnz == 0


# --------------------------------------------------------------------------- end to end
def _tool(name: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "tools" / name), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_own_cameras_end_to_end(synthetic_market, tmp_path):
    """Crops in camera folders with arbitrary names -> one USL epoch on folder: -> extract ->
    visualize -> export; exported features equal PyTorch's to 1e-4."""
    from reid.apps.visualize import ranked_list_size, sheet_size
    from reid.models import FeatureExtractor, build_model, load_pretrained

    crops = tmp_path / "my_cameras"
    for i, src in enumerate(sorted((synthetic_market / "bounding_box_train").glob("*.jpg"))):
        cam = src.name.split("_c")[1][0]
        dst = crops / f"entrance {cam}" / f"IMG-{(i * 7919) % 10007:05d}.JPG"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    files = sorted(str(p) for p in crops.rglob("*.JPG"))
    run = tmp_path / "run"
    cli.train_main(["--config-file", str(REPO / "configs/demo/usl_synthetic.yaml"), *TINY,
                    "DATASETS.ROOT", str(tmp_path), "DATASETS.TARGET", "['folder:my_cameras']",
                    "SOLVER.MAX_EPOCHS", "1", "OUTPUT_DIR", str(run)])
    assert (run / "last.pth").is_file() and not (run / "best.pth").exists()
    assert not (run / "metrics.jsonl").exists()  # no test set: no evaluation
    pseudo = np.load(run / "pseudo_labels.npz")
    assert sorted(pseudo["paths_0"].tolist()) == files
    assert "true_ids_0" not in pseudo and pseudo["labels_0"].shape == (len(files),)
    assert json.loads((run / "train.jsonl").read_text())["epoch"] == 0
    log_lines = (run / "log.txt").read_text(encoding="utf-8").splitlines()
    assert max(map(len, log_lines)) <= 1000

    proc = _tool("extract.py", "--config-file", str(run / "config.yaml"), "--weights",
                 str(run / "last.pth"), "--input", str(crops), "--output",
                 str(tmp_path / "feats.npz"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = np.load(tmp_path / "feats.npz")
    assert data["paths"].tolist() == files
    feats = data["features"]
    assert feats.shape == (len(files), 512) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)

    out = tmp_path / "viz"
    proc = _tool("visualize.py", "--run", str(run), "--out", str(out), "--dataset",
                 f"market1501:{synthetic_market}", "--num-queries", "3", "--topk", "4",
                 "--worst-first", "--clusters", "3", "--per-row", "5", "--thumb", "32", "16")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert [p for p in pngs if p.startswith("rank_")] == ["rank_000.png", "rank_001.png",
                                                          "rank_002.png"]
    for p in pngs:
        if p.startswith("rank_"):
            assert _png_size(out / p) == ranked_list_size(4, (32, 16))
    labels = pseudo["labels_0"]
    if (labels >= 0).any():
        n_rows = min(3, len(np.unique(labels[labels >= 0])))
        assert _png_size(out / "clusters.png") == sheet_size(n_rows, 5, (32, 16))
    if (labels < 0).any():
        assert "outliers.png" in pngs
    index = (out / "index.html").read_text()
    for p in pngs:
        assert f"src='{p}'" in index

    formats = ["torchscript"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        formats.append("onnx")
    except ImportError:
        pass
    proc = _tool("export.py", "--config-file", str(run / "config.yaml"), "--weights",
                 str(run / "last.pth"), "--output", str(tmp_path / "model"), "--format",
                 *formats, "--images", str(crops))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "max abs difference to PyTorch" in proc.stdout
    from reid.config import load_cfg

    cfg = load_cfg(str(run / "config.yaml"), [])
    model = build_model(cfg, num_classes=0, num_domains=1)
    load_pretrained(model, run / "last.pth")
    extractor = FeatureExtractor(model.eval(), image_size=(32, 16))
    x = torch.stack([extractor.transform(Image.open(p).convert("RGB")) for p in files[:5]])
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.no_grad():
        got = scripted(x).numpy()
    np.testing.assert_allclose(got, feats[:5], atol=1e-4)
    if "onnx" in formats:
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp_path / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], feats[:5],
                                   atol=1e-4)


def test_export_without_onnx_names_the_extra(tmp_path, monkeypatch, capsys):
    import importlib.util

    from reid.apps import cli as apps_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    status = apps_cli.export_main(["--output", str(tmp_path / "m"), "--format", "onnx"])
    assert status == 2  # a user error: one line naming the extra, no traceback
    err = capsys.readouterr().err
    assert 'pip install -e ".[export]"' in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_plot_curves_of_a_run(tmp_path):
    pytest.importorskip("matplotlib", reason="tools/plot.py needs the plot extra (matplotlib)")
    from reid.apps.cli import plot_main
    from reid.apps.plot import run_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        {"epoch": -1, "mAP": 0.1}, {"epoch": 1, "mAP": 0.3}]))
    (run / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        {"epoch": 0, "num_clusters": 5, "num_outliers": 9},
        {"epoch": 1, "num_clusters": 7, "num_outliers": 4}]))
    (run / "train.jsonl").write_text(json.dumps({"epoch": 0, "loss_contrast": 2.5}) + "\n")
    curves = run_curves(run)
    assert curves["target mAP (%)"] == ([0, 2], [10.0, 30.0])
    assert curves["clusters"] == ([0, 1], [5, 7])
    assert curves["un-clustered images"] == ([0, 1], [9, 4])
    assert curves["loss_contrast"] == ([1], [2.5])
    assert plot_main([str(run)]) == 0
    assert _png_size(run / "curves.png")[0] > 0
    assert plot_main([str(tmp_path / "empty")]) == 2


def test_test_tool_refuses_a_set_without_query(tmp_path):
    write_image(tmp_path / "crops" / "c1" / "a.jpg")
    write_image(tmp_path / "crops" / "c2" / "b.jpg")
    with pytest.raises(ValueError, match="folder:crops: no query / gallery split"):
        cli.test_main(["--config-file", str(REPO / "configs/demo/usl_synthetic.yaml"), *TINY,
                       "DATASETS.ROOT", str(tmp_path), "DATASETS.TARGET", "['folder:crops']",
                       "OUTPUT_DIR", str(tmp_path / "out")])


@pytest.mark.parametrize("domain", [0, 1, -1])
def test_load_encoder_takes_the_chosen_dsbn_branch(tmp_path, domain):
    from reid.apps.model import load_encoder
    from reid.config import load_cfg
    from reid.models import build_model
    from reid.models.norm import dsbn_modules

    cfg = load_cfg(None, ["MODEL.ARCH", "resnet18", "MODEL.DSBN.ENABLED", "True",
                          "INPUT.SIZE_TEST", "[32, 16]"])
    torch.manual_seed(0)
    dsbn = build_model(cfg, num_classes=0, num_domains=2)
    for m in dsbn_modules(dsbn):  # make the two branches differ
        m.dsbn[1].running_mean.uniform_(-0.5, 0.5)
        m.dsbn[1].running_var.uniform_(0.5, 2.0)
    torch.save({"model": dsbn.state_dict()}, tmp_path / "ckpt.pth")
    x = torch.randn(3, 3, 32, 16)
    plain = load_encoder(cfg, tmp_path / "ckpt.pth", domain=domain)
    dsbn.eval()
    with torch.no_grad():
        want = dsbn(x, domains=torch.full((3,), domain % 2, dtype=torch.long))
        other = dsbn(x, domains=torch.full((3,), 1 - domain % 2, dtype=torch.long))
        got = plain(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - other).abs().max() > 1e-3


def test_jpeg_with_data_after_the_image_is_kept(tmp_path):
    from reid.data.datasets.folder import is_readable_image

    path = write_image(tmp_path / "a.jpg")
    data = path.read_bytes()
    (tmp_path / "trailer.jpg").write_bytes(data + b"\x00" * 500)
    (tmp_path / "cut.jpg").write_bytes(data[:-100])
    assert is_readable_image(path) and is_readable_image(tmp_path / "trailer.jpg")
    assert not is_readable_image(tmp_path / "cut.jpg")


def _pixel(path: Path, xy: tuple[int, int]) -> tuple[int, int, int]:
    with Image.open(path) as img:
        return img.convert("RGB").getpixel(xy)


def test_ranked_lists_skip_junk_colour_matches_and_order_by_ap(tmp_path):
    from reid.apps.visualize import BORDER, GAP, GREEN, RED, _cell, ranked_list_size, ranked_lists

    imgs = [str(write_image(tmp_path / "img" / f"{i}.png", (10 * i, 0, 0))) for i in range(6)]
    q_pids, q_cams = np.array([1, 3]), np.array([0, 1])
    g_pids, g_cams = np.array([1, 2, 1, 3, 3]), np.array([0, 1, 1, 0, 1])
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],   # q0: g0 is junk (same id, same camera)
                     [0.9, 0.8, 0.7, 0.1, 0.6]])  # q1: its match g3 comes first
    pics = ranked_lists(dist, imgs[:2], imgs[1:], q_pids, g_pids, q_cams, g_cams,
                        tmp_path / "out", num_queries=2, topk=2, worst_first=True,
                        thumb=(32, 16))
    assert [p["query"] for p in pics] == [imgs[0], imgs[1]]  # AP 0.5 before AP 1.0
    assert [p["ap"] for p in pics] == pytest.approx([0.5, 1.0])
    assert [p["matches"] for p in pics] == [1, 1]
    first = tmp_path / "out" / pics[0]["file"]
    assert _png_size(first) == ranked_list_size(2, (32, 16))
    cw, _ = _cell((32, 16))
    x0 = GAP + cw + 2 * GAP  # first gallery cell; its border pixel is at (x0 + 1, GAP + 1)
    assert _pixel(first, (x0 + 1, GAP + 1)) == RED  # g1 (id 2)
    assert _pixel(first, (x0 + cw + 1, GAP + 1)) == GREEN  # g2 (id 1, other camera)
    assert _pixel(first, (x0 + BORDER + 2, GAP + BORDER + 2)) == (20, 0, 0)  # g1's image


def test_contact_sheets_rows_colours_and_purity(tmp_path):
    from reid.apps.visualize import GAP, GREEN, HEAD_W, RED, _cell, contact_sheets, sheet_size

    paths = [str(write_image(tmp_path / "img" / f"{i}.png")) for i in range(7)]
    labels = np.array([0, 0, 0, 1, 1, -1, -1])
    true_ids = np.array([5, 5, 6, 7, 7, 1, 2])
    pics = contact_sheets(labels, paths, tmp_path / "out", true_ids=true_ids,
                          camids=np.zeros(7, dtype=int), num_clusters=5, per_row=3,
                          thumb=(32, 16))
    assert [p["file"] for p in pics] == ["clusters.png", "outliers.png"]
    assert pics[0]["purity"] == pytest.approx(4 / 5)
    sheet = tmp_path / "out" / "clusters.png"
    assert _png_size(sheet) == sheet_size(2, 3, (32, 16))
    assert _png_size(tmp_path / "out" / "outliers.png") == sheet_size(1, 3, (32, 16))
    cw, _ = _cell((32, 16))
    colours = [_pixel(sheet, (HEAD_W + j * cw + 1, GAP + 1)) for j in range(3)]
    assert colours == [GREEN, GREEN, RED]  # cluster 0: ids 5, 5, 6
    unlabelled = contact_sheets(labels, paths, tmp_path / "plain", num_clusters=1, per_row=3,
                                thumb=(32, 16))
    assert "purity" not in unlabelled[0]
    assert _png_size(tmp_path / "plain" / "clusters.png") == sheet_size(1, 3, (32, 16))
