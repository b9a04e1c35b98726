"""k-nearest-neighbour search on the squared Euclidean distance: exact, and approximate (IVF).

Exact search: :func:`knn`, with three interchangeable paths: faiss on the GPU (when ``device``
is CUDA and faiss was built with GPU support), faiss on the CPU, and a blocked ``torch.topk``
path that runs on any torch device. All paths are exact (brute force) and return the same lists
up to ties.

Tie handling: neighbours at *exactly* equal distance (duplicated features) may come in a
different order on different backends, and floating-point rounding of the matrix product differs
between BLAS kernels, so two neighbours whose distances differ by ~1e-7 may swap. The one tie
that is fixed on every path is the query itself: it is always in column 0 with distance 0, even
when duplicates of it exist (a duplicate found before it is moved back one place; if ``k``
duplicates hide it, the last neighbour is dropped to make room).

Approximate search: :func:`knn_ivf`, an inverted-file (IVF) partition of the features by
faiss k-means, searched on the CPU list by list with one matrix product per list (engine
"blas"), or with a faiss IVF index (IVF-Flat, IVF-SQfp16 or IVF-PQ; engine "faiss", used on
the GPU when faiss has GPU support), with the same output contract as :func:`knn` (self first,
distance 0). :func:`search_knn` picks one of the two by name (``CLUSTER.KNN``: "exact" or
"ivf"); :func:`knn_recall` measures an approximate result against the exact one.

IVF parameters (``CLUSTER.IVF_NLIST`` / ``CLUSTER.IVF_NPROBE`` / ``CLUSTER.IVF_SPHERICAL``):
``nlist = 0`` takes the rule :func:`ivf_nlist` = round(4 sqrt(N)) clamped to
[1, min(65536, N // 39)] (faiss wants >= 39 training points per list); ``nprobe`` (default
44) lists are scanned per query, clipped to nlist. Every distance computed is used for both
points of the pair (the blas engine inserts it on both sides; the faiss engine offers the
pairs it found to the other side afterwards), so a point also gets the candidates that found
it. ``nprobe >= nlist`` scans every list, i.e. an exact search (same neighbours as
:func:`knn` up to floating-point near-ties). Cost per query ~ nlist (coarse quantiser) +
N nprobe / nlist (list scan), i.e. O(sqrt(N)) with the rule, against O(N) for the exact
search.

``spherical`` trains the centroids by spherical k-means (re-normalised to unit norm after
every iteration), for L2-normalised features: a row's list is then the centroid of the
largest cosine, and the lists are even. With plain k-means on unit-norm rows, diffuse rows
(junk, outliers) gather in lists of small-norm centroids, which are near every query and so
are scanned by all of them. The trade-off measured in ``docs/SCALING.md``: on real features
the same time and a slightly higher agreement with exact; on the synthetic clusters half the
kNN time and a lower one.

Memory of the IVF search (bytes per image, D = feature dimension, k neighbours): engine
"blas": 12 k (running top-k ids + distances) + 12 nprobe (probe lists and their inverse) + 8
(the rows sorted by list), the features read in place (float16 input stays float16; a list's
members and a chunk of at most 8,192 queries are gathered as float32), plus a fixed 16 MiB
tile of dot products reused for every list; engine "faiss": an index of 4 D (flat) /
2 D (``fp16``) / m (PQ, m sub-quantisers) + 8 (ids), plus 24 k of results (12 k, and a copy
of them while the reverse pairs are added). Queries and additions go in blocks of ``block``
rows, so no other (N, D) float32 copy is made. Before the search, k-means copies its
training rows as float32: 4 D min(N, 80 nlist) bytes in all (2.4 GiB at N = 1M, D = 2048).
"""
from __future__ import annotations

import functools
import logging
import subprocess
import sys

import numpy as np
import torch
from numba import njit, prange

from reid.utils.progress import progress

logger = logging.getLogger(__name__)

__all__ = ["knn", "knn_ivf", "ivf_nlist", "search_knn", "knn_recall", "as_float32_matrix",
           "faiss_gpu_build", "faiss_gpu_available", "faiss_gpu_kernels_run",
           "KNN_METHODS"]

KNN_METHODS = ("exact", "ivf")
IVF_NPROBE_DEFAULT = 44
# IVF k-means, coarse to fine: (training rows per list, Lloyd iterations) of each stage, every
# stage started from the previous one's centroids. The last stage's one iteration over
# 80 nlist rows (every row at N = 100k) sets each centroid to the mean of its cell in (nearly)
# the whole set, which is what the lists' quality depends on; the first stage only has to put
# the centroids near their cells. 160 nlist row-iterations in all, against 400 for 40 rows x
# 10 iterations (the rule until 2026-12-06), with better lists (docs/SCALING.md, 100k).
IVF_KMEANS_STAGES = ((20, 4), (80, 1))

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a hard dependency, kept optional here
    faiss = None


def faiss_gpu_build() -> bool:
    """True when faiss is importable, was built with GPU support and sees at least one GPU
    (whether its kernels run on that GPU is :func:`faiss_gpu_kernels_run`)."""
    return (faiss is not None and hasattr(faiss, "StandardGpuResources")
            and faiss.get_num_gpus() > 0)


def faiss_gpu_available() -> bool:
    """True when faiss's GPU path can be used: :func:`faiss_gpu_build` and
    :func:`faiss_gpu_kernels_run`."""
    return faiss_gpu_build() and faiss_gpu_kernels_run()


# A faiss GPU search on a tiny set; exits 0 when the kernels ran and the lists are right.
_FAISS_GPU_PROBE = """
import numpy as np, faiss
x = np.eye(4, 8, dtype=np.float32)
index = faiss.GpuIndexFlatL2(faiss.StandardGpuResources(), 8)
index.add(x)
_, idx = index.search(x, 1)
raise SystemExit(0 if (idx[:, 0] == np.arange(4)).all() else 1)
"""


@functools.cache
def faiss_gpu_kernels_run() -> bool:
    """Whether faiss's GPU kernels run on this machine's GPU, tried once per process in a
    child process (a faiss GPU call on a GPU its build has no code for aborts the process
    with "no kernel image is available", which no ``try`` can catch).

    The faiss-gpu-cu12 wheels on PyPI (1.10 to 1.14.1, as read) carry sm_70 and sm_80 code
    only, without PTX, so they run on V100 / A100-class GPUs and abort on Hopper (H100, compute
    capability 9.0). When the probe fails, a warning names the GPU and the clustering uses
    faiss on the CPU (the same lists: both are exact, or the same IVF index).
    """
    try:
        ok = subprocess.run([sys.executable, "-c", _FAISS_GPU_PROBE], capture_output=True,
                            timeout=300).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        cap = (".".join(map(str, torch.cuda.get_device_capability()))
               if torch.cuda.is_available() else "unknown")
        logger.warning(
            "faiss has GPU support but its GPU kernels do not run on this GPU (compute "
            "capability %s; the PyPI faiss-gpu-cu12 wheels hold sm_70 / sm_80 code only): "
            "kNN and k-means run on faiss's CPU path. For faiss on this GPU, install a faiss "
            "built for it (conda's faiss-gpu, or faiss built with CMAKE_CUDA_ARCHITECTURES "
            "naming it).", cap)
    return ok


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
        backend: "auto", "faiss" or "torch". "auto" on a CUDA ``device``: faiss-GPU where
            :func:`faiss_gpu_available`, else the torch path on that device (a CUDA matrix
            product beats faiss's CPU search by far); on the CPU: faiss-CPU, else torch.

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
    on_cuda = dev.type == "cuda"
    gpu = on_cuda and backend != "torch" and faiss_gpu_available()
    use_faiss = backend == "faiss" or (backend == "auto" and faiss is not None
                                       and (gpu or not on_cuda))
    if use_faiss:
        with progress(total=1, desc=f"kNN faiss (k={k}, N={n})") as bar:
            dist, idx = _knn_faiss(x, k, gpu)
            bar.update(1)
    else:
        dist, idx = _knn_torch(x, k, dev)
    _put_self_first(dist, idx)
    return dist, idx


def ivf_nlist(n: int) -> int:
    """The default number of IVF lists for N points: round(4 sqrt(N)) clamped to
    [1, min(65536, N // 39)] (faiss warns below 39 training points per list).

    Example:
        >>> ivf_nlist(10_000), ivf_nlist(1_000_000), ivf_nlist(50)
        (256, 4000, 1)
    """
    if n < 1:
        raise ValueError(f"N must be >= 1, got {n}")
    return int(max(1, min(round(4.0 * np.sqrt(n)), 65536, n // 39)))


def _ivf_index(d: int, nlist: int, fp16: bool, pq_m: int):
    quantizer = faiss.IndexFlatL2(d)
    if pq_m > 0:
        if d % pq_m:
            raise ValueError(f"IVF-PQ needs D={d} divisible by the sub-quantiser count {pq_m}")
        index = faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, 8)
    elif fp16:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist,
                                              faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2)
    else:
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    index.own_fields = True
    quantizer.this.disown()
    return index


def _train_centroids(store: np.ndarray, nlist: int, seed: int, train_size: int,
                     spherical: bool = False,
                     stages: tuple[tuple[int, int], ...] = IVF_KMEANS_STAGES) -> np.ndarray:
    """(nlist, D) float32 k-means centroids (faiss), trained coarse to fine: for each
    ``(rows_per_list, niter)`` of ``stages``, ``niter`` Lloyd iterations on a fresh random
    subset of min(N, max(rows_per_list nlist, 1000)) rows (capped at ``train_size`` when > 0),
    started from the previous stage's centroids. ``spherical``: unit-norm centroids,
    re-normalised after every iteration."""
    n, d = store.shape
    rng = np.random.default_rng(seed)
    centroids = None
    for rows_per_list, niter in stages:
        ntrain = min(n, max(rows_per_list * nlist, 1000))
        if train_size > 0:
            ntrain = min(ntrain, train_size)
        if ntrain < n:
            train = as_float32_matrix(store[np.sort(rng.choice(n, ntrain, replace=False))])
        else:  # every row: read in place when the store is float32 already
            train = as_float32_matrix(store)
        km = faiss.Kmeans(d, nlist, niter=niter, seed=seed, verbose=False, spherical=spherical,
                          max_points_per_centroid=max(256, -(-ntrain // nlist)),
                          min_points_per_centroid=1)
        with progress(total=1, desc=f"IVF k-means (nlist={nlist}, {ntrain} points)") as bar:
            km.train(train, init_centroids=centroids)
            bar.update(1)
        centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        del train
    return centroids


@njit(cache=True)
def _group_by_key(keys, nbins):
    """Counting sort: ``(order, ptr)`` with ``order`` the positions of ``keys`` (int, in
    [0, nbins)) grouped by key, ascending, and in input order within a key (as a stable
    argsort), and ``ptr`` (nbins + 1) the group bounds: key b's positions are
    ``order[ptr[b]:ptr[b + 1]]``. O(len(keys) + nbins), one pass to count, one to place."""
    ptr = np.zeros(nbins + 1, np.int64)
    for v in keys:
        ptr[v + 1] += 1
    for b in range(nbins):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    order = np.empty(keys.shape[0], np.int64)
    for p in range(keys.shape[0]):
        v = keys[p]
        order[fill[v]] = p
        fill[v] += 1
    return order, ptr


@njit(inline="always")
def _insert(best_d, best_i, q, j, d):
    """Insert candidate ``j`` at distance ``d`` into row ``q``'s ascending running list unless it
    is there already (a pair can be met from both of its sides) or not below the k-th."""
    k = best_d.shape[1]
    if d >= best_d[q, k - 1]:
        return
    for p in range(k):
        if best_i[q, p] == j:
            return
    p = k - 1
    while p > 0 and best_d[q, p - 1] > d:
        best_d[q, p] = best_d[q, p - 1]
        best_i[q, p] = best_i[q, p - 1]
        p -= 1
    best_d[q, p] = d
    best_i[q, p] = j


@njit(parallel=True, cache=True)
def _merge_list(best_d, best_i, q_ids, gram, sq_q, sq_x, x_ids):
    """In place, for the (R, L) tile ``gram`` of the dot products of the queries ``q_ids`` with
    the list members ``x_ids`` (distance (||q||^2 + ||x||^2) - 2 q.x in float32, like the exact
    search; ``sq_q`` / ``sq_x`` the squared norms): insert every member into its query's
    running list (rows, one thread per query), then every query into its member's running list
    (columns, one thread per member). The ids within a tile are distinct, so no two threads
    write the same row."""
    two = np.float32(2.0)
    for r in prange(q_ids.shape[0]):
        q = q_ids[r]
        for c in range(x_ids.shape[0]):
            _insert(best_d, best_i, q, x_ids[c], (sq_q[r] + sq_x[c]) - two * gram[r, c])
    for c in prange(x_ids.shape[0]):
        x = x_ids[c]
        for r in range(q_ids.shape[0]):
            _insert(best_d, best_i, x, q_ids[r], (sq_q[r] + sq_x[c]) - two * gram[r, c])


@njit(cache=True)
def _add_reverse_pairs(best_d, best_i):
    """In place: row i becomes the k nearest of its own list and of every j whose list held i
    (the distance is symmetric), so a neighbour found from one side only is kept on both. The
    pairs are read from a copy of the input lists, so the result does not depend on the row
    order."""
    src_d = best_d.copy()
    src_i = best_i.copy()
    n, k = best_i.shape
    for i in range(n):
        for a in range(k):
            j = src_i[i, a]
            if j >= 0 and j != i:
                _insert(best_d, best_i, j, i, src_d[i, a])


def _ivf_blas(store: np.ndarray, k: int, nlist: int, nprobe: int, seed: int, train_size: int,
              block: int, spherical: bool = False, max_tile: int = 1 << 22,
              max_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs IVF search with matrix products: every list is scanned once for all the
    queries that probe it (one GEMM per list and query chunk of at most ``max_rows`` queries
    and ``max_tile`` products, into one reused buffer), and a numba kernel inserts the tile's
    pairs into running (N, k) top-k arrays on **both** sides: each member into its query's
    list and each query into its member's list (:func:`_merge_list`), as the exact torch
    search uses each distance block for both of its row ranges. A point's candidates are
    therefore the members of the lists it probes *and* the points that probe its own list.

    On the 100k benchmark features (``benchmarks/bench_cluster.py``, nlist 1,265, nprobe 32)
    the second side raised recall@30 against exact from 0.733 to 0.842 (synthetic clusters)
    and from 0.939 to 0.987 (real CUHK03 / CUHK01 features, tiled), and the pseudo labels' ARI
    against exact from 0.981 to 0.986 and from 0.913 to 0.992; the merge does twice the
    insertions.
    Distances are ||q||^2 + ||x||^2 - 2 q.x like the exact search. Rows are gathered (a
    list's members once, the queries per chunk) with torch's multi-threaded ``index_select``
    from a float32 store, with numpy from a float16 or read-only one; no copy of the whole
    store is made."""
    n = store.shape[0]
    centroids = _train_centroids(store, nlist, seed, train_size, spherical=spherical)
    coarse = faiss.IndexFlatL2(centroids.shape[1])
    coarse.add(centroids)
    probes = np.empty((n, nprobe), np.int32)
    for a in range(0, n, block):
        b = min(n, a + block)
        probes[a:b] = coarse.search(as_float32_matrix(store[a:b]), nprobe)[1]
    # every row belongs to its nearest centroid's list
    members, m_ptr = _group_by_key(np.ascontiguousarray(probes[:, 0]), nlist)
    by_list, q_ptr = _group_by_key(probes.reshape(-1), nlist)  # positions in probes, by list
    del probes
    sq = np.empty(n, np.float32)
    for a in range(0, n, block):
        xb = np.asarray(store[a:a + block], np.float32)
        sq[a:a + block] = (xb * xb).sum(1)
    best_d = np.full((n, k), np.inf, np.float32)
    best_i = np.full((n, k), -1, np.int64)
    tile = torch.empty(max(max_tile, int(np.diff(m_ptr).max())))  # reused, no fresh pages
    q_rows = torch.empty((min(n, max_rows), store.shape[1]))
    # torch's row gather runs on every thread (np.take on one): a float32 store is read in place
    direct = (store.dtype == np.float32 and store.flags.c_contiguous and store.flags.writeable)
    store_t = torch.from_numpy(store) if direct else None

    def gather(ids: np.ndarray, out: torch.Tensor) -> torch.Tensor:
        if store_t is not None:
            return torch.index_select(store_t, 0, torch.from_numpy(ids), out=out)
        return out.copy_(torch.from_numpy(np.asarray(store[ids], np.float32)))

    for lst in progress(range(nlist), desc=f"kNN IVF (k={k}, N={n}, nprobe={nprobe})"):
        x_ids = members[m_ptr[lst]:m_ptr[lst + 1]]
        if x_ids.size == 0:
            continue
        q_all = by_list[q_ptr[lst]:q_ptr[lst + 1]] // nprobe
        xl = gather(x_ids, torch.empty((x_ids.size, store.shape[1])))
        sq_x = sq[x_ids]
        step = max(1, min(max_rows, max_tile // x_ids.size))
        for c in range(0, q_all.size, step):
            q_ids = q_all[c:c + step]
            xq = gather(q_ids, q_rows[:q_ids.size])
            gram = tile[:q_ids.size * x_ids.size].view(q_ids.size, x_ids.size)
            torch.mm(xq, xl.T, out=gram)
            _merge_list(best_d, best_i, q_ids, gram.numpy(), sq[q_ids], sq_x, x_ids)
    return best_d, best_i


def _ivf_faiss(store: np.ndarray, k: int, nlist: int, nprobe: int, dev: torch.device,
               fp16: bool, pq_m: int, seed: int, train_size: int, block: int,
               spherical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """IVF search with a faiss index (IVF-Flat / IVF-SQfp16 / IVF-PQ), on the GPU when ``dev``
    is CUDA and faiss has GPU support; every pair found is then offered to the other side's
    list too (:func:`_add_reverse_pairs`)."""
    n, d = store.shape
    centroids = _train_centroids(store, nlist, seed, train_size, spherical=spherical)
    index = _ivf_index(d, nlist, fp16, pq_m)
    index.quantizer.add(centroids)
    index.quantizer.is_trained = True
    if pq_m > 0 or fp16:  # the vector codec still needs training (PQ codebooks, fp16 no-op)
        ntrain = min(n, max(256 * 64, 1000)) if pq_m > 0 else min(n, 1000)
        rng = np.random.default_rng(seed + 1)
        sample = np.sort(rng.choice(n, ntrain, replace=False)) if ntrain < n else np.arange(n)
        index.train(as_float32_matrix(store[sample]))
    else:
        index.is_trained = True
    gpu = dev.type == "cuda" and faiss_gpu_available()
    res = None
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0 if dev.index is None else dev.index, index)
    for a in range(0, n, block):
        index.add(as_float32_matrix(store[a:min(n, a + block)]))
    if gpu:
        index.nprobe = nprobe
    else:
        faiss.extract_index_ivf(index).nprobe = nprobe
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for a in progress(range(0, n, block), desc=f"kNN IVF faiss (k={k}, N={n}, nprobe={nprobe})"):
        b = min(n, a + block)
        dist[a:b], idx[a:b] = index.search(as_float32_matrix(store[a:b]), k)
    del index, res
    dist[idx < 0] = np.inf
    _add_reverse_pairs(dist, idx)
    return dist, idx


def knn_ivf(features: np.ndarray | torch.Tensor, k: int, nlist: int = 0,
            nprobe: int = IVF_NPROBE_DEFAULT, device: str | torch.device | None = None,
            fp16: bool = False, pq_m: int = 0, seed: int = 0, train_size: int = 0,
            block: int = 65536, engine: str = "auto", spherical: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours of every row among all rows with an IVF partition.

    The ``nlist`` centroids are trained by faiss k-means (``seed``), coarse to fine: 4
    iterations on min(N, 20 nlist) random rows, then 1 on min(N, 80 nlist) (``train_size`` > 0
    caps both); every query scans the ``nprobe``
    lists of its nearest centroids, and every distance computed serves both points of the
    pair (a point's candidates include the points that scanned its list). Two engines:

    * ``"blas"`` (the CPU default): the all-pairs search done list by list, one matrix product
      per list against all the queries probing it (the features are read in place, float16
      input included; no index copy of the vectors);
    * ``"faiss"`` (the default on CUDA with faiss-GPU, and for PQ): a faiss IVF index,
      IVF-Flat, IVF-SQfp16 (``fp16``: float16 store, half the index memory) or IVF-PQ
      (``pq_m``), on the GPU when ``device`` is CUDA and faiss has GPU support.

    Args:
        features: (N, D) float features (numpy or torch; float16 accepted, converted per block).
        k: neighbours per row, 1 <= k <= N; the row itself is column 0.
        nlist: inverted lists; 0 = :func:`ivf_nlist` (N). Clipped to [1, N].
        nprobe: lists scanned per query (clipped to nlist; nprobe = nlist is an exact search).
        device: CUDA runs faiss-GPU when available, otherwise the CPU.
        fp16: faiss engine: store the indexed vectors as float16 (IVF-SQfp16).
        pq_m: > 0 uses faiss IVF-PQ with ``pq_m`` 8-bit sub-quantisers (D % pq_m == 0);
            distances are then approximate too.
        seed: k-means and training-subset seed.
        engine: "auto", "blas" or "faiss".
        spherical: spherical k-means (unit-norm centroids), for L2-normalised features: even
            lists (see the module docstring). The probes are unchanged: with unit-norm
            centroids the nearest in L2 is the one of the largest dot product.

    Returns:
        ``(distances, indices)`` as :func:`knn`: (N, k) float32 ascending, column 0 the row
        itself with distance 0; an entry the scan could not fill (fewer than k points in the
        probed lists) is -1 with distance inf.
    """
    if faiss is None:
        raise RuntimeError("the IVF kNN search needs faiss (pip install faiss-cpu)")
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    store = np.asarray(features)
    if store.ndim != 2 or store.shape[0] == 0 or store.shape[1] == 0:
        raise ValueError(f"features must be a non-empty 2-D (N, D) array, got {store.shape}")
    if store.dtype not in (np.float16, np.float32):
        store = as_float32_matrix(store)
    n, d = store.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got {k}")
    if nprobe < 1:
        raise ValueError(f"nprobe must be >= 1, got {nprobe}")
    if engine not in ("auto", "blas", "faiss"):
        raise ValueError(f"IVF engine must be 'auto', 'blas' or 'faiss', got {engine!r}")
    if pq_m > 0 and d % pq_m:
        raise ValueError(f"IVF-PQ needs D={d} divisible by the sub-quantiser count {pq_m}")
    nlist = ivf_nlist(n) if nlist <= 0 else min(int(nlist), n)
    nprobe = min(int(nprobe), nlist)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if engine == "auto":
        engine = ("faiss" if pq_m > 0 or (dev.type == "cuda" and faiss_gpu_available())
                  else "blas")
    if not np.isfinite(store[:: max(1, n // 1000)]).all():
        as_float32_matrix(store)  # raises with the offending row
    if engine == "blas":
        dist, idx = _ivf_blas(store, k, nlist, nprobe, seed, train_size, block,
                              spherical=spherical)
    else:
        dist, idx = _ivf_faiss(store, k, nlist, nprobe, dev, fp16, pq_m, seed, train_size,
                               block, spherical=spherical)
    _put_self_first(dist, idx)
    return dist, idx


def search_knn(features: np.ndarray | torch.Tensor, k: int, method: str = "exact",
               device: str | torch.device | None = None, backend: str = "auto",
               nlist: int = 0, nprobe: int = IVF_NPROBE_DEFAULT, fp16: bool = False,
               pq_m: int = 0, spherical: bool = False, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """kNN by name: ``method="exact"`` is :func:`knn` (``backend``), ``"ivf"`` is
    :func:`knn_ivf` (``nlist``, ``nprobe``, ``fp16``, ``pq_m``, ``spherical``, and ``seed``,
    the k-means seed)."""
    if method == "exact":
        return knn(features, k, device=device, backend=backend)
    if method == "ivf":
        return knn_ivf(features, k, nlist=nlist, nprobe=nprobe, device=device, fp16=fp16,
                       pq_m=pq_m, spherical=spherical, seed=seed)
    raise ValueError(f"kNN method must be one of {KNN_METHODS}, got {method!r}")


def knn_recall(approx_idx: np.ndarray, exact_idx: np.ndarray, k: int | None = None,
               skip_self: bool = False) -> float:
    """Recall@k of approximate kNN lists: the mean over rows of
    |approx[i, :k] n exact[i, :k]| / k (-1 entries never match).

    Args:
        approx_idx, exact_idx: (N, >= k) int neighbour lists of the same rows.
        k: list length compared; None = the number of columns of ``exact_idx``.
        skip_self: drop column 0 (the query itself) of both lists, comparing k - 1 neighbours.

    Example:
        >>> knn_recall(np.array([[0, 1, 2], [1, 0, 3]]), np.array([[0, 1, 2], [1, 2, 0]]))
        0.8333333333333334
    """
    a = np.asarray(approx_idx)
    e = np.asarray(exact_idx)
    k = e.shape[1] if k is None else int(k)
    if a.shape[0] != e.shape[0] or a.shape[1] < k or e.shape[1] < k or k < 1:
        raise ValueError(f"need (N, >= k) lists of equal N, got {a.shape}, {e.shape}, k={k}")
    lo = 1 if skip_self else 0
    if k - lo < 1:
        raise ValueError("nothing to compare: k = 1 with skip_self")
    a, e = a[:, lo:k], e[:, lo:k]
    hits = 0
    for s in range(0, a.shape[0], 65536):
        aa, ee = a[s:s + 65536], e[s:s + 65536]
        match = (aa[:, :, None] == ee[:, None, :]) & (aa[:, :, None] >= 0)
        hits += int(match.any(axis=2).sum())
    return hits / (a.shape[0] * (k - lo))
