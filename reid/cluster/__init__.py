"""Pseudo labels at scale: exact and approximate (IVF) kNN, sparse k-reciprocal Jaccard distance
(plain and camera-aware; in memory or streamed in row blocks), DBSCAN (CPU and torch/GPU),
SpCL's self-paced reliability criterion, k-means, labelling within camera groups (a topology
prior), pseudo-label quality measures, and test-time re-ranking.

``build_pseudo_labeler(cfg, device)`` picks the labeler named by ``CLUSTER.METHOD`` from
:data:`PSEUDO_LABELERS`.
"""
from __future__ import annotations

from typing import Any

import torch

from reid.cluster.ca_jaccard import camera_aware_jaccard_distance
from reid.cluster.camera import camera_centred
from reid.cluster.dbscan import dbscan, dbscan_cpu, dbscan_torch
from reid.cluster.groups import CameraGroupLabeler, camera_group_index
from reid.cluster.jaccard import jaccard_distance
from reid.cluster.kmeans import KMeansLabeler, kmeans_labels
from reid.cluster.knn import knn, knn_ivf, knn_recall, search_knn
from reid.cluster.quality import camera_pair_quality, label_quality
from reid.cluster.reliability import (
    SelfPacedLabeler,
    cluster_reliability,
    independence_threshold,
    relabel_kept,
    self_paced_filter,
)
from reid.cluster.rerank import rerank_distance
from reid.utils.registry import Registry

__all__ = ["camera_centred", "camera_aware_jaccard_distance", "knn", "knn_ivf", "knn_recall",
           "search_knn", "jaccard_distance", "dbscan",
           "dbscan_cpu", "dbscan_torch",
           "cluster_reliability", "independence_threshold", "self_paced_filter", "relabel_kept",
           "SelfPacedLabeler", "kmeans_labels", "KMeansLabeler", "rerank_distance",
           "PSEUDO_LABELERS", "build_pseudo_labeler", "CameraGroupLabeler", "camera_group_index",
           "camera_pair_quality", "label_quality"]

PSEUDO_LABELERS = Registry("pseudo labeler")


@PSEUDO_LABELERS.register("dbscan")
def _build_dbscan_labeler(cfg: Any, device: torch.device | str | None) -> SelfPacedLabeler:
    c = cfg.CLUSTER
    return SelfPacedLabeler(eps=c.EPS, eps_gap=c.EPS_GAP, min_samples=c.MIN_SAMPLES, k1=c.K1,
                            k2=c.K2, self_paced=c.SELF_PACED, device=device,
                            k1_plus_one=c.K1_PLUS_ONE, knn_backend=c.KNN_BACKEND,
                            camera_aware=c.CAMERA_AWARE, k1_inter=c.K1_INTER,
                            k2_inter=c.K2_INTER, knn_method=c.KNN,
                            knn_options={"nlist": c.IVF_NLIST, "nprobe": c.IVF_NPROBE,
                                         "fp16": c.IVF_FP16, "pq_m": c.IVF_PQ,
                                         "spherical": c.IVF_SPHERICAL},
                            block_rows=c.BLOCK_ROWS)


@PSEUDO_LABELERS.register("kmeans")
def _build_kmeans_labeler(cfg: Any, device: torch.device | str | None) -> KMeansLabeler:
    return KMeansLabeler(num_clusters=cfg.CLUSTER.NUM_CLUSTERS, niter=cfg.CLUSTER.KMEANS_NITER,
                         seed=cfg.SEED, device=device)


def build_pseudo_labeler(cfg: Any, device: torch.device | str | None = None) -> Any:
    """The pseudo labeler named by ``cfg.CLUSTER.METHOD`` ("dbscan" or "kmeans"); it maps
    (N, D) features to ``(labels int64 (N,), stats dict)`` and has ``state_dict``."""
    return PSEUDO_LABELERS.get(cfg.CLUSTER.METHOD)(cfg, device)
