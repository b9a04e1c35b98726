"""Camera-aware proxy learning for unsupervised re-ID (Wang et al., "Camera-aware Proxies for
Unsupervised Person Re-Identification", AAAI 2021) on top of the SpCL machinery.

Per epoch the target features are clustered exactly as SpCL does (Jaccard + DBSCAN + the
self-paced criterion); each cluster is then split by camera into proxies
(:func:`reid.loss.camera_proxy.camera_proxies`). A step computes the proxy centroids from the
memory's instance features and applies the intra- and inter-camera proxy losses
(:func:`reid.loss.camera_proxy.camera_proxy_losses`); the instance rows are then momentum-updated
as in SpCL. Only :meth:`update_labels` and :meth:`train_step` differ from :class:`SpCLRunner`.

With a source domain (UDA), SpCL's unified loss over source centroids, target clusters and
outliers is kept and the camera-aware terms are added for the target samples.

Choices: un-clustered images are their own proxy and cluster (SpCL's outliers; CAP drops them);
proxy centroids are recomputed from the instance memory at every step (CAP keeps a separate
proxy memory updated by momentum); target batches are drawn uniformly unless the target
sampler is ``"pk"`` (then P proxies x K images, un-clustered images left out, as CAP); both
proxy losses are means over the batch (CAP sums per-camera means of the intra-camera loss).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reid.cluster.groups import camera_group_index
from reid.engine.spcl import SpCLRunner
from reid.loss.camera_proxy import camera_proxies, camera_proxy_losses, proxy_centroids


class CAPRunner(SpCLRunner):
    """Camera-aware proxy losses on the targets, optionally with SpCL's unified loss.

    The loss of a step is ``spcl_weight * L_unified (every sample, SpCL) + intra_weight *
    L_intra + inter_weight * L_inter`` (the proxy losses on the target samples). USL as in CAP:
    ``spcl_weight=0`` (sources would then receive no loss:
    :func:`reid.config.validate.validate_cfg` refuses that config); UDA: SpCL plus the
    camera-aware terms, e.g. ``spcl_weight=1, intra_weight=0, inter_weight=0.5``. Every memory
    row of the batch is momentum-updated once per step, as in SpCL.

    Args:
        spcl_weight, intra_weight, inter_weight: loss weights (CAP: 0, 1, 0.5).
        proxy_temperature: tau of both proxy losses (CAP: 0.07).
        num_hard: hard negative proxies of the inter-camera loss (CAP: 50).
        num_unseen_skip: per camera of the sample's group holding no proxy of its cluster, the
            most similar proxies left out of the inter-camera negatives (0: CAP; see
            :func:`reid.loss.camera_proxy.camera_proxy_losses`).
        camera_groups: disjoint lists of camera ids that never share identities (the
            ``CLUSTER.CAMERA_GROUPS`` prior) for ``num_unseen_skip``; ``None``: one group.
        **kwargs: the arguments of :class:`SpCLRunner`; the label step needs the camera ids.
    """

    def __init__(self, *, spcl_weight: float = 0.0, intra_weight: float = 1.0,
                 inter_weight: float = 0.5, proxy_temperature: float = 0.07, num_hard: int = 50,
                 num_unseen_skip: int = 0, camera_groups: Sequence[Sequence[int]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.label_step.camids is None:
            raise ValueError("the camera-aware proxy method needs every target's camera ids")
        if min(spcl_weight, intra_weight, inter_weight) < 0 or not (
                spcl_weight or intra_weight or inter_weight):
            raise ValueError("CAP loss weights must be >= 0 and not all zero, got "
                             f"{(spcl_weight, intra_weight, inter_weight)}")
        if num_unseen_skip < 0:
            raise ValueError(f"CAP.UNSEEN_SKIP must be >= 0, got {num_unseen_skip}")
        self.spcl_weight = float(spcl_weight)
        self.intra_weight = float(intra_weight)
        self.inter_weight = float(inter_weight)
        self.proxy_temperature = float(proxy_temperature)
        self.num_hard = int(num_hard)
        self.num_unseen_skip = int(num_unseen_skip)
        self.camera_groups = [list(g) for g in camera_groups] if camera_groups else None
        self._proxies: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._proxy_groups: list[torch.Tensor | None] = []

    def sampler_groups(self, t: int) -> torch.Tensor:
        """Camera proxies of the clustered images, -1 for un-clustered ones (CAP's
        proxy-balanced sampling leaves them out)."""
        proxy = self._proxies[t][0].cpu()
        return proxy.masked_fill(self.label_step.labels[t] < 0, -1)

    def after_labels(self) -> dict[str, float]:
        """Split every target's clusters by camera into proxies; their number per target."""
        stats: dict[str, float] = {}
        self._proxies, self._proxy_groups = [], []
        camids = self.label_step.camids
        for t, cams in enumerate(camids):
            labels = self.label_step.labels[t].to(self.device)
            proxy, cluster, camera = camera_proxies(labels, torch.as_tensor(cams,
                                                                             device=labels.device))
            self._proxies.append((proxy, cluster, camera))
            self._proxy_groups.append(None if not self.camera_groups else torch.as_tensor(
                camera_group_index(camera.cpu().numpy(), self.camera_groups),
                device=camera.device))
            prefix = f"t{t}_" if len(camids) > 1 else ""
            stats[prefix + "num_proxies"] = float(cluster.numel())
        return stats

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        batch, feats = self.encode_batch()
        domains, indexes = batch["dataset"], batch["index"]
        x = self.memory.update_on_backward(feats, domains, indexes)
        losses: dict[str, torch.Tensor] = {}
        if self.spcl_weight:
            losses["loss_contrast"] = self.spcl_weight * self.memory(x, domains, indexes,
                                                                     update=False)
        intra = inter = x.new_zeros(())
        for t, (proxy, cluster, camera) in enumerate(self._proxies):
            sel = (domains == self.num_sources + t).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            centroids = proxy_centroids(self.memory.target_features(t), proxy, cluster.numel())
            a, b = camera_proxy_losses(x[sel], centroids, proxy[indexes[sel]], cluster, camera,
                                       self.proxy_temperature, self.num_hard,
                                       self.num_unseen_skip, self._proxy_groups[t])
            share = sel.numel() / domains.numel()
            intra, inter = intra + share * a, inter + share * b
        if self.intra_weight:
            losses["loss_intra"] = self.intra_weight * intra
        if self.inter_weight:
            losses["loss_inter"] = self.inter_weight * inter
        return losses
