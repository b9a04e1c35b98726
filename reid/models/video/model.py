"""The re-ID wrapper of a video backbone: BN neck, optional classifier, the encoder contract.

Contract (identical to the image encoders of ``reid.models``): ``model(x, domains=None)`` with a
clip batch ``x`` of shape ``(B, C, T, H, W)``:

* train mode -> ``{"global": (B, D) pooled backbone feature, "feat": (B, D) after the BN neck
  (not normalised), "logits": (B, num_classes) when num_classes > 0}``;
* eval mode -> the L2-normalised ``(B, D)`` neck feature.

The neck is ``BatchNorm1d`` with its bias frozen at zero (BNNeck, Luo et al., CVPRW 2019). With
``num_domains > 1`` every BatchNorm of the model (neck, CNN trunks, I3D's ``BatchNorm3d``)
becomes a :class:`reid.models.norm.DomainSpecificBatchNorm` (Chang et al., CVPR 2019, as used
by SpCL), routed per sample by ``domains`` exactly as in the image encoder: ``domains=None``
means branch 0 in training and the test domain in eval.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from reid.models.norm import (
    DomainSpecificBatchNorm,
    convert_dsbn,
    num_bn_domains,
    set_test_domain,
    use_domains,
)


def _convert_bn3d(module: nn.Module, num_domains: int, test_domain: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm3d):
            setattr(module, name, DomainSpecificBatchNorm(child, num_domains, test_domain))
        elif not isinstance(child, DomainSpecificBatchNorm):
            _convert_bn3d(child, num_domains, test_domain)


class VideoReIDModel(nn.Module):
    """Backbone (clip -> ``(B, D)``) + BN neck + optional linear classifier.

    Args:
        backbone: module with ``out_dim`` mapping ``(B, C, T, H, W)`` to ``(B, out_dim)``.
        num_classes: classifier outputs; 0 = no classifier (unsupervised training).
        num_domains: BN branches (domain-specific BN when > 1).
        test_domain: branch used in eval mode without ``domains`` (-1 = the last, the target).

    Attributes:
        feat_dim: embedding width D; num_domains: number of BN branches.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 0, num_domains: int = 1,
                 test_domain: int = -1) -> None:
        super().__init__()
        if num_domains < 1 or num_classes < 0:
            raise ValueError(f"invalid head: num_domains={num_domains}, "
                             f"num_classes={num_classes}")
        self.backbone = backbone
        self.feat_dim = int(backbone.out_dim)
        self.num_classes = num_classes
        self.neck = nn.BatchNorm1d(self.feat_dim)
        nn.init.ones_(self.neck.weight)
        nn.init.zeros_(self.neck.bias)
        self.neck.bias.requires_grad_(False)
        self.classifier = None
        if num_classes > 0:
            self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        if num_domains > 1:
            convert_dsbn(self, num_domains, test_domain)
            _convert_bn3d(self, num_domains, test_domain)

    @property
    def num_domains(self) -> int:
        """Number of BN branches (1 without domain-specific BN)."""
        return num_bn_domains(self)

    def set_test_domain(self, domain: int) -> None:
        """BN branch used in eval mode when no ``domains`` are given (-1 = the last)."""
        set_test_domain(self, domain)

    def forward(self, x: Tensor, domains: Tensor | None = None) -> dict[str, Tensor] | Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        with use_domains(self, domains):
            feats = self.backbone(x)
            bn = self.neck(feats)
        if not self.training:
            return F.normalize(bn.float(), dim=1)
        out = {"global": feats, "feat": bn}
        if self.classifier is not None:
            out["logits"] = self.classifier(bn)
        return out
