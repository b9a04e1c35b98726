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
    "build_supervised_losses",
    "camera_proxies",
    "camera_proxy_losses",
    "cross_entropy_label_smooth",
    "euclidean_dist",
    "proxy_centroids",
    "unified_contrastive_loss",
]


def build_supervised_losses(cfg, num_classes: int) -> tuple[CrossEntropyLabelSmooth,
                                                             TripletLoss | None]:
    """``SOLVER.LABEL_SMOOTHING`` / ``SOLVER.TRIPLET_*`` -> (cross-entropy, triplet or None).

    The triplet loss is None when ``SOLVER.TRIPLET_WEIGHT`` is 0 (the weight itself is applied
    by the trainer).
    """
    ce = CrossEntropyLabelSmooth(num_classes, epsilon=cfg.SOLVER.LABEL_SMOOTHING)
    triplet = None
    if cfg.SOLVER.TRIPLET_WEIGHT > 0:
        triplet = TripletLoss(margin=cfg.SOLVER.TRIPLET_MARGIN,
                              normalize=cfg.SOLVER.TRIPLET_NORM_FEAT)
    return ce, triplet
