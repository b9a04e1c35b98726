"""Training samplers: identity-balanced PK batches, camera-pure chunks and plain random streams,
seeded per epoch.

Every sampler draws from a stream that depends only on ``(seed, epoch)``
(``numpy.random.default_rng([seed, epoch])``), so a run resumed at an epoch boundary sees the
same samples after ``set_epoch(epoch)``. Both samplers yield *sample indices*; the DataLoader
groups them with ``batch_size`` (and ``drop_last=True``).

Distributed sharding: every rank builds the same seeded stream and takes its slice of it.
:class:`RandomIdentitySampler` shards whole batches (rank ``r`` of ``W`` takes batches
``r, r + W, r + 2W, ...``) so every rank's batch is still P identities x K instances;
:class:`CameraChunkSampler` shards whole chunks (chunks ``r, r + W, ...``);
:class:`RandomSampler` shards single samples (elements ``r, r + W, ...``). ``num_samples`` is
always the number of indices *this rank* yields per epoch.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


def _rng(seed: int, epoch: int) -> np.random.Generator:
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([int(seed), int(epoch)])


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


class _SeededSampler(Sampler[int]):
    """Common part of the samplers: seed, epoch, rank and the per-epoch length.

    Subclasses implement :meth:`_indices` (this rank's endless index stream of the epoch).
    """

    def __init__(self, num_samples: int | None, seed: int, rank: int, world_size: int) -> None:
        if num_samples is not None and num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        _check_rank(rank, world_size)
        _rng(seed, 0)
        self.num_samples = num_samples
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the stream of ``epoch`` (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def _indices(self) -> Iterator[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        if self.num_samples is None:
            return self._indices()
        return itertools.islice(self._indices(), self.num_samples)

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError(f"an infinite {type(self).__name__} has no length")
        return self.num_samples


class _GroupSampler(_SeededSampler):
    """A seeded stream of index groups (batches, chunks), sharded by whole groups: subclasses
    implement :meth:`_one_pass`; passes are concatenated for as long as needed and rank ``r``
    of ``W`` takes groups ``r, r + W, ...``."""

    def _one_pass(self, rng: np.random.Generator) -> list[np.ndarray]:
        raise NotImplementedError

    def _groups(self) -> Iterator[np.ndarray]:
        rng = _rng(self.seed, self.epoch)
        while True:
            yield from self._one_pass(rng)

    def _indices(self) -> Iterator[int]:
        mine = itertools.islice(self._groups(), self.rank, None, self.world_size)
        return (int(i) for group in mine for i in group)


class RandomIdentitySampler(_GroupSampler):
    """PK sampling: batches of P = ``batch_size // num_instances`` distinct identities with K =
    ``num_instances`` images each (Hermans et al. 2017).

    One pass over the identities: each identity's images are shuffled and cut into chunks of K
    (an identity with fewer than K images gives one chunk drawn with replacement; a remainder
    smaller than K is left out of that pass); then batches are formed by repeatedly picking P
    distinct identities, uniformly among those with chunks left, and taking one chunk of each,
    until fewer than P identities remain. Passes are concatenated for as long as needed.

    Args:
        pids: identity label of every training sample (any ints; index i of the dataset has
            identity ``pids[i]``); with ``ignore_negative`` a negative label means "never
            sampled" (un-clustered images of pseudo labels), unless fewer than P labelled
            groups exist: then (with a warning) every such sample is a group of its own.
        batch_size: P x K, images per batch on this rank.
        num_instances: K (>= 1, divides ``batch_size``).
        num_samples: indices yielded per epoch on this rank; with ``num_iters`` None and this
            None the sampler is infinite. Need not be a multiple of ``batch_size`` (the stream
            is cut there).
        num_iters: alternatively the number of batches per epoch (``num_samples = num_iters *
            batch_size``).
        seed: base seed (>= 0).
        rank, world_size: distributed sharding (see the module docstring).
        ignore_negative: leave samples with a negative label out (see ``pids``).

    Example (pseudo labels, regrouped every epoch before the loader's iterator is created):
        >>> sampler = RandomIdentitySampler(range(n), 64, 4, num_iters=100, ignore_negative=True)
        >>> sampler.set_pids(cluster_labels)  # -1: outliers, not sampled
    """

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int,
        num_instances: int = 4,
        num_samples: int | None = None,
        num_iters: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        ignore_negative: bool = False,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances "
                f"({num_instances})"
            )
        if num_samples is not None and num_iters is not None:
            raise ValueError("give num_samples or num_iters, not both")
        if num_iters is not None:
            num_samples = int(num_iters) * batch_size
        super().__init__(num_samples, seed, rank, world_size)
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = self.batch_size // self.num_instances
        self.ignore_negative = bool(ignore_negative)
        self.set_pids(pids)

    def set_pids(self, pids: Sequence[int]) -> None:
        """Group the samples by new labels (one per sample, same length as before), e.g. the
        pseudo labels of a new epoch; takes effect for iterators created afterwards."""
        pids = np.asarray(list(pids))
        if hasattr(self, "index_lists") and pids.shape != (self.data_size,):
            raise ValueError(f"set_pids needs {self.data_size} labels, got {pids.shape[0]}")
        self.data_size = int(pids.shape[0])
        if pids.size == 0:
            raise ValueError("RandomIdentitySampler got an empty list of pids")
        members = np.flatnonzero(pids >= 0) if self.ignore_negative else np.arange(pids.size)
        ids, inverse = np.unique(pids[members], return_inverse=True)
        if self.ignore_negative and len(ids) < self.num_pids_per_batch:
            logger.warning("only %d labelled groups for batches of %d: the %d unlabelled "
                           "samples are sampled this time, each as a group of its own",
                           len(ids), self.num_pids_per_batch, pids.size - members.size)
            pids = pids.copy()
            out = pids < 0
            pids[out] = pids.max(initial=-1) + 1 + np.arange(int(out.sum()))
            members = np.arange(pids.size)
            ids, inverse = np.unique(pids, return_inverse=True)
        if len(ids) < self.num_pids_per_batch:
            raise ValueError(
                f"{len(ids)} identities cannot fill batches of {self.num_pids_per_batch} distinct "
                f"identities (batch_size {self.batch_size} / num_instances {self.num_instances})"
            )
        order = members[np.argsort(inverse, kind="stable")]
        bounds = np.cumsum(np.bincount(inverse, minlength=len(ids)))[:-1]
        self.index_lists = np.split(order, bounds)

    def _one_pass(self, rng: np.random.Generator) -> list[np.ndarray]:
        k, p = self.num_instances, self.num_pids_per_batch
        chunks: list[list[np.ndarray]] = []
        for idxs in self.index_lists:
            if len(idxs) < k:
                chunks.append([rng.choice(idxs, size=k, replace=True)])
            else:
                perm = rng.permutation(idxs)
                n = len(perm) // k
                chunks.append([perm[i * k:(i + 1) * k] for i in range(n)])
        left = np.array([len(c) for c in chunks])
        batches = []
        while int((left > 0).sum()) >= p:
            avail = np.flatnonzero(left > 0)
            chosen = rng.choice(avail, size=p, replace=False)
            batches.append(np.concatenate([chunks[c][len(chunks[c]) - left[c]] for c in chosen]))
            left[chosen] -= 1
        return batches


class RandomSampler(_SeededSampler):
    """Uniform random order over ``range(data_size)``: concatenated seeded permutations (every
    sample once per pass, no replacement within a pass), for unlabelled target data.

    Args:
        data_size: number of samples of the dataset (>= 1).
        num_samples: indices yielded per epoch on this rank; None = infinite stream.
        seed: base seed (>= 0).
        rank, world_size: distributed sharding (element-wise, see the module docstring).
    """

    def __init__(
        self,
        data_size: int,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if data_size < 1:
            raise ValueError(f"RandomSampler needs data_size >= 1, got {data_size}")
        super().__init__(num_samples, seed, rank, world_size)
        self.data_size = int(data_size)

    def _stream(self) -> Iterator[int]:
        rng = _rng(self.seed, self.epoch)
        while True:
            yield from (int(i) for i in rng.permutation(self.data_size))

    def _indices(self) -> Iterator[int]:
        return itertools.islice(self._stream(), self.rank, None, self.world_size)


class CameraChunkSampler(_GroupSampler):
    """Random order in chunks of ``chunk_size`` images of one camera, for camera-based BN.

    A batch of ``m * chunk_size`` indices then holds ``m`` camera-pure chunks, so BatchNorm
    statistics computed per camera inside the batch (camera-based BN, Zhuang et al., ECCV 2020)
    always see ``chunk_size`` or more images of a camera.

    One pass: each camera's images are shuffled and cut into chunks; a last, incomplete chunk
    is filled up with other images of the same camera drawn without replacement (a camera with
    fewer than ``chunk_size`` images gives one chunk drawn with replacement), so every image
    appears at least once per pass. The chunks of all cameras are then shuffled together.
    Passes are concatenated for as long as needed.

    Args:
        camids: camera id of every training sample (index i has camera ``camids[i]``).
        chunk_size: images per chunk (>= 2).
        num_samples: indices yielded per epoch on this rank (a multiple of ``chunk_size``);
            None = infinite stream.
        seed: base seed (>= 0).
        rank, world_size: distributed sharding by whole chunks (see the module docstring).

    Example:
        >>> sampler = CameraChunkSampler(camids, chunk_size=16, num_samples=100 * 64)
        >>> loader = DataLoader(dataset, batch_size=64, sampler=sampler, drop_last=True)
    """

    def __init__(
        self,
        camids: Sequence[int],
        chunk_size: int,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(camids) == 0:
            raise ValueError("CameraChunkSampler needs at least one sample")
        if chunk_size < 2:
            raise ValueError(f"chunk_size must be >= 2 (BatchNorm needs two images of a "
                             f"camera), got {chunk_size}")
        if num_samples is not None and num_samples % chunk_size:
            raise ValueError(f"num_samples ({num_samples}) must be a multiple of chunk_size "
                             f"({chunk_size})")
        super().__init__(num_samples, seed, rank, world_size)
        cams = np.asarray(camids)
        self.by_camera = [np.flatnonzero(cams == c) for c in np.unique(cams)]
        self.chunk_size = int(chunk_size)

    def _one_pass(self, rng: np.random.Generator) -> list[np.ndarray]:
        g = self.chunk_size
        chunks = []
        for idx in self.by_camera:
            if len(idx) < g:
                chunks.append(rng.choice(idx, size=g, replace=True))
                continue
            order = rng.permutation(idx)
            full = len(order) // g * g
            chunks.extend(order[:full].reshape(-1, g))
            rest = order[full:]
            if len(rest):
                fill = rng.choice(order[:full], size=g - len(rest), replace=False)
                chunks.append(np.concatenate([rest, fill]))
        return [chunks[i] for i in rng.permutation(len(chunks))]


class CrossCameraIdentitySampler(_GroupSampler):
    """SpCL's published batch sampler (Ge et al., NeurIPS 2020, released code): one group per
    identity per pass, the anchor's companions taken from other cameras.

    One pass visits every identity once, in random order. For an identity it takes one random
    anchor image, then ``K - 1 = num_instances - 1`` more images of the identity:

    * from the identity's images whose camera differs from the anchor's, when there is any:
      without replacement when there are at least K such images, with replacement otherwise
      (the released code compares the candidate count with K, not K - 1);
    * otherwise (every image of the identity shares the anchor's camera) from its other images,
      with the same replacement rule;
    * an identity with a single image contributes that image alone.

    The groups are concatenated into one stream, so batches (consecutive slices of it) mix
    clusters (K images each) with outliers (one image each). Passes are concatenated for as long
    as needed: a batch may straddle two passes (the released code starts a new loader pass and
    drops the last incomplete batch of each pass instead; less than one batch per pass).

    Args:
        pids: identity of every sample (index i of the dataset has identity ``pids[i]``).
            A negative value marks an un-clustered image: **each negative entry is an identity
            of its own** (so -1 for every outlier and unique values for outliers are the same),
            unless ``ignore_negative``.
        camids: camera id of every sample.
        num_instances: K (>= 1), images per identity that has at least two.
        seed: base seed (>= 0).
        rank, world_size: distributed sharding by whole identity groups: rank ``r`` of ``W``
            takes groups ``r, r + W, ...`` of the stream (see the module docstring).
        num_samples: indices yielded per epoch on this rank; None = infinite stream.
        ignore_negative: leave samples with a negative label out of every pass (Cluster
            Contrast's released training draws this sampler over the clustered images only);
            when no sample has a label >= 0, every sample is an identity of its own (a warning
            when a regrouping finds no cluster; the initial all-negative grouping is silent).

    Example (pseudo labels, regrouped after every clustering):
        >>> sampler = CrossCameraIdentitySampler([-1] * n, camids, 4, num_samples=100 * 64)
        >>> sampler.set_pids(cluster_labels)  # -1: each outlier its own identity
    """

    def __init__(
        self,
        pids: Sequence[int],
        camids: Sequence[int],
        num_instances: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        *,
        num_samples: int | None = None,
        ignore_negative: bool = False,
    ) -> None:
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        super().__init__(num_samples, seed, rank, world_size)
        self.num_instances = int(num_instances)
        self.ignore_negative = bool(ignore_negative)
        self.camids = np.asarray(list(camids))
        if self.camids.size == 0:
            raise ValueError("CrossCameraIdentitySampler got an empty list of camids")
        self.set_pids(pids)

    def set_pids(self, pids: Sequence[int]) -> None:
        """Group the samples by new labels (one per sample; negative: an identity of its own);
        takes effect for iterators created afterwards."""
        pids = np.asarray(list(pids), dtype=np.int64)
        if pids.shape != self.camids.shape:
            raise ValueError(f"set_pids needs {self.camids.size} labels (one per camid), got "
                             f"{pids.size}")
        keys = pids.copy()
        out = keys < 0
        members = np.arange(keys.size)
        if self.ignore_negative and not out.all():
            members = np.flatnonzero(~out)
        elif self.ignore_negative and hasattr(self, "index_lists"):  # a regrouping
            logger.warning("no labelled sample: the %d unlabelled samples are sampled this time, "
                           "each as an identity of its own", keys.size)
        keys[out] = keys.max(initial=-1) + 1 + np.arange(int(out.sum()))
        _, inverse = np.unique(keys[members], return_inverse=True)
        order = members[np.argsort(inverse, kind="stable")]
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.index_lists = np.split(order, bounds)

    def _group(self, rng: np.random.Generator, idxs: np.ndarray) -> np.ndarray:
        """The anchor and its K - 1 companions for one identity (``idxs``: its samples)."""
        if len(idxs) == 1:
            return idxs
        anchor = idxs[rng.integers(len(idxs))]
        cams = self.camids[idxs]
        pool = idxs[cams != self.camids[anchor]]
        if pool.size == 0:
            pool = idxs[idxs != anchor]
        k = self.num_instances
        rest = rng.choice(pool, size=k - 1, replace=pool.size < k)
        return np.concatenate([[anchor], rest]).astype(np.int64)

    def _one_pass(self, rng: np.random.Generator) -> list[np.ndarray]:
        return [self._group(rng, self.index_lists[g])
                for g in rng.permutation(len(self.index_lists))]
