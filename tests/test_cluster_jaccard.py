"""Sparse Jaccard distance, kNN and re-ranking against straightforward dense references."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reid.cluster import jaccard_distance, knn, rerank_distance


def _normalize(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recip(rank, i, k):
    ncols = min(k + 1, rank.shape[1])
    fwd = rank[i, :ncols]
    return np.array([j for j in fwd if i in rank[j, :ncols]], dtype=np.int64)


def dense_jaccard_reference(x, rank, k1, k2):
    """Plain dense implementation of the definitions (V, V_qe and d_J as N x N arrays)."""
    x = _normalize(x).astype(np.float64)
    n, kc = rank.shape
    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r = _recip(rank, i, k1)
        expansion = list(r)
        for c in r:
            rc = _recip(rank, c, half)
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                expansion += list(rc)
        expansion = np.unique(expansion)
        d = 2 - 2 * x[i] @ x[expansion].T
        w = np.exp(-d)
        v[i, expansion] = w / w.sum()
    k2 = min(k2, kc)
    v_qe = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.ones((n, n))
    for i in range(n):
        m = np.minimum(v_qe[i][None, :], v_qe).sum(1)
        jac[i] = 1 - m / (2 - m)
    return np.clip(jac, 0, None), v_qe


def _to_dense(dist):
    coo = dist.tocoo()
    out = np.ones(dist.shape)
    out[coo.row, coo.col] = coo.data
    return out


def _clustered(rng, n, d, centres, noise):
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + noise * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("kind,n,k1,k2,plus_one", [
    ("random", 150, 30, 6, False),
    ("clustered", 200, 30, 6, False),
    ("clustered", 180, 20, 6, True),
    ("clustered", 120, 5, 3, False),
    ("random", 12, 30, 6, False),
])
def test_sparse_jaccard_matches_dense_reference(kind, n, k1, k2, plus_one):
    rng = np.random.default_rng(n + k1)
    x = rng.normal(size=(n, 16)).astype(np.float32) if kind == "random" else \
        _clustered(rng, n, 16, 8, 0.4)
    kc = min(n, k1 + 1 if plus_one else k1)
    _, rank = knn(_normalize(x), kc)
    dist = jaccard_distance(x, k1=k1, k2=k2, k1_plus_one=plus_one, rank=rank)
    ref, v_qe = dense_jaccard_reference(x, rank, k1, k2)
    assert isinstance(dist, sp.csr_matrix) and dist.shape == (n, n)
    np.testing.assert_allclose(_to_dense(dist), ref, atol=1e-5)
    stored = np.zeros((n, n), bool)
    coo = dist.tocoo()
    stored[coo.row, coo.col] = True
    overlap = (v_qe > 0).astype(float) @ (v_qe > 0).T.astype(float) > 0
    np.testing.assert_array_equal(stored, overlap)
    assert (dist.data < 1).all() and np.all(dist.diagonal() == 0)
    assert (abs(dist - dist.T)).max() == 0
    if kind == "clustered" and n > 100:
        assert dist.nnz < 0.6 * n * n


@pytest.mark.parametrize("block_rows,max_distance", [(0, None), (130, None), (130, 0.62)])
def test_upper_triangle_and_mirror_equal_every_row_in_full(block_rows, max_distance):
    """jaccard_all computes the j >= i half and mirrors it: bit-identical to computing every
    row in full (entries, explicit zeros and order), and the half holds no j < i."""
    from reid.cluster.jaccard import jaccard_all, jaccard_rows, sparse_v_qe

    rng = np.random.default_rng(11)
    x = _normalize(_clustered(rng, 600, 16, 30, 0.5))
    _, rank = knn(x, 20)
    v = sparse_v_qe(x, rank, 20, 6)
    rows = np.arange(600, dtype=np.int64)
    full = jaccard_rows(v, rows)
    owner = np.repeat(rows, np.diff(full.indptr))
    full.data[full.indices == owner] = 0.0
    half = jaccard_rows(v, rows, upper=True)
    assert (half.indices >= np.repeat(rows, np.diff(half.indptr))).all()
    assert half.nnz == (full.nnz + 600) // 2
    if max_distance is not None:
        keep = (full.data <= max_distance) | (full.indices == owner)
        assert 600 < keep.sum() < keep.size  # the cut removes entries and keeps some
        indptr = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=600))])
        full = sp.csr_matrix((full.data[keep], full.indices[keep], indptr), shape=full.shape)
    got = jaccard_all(v, block_rows=block_rows, max_distance=max_distance)
    np.testing.assert_array_equal(got.indptr, full.indptr)
    np.testing.assert_array_equal(got.indices, full.indices)
    np.testing.assert_array_equal(got.data, full.data)
    assert (got.data == 0).sum() > 600  # zero distances are stored, not dropped
    with pytest.raises(ValueError, match="columns=None"):
        jaccard_rows(v, rows, columns=v, upper=True)


def test_symmetric_from_upper_by_hand():
    from reid.cluster.jaccard import _symmetric_from_upper

    # upper rows: 0 -> {0: 0, 2: .5}, 1 -> {1: 0, 2: .25, 3: 0}, 2 -> {2: 0}, 3 -> {3: 0}
    uptr = np.array([0, 2, 5, 6, 7])
    uidx = np.array([0, 2, 1, 2, 3, 2, 3], np.int32)
    udata = np.array([0, .5, 0, .25, 0, 0, 0], np.float32)
    got = _symmetric_from_upper(uptr, uidx, udata)
    np.testing.assert_array_equal(got.indptr, [0, 2, 5, 8, 10])
    np.testing.assert_array_equal(got.indices, [0, 2, 1, 2, 3, 0, 1, 2, 1, 3])
    np.testing.assert_array_equal(got.data, [0, .5, 0, .25, 0, .5, .25, 0, 0, 0])
    with pytest.raises(RuntimeError, match="diagonal"):
        _symmetric_from_upper(uptr, uidx[[1, 0, 2, 3, 4, 5, 6]], udata)


def test_jaccard_search_and_clipping_to_n():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5))
    dist = jaccard_distance(x, k1=30, k2=6)
    _, rank = knn(_normalize(x), 7)
    ref, _ = dense_jaccard_reference(x, rank, 30, 6)
    np.testing.assert_allclose(_to_dense(dist), ref, atol=1e-5)


def test_jaccard_edge_cases():
    one = jaccard_distance(np.ones((1, 4)), k1=30, k2=6)
    assert one.shape == (1, 1) and one.nnz == 1 and one[0, 0] == 0
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        jaccard_distance(x)
    x[7] = 0
    with pytest.raises(ValueError, match="row 7"):
        jaccard_distance(x)
    dup = np.repeat(np.random.default_rng(1).normal(size=(5, 8)), 6, axis=0)
    same = np.repeat(np.arange(5), 6)[:, None] == np.repeat(np.arange(5), 6)[None, :]
    # k1 = group size: every kNN list is exactly the group, so duplicates are at distance 0
    dense = _to_dense(jaccard_distance(dup, k1=6, k2=3))
    assert np.abs(dense[same]).max() < 1e-6 and dense[~same].min() > 0.9
    # larger k1: lists cut through the tied duplicates of another group (tie order decides
    # which ones), so duplicates are close but not at exactly 0
    dense = _to_dense(jaccard_distance(dup, k1=10, k2=3))
    assert dense[same].max() < 0.3 and dense[~same].min() > dense[same].max()


def test_knn_paths_agree_and_self_first():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 24)).astype(np.float32)
    d_f, i_f = knn(x, 10, backend="faiss")
    d_t, i_t = knn(torch.from_numpy(x), 10, backend="torch")
    brute = ((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    ref_i = np.argsort(brute, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(i_f, ref_i)
    np.testing.assert_array_equal(i_t, ref_i)
    np.testing.assert_allclose(d_f, np.take_along_axis(brute, ref_i, 1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(d_t, d_f, rtol=1e-4, atol=1e-3)
    assert d_f.dtype == np.float32 and i_f.dtype == np.int64
    assert np.all(np.diff(d_f, axis=1) >= 0)
    dup = np.repeat(x[:4], 5, axis=0)
    for backend in ("faiss", "torch"):
        d, i = knn(dup, 3, backend=backend)
        np.testing.assert_array_equal(i[:, 0], np.arange(20))
        assert np.all(d[:, 0] == 0) and d.max() < 1e-4
        assert np.all(i // 5 == np.arange(20)[:, None] // 5)
    with pytest.raises(ValueError):
        knn(x, 301)


@pytest.mark.parametrize("block", [7, 64, 299, 4096])
def test_blocked_symmetric_torch_knn_equals_brute_force(block):
    """The torch path computes each distance tile once for both row ranges; any block size
    (uneven last blocks, k larger than a block) gives the brute-force lists."""
    from reid.cluster.knn import _knn_torch

    rng = np.random.default_rng(block)
    x = rng.normal(size=(299, 12)).astype(np.float32)
    d, i = _knn_torch(x, 9, torch.device("cpu"), block=block)
    brute = ((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.fill_diagonal(brute, -1.0)
    ref_i = np.argsort(brute, axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(d[:, 1:], np.take_along_axis(brute, ref_i, 1)[:, 1:], rtol=1e-4,
                               atol=1e-4)


def test_rerank_matches_dense_reference():
    rng = np.random.default_rng(11)
    feats = _clustered(rng, 90, 12, 6, 0.5)
    q, g = feats[:25], feats[25:]
    out = rerank_distance(q, g, k1=20, k2=6, lambda_value=0.3)
    x = _normalize(feats)
    _, rank = knn(x, 21)
    jac, _ = dense_jaccard_reference(feats, rank, 20, 6)
    d_orig = np.maximum(2 - 2 * x[:25].astype(np.float64) @ x[25:].T, 0)
    ref = 0.7 * jac[:25, 25:] + 0.3 * d_orig
    assert out.shape == (25, 65) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(rerank_distance(q, g, lambda_value=1.0), d_orig, atol=1e-5)
