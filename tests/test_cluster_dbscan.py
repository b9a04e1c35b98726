"""Sparse DBSCAN (scipy and torch paths) against scikit-learn on the dense equivalent."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

from reid.cluster import dbscan, dbscan_cpu, dbscan_torch


def _random_graph(rng, n, density, zero_frac=0.05):
    mask = np.triu(rng.random((n, n)) < density, 1)
    vals = rng.random((n, n)).astype(np.float32)
    vals[rng.random((n, n)) < zero_frac] = 0.0
    rows, cols = np.nonzero(mask)
    data = vals[rows, cols]
    g = sp.coo_matrix((np.concatenate([data, data]), (np.concatenate([rows, cols]),
                       np.concatenate([cols, rows]))), shape=(n, n)).tocsr()
    dense = np.ones((n, n))
    dense[rows, cols] = data
    dense[cols, rows] = data
    np.fill_diagonal(dense, 0.0)
    return g, dense


def test_dbscan_matches_sklearn_on_random_graphs():
    rng = np.random.default_rng(0)
    checked_borders = 0
    for trial in range(120):
        n = int(rng.integers(5, 90))
        g, dense = _random_graph(rng, n, float(rng.choice([0.02, 0.05, 0.1, 0.3])))
        eps = float(rng.choice([1e-9, 0.2, 0.5, 0.8, 0.99]))
        ms = int(rng.integers(1, 7))
        ref = DBSCAN(eps=eps, min_samples=ms, metric="precomputed").fit_predict(dense)
        cpu = dbscan_cpu(g, eps, ms)
        tch = dbscan_torch(g, eps, ms, device="cpu")
        assert cpu.dtype == np.int64 and tch.dtype == np.int64
        np.testing.assert_array_equal(cpu, ref, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(tch, ref, err_msg=f"trial {trial}")
        adj = dense <= eps
        core = adj.sum(1) >= ms
        checked_borders += int(((~core) & ((adj[:, core]).sum(1) >= 2)).sum())
    assert checked_borders > 20


def test_dbscan_hand_computed_border_rule():
    # cliques {0,1,2,3} and {5,6,7,8}; point 4 touches core 3 and core 5 (a border of both,
    # sklearn gives it to the cluster started first); 9-10 is an isolated pair
    clique = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    edges = clique + [(a + 5, b + 5) for a, b in clique] + [(3, 4), (4, 5), (9, 10)]
    n = 11
    rows = [a for a, b in edges] + [b for a, b in edges]
    cols = [b for a, b in edges] + [a for a, b in edges]
    g = sp.csr_matrix((np.full(len(rows), 0.1), (rows, cols)), shape=(n, n))
    expected = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1])
    for fn in (dbscan_cpu, dbscan_torch):
        np.testing.assert_array_equal(fn(g, 0.5, 4), expected)
    # with min_samples 3 point 4 (3 neighbours counting itself) is core and merges both cliques
    np.testing.assert_array_equal(dbscan(g, 0.5, 3), [0] * 9 + [-1, -1])
    np.testing.assert_array_equal(dbscan(g, 0.5, 2), [0] * 9 + [1, 1])
    np.testing.assert_array_equal(dbscan(g, 0.05, 1), np.arange(n))
    np.testing.assert_array_equal(dbscan(g, 0.05, 2), np.full(n, -1))


def test_dbscan_dense_input_and_errors():
    rng = np.random.default_rng(2)
    g, dense = _random_graph(rng, 40, 0.2)
    ref = DBSCAN(eps=0.5, min_samples=3, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(dbscan(dense, 0.5, 3), ref)
    with pytest.raises(ValueError, match="absent_distance"):
        dbscan(g, 1.0, 3)
    with pytest.raises(ValueError, match="square"):
        dbscan(sp.csr_matrix((3, 4)), 0.5, 3)
    bad = g.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dbscan(bad, 0.5, 3)
    assert dbscan(sp.csr_matrix((1, 1)), 0.5, 4).tolist() == [-1]
    assert dbscan(sp.csr_matrix((1, 1)), 0.5, 1).tolist() == [0]
