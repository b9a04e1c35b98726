"""Losses: label-smoothed cross-entropy, batch-hard triplet, unified contrastive (hand cases)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid.loss import (
    CrossEntropyLabelSmooth,
    TripletLoss,
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    unified_contrastive_loss,
)


# ----------------------------------------------------------------------------- cross-entropy
def test_label_smooth_hand_case() -> None:
    # p = (1/4, 1/2, 1/4), target 1, eps 0.1, K 3:
    # -(0.9 log 1/2 + 0.1/3 (log 1/4 + log 1/2 + log 1/4)) = log 2 (0.9 + 0.5/3)
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]], dtype=torch.float64)
    loss = CrossEntropyLabelSmooth(3, 0.1)(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(2.0) * (0.9 + 0.5 / 3), abs=1e-12)


def test_label_smooth_matches_definitions() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (7,), generator=g)
    plain = cross_entropy_label_smooth(logits, y, epsilon=0.0)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-12)
    q = 0.8 * F.one_hot(y, 5).double() + 0.2 / 5
    direct = -(q * torch.log_softmax(logits, 1)).sum(1).mean()
    assert cross_entropy_label_smooth(logits, y, 0.2).item() == pytest.approx(direct.item(),
                                                                             rel=1e-12)


def test_label_smooth_errors() -> None:
    ce = CrossEntropyLabelSmooth(4)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        ce(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"out of range.*\[4\]"):
        ce(torch.zeros(2, 4), torch.tensor([0, 4]))


# ----------------------------------------------------------------------------- triplet
def _hand_batch() -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    return feats, torch.tensor([0, 0, 1, 1])


def test_triplet_hand_case_hard_margin() -> None:
    # anchors: (d+, d-) = (3, 1), (3, 2), (sqrt 17, 4), (sqrt 17, 1)
    feats, labels = _hand_batch()
    r17 = math.sqrt(17.0)
    want = (2.3 + 1.3 + max(0.0, r17 - 4 + 0.3) + (r17 - 1 + 0.3)) / 4
    assert TripletLoss(0.3)(feats, labels).item() == pytest.approx(want, abs=1e-9)


def test_triplet_hand_case_soft_margin_and_lonely_anchor() -> None:
    feats, labels = _hand_batch()
    r17 = math.sqrt(17.0)
    sp = lambda v: math.log1p(math.exp(v))
    want = (sp(2.0) + sp(1.0) + sp(r17 - 4) + sp(r17 - 1)) / 4
    assert batch_hard_triplet_loss(feats, labels, margin=0.0).item() == pytest.approx(want,
                                                                                       abs=1e-9)
    # a far-away identity with a single image: skipped as anchor, never the hardest negative
    more = torch.cat([feats, torch.tensor([[50.0, 50.0]], dtype=torch.float64)])
    got = batch_hard_triplet_loss(more, torch.tensor([0, 0, 1, 1, 2]), margin=0.0)
    assert got.item() == pytest.approx(want, abs=1e-9)


def test_triplet_matches_loop_reference_with_normalisation() -> None:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(12, 6, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    got = batch_hard_triplet_loss(feats, labels, margin=0.5, normalize=True)
    x = F.normalize(feats, dim=1)
    terms = []
    for a in range(12):
        pos = max((x[a] - x[p]).norm() for p in range(12) if p != a and labels[p] == labels[a])
        neg = min((x[a] - x[n]).norm() for n in range(12) if labels[n] != labels[a])
        terms.append(torch.relu(pos - neg + 0.5))
    want = torch.stack(terms).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    (g1,) = torch.autograd.grad(got, feats)
    (g2,) = torch.autograd.grad(want, feats)
    torch.testing.assert_close(g1, g2)


def test_triplet_identical_positives_have_finite_gradient() -> None:
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    loss = batch_hard_triplet_loss(feats, torch.tensor([0, 0, 1, 1]), margin=2.0)
    loss.backward()
    assert torch.isfinite(feats.grad).all()


def test_triplet_errors() -> None:
    with pytest.raises(ValueError, match="positive and a negative"):
        batch_hard_triplet_loss(torch.randn(4, 3), torch.tensor([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="positive and a negative"):
        batch_hard_triplet_loss(torch.randn(3, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(-0.1)


def test_build_supervised_losses() -> None:
    from reid.config import get_cfg
    from reid.engine.adapters import supervised_losses as build_supervised_losses

    cfg = get_cfg()
    cfg.SOLVER.TRIPLET_MARGIN = 0.0
    ce, trip = build_supervised_losses(cfg, num_classes=10)
    assert (ce.num_classes, ce.epsilon, trip.margin) == (10, cfg.SOLVER.LABEL_SMOOTHING, 0.0)
    cfg.SOLVER.TRIPLET_WEIGHT = 0.0
    assert build_supervised_losses(cfg, num_classes=10)[1] is None


# ----------------------------------------------------------------------------- contrastive
def test_unified_contrastive_hand_case() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    # tau 0.5: logits (2, 0, -2) and (0, 2, 0)
    loss = unified_contrastive_loss(feats, protos, torch.tensor([0, 2]), temperature=0.5)
    first = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    second = -math.log(1 / (2 + math.exp(2)))
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-12)


def test_unified_contrastive_gradient_reaches_prototypes() -> None:
    g = torch.Generator().manual_seed(2)
    feats = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    protos = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    args = (feats.requires_grad_(), protos.requires_grad_())
    fn = lambda f, p: unified_contrastive_loss(f, p, torch.tensor([4, 0, 0]), temperature=0.2)
    assert torch.autograd.gradcheck(fn, args)


def test_unified_contrastive_errors() -> None:
    with pytest.raises(ValueError, match=r"out of range \[0, 3\).*\[3\]"):
        unified_contrastive_loss(torch.zeros(2, 4), torch.zeros(3, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="dimension mismatch"):
        unified_contrastive_loss(torch.zeros(2, 4), torch.zeros(3, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        unified_contrastive_loss(torch.zeros(2, 4), torch.zeros(3, 4), torch.tensor([0, 1]), 0.0)
