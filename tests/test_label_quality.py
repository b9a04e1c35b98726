"""Pseudo-label quality measures (logged, never used for training)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from reid.cluster.quality import camera_pair_quality, label_quality


def test_camera_pair_quality_hand_computed():
    # cluster 0 = images 0, 1, 2 (cameras 0, 1, 1): pairs (0,1) cross same id, (0,2) cross
    # other id, (1,2) same camera other id; id 5 = images 0, 1, 3: true pairs (0,1) and
    # (1,3) across cameras, (0,3) within camera 0
    got = camera_pair_quality(np.array([0, 0, 0, -1]), np.array([5, 5, 6, 5]),
                              np.array([0, 1, 1, 0]))
    assert got == {"intra_precision": 0.0, "intra_recall": 0.0, "cross_precision": 0.5,
                   "cross_recall": 0.5}
    with pytest.raises(ValueError, match="same length"):
        camera_pair_quality(np.zeros(3), np.zeros(2), np.zeros(3))


def test_camera_pair_quality_equals_brute_force_pair_count():
    rng = np.random.default_rng(0)
    n = 60
    pred = rng.integers(-1, 8, n)
    true = rng.integers(0, 10, n)
    cams = rng.integers(0, 3, n)
    count = {k: 0 for k in ("pos_s", "pos_c", "tp_s", "tp_c", "gt_s", "gt_c")}
    for i, j in itertools.combinations(range(n), 2):
        side = "s" if cams[i] == cams[j] else "c"
        pos = pred[i] >= 0 and pred[i] == pred[j]
        same = true[i] == true[j]
        count["pos_" + side] += pos
        count["tp_" + side] += pos and same
        count["gt_" + side] += same
    got = camera_pair_quality(pred, true, cams)
    assert got["intra_precision"] == pytest.approx(count["tp_s"] / count["pos_s"])
    assert got["intra_recall"] == pytest.approx(count["tp_s"] / count["gt_s"])
    assert got["cross_precision"] == pytest.approx(count["tp_c"] / count["pos_c"])
    assert got["cross_recall"] == pytest.approx(count["tp_c"] / count["gt_c"])
    q = label_quality(pred, true, cams)
    singletons = np.where(pred < 0, 100 + np.arange(n), pred)
    assert q["ari"] == pytest.approx(adjusted_rand_score(true, singletons))
    assert q["cross_recall"] == got["cross_recall"]
    assert set(label_quality(pred, true)) == {"nmi", "ari"}
