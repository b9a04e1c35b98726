"""Feature-level evaluation: blockwise distances ranked immediately, and the VehicleID protocol."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid.evaluation.rank import aggregate_rank_stats, query_rank_stats

logger = logging.getLogger(__name__)

__all__ = ["pairwise_distance", "evaluate_features", "evaluate_vehicleid"]

_METRICS = ("euclidean", "cosine")


def _as_features(x, name: str) -> torch.Tensor:
    """2D floating tensor (numpy arrays are wrapped without a copy when possible)."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2D (num_samples, dim), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"{name} contains NaN or infinite values (first in row {bad})")
    return t


def _block_distance(
    x: torch.Tensor, y: torch.Tensor, metric: str, y_sqnorm: torch.Tensor | None
) -> torch.Tensor:
    """Distances of :func:`pairwise_distance`; for ``cosine`` both inputs must be unit rows."""
    dist = x @ y.t()
    if metric == "cosine":
        return dist.neg_().add_(1.0)
    dist.mul_(-2.0).add_((x * x).sum(dim=1, keepdim=True)).add_(y_sqnorm.unsqueeze(0))
    return dist.clamp_(min=0.0)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """``(N, M)`` distances between rows of ``x`` ``(N, D)`` and ``y`` ``(M, D)``, same device.

    ``euclidean`` is the squared Euclidean distance ``|x|^2 + |y|^2 - 2 x.y`` (clamped at 0);
    ``cosine`` is ``1 - cos(x, y)`` (rows are normalised here; zero rows give distance 1).
    The result has the dtype of ``x`` and is computed in place on a single ``(N, M)`` buffer.
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {_METRICS}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    if metric == "cosine":
        return _block_distance(F.normalize(x, dim=1), F.normalize(y, dim=1), metric, None)
    return _block_distance(x, y, metric, (y * y).sum(dim=1))


def _summary(cmc: np.ndarray, mean_ap: float, minp: float, num_valid: int) -> dict[str, Any]:
    def at(k: int) -> float:
        return float(cmc[min(k, len(cmc)) - 1])

    return {
        "mAP": mean_ap,
        "mINP": minp,
        "cmc": cmc,
        "rank1": at(1),
        "rank5": at(5),
        "rank10": at(10),
        "num_valid_queries": num_valid,
    }


def evaluate_features(
    query_feats: torch.Tensor | np.ndarray,
    gallery_feats: torch.Tensor | np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    metric: str = "euclidean",
    normalize: bool = True,
    block_size: int = 2048,
    max_rank: int = 50,
    rerank: dict[str, float] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Rank gallery features for every query feature and report mAP, mINP and CMC.

    Distances are computed for ``block_size`` query rows at a time (torch matmul on ``device``)
    and each block is ranked at once with :func:`reid.evaluation.rank.query_rank_stats`, so the
    full ``(Q, G)`` matrix never exists: peak memory beyond the features is about
    ``block_size * G`` float32 values (a few blocks' bookkeeping aside). Results are identical
    to :func:`evaluate_rank` on the full matrix (same protocol, junk removal and tie rule).

    Args:
        query_feats: ``(Q, D)`` features (tensor or array, any device). Distances use the
            promoted dtype of both inputs (float64 if either is float64, otherwise float32).
        gallery_feats: ``(G, D)`` features.
        q_pids, q_camids: ``(Q,)`` integer identities / cameras; g_pids, g_camids: ``(G,)``.
        metric: ``"euclidean"`` (squared Euclidean distance) or ``"cosine"`` (1 - cos).
        normalize: L2-normalise the features first.
        block_size: query rows per distance block.
        max_rank: length of the CMC curve.
        rerank: ``None`` or ``{"k1": 20, "k2": 6, "lambda_value": 0.3}``: evaluate instead the
            dense ``(Q, G)`` k-reciprocal re-ranked distance of
            ``reid.cluster.rerank.rerank_distance`` (this path holds the full matrix).
        device: where distances are computed; ``None`` = the device of ``query_feats`` (CPU for
            arrays).

    Returns:
        ``{"mAP", "mINP", "rank1", "rank5", "rank10"}`` floats (fractions in [0, 1]), ``"cmc"``
        float64 ``(max_rank,)`` and ``"num_valid_queries"`` int.

    Raises:
        ValueError: empty / non-2D / non-finite features, mismatched dimensions or lengths,
            unknown metric, ``block_size < 1``, no valid query.
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {_METRICS}")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    qf = _as_features(query_feats, "query_feats")
    gf = _as_features(gallery_feats, "gallery_feats")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"query_feats and gallery_feats dimensions differ: {qf.shape[1]} vs {gf.shape[1]}"
        )
    for name, values, n in (("q_pids", q_pids, len(qf)), ("q_camids", q_camids, len(qf)),
                            ("g_pids", g_pids, len(gf)), ("g_camids", g_camids, len(gf))):
        if len(values) != n:
            raise ValueError(f"{name} has length {len(values)} but there are {n} features")
    dtype = torch.promote_types(qf.dtype, gf.dtype)
    if dtype not in (torch.float32, torch.float64):  # half precision is not enough to rank
        dtype = torch.float32
    qf = qf.to(dtype)
    gf = gf.to(dtype)
    device = torch.device(device) if device is not None else qf.device
    gf = gf.to(device)
    if normalize:
        gf = F.normalize(gf, dim=1)

    if rerank is not None:
        missing = [k for k in ("k1", "k2", "lambda_value") if k not in rerank]
        if missing:
            raise KeyError(f"rerank dict lacks {missing}; expected keys k1, k2, lambda_value")
        from reid.cluster.rerank import rerank_distance

        qf_all = qf.to(device)
        if normalize:
            qf_all = F.normalize(qf_all, dim=1)
        dense = rerank_distance(
            qf_all, gf, k1=int(rerank["k1"]), k2=int(rerank["k2"]),
            lambda_value=float(rerank["lambda_value"]), device=device,
        )
        first, ap, inp = query_rank_stats(np.asarray(dense), q_pids, g_pids, q_camids, g_camids)
        cmc, mean_ap, minp = aggregate_rank_stats(first, ap, inp, max_rank)
        return _summary(cmc, mean_ap, minp, int((first >= 0).sum()))

    if metric == "cosine" and not normalize:
        gf = F.normalize(gf, dim=1)
    g_sqnorm = (gf * gf).sum(dim=1) if metric == "euclidean" else None
    q_pids = np.asarray(q_pids)
    q_camids = np.asarray(q_camids)
    nq = len(qf)
    first = np.empty(nq, dtype=np.int64)
    ap = np.empty(nq, dtype=np.float64)
    inp = np.empty(nq, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, nq, int(block_size)):
            stop = min(nq, start + int(block_size))
            qb = qf[start:stop].to(device)
            if normalize or metric == "cosine":
                qb = F.normalize(qb, dim=1)
            dist = _block_distance(qb, gf, metric, g_sqnorm)
            del qb
            block = dist.cpu().numpy()
            del dist
            first[start:stop], ap[start:stop], inp[start:stop] = query_rank_stats(
                block, q_pids[start:stop], g_pids, q_camids[start:stop], g_camids
            )
            del block
    cmc, mean_ap, minp = aggregate_rank_stats(first, ap, inp, max_rank)
    return _summary(cmc, mean_ap, minp, int((first >= 0).sum()))


def evaluate_vehicleid(
    feats: torch.Tensor | np.ndarray,
    pids: np.ndarray,
    *,
    num_repeats: int = 10,
    seed: int = 0,
    metric: str = "euclidean",
    normalize: bool = True,
    max_rank: int = 50,
    block_size: int = 2048,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """VehicleID protocol (Liu et al., CVPR 2016): one random gallery image per identity.

    Inputs are the features and identities of the whole test pool (e.g. the 800 / 1600 / 2400
    identity test list); there are no cameras. For every repeat one image of every identity is
    drawn as its gallery image and all remaining images are queries (identities with a single
    image only enlarge the gallery), every query has exactly one true match, and nothing is
    junk. Metrics are averaged over the repeats.

    Sampling rule (exactly reproducible): ``rng = np.random.default_rng(seed)``; for every
    repeat ``keys = rng.random(N)`` and the gallery image of an identity is its image with the
    smallest key (the first one on equal keys); queries and gallery keep the pool order.

    Args:
        feats: ``(N, D)`` features of the test pool.
        pids: ``(N,)`` integer identities.
        num_repeats: random splits averaged (10 in the protocol).
        seed: seed of the splits.
        metric, normalize, max_rank, block_size, device: as in :func:`evaluate_features`.

    Returns:
        the dict of :func:`evaluate_features` (``mAP``, ``mINP``, ``rank1/5/10``, ``cmc``)
        averaged over repeats; ``num_valid_queries`` is the number of queries per repeat.

    Raises:
        ValueError: bad inputs, ``num_repeats < 1``, or no identity with two images.
    """
    if int(num_repeats) < 1:
        raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
    feats_t = _as_features(feats, "feats")
    pids_np = np.asarray(pids.detach().cpu().numpy() if hasattr(pids, "detach") else pids)
    if pids_np.ndim != 1 or len(pids_np) != len(feats_t):
        raise ValueError(f"pids must have shape ({len(feats_t)},), got {pids_np.shape}")
    pids_np = pids_np.astype(np.int64)
    _, inverse, counts = np.unique(pids_np, return_inverse=True, return_counts=True)
    if counts.max() < 2:
        raise ValueError("VehicleID protocol needs identities with at least two images; every "
                         f"one of the {len(counts)} identities has a single image")
    rng = np.random.default_rng(seed)
    n = len(pids_np)
    totals: dict[str, Any] = {}
    for _ in range(int(num_repeats)):
        keys = rng.random(n)
        by_key = np.lexsort((np.arange(n), keys, inverse))  # per identity, ascending key
        is_first = np.ones(n, dtype=bool)
        is_first[1:] = inverse[by_key][1:] != inverse[by_key][:-1]
        gallery_mask = np.zeros(n, dtype=bool)
        gallery_mask[by_key[is_first]] = True
        g_idx = np.flatnonzero(gallery_mask)
        q_idx = np.flatnonzero(~gallery_mask)
        res = evaluate_features(
            feats_t[torch.from_numpy(q_idx)], feats_t[torch.from_numpy(g_idx)],
            pids_np[q_idx], pids_np[g_idx], np.zeros(len(q_idx), np.int64),
            np.ones(len(g_idx), np.int64), metric=metric, normalize=normalize,
            block_size=block_size, max_rank=max_rank, device=device,
        )
        for key, value in res.items():
            totals[key] = totals.get(key, 0) + value
    out = {k: v / num_repeats for k, v in totals.items() if k != "num_valid_queries"}
    for key in ("mAP", "mINP", "rank1", "rank5", "rank10"):
        out[key] = float(out[key])
    out["num_valid_queries"] = int(totals["num_valid_queries"]) // int(num_repeats)
    return out
