"""Approximate (IVF) kNN for clustering, its recall / ARI measures, and the streamed Jaccard
distance (issue #27)."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from reid.cluster import build_pseudo_labeler, dbscan, jaccard_distance
from reid.cluster.jaccard import (
    jaccard_all,
    l2_normalize,
    query_expand,
    query_expand_blocked,
    sparse_v_qe,
)
from reid.cluster.knn import ivf_nlist, knn, knn_ivf, knn_recall, search_knn
from reid.cluster.quality import label_quality, partition_ari
from reid.cluster.reliability import SelfPacedLabeler
from reid.config import get_cfg

pytest.importorskip("faiss")


def clustered(n_ids: int = 40, per_id: int = 12, noise: int = 60, d: int = 32,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters on the sphere of unequal sizes plus uniform noise points; (x, ids)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d)).astype(np.float32)
    sizes = rng.integers(max(2, per_id // 2), per_id * 3 // 2 + 1, n_ids)
    ids = np.repeat(np.arange(n_ids), sizes)
    x = centres[ids] / np.linalg.norm(centres[ids], axis=1, keepdims=True)
    x = x + 0.25 / np.sqrt(d) * rng.standard_normal(x.shape).astype(np.float32)
    x = np.concatenate([x, rng.standard_normal((noise, d)).astype(np.float32)])
    ids = np.concatenate([ids, -1 - np.arange(noise)])
    perm = rng.permutation(x.shape[0])
    return l2_normalize(x[perm]), ids[perm]


def test_nlist_rule() -> None:
    assert ivf_nlist(10_000) == 256  # 4 sqrt(N) = 400 > N // 39 = 256
    assert ivf_nlist(1_000_000) == 4000  # 4 sqrt(N)
    assert ivf_nlist(100_000) == 1265  # round(4 * 316.23)
    assert ivf_nlist(50) == 1 and ivf_nlist(1) == 1
    assert ivf_nlist(10**12) == 65536


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("engine", ["blas", "faiss"])
def test_ivf_with_all_lists_probed_equals_exact_search(engine: str, spherical: bool) -> None:
    x, _ = clustered()
    d_ex, i_ex = knn(x, 20)
    d_iv, i_iv = knn_ivf(x, 20, nlist=8, nprobe=8, engine=engine, spherical=spherical)
    np.testing.assert_array_equal(i_iv, i_ex)
    np.testing.assert_allclose(d_iv, d_ex, atol=1e-5)
    assert knn_recall(i_iv, i_ex) == 1.0
    _, i_s = search_knn(x, 20, method="ivf", nlist=8, nprobe=100)  # nprobe clipped to nlist
    np.testing.assert_array_equal(i_s, i_ex)


def test_spherical_centroids_spread_the_diffuse_rows() -> None:
    """Plain k-means on unit-norm rows puts the diffuse rows into lists of small-norm
    centroids, which every query probes; spherical k-means (CLUSTER.IVF_SPHERICAL) has
    unit-norm centroids, spreads those rows and scans fewer rows per query."""
    import faiss

    knn_mod = importlib.import_module("reid.cluster.knn")
    x, ids = clustered(n_ids=60, per_id=12, noise=300, seed=0)
    stats = {}
    for spherical in (False, True):
        cents = knn_mod._train_centroids(x, 24, 0, 0, spherical=spherical)
        coarse = faiss.IndexFlatL2(x.shape[1])
        coarse.add(cents)
        probes = coarse.search(x, 4)[1]
        sizes = np.bincount(probes[:, 0], minlength=24)
        stats[spherical] = (np.linalg.norm(cents, axis=1),
                            np.bincount(probes[ids < 0, 0], minlength=24).max(),
                            sizes[probes].sum(1).mean())
    np.testing.assert_allclose(stats[True][0], 1.0, atol=1e-5)
    assert stats[False][0].min() < 0.5  # a centroid of diffuse rows
    assert stats[False][1] > 2 * stats[True][1]  # diffuse rows per list, at most
    assert stats[False][2] > 1.1 * stats[True][2]  # rows scanned per query


def test_kmeans_trains_coarse_to_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The IVF centroids: 4 iterations on 20 nlist random rows, then 1 iteration on 80 nlist
    rows started from those centroids; train_size caps both stages; the result is the second
    stage's centroids."""
    import faiss

    knn_mod = importlib.import_module("reid.cluster.knn")
    calls = []

    class Recording(faiss.Kmeans):
        def __init__(self, d, k, **kw):
            super().__init__(d, k, **kw)
            self.niter = kw["niter"]

        def train(self, x, weights=None, init_centroids=None):
            calls.append((x.shape[0], self.niter,
                          None if init_centroids is None else init_centroids.copy()))
            out = super().train(x, weights, init_centroids)
            calls[-1] += (self.centroids.copy(),)
            return out

    monkeypatch.setattr(faiss, "Kmeans", Recording)
    x = np.random.default_rng(0).standard_normal((6000, 8)).astype(np.float32)
    cents = knn_mod._train_centroids(x, 60, 0, 0)
    assert [(n, it) for n, it, *_ in calls] == [(1200, 4), (4800, 1)]
    assert calls[0][2] is None
    np.testing.assert_array_equal(calls[1][2], calls[0][3])  # started from stage 1
    np.testing.assert_array_equal(cents, calls[1][3])
    calls.clear()
    knn_mod._train_centroids(x, 60, 0, 1500)
    assert [(n, it) for n, it, *_ in calls] == [(1200, 4), (1500, 1)]


def test_search_knn_passes_the_kmeans_seed() -> None:
    x, _ = clustered(n_ids=40, seed=3)
    a = search_knn(x, 10, method="ivf", nlist=12, nprobe=2, seed=5)[1]
    np.testing.assert_array_equal(a, knn_ivf(x, 10, nlist=12, nprobe=2, seed=5)[1])
    assert not np.array_equal(a, search_knn(x, 10, method="ivf", nlist=12, nprobe=2)[1])


def _fixed_centroids(monkeypatch: pytest.MonkeyPatch, cents: np.ndarray) -> None:
    """Make both IVF engines use ``cents`` instead of training k-means."""
    knn_mod = importlib.import_module("reid.cluster.knn")  # the package exports a knn function
    monkeypatch.setattr(knn_mod, "_train_centroids", lambda *a, **kw: cents.copy())


def _reference_ivf(x: np.ndarray, cents: np.ndarray, k: int, nprobe: int,
                   both_sides: bool) -> np.ndarray:
    """Straightforward reference of the IVF candidate rule: each row probes the lists of its
    ``nprobe`` nearest centroids and belongs to the nearest one's list; its candidates are the
    members of the lists it probes, plus (``both_sides``) the rows probing its own list. Returns
    the (N, k) ids of the k nearest candidates (self first), -1 where fewer exist."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    probes = np.argsort(((x[:, None, :] - cents[None]) ** 2).sum(-1), axis=1)[:, :nprobe]
    own = probes[:, 0]
    seen = (probes[:, :, None] == own[None, None, :]).any(1)  # seen[q, j]: q scans j's list
    cand = seen | seen.T if both_sides else seen
    out = np.full((x.shape[0], k), -1)
    for i in range(x.shape[0]):
        js = np.flatnonzero(cand[i])
        js = js[np.argsort(d2[i, js], kind="stable")][:k]
        out[i, :js.size] = js
    return out


def test_blas_engine_scans_both_sides_of_every_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blas engine's lists equal the reference rule with both sides: a row's candidates are
    the members of the lists it probes and the rows that probe its own list."""
    x, _ = clustered(n_ids=30, seed=7, d=16)
    cents = x[np.random.default_rng(0).choice(x.shape[0], 10, replace=False)]
    _fixed_centroids(monkeypatch, cents)
    _, idx = knn_ivf(x, 12, nlist=10, nprobe=2, engine="blas")
    ref_both = _reference_ivf(x, cents, 12, 2, both_sides=True)
    ref_one = _reference_ivf(x, cents, 12, 2, both_sides=False)
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(ref_both, 1))
    assert (np.sort(ref_both, 1) != np.sort(ref_one, 1)).any(1).sum() > 20  # the rule matters


def test_faiss_engine_adds_the_reverse_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The faiss engine searches one side, then offers every pair it found to the other row:
    row i keeps the k nearest of its own list and of the rows whose lists held i. Its lists are
    never nearer than the blas engine's, which sees every scanned pair on both sides."""
    x, _ = clustered(n_ids=30, seed=7, d=16)
    cents = x[np.random.default_rng(0).choice(x.shape[0], 10, replace=False)]
    _fixed_centroids(monkeypatch, cents)
    d_f, i_f = knn_ivf(x, 12, nlist=10, nprobe=2, engine="faiss")
    one = _reference_ivf(x, cents, 12, 2, both_sides=False)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    for i in range(x.shape[0]):
        cand = np.union1d(one[i][one[i] >= 0], np.flatnonzero((one == i).any(1)))
        want = cand[np.argsort(d2[i, cand], kind="stable")][:12]
        np.testing.assert_array_equal(np.sort(i_f[i]), np.sort(want))
    d_b, _ = knn_ivf(x, 12, nlist=10, nprobe=2, engine="blas")
    assert (d_b <= d_f + 1e-5).all()
    _, i_b = knn_ivf(x, 12, nlist=10, nprobe=2)
    _, i_h = knn_ivf(x.astype(np.float16), 12, nlist=10, nprobe=2)  # float16 store, in place
    assert knn_recall(i_h, i_b) > 0.97
    frozen = x.copy()
    frozen.setflags(write=False)  # gathered with numpy instead of torch: the same lists
    np.testing.assert_array_equal(knn_ivf(frozen, 12, nlist=10, nprobe=2)[1], i_b)


def test_group_by_key_is_a_stable_counting_sort() -> None:
    """The counting sort that groups the probes by list equals a stable argsort with its
    group bounds, empty groups and an empty input included; by hand on a small case."""
    knn_mod = importlib.import_module("reid.cluster.knn")
    order, ptr = knn_mod._group_by_key(np.array([2, 0, 2, 3, 0], np.int32), 5)
    np.testing.assert_array_equal(order, [1, 4, 0, 2, 3])
    np.testing.assert_array_equal(ptr, [0, 2, 2, 4, 5, 5])
    rng = np.random.default_rng(0)
    for n, bins in ((0, 3), (1, 1), (5000, 97)):
        keys = rng.integers(0, bins, n).astype(np.int32)
        order, ptr = knn_mod._group_by_key(keys, bins)
        ref = np.argsort(keys, kind="stable")
        np.testing.assert_array_equal(order, ref)
        np.testing.assert_array_equal(ptr, np.searchsorted(keys[ref], np.arange(bins + 1)))


def test_blas_probing_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Centroids at 0, 10, 21, 33 on a line (fixed here instead of k-means), two points per
    list; nprobe 2: every query scans the two lists of its own two nearest centroids, and is
    itself a candidate of every member of those lists."""
    cents = np.array([[0.0, 0.0], [10.0, 0.0], [21.0, 0.0], [33.0, 0.0]], np.float32)
    _fixed_centroids(monkeypatch, cents)
    x = np.array([[p, 0.0] for p in (-1.0, 1.0, 9.0, 11.0, 20.0, 22.0, 32.0, 34.0)],
                 np.float32)
    dist, idx = knn_ivf(x, 3, nlist=4, nprobe=2, engine="blas")
    # 11 (row 3): centroids 10 (1) and 21 (10) -> candidates 9, 11, 20, 22 -> 11, 9, 20
    np.testing.assert_array_equal(idx[3], [3, 2, 4])
    np.testing.assert_allclose(dist[3], [0.0, 4.0, 81.0])
    # 1 (row 1): centroids 0 (1) and 10 (9) -> -1, 1, 9, 11 -> 1, -1, 9 (ties: 4 < 64)
    np.testing.assert_array_equal(idx[1], [1, 0, 2])
    np.testing.assert_allclose(dist[1], [0.0, 4.0, 64.0])
    # 22 (row 5): centroids 21 (1) and 33 (11) -> 20, 22, 32, 34 -> 22, 20, 32
    np.testing.assert_array_equal(idx[5], [5, 4, 6])
    # 34 (row 7): centroids 33 (1) and 21 (13) -> 34, 32, 22
    np.testing.assert_array_equal(idx[7], [7, 6, 5])
    # k = 4: 22 scans 20, 22, 32, 34 only, but 11 scans 22's list (centroid 21 is 11's
    # second), so the pair (11, 22) at 121 is also offered to 22 and beats 34 at 144.
    dist4, idx4 = knn_ivf(x, 4, nlist=4, nprobe=2, engine="blas")
    np.testing.assert_array_equal(idx4[5], [5, 4, 6, 3])
    np.testing.assert_allclose(dist4[5], [0.0, 4.0, 100.0, 121.0])
    np.testing.assert_array_equal(idx4[5], knn(x, 4)[1][5])  # = exact here
    _, idx_1 = knn_ivf(x, 3, nlist=4, nprobe=1, engine="blas")  # own list only: 2 points
    np.testing.assert_array_equal(idx_1[3], [3, 2, -1])
    _, idx_all = knn_ivf(x, 3, nlist=4, nprobe=4, engine="blas")  # every list: exact
    np.testing.assert_array_equal(idx_all, knn(x, 3)[1])


def test_ivf_path_gives_the_exact_labels_when_every_list_is_probed() -> None:
    x, ids = clustered(seed=1)
    exact = SelfPacedLabeler(k1=20, k2=6)
    ivf = SelfPacedLabeler(k1=20, k2=6, knn_method="ivf", knn_options={"nlist": 6, "nprobe": 6})
    lab_ex, st_ex = exact(x)
    lab_iv, _ = ivf(x)
    assert st_ex["num_clusters"] >= 30  # the set is really clustered
    np.testing.assert_array_equal(lab_iv, lab_ex)
    assert exact.threshold == ivf.threshold
    assert label_quality(lab_iv, ids)["ari"] > 0.9


def test_ivf_few_probes_is_approximate_but_close() -> None:
    x, _ = clustered(n_ids=60, seed=2)
    _, i_ex = knn(x, 20)
    _, i_iv = knn_ivf(x, 20, nlist=16, nprobe=2)
    r = knn_recall(i_iv, i_ex)
    assert 0.5 < r < 1.0
    assert (i_iv[:, 0] == np.arange(x.shape[0])).all()  # self first
    d_ex = jaccard_distance(x, k1=20, rank=i_ex)
    d_iv = jaccard_distance(x, k1=20, rank=i_iv)
    ari = adjusted_rand_score(dbscan(d_ex, 0.6, 4), dbscan(d_iv, 0.6, 4))
    assert ari > 0.8


def test_fp16_and_pq_stores_run() -> None:
    x, _ = clustered(seed=3)
    _, i_ex = knn(x, 10)
    _, i_16 = knn_ivf(x, 10, nlist=4, nprobe=4, fp16=True, engine="faiss")
    assert knn_recall(i_16, i_ex) > 0.97  # float16 rounding may swap near-ties only
    _, i_pq = knn_ivf(x, 10, nlist=4, nprobe=4, pq_m=8)
    assert knn_recall(i_pq, i_ex) > 0.5
    with pytest.raises(ValueError, match="divisible"):
        knn_ivf(x, 10, nlist=4, pq_m=5)


def test_knn_recall_hand_computed() -> None:
    exact = np.array([[0, 1, 2, 3],
                      [1, 0, 2, 3],
                      [2, 3, 1, 0]])
    approx = np.array([[0, 1, 3, 9],  # 3 of 4 (order does not matter)
                       [1, 5, 6, 7],  # 1 of 4
                       [2, 0, -1, -1]])  # 2 of 4; -1 never matches
    assert knn_recall(approx, exact) == pytest.approx(6 / 12)
    # k = 2: row 0 {0,1} vs {0,1}: 2; row 1 {1,5} vs {1,0}: 1; row 2 {2,0} vs {2,3}: 1
    assert knn_recall(approx, exact, k=2) == pytest.approx(4 / 6)
    # without the query itself: row 0 {1,3,9} vs {1,2,3}: 2; row 1: 0; row 2 {0} vs {3,1,0}: 1
    assert knn_recall(approx, exact, skip_self=True) == pytest.approx(3 / 9)
    with pytest.raises(ValueError):
        knn_recall(approx[:2], exact)


def test_ari_of_pseudo_labels_hand_computed() -> None:
    # a = [0,0,0,1,1,-1] (the outlier is a singleton) against b = [0,0,1,1,1,2]:
    # same-in-both pairs: (0,1) and (3,4) = 2; a-pairs C(3,2)+C(2,2) = 4; b-pairs C(2,2)+C(3,2)
    # = 4; all pairs C(6,2) = 15; expected 4*4/15 = 16/15;
    # ARI = (2 - 16/15) / ((4 + 4)/2 - 16/15) = (14/15) / (44/15) = 14/44
    a = np.array([0, 0, 0, 1, 1, -1])
    b = np.array([0, 0, 1, 1, 1, 2])
    assert label_quality(a, b)["ari"] == pytest.approx(14 / 44)
    # the IVF-vs-exact measure: outliers are singletons on either side, and it is symmetric
    assert partition_ari(a, b) == pytest.approx(14 / 44) == partition_ari(b, a)
    assert partition_ari(np.array([-1, -1, 0, 0]), np.array([3, 4, 1, 1])) == 1.0


def test_streamed_query_expansion_is_identical() -> None:
    x, _ = clustered(seed=4)
    _, rank = knn(x, 20)
    v = sparse_v_qe(x, rank, 20, 1)
    full = query_expand(v, rank[:, :6])
    for block in (1, 7, 100, 10_000):
        part = query_expand_blocked(v, rank[:, :6], block)
        np.testing.assert_array_equal(part.indptr, full.indptr)
        np.testing.assert_array_equal(part.indices, full.indices)
        np.testing.assert_array_equal(part.data, full.data)  # bit for bit


@pytest.mark.parametrize("block", [17, 250, 100_000])
def test_streamed_jaccard_equals_in_memory(block: int) -> None:
    x, _ = clustered(seed=5)
    full = jaccard_distance(x, k1=20, k2=6)
    streamed = jaccard_distance(x, k1=20, k2=6, block_rows=block)
    assert streamed.shape == full.shape
    np.testing.assert_array_equal(streamed.indptr, full.indptr)
    np.testing.assert_array_equal(streamed.indices, full.indices)
    np.testing.assert_array_equal(streamed.data, full.data)  # exact equality, no tolerance


def test_streamed_jaccard_with_cut_keeps_exactly_the_small_entries() -> None:
    x, _ = clustered(seed=6)
    full = jaccard_distance(x, k1=20, k2=6).tocoo()
    cut = jaccard_distance(x, k1=20, k2=6, block_rows=50, max_distance=0.62)
    keep = (full.data <= 0.62) | (full.row == full.col)
    ref = sp.csr_matrix((full.data[keep], (full.row[keep], full.col[keep])), shape=full.shape)
    np.testing.assert_array_equal(cut.indptr, ref.indptr)
    np.testing.assert_array_equal(cut.indices, ref.indices)
    np.testing.assert_array_equal(cut.data, ref.data)
    assert cut.nnz < full.nnz
    assert (cut.diagonal() == 0).all()
    for eps in (0.58, 0.6, 0.62):
        np.testing.assert_array_equal(dbscan(cut, eps, 4), dbscan(full.tocsr(), eps, 4))
    x = l2_normalize(x)  # what jaccard_distance clusters
    v_qe = sparse_v_qe(x, knn(x, 20)[1], 20, 6)
    np.testing.assert_array_equal(jaccard_all(v_qe, max_distance=0.62).data, cut.data)


def test_config_keys_reach_the_labeler() -> None:
    cfg = get_cfg()
    assert (cfg.CLUSTER.KNN, cfg.CLUSTER.IVF_NLIST, cfg.CLUSTER.IVF_NPROBE,
            cfg.CLUSTER.BLOCK_ROWS, cfg.CLUSTER.IVF_SPHERICAL) == ("exact", 0, 44, 0, False)
    cfg.merge_from_list(["CLUSTER.KNN", "ivf", "CLUSTER.IVF_NLIST", "6", "CLUSTER.IVF_NPROBE",
                         "6", "CLUSTER.BLOCK_ROWS", "64", "CLUSTER.K1", "20"])
    labeler = build_pseudo_labeler(cfg)
    assert labeler.knn_method == "ivf" and labeler.block_rows == 64
    assert labeler.knn_options == {"nlist": 6, "nprobe": 6, "fp16": False, "pq_m": 0,
                                   "spherical": False}
    x, _ = clustered(seed=1)
    lab, _ = labeler(x)
    ref, _ = SelfPacedLabeler(k1=20, k2=6)(x)
    np.testing.assert_array_equal(lab, ref)
    with pytest.raises(ValueError, match="kNN method"):
        search_knn(x, 5, method="hnsw")


def test_faiss_gpu_probe_fails_cleanly_without_gpu_kernels(caplog) -> None:
    """The probe runs a faiss GPU search in a child process; here (faiss without a usable GPU)
    the child fails, the answer is False and the warning says what to install."""
    knn_mod = importlib.import_module("reid.cluster.knn")  # reid.cluster.knn is a function

    knn_mod.faiss_gpu_kernels_run.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="reid.cluster.knn"):
            assert knn_mod.faiss_gpu_kernels_run() is False
        assert "GPU kernels do not run" in caplog.text and "conda's faiss-gpu" in caplog.text
    finally:
        knn_mod.faiss_gpu_kernels_run.cache_clear()


def test_faiss_gpu_available_needs_the_probe(monkeypatch) -> None:
    """A faiss with GPU support and a visible GPU is used only when its kernels run there."""
    knn_mod = importlib.import_module("reid.cluster.knn")  # reid.cluster.knn is a function

    class GpuFaiss:
        StandardGpuResources = object

        @staticmethod
        def get_num_gpus() -> int:
            return 1

    monkeypatch.setattr(knn_mod, "faiss", GpuFaiss)
    monkeypatch.setattr(knn_mod, "faiss_gpu_kernels_run", lambda: False)
    assert knn_mod.faiss_gpu_available() is False
    monkeypatch.setattr(knn_mod, "faiss_gpu_kernels_run", lambda: True)
    assert knn_mod.faiss_gpu_available() is True
    monkeypatch.setattr(GpuFaiss, "get_num_gpus", staticmethod(lambda: 0))
    assert knn_mod.faiss_gpu_available() is False


def test_auto_knn_on_cuda_without_faiss_gpu_takes_the_torch_path(monkeypatch) -> None:
    """backend "auto": a CUDA device without a usable faiss-GPU runs the exact torch search on
    that device (not faiss's CPU search); the CPU keeps faiss. The paths are stubbed to record
    the choice (no GPU here)."""
    knn_mod = importlib.import_module("reid.cluster.knn")
    chosen = []
    real_faiss = knn_mod._knn_faiss

    def fake_torch(x, k, device):
        chosen.append(("torch", str(device)))
        return real_faiss(x, k, False)

    def fake_faiss(x, k, gpu):
        chosen.append(("faiss", gpu))
        return real_faiss(x, k, False)

    monkeypatch.setattr(knn_mod, "_knn_torch", fake_torch)
    monkeypatch.setattr(knn_mod, "_knn_faiss", fake_faiss)
    monkeypatch.setattr(knn_mod, "faiss_gpu_available", lambda: False)
    x, _ = clustered(n_ids=5, per_id=4, noise=0)
    knn(x, 3, device="cuda")
    knn(x, 3, device="cpu")
    knn(x, 3, device="cuda", backend="faiss")
    monkeypatch.setattr(knn_mod, "faiss_gpu_available", lambda: True)
    knn(x, 3, device="cuda")
    assert chosen == [("torch", "cuda"), ("faiss", False), ("faiss", False), ("faiss", True)]


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_cluster", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cluster.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_repeat_takes_the_median_runs(monkeypatch) -> None:
    """bench_cluster --repeat 3: the methods run in turn, each row is its median-time run, the
    ratio is between medians, and recall / ARI come from the first round's saved lists."""
    import argparse

    bench = _bench_module()
    times = {"exact": [50.0, 40.0, 44.0], "ivf": [9.0, 7.0, 8.0]}
    order = []
    exact_rank = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    ivf_rank = np.array([[0, 1, 2], [1, 0, 3], [2, 1, 0], [3, 2, 1]])
    labels = {"exact": np.array([0, 0, 1, 1]), "ivf": np.array([0, 0, 1, -1])}

    def fake_run(args, method, n, save):
        rep = sum(m == method for m in order)
        order.append(method)
        if save:
            np.save(save + "_rank.npy", exact_rank if method == "exact" else ivf_rank)
            np.save(save + "_labels.npy", labels[method])
        t = times[method][rep]
        return {"method": method, "n": n, "total_s": t, "total_cpu_s": 2 * t, "rep": rep}

    monkeypatch.setattr(bench, "_run_row", fake_run)
    args = argparse.Namespace(sizes=[4], methods=["exact", "ivf"], exact_max=10, repeat=3)
    rows = bench.scale_rows(args)
    assert order == ["exact", "ivf"] * 3
    assert [r["rep"] for r in rows] == [2, 2]  # 44 of (50, 40, 44); 8 of (9, 7, 8)
    assert rows[0]["total_runs"] == [50.0, 40.0, 44.0]
    assert rows[1]["speedup"] == pytest.approx(44.0 / 8.0)
    assert rows[1]["cpu_speedup"] == pytest.approx(88.0 / 16.0)
    assert rows[1]["recall"] == pytest.approx(11 / 12)  # row 1 lost one of its three
    assert rows[1]["ari_vs_exact"] == pytest.approx(partition_ari(labels["ivf"], labels["exact"]))


def test_tiled_real_features_keep_each_tiles_geometry(tmp_path) -> None:
    """benchmarks/bench_cluster.py's real-feature tiling: tile 0 is the centred, PCA-reduced,
    L2-normalised real set; tile 1 its rotation (same Gram matrix with noise 0); identities
    come from (tile, folder, the file name's first 4 digits)."""
    bench = _bench_module()
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((30, 12)).astype(np.float32)
    paths = [f"a/{i // 3:04d}_{i % 3:02d}.jpg" for i in range(20)]
    paths += [f"b/{i // 5:04d}{i % 5:03d}.png" for i in range(10)]
    np.savez(tmp_path / "f.npz", features=feats, paths=np.array(paths))
    x, ids = bench.tiled_real_features(str(tmp_path / "f.npz"), 60, 8, noise=0.0)
    assert x.shape == (60, 8) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    c = feats.astype(np.float64) - feats.mean(0)
    y = c @ np.linalg.svd(c, full_matrices=False)[2][:8].T
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(x[:30] @ x[:30].T, y @ y.T, atol=1e-5)
    np.testing.assert_allclose(x[30:] @ x[30:].T, y @ y.T, atol=1e-5)
    assert np.abs(x[30:] - x[:30]).max() > 0.1  # rotated, not copied
    want = [i // 3 for i in range(20)] + [7 + i // 5 for i in range(10)]  # 7 ids in a/
    np.testing.assert_array_equal(ids[:30], want)
    np.testing.assert_array_equal(ids[30:], np.array(want) + 9)  # 9 ids per tile
