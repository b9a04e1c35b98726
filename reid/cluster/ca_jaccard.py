"""Camera-aware Jaccard distance (after Chen et al., "CA-Jaccard: Camera-aware Jaccard Distance
for Person Re-identification", CVPR 2024).

The k-reciprocal sets of the plain Jaccard distance (:mod:`reid.cluster.jaccard`) come from one
ranking list over all images. Images of the same camera share background, lighting and
viewpoint, so they fill that list and a true match seen by another camera rarely enters the
reciprocal set: the Jaccard distance then links images of one camera and seldom across cameras.
Here the sets are built from two lists per image, one within its camera and one over the other
cameras, so that cross-camera neighbours always take part:

* ``intra[i]``: i itself, then its ``k_intra`` nearest images of the same camera;
  ``inter[i]``: its ``k_inter`` nearest images of all other cameras (shorter when a camera has
  fewer images; d(i, j) = 2 - 2 x_i.x_j).
* R_intra(i, k) = {j in intra[i, :k+1] : i in intra[j, :k+1]};
  R_inter(i, k) = {j in inter[i, :k] : i in inter[j, :k]}.
* R(i) = R_intra(i, k_intra) u R_inter(i, k_inter) (camera-aware k-reciprocal neighbours); the
  half sets R_half(j) = R_intra(j, round(k_intra / 2)) u R_inter(j, round(k_inter / 2)) drive the
  usual expansion (add R_half(j) for j in R(i) when |R_half(j) n R(i)| > 2/3 |R_half(j)|).
* V[i] = softmax over the expanded set of -d(i, j) (as in Zhong et al., CVPR 2017).
* Camera-aware query expansion: V_qe[i] = mean of V over intra[i, :q2_intra] (i first) and
  inter[i, :q2_inter].
* d_J(i, j) = 1 - m / (2 - m), m = sum_k min(V_qe[i, k], V_qe[j, k]).

With a single camera and ``k_inter = q2_inter = 0`` this is exactly
:func:`reid.cluster.jaccard.jaccard_distance` with ``k1_plus_one=True``. The formulation above is
this module's own reading of the idea (two ranking lists, reciprocity within each); the paper's
CLQE additionally re-weights mined neighbours, which is not done here.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from reid.cluster.jaccard import (
    encode_v,
    jaccard_all,
    l2_normalize,
    query_expand,
    reciprocal_neighbours,
)
from reid.cluster.knn import as_float32_matrix

__all__ = ["camera_knn", "camera_aware_jaccard_distance"]


def camera_knn(x: np.ndarray, camids: np.ndarray, k: int, same_camera: bool,
               block: int = 4096, device: str | torch.device | None = None) -> np.ndarray:
    """Nearest neighbours of every row restricted to its own camera or to the other cameras.

    Args:
        x: (N, D) float32 L2-normalised features.
        camids: (N,) int camera id of every row.
        k: neighbours per row (the list of ``same_camera`` lists holds the row itself first and
            then ``k`` others).
        same_camera: True: within the row's camera; False: over all other cameras.
        block: rows per similarity block.
        device: torch device of the similarity products and top-k (default CPU).

    Returns:
        (N, k + 1) int64 (same camera) or (N, k) int64 (other cameras), nearest first (float32
        similarities; exact ties in any order, as :func:`reid.cluster.knn.knn`), padded with -1
        where the camera / the other cameras have fewer images.
    """
    n = x.shape[0]
    cam = np.asarray(camids, dtype=np.int64).reshape(-1)
    if cam.size != n:
        raise ValueError(f"camids has {cam.size} entries for {n} features")
    width = k + 1 if same_camera else k
    out = np.full((n, width), -1, dtype=np.int64)
    xt = torch.from_numpy(x).to(device or "cpu")
    for c in np.unique(cam):
        rows = np.flatnonzero(cam == c)
        base = rows if same_camera else np.flatnonzero(cam != c)
        kk = min(width, base.size)
        if kk == 0:
            continue
        db_t = xt[torch.from_numpy(base).to(xt.device)].T.contiguous()
        for s in range(0, rows.size, block):
            r = rows[s:s + block]
            sim = xt[torch.from_numpy(r).to(xt.device)] @ db_t
            if same_camera:  # the row itself first, whatever the rounding of its self-product
                sim[torch.arange(r.size), torch.arange(s, s + r.size)] = np.inf
            order = torch.topk(sim, kk, dim=1, sorted=True).indices.cpu()
            out[r, :kk] = base[order.numpy()]
    return out


def _union(a: np.ndarray, ca: np.ndarray, b: np.ndarray, cb: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise concatenation of two disjoint padded sets (valid entries first)."""
    n = a.shape[0]
    out = np.full((n, a.shape[1] + b.shape[1]), -1, np.int64)
    out[:, :a.shape[1]] = a
    rows, pos = np.nonzero(np.arange(b.shape[1])[None, :] < cb[:, None])
    out[rows, ca[rows] + pos] = b[rows, pos]
    return out, ca + cb


def camera_aware_jaccard_distance(features: np.ndarray | torch.Tensor,
                                  camids: np.ndarray | list[int], k_intra: int = 10,
                                  k_inter: int = 5, q2_intra: int = 4, q2_inter: int = 0,
                                  device: str | torch.device | None = None) -> sp.csr_matrix:
    """Sparse camera-aware k-reciprocal Jaccard distance between all rows of ``features``.

    Args:
        features: (N, D) float features; L2-normalised here (a zero or non-finite row raises).
        camids: (N,) camera id of every row.
        k_intra: size of the within-camera reciprocal neighbourhood (>= 1).
        k_inter: size of the cross-camera reciprocal neighbourhood (>= 0; 0: none).
        q2_intra: within-camera query-expansion size, the row itself counted (>= 1).
        q2_inter: cross-camera query-expansion size (>= 0).
        device: device of the neighbour search (:func:`camera_knn`); the sparse kernels run on
            the CPU.

    Returns:
        (N, N) float32 CSR, sorted indices, distances below 1 stored (absent = 1), diagonal
        stored and exactly 0, exactly symmetric (see :func:`reid.cluster.jaccard.jaccard_all`).

    Example:
        >>> dist = camera_aware_jaccard_distance(feats, camids, k_intra=10, k_inter=5)
        >>> labels = dbscan(dist, eps=0.5, min_samples=2)
    """
    if k_intra < 1 or k_inter < 0 or q2_intra < 1 or q2_inter < 0:
        raise ValueError(f"need k_intra >= 1, k_inter >= 0, q2_intra >= 1, q2_inter >= 0; got "
                         f"{k_intra}, {k_inter}, {q2_intra}, {q2_inter}")
    x = l2_normalize(as_float32_matrix(features))
    cam = np.asarray(camids, dtype=np.int64).reshape(-1)
    intra = camera_knn(x, cam, max(k_intra, q2_intra - 1), same_camera=True, device=device)
    inter = camera_knn(x, cam, max(k_inter, q2_inter), same_camera=False, device=device)
    h_intra, h_inter = int(round(k_intra / 2)), int(round(k_inter / 2))
    # reciprocal_neighbours(lists, k) reads k + 1 columns: the intra lists start with i itself
    r1, c1 = _union(*reciprocal_neighbours(intra, k_intra),
                    *reciprocal_neighbours(inter, k_inter - 1))
    r2, c2 = _union(*reciprocal_neighbours(intra, h_intra),
                    *reciprocal_neighbours(inter, h_inter - 1))
    v = encode_v(x, r1, c1, r2, c2)
    qe = np.concatenate([intra[:, :q2_intra], inter[:, :q2_inter]], axis=1)
    if qe.shape[1] > 1:
        v = query_expand(v, qe)
    return jaccard_all(v)
