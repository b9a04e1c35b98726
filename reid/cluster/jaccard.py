"""Sparse k-reciprocal Jaccard distance (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), as used for pseudo labels by SpCL (Ge et al., NeurIPS 2020).

Definitions (features L2-normalised, d(i, j) = 2 - 2 x_i.x_j):

* ``initial_rank[i]``: the ``kc`` nearest neighbours of i, itself first, with ``kc = k1`` by
  default (the published SpCL code searches only k1 neighbours) or ``k1 + 1`` with
  ``k1_plus_one=True`` (the paper), clipped to N.
* R(i, k): j in ``initial_rank[i, :k+1]`` such that i in ``initial_rank[j, :k+1]`` (both lists
  clipped to ``kc`` columns, exactly as ``k_reciprocal_neigh`` in the SpCL code).
* Expansion: start from R(i, k1); for each j in R(i, k1) with |R(j, h) n R(i, k1)| > 2/3 |R(j, h)|,
  h = round(k1 / 2) (half to even, like ``int(np.around(k1 / 2))``), add R(j, h); unique.
* V[i, j] = softmax over the expanded set of -d(i, j); V_qe[i] = mean of V over the rows
  ``initial_rank[i, :k2]``.
* d_J(i, j) = 1 - m / (2 - m), m = sum_k min(V_qe[i, k], V_qe[j, k]); m = 0 gives 1.

Everything is sparse: memory is O(N (k1 + k2)^2) (V has at most ~k1^2/2 entries per row, V_qe
k2 times that, and the output only pairs that share a V_qe column); no N x N array is built.
The kernels are numba-parallel (``cache=True``).

Streaming (``block_rows > 0``, ``CLUSTER.BLOCK_ROWS``): the Jaccard rows are computed
``block_rows`` rows at a time into arrays sized once, the transposed encoding is built once,
and with ``max_distance`` only the entries ``<= max_distance`` (plus the diagonal) are kept
from each block, which is all DBSCAN at radius <= max_distance reads; that cut is made in the
kernel's one pass (:func:`_jaccard_cut`: each row's entries summed, only the kept ones sorted
into fixed slots of 96 per row, a row keeping more redone with a wider slot). The kept entries
are identical (bit for bit) to those of the in-memory path. The query expansion is a numba
kernel on every path (:func:`query_expand_blocked`: each row counted, then filled into arrays
allocated once; bit-identical to scipy's ``avg @ V`` of :func:`query_expand`).

Speed (N = 100k, D = 256, 2 cores, loaded machine, against the previous kernels): V
encoding 2.5-3x faster (the expansion's membership tests through N-sized masks instead of
scans, four dot products interleaved, each still summed in the same order), query
expansion ~2.5x, streamed Jaccard rows with the cut ~2x (the ~1,150 touched columns of a row
are no longer all sorted; ~23 are kept). Then only the upper triangle (j >= i) of the Jaccard
rows is computed and mirrored (:func:`jaccard_all`): 2.37 -> 1.44 s for the rows with the cut
on the 100k tiled real features of ``benchmarks/bench_cluster.py``, 2 cores, idle machine.
Every change keeps the results bit-identical.

Memory model, bytes per image (k1 = 30, k2 = 6, k-NN with kc = k1 columns; ``e_v``, ``e_qe``
and ``e_j`` the mean stored entries per row of V, V_qe and the Jaccard output; measured on
the clustered synthetic features of ``benchmarks/bench_cluster.py`` at N = 8,000: e_v = 27,
e_qe = 55, e_j = 1,100 before the ``max_distance`` cut and 23 after it at 0.62):

=========================  ====================================================
features (float32)         4 D (+ 4 D once more if the caller's array is not
                           already L2-normalised float32)
kNN search                 exact faiss: 12 kc + block temporaries; IVF: see
                           :mod:`reid.cluster.knn` (index 4 D / 2 D fp16 / m PQ)
kNN lists kept             8 kc (int64; distances dropped)
reciprocal sets            8 (kc + 1) + 8 (round(k1/2) + 1) + 16
V (CSR float64, int64)     16 e_v
V_qe (CSR float64, int32)  12 e_qe (+ per-thread scratch of 17 N bytes)
V_qe transposed            12 e_qe
Jaccard output (float32,   1.5 x 8 e_j at the peak (the upper half in blocks,
int32)                     then the mirrored whole); with the cut 1.5 x 8
                           e_j(<= max_distance) + one block of 8 x 96 slots
DBSCAN (three radii)       ~ 40 e_j(<= eps) transient (COO + symmetrised copies)
=========================  ====================================================
"""
from __future__ import annotations

import logging

import numba
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange

from reid.cluster.knn import as_float32_matrix, search_knn
from reid.utils.progress import progress
from reid.utils.sorted_search import lower_bound

logger = logging.getLogger(__name__)

__all__ = ["jaccard_distance", "l2_normalize", "reciprocal_neighbours", "sparse_v_qe",
           "jaccard_rows", "jaccard_all", "encode_v", "query_expand", "query_expand_blocked"]


def l2_normalize(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Row-wise L2 normalisation of a float32 (N, D) array; a zero row raises ValueError."""
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"{name} row {zero[0]} has zero norm; cannot L2-normalise")
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


@njit(parallel=True, cache=True)
def _reciprocal_kernel(rank, ncols):
    n = rank.shape[0]
    out = np.full((n, ncols), -1, np.int64)
    cnt = np.zeros(n, np.int64)
    for i in prange(n):
        c = 0
        for a in range(ncols):
            j = rank[i, a]
            if j < 0:  # -1 padding of a short list
                break
            for b in range(ncols):
                if rank[j, b] == i:
                    out[i, c] = j
                    c += 1
                    break
        cnt[i] = c
    return out, cnt


def reciprocal_neighbours(rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k-reciprocal sets R(i, k) from kNN lists.

    Args:
        rank: (N, kc) int64 kNN lists, self first; a short list may end in -1 padding.
        k: the set uses the first ``max(0, min(k + 1, kc))`` columns of every list.

    Returns:
        ``(members, counts)``: (N, min(k+1, kc)) int64 padded with -1 (members in forward order)
        and (N,) int64 set sizes.
    """
    ncols = max(0, min(k + 1, rank.shape[1]))
    return _reciprocal_kernel(np.ascontiguousarray(rank, dtype=np.int64), ncols)


@njit(cache=True)
def _expand_row(i, r1, c1, r2, c2, in_r1, seen, buf):
    """Sorted members of the expanded set of row i into ``buf`` (returns their number).
    ``in_r1`` / ``seen`` are all-False scratch masks of N entries, left all-False."""
    m = c1[i]
    for a in range(m):
        in_r1[r1[i, a]] = True
    n = 0
    for a in range(m):
        j = r1[i, a]
        if not seen[j]:
            seen[j] = True
            buf[n] = j
            n += 1
    for a in range(m):
        cand = r1[i, a]
        mc = c2[cand]
        inter = 0
        for b in range(mc):
            if in_r1[r2[cand, b]]:
                inter += 1
        if inter > (2.0 / 3.0) * mc:
            for b in range(mc):
                j = r2[cand, b]
                if not seen[j]:
                    seen[j] = True
                    buf[n] = j
                    n += 1
    for a in range(m):
        in_r1[r1[i, a]] = False
    for a in range(n):
        seen[buf[a]] = False
    for a in range(1, n):  # insertion sort (a few dozen members)
        v = buf[a]
        b = a - 1
        while b >= 0 and buf[b] > v:
            buf[b + 1] = buf[b]
            b -= 1
        buf[b + 1] = v
    return n


@njit(parallel=True, cache=True)
def _expansion_sizes(r1, c1, r2, c2, nchunks):
    n = r1.shape[0]
    sizes = np.zeros(n, np.int64)
    width = r1.shape[1] * (1 + r2.shape[1])
    for c in prange(nchunks):
        buf = np.empty(width, np.int64)
        in_r1 = np.zeros(n, np.bool_)
        seen = np.zeros(n, np.bool_)
        for i in range(c * n // nchunks, (c + 1) * n // nchunks):
            sizes[i] = _expand_row(i, r1, c1, r2, c2, in_r1, seen, buf)
    return sizes


@njit(parallel=True, cache=True)
def _expansion_fill(r1, c1, r2, c2, x, indptr, indices, data, nchunks):
    n = r1.shape[0]
    dim = x.shape[1]
    width = r1.shape[1] * (1 + r2.shape[1])
    for c in prange(nchunks):
        buf = np.empty(width, np.int64)
        in_r1 = np.zeros(n, np.bool_)
        seen = np.zeros(n, np.bool_)
        for i in range(c * n // nchunks, (c + 1) * n // nchunks):
            m = _expand_row(i, r1, c1, r2, c2, in_r1, seen, buf)
            s = indptr[i]
            a = 0
            while a < m:  # four dot products at a time: independent chains, each summed in
                # the order t = 0 .. dim - 1 (the same float64 rounding as one at a time)
                j0 = buf[a]
                j1 = buf[min(a + 1, m - 1)]
                j2 = buf[min(a + 2, m - 1)]
                j3 = buf[min(a + 3, m - 1)]
                d0 = 0.0
                d1 = 0.0
                d2 = 0.0
                d3 = 0.0
                for t in range(dim):
                    xi = np.float64(x[i, t])
                    d0 += xi * np.float64(x[j0, t])
                    d1 += xi * np.float64(x[j1, t])
                    d2 += xi * np.float64(x[j2, t])
                    d3 += xi * np.float64(x[j3, t])
                for u in range(min(4, m - a)):
                    dot = d0 if u == 0 else (d1 if u == 1 else (d2 if u == 2 else d3))
                    data[s + a + u] = -(2.0 - 2.0 * dot)
                    indices[s + a + u] = buf[a + u]
                a += 4
            best = -np.inf
            for a in range(m):
                if data[s + a] > best:
                    best = data[s + a]
            tot = 0.0
            for a in range(m):
                e = np.exp(data[s + a] - best)
                data[s + a] = e
                tot += e
            for a in range(m):
                data[s + a] /= tot


def encode_v(x: np.ndarray, r1: np.ndarray, c1: np.ndarray, r2: np.ndarray, c2: np.ndarray
             ) -> sp.csr_matrix:
    """The k-reciprocal encoding V (float64 CSR, N x N, rows sum to 1) from reciprocal sets.

    Args:
        x: (N, D) float32 L2-normalised features.
        r1, c1: (N, w1) int64 members of R(i, k1), valid entries first and -1 after, and (N,)
            int64 set sizes (as :func:`reciprocal_neighbours` returns them).
        r2, c2: the same for the half-size sets R(j, round(k1 / 2)) of the expansion.
    """
    n = x.shape[0]
    nchunks = max(1, min(n, 8 * numba.get_num_threads()))
    sizes = _expansion_sizes(r1, c1, r2, c2, nchunks)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = np.empty(indptr[-1], np.int64)
    data = np.empty(indptr[-1], np.float64)
    _expansion_fill(r1, c1, r2, c2, x, indptr, indices, data, nchunks)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def query_expand(v: sp.csr_matrix, qe: np.ndarray) -> sp.csr_matrix:
    """Local query expansion: row i of the result is the mean of the rows ``qe[i]`` of ``v``.

    Args:
        v: (N, M) CSR encoding.
        qe: (N, q) int64 rows to average per row, -1 padding ignored (each row must hold at
            least one valid index, normally i itself).

    Returns:
        (N, M) float64 CSR with sorted indices.
    """
    n = qe.shape[0]
    valid = qe >= 0
    counts = valid.sum(axis=1)
    if (counts == 0).any():
        raise ValueError("every query-expansion row needs at least one neighbour")
    rows, pos = np.nonzero(valid)
    weights = 1.0 / counts[rows]
    avg = sp.csr_matrix((weights, (rows, qe[rows, pos])), shape=(n, v.shape[0]))
    v_qe = (avg @ v).tocsr()
    v_qe.sort_indices()
    return v_qe


@njit(cache=True)
def _qe_row(i, qe, w):
    """The valid entries of ``qe[i]`` sorted ascending, duplicates merged, with their weights
    (``w`` added once per occurrence): the rows of the averaging matrix as scipy's COO -> CSR
    conversion leaves them (sorted indices, duplicates summed)."""
    q = qe.shape[1]
    rows = np.empty(q, np.int64)
    wts = np.empty(q, np.float64)
    n = 0
    for a in range(q):
        j = qe[i, a]
        if j < 0:
            continue
        b = n - 1
        while b >= 0 and rows[b] > j:
            b -= 1
        if b >= 0 and rows[b] == j:
            wts[b] += w
            continue
        for c in range(n, b + 1, -1):
            rows[c] = rows[c - 1]
            wts[c] = wts[c - 1]
        rows[b + 1] = j
        wts[b + 1] = w
        n += 1
    return rows[:n], wts[:n]


@njit(parallel=True, cache=True)
def _qe_kernel(qe, counts, vp, vi, vd, ncols, nchunks, fill, optr, oidx, odata, sizes):
    """Sparse product avg @ V row by row, summed like scipy's ``csr_matmat`` (for each averaged
    row j in ascending order, sums[k] += w_j * V[j, k]; exact zeros dropped), output sorted by
    column. ``fill=False`` only counts the entries of each row into ``sizes``."""
    n = qe.shape[0]
    for c in prange(nchunks):
        sums = np.zeros(ncols, np.float64)
        mark = np.zeros(ncols, np.bool_)
        touched = np.empty(ncols, np.int64)
        for i in range(c * n // nchunks, (c + 1) * n // nchunks):
            rows, wts = _qe_row(i, qe, 1.0 / counts[i])
            nt = 0
            for a in range(rows.shape[0]):
                j = rows[a]
                w = wts[a]
                for b in range(vp[j], vp[j + 1]):
                    k = vi[b]
                    if fill:
                        sums[k] += w * vd[b]
                    if not mark[k]:
                        mark[k] = True
                        touched[nt] = k
                        nt += 1
            if not fill:
                sizes[i] = nt
                for t in range(nt):
                    mark[touched[t]] = False
                continue
            order = np.sort(touched[:nt])
            s = optr[i]
            u = 0
            for t in range(nt):
                k = order[t]
                if sums[k] != 0.0:
                    oidx[s + u] = k
                    odata[s + u] = sums[k]
                    u += 1
                sums[k] = 0.0
                mark[k] = False
            sizes[i] = u


def query_expand_blocked(v: sp.csr_matrix, qe: np.ndarray, block_rows: int = 0
                         ) -> sp.csr_matrix:
    """:func:`query_expand` without the (N, N) averaging matrix or the product's transients:
    a numba kernel counts each row's entries, then fills arrays allocated once. The result is
    identical (bit for bit) to :func:`query_expand`: the same products summed in the same
    order. ``block_rows`` is kept for the interface (must be >= 1 when given; the kernel
    streams row by row)."""
    n = qe.shape[0]
    if block_rows < 0:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    qe = np.ascontiguousarray(qe, dtype=np.int64)
    counts = (qe >= 0).sum(axis=1)
    if (counts == 0).any():
        raise ValueError("every query-expansion row needs at least one neighbour")
    v = v.tocsr()
    if not v.has_sorted_indices:
        v = v.sorted_indices()
    vp = v.indptr.astype(np.int64, copy=False)
    vi = v.indices
    vd = v.data.astype(np.float64, copy=False)
    m = v.shape[1]
    nchunks = max(1, min(n, 8 * numba.get_num_threads()))
    sizes = np.zeros(n, np.int64)
    empty_i = np.empty(0, np.int32)
    empty_d = np.empty(0, np.float64)
    _qe_kernel(qe, counts, vp, vi, vd, m, nchunks, False, sizes, empty_i, empty_d, sizes)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=indptr[1:])
    idx_dtype = np.int32 if max(m, indptr[-1]) < 2**31 else np.int64
    indices = np.empty(indptr[-1], idx_dtype)
    data = np.empty(indptr[-1], np.float64)
    kept = np.zeros(n, np.int64)
    _qe_kernel(qe, counts, vp, vi, vd, m, nchunks, True, indptr, indices, data, kept)
    if not np.array_equal(kept, sizes):  # exact zeros dropped (underflow): close the gaps
        pos = np.arange(indptr[-1]) - np.repeat(indptr[:-1], sizes)
        keep = pos < np.repeat(kept, sizes)
        indices, data = indices[keep], data[keep]
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(kept, out=indptr[1:])
    out = sp.csr_matrix((data, indices, indptr.astype(idx_dtype)), shape=(n, m))
    out.has_sorted_indices = True
    return out


def sparse_v_qe(x: np.ndarray, rank: np.ndarray, k1: int, k2: int, block_rows: int = 0
                ) -> sp.csr_matrix:
    """The locally query-expanded encoding V_qe (float64 CSR, N x N, rows sum to 1).

    Args:
        x: (N, D) float32 L2-normalised features.
        rank: (N, kc) int64 kNN lists, self first (kc is the number of searched neighbours).
        k1: reciprocal neighbourhood size; R(i, k1) uses ``min(k1+1, kc)`` columns and
            R(j, round(k1/2)) uses ``min(round(k1/2)+1, kc)`` columns.
        k2: query-expansion size, clipped to kc (k2 = 1 gives V itself).
        block_rows: kept for the interface: the query expansion is always the numba kernel of
            :func:`query_expand_blocked` (no (N, N) averaging matrix, no product transients),
            identical to :func:`query_expand`.
    """
    kc = rank.shape[1]
    r1, c1 = reciprocal_neighbours(rank, k1)
    r2, c2 = reciprocal_neighbours(rank, int(round(k1 / 2)))
    v = encode_v(x, r1, c1, r2, c2)
    del r1, c1, r2, c2
    k2 = max(1, min(k2, kc))
    if k2 == 1:
        return v
    return query_expand_blocked(v, rank[:, :k2])  # = query_expand(v, rank[:, :k2]), bit for bit


@njit(parallel=True, cache=True)
def _jaccard_count(rows, vp, vi, tp, ti, ncols, nchunks, upper):
    nr = rows.shape[0]
    counts = np.zeros(nr, np.int64)
    for c in prange(nchunks):
        mark = np.zeros(ncols, np.bool_)
        touched = np.empty(ncols, np.int64)
        for r in range(c * nr // nchunks, (c + 1) * nr // nchunks):
            i = rows[r]
            nt = 0
            for a in range(vp[i], vp[i + 1]):
                k = vi[a]
                b0 = lower_bound(ti, tp[k], tp[k + 1], i) if upper else tp[k]
                for b in range(b0, tp[k + 1]):
                    j = ti[b]
                    if not mark[j]:
                        mark[j] = True
                        touched[nt] = j
                        nt += 1
            for t in range(nt):
                mark[touched[t]] = False
            counts[r] = nt
    return counts


@njit(cache=True)
def _accumulate_row(i, vp, vi, vd, tp, ti, td, acc, mark, touched, upper):
    """Row ``i`` of ``sum_k min(V[i, k], V[j, k])`` (``V`` as CSR ``vp / vi / vd``, its
    transpose as ``tp / ti / td`` with ascending rows per column) added into ``acc[j]``, for
    every j (``upper`` False) or the j >= i only (``upper`` True: each column's entries below
    i are skipped by a binary search); the columns j met are marked in ``mark`` and listed in
    ``touched`` in order of first touch. Returns their count."""
    nt = 0
    for a in range(vp[i], vp[i + 1]):
        k = vi[a]
        vik = vd[a]
        b0 = lower_bound(ti, tp[k], tp[k + 1], i) if upper else tp[k]
        for b in range(b0, tp[k + 1]):
            j = ti[b]
            if not mark[j]:
                mark[j] = True
                touched[nt] = j
                nt += 1
            vjk = td[b]
            acc[j] += vik if vik < vjk else vjk
    return nt


@njit(parallel=True, cache=True)
def _jaccard_fill(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, optr, oidx, odata, upper):
    nr = rows.shape[0]
    for c in prange(nchunks):
        acc = np.zeros(ncols, np.float64)
        mark = np.zeros(ncols, np.bool_)
        touched = np.empty(ncols, np.int64)
        for r in range(c * nr // nchunks, (c + 1) * nr // nchunks):
            nt = _accumulate_row(rows[r], vp, vi, vd, tp, ti, td, acc, mark, touched, upper)
            order = np.sort(touched[:nt])
            s = optr[r]
            for t in range(nt):
                j = order[t]
                m = acc[j]
                d = 1.0 - m / (2.0 - m)
                if d < 0.0:
                    d = 0.0
                oidx[s + t] = j
                odata[s + t] = d
                acc[j] = 0.0
                mark[j] = False


@njit(parallel=True, cache=True)
def _jaccard_cut(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, thr, width, cnt, oidx, odata,
                 upper):
    """One pass of the streamed Jaccard rows with the cut: row r keeps the j with float32
    distance <= ``thr`` and the diagonal (stored as 0), sorted by j, in its slots
    ``[r * width, r * width + cnt[r])`` of ``oidx`` / ``odata``; a row keeping more than
    ``width`` entries only sets ``cnt[r]`` (recomputed with a wider slot). The sums are those
    of :func:`_jaccard_fill` (same terms, same order); only the kept entries are sorted."""
    nr = rows.shape[0]
    for c in prange(nchunks):
        acc = np.zeros(ncols, np.float64)
        mark = np.zeros(ncols, np.bool_)
        touched = np.empty(ncols, np.int64)
        kept = np.empty(ncols, np.int64)
        for r in range(c * nr // nchunks, (c + 1) * nr // nchunks):
            i = rows[r]
            nt = _accumulate_row(i, vp, vi, vd, tp, ti, td, acc, mark, touched, upper)
            nk = 0
            for t in range(nt):
                j = touched[t]
                m = acc[j]
                d = 1.0 - m / (2.0 - m)
                if d < 0.0:
                    d = 0.0
                if j == i or np.float32(d) <= thr:
                    kept[nk] = j
                    nk += 1
            cnt[r] = nk
            if nk <= width:
                order = np.sort(kept[:nk])
                s = r * width
                for t in range(nk):
                    j = order[t]
                    m = acc[j]
                    d = 1.0 - m / (2.0 - m)
                    if d < 0.0 or j == i:
                        d = 0.0
                    oidx[s + t] = j
                    odata[s + t] = d
            for t in range(nt):
                j = touched[t]
                acc[j] = 0.0
                mark[j] = False


@njit(cache=True)
def _compact_slots(cnt, width, sidx, sdata, optr, oidx, odata):
    for r in range(cnt.shape[0]):
        s = r * width
        o = optr[r]
        for t in range(cnt[r]):
            oidx[o + t] = sidx[s + t]
            odata[o + t] = sdata[s + t]


def _float32_threshold(max_distance: float) -> np.float32:
    """The largest float32 x that numpy keeps in ``float32_array <= max_distance`` (numpy
    compares a Python float in float32, a float64 scalar in float64): the kernel's cut
    ``np.float32(d) <= thr`` then keeps exactly the entries the array comparison keeps."""
    c = np.float32(max_distance)
    best = None
    for v in (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))):
        if bool((np.array([v], np.float32) <= max_distance)[0]):
            best = v
    if best is None:
        raise ValueError(f"max_distance {max_distance!r} is not a usable float32 threshold")
    return np.float32(best)


def _jaccard_block_full(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, idx_dtype, upper: bool
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, indices, data) of every distance below 1 of the rows ``rows``, sorted by
    column (a counting pass sizes the output, then the fill); ``upper``: the columns j >= row
    only. The CSR arrays are read as given (int32 or int64 indices, float64 data)."""
    cnt = _jaccard_count(rows, vp, vi, tp, ti, ncols, nchunks, upper)
    optr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(cnt, out=optr[1:])
    oidx = np.empty(optr[-1], idx_dtype)
    odata = np.empty(optr[-1], np.float32)
    _jaccard_fill(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, optr, oidx, odata, upper)
    return cnt, oidx, odata


def _jaccard_block_cut(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, thr, idx_dtype,
                       upper: bool, width: int = 96
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, indices, data) of the rows ``rows`` keeping the distances <= ``thr`` and the
    diagonal (0), sorted by column, in one pass (rows keeping more than ``width`` entries are
    redone with a slot wide enough for the widest); ``upper``: the columns j >= row only."""
    nr = rows.size
    cnt = np.zeros(nr, np.int64)
    sidx = np.empty(nr * width, idx_dtype)
    sdata = np.empty(nr * width, np.float32)
    _jaccard_cut(rows, vp, vi, vd, tp, ti, td, ncols, nchunks, thr, width, cnt, sidx, sdata,
                 upper)
    over = np.flatnonzero(cnt > width)
    optr = np.zeros(nr + 1, np.int64)
    np.cumsum(cnt, out=optr[1:])
    oidx = np.empty(optr[-1], idx_dtype)
    odata = np.empty(optr[-1], np.float32)
    short = cnt.copy()
    short[over] = 0
    _compact_slots(short, width, sidx, sdata, optr, oidx, odata)
    del sidx, sdata
    if over.size:
        w2 = int(cnt[over].max())
        c2 = np.zeros(over.size, np.int64)
        i2 = np.empty(over.size * w2, idx_dtype)
        d2 = np.empty(over.size * w2, np.float32)
        _jaccard_cut(rows[over], vp, vi, vd, tp, ti, td, ncols, max(1, min(over.size, nchunks)),
                     thr, w2, c2, i2, d2, upper)
        for t, r in enumerate(over):
            oidx[optr[r]:optr[r + 1]] = i2[t * w2:t * w2 + c2[t]]
            odata[optr[r]:optr[r + 1]] = d2[t * w2:t * w2 + c2[t]]
    return cnt, oidx, odata


def jaccard_rows(v_qe: sp.csr_matrix, rows: np.ndarray, columns: sp.csr_matrix | None = None,
                 upper: bool = False) -> sp.csr_matrix:
    """Jaccard distances d_J(rows[r], j) for every j sharing a V_qe column with rows[r].

    Args:
        v_qe: (N, M) CSR encoding of the rows (float64, sorted indices).
        rows: (R,) int64 row indices of ``v_qe``.
        columns: (Nc, M) CSR encoding of the candidates j; default ``v_qe`` itself.
        upper: only the j >= rows[r] (the upper triangle; ``columns`` must be None), about
            half the work: the distance is symmetric, see :func:`jaccard_all`.

    Returns:
        (R, Nc) float32 CSR, sorted indices, stored entries = distances < 1 (absent = 1).
    """
    if upper and columns is not None:
        raise ValueError("upper=True needs columns=None (the rows' own encoding)")
    cols = v_qe if columns is None else columns
    inv = cols.T.tocsr()
    inv.sort_indices()
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    ncols = cols.shape[0]
    nchunks = max(1, min(rows.size, 8 * numba.get_num_threads()))
    counts, oidx, odata = _jaccard_block_full(
        rows, v_qe.indptr, v_qe.indices, v_qe.data.astype(np.float64, copy=False), inv.indptr,
        inv.indices, inv.data.astype(np.float64, copy=False), ncols, nchunks,
        np.int32 if ncols < 2**31 else np.int64, upper)
    optr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts, out=optr[1:])
    return sp.csr_matrix((odata, oidx, optr), shape=(rows.size, ncols))


def jaccard_distance(features: np.ndarray | torch.Tensor, k1: int = 30, k2: int = 6,
                     k1_plus_one: bool = False, device: str | torch.device | None = None,
                     knn_backend: str = "auto", rank: np.ndarray | None = None,
                     knn_method: str = "exact", knn_options: dict | None = None,
                     block_rows: int = 0, max_distance: float | None = None,
                     normalized: bool = False) -> sp.csr_matrix:
    """Sparse k-reciprocal Jaccard distance between all rows of ``features``.

    Args:
        features: (N, D) float features; L2-normalised here (a zero or non-finite row raises).
        k1: k-reciprocal neighbourhood size (SpCL: 30; test-time re-ranking: 20).
        k2: local query-expansion size (6).
        k1_plus_one: search k1 + 1 neighbours as in the paper; default False searches k1 like the
            published SpCL code. The search size is clipped to N, so N < k1 works (every list then
            holds all N points).
        device: device of the kNN search (faiss-GPU / torch). The sparse kernels run on the CPU.
        knn_backend: "auto", "faiss" or "torch" (see :func:`reid.cluster.knn.knn`).
        rank: optional precomputed (N, kc) int64 kNN lists (self first) used instead of a search.
        knn_method: "exact" (:func:`reid.cluster.knn.knn`) or "ivf"
            (:func:`reid.cluster.knn.knn_ivf`, approximate), see
            :func:`reid.cluster.knn.search_knn`.
        knn_options: keyword arguments of the IVF search (``nlist``, ``nprobe``, ``fp16``,
            ``pq_m``).
        block_rows: > 0 streams the query expansion and the Jaccard rows in blocks of this many
            rows (see the module docstring); the stored entries are the same as with 0.
        max_distance: keep only distances ``<= max_distance`` (and the diagonal); None keeps
            every distance below 1. DBSCAN at eps <= max_distance gives the same labels.
        normalized: ``features`` are already L2-normalised float32 (skips the normalising copy;
            the caller vouches for it).

    Returns:
        (N, N) float32 ``scipy.sparse.csr_matrix`` with sorted indices. Stored entries are the
        distances below 1 (pairs whose V_qe supports overlap); absent entries mean 1.0. Zero
        distances are stored explicitly; the diagonal is always stored and exactly 0. The result
        is exactly symmetric (m(i, j) and m(j, i) sum the same terms in the same order).
    """
    x = as_float32_matrix(features)
    if not normalized:
        x = l2_normalize(x)
    n = x.shape[0]
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    kc = min(n, k1 + 1 if k1_plus_one else k1)
    if rank is None:
        _, rank = search_knn(x, kc, method=knn_method, device=device, backend=knn_backend,
                             **(knn_options or {}))
        if (rank < 0).any():  # an IVF list scan that found fewer than kc points
            raise RuntimeError("the kNN search left lists unfilled (-1); raise IVF nprobe")
    else:
        rank = np.ascontiguousarray(rank, dtype=np.int64)
        if rank.shape[0] != n or not np.array_equal(rank[:, 0], np.arange(n)):
            raise ValueError("rank must be (N, kc) kNN lists with each row's own index first")
    v_qe = sparse_v_qe(x, rank, k1, k2, block_rows=block_rows)
    del rank
    return jaccard_all(v_qe, block_rows=block_rows, max_distance=max_distance)


def jaccard_all(v_qe: sp.csr_matrix, block_rows: int = 0, max_distance: float | None = None
                ) -> sp.csr_matrix:
    """(N, N) float32 CSR Jaccard distances of every pair of rows of an (N, N) encoding V_qe.

    Stored entries are the distances below 1 (absent = 1) and the diagonal, set to exactly 0.
    Exactly symmetric by construction: m(i, j) and m(j, i) add the same terms min(V_ik, V_jk)
    in the same (ascending k) order. So only the upper triangle (j >= i) is computed, each
    column's entries below i skipped by a binary search, and it is mirrored
    (:func:`_symmetric_from_upper`): about half the work, and the same entries, bit for bit,
    as computing every row in full.

    Computed by :func:`_jaccard_streamed` in blocks of ``block_rows`` rows (0: N / 10, at least
    1,000) with the transposed encoding built once; ``max_distance`` keeps only the entries
    ``<= max_distance`` and the diagonal, the others are the same entries.
    """
    return _jaccard_streamed(v_qe, block_rows, max_distance)


@njit(cache=True)
def _mirror_fill(uptr, uidx, udata, fptr, oidx, odata):
    """Row i of the output = the column i of the strict upper triangle (rows in ascending
    order, so sorted), then the upper row i itself (the diagonal first)."""
    n = uptr.shape[0] - 1
    nxt = fptr[:-1].copy()
    for i in range(n):
        for a in range(uptr[i] + 1, uptr[i + 1]):
            j = uidx[a]
            oidx[nxt[j]] = i
            odata[nxt[j]] = udata[a]
            nxt[j] += 1
    for i in range(n):
        o = nxt[i]
        for a in range(uptr[i], uptr[i + 1]):
            oidx[o] = uidx[a]
            odata[o] = udata[a]
            o += 1


def _symmetric_from_upper(uptr: np.ndarray, uidx: np.ndarray, udata: np.ndarray
                          ) -> sp.csr_matrix:
    """The (N, N) symmetric CSR matrix (sorted indices, explicit zeros kept) whose upper
    triangle is the CSR ``(udata, uidx, uptr)``, each row of which holds its diagonal first."""
    n = uptr.shape[0] - 1
    if not np.array_equal(uidx[uptr[:-1]], np.arange(n)):
        raise RuntimeError("every upper-triangle row must open with its diagonal entry")
    rows_up = np.diff(uptr)
    fptr = np.zeros(n + 1, np.int64)
    np.cumsum(rows_up + np.bincount(uidx, minlength=n) - 1, out=fptr[1:])
    oidx = np.empty(fptr[-1], uidx.dtype)
    odata = np.empty(fptr[-1], udata.dtype)
    _mirror_fill(uptr, uidx, udata, fptr, oidx, odata)
    dist = sp.csr_matrix((odata, oidx, fptr), shape=(n, n))
    dist.has_sorted_indices = True
    return dist


def _jaccard_streamed(v_qe: sp.csr_matrix, block_rows: int, max_distance: float | None
                      ) -> sp.csr_matrix:
    """Jaccard rows in blocks of ``block_rows`` (0: N / 10, at least 1000) with the transposed
    encoding built once and no int64 / float64 copies of it; each block keeps the entries
    ``<= max_distance`` (all when None) and the diagonal (set to 0) of the upper triangle,
    then the kept blocks are joined and mirrored. Entry values are those of
    :func:`jaccard_rows` (the same kernels)."""
    n = v_qe.shape[0]
    if block_rows <= 0:
        block_rows = max(1000, -(-n // 10))
    inv = v_qe.T.tocsr()
    inv.sort_indices()
    vd = v_qe.data.astype(np.float64, copy=False)
    td = inv.data.astype(np.float64, copy=False)
    nchunks_max = 8 * numba.get_num_threads()
    idx_dtype = np.int32 if n < 2**31 else np.int64
    thr = None if max_distance is None else _float32_threshold(max_distance)
    parts_idx, parts_data, counts = [], [], np.zeros(n, np.int64)
    for a in progress(range(0, n, block_rows), desc=f"Jaccard distance (N={n})"):
        rows = np.arange(a, min(n, a + block_rows), dtype=np.int64)
        nchunks = max(1, min(rows.size, nchunks_max))
        if max_distance is not None:  # one pass, only the kept entries sorted
            cnt, oidx, odata = _jaccard_block_cut(rows, v_qe.indptr, v_qe.indices, vd,
                                                  inv.indptr, inv.indices, td, n, nchunks,
                                                  thr, idx_dtype, True)
        else:
            cnt, oidx, odata = _jaccard_block_full(rows, v_qe.indptr, v_qe.indices, vd,
                                                   inv.indptr, inv.indices, td, n, nchunks,
                                                   idx_dtype, True)
            odata[np.cumsum(cnt) - cnt] = 0.0  # the diagonal opens every upper row
        parts_idx.append(oidx)
        parts_data.append(odata)
        counts[rows] = cnt
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    uidx = np.concatenate(parts_idx)
    del parts_idx
    udata = np.concatenate(parts_data)
    del parts_data
    dist = _symmetric_from_upper(indptr, uidx, udata)
    logger.debug("Jaccard distance (streamed): N=%d, %.1f stored entries per row", n,
                 dist.nnz / n)
    return dist
