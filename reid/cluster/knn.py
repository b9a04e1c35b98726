"""Exact k-nearest-neighbour search on the squared Euclidean distance.

One entry point, :func:`knn`, with three interchangeable paths: faiss on the GPU (when ``device``
is CUDA and faiss was built with GPU support), faiss on the CPU, and a blocked ``torch.topk``
path that runs on any torch device. All paths are exact (brute force) and return the same lists
up to ties.

Tie handling: neighbours at *exactly* equal distance (duplicated features) may come in a
different order on different backends, and floating-point rounding of the matrix product differs
between BLAS kernels, so two neighbours whose distances differ by ~1e-7 may swap. The one tie
that is fixed on every path is the query itself: it is always in column 0 with distance 0, even
when duplicates of it exist (a duplicate found before it is moved back one place; if ``k``
duplicates hide it, the last neighbour is dropped to make room).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from reid.utils.progress import progress

logger = logging.getLogger(__name__)

__all__ = ["knn", "as_float32_matrix", "faiss_gpu_available"]

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a hard dependency, kept optional here
    faiss = None


def faiss_gpu_available() -> bool:
    """True when faiss is importable, has GPU support and sees at least one GPU."""
    return (faiss is not None and hasattr(faiss, "StandardGpuResources")
            and faiss.get_num_gpus() > 0)


def as_float32_matrix(features: np.ndarray | torch.Tensor, name: str = "features") -> np.ndarray:
    """Return ``features`` as a C-contiguous float32 (N, D) numpy array, checked for NaN/inf.

    Raises:
        ValueError: not 2-D, empty, or a non-finite value (the first offending row is named).
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float32).numpy()
    arr = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name} contain NaN or inf in {bad.size} row(s), first at row {bad[0]}")
    return arr


def _put_self_first(dist: np.ndarray, idx: np.ndarray) -> None:
    """In place: make column 0 of every row the query itself with distance 0; clamp to >= 0."""
    np.maximum(dist, 0.0, out=dist)
    n, k = idx.shape
    bad = np.flatnonzero(idx[:, 0] != np.arange(n))
    for i in bad:
        pos = np.flatnonzero(idx[i] == i)
        p = pos[0] if pos.size else k - 1
        idx[i, 1:p + 1] = idx[i, 0:p].copy()
        dist[i, 1:p + 1] = dist[i, 0:p].copy()
        idx[i, 0] = i
    dist[:, 0] = 0.0


def _knn_faiss(x: np.ndarray, k: int, gpu: bool) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatL2(x.shape[1])
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    index.add(x)
    dist, idx = index.search(x, k)
    return dist.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)


def _merge_topk(best_d: torch.Tensor, best_i: torch.Tensor, rows: slice, val: torch.Tensor,
                ind: torch.Tensor) -> None:
    """In place: keep the k smallest of ``best_d[rows]`` and the candidates ``val`` / ``ind``."""
    k = best_d.shape[1]
    cat_d = torch.cat([best_d[rows], val], dim=1)
    cat_i = torch.cat([best_i[rows], ind], dim=1)
    v, pos = torch.topk(cat_d, k, dim=1, largest=False, sorted=True)
    best_d[rows] = v
    best_i[rows] = torch.gather(cat_i, 1, pos)


def _knn_torch(x: np.ndarray, k: int, device: torch.device,
               block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Blocked all-pairs search that computes each distance block once and uses it for both of
    its row ranges (the distance matrix is symmetric): half the matrix-product work of a plain
    search, with memory of one ``block x block`` tile plus the (N, k) running results."""
    feats = torch.from_numpy(x).to(device)
    sq = (feats * feats).sum(1)
    n = feats.shape[0]
    best_d = torch.full((n, k), float("inf"), device=device)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=device)
    for a in progress(range(0, n, block), desc=f"kNN (k={k}, N={n})"):
        ra = slice(a, min(n, a + block))
        for b in range(a, n, block):
            rb = slice(b, min(n, b + block))
            d = sq[ra, None] + sq[None, rb] - 2.0 * (feats[ra] @ feats[rb].T)
            if a == b:
                d.fill_diagonal_(-float("inf"))  # the query itself comes first
            val, ind = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
            _merge_topk(best_d, best_i, ra, val, ind + b)
            if a != b:
                val, ind = torch.topk(d.T, min(k, d.shape[0]), dim=1, largest=False, sorted=True)
                _merge_topk(best_d, best_i, rb, val, ind + a)
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def knn(features: np.ndarray | torch.Tensor, k: int, device: str | torch.device | None = None,
        backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row among all rows (the row itself included).

    Args:
        features: (N, D) float features (numpy or torch; any device). Not normalised here.
        k: neighbours per row, 1 <= k <= N; the row itself counts as the first neighbour.
        device: torch device for the torch path and for choosing faiss-GPU; None = CPU.
        backend: "auto" (faiss-GPU if ``device`` is CUDA and available, else faiss-CPU, else
            torch), "faiss" or "torch".

    Returns:
        ``(distances, indices)``: (N, k) float32 squared Euclidean distances sorted ascending
        (clamped at 0; column 0 is exactly 0) and (N, k) int64 indices with ``indices[i, 0] == i``.

    Raises:
        ValueError: bad ``k``/``backend``, NaN features; RuntimeError: faiss requested but absent.
    """
    x = as_float32_matrix(features)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got {k}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if backend not in ("auto", "faiss", "torch"):
        raise ValueError(f"knn backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    if backend == "faiss" and faiss is None:
        raise RuntimeError("knn backend 'faiss' requested but faiss is not installed")
    use_faiss = backend == "faiss" or (backend == "auto" and faiss is not None)
    if use_faiss:
        gpu = dev.type == "cuda" and faiss_gpu_available()
        with progress(total=1, desc=f"kNN faiss (k={k}, N={n})") as bar:
            dist, idx = _knn_faiss(x, k, gpu)
            bar.update(1)
    else:
        dist, idx = _knn_torch(x, k, dev)
    _put_self_first(dist, idx)
    return dist, idx
