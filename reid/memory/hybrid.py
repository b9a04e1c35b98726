"""Hybrid memory of SpCL (Ge et al., "Self-paced Contrastive Learning with Hybrid Memory for
Domain Adaptive Object Re-ID", NeurIPS 2020, Sec. 3.1).

The memory holds one L2-normalised row per source identity (class centroid) and one per target
image (instance feature), for any number of source and target domains (no source = USL).

Index conventions
-----------------
*Domains* are numbered globally: sources first, then targets (``S`` sources, ``T`` targets:
domain ``d < S`` is source ``d``, domain ``S + t`` is target ``t``). ``forward``/``update`` take
these global domain ids; ``init_source(s)``, ``init_target(t)``, ``set_target_labels(t)`` and
``target_features(t)`` take the index *within* the sources / targets.

*Memory rows* (the ``features`` buffer, shape ``(L, D)``) are laid out as
``[source 0 classes | source 1 classes | ... | target 0 instances | target 1 instances | ...]``.

*Prototypes* (the softmax classes of the loss) are laid out as
``[source 0 classes | ... | target 0 clusters | target 0 outliers | target 1 clusters | ...]``:
identities of different domains are never merged, and one joint softmax runs over the
prototypes of every domain (the denominator of Eq. 1 extended to several sources / targets).

Choices (documented deviations are marked)
------------------------------------------
* A target cluster centroid is the plain mean of its members' memory features, **not**
  re-normalised, as the paper's cluster centroid and the published code (which averages the
  instance similarities per cluster, i.e. ``<f, mean(v)>``). It is recomputed from the memory
  at every step (``index_add_``, no Python loop over instances or clusters).
* The loss is the exact ``log_softmax`` by default. The released code adds 1e-6 inside the
  softmax denominator and inside the log; ``softmax_eps=1e-6`` reproduces that. The effect is
  not negligible early in training: when the positive's probability is near ``1 / P`` (features
  that do not yet single out their prototype), the ``+ 1e-6`` in the log lowers the loss by
  ~``1e-6 / p``: 1e-3 / 5e-3 / 2e-2 and the gradient by 0.1 / 0.5 / 2% (relative L2) for
  P = 1,000 / 5,000 / 20,000 prototypes; on trained features it is below 1e-4
  (``benchmarks/bench_softmax_eps.py``).
* A batch of several domains (UDA) gives, with ``reduction="domain_sum"`` (default), the sum
  over the domains of each domain's mean loss: SpCL's ``L_source + L_target``, each a mean over
  its own batch, as the released trainer. ``reduction="mean"`` is the mean over the joint
  batch (half of it for one source and one target of equal batch sizes). One domain: the mean.
* Momentum update (applied to every row used in the batch, *after* the gradient was computed
  with the old values): ``v <- normalise(m v + (1 - m) x)``. A row used several times in a batch
  (a source class with K instances) is updated once per sample, in batch order, as the published
  code does (the paper's Eq. for source centroids uses the class mean of the mini-batch instead).
  The rounds of repeated rows are vectorised: one round per occurrence rank (K rounds for PK
  batches), not one Python step per sample.
* The update runs inside ``loss.backward()`` (a custom autograd function on the feature path, as
  in SpCL). It only happens when the module is in training mode, grad mode is on and ``feats``
  requires grad; in ``eval()`` / ``torch.no_grad()`` the forward is a pure function. Calling
  ``backward`` twice on a retained graph would update twice. :meth:`HybridMemory.update` is
  public for manual use (e.g. features that do not require grad), never call it in addition to
  a backward pass of the same batch.
* DDP: the update all-gathers features, domains and indexes (rank order) so that every rank
  applies the same updates; the loss itself uses the local batch. Without an initialised
  process group the gather is the identity. Every rank's batch must have the same size.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid.loss.contrastive import contrastive_logits_loss
from reid.utils.distributed import all_gather_tensor

logger = logging.getLogger(__name__)

_NORM_TOL = 1e-2


def class_centroids(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> torch.Tensor:
    """L2-normalised mean feature of every class.

    Args:
        features: (N, D) float features (normalised or not).
        labels: (N,) int class ids in ``[0, C)``.
        num_classes: C; default ``labels.max() + 1``.

    Returns:
        (C, D) tensor of the features' dtype/device: ``normalise(mean_{i: y_i = c} f_i)``.

    Raises:
        ValueError: on mismatched shapes, negative / too large labels, non-finite features, a
            class without any sample, or a class whose mean is the zero vector.
    """
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) tensor, got {tuple(features.shape)}")
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}"
        )
    labels = labels.to(features.device).long()
    if bool((labels < 0).any()):
        raise ValueError(f"class labels must be >= 0, got {labels[labels < 0][:10].tolist()}")
    num = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if bool((labels >= num).any()):
        raise ValueError(f"class labels must be < num_classes={num}, got {int(labels.max())}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contain NaN or Inf")
    counts = torch.bincount(labels, minlength=num)
    empty = (counts == 0).nonzero().squeeze(1)
    if empty.numel():
        raise ValueError(
            f"{empty.numel()} class(es) have no sample, e.g. {empty[:10].tolist()} "
            f"(labels must cover 0..{num - 1})"
        )
    sums = torch.zeros(num, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    means = sums / counts[:, None].to(features.dtype)
    norms = means.norm(dim=1)
    zero = (norms <= 1e-12).nonzero().squeeze(1)
    if zero.numel():
        raise ValueError(f"class(es) {zero[:10].tolist()} have a zero mean feature")
    return means / norms[:, None]


class _UpdateOnBackward(torch.autograd.Function):
    """Identity on ``feats`` whose backward applies the memory's momentum update."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, domains: torch.Tensor, indexes: torch.Tensor,
                memory: HybridMemory) -> torch.Tensor:
        ctx.memory = memory
        ctx.save_for_backward(feats.detach(), domains, indexes)
        return feats.view_as(feats)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        feats, domains, indexes = ctx.saved_tensors
        ctx.memory.update(feats, domains, indexes)
        return grad, None, None, None


class HybridMemory(nn.Module):
    """SpCL hybrid memory with the unified contrastive loss (see the module docstring).

    Args:
        num_features: D, the feature dimension.
        source_classes: number of identities of each source domain (empty for USL).
        target_instances: number of training images of each target domain.
        temperature: tau of the contrastive loss (SpCL: 0.05).
        momentum: m of the updates ``v <- m v + (1 - m) x`` (SpCL: 0.2), in ``[0, 1]``.
        reduction: "domain_sum" (SpCL's ``L_s + L_t``) or "mean" (over the joint batch).
        softmax_eps: the released code's constant in the softmax normaliser and the log (1e-6
            as released; 0: exact log-softmax).

    Buffers (all in ``state_dict``): ``features`` (L, D) float32 memory rows, ``labels`` (L,)
    int64 (class id for source rows, pseudo label or -1 for target rows) and ``initialized``
    (S + T,) bool. Before :meth:`set_target_labels` every target instance is an outlier.
    """

    def __init__(
        self,
        num_features: int,
        source_classes: Sequence[int] = (),
        target_instances: Sequence[int] = (),
        temperature: float = 0.05,
        momentum: float = 0.2,
        reduction: str = "domain_sum",
        softmax_eps: float = 0.0,
    ) -> None:
        super().__init__()
        if reduction not in ("domain_sum", "mean"):
            raise ValueError(f"reduction must be 'domain_sum' or 'mean', got {reduction!r}")
        if softmax_eps < 0:
            raise ValueError(f"softmax_eps must be >= 0, got {softmax_eps}")
        self.reduction = reduction
        self.softmax_eps = float(softmax_eps)
        source_classes = [int(c) for c in source_classes]
        target_instances = [int(n) for n in target_instances]
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not target_instances and not source_classes:
            raise ValueError("HybridMemory needs at least one source or target domain")
        for name, sizes in (("source_classes", source_classes),
                            ("target_instances", target_instances)):
            if any(n < 1 for n in sizes):
                raise ValueError(f"{name} must all be >= 1, got {sizes}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features = int(num_features)
        self.source_classes = source_classes
        self.target_instances = target_instances
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        sizes = source_classes + target_instances
        offsets = [0]
        for n in sizes:
            offsets.append(offsets[-1] + n)
        self._offsets_list = offsets
        total = offsets[-1]
        labels = torch.full((total,), -1, dtype=torch.long)
        for s, n in enumerate(source_classes):
            labels[offsets[s]:offsets[s + 1]] = torch.arange(n)
        self.register_buffer("features", torch.zeros(total, self.num_features))
        self.register_buffer("labels", labels)
        self.register_buffer("initialized", torch.zeros(len(sizes), dtype=torch.bool))
        self.register_buffer("_offsets", torch.tensor(offsets[:-1], dtype=torch.long),
                             persistent=False)
        self.register_buffer("_sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.register_buffer("_proto", torch.zeros(total, dtype=torch.long), persistent=False)
        self.register_buffer("_counts", torch.ones(total), persistent=False)
        self.num_prototypes = total
        self._cluster_counts: list[int] = [0] * len(target_instances)
        self._rebuild_prototypes()
        self.register_load_state_dict_post_hook(_rebuild_after_load)

    # ------------------------------------------------------------------ layout
    @property
    def num_sources(self) -> int:
        return len(self.source_classes)

    @property
    def num_targets(self) -> int:
        return len(self.target_instances)

    @property
    def num_domains(self) -> int:
        return self.num_sources + self.num_targets

    def _domain_rows(self, domain: int) -> slice:
        return slice(self._offsets_list[domain], self._offsets_list[domain + 1])

    def _check_local(self, kind: str, index: int) -> int:
        count = self.num_sources if kind == "source" else self.num_targets
        if not 0 <= index < count:
            raise IndexError(f"{kind} domain {index} out of range: the memory has {count}")
        return index if kind == "source" else self.num_sources + index

    @torch.no_grad()
    def _rebuild_prototypes(self) -> None:
        """Map every memory row to its prototype and count the members of each prototype."""
        proto = torch.empty_like(self.labels)
        start = 0
        for s, n in enumerate(self.source_classes):
            rows = self._domain_rows(s)
            proto[rows] = torch.arange(n, device=proto.device) + start
            start += n
        for t in range(self.num_targets):
            rows = self._domain_rows(self.num_sources + t)
            lab = self.labels[rows]
            clustered = lab >= 0
            ids, dense = torch.unique(lab[clustered], return_inverse=True)
            local = torch.empty_like(lab)
            local[clustered] = dense + start
            start += ids.numel()
            num_out = int((~clustered).sum())
            local[~clustered] = torch.arange(num_out, device=lab.device) + start
            start += num_out
            proto[rows] = local
            self._cluster_counts[t] = ids.numel()
        self._proto.copy_(proto)
        self.num_prototypes = start
        self._counts = torch.bincount(proto, minlength=start).to(self.features.dtype)

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def _init_rows(self, domain: int, values: torch.Tensor, what: str) -> None:
        rows = self._domain_rows(domain)
        n = rows.stop - rows.start
        if values.shape != (n, self.num_features):
            raise ValueError(
                f"{what} must have shape ({n}, {self.num_features}), got {tuple(values.shape)}"
            )
        values = values.detach().to(self.features.device, self.features.dtype)
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{what} contain NaN or Inf")
        norms = values.norm(dim=1)
        zero = (norms <= 1e-12).nonzero().squeeze(1)
        if zero.numel():
            raise ValueError(f"{what}: row(s) {zero[:10].tolist()} are zero vectors")
        self.features[rows] = values / norms[:, None]
        self.initialized[domain] = True

    def init_source(self, domain: int, centroids: torch.Tensor) -> None:
        """Set source ``domain``'s (C_s, D) class centroids (L2-normalised here).

        ``domain`` indexes the sources (0..S-1). See :func:`class_centroids`.
        """
        self._init_rows(self._check_local("source", domain), centroids,
                        f"source {domain} centroids")

    def init_target(self, domain: int, features: torch.Tensor) -> None:
        """Set target ``domain``'s (N_t, D) instance features (L2-normalised here).

        ``domain`` indexes the targets (0..T-1); the pseudo labels are left unchanged.
        """
        self._init_rows(self._check_local("target", domain), features,
                        f"target {domain} features")

    @torch.no_grad()
    def set_target_labels(self, domain: int, labels: torch.Tensor) -> None:
        """Give target ``domain`` (0..T-1) its (N_t,) int pseudo labels; -1 = outlier.

        Cluster ids are expected as 0..C-1; unused ids in between are simply not prototypes
        (the ids are compacted internally, keeping their order).
        """
        d = self._check_local("target", domain)
        n = self.target_instances[domain]
        labels = torch.as_tensor(labels)
        if labels.shape != (n,):
            raise ValueError(
                f"target {domain} labels must have shape ({n},), got {tuple(labels.shape)}"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"target {domain} labels must be integers, got {labels.dtype}")
        labels = labels.to(self.labels.device, torch.long)
        if bool((labels < -1).any()):
            raise ValueError(
                f"target {domain} labels must be >= -1 (-1 = outlier), got "
                f"{labels[labels < -1][:10].tolist()}"
            )
        self.labels[self._domain_rows(d)] = labels
        self._rebuild_prototypes()
        logger.debug("target %d: %d clusters, %d outliers", domain, self._cluster_counts[domain],
                     int((labels < 0).sum()))

    # ------------------------------------------------------------------ accessors
    def source_centroids(self, domain: int) -> torch.Tensor:
        """(C_s, D) view of source ``domain``'s class centroids."""
        return self.features[self._domain_rows(self._check_local("source", domain))]

    def target_features(self, domain: int) -> torch.Tensor:
        """(N_t, D) view of target ``domain``'s instance features."""
        return self.features[self._domain_rows(self._check_local("target", domain))]

    def target_labels(self, domain: int) -> torch.Tensor:
        """(N_t,) pseudo labels of target ``domain`` (-1 = outlier)."""
        return self.labels[self._domain_rows(self._check_local("target", domain))]

    def prototypes(self) -> torch.Tensor:
        """(P, D) current prototype matrix (see the layout in the module docstring).

        Source centroids and outliers are the memory rows; cluster centroids are the
        (un-normalised) means of the members' rows.
        """
        sums = torch.zeros(self.num_prototypes, self.num_features, dtype=self.features.dtype,
                           device=self.features.device)
        sums.index_add_(0, self._proto, self.features)
        return sums / self._counts[:, None]

    def rows(self, domains: torch.Tensor, indexes: torch.Tensor) -> torch.Tensor:
        """(B,) global memory rows of (global domain, index within domain) pairs (validated)."""
        domains, indexes = self._as_index(domains, "domains"), self._as_index(indexes, "indexes")
        if domains.shape != indexes.shape:
            raise ValueError(
                f"domains {tuple(domains.shape)} and indexes {tuple(indexes.shape)} differ in shape"
            )
        dom_ok = (domains >= 0) & (domains < self.num_domains)
        size = self._sizes[domains.clamp(0, self.num_domains - 1)]
        ok = dom_ok & (indexes >= 0) & (indexes < size)
        flags = torch.stack([(~ok).any(), (~self.initialized).any()]).tolist()
        if flags[0]:
            bad = (~ok).nonzero().squeeze(1)[:5].tolist()
            pairs = [(int(domains[i]), int(indexes[i])) for i in bad]
            raise IndexError(
                f"(domain, index) pairs out of range at batch positions {bad}: {pairs}; domains "
                f"are 0..{self.num_domains - 1} (sources then targets) with sizes "
                f"{self._sizes.tolist()}"
            )
        if flags[1]:
            missing = (~self.initialized).nonzero().squeeze(1).tolist()
            raise RuntimeError(
                f"memory domain(s) {missing} were never initialised "
                "(call init_source / init_target first)"
            )
        return self._offsets[domains] + indexes

    def _as_index(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ValueError(f"{name} must be integers, got {x.dtype}")
        return x.to(self.features.device, torch.long)

    def _check_feats(self, feats: torch.Tensor, normalised: bool) -> None:
        if feats.dim() != 2 or feats.shape[1] != self.num_features or feats.shape[0] == 0:
            raise ValueError(
                f"feats must be a non-empty (B, {self.num_features}) tensor, "
                f"got {tuple(feats.shape)}"
            )
        checks = [~torch.isfinite(feats).all()]
        if normalised:
            norms = feats.detach().float().norm(dim=1)
            checks.append(((norms - 1).abs() > _NORM_TOL).any())
        flags = torch.stack(checks).tolist()
        if flags[0]:
            raise ValueError("feats contain NaN or Inf (the memory was not touched)")
        if normalised and flags[1]:
            raise ValueError(
                "feats must be L2-normalised (F.normalize(feats, dim=1)); row norms range "
                f"{float(norms.min()):.4g}..{float(norms.max()):.4g}"
            )

    # ------------------------------------------------------------------ loss and update
    def forward(
        self, feats: torch.Tensor, domains: torch.Tensor, indexes: torch.Tensor,
        update: bool = True,
    ) -> torch.Tensor:
        """Unified contrastive loss of a batch (SpCL Eq. 1): the mean over the batch, or with
        several domains in the batch and ``reduction="domain_sum"`` the sum of the per-domain
        means (SpCL's ``L_s + L_t``).

        Args:
            feats: (B, D) L2-normalised features (any float dtype; computed in the memory's).
            domains: (B,) int global domain of each sample (sources first, then targets).
            indexes: (B,) int, for a source sample its class id within its domain, for a target
                sample its instance index within its domain's training set.
            update: momentum-update the batch's rows in ``backward`` (see
                :meth:`update_on_backward`); False when the caller wires the update itself.

        Returns:
            0-dim loss. Its positive for a sample is its source class centroid, its target
            cluster centroid, or its own instance row if it is an outlier. In training mode with
            grad enabled, ``loss.backward()`` then momentum-updates the rows used.
        """
        self._check_feats(feats, normalised=True)
        domains, indexes = self._as_index(domains, "domains"), self._as_index(indexes, "indexes")
        rows = self.rows(domains, indexes)
        if feats.shape[0] != rows.shape[0]:
            raise ValueError(f"{feats.shape[0]} features but {rows.shape[0]} domains/indexes")
        targets = self._proto[rows]
        protos = self.prototypes()
        x = self.update_on_backward(feats, domains, indexes) if update else feats
        groups = domains if self.reduction == "domain_sum" else None
        return contrastive_logits_loss(x.to(protos.dtype), protos, targets, self.temperature,
                                       groups=groups, eps=self.softmax_eps)

    def update_on_backward(
        self, feats: torch.Tensor, domains: torch.Tensor, indexes: torch.Tensor
    ) -> torch.Tensor:
        """``feats`` unchanged, wired so that its backward pass momentum-updates the batch's rows.

        For losses other than :meth:`forward` computed on the memory (e.g. camera-aware proxies):
        the loss sees the old rows, ``backward`` then applies :meth:`update`. Only in training
        mode with grad enabled and ``feats`` requiring grad; otherwise ``feats`` is returned as is.
        """
        if self.training and torch.is_grad_enabled() and feats.requires_grad:
            return _UpdateOnBackward.apply(feats, domains, indexes, self)
        return feats

    @torch.no_grad()
    def update(self, feats: torch.Tensor, domains: torch.Tensor, indexes: torch.Tensor) -> None:
        """Momentum-update the rows of a batch: ``v <- normalise(m v + (1 - m) x)``.

        Repeated rows are updated once per sample, in batch order (DDP: gathered batches in
        rank order). ``feats`` (B, D), ``domains``/``indexes`` (B,) as in :meth:`forward`.
        """
        feats = all_gather_tensor(feats.detach().to(self.features.dtype).contiguous())
        domains = all_gather_tensor(self._as_index(domains, "domains"))
        indexes = all_gather_tensor(self._as_index(indexes, "indexes"))
        self._check_feats(feats, normalised=False)
        rows = self.rows(domains, indexes)
        if feats.shape[0] != rows.shape[0]:
            raise ValueError(f"{feats.shape[0]} features but {rows.shape[0]} domains/indexes")
        m = self.momentum
        for sel in _occurrence_rounds(rows):
            r = rows[sel]
            self.features[r] = F.normalize(m * self.features[r] + (1.0 - m) * feats[sel], dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, source_classes={self.source_classes}, "
            f"target_instances={self.target_instances}, target_clusters={self._cluster_counts}, "
            f"prototypes={self.num_prototypes}, temperature={self.temperature}, "
            f"momentum={self.momentum}, reduction={self.reduction}, "
            f"softmax_eps={self.softmax_eps}"
        )


def _rebuild_after_load(module: HybridMemory, incompatible_keys: Any) -> None:
    """``load_state_dict`` post-hook: the prototype map follows the loaded labels."""
    module._rebuild_prototypes()


def _occurrence_rounds(rows: torch.Tensor) -> list[torch.Tensor]:
    """Split batch positions into rounds: round r holds, in batch order, the (r+1)-th
    occurrence of every row, so rows are unique within a round and a row's rounds follow its
    batch order."""
    n = rows.numel()
    sorted_rows, order = torch.sort(rows, stable=True)
    pos = torch.arange(n, device=rows.device)
    first = torch.ones(n, dtype=torch.bool, device=rows.device)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    group_start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), dim=0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - group_start
    rounds = int(rank.max()) + 1
    if rounds == 1:
        return [pos]
    return [(rank == r).nonzero().squeeze(1) for r in range(rounds)]

