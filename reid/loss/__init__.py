"""Losses: label-smoothed cross-entropy, batch-hard triplet, SpCL's unified contrastive loss and
the camera-aware proxy losses of CAP."""
from __future__ import annotations

from reid.loss.camera_proxy import camera_proxies, camera_proxy_losses, proxy_centroids
from reid.loss.contrastive import unified_contrastive_loss
from reid.loss.softmax import CrossEntropyLabelSmooth, cross_entropy_label_smooth
from reid.loss.triplet import TripletLoss, batch_hard_triplet_loss, euclidean_dist

__all__ = [
    "CrossEntropyLabelSmooth",
    "TripletLoss",
    "batch_hard_triplet_loss",
    "camera_proxies",
    "camera_proxy_losses",
    "cross_entropy_label_smooth",
    "euclidean_dist",
    "proxy_centroids",
    "unified_contrastive_loss",
]

