"""Quality of pseudo labels against ground truth (for logging only; training never sees it)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from reid.cluster.reliability import with_singletons

__all__ = ["label_quality", "camera_pair_quality", "partition_ari"]


def _pairs(*keys: np.ndarray) -> tuple[int, int]:
    """(pairs sharing every key, of which in the same camera): the last key is the camera."""
    _, n_all = np.unique(np.stack(keys[:-1]), axis=1, return_counts=True)
    _, n_cam = np.unique(np.stack(keys), axis=1, return_counts=True)
    return int((n_all * (n_all - 1)).sum() // 2), int((n_cam * (n_cam - 1)).sum() // 2)


def camera_pair_quality(pred: np.ndarray, true: np.ndarray, camids: np.ndarray
                        ) -> dict[str, float]:
    """Pair precision / recall of pseudo labels, split into same-camera and cross-camera pairs.

    A pair of images is a pseudo positive when both have the same label >= 0 (-1: un-clustered,
    never paired) and a true positive when they also share the identity. Cross-camera pairs
    are what a USL method has to discover; the same-camera ones are easy.

    Args:
        pred: (N,) pseudo labels, -1 for un-clustered.
        true: (N,) true identities.
        camids: (N,) camera ids.

    Returns:
        ``{"intra_precision", "intra_recall", "cross_precision", "cross_recall"}``; a precision
        with no pseudo positive pair is 0, a recall with no true pair is 0.

    Example:
        >>> camera_pair_quality(np.array([0, 0, 0, -1]), np.array([5, 5, 6, 5]),
        ...                     np.array([0, 1, 1, 0]))["cross_precision"]
        0.5
    """
    pred, true, cams = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (pred, true, camids))
    if not (pred.shape == true.shape == cams.shape):
        raise ValueError(f"pred, true and camids must have the same length, got "
                         f"{pred.shape[0]}, {true.shape[0]}, {cams.shape[0]}")
    pred = with_singletons(pred)
    pos_all, pos_same = _pairs(pred, cams)  # pseudo positive pairs
    tp_all, tp_same = _pairs(pred, true, cams)  # ... of the same identity
    gt_all, gt_same = _pairs(true, cams)  # true pairs

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {
        "intra_precision": ratio(tp_same, pos_same),
        "intra_recall": ratio(tp_same, gt_same),
        "cross_precision": ratio(tp_all - tp_same, pos_all - pos_same),
        "cross_recall": ratio(tp_all - tp_same, gt_all - gt_same),
    }


def partition_ari(labels: np.ndarray, reference: np.ndarray) -> float:
    """Adjusted Rand index of two (N,) pseudo labelings, every un-clustered image (-1) of
    either a singleton: how far an approximate path (IVF kNN) keeps the exact path's
    partition (1.0: the same partition)."""
    return float(adjusted_rand_score(with_singletons(reference), with_singletons(labels)))


def label_quality(pred: np.ndarray, true: np.ndarray, camids: np.ndarray | None = None
                  ) -> dict[str, float]:
    """NMI and ARI of pseudo labels against true ids (every outlier, -1, counts as a
    singleton), plus :func:`camera_pair_quality` when ``camids`` is given."""
    lab = with_singletons(pred)
    out = {
        "nmi": float(normalized_mutual_info_score(true, lab)),
        "ari": float(adjusted_rand_score(true, lab)),
    }
    if camids is not None:
        out.update(camera_pair_quality(pred, true, camids))
    return out
