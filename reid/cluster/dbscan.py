"""DBSCAN on a sparse precomputed distance graph, on the CPU (scipy) and on any torch device.

Both implementations return exactly the labels of
``sklearn.cluster.DBSCAN(eps, min_samples, metric="precomputed").fit_predict(dense)`` for a
symmetric graph, ``dense`` being the graph with absent entries filled with ``absent_distance``:

* neighbours of i: stored entries ``<= eps`` of row i (explicit zeros included) plus i itself;
  ``min_samples`` counts i itself, as scikit-learn does;
* core points: at least ``min_samples`` neighbours; clusters: connected components of the graph
  restricted to core points;
* clusters are numbered 0..C-1 by their smallest *core* index, which is scikit-learn's order (it
  starts a cluster at each not-yet-labelled core point in index order);
* a border point (non-core with core neighbours) reachable from several clusters joins the one
  with the smallest number; scikit-learn does the same, since it expands a whole cluster
  (reaching all its border points) before starting the next one. Other points are -1.

Absent entries mean "distance ``absent_distance``" (1.0 for the Jaccard distance), so
``eps >= absent_distance`` would make every pair neighbours: it raises ``ValueError``.
An asymmetric graph is symmetrised by union (j is a neighbour of i if either entry is <= eps).
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from reid.utils.progress import progress

logger = logging.getLogger(__name__)

__all__ = ["dbscan", "dbscan_cpu", "dbscan_torch", "neighbour_graph"]


def neighbour_graph(dist: sp.spmatrix | np.ndarray, eps: float,
                    absent_distance: float = 1.0) -> sp.csr_matrix:
    """Boolean symmetric (N, N) CSR adjacency of pairs at distance <= eps, diagonal included.

    Args:
        dist: (N, N) sparse distance graph (absent = ``absent_distance``) or dense array.
        eps: neighbourhood radius, same unit as ``dist``; must be < ``absent_distance`` for a
            sparse graph.

    Raises:
        ValueError: non-square input, NaN distances, or ``eps >= absent_distance`` (sparse).
    """
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distance graph must be square (N, N), got shape {dist.shape}")
    if not np.isfinite(eps):
        raise ValueError(f"eps must be finite, got {eps}")
    n = dist.shape[0]
    if sp.issparse(dist):
        if eps >= absent_distance:
            raise ValueError(
                f"eps={eps} >= absent_distance={absent_distance}: every absent pair of the sparse "
                "graph would be a neighbour; use eps < absent_distance (Jaccard: eps < 1)")
        coo = dist.tocoo()
        if np.isnan(coo.data).any():
            raise ValueError("distance graph contains NaN entries")
        keep = coo.data <= eps
        rows, cols = coo.row[keep], coo.col[keep]
    else:
        arr = np.asarray(dist)
        if np.isnan(arr).any():
            raise ValueError("distance matrix contains NaN entries")
        rows, cols = np.nonzero(arr <= eps)
    diag = np.arange(n, dtype=np.int64)
    all_rows = np.concatenate([rows, cols, diag]).astype(np.int64)
    all_cols = np.concatenate([cols, rows, diag]).astype(np.int64)
    adj = sp.csr_matrix((np.ones(all_rows.size, np.bool_), (all_rows, all_cols)), shape=(n, n))
    adj.sum_duplicates()
    adj.sort_indices()
    return adj


def _check_params(eps: float, min_samples: int) -> None:
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def dbscan_cpu(dist: sp.spmatrix | np.ndarray, eps: float, min_samples: int,
               absent_distance: float = 1.0) -> np.ndarray:
    """DBSCAN with scipy: connected components of the core graph, then border assignment.

    Returns:
        (N,) int64 labels, clusters 0..C-1 ordered by smallest core index, -1 for noise.
    """
    _check_params(eps, min_samples)
    adj = neighbour_graph(dist, eps, absent_distance)
    n = adj.shape[0]
    degree = np.diff(adj.indptr)
    core = degree >= min_samples
    labels = np.full(n, -1, np.int64)
    core_idx = np.flatnonzero(core)
    if core_idx.size == 0:
        return labels
    sub = adj[core_idx][:, core_idx]
    _, comp = connected_components(sub, directed=False)
    first = np.full(comp.max() + 1, n, np.int64)
    np.minimum.at(first, comp, core_idx)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels[core_idx] = rank[comp]
    coo = adj.tocoo()
    border = (~core[coo.row]) & core[coo.col]
    if border.any():
        best = np.full(n, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(best, coo.row[border], labels[coo.col[border]])
        has = best < np.iinfo(np.int64).max
        labels[has] = best[has]
    return labels


def dbscan_torch(dist: sp.spmatrix | np.ndarray, eps: float, min_samples: int,
                 device: str | torch.device | None = None, absent_distance: float = 1.0
                 ) -> np.ndarray:
    """DBSCAN in torch (runs on the GPU when ``device`` is CUDA), same labels as :func:`dbscan_cpu`.

    Core points come from the degree; components among core points by min-label propagation
    with pointer jumping (each core point converges to the smallest core index of its
    component); border points take the smallest cluster number among their core neighbours.
    """
    _check_params(eps, min_samples)
    adj = neighbour_graph(dist, eps, absent_distance).tocoo()
    n = adj.shape[0]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    row = torch.from_numpy(adj.row.astype(np.int64)).to(dev)
    col = torch.from_numpy(adj.col.astype(np.int64)).to(dev)
    degree = torch.bincount(row, minlength=n)
    core = degree >= min_samples
    labels = torch.full((n,), -1, dtype=torch.int64, device=dev)
    if not bool(core.any()):
        return labels.cpu().numpy()
    cc = core[row] & core[col]
    src, dst = row[cc], col[cc]
    lab = torch.arange(n, device=dev)
    while True:
        new = lab.scatter_reduce(0, dst, lab[src], reduce="amin", include_self=True)
        new = new[new]
        if torch.equal(new, lab):
            break
        lab = new
    roots, inverse = torch.unique(lab[core], sorted=True, return_inverse=True)
    labels[core] = inverse
    bd = (~core[row]) & core[col]
    if bool(bd.any()):
        big = torch.iinfo(torch.int64).max
        best = torch.full((n,), big, dtype=torch.int64, device=dev)
        best = best.scatter_reduce(0, row[bd], labels[col[bd]], reduce="amin", include_self=True)
        has = best < big
        labels[has] = best[has]
    return labels.cpu().numpy()


def dbscan(dist: sp.spmatrix | np.ndarray, eps: float, min_samples: int,
           device: str | torch.device | None = None, absent_distance: float = 1.0) -> np.ndarray:
    """DBSCAN on a precomputed (sparse) distance graph; identical to scikit-learn's labels.

    Args:
        dist: (N, N) scipy sparse distances (absent entries = ``absent_distance``; e.g. the
            output of :func:`reid.cluster.jaccard_distance`) or a dense array.
        eps: radius (inclusive, ``<= eps``); must be < ``absent_distance`` for sparse input.
        min_samples: neighbours (the point itself included) that make a core point.
        device: None or a CPU device runs the scipy implementation; a CUDA device the torch one.

    Returns:
        (N,) int64 labels 0..C-1 ordered by each cluster's smallest core index; -1 = noise.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with progress(total=1, desc=f"DBSCAN (N={dist.shape[0]}, eps={eps})") as bar:
        if dev.type == "cpu":
            labels = dbscan_cpu(dist, eps, min_samples, absent_distance)
        else:
            labels = dbscan_torch(dist, eps, min_samples, dev, absent_distance)
        bar.update(1)
    return labels
