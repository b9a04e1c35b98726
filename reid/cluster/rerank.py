"""Test-time k-reciprocal re-ranking (Zhong et al., CVPR 2017) on the sparse Jaccard machinery.

Distance convention: features are L2-normalised and d_orig(i, j) = ||x_i - x_j||^2 =
2 - 2 x_i.x_j (in [0, 4]); it is used both for the softmax weights of V and as the original
distance in the final mix. (Zhong's reference code instead divides the squared distance by its
per-column maximum over probe + gallery; we keep the unscaled squared Euclidean distance, as
SpCL's ``compute_jaccard_distance`` does for V.) As in the reference re-ranking, the neighbour
lists, k-reciprocal sets, V and the query expansion use all probe + gallery samples, and
R(i, k1) uses k1 + 1 neighbours (the sample itself included), i.e. ``k1_plus_one=True``.
"""
from __future__ import annotations

import numpy as np
import torch

from reid.cluster.jaccard import jaccard_rows, l2_normalize, sparse_v_qe
from reid.cluster.knn import as_float32_matrix, knn

__all__ = ["rerank_distance"]


def rerank_distance(query_feats: np.ndarray | torch.Tensor,
                    gallery_feats: np.ndarray | torch.Tensor, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3,
                    device: str | torch.device | None = None, knn_backend: str = "auto"
                    ) -> np.ndarray:
    """Re-ranked query-gallery distance: (1 - lambda) d_J + lambda d_orig.

    Args:
        query_feats: (nq, D) features; gallery_feats: (ng, D) features (normalised here).
        k1, k2: re-ranking parameters (20, 6); the search size k1 + 1 is clipped to nq + ng.
        lambda_value: weight of the original distance (0.3).
        device, knn_backend: where / how the kNN search runs.

    Returns:
        (nq, ng) float32 distances (lower = more similar).
    """
    q = l2_normalize(as_float32_matrix(query_feats, "query features"), "query features")
    g = l2_normalize(as_float32_matrix(gallery_feats, "gallery features"), "gallery features")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dims differ: {q.shape[1]} vs {g.shape[1]}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    nq = q.shape[0]
    x = np.concatenate([q, g])
    kc = min(x.shape[0], k1 + 1)
    _, rank = knn(x, kc, device=device, backend=knn_backend)
    v_qe = sparse_v_qe(x, rank, k1, k2)
    jac = jaccard_rows(v_qe, np.arange(nq, dtype=np.int64), columns=v_qe[nq:])
    d_j = np.ones((nq, g.shape[0]), np.float32)
    rows = np.repeat(np.arange(nq), np.diff(jac.indptr))
    d_j[rows, jac.indices] = jac.data
    d_orig = np.maximum(2.0 - 2.0 * (q @ g.T), 0.0).astype(np.float32)
    return ((1.0 - lambda_value) * d_j + lambda_value * d_orig).astype(np.float32)
