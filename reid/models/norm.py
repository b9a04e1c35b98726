"""Batch-normalisation variants: domain-specific BN, BN over fixed-size groups, SyncBN.

Domain-specific BN (DSBN; Chang et al., CVPR 2019, used by SpCL, Ge et al., NeurIPS 2020) keeps
one BatchNorm per domain. :func:`convert_dsbn` replaces every ``BatchNorm1d``/``BatchNorm2d`` of a
model by a :class:`DomainSpecificBatchNorm` whose branches start as copies of the original
(InstanceNorm layers, e.g. of IBN-a, stay shared). Which branch normalises which sample is set
for a whole forward pass with :func:`use_domains`; the samples of each domain are gathered,
normalised by their domain's BN and scattered back, so statistics of a domain only ever see that
domain's samples, whatever the order of the batch. A batch laid out as contiguous per-domain
chunks (as :class:`reid.data.domain_batches.DomainBatches` builds it) takes a fast path without
permutation.

BN over groups ("ghost" BN; ``MODEL.BN.SAMPLES_PER_BN``): :class:`GroupedBatchNorm1d`/``2d``
compute training statistics over consecutive groups of ``samples_per_bn`` samples. The exact
semantics: a batch of ``G * g`` samples gives the same outputs as ``G`` copies of the BN, each
fed one group (rows ``k*g .. (k+1)*g-1``), and afterwards the running mean and variance are the
average of the ``G`` copies' running statistics (``num_batches_tracked`` advances by one). This
is what ``G`` GPUs without SyncBN compute in a forward pass, with the buffers averaged instead of
taken from one rank. Inside a DSBN branch the groups are formed within that domain's samples.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

_PLAIN_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


# ---------------------------------------------------------------------------------------
# BN over fixed-size groups of the batch


class _GroupedBatchNormMixin:
    """Training statistics over groups of ``samples_per_bn`` consecutive samples (module doc)."""

    samples_per_bn: int

    def forward(self, x: Tensor) -> Tensor:
        g = self.samples_per_bn
        n = x.shape[0]
        if not self.training or g <= 0 or n <= g:
            return super().forward(x)
        if n % g:
            raise ValueError(
                f"{type(self).__name__}: batch of {n} samples is not a multiple of "
                f"samples_per_bn={g} (MODEL.BN.SAMPLES_PER_BN)"
            )
        self._check_input_dim(x)
        factor = 0.0
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        outs, means, variances = [], [], []
        for k in range(n // g):
            mean = self.running_mean.clone() if self.track_running_stats else None
            var = self.running_var.clone() if self.track_running_stats else None
            outs.append(F.batch_norm(x[k * g:(k + 1) * g], mean, var, self.weight, self.bias,
                                     True, factor, self.eps))
            means.append(mean)
            variances.append(var)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(torch.stack(means).mean(0))
                self.running_var.copy_(torch.stack(variances).mean(0))
        return torch.cat(outs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", samples_per_bn={self.samples_per_bn}"


class GroupedBatchNorm1d(_GroupedBatchNormMixin, nn.BatchNorm1d):
    """``BatchNorm1d`` with training statistics over groups of ``samples_per_bn`` samples."""

    def __init__(self, num_features: int, samples_per_bn: int = 0, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.samples_per_bn = int(samples_per_bn)


class GroupedBatchNorm2d(_GroupedBatchNormMixin, nn.BatchNorm2d):
    """``BatchNorm2d`` with training statistics over groups of ``samples_per_bn`` samples."""

    def __init__(self, num_features: int, samples_per_bn: int = 0, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.samples_per_bn = int(samples_per_bn)


def _copy_bn(src: nn.modules.batchnorm._BatchNorm, cls: type, **extra) -> nn.Module:
    """A BN of class ``cls`` with the hyper-parameters, parameters and buffers of ``src``."""
    dst = cls(src.num_features, eps=src.eps, momentum=src.momentum, affine=src.affine,
              track_running_stats=src.track_running_stats, **extra)
    dst.load_state_dict(src.state_dict())
    if src.affine:
        dst.weight.requires_grad_(src.weight.requires_grad)
        dst.bias.requires_grad_(src.bias.requires_grad)
    dst.train(src.training)
    ref = next(iter(src.buffers()), None)
    if ref is not None:
        dst.to(ref.device)
    return dst


def _replace_modules(model: nn.Module, fn) -> nn.Module:
    """Replace (recursively, in place) every child ``m`` by ``fn(m)`` when that is not None.

    ``fn`` is not applied inside modules it replaced. Returns ``fn(model)`` or ``model``.
    """
    top = fn(model)
    if top is not None:
        return top
    for name, child in model.named_children():
        new = fn(child)
        if new is not None:
            setattr(model, name, new)
        else:
            _replace_modules(child, fn)
    return model


def convert_grouped_bn(model: nn.Module, samples_per_bn: int) -> nn.Module:
    """Make every BatchNorm1d/2d of ``model`` (DSBN branches included) use ``samples_per_bn``.

    Plain BNs become :class:`GroupedBatchNorm1d`/``2d`` with the same state (state-dict keys
    unchanged); already grouped ones get the new size. ``samples_per_bn <= 0`` restores whole-
    batch statistics. Works in place and returns the model.
    """
    samples_per_bn = int(samples_per_bn)

    def fn(m: nn.Module) -> nn.Module | None:
        if isinstance(m, _GroupedBatchNormMixin):
            m.samples_per_bn = samples_per_bn
            return m
        if type(m) is nn.BatchNorm1d:
            return _copy_bn(m, GroupedBatchNorm1d, samples_per_bn=samples_per_bn)
        if type(m) is nn.BatchNorm2d:
            return _copy_bn(m, GroupedBatchNorm2d, samples_per_bn=samples_per_bn)
        return None

    return _replace_modules(model, fn) if samples_per_bn > 0 else model


# ---------------------------------------------------------------------------------------
# Domain-specific BN


@dataclass
class DomainRouting:
    """Which BN branch normalises which sample, computed once per forward pass.

    Attributes:
        num_samples: batch size ``B`` the routing was built for.
        ids: the domain ids present, in the order their chunks are processed.
        counts: number of samples of each of ``ids``.
        perm: ``(B,)`` int64 indices sorting the batch by domain (stable), or None when the
            batch already is contiguous per-domain chunks.
        inv: inverse permutation of ``perm`` (None with it).
    """

    num_samples: int
    ids: list[int]
    counts: list[int]
    perm: Tensor | None = None
    inv: Tensor | None = None
    _expanded: dict[int, DomainRouting] = field(default_factory=dict, repr=False)

    @classmethod
    def from_domains(cls, domains: Tensor, num_domains: int) -> DomainRouting:
        """Routing of a ``(B,)`` integer tensor of per-sample domain ids in ``[0, num_domains)``."""
        if not isinstance(domains, Tensor):
            domains = torch.as_tensor(domains)
        if domains.dim() != 1 or domains.numel() == 0:
            raise ValueError(f"domains must be a non-empty (B,) tensor, got shape "
                             f"{tuple(domains.shape)}")
        if domains.dtype.is_floating_point or domains.dtype == torch.bool:
            raise TypeError(f"domains must be an integer tensor, got {domains.dtype}")
        host = domains.detach().to("cpu", torch.long)
        low, high = int(host.min()), int(host.max())
        if low < 0 or high >= num_domains:
            raise ValueError(f"domain ids must lie in [0, {num_domains}) (the model's BN "
                             f"branches), got values in [{low}, {high}]")
        ids_t, counts_t = torch.unique_consecutive(host, return_counts=True)
        ids, counts = ids_t.tolist(), counts_t.tolist()
        if len(set(ids)) == len(ids):
            return cls(len(host), ids, counts)
        perm = torch.sort(host, stable=True).indices
        ids_t, counts_t = torch.unique_consecutive(host[perm], return_counts=True)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(len(perm))
        return cls(len(host), ids_t.tolist(), counts_t.tolist(),
                   perm.to(domains.device), inv.to(domains.device))

    def expand(self, rows: int) -> DomainRouting:
        """Routing of an input with ``rows = B * k`` rows laid out sample-major (e.g. frames)."""
        if rows == self.num_samples:
            return self
        if rows % self.num_samples:
            raise RuntimeError(f"a DSBN layer got {rows} rows for a batch of {self.num_samples} "
                               "samples (routing needs a sample-major multiple)")
        k = rows // self.num_samples
        if k not in self._expanded:
            perm = inv = None
            if self.perm is not None:
                offs = torch.arange(k, device=self.perm.device)
                perm = (self.perm[:, None] * k + offs).flatten()
                inv = torch.empty_like(perm)
                inv[perm] = torch.arange(len(perm), device=perm.device)
            self._expanded[k] = DomainRouting(rows, list(self.ids), [c * k for c in self.counts],
                                              perm, inv)
        return self._expanded[k]


class DomainSpecificBatchNorm(nn.Module):
    """One BatchNorm per domain (DSBN), routing each sample to its domain's branch.

    Branch ``d`` is ``self.dsbn[d]`` (state-dict keys ``<name>.dsbn.<d>.weight`` ...). Routing:
    inside :func:`use_domains` every sample uses its own domain's branch (train and eval);
    outside it, training uses branch 0 and evaluation uses ``test_domain``.

    Args:
        bn: the BatchNorm1d/2d whose state every branch starts from (deep copies).
        num_domains: number of branches, at least 2.
        test_domain: branch used in eval mode without routing; -1 = the last one.
        share_affine: every branch uses branch 0's ``weight`` and ``bias`` Parameters (only the
            normalisation statistics are per branch, as camera-based BN, Zhuang et al., ECCV
            2020); the state dict still lists them under every branch.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, num_domains: int,
                 test_domain: int = -1, share_affine: bool = False) -> None:
        super().__init__()
        if num_domains < 2:
            raise ValueError(f"DSBN needs at least 2 domains, got {num_domains}")
        self.num_domains = int(num_domains)
        self.dsbn = nn.ModuleList(copy.deepcopy(bn) for _ in range(self.num_domains))
        self.share_affine = bool(share_affine) and bn.affine
        if self.share_affine:
            for branch in self.dsbn[1:]:
                branch.weight = self.dsbn[0].weight
                branch.bias = self.dsbn[0].bias
        self.test_domain = 0
        self.set_test_domain(test_domain)
        self.routing: DomainRouting | None = None

    @property
    def num_features(self) -> int:
        return self.dsbn[0].num_features

    def set_test_domain(self, domain: int) -> None:
        """Branch used in eval mode without explicit domains (negative: counted from the end)."""
        if not -self.num_domains <= domain < self.num_domains:
            raise ValueError(f"test domain {domain} out of range for {self.num_domains} domains")
        self.test_domain = domain % self.num_domains

    def forward(self, x: Tensor) -> Tensor:
        r = self.routing
        if r is None:
            return self.dsbn[self.test_domain if not self.training else 0](x)
        r = r.expand(x.shape[0])
        if len(r.ids) == 1:
            return self.dsbn[r.ids[0]](x)
        xs = x if r.perm is None else x.index_select(0, r.perm)
        parts = xs.split(r.counts)
        out = torch.cat([self.dsbn[d](part) for d, part in zip(r.ids, parts, strict=True)])
        return out if r.inv is None else out.index_select(0, r.inv)

    def extra_repr(self) -> str:
        shared = ", share_affine=True" if self.share_affine else ""
        return f"num_domains={self.num_domains}, test_domain={self.test_domain}{shared}"


def dsbn_modules(model: nn.Module) -> list[DomainSpecificBatchNorm]:
    """All :class:`DomainSpecificBatchNorm` modules of ``model``."""
    return [m for m in model.modules() if isinstance(m, DomainSpecificBatchNorm)]


def num_bn_domains(model: nn.Module) -> int:
    """Number of BN branches of ``model`` (1 without DSBN)."""
    return max((m.num_domains for m in dsbn_modules(model)), default=1)


def convert_dsbn(model: nn.Module, num_domains: int, test_domain: int = -1,
                 share_affine: bool = False) -> nn.Module:
    """Replace every BatchNorm1d/2d of ``model`` by a :class:`DomainSpecificBatchNorm`.

    Each of the ``num_domains`` (>= 2) branches starts as a copy of the original BN (parameters,
    buffers, ``requires_grad``, grouped-BN size); with ``share_affine`` the branches share one
    ``weight`` / ``bias`` and differ only in their statistics. InstanceNorm (IBN-a) stays
    shared. Works in place and returns the model; existing DSBN modules are left as they are.
    """
    if num_domains < 2:
        raise ValueError(f"convert_dsbn needs num_domains >= 2, got {num_domains}")

    def fn(m: nn.Module) -> nn.Module | None:
        if isinstance(m, DomainSpecificBatchNorm):
            return m
        if isinstance(m, _PLAIN_BN) and not isinstance(m, nn.SyncBatchNorm):
            return DomainSpecificBatchNorm(m, num_domains, test_domain, share_affine)
        return None

    model = _replace_modules(model, fn)
    if not dsbn_modules(model):
        logger.warning("convert_dsbn: %s has no BatchNorm layer, nothing is domain-specific",
                       type(model).__name__)
    return model


def convert_dsbn_to_bn(model: nn.Module, domain: int = -1) -> nn.Module:
    """Collapse every DSBN module to a plain BatchNorm1d/2d holding branch ``domain``'s state.

    Used to export the target-domain model (``domain=-1``: the last branch). Grouped BNs become
    plain BNs too (same eval behaviour). Works in place and returns the model.
    """

    def fn(m: nn.Module) -> nn.Module | None:
        if isinstance(m, DomainSpecificBatchNorm):
            if not -m.num_domains <= domain < m.num_domains:
                raise ValueError(f"domain {domain} out of range for {m.num_domains} domains")
            return _to_plain_bn(m.dsbn[domain % m.num_domains])
        if isinstance(m, _GroupedBatchNormMixin):
            return _to_plain_bn(m)
        return None

    return _replace_modules(model, fn)


def _to_plain_bn(bn: nn.Module) -> nn.Module:
    if isinstance(bn, nn.BatchNorm1d):
        return _copy_bn(bn, nn.BatchNorm1d)
    if isinstance(bn, nn.BatchNorm2d):
        return _copy_bn(bn, nn.BatchNorm2d)
    return copy.deepcopy(bn)


def set_test_domain(model: nn.Module, domain: int) -> None:
    """Select the DSBN branch used in eval mode (negative counts from the end: -1 = last)."""
    for m in dsbn_modules(model):
        m.set_test_domain(domain)


@contextlib.contextmanager
def use_domains(model: nn.Module, domains: Tensor | None) -> Iterator[DomainRouting | None]:
    """Route the samples of a forward pass to their domain's BN branch.

    Args:
        model: a module containing :class:`DomainSpecificBatchNorm` layers (none: no effect).
        domains: ``(B,)`` integer tensor of per-sample domain ids, or None (each DSBN falls back
            to branch 0 in training and to its test domain in eval).

    Every DSBN layer of ``model`` must see inputs whose first dimension is ``B`` or a multiple
    of it laid out sample-major (``(B*T, ...)`` frames of ``B`` clips). The previous routing is
    restored on exit.

    Example:
        >>> with use_domains(model, batch["domain"]):
        ...     fmap = model.backbone(batch["img"])
    """
    mods = dsbn_modules(model)
    routing = None
    if domains is not None and mods:
        routing = DomainRouting.from_domains(domains, min(m.num_domains for m in mods))
    previous = [m.routing for m in mods]
    for m in mods:
        m.routing = routing
    try:
        yield routing
    finally:
        for m, prev in zip(mods, previous, strict=True):
            m.routing = prev


# ---------------------------------------------------------------------------------------
# SyncBN


def convert_sync_bn(model: nn.Module) -> nn.Module:
    """Turn the plain BatchNorm1d/2d layers of ``model`` into ``nn.SyncBatchNorm``.

    DSBN branches and grouped BNs are left alone: with DSBN, each rank normalises its own
    per-domain chunks with per-rank statistics (as the published multi-GPU SpCL runs), and grouped
    BN asks for smaller, not larger, statistics groups. Works in place and returns the model.
    """

    def fn(m: nn.Module) -> nn.Module | None:
        if isinstance(m, (DomainSpecificBatchNorm, _GroupedBatchNormMixin)):
            return m
        if type(m) in _PLAIN_BN:
            sync = nn.SyncBatchNorm.convert_sync_batchnorm(m)
            return sync
        return None

    return _replace_modules(model, fn)
