"""Self-paced reliability criterion, SelfPacedLabeler, k-means and build_pseudo_labeler."""
import collections

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from reid.cluster import (
    KMeansLabeler,
    SelfPacedLabeler,
    build_pseudo_labeler,
    cluster_reliability,
    independence_threshold,
    kmeans_labels,
    relabel_kept,
    self_paced_filter,
)
from reid.config import get_cfg


def _singletons(labels):
    out = np.array(labels, dtype=np.int64)
    nxt = out.max() + 1 if (out >= 0).any() else 0
    for i in range(out.size):
        if out[i] < 0:
            out[i] = nxt
            nxt += 1
    return out


def spcl_reference(tight, mid, loose, threshold=None):
    """Direct N x N transcription of the published SpCL criterion."""
    tight, mid, loose = _singletons(tight), _singletons(mid), _singletons(loose)
    sim = (mid[:, None] == mid[None, :]).astype(float)
    sim_t = (tight[:, None] == tight[None, :]).astype(float)
    sim_l = (loose[:, None] == loose[None, :]).astype(float)
    r_comp = 1 - np.minimum(sim, sim_t).sum(-1) / np.maximum(sim, sim_t).sum(-1)
    r_indep = 1 - np.minimum(sim, sim_l).sum(-1) / np.maximum(sim, sim_l).sum(-1)
    comp_c, indep_c, num = (collections.defaultdict(list), collections.defaultdict(list),
                            collections.defaultdict(int))
    for c, d, lab in zip(r_comp, r_indep, mid, strict=True):
        comp_c[lab].append(c)
        indep_c[lab].append(d)
        num[lab] += 1
    comp_c = {k: min(v) for k, v in comp_c.items()}
    indep_c = {k: min(v) for k, v in indep_c.items()}
    noins = [indep_c[k] for k in sorted(indep_c) if num[k] > 1]
    if threshold is None and noins:
        threshold = np.sort(noins)[min(len(noins) - 1, int(np.round(len(noins) * 0.9)))]
    keep = np.array([threshold is not None and indep_c[lab] <= threshold and c <= comp_c[lab]
                     for c, lab in zip(r_comp, mid, strict=True)])
    return r_comp, r_indep, threshold, keep


def _random_labels(rng, n, k):
    lab = rng.integers(-1, k, n)
    return lab


def test_reliability_matches_dense_reference_on_random_labels():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 80))
        k = int(rng.integers(1, 8))
        mid = _random_labels(rng, n, k)
        tight = np.where(rng.random(n) < 0.3, -1, mid * 2 + rng.integers(0, 2, n))
        tight[mid < 0] = -1
        loose = np.where(rng.random(n) < 0.3, rng.integers(0, k, n), np.maximum(mid, 0) // 2)
        mid = _singletons(mid)
        mid[rng.random(n) < 0.2] = -1
        r_comp, r_indep = cluster_reliability(tight, mid, loose)
        ref_comp, ref_indep, ref_thr, _ = spcl_reference(tight, mid, loose)
        np.testing.assert_allclose(r_comp, ref_comp, atol=1e-12)
        np.testing.assert_allclose(r_indep, ref_indep, atol=1e-12)
        thr = independence_threshold(mid, r_indep)
        assert (thr is None and ref_thr is None) or thr == pytest.approx(ref_thr, abs=1e-12)
        fixed = float(rng.random())
        keep = self_paced_filter(mid, r_comp, r_indep, fixed)
        ref_keep = spcl_reference(tight, mid, loose, threshold=fixed)[3]
        np.testing.assert_array_equal(keep & (mid >= 0), ref_keep & (mid >= 0))


def test_reliability_hand_computed():
    mid = np.array([0, 0, 0, 1, 1, -1])
    tight = np.array([0, 0, -1, 1, 1, -1])
    loose = np.array([0, 0, 0, 0, 0, -1])
    r_comp, r_indep = cluster_reliability(tight, mid, loose)
    np.testing.assert_allclose(r_comp, [1 / 3, 1 / 3, 2 / 3, 0, 0, 0])
    np.testing.assert_allclose(r_indep, [0.4, 0.4, 0.4, 0.6, 0.6, 0])
    thr = independence_threshold(mid, r_indep)
    assert thr == pytest.approx(0.6)
    keep = self_paced_filter(mid, r_comp, r_indep, thr)
    np.testing.assert_array_equal(relabel_kept(mid, keep), [0, 0, -1, 1, 1, -1])
    keep = self_paced_filter(mid, r_comp, r_indep, 0.5)
    np.testing.assert_array_equal(relabel_kept(mid, keep), [0, 0, -1, -1, -1, -1])
    assert independence_threshold(np.full(4, -1), np.zeros(4)) is None


def test_self_paced_labeler_recovers_identities_and_state(blobs):
    rng = np.random.default_rng(1)
    x, truth = blobs(rng, 25, 12, 32, 0.08)
    plain = SelfPacedLabeler(self_paced=False)
    lab, st = plain(torch.from_numpy(x))
    assert lab.dtype == np.int64 and adjusted_rand_score(truth, lab) > 0.95
    assert st["num_clusters"] == lab.max() + 1
    labeler = SelfPacedLabeler()
    lab, st = labeler(x)
    clustered = lab >= 0
    assert clustered.mean() > 0.8
    assert adjusted_rand_score(truth[clustered], lab[clustered]) > 0.95
    assert sorted(set(lab.tolist()) - {-1}) == list(range(st["num_clusters"]))
    assert st["num_outliers"] == int((lab < 0).sum())
    thr = labeler.state_dict()["indep_threshold"]
    assert thr is not None and thr == st["threshold"]
    # a noisier epoch keeps the first epoch's threshold; a restored labeler gives the same labels
    x2, _ = blobs(np.random.default_rng(2), 25, 12, 32, 0.15)
    restored = SelfPacedLabeler()
    restored.load_state_dict(labeler.state_dict())
    lab2, st2 = labeler(x2)
    assert st2["threshold"] == thr
    np.testing.assert_array_equal(restored(x2)[0], lab2)


def test_labeler_edge_cases(blobs):
    rng = np.random.default_rng(3)
    # no cluster at all: threshold stays unset until a call finds clusters
    x, _ = blobs(rng, 5, 6, 16, 0.05)
    labeler = SelfPacedLabeler(min_samples=31)
    lab, st = labeler(x)
    assert (lab == -1).all() and st["num_clusters"] == 0 and st["num_outliers"] == 30
    assert labeler.state_dict() == {"indep_threshold": None}
    labeler.min_samples = 4
    lab, st = labeler(x)
    assert st["num_clusters"] == 5 and labeler.state_dict()["indep_threshold"] is not None
    # one giant cluster
    giant = (np.ones((60, 8)) + 1e-3 * rng.normal(size=(60, 8))).astype(np.float32)
    lab, st = SelfPacedLabeler(self_paced=False)(giant)
    assert (lab == 0).all() and st["num_clusters"] == 1
    lab, st = SelfPacedLabeler()(giant)
    assert set(lab.tolist()) <= {-1, 0} and st["num_clusters"] == 1
    # duplicated features: each group of identical rows is one cluster
    dup = np.repeat(rng.normal(size=(6, 16)), 8, axis=0)
    lab, _ = SelfPacedLabeler()(dup)
    assert adjusted_rand_score(np.repeat(np.arange(6), 8), lab) == 1.0
    # N smaller than k1 and N = 1
    lab, _ = SelfPacedLabeler(self_paced=False)(x[:9])
    assert lab.shape == (9,)
    lab, st = SelfPacedLabeler()(x[:1])
    assert lab.tolist() == [-1] and st["num_clusters"] == 0
    bad = x.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        SelfPacedLabeler()(bad)
    with pytest.raises(ValueError, match="eps"):
        SelfPacedLabeler(eps=0.99)


def test_kmeans_and_builder(blobs):
    rng = np.random.default_rng(4)
    x, truth = blobs(rng, 6, 40, 16, 0.05)
    lab = kmeans_labels(x, 6, niter=20, seed=0)
    assert lab.dtype == np.int64 and adjusted_rand_score(truth, lab) > 0.75
    with pytest.raises(ValueError, match="k"):
        kmeans_labels(x, 241)
    cfg = get_cfg()
    cfg.CLUSTER.METHOD = "kmeans"
    cfg.CLUSTER.NUM_CLUSTERS = 6
    cfg.CLUSTER.KMEANS_NITER = 20
    km = build_pseudo_labeler(cfg, torch.device("cpu"))
    assert isinstance(km, KMeansLabeler)
    lab, st = km(x)
    assert adjusted_rand_score(truth, lab) > 0.75 and st["num_clusters"] == 6
    assert km.state_dict() == {"calls": 1}
    cfg.CLUSTER.METHOD = "dbscan"
    cfg.CLUSTER.EPS = 0.5
    sp = build_pseudo_labeler(cfg, "cpu")
    assert isinstance(sp, SelfPacedLabeler) and sp.eps == 0.5 and sp.k1 == cfg.CLUSTER.K1
    cfg.CLUSTER.METHOD = "spectral"
    with pytest.raises(KeyError, match="spectral"):
        build_pseudo_labeler(cfg, "cpu")
