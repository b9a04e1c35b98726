"""The image re-ID encoder: backbone, global pooling, optional reduction, BN neck, classifier."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid.models.norm import num_bn_domains, set_test_domain, use_domains
from reid.models.pooling import build_pooling


class ReIDEncoder(nn.Module):
    """Backbone -> pooling -> [Linear to ``embed_dim``] -> [BNNeck] -> [classifier].

    Forward ``model(x, domains=None)`` with ``x`` of shape ``(B, 3, H, W)`` and ``domains`` a
    ``(B,)`` LongTensor of per-sample domain ids (or None):

    * train mode: ``{"global": (B, C) pooled backbone feature (before reduction and neck),
      "feat": (B, D) post-neck feature, not normalised, "logits": (B, num_classes)}`` (logits
      only with a classifier); dtypes follow autocast.
    * eval mode: ``(B, D)`` float32 L2-normalised post-neck features.

    With domain-specific BN (:func:`reid.models.convert_dsbn`) each sample is normalised by its
    domain's BN; ``domains=None`` means branch 0 in training and the test domain
    (:meth:`set_test_domain`) in eval. Without DSBN ``domains`` is ignored.

    The BN neck is the BNNeck of Luo et al. (CVPR-W 2019): ``BatchNorm1d`` with its bias frozen
    at 0. The classifier is a bias-free linear layer on the (dropped-out) post-neck feature.

    Args:
        backbone: module mapping images to ``(B, C, h, w)`` with an ``out_channels`` attribute.
        pooling: "avg", "max" or "gem".
        gem_p: initial GeM exponent.
        embed_dim: size ``D`` of a linear reduction after pooling; 0 keeps ``D = C``.
        neck: add the BN neck.
        dropout: dropout probability before the classifier.
        num_classes: classifier outputs; 0 = no classifier.
        channels_last: feed the backbone channels-last tensors.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        pooling: str = "avg",
        gem_p: float = 3.0,
        embed_dim: int = 0,
        neck: bool = True,
        dropout: float = 0.0,
        num_classes: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim < 0 or num_classes < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"invalid head: embed_dim={embed_dim}, num_classes={num_classes}, "
                             f"dropout={dropout}")
        self.backbone = backbone
        self.channels_last = channels_last
        self.pool = build_pooling(pooling, gem_p)
        in_dim = int(backbone.out_channels)
        self.feat_dim = int(embed_dim) if embed_dim > 0 else in_dim
        self.reduction: nn.Module | None = None
        if embed_dim > 0:
            self.reduction = nn.Linear(in_dim, self.feat_dim)
            nn.init.kaiming_normal_(self.reduction.weight, mode="fan_out")
            nn.init.zeros_(self.reduction.bias)
        self.neck: nn.Module | None = None
        if neck:
            self.neck = nn.BatchNorm1d(self.feat_dim)
            nn.init.ones_(self.neck.weight)
            nn.init.zeros_(self.neck.bias)
            self.neck.bias.requires_grad_(False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_classes = int(num_classes)
        self.classifier: nn.Module | None = None
        if num_classes > 0:
            self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def num_domains(self) -> int:
        """Number of BN branches (1 without domain-specific BN)."""
        return num_bn_domains(self)

    def set_test_domain(self, domain: int) -> None:
        """BN branch used in eval mode when no ``domains`` are given (-1 = the last)."""
        set_test_domain(self, domain)

    def forward(self, x: Tensor, domains: Tensor | None = None) -> dict[str, Tensor] | Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with use_domains(self, domains):
            fmap = self.backbone(x)
            pooled = self.pool(fmap).flatten(1)
            emb = self.reduction(pooled) if self.reduction is not None else pooled
            feat = self.neck(emb) if self.neck is not None else emb
        if not self.training:
            return F.normalize(feat.float(), dim=1)
        out = {"global": pooled, "feat": feat}
        if self.classifier is not None:
            out["logits"] = self.classifier(self.dropout(feat))
        return out
