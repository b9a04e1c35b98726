"""HybridMemory: loss values against direct formulas, gradients, momentum updates, state."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid.memory import HybridMemory, class_centroids


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=1)


def naive_loss(
    feats: torch.Tensor,
    domains: list[int],
    indexes: list[int],
    sources: list[torch.Tensor],
    targets: list[torch.Tensor],
    target_labels: list[list[int]],
    temperature: float,
    reduction: str = "domain_sum",
    eps: float = 0.0,
) -> torch.Tensor:
    """Direct SpCL Eq. 1 with Python loops: one joint softmax over every prototype; with
    ``domain_sum`` the per-domain means added up (the released ``L_s + L_t``), else the mean;
    ``eps`` as the released code: ``-log(exp(l+) / (sum exp(l) + eps) + eps)``."""
    protos: list[torch.Tensor] = []
    positive: dict[tuple[int, int], int] = {}
    for s, cent in enumerate(sources):
        for c in range(cent.shape[0]):
            positive[(s, c)] = len(protos)
            protos.append(cent[c])
    for t, (feat, labels) in enumerate(zip(targets, target_labels, strict=True)):
        d = len(sources) + t
        for k in sorted({lab for lab in labels if lab >= 0}):
            members = [i for i, lab in enumerate(labels) if lab == k]
            centroid = sum(feat[i] for i in members) / len(members)
            for i in members:
                positive[(d, i)] = len(protos)
            protos.append(centroid)
        for i, lab in enumerate(labels):
            if lab < 0:
                positive[(d, i)] = len(protos)
                protos.append(feat[i])
    per_domain: dict[int, list[torch.Tensor]] = {}
    for b in range(feats.shape[0]):
        logits = torch.stack([feats[b] @ p / temperature for p in protos])
        pos = positive[(domains[b], indexes[b])]
        prob = torch.exp(logits[pos]) / (torch.exp(logits).sum() + eps)
        per_domain.setdefault(domains[b], []).append(-torch.log(prob + eps))
    if reduction == "mean":
        return torch.stack([x for v in per_domain.values() for x in v]).mean()
    return sum(torch.stack(v).mean() for v in per_domain.values())


def _memory(sources, targets, temperature=0.05, momentum=0.2, labels=None,
            **kwargs) -> HybridMemory:
    dim = (sources or targets)[0].shape[1]
    mem = HybridMemory(dim, [s.shape[0] for s in sources], [t.shape[0] for t in targets],
                       temperature=temperature, momentum=momentum, **kwargs).double()
    for s, cent in enumerate(sources):
        mem.init_source(s, cent)
    for t, feat in enumerate(targets):
        mem.init_target(t, feat)
        if labels is not None:
            mem.set_target_labels(t, torch.tensor(labels[t]))
    return mem


# ----------------------------------------------------------------------------- exact values
def test_hand_computed_usl_loss() -> None:
    # USL, one target of 3 instances: v0, v1 clustered together, v2 an outlier.
    # Prototypes: c0 = (v0 + v1) / 2 = (0.5, 0.5) (not re-normalised), v2 = (0, 1).
    targets = [_unit([1.0, 0.0], [0.0, 1.0], [0.0, 1.0])]
    mem = _memory([], targets, temperature=0.5, labels=[[0, 0, -1]])
    feats = _unit([1.0, 0.0])
    loss = mem.eval()(feats, torch.tensor([0]), torch.tensor([0]))
    # logits: <f, c0> / 0.5 = 1, <f, v2> / 0.5 = 0 -> loss = log(1 + e^-1)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)), abs=1e-12)
    # the outlier's positive is its own instance: logits 1 (c0) and 2 (v2)
    loss = mem(_unit([0.0, 1.0]), torch.tensor([0]), torch.tensor([2]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)), abs=1e-12)


def test_hand_computed_uda_loss() -> None:
    # one source with 2 class centroids, one target with 2 outliers; tau = 1
    sources = [_unit([1.0, 0.0], [0.0, 1.0])]
    targets = [_unit([-1.0, 0.0], [0.0, -1.0])]
    mem = _memory(sources, targets, temperature=1.0).eval()
    loss = mem(_unit([1.0, 0.0]), torch.tensor([0]), torch.tensor([0]))
    expected = -math.log(math.e / (math.e + 1 + math.exp(-1) + 1))
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_hand_computed_uda_loss_is_the_sum_of_the_domain_means() -> None:
    # SpCL's UDA objective L_s + L_t, each the mean over its own domain's part of the batch.
    # One source with centroids e1, e2; one target with outliers -e1, -e2; tau = 1.
    # Batch: source sample e1 (class 0) with loss a; target samples -e1 (instance 0) and -e2
    # (instance 1) with loss b each.
    sources = [_unit([1.0, 0.0], [0.0, 1.0])]
    targets = [_unit([-1.0, 0.0], [0.0, -1.0])]
    feats = _unit([1.0, 0.0], [-1.0, 0.0], [0.0, -1.0])
    domains, indexes = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1])
    # logits of e1 against (e1, e2, -e1, -e2): (1, 0, -1, 0); of -e1: (-1, 0, 1, 0)
    a = -math.log(math.e / (math.e + 1 + math.exp(-1) + 1))
    b = a  # -e1 against its own row -e1 has the same logit pattern; -e2 likewise
    summed = _memory(sources, targets, temperature=1.0).eval()(feats, domains, indexes)
    assert summed.item() == pytest.approx(a / 1 + (b + b) / 2, abs=1e-12)  # L_s + L_t
    joint = _memory(sources, targets, temperature=1.0, reduction="mean").eval()
    assert joint(feats, domains, indexes).item() == pytest.approx((a + 2 * b) / 3, abs=1e-12)
    # with the released 1e-6 terms: -log(e / (e + 1 + e^-1 + 1 + eps) + eps) per sample
    eps = 1e-6
    a_eps = -math.log(math.e / (math.e + 2 + math.exp(-1) + eps) + eps)
    released = _memory(sources, targets, temperature=1.0, softmax_eps=eps).eval()
    assert released(feats, domains, indexes).item() == pytest.approx(2 * a_eps, abs=1e-12)
    assert abs(2 * a_eps - 2 * a) > 1e-7  # the terms are visible at this precision


@pytest.mark.parametrize("reduction, eps", [("domain_sum", 0.0), ("mean", 0.0),
                                            ("domain_sum", 1e-6)])
@pytest.mark.parametrize("case", ["uda", "usl", "two_targets", "two_sources_two_targets"])
def test_loss_matches_direct_formula(case: str, reduction: str, eps: float) -> None:
    g = torch.Generator().manual_seed(0)
    dim = 6
    rnd = lambda n: F.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=1)
    n_src = {"uda": [4], "usl": [], "two_targets": [3], "two_sources_two_targets": [3, 5]}[case]
    t_labels = {
        "uda": [[0, 1, 0, -1, 1, -1, 2, 2]],
        "usl": [[1, 1, -1, 0, 0, 0, -1]],
        "two_targets": [[0, -1, 0, 1, 1], [-1, 0, 0, -1]],
        "two_sources_two_targets": [[2, 0, -1, 2, 0, 1], [-1, -1, -1]],
    }[case]
    sources = [rnd(n) for n in n_src]
    targets = [rnd(len(lab)) for lab in t_labels]
    mem = _memory(sources, targets, temperature=0.05, labels=t_labels, reduction=reduction,
                  softmax_eps=eps)
    domains, indexes = [], []
    for s, n in enumerate(n_src):  # every source class, one repeated
        domains += [s] * (n + 1)
        indexes += list(range(n)) + [0]
    for t, lab in enumerate(t_labels):  # every target instance: clustered and outliers
        domains += [len(n_src) + t] * len(lab)
        indexes += list(range(len(lab)))
    feats = rnd(len(domains))
    got = mem.eval()(feats, torch.tensor(domains), torch.tensor(indexes))
    want = naive_loss(feats, domains, indexes, sources, targets, t_labels, 0.05, reduction, eps)
    assert got.item() == pytest.approx(want.item(), rel=1e-10)


def test_set_target_labels_with_gaps_and_reordering() -> None:
    # cluster ids {3, 7} behave exactly like {0, 1}: empty ids are not prototypes
    g = torch.Generator().manual_seed(1)
    feat = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    a = _memory([], [feat], labels=[[3, 7, 3, -1, 7]]).eval()
    b = _memory([], [feat], labels=[[0, 1, 0, -1, 1]]).eval()
    assert a.num_prototypes == b.num_prototypes == 3
    x = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    d, i = torch.zeros(5, dtype=torch.long), torch.arange(5)
    assert a(x, d, i).item() == pytest.approx(b(x, d, i).item(), rel=1e-12)


# ----------------------------------------------------------------------------- gradients
def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(2)
    sources = [F.normalize(torch.randn(3, 5, generator=g, dtype=torch.float64), dim=1)]
    targets = [F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)]
    mem = _memory(sources, targets, temperature=0.1, labels=[[0, 0, 1, -1, 1, -1]]).eval()
    feats = F.normalize(torch.randn(4, 5, generator=g, dtype=torch.float64), dim=1)
    domains, indexes = torch.tensor([0, 0, 1, 1]), torch.tensor([2, 2, 1, 3])
    # normalisation inside the function keeps the perturbed inputs valid unit vectors
    fn = lambda x: mem(F.normalize(x, dim=1), domains, indexes)
    assert torch.autograd.gradcheck(fn, (feats.clone().requires_grad_(),))


def test_training_gradient_uses_old_memory_then_updates() -> None:
    g = torch.Generator().manual_seed(3)
    sources = [F.normalize(torch.randn(3, 8, generator=g, dtype=torch.float64), dim=1)]
    targets = [F.normalize(torch.randn(7, 8, generator=g, dtype=torch.float64), dim=1)]
    labels = [[0, 1, 0, -1, 1, 1, -1]]
    mem = _memory(sources, targets, labels=labels)
    feats = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    domains, indexes = [0, 0, 1, 1, 1, 1], [1, 1, 0, 3, 4, 6]
    before = mem.features.clone()

    ref = feats.clone().requires_grad_()
    naive_loss(ref, domains, indexes, sources, targets, labels, 0.05).backward()

    x = feats.clone().requires_grad_()
    mem.train()(x, torch.tensor(domains), torch.tensor(indexes)).backward()
    torch.testing.assert_close(x.grad, ref.grad, rtol=1e-10, atol=1e-12)
    changed = (mem.features - before).abs().sum(1) > 0
    used = {1, 3 + 0, 3 + 3, 3 + 4, 3 + 6}  # rows: source class 1, target instances 0, 3, 4, 6
    assert set(changed.nonzero().squeeze(1).tolist()) == used


# ----------------------------------------------------------------------------- updates
def test_momentum_update_arithmetic() -> None:
    m = 0.2
    sources = [_unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]
    targets = [_unit([0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0])]
    mem = _memory(sources, targets, momentum=m, labels=[[0, 0, -1]])
    x = _unit([0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 2.0, 2.0], [0.0, 1.0, 0.0])
    # batch: source class 0, target instance 1 (clustered), source class 0 again, source class 1
    domains = torch.tensor([0, 1, 0, 0])
    indexes = torch.tensor([0, 1, 0, 1])
    feats = x.clone().requires_grad_()
    untouched = mem.target_features(0)[[0, 2]].clone()
    mem(feats, domains, indexes).backward()

    def step(v: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        u = m * v + (1 - m) * xi
        return u / u.norm()

    w0 = step(step(sources[0][0], x[0]), x[2])  # updated twice, in batch order
    w1 = step(sources[0][1], x[3])
    v1 = step(targets[0][1], x[1])
    torch.testing.assert_close(mem.source_centroids(0)[0], w0, rtol=0, atol=1e-14)
    torch.testing.assert_close(mem.source_centroids(0)[1], w1, rtol=0, atol=1e-14)
    torch.testing.assert_close(mem.target_features(0)[1], v1, rtol=0, atol=1e-14)
    assert torch.equal(mem.target_features(0)[[0, 2]], untouched)
    # the order matters: the other order gives a different (and not the mean) value
    other = step(step(sources[0][0], x[2]), x[0])
    assert (other - w0).abs().max() > 1e-3
    # hand check of one step: v = (1, 0, 0), x = (0, 0, 1): 0.2 v + 0.8 x normalised
    one = step(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
               torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(one, torch.tensor([0.2, 0.0, 0.8], dtype=torch.float64)
                               / math.sqrt(0.68))


def test_vectorised_update_equals_batch_loop() -> None:
    g = torch.Generator().manual_seed(4)
    mem = HybridMemory(16, [10], [30, 20], momentum=0.3)
    mem.init_source(0, torch.randn(10, 16, generator=g))
    mem.init_target(0, torch.randn(30, 16, generator=g))
    mem.init_target(1, torch.randn(20, 16, generator=g))
    ref = mem.features.clone()
    domains = torch.randint(0, 3, (200,), generator=g)
    sizes = torch.tensor([10, 30, 20])
    indexes = (torch.rand(200, generator=g) * sizes[domains]).long()
    feats = F.normalize(torch.randn(200, 16, generator=g), dim=1)
    mem.update(feats, domains, indexes)
    offsets = [0, 10, 40]
    for b in range(200):  # SpCL's loop: one sample at a time, batch order
        r = offsets[int(domains[b])] + int(indexes[b])
        ref[r] = F.normalize(0.3 * ref[r] + 0.7 * feats[b], dim=0)
    torch.testing.assert_close(mem.features, ref, rtol=0, atol=1e-6)


def test_no_update_without_backward_in_eval_or_no_grad() -> None:
    g = torch.Generator().manual_seed(5)
    mem = _memory([], [F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)])
    before = mem.features.clone()
    feats = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    d, i = torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2])
    mem.train()(feats.clone().requires_grad_(), d, i)  # forward only
    with torch.no_grad():
        mem(feats, d, i)
    mem.eval()(feats.clone().requires_grad_(), d, i).backward()
    mem.train()(feats, d, i)  # feats without grad: nothing to back-propagate
    assert torch.equal(mem.features, before)
    mem.train()(feats.clone().requires_grad_(), d, i).backward()
    assert not torch.equal(mem.features, before)


# ----------------------------------------------------------------------------- state, init
def test_state_dict_round_trip() -> None:
    g = torch.Generator().manual_seed(6)
    mem = HybridMemory(8, [4], [9])
    mem.init_source(0, torch.randn(4, 8, generator=g))
    mem.init_target(0, torch.randn(9, 8, generator=g))
    mem.set_target_labels(0, torch.tensor([0, 1, 1, -1, 0, 2, 2, -1, 1]))
    feats = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    d, i = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([1, 3, 0, 3, 8])
    mem(feats.clone().requires_grad_(), d, i).backward()
    state = {k: v.clone() for k, v in mem.state_dict().items()}
    assert set(state) == {"features", "labels", "initialized"}

    fresh = HybridMemory(8, [4], [9])
    fresh.load_state_dict(state)
    assert torch.equal(fresh.features, mem.features)
    assert torch.equal(fresh.target_labels(0), mem.target_labels(0))
    assert fresh.num_prototypes == mem.num_prototypes == 4 + 3 + 2
    torch.testing.assert_close(fresh.prototypes(), mem.prototypes(), rtol=0, atol=0)
    x = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    assert fresh.eval()(x, d, i).item() == mem.eval()(x, d, i).item()
    with pytest.raises(RuntimeError):
        HybridMemory(8, [4], [10]).load_state_dict(state)


def test_class_centroids() -> None:
    feats = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [0.0, -3.0], [3.0, 4.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    cent = class_centroids(feats, labels)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(cent, torch.tensor([[s, s], [0.0, -1.0], [0.6, 0.8]]))
    with pytest.raises(ValueError, match=r"no sample.*\[1\]"):
        class_centroids(feats, torch.tensor([0, 0, 2, 2, 3]))
    with pytest.raises(ValueError, match="zero mean"):
        class_centroids(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([0, 0]))


def test_errors_name_the_problem() -> None:
    mem = HybridMemory(4, [3], [5])
    x = F.normalize(torch.randn(2, 4), dim=1)
    with pytest.raises(RuntimeError, match="never initialised"):
        mem(x, torch.tensor([0, 1]), torch.tensor([0, 0]))
    mem.init_source(0, torch.randn(3, 4))
    mem.init_target(0, torch.randn(5, 4))
    with pytest.raises(IndexError, match=r"\(1, 5\)"):
        mem(x, torch.tensor([0, 1]), torch.tensor([0, 5]))
    with pytest.raises(IndexError, match=r"\(2, 0\)"):
        mem(x, torch.tensor([0, 2]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="L2-normalised"):
        mem(3 * x, torch.tensor([0, 1]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        mem(torch.full((2, 4), float("nan")), torch.tensor([0, 1]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        mem.set_target_labels(0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=">= -1"):
        mem.set_target_labels(0, torch.tensor([0, 1, -2, 0, 0]))
    with pytest.raises(IndexError, match="target domain 1"):
        mem.set_target_labels(1, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
        mem.init_source(0, torch.randn(4, 4))
    with pytest.raises(ValueError, match="zero vectors"):
        mem.init_target(0, torch.zeros(5, 4))


def test_build_from_config() -> None:
    from reid.config import get_cfg
    from reid.engine.adapters import hybrid_memory_kwargs

    cfg = get_cfg()
    cfg.MEMORY.TEMPERATURE = 0.1
    cfg.MEMORY.MOMENTUM = 0.5
    mem = HybridMemory(16, [3], [7], **hybrid_memory_kwargs(cfg))
    assert (mem.temperature, mem.momentum, mem.num_prototypes) == (0.1, 0.5, 10)


# ----------------------------------------------------------------------------- learning
def test_training_with_memory_improves_cluster_retrieval() -> None:
    """Learnable embeddings of 3 noisy groups: training with the memory loss on their pseudo
    labels makes every point's nearest memory centroid its own group more often."""
    g = torch.Generator().manual_seed(7)
    centers = F.normalize(torch.randn(3, 16, generator=g), dim=1)
    true = torch.arange(60) % 3
    emb = torch.nn.Parameter(centers[true] + 1.5 * torch.randn(60, 16, generator=g))
    mem = HybridMemory(16, [], [60], temperature=0.1, momentum=0.5)
    mem.init_target(0, emb.detach())
    mem.set_target_labels(0, true)

    def accuracy() -> float:
        feats = F.normalize(emb.detach(), dim=1)
        return float(((feats @ centers.t()).argmax(1) == true).float().mean())

    before = accuracy()
    opt = torch.optim.SGD([emb], lr=5.0)
    for step in range(60):
        idx = torch.randperm(60, generator=g)[:16]
        loss = mem(F.normalize(emb[idx], dim=1), torch.zeros(16, dtype=torch.long), idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
    assert before < 0.7 and accuracy() > before + 0.2
    assert loss.item() < first
