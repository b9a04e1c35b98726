"""Shared test helpers and session-scoped synthetic data.

Every helper is reached through a fixture (no test file imports another test file):

- ``tiny``: the CPU-sized config overrides of the end-to-end runs (ResNet-10 at 32x16, two
  iterations of 8 images, tiny synthetic sets of 12 identities and 2 cameras);
- ``tiny_root`` / ``tiny_root_4cams``: data roots holding the tiny synthetic sets, generated once
  per session and shared **read-only** (a test that changes data copies it or uses ``tmp_path``);
- ``demo_root``: the generated sets of the learning tests, generated once per session by a
  child process that starts at collection, beside the first tests;
- ``train_full_and_resumed``: the "2 epochs in one run == 1 + 1 with --resume" check;
- ``tiny_encoder``, ``random_images``, ``camera_batches``: the camera-BN toy model and data;
- ``blobs``: Gaussian identity blobs on the unit sphere for the clustering tests;
- ``touch`` and ``write_mars``: empty files and the MARS layout (names, ``info/*.mat``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

# ------------------------------------------------------------------ tiny end-to-end overrides
TINY: tuple[str, ...] = (
    "MODEL.ARCH", "resnet10", "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]",
    "INPUT.PADDING", "2", "DATASETS.SYNTHETIC.IDS", "12", "DATASETS.SYNTHETIC.CAMS", "2",
    "DATASETS.SYNTHETIC.SIZE", "[64, 32]", "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.NUM_INSTANCES", "2", "SOLVER.IMS_PER_BATCH", "8", "SOLVER.ITERS", "2",
    "SOLVER.WARMUP_EPOCHS", "0", "SOLVER.AMP", "False", "TEST.IMS_PER_BATCH", "64",
    "CLUSTER.K1", "6", "CLUSTER.K2", "2", "CLUSTER.MIN_SAMPLES", "2", "DEVICE", "cpu",
)
# the synthetic spec TINY asks for (DATASETS.SYNTHETIC.*), used to generate the shared roots
TINY_SPEC = {"ids": 12, "cams": 2, "size": (64, 32), "seed": 0}
TINY_SETS = ("synthetic_person_a", "synthetic_person_b", "synthetic_video_a")


@pytest.fixture
def tiny() -> list[str]:
    """The tiny end-to-end overrides (a fresh list: a test may extend it)."""
    return list(TINY)


def _generate(root: Path, names: Sequence[str], **spec) -> str:
    from reid.data.datasets import build_dataset

    for name in names:
        build_dataset(name, str(root), **spec)
    return str(root)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> str:
    """A data root with TINY's synthetic sets (persons A and B, video A; 12 ids, 2 cameras),
    generated once per session. Read-only: runs pass it as DATASETS.ROOT with ``tiny``'s
    DATASETS.SYNTHETIC keys (other keys would regenerate the shared sets)."""
    return _generate(tmp_path_factory.mktemp("tiny_data"), TINY_SETS, **TINY_SPEC)


@pytest.fixture(scope="session")
def tiny_root_4cams(tmp_path_factory) -> str:
    """Like ``tiny_root`` with 4 cameras (``DATASETS.SYNTHETIC.CAMS 4``): person A and B."""
    return _generate(tmp_path_factory.mktemp("tiny_data_4cams"), TINY_SETS[:2],
                     **{**TINY_SPEC, "cams": 4})


# the demo configs' synthetic sets, in the order the learning tests need them (the Cluster
# Contrast demo, early in the run, reads person A)
DEMO_SETS = (("configs/demo/usl_synthetic.yaml", "synthetic_person_a"),
             ("configs/demo/uda_synthetic.yaml", "synthetic_person_b"),
             ("configs/video/usl_synthetic_video.yaml", "synthetic_video_a"))
_DEMO_GENERATE = """
import sys
from reid.config import load_cfg
from reid.data.build import build_dataset_from_cfg
for config, name in {sets!r}:
    build_dataset_from_cfg(load_cfg(config, ["DATASETS.ROOT", sys.argv[1]]), name)
"""
_demo_data: dict = {}


def pytest_collection_finish(session) -> None:
    """When a selected test (after ``-k`` / ``-m`` deselection) uses ``demo_root``, start
    generating the demo data sets (about 30 s of single-threaded work on 2 cores) in a child
    process at once, so that it runs beside the light tests that come first instead of inside
    the first learning test."""
    if _demo_data or session.config.option.collectonly or not any(
            "demo_root" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    import os
    import subprocess
    import sys
    import tempfile

    root = tempfile.mkdtemp(prefix="unreid_demo_data_")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    _demo_data["root"] = root
    _demo_data["log"] = log = open(Path(root) / "generate.log", "w+", encoding="utf-8")  # noqa: SIM115
    _demo_data["proc"] = subprocess.Popen(
        [sys.executable, "-c", _DEMO_GENERATE.format(sets=DEMO_SETS), root],
        cwd=Path(__file__).resolve().parents[1], env=env, stdout=log, stderr=subprocess.STDOUT)


def pytest_sessionfinish(session, exitstatus) -> None:
    if "proc" in _demo_data:
        import shutil

        _demo_data["proc"].kill()
        _demo_data["proc"].wait()
        _demo_data["log"].close()
        shutil.rmtree(_demo_data["root"], ignore_errors=True)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> str:
    """The data root of the learning tests (test_demo_learning, the Cluster Contrast demo):
    the demo configs' synthetic sets (``DEMO_SETS``, their own DATASETS.SYNTHETIC keys),
    generated once per session by the child process that collection started; this waits for
    it. Without that process (the fixture reached another way) the runs generate each set on
    first use, as the demos themselves do."""
    if "proc" not in _demo_data:
        return str(tmp_path_factory.mktemp("demo_data"))
    proc, log = _demo_data["proc"], _demo_data["log"]
    if proc.wait() != 0:
        log.seek(0)
        pytest.fail(f"generating the demo data failed (exit {proc.returncode}):\n"
                    f"{log.read()[-3000:]}")
    return _demo_data["root"]


def train_full_and_resumed(make_args, tmp_path) -> tuple[dict, dict]:
    """Train 2 epochs in one run ("full") and 1 + 1 epochs with --resume ("split"); asserts
    that both end with the same model and memory and returns both last checkpoints.
    ``make_args(out, *extra)`` gives the command line of a run into ``out``."""
    from reid.engine import cli
    from reid.utils.checkpoint import load_checkpoint

    cli.train_main(make_args(tmp_path / "full", "SOLVER.MAX_EPOCHS", "2"))
    cli.train_main(make_args(tmp_path / "split", "SOLVER.MAX_EPOCHS", "1"))
    assert load_checkpoint(tmp_path / "split" / "last.pth")["epoch"] == 1
    cli.train_main(["--resume", *make_args(tmp_path / "split", "SOLVER.MAX_EPOCHS", "2")])
    full = load_checkpoint(tmp_path / "full" / "last.pth")
    split = load_checkpoint(tmp_path / "split" / "last.pth")
    assert full["epoch"] == split["epoch"] == 2
    for key, value in full["model"].items():
        assert torch.equal(value, split["model"][key]), key
    for key, value in full["method"]["memory"].items():
        assert torch.equal(value, split["method"]["memory"][key]), key
    return full, split


@pytest.fixture(name="train_full_and_resumed")
def _train_full_and_resumed() -> Callable[..., tuple[dict, dict]]:
    return train_full_and_resumed


# ------------------------------------------------------------------ camera-BN toy model and data
class TinyEncoder(nn.Module):
    """conv -> BN2d -> ReLU -> avg pool -> BN1d; eval output normalised (encoder contract)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.neck = nn.BatchNorm1d(4)
        with torch.no_grad():
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.neck.running_mean.uniform_(-1, 1)

    def forward(self, x: torch.Tensor, domains: torch.Tensor | None = None) -> torch.Tensor:
        from reid.models import use_domains

        with use_domains(self, domains):
            f = self.neck(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
        return f if self.training else nn.functional.normalize(f, dim=1)


def _random_images(n: int, shift: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 2, generator=g) * (1 + shift) + shift


def _camera_batches(x: torch.Tensor, size: int, camid: int) -> list[dict]:
    return [{"img": x[i:i + size], "pid": torch.zeros(len(x[i:i + size]), dtype=torch.long),
             "camid": torch.full((len(x[i:i + size]),), camid)} for i in range(0, len(x), size)]


@pytest.fixture
def tiny_encoder() -> type[TinyEncoder]:
    """The class: ``tiny_encoder()`` builds the same seeded model each time."""
    return TinyEncoder


@pytest.fixture
def random_images() -> Callable[[int, float, int], torch.Tensor]:
    """``random_images(n, shift, seed)``: n seeded 3x4x2 images, mean ``shift``."""
    return _random_images


@pytest.fixture
def camera_batches() -> Callable[[torch.Tensor, int, int], list[dict]]:
    """``camera_batches(x, size, camid)``: batches of ``size`` images of one camera."""
    return _camera_batches


# ------------------------------------------------------------------ clustering blobs
def _blobs(rng, ids, per, d, noise):
    centres = rng.normal(size=(ids, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(ids), per)
    return (centres[truth] + noise * rng.normal(size=(ids * per, d))).astype(np.float32), truth


@pytest.fixture
def blobs():
    """``blobs(rng, ids, per, d, noise)`` -> (features, identities): ``per`` noisy samples
    around each of ``ids`` unit centres in ``d`` dimensions."""
    return _blobs


# ------------------------------------------------------------------ dataset layouts
def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture
def touch() -> Callable[[Path], None]:
    """``touch(path)``: an empty file, parent folders created."""
    return _touch


def _write_mars(base: Path, train: Sequence[str], test: Sequence[str], train_info,
                test_info, query_idx) -> None:
    """The MARS layout under ``base``: empty frames ``bbox_{train,test}/<pid>/<name>``, the
    name lists ``info/{train,test}_name.txt`` and ``info/tracks_{train,test}_info.mat`` (rows
    start, end, pid, camera; 1-based rows of the name lists) and ``info/query_IDX.mat``."""
    import scipy.io

    for n in train:
        _touch(base / "bbox_train" / n[:4] / n)
    for n in test:
        _touch(base / "bbox_test" / n[:4] / n)
    (base / "info").mkdir(exist_ok=True)
    (base / "info" / "train_name.txt").write_text("\n".join(train) + "\n")
    (base / "info" / "test_name.txt").write_text("\n".join(test) + "\n")
    scipy.io.savemat(base / "info" / "tracks_train_info.mat",
                     {"track_train_info": np.asarray(train_info)})
    scipy.io.savemat(base / "info" / "tracks_test_info.mat",
                     {"track_test_info": np.asarray(test_info)})
    scipy.io.savemat(base / "info" / "query_IDX.mat", {"query_IDX": np.asarray(query_idx)})


@pytest.fixture
def write_mars():
    """``write_mars(base, train_names, test_names, train_info, test_info, query_idx)``."""
    return _write_mars
