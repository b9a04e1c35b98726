"""Supervised re-ID baseline: label-smoothed cross-entropy + batch-hard triplet (BNNeck).

Gives the source-only model (direct transfer) and the supervised upper bound (train on the
target's labels). The triplet loss uses the pooled pre-neck feature and the cross-entropy the
post-neck logits (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-ID",
CVPRW 2019).
"""
from __future__ import annotations

from typing import Any

import torch

from reid.data.domain_batches import DomainBatches
from reid.engine.runner import BaseRunner


class SupervisedRunner(BaseRunner):
    """Args:
        batches: identity-balanced batches of the labelled training set (``pid`` as index).
        ce_loss: ``(logits, targets) -> loss`` (label smoothing inside).
        triplet_loss: ``(features, targets) -> loss`` or None.
        triplet_weight: weight of the triplet term.
        **kwargs: the arguments of :class:`BaseRunner`.
    """

    def __init__(
        self,
        *,
        batches: DomainBatches,
        ce_loss: Any,
        triplet_loss: Any | None,
        triplet_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batches = batches
        self.ce_loss = ce_loss
        self.triplet_loss = triplet_loss
        self.triplet_weight = triplet_weight

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        batch = self.batches.next(self.device)
        with self.autocast():
            out = self.train_model(batch["img"], domains=batch["domain"])
        losses = {"loss_ce": self.ce_loss(out["logits"].float(), batch["index"])}
        if self.triplet_loss is not None and self.triplet_weight > 0:
            trip = self.triplet_loss(out["global"].float(), batch["index"])
            losses["loss_triplet"] = self.triplet_weight * trip
        return losses

    def method_state(self) -> dict[str, Any]:
        return {"batches": self.batches.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["batches"])
