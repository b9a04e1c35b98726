"""Self-paced cluster reliability criterion of SpCL (Ge et al., "Self-paced Contrastive Learning
with Hybrid Memory for Domain Adaptive Object Re-ID", NeurIPS 2020, Sec. 3.3).

Clusters are computed at three radii (eps - gap, eps, eps + gap). With every outlier turned into
its own singleton cluster, for each sample x_i with cluster I(x_i) at eps:

* R_comp(i)  = 1 - IoU(I(x_i), I_tight(x_i))  (compactness: does the cluster split when tighter?)
* R_indep(i) = 1 - IoU(I(x_i), I_loose(x_i))  (independence: does it merge when looser?)

Following the published SpCL code, per cluster both scores are reduced with ``min``; the
independence threshold is fixed once (first epoch) at index ``min(n - 1, round(0.9 n))`` of the
sorted per-cluster R_indep of the n non-singleton clusters; a sample keeps its cluster iff
``cluster_R_indep <= threshold`` and ``R_comp(i) <= cluster_R_comp``; the rest become
un-clustered instances.

IoUs come from label contingencies: |A n B| is the number of samples sharing both labels, so
everything is O(N log N) and no N x N matrix is built.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from reid.cluster.ca_jaccard import camera_aware_jaccard_distance
from reid.cluster.dbscan import dbscan
from reid.cluster.jaccard import jaccard_distance, l2_normalize
from reid.cluster.knn import as_float32_matrix

logger = logging.getLogger(__name__)

__all__ = ["with_singletons", "cluster_reliability", "cluster_min", "independence_threshold",
           "self_paced_filter", "relabel_kept", "SelfPacedLabeler"]


def with_singletons(labels: np.ndarray) -> np.ndarray:
    """Copy of (N,) int labels where every -1 gets its own new id (max + 1, max + 2, ...)."""
    labels = np.asarray(labels, dtype=np.int64)
    out = labels.copy()
    out_mask = labels < 0
    start = labels.max() + 1 if labels.size and labels.max() >= 0 else 0
    out[out_mask] = start + np.arange(int(out_mask.sum()))
    return out


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample IoU of its cluster in labelling ``a`` and its cluster in labelling ``b``."""
    size_a = np.bincount(a)[a]
    size_b = np.bincount(b)[b]
    key = a * (b.max() + 1) + b
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    inter = cnt[inv]
    return inter / (size_a + size_b - inter)


def cluster_reliability(labels_tight: np.ndarray, labels: np.ndarray, labels_loose: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample R_comp and R_indep (float64, (N,), in [0, 1]); -1 labels are singletons.

    Args:
        labels_tight: (N,) int labels at eps - gap; labels: at eps; labels_loose: at eps + gap.
    """
    tight, mid, loose = (with_singletons(x) for x in (labels_tight, labels, labels_loose))
    if not tight.shape == mid.shape == loose.shape or mid.ndim != 1:
        raise ValueError(f"label arrays must be 1-D of equal length, got {tight.shape}, "
                         f"{mid.shape}, {loose.shape}")
    return 1.0 - _pair_iou(mid, tight), 1.0 - _pair_iou(mid, loose)


def cluster_min(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-cluster minimum of per-sample ``scores`` for singleton-ified labels 0..C-1."""
    out = np.full(labels.max() + 1, np.inf)
    np.minimum.at(out, labels, scores)
    return out


def independence_threshold(labels: np.ndarray, r_indep: np.ndarray, quantile: float = 0.9
                           ) -> float | None:
    """SpCL's independence threshold from the first epoch; None when no cluster has 2+ members.

    The per-cluster (min) R_indep of clusters with more than one member are sorted and the value
    at index ``min(n - 1, round(quantile * n))`` (half to even, like ``np.round``) is returned.
    """
    lab = with_singletons(labels)
    sizes = np.bincount(lab)
    vals = np.sort(cluster_min(lab, r_indep)[sizes > 1])
    if vals.size == 0:
        return None
    return float(vals[min(vals.size - 1, int(np.round(vals.size * quantile)))])


def self_paced_filter(labels: np.ndarray, r_comp: np.ndarray, r_indep: np.ndarray,
                      threshold: float | None) -> np.ndarray:
    """(N,) bool: sample keeps its cluster (SpCL rule); outliers (-1) are never kept.

    Keep iff ``min R_indep of its cluster <= threshold`` and ``R_comp(i) <= min R_comp of its
    cluster``. ``threshold=None`` keeps nothing.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if threshold is None:
        return np.zeros(labels.shape, bool)
    lab = with_singletons(labels)
    indep_c = cluster_min(lab, r_indep)
    comp_c = cluster_min(lab, r_comp)
    return (labels >= 0) & (indep_c[lab] <= threshold) & (r_comp <= comp_c[lab])


def relabel_kept(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Final labels: kept members of clusters with >= 2 kept members, renumbered 0..C-1 in the
    order of the original cluster ids; everything else -1 (an un-clustered instance)."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, -1, np.int64)
    kept = labels[keep & (labels >= 0)]
    if kept.size == 0:
        return out
    counts = np.bincount(kept, minlength=labels.max() + 1)
    valid = counts >= 2
    new_id = np.cumsum(valid) - 1
    mask = keep & (labels >= 0)
    mask[mask] = valid[labels[mask]]
    out[mask] = new_id[labels[mask]]
    return out


class SelfPacedLabeler:
    """Jaccard + DBSCAN pseudo labels with SpCL's self-paced reliability criterion.

    Args:
        eps: DBSCAN radius on the Jaccard distance (0.6); must satisfy eps + eps_gap < 1.
        eps_gap: offset of the tighter / looser runs (0.02).
        min_samples: DBSCAN min_samples, the point itself counted (4).
        k1, k2, k1_plus_one: Jaccard distance parameters (see :func:`jaccard_distance`).
        self_paced: False returns the plain DBSCAN labels at eps.
        device: device of kNN and DBSCAN (CUDA uses faiss-GPU / torch DBSCAN).
        knn_backend: "auto", "faiss" or "torch".
        camera_aware: use the camera-aware Jaccard distance
            (:func:`reid.cluster.ca_jaccard.camera_aware_jaccard_distance`) with ``k1`` / ``k2``
            as its within-camera sizes and ``k1_inter`` / ``k2_inter`` as its cross-camera sizes;
            every call then needs the camera ids.
        k1_inter, k2_inter: cross-camera reciprocal-neighbourhood and query-expansion sizes.
        knn_method: "exact" or "ivf" (approximate faiss IVF search, ``CLUSTER.KNN``).
        knn_options: IVF keywords (``nlist``, ``nprobe``, ``fp16``, ``pq_m``).
        block_rows: > 0 streams the Jaccard distance in row blocks and keeps only distances
            <= eps + eps_gap (all DBSCAN reads): the same labels with much less memory.

    State: the independence threshold, fixed at the first call that finds a cluster
    (:meth:`state_dict` / :meth:`load_state_dict`).
    """

    def __init__(self, eps: float = 0.6, eps_gap: float = 0.02, min_samples: int = 4,
                 k1: int = 30, k2: int = 6, self_paced: bool = True,
                 device: str | torch.device | None = None, k1_plus_one: bool = False,
                 knn_backend: str = "auto", camera_aware: bool = False, k1_inter: int = 5,
                 k2_inter: int = 0, knn_method: str = "exact", knn_options: dict | None = None,
                 block_rows: int = 0) -> None:
        if not (0 <= eps - eps_gap and eps + eps_gap < 1):
            raise ValueError(f"need 0 <= eps - eps_gap and eps + eps_gap < 1 (Jaccard distances "
                             f"are <= 1), got eps={eps}, eps_gap={eps_gap}")
        self.eps, self.eps_gap, self.min_samples = eps, eps_gap, min_samples
        self.k1, self.k2, self.k1_plus_one = k1, k2, k1_plus_one
        self.self_paced = self_paced
        self.device = device
        self.knn_backend = knn_backend
        self.camera_aware, self.k1_inter, self.k2_inter = camera_aware, k1_inter, k2_inter
        self.knn_method, self.knn_options = knn_method, dict(knn_options or {})
        self.block_rows = block_rows
        self.threshold: float | None = None

    def __call__(self, features: np.ndarray | torch.Tensor,
                 camids: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Pseudo labels of (N, D) features: (N,) int64 in -1..C-1 and a dict of statistics.

        ``camids`` (N,) are the camera ids of the rows, needed with ``camera_aware`` only.
        """
        x = l2_normalize(as_float32_matrix(features))
        if self.camera_aware:
            if camids is None:
                raise ValueError("the camera-aware Jaccard distance (CLUSTER.CAMERA_AWARE) needs "
                                 "the camera id of every clustered image")
            dist = camera_aware_jaccard_distance(x, camids, k_intra=self.k1,
                                                 k_inter=self.k1_inter, q2_intra=self.k2,
                                                 q2_inter=self.k2_inter, device=self.device)
        else:
            max_eps = self.eps + self.eps_gap if self.self_paced else self.eps
            dist = jaccard_distance(x, k1=self.k1, k2=self.k2, k1_plus_one=self.k1_plus_one,
                                    device=self.device, knn_backend=self.knn_backend,
                                    knn_method=self.knn_method, knn_options=self.knn_options,
                                    block_rows=self.block_rows, normalized=True,
                                    max_distance=max_eps if self.block_rows > 0 else None)
        labels = dbscan(dist, self.eps, self.min_samples, device=self.device)
        n_raw = int(labels.max()) + 1
        stats: dict[str, Any] = {"num_clusters_dbscan": n_raw,
                                 "num_outliers_dbscan": int((labels < 0).sum())}
        if not self.self_paced:
            final = labels
        else:
            tight = dbscan(dist, self.eps - self.eps_gap, self.min_samples, device=self.device)
            loose = dbscan(dist, self.eps + self.eps_gap, self.min_samples, device=self.device)
            r_comp, r_indep = cluster_reliability(tight, labels, loose)
            if self.threshold is None:
                self.threshold = independence_threshold(labels, r_indep)
                if self.threshold is not None:
                    logger.info("self-paced independence threshold fixed at %.4f",
                                self.threshold)
            keep = self_paced_filter(labels, r_comp, r_indep, self.threshold)
            final = relabel_kept(labels, keep)
            clustered = labels >= 0
            lab = with_singletons(labels)
            sizes = np.bincount(lab)
            indep_c = cluster_min(lab, r_indep)[sizes > 1]
            thr = np.inf if self.threshold is None else self.threshold
            comp_c = cluster_min(lab, r_comp)
            stats.update({
                "indep_pass_rate": float((indep_c <= thr).mean()) if indep_c.size else 0.0,
                "comp_pass_rate": float((r_comp[clustered] <= comp_c[lab[clustered]]).mean())
                if clustered.any() else 0.0,
                "kept_rate": float((final >= 0).sum() / clustered.sum()) if clustered.any()
                else 0.0,
                "threshold": float("nan") if self.threshold is None else self.threshold,
            })
        stats["num_clusters"] = int(final.max()) + 1 if final.size else 0
        stats["num_outliers"] = int((final < 0).sum())
        logger.info("pseudo labels: %d clusters, %d un-clustered of %d", stats["num_clusters"],
                    stats["num_outliers"], final.size)
        return final, stats

    def state_dict(self) -> dict[str, Any]:
        """The frozen independence threshold (None before the first clustered call)."""
        return {"indep_threshold": self.threshold}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the independence threshold saved by :meth:`state_dict`."""
        thr = state["indep_threshold"]
        self.threshold = None if thr is None else float(thr)
