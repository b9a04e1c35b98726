"""tools/gpu_check.py: the CPU fallback, the table, and the comparison helpers (the GPU rows
themselves need a CUDA machine; the checks run here with device="cpu" exercise their logic)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reid.cluster  # noqa: F401  (imported at collection: torch / numba load time is not a test's)

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check
_spec.loader.exec_module(gpu_check)


def test_without_cuda_prints_no_cuda_and_exits_0() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("no CUDA")


def test_table_format() -> None:
    rows = [gpu_check.Row("torch DBSCAN (cuda)", "3 clusters", 0.123, "yes", "identical"),
            gpu_check.Row("kNN", "recall 1.0000", 12.5, "no", "recall >= 0.999")]
    assert gpu_check.format_table(rows).splitlines() == [
        "path                 result         time s  equal to CPU  tolerance",
        "-------------------  -------------  ------  ------------  ---------------",
        "torch DBSCAN (cuda)  3 clusters       0.12  yes           identical",
        "kNN                  recall 1.0000   12.50  no            recall >= 0.999",
    ]
    assert gpu_check.format_table([]).splitlines()[0].startswith("path  result  time s")


def test_knn_equal() -> None:
    ref_i = np.array([[0, 1, 2], [1, 0, 2]])
    ref_d = np.array([[0.0, 0.1, 0.2], [0.0, 0.1, 0.3]], np.float32)
    ok, msg = gpu_check.knn_equal(ref_i[:, [0, 2, 1]], ref_d, ref_i, ref_d)  # order-free
    assert ok and msg == "recall 1.0000, max |dd| 0.0e+00"
    ok, msg = gpu_check.knn_equal(np.array([[0, 1, 5], [1, 0, 2]]), ref_d, ref_i, ref_d)
    assert not ok and msg.startswith("recall 0.8333")  # 5 of 6
    ok, _ = gpu_check.knn_equal(ref_i, ref_d + 0.01, ref_i, ref_d)
    assert not ok  # distances off by 1e-2 > 1e-3


def test_labels_agree() -> None:
    assert gpu_check.labels_agree([0, 0, 1, -1], [0, 0, 1, -1]) == (True, "identical")
    ok, msg = gpu_check.labels_agree([1, 1, 0, -1], [0, 0, 1, -1])  # renumbered: ARI 1
    assert ok and msg == "ARI 1.0000"
    ok, msg = gpu_check.labels_agree([0, 0, 0, 1, 1, -1], [0, 0, 1, 1, 1, 2], min_ari=0.99)
    assert not ok and msg == f"ARI {14 / 44:.4f}"  # hand-computed in test_cluster_ivf


def test_cosine_agree() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert gpu_check.cosine_agree(a, 3 * a) == (True, "min cosine 1.0000")
    ok, msg = gpu_check.cosine_agree(a, np.array([[1.0, 1.0], [0.0, 1.0]]))
    assert not ok and msg == f"min cosine {np.sqrt(0.5):.4f}"


def test_dbscan_check_on_cpu_matches_sklearn() -> None:
    rows = gpu_check.check_dbscan("cpu")
    assert len(rows) == 2 and all(r.equal == "yes" for r in rows), rows


def test_knn_and_kmeans_checks_on_cpu() -> None:
    pytest.importorskip("faiss")
    rows = gpu_check.check_knn("cpu", n_ids=40) + gpu_check.check_kmeans("cpu")
    assert [r.equal for r in rows] == ["yes", "yes", "yes", "yes"], rows  # torch, faiss x2, k-means


def test_run_checks_turns_an_exception_into_a_row(monkeypatch) -> None:
    def broken(device: str) -> list:
        raise RuntimeError("boom")

    monkeypatch.setitem(gpu_check.CHECKS, "broken", broken)
    (row,) = gpu_check.run_checks(["broken"], "cpu")
    assert row.equal == "no" and row.result == "ERROR RuntimeError: boom"


def test_video_check_on_cpu() -> None:
    rows = gpu_check.check_video("cpu")  # bf16 autocast on the CPU: the same code path
    assert [r.path.split()[0] for r in rows] == ["timesformer_tiny", "vivit_m2_tiny"]
    assert all(r.equal == "yes" and "grads finite True" in r.result for r in rows), rows


def test_spcl_check_on_cpu_reads_the_losses() -> None:
    """The bf16 row is judged on the losses of ``train.jsonl``: an empty loss set must not pass
    or fail silently (it once read ``metrics.jsonl`` only, which holds no loss)."""
    fp32, amp = gpu_check.check_spcl("cpu", speed=())
    assert fp32.path == "SpCL USL epoch fp32 (cpu)" and "mAP" in fp32.result
    assert "loss_contrast" in amp.result and amp.equal == "n/a", amp
