"""Per-iteration batches drawn from several domains (sources first, then targets)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader


class DomainBatches:
    """Draws one batch from each domain's loader per iteration and concatenates them.

    The concatenated batch is laid out as equal contiguous per-domain chunks, which is what
    domain-specific BN expects. A loader running out is restarted. ``set_epoch`` re-seeds the
    samplers and restarts every iterator, so an epoch's batches depend only on the seed, the
    epoch and the global torch RNG state at that point (exact resume at epoch boundaries).

    Args:
        loaders: one DataLoader per domain; batches are dicts with ``img`` and the keys below.
        index_keys: per domain, which batch key indexes the memory: ``"pid"`` for labelled
            sources (class centroids), ``"index"`` for targets (instance features).
        domains: the global domain id (BN branch) of each loader (default 0..n-1).
        camera_branches: per loader, None or ``{camid: BN branch}``: with a map, every sample
            of that loader goes to its camera's branch (camera-based BN) instead of the
            loader's domain id; batches then need ``camid``.
    """

    def __init__(
        self,
        loaders: Sequence[DataLoader],
        index_keys: Sequence[str],
        domains: Sequence[int] | None = None,
        camera_branches: Sequence[Mapping[int, int] | None] | None = None,
    ) -> None:
        if len(loaders) != len(index_keys):
            raise ValueError("one index key per loader is required")
        self.loaders = list(loaders)
        self.index_keys = list(index_keys)
        self.domains = list(domains) if domains is not None else list(range(len(self.loaders)))
        self.camera_branches = (list(camera_branches) if camera_branches is not None
                                else [None] * len(self.loaders))
        if len(self.camera_branches) != len(self.loaders):
            raise ValueError("camera_branches needs one entry (a map or None) per loader")
        self.epoch = 0
        self._iters: list[Any] = [None] * len(self.loaders)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for i, loader in enumerate(self.loaders):
            sampler = getattr(loader, "batch_sampler", None)
            for obj in (getattr(loader, "sampler", None), sampler):
                if obj is not None and hasattr(obj, "set_epoch"):
                    obj.set_epoch(epoch)
            self._iters[i] = iter(loader)

    def set_labels(self, i: int, labels: Sequence[int]) -> None:
        """Regroup loader ``i``'s identity sampler by new (pseudo) labels and restart its
        iterator, so the rest of the epoch samples by them (-1: never sampled by a
        :class:`reid.data.samplers.RandomIdentitySampler`, an identity of its own for a
        :class:`reid.data.samplers.CrossCameraIdentitySampler`)."""
        loader = self.loaders[i]
        batch_sampler = getattr(loader, "batch_sampler", None)
        sampler = next((obj for obj in (getattr(batch_sampler, "sampler", None),
                                        getattr(loader, "sampler", None))
                        if hasattr(obj, "set_pids")), None)
        if sampler is None:
            raise TypeError(f"loader {i} has no sampler that can be regrouped by labels "
                            "(a RandomIdentitySampler or CrossCameraIdentitySampler is needed)")
        sampler.set_pids(labels)
        self._iters[i] = iter(loader)

    def _next(self, i: int) -> dict[str, Any]:
        if self._iters[i] is None:
            self._iters[i] = iter(self.loaders[i])
        try:
            return next(self._iters[i])
        except StopIteration:
            self._iters[i] = iter(self.loaders[i])
            return next(self._iters[i])

    def next(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """The next concatenated batch on ``device``.

        Keys: ``img``; ``domain`` (the BN branch of each sample); ``dataset`` (the position of
        its loader, i.e. the memory domain: sources then targets); ``index``; ``pid``.
        """
        imgs, domains, datasets, indexes, pids = [], [], [], [], []
        for i, key in enumerate(self.index_keys):
            batch = self._next(i)
            n = batch["img"].shape[0]
            imgs.append(batch["img"])
            domains.append(self._branches(i, batch, n))
            datasets.append(torch.full((n,), i, dtype=torch.long))
            indexes.append(torch.as_tensor(batch[key], dtype=torch.long))
            pids.append(torch.as_tensor(batch["pid"], dtype=torch.long))
        return {
            "img": torch.cat(imgs).to(device, non_blocking=True),
            "domain": torch.cat(domains).to(device),
            "dataset": torch.cat(datasets).to(device),
            "index": torch.cat(indexes).to(device),
            "pid": torch.cat(pids).to(device),
        }

    def _branches(self, i: int, batch: dict[str, Any], n: int) -> torch.Tensor:
        """(n,) BN branch of every sample of loader ``i``'s batch."""
        cams = self.camera_branches[i]
        if cams is None:
            return torch.full((n,), self.domains[i], dtype=torch.long)
        camids = torch.as_tensor(batch["camid"]).tolist()
        missing = sorted(set(camids) - set(cams))
        if missing:
            raise KeyError(f"loader {i}: cameras {missing} have no BN branch (known: "
                           f"{sorted(cams)})")
        return torch.as_tensor([cams[c] for c in camids], dtype=torch.long)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
