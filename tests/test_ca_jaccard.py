"""Camera-aware Jaccard distance (``CLUSTER.CAMERA_AWARE``) against a direct dense reference."""
from __future__ import annotations

import numpy as np
import pytest

from reid.cluster import (
    SelfPacedLabeler,
    build_pseudo_labeler,
    camera_aware_jaccard_distance,
    jaccard_distance,
)
from reid.cluster.ca_jaccard import camera_knn
from reid.cluster.groups import CameraGroupLabeler
from reid.cluster.jaccard import l2_normalize, reciprocal_neighbours
from reid.cluster.quality import camera_pair_quality
from reid.config import load_cfg


def _reference(x: np.ndarray, cam: np.ndarray, k_intra: int, k_inter: int, q_intra: int,
               q_inter: int) -> np.ndarray:
    """Dense N x N camera-aware Jaccard written directly from the module's definitions."""
    n = x.shape[0]
    d = 2.0 - 2.0 * (x.astype(np.float64) @ x.astype(np.float64).T)
    intra, inter = [], []
    for i in range(n):
        same = [j for j in np.argsort(d[i], kind="stable") if cam[j] == cam[i] and j != i]
        other = [j for j in np.argsort(d[i], kind="stable") if cam[j] != cam[i]]
        intra.append([i] + same)
        inter.append(other)

    def recip(lists, i, k):
        return {j for j in lists[i][:k] if i in lists[j][:k]}

    def r_set(i, ki, ke):
        return recip(intra, i, ki + 1) | recip(inter, i, ke)

    v = np.zeros((n, n))
    for i in range(n):
        base = r_set(i, k_intra, k_inter)
        expanded = set(base)
        for j in base:
            half = r_set(j, int(round(k_intra / 2)), int(round(k_inter / 2)))
            if len(half & base) > 2 / 3 * len(half):
                expanded |= half
        idx = sorted(expanded)
        w = np.exp(-d[i, idx])
        v[i, idx] = w / w.sum()
    v_qe = np.zeros_like(v)
    for i in range(n):
        rows = intra[i][:q_intra] + inter[i][:q_inter]
        v_qe[i] = v[rows].mean(axis=0)
    m = np.minimum(v_qe[:, None, :], v_qe[None, :, :]).sum(axis=2)
    out = 1.0 - m / (2.0 - m)
    np.fill_diagonal(out, 0.0)
    return out


@pytest.mark.parametrize("sizes", [(10, 5, 4, 0), (6, 3, 3, 2), (3, 0, 1, 0), (8, 8, 2, 3)])
def test_equals_dense_reference(sizes):
    rng = np.random.default_rng(1)
    x = l2_normalize(rng.normal(size=(60, 8)).astype(np.float32))
    cam = rng.integers(0, 3, 60)
    cam[:3] = 3  # a camera with 3 images: shorter within-camera lists than k_intra
    dist = camera_aware_jaccard_distance(x, cam, *sizes).tocoo()
    got = np.ones((60, 60))
    got[dist.row, dist.col] = dist.data  # absent entries mean 1
    np.testing.assert_allclose(got, _reference(x, cam, *sizes), atol=1e-6)


def test_one_camera_equals_plain_jaccard_with_k1_plus_one():
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.normal(size=(150, 12)).astype(np.float32))
    cam = np.zeros(150, np.int64)
    ca = camera_aware_jaccard_distance(x, cam, k_intra=10, k_inter=0, q2_intra=4, q2_inter=0)
    plain = jaccard_distance(x, k1=10, k2=4, k1_plus_one=True,
                             rank=camera_knn(x, cam, 10, same_camera=True))
    assert ca.nnz == plain.nnz
    assert abs(ca - plain).max() == 0


def test_camera_knn_and_padded_reciprocal_by_hand():
    # points on a line (2-D unit vectors by angle); cameras 0 0 1 1 0
    ang = np.array([0.0, 0.1, 0.25, 0.5, 1.0])
    x = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    cam = np.array([0, 0, 1, 1, 0])
    intra = camera_knn(x, cam, 2, same_camera=True)
    np.testing.assert_array_equal(intra, [[0, 1, 4], [1, 0, 4], [2, 3, -1], [3, 2, -1],
                                          [4, 1, 0]])
    inter = camera_knn(x, cam, 1, same_camera=False)
    np.testing.assert_array_equal(inter, [[2], [2], [1], [1], [3]])
    members, counts = reciprocal_neighbours(inter, 0)  # one column of the padded lists
    # 1 <-> 2 are mutual nearest other-camera neighbours; 0 -> 2 is not returned
    np.testing.assert_array_equal(counts, [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(members[:, 0], [-1, 2, 1, -1, -1])


def _two_camera_set(rng, ids=30, per=4, offset=1.5):
    """Each identity seen by cameras 0 and 1 (``per`` images each); a camera offset makes every
    same-camera image closer than the true match in the other camera."""
    dim = 32
    centre = rng.normal(size=(ids, dim))
    cam_dir = rng.normal(size=(2, dim))
    x, cam, pid = [], [], []
    for p in range(ids):
        for c in range(2):
            for _ in range(per):
                x.append(centre[p] + offset * cam_dir[c] + 0.15 * rng.normal(size=dim))
                cam.append(c)
                pid.append(p)
    return np.asarray(x, np.float32), np.asarray(cam), np.asarray(pid)


def test_links_cameras_where_the_plain_distance_cannot():
    rng = np.random.default_rng(3)
    x, cam, pid = _two_camera_set(rng)
    plain = SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2, self_paced=False)(x)[0]
    aware = SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2, self_paced=False,
                             camera_aware=True, k1_inter=4, k2_inter=2)(x, camids=cam)[0]
    q_plain = camera_pair_quality(plain, pid, cam)
    q_aware = camera_pair_quality(aware, pid, cam)
    assert q_plain["cross_recall"] < 0.05
    assert q_aware["cross_recall"] > 0.7  # 0.767 when written
    assert q_aware["cross_precision"] > 0.7  # 0.793
    # without cross-camera query expansion the kernel weights of the cross-camera neighbours
    # are too small for the overlap: no link (0.0 when written)
    no_qe = SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2, self_paced=False,
                             camera_aware=True, k1_inter=4, k2_inter=0)(x, camids=cam)[0]
    assert camera_pair_quality(no_qe, pid, cam)["cross_recall"] < 0.05


def test_labeler_needs_camera_ids_and_groups_pass_them():
    rng = np.random.default_rng(4)
    x, cam, pid = _two_camera_set(rng, ids=12)
    lab = SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2, camera_aware=True, k1_inter=4)
    with pytest.raises(ValueError, match="needs the camera id"):
        lab(x)
    # two copies of the set as two camera groups (cameras 0/1 and 2/3): the grouped labeler
    # gives each group exactly what a labeler on that group alone gives
    xx = np.concatenate([x, x + 0.01])
    cc = np.concatenate([cam, cam + 2])
    grouped = CameraGroupLabeler(lambda: SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2,
                                                          camera_aware=True, k1_inter=4),
                                 cc, [[0, 1], [2, 3]])
    labels, _ = grouped(xx, camids=cc)
    alone = SelfPacedLabeler(eps=0.5, k1=6, k2=3, min_samples=2, camera_aware=True,
                             k1_inter=4)(x, camids=cam)[0]
    np.testing.assert_array_equal(labels[:x.shape[0]], alone)
    with pytest.raises(ValueError, match="other camera ids"):
        grouped(xx, camids=cc[::-1])


def test_config_builds_the_camera_aware_labeler():
    cfg = load_cfg(None, ["CLUSTER.CAMERA_AWARE", "True", "CLUSTER.K1_INTER", "7",
                          "CLUSTER.K2_INTER", "2"])
    lab = build_pseudo_labeler(cfg)
    assert (lab.camera_aware, lab.k1_inter, lab.k2_inter) == (True, 7, 2)


def test_runner_clusters_with_the_target_camera_ids(tiny, tiny_root, tmp_path):
    import torch

    from reid.cluster.camera import camera_centred
    from reid.engine.build import build_runner

    cfg = load_cfg("configs/demo/usl_synthetic.yaml", [
        *tiny, "DATASETS.ROOT", tiny_root, "OUTPUT_DIR", str(tmp_path / "out"),
        "CLUSTER.FEATURES", "memory", "CLUSTER.CAMERA_AWARE", "True", "CLUSTER.K1_INTER", "4",
        "CLUSTER.K2_INTER", "1"])
    runner = build_runner(cfg, device=torch.device("cpu"))
    runner.before_train()
    cams = np.asarray(runner.label_step.camids[0])
    feats = runner.memory.target_features(0).detach().float().cpu()
    if cfg.CLUSTER.CAMERA_CENTRE:
        feats = camera_centred(feats, torch.as_tensor(cams))
    c = cfg.CLUSTER
    expect, _ = SelfPacedLabeler(eps=c.EPS, eps_gap=c.EPS_GAP, min_samples=c.MIN_SAMPLES, k1=c.K1,
                                 k2=c.K2, camera_aware=True, k1_inter=4,
                                 k2_inter=1)(feats, camids=cams)
    assert (expect >= 0).any()
    runner.set_epoch(0)
    runner.update_labels(0)
    np.testing.assert_array_equal(runner.memory.target_labels(0).numpy(), expect)
