"""Ranking metrics of the query / gallery protocol: CMC, mAP and mINP.

Conventions shared by every function of this module:

* ``distmat`` is a ``(num_query, num_gallery)`` array of distances (smaller = more similar);
  float32 and float64 are used as they are, other numeric dtypes are converted to float64.
* Junk removal: gallery entries with the query's identity AND camera are ignored (they are
  neither matches nor distractors). A *true match* is a gallery entry with the query's identity
  taken by another camera; every other gallery entry (any other identity, e.g. Market-1501
  distractors with pid 0) is a non-match.
* A query with no true match left is skipped; if no query is valid an error is raised.
* Ties: gallery entries are ranked by ``(distance, gallery index)``, i.e. exactly the order of
  ``np.argsort(row, kind="stable")``: among equal distances the entry with the smaller gallery
  index comes first. This makes every metric deterministic.
* The rank of a gallery entry is its 1-based position in that order after junk removal.
* AP is non-interpolated: the mean, over the query's true matches, of the precision at the
  rank of that match. INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and
  Outlook", TPAMI 2021, eq. 9) is ``#true matches / rank of the hardest true match``.
* ``cmc[k]`` is the fraction of valid queries whose first true match has rank ``<= k + 1``.
  The curve always has ``max_rank`` entries (it saturates at 1.0 after the gallery size).
"""
from __future__ import annotations

import logging

import numpy as np
from numba import njit, prange

from reid.utils.sorted_search import lower_bound

logger = logging.getLogger(__name__)

# Up to this many true matches, a match's bucket is found by a branch-free linear count
# (SIMD-friendly, faster than a mispredicted binary search); above it, by binary search.
_LINEAR_MAX_MATCHES = 64

__all__ = ["evaluate_rank", "evaluate_rank_cuhk03", "query_rank_stats", "aggregate_rank_stats"]


# --------------------------------------------------------------------------- validation
def _as_distmat(distmat) -> np.ndarray:
    """C-contiguous float32/float64 2D array (tensors are accepted and moved to the CPU)."""
    if hasattr(distmat, "detach"):
        distmat = distmat.detach().cpu().numpy()
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2D (num_query, num_gallery), got shape {dist.shape}")
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ValueError(f"distmat is empty: shape {dist.shape}")
    if dist.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(dist.dtype, np.number) or dist.dtype == np.bool_):
            raise TypeError(f"distmat must be numeric, got dtype {dist.dtype}")
        dist = dist.astype(np.float64)
    return np.ascontiguousarray(dist)


def _as_ids(values, name: str, length: int) -> np.ndarray:
    """1D int64 array of identities / cameras of the expected length."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != length:
        raise ValueError(f"{name} must be a 1D array of length {length}, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if len(arr) and not np.all(np.isfinite(arr.astype(np.float64))):
            raise ValueError(f"{name} contains NaN or infinite values")
        if len(arr) and not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer ids, got non-integer values")
    return np.ascontiguousarray(arr.astype(np.int64))


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    dist = _as_distmat(distmat)
    nq, ng = dist.shape
    return (
        dist,
        _as_ids(q_pids, "q_pids", nq),
        _as_ids(g_pids, "g_pids", ng),
        _as_ids(q_camids, "q_camids", nq),
        _as_ids(g_camids, "g_camids", ng),
    )


# --------------------------------------------------------------------------- numba kernels
@njit(parallel=True, cache=True)
def _rank_stats_kernel(distmat, q_pids, q_camids, g_pids, g_camids, order, sorted_pids):
    """Per-query (first-match rank, AP, INP, has-NaN) without sorting the rows.

    For one query with ``m`` true matches: the matches (found through the pid-sorted gallery
    ``order``) are sorted by ``(distance, index)``; one pass over the row then sends every
    non-junk non-match ``k`` to the bucket ``p`` = number of matches ranked before ``k``
    (skipped when ``k`` is farther than the hardest match; otherwise a branch-free count for
    ``m <= 64``, a binary search above). The 0-based rank of the ``t``-th match is
    ``t + sum(bucket[:t + 1])``.
    """
    nq, ng = distmat.shape
    first = np.full(nq, -1, dtype=np.int64)
    ap = np.zeros(nq, dtype=np.float64)
    inp = np.zeros(nq, dtype=np.float64)
    has_nan = np.zeros(nq, dtype=np.bool_)
    for i in prange(nq):
        row = distmat[i]
        qp = q_pids[i]
        qc = q_camids[i]
        lo = lower_bound(sorted_pids, 0, sorted_pids.shape[0], qp)
        hi = lower_bound(sorted_pids, 0, sorted_pids.shape[0], qp + 1)
        m = 0
        for t in range(lo, hi):
            if g_camids[order[t]] != qc:
                m += 1
        if m == 0:
            for k in range(ng):
                if row[k] != row[k]:
                    has_nan[i] = True
                    break
            continue
        idx = np.empty(m, dtype=np.int64)
        c = 0
        for t in range(lo, hi):  # ``order`` is stable: indices ascend inside a pid group
            j = order[t]
            if g_camids[j] != qc:
                idx[c] = j
                c += 1
        dist = row[idx]
        perm = np.argsort(dist, kind="mergesort")  # stable: equal distances keep index order
        sd = dist[perm]
        si = idx[perm]
        dmax = sd[m - 1]
        buckets = np.zeros(m + 1, dtype=np.int64)
        for k in range(ng):
            d = row[k]
            if d != d:
                has_nan[i] = True
            if d > dmax:  # after every match (the common case for a good model)
                continue
            if m <= _LINEAR_MAX_MATCHES:  # branch-free count, vectorised by LLVM
                p = 0
                for t in range(m):
                    p += sd[t] < d
            else:  # binary search: number of matches strictly closer than d
                p = lower_bound(sd, 0, m, d)
            if p < m and sd[p] == d:  # tie with matches: the smaller gallery index first
                while p < m and sd[p] == d and si[p] < k:
                    p += 1
            buckets[p] += g_pids[k] != qp  # matches and junk share the query pid: not counted
        before = 0
        total = 0.0
        r = 0
        for t in range(m):
            before += buckets[t]
            r = t + before
            total += (t + 1.0) / (r + 1.0)
            if t == 0:
                first[i] = r
        ap[i] = total / m
        inp[i] = m / (r + 1.0)
    return first, ap, inp, has_nan


@njit(parallel=True, cache=True)
def _sgs_kernel(distmat, q_pids, q_camids, g_camids, order, group_starts, group_pids, keys):
    """0-based rank of the sampled true match among one sampled image per identity (-1: none).

    ``keys[i, j]`` is the random priority of gallery entry ``j`` for query ``i``: for every
    identity, the entry of another camera than the query's with the smallest key is sampled.
    """
    nq = distmat.shape[0]
    ngroups = len(group_pids)
    ranks = np.full(nq, -1, dtype=np.int64)
    for i in prange(nq):
        qp = q_pids[i]
        qc = q_camids[i]
        g = lower_bound(group_pids, 0, group_pids.shape[0], qp)
        if g == ngroups or group_pids[g] != qp:
            continue
        best = -1
        best_key = np.inf
        for t in range(group_starts[g], group_starts[g + 1]):
            j = order[t]
            if g_camids[j] != qc and keys[i, j] < best_key:
                best_key = keys[i, j]
                best = j
        if best < 0:
            continue
        dstar = distmat[i, best]
        r = 0
        for h in range(ngroups):
            if h == g:
                continue
            pick = -1
            pick_key = np.inf
            for t in range(group_starts[h], group_starts[h + 1]):
                j = order[t]
                if g_camids[j] != qc and keys[i, j] < pick_key:
                    pick_key = keys[i, j]
                    pick = j
            if pick >= 0:
                d = distmat[i, pick]
                if d < dstar or (d == dstar and pick < best):
                    r += 1
        ranks[i] = r
    return ranks


# --------------------------------------------------------------------------- public API
def query_rank_stats(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query ranking statistics, the building block of :func:`evaluate_rank`.

    Args:
        distmat: ``(Q, G)`` distances (see the module docstring for dtypes, junk and ties).
        q_pids, q_camids: ``(Q,)`` integer identities / cameras of the queries.
        g_pids, g_camids: ``(G,)`` integer identities / cameras of the gallery.

    Returns:
        ``first`` ``(Q,)`` int64 0-based rank of the first true match (-1: query skipped, no true
        match), ``ap`` ``(Q,)`` float64 average precision, ``inp`` ``(Q,)`` float64 inverse
        negative penalty (both 0 for skipped queries).

    Complexity: rows are never sorted. Per query with ``m`` true matches and ``n`` gallery
    entries of its identity: ``O(log G + n)`` to find the matches (binary search in the
    pid-sorted gallery), ``O(m log m)`` to sort them, then a single ``O(G)`` pass over the row.
    In that pass, entries farther than the hardest match cost ``O(1)``; each other entry costs
    ``O(m)`` branch-free SIMD compares when ``m <= 64`` (a bounded constant) or an
    ``O(log m)`` binary search otherwise: ``O(G min(m, 64, log m))`` worst case, i.e.
    ``O(G)`` per query, versus ``O(G log G)`` plus a ``G``-long index array for a full argsort.
    Extra memory is ``O(m)`` per query. Queries run in parallel (numba ``prange``).

    Raises:
        ValueError: shapes disagree, the matrix is empty or contains NaN (the first offending
            query row is named).
    """
    dist, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids
    )
    order = np.argsort(g_pids, kind="stable")
    sorted_pids = np.ascontiguousarray(g_pids[order])
    if len(sorted_pids) and sorted_pids[-1] == np.iinfo(np.int64).max:
        raise ValueError("g_pids must be smaller than the int64 maximum")
    first, ap, inp, has_nan = _rank_stats_kernel(
        dist, q_pids, q_camids, g_pids, g_camids, order, sorted_pids
    )
    if has_nan.any():
        bad = int(np.flatnonzero(has_nan)[0])
        raise ValueError(
            f"distmat contains NaN (first in query row {bad}, {int(has_nan.sum())} rows in all)"
        )
    return first, ap, inp


def aggregate_rank_stats(
    first: np.ndarray, ap: np.ndarray, inp: np.ndarray, max_rank: int = 50
) -> tuple[np.ndarray, float, float]:
    """CMC curve ``(max_rank,)`` float64, mAP and mINP from per-query :func:`query_rank_stats`.

    Raises:
        ValueError: no query has a true match, or ``max_rank < 1``.
    """
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    valid = first >= 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no valid query: none of the {len(first)} queries has a true match in the gallery "
            "(same identity, different camera)"
        )
    if num_valid < len(first):
        logger.debug("%d of %d queries have no true match and are skipped",
                     len(first) - num_valid, len(first))
    hist = np.bincount(np.minimum(first[valid], max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(hist).astype(np.float64) / num_valid
    return cmc, float(ap[valid].mean()), float(inp[valid].mean())


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    return_minp: bool = False,
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, float]:
    """CMC and mAP (and mINP) of a ``(Q, G)`` distance matrix, standard re-ID protocol.

    Junk (same pid and camera) is ignored, queries without a true match are skipped, ties are
    broken by gallery index (``np.argsort(kind="stable")`` order); see the module docstring.
    Complexity: ``O(Q * G log m)`` worst case with ``m`` true matches per query, no row sort
    (see :func:`query_rank_stats`).

    Args:
        distmat: ``(Q, G)`` distances, smaller is more similar.
        q_pids, q_camids: ``(Q,)`` integer query identities / cameras.
        g_pids, g_camids: ``(G,)`` integer gallery identities / cameras.
        max_rank: length of the CMC curve.
        return_minp: also return mINP.

    Returns:
        ``(cmc, mAP)`` or ``(cmc, mAP, mINP)``: ``cmc`` float64 ``(max_rank,)``, fractions in
        [0, 1]; ``mAP`` and ``mINP`` floats in [0, 1].

    Raises:
        ValueError: bad shapes, empty matrix, NaN distances or no valid query.
    """
    first, ap, inp = query_rank_stats(distmat, q_pids, g_pids, q_camids, g_camids)
    cmc, mean_ap, minp = aggregate_rank_stats(first, ap, inp, max_rank)
    if return_minp:
        return cmc, mean_ap, minp
    return cmc, mean_ap


def evaluate_rank_cuhk03(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    num_repeats: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """CUHK03 classic single-gallery-shot CMC (Li et al., CVPR 2014), averaged over repeats.

    For every query and repeat, every gallery image taken by the query's camera is excluded
    (all identities, as in the classic protocol where the gallery is the other view of the
    camera pair); of the remaining images one per identity is sampled uniformly, and the query
    is ranked against these single shots. Queries whose identity has no image left are
    skipped. Ties are broken by gallery index as in :func:`evaluate_rank`.

    Sampling rule (exactly reproducible): ``rng = np.random.default_rng(seed)``; for every
    repeat, ``keys = rng.random((Q, G))`` (drawn in blocks of query rows, which yields the
    same numbers); query ``i`` samples, for every identity, its eligible gallery image ``j``
    with the smallest ``keys[i, j]`` (the first one on equal keys).

    Args:
        distmat: ``(Q, G)`` distances; q/g pids and camids: integer arrays as in
            :func:`evaluate_rank`.
        max_rank: length of the CMC curve.
        num_repeats: number of independent gallery samplings averaged (10 in the protocol).
        seed: seed of the sampling.

    Returns:
        ``(cmc, mAP)``: ``cmc`` float64 ``(max_rank,)`` averaged over repeats; ``mAP`` the mean
        over repeats and valid queries of the AP on the sampled gallery, which holds exactly one
        true match, so AP = 1 / rank (the mean reciprocal rank).

    Raises:
        ValueError: bad inputs, NaN distances, ``num_repeats < 1`` or no valid query.
    """
    dist, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids
    )
    if int(num_repeats) < 1:
        raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    nan_rows = np.flatnonzero(np.isnan(dist).any(axis=1))
    if len(nan_rows):
        raise ValueError(f"distmat contains NaN (first in query row {int(nan_rows[0])})")
    nq, ng = dist.shape
    order = np.argsort(g_pids, kind="stable")
    group_pids, group_starts = np.unique(g_pids[order], return_index=True)
    group_starts = np.append(group_starts, ng).astype(np.int64)
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, (1 << 22) // ng)
    cmc = np.zeros(max_rank, dtype=np.float64)
    rr_sum = 0.0
    num_valid = -1
    for _ in range(int(num_repeats)):
        ranks = np.empty(nq, dtype=np.int64)
        for start in range(0, nq, rows_per_block):
            stop = min(nq, start + rows_per_block)
            keys = rng.random((stop - start, ng))
            ranks[start:stop] = _sgs_kernel(
                dist[start:stop], q_pids[start:stop], q_camids[start:stop], g_camids, order,
                group_starts, group_pids, keys,
            )
        valid = ranks >= 0
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError(
                f"no valid query: none of the {nq} queries has a gallery image of its identity "
                "taken by another camera"
            )
        hist = np.bincount(np.minimum(ranks[valid], max_rank), minlength=max_rank + 1)
        cmc += np.cumsum(hist[:max_rank]) / num_valid
        rr_sum += float(np.mean(1.0 / (ranks[valid] + 1.0)))
    logger.debug("CUHK03 single-gallery-shot: %d valid queries of %d", num_valid, nq)
    return cmc / num_repeats, rr_sum / num_repeats

