"""k-means pseudo labels with faiss (as in OpenUnReID's k-means baselines)."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from reid.cluster.jaccard import l2_normalize
from reid.cluster.knn import as_float32_matrix, faiss, faiss_gpu_available

logger = logging.getLogger(__name__)

__all__ = ["kmeans_labels", "KMeansLabeler"]


def kmeans_labels(features: np.ndarray | torch.Tensor, k: int, niter: int = 300, seed: int = 0,
                  device: str | torch.device | None = None) -> np.ndarray:
    """k-means (Lloyd, faiss) of (N, D) features; returns (N,) int64 labels 0..C-1.

    Empty clusters are dropped and the remaining ones renumbered 0..C-1 in centroid order, so
    C <= k. Runs on the GPU when ``device`` is CUDA and faiss has GPU support.

    Raises:
        ValueError: k outside [1, N], NaN features; RuntimeError: faiss missing.
    """
    if faiss is None:
        raise RuntimeError("k-means pseudo labels need faiss (pip install faiss-cpu)")
    x = as_float32_matrix(features)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= N={n}, got k={k}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gpu = dev.type == "cuda" and faiss_gpu_available()
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, gpu=gpu, verbose=False,
                      max_points_per_centroid=max(256, -(-n // k)))
    km.train(x)
    _, assign = km.index.search(x, 1)
    _, labels = np.unique(assign[:, 0], return_inverse=True)
    return labels.astype(np.int64)


class KMeansLabeler:
    """k-means pseudo labels with the same interface as :class:`SelfPacedLabeler`.

    Args:
        num_clusters: k (clipped to N).
        niter: Lloyd iterations.
        seed: base seed; call t uses ``seed + t`` so that epochs differ but a resumed run
            repeats the same sequence (the call counter is the state).
        device: CUDA uses faiss-GPU when available.
    """

    def __init__(self, num_clusters: int = 500, niter: int = 300, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        self.num_clusters, self.niter, self.seed, self.device = num_clusters, niter, seed, device
        self.calls = 0

    def __call__(self, features: np.ndarray | torch.Tensor,
                 camids: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """(N,) int64 labels 0..C-1 (no outliers) of L2-normalised features, and statistics
        (``camids`` is accepted for the common labeler interface and not used)."""
        x = l2_normalize(as_float32_matrix(features))
        k = min(self.num_clusters, x.shape[0])
        labels = kmeans_labels(x, k, niter=self.niter, seed=self.seed + self.calls,
                               device=self.device)
        self.calls += 1
        stats = {"num_clusters": int(labels.max()) + 1, "num_outliers": 0}
        logger.info("k-means pseudo labels: %d clusters", stats["num_clusters"])
        return labels, stats

    def state_dict(self) -> dict[str, Any]:
        """Number of calls so far (drives the per-epoch seed)."""
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the call counter saved by :meth:`state_dict`."""
        self.calls = int(state["calls"])
