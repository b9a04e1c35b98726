"""Samplers: PK batch composition, determinism, set_epoch, sharding, DataLoader use."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from reid.data.samplers import RandomIdentitySampler, RandomSampler

# 10 identities with 1..10 images each (ids 0 and 1 have fewer than K = 4 images)
PIDS = [pid for pid in range(10) for _ in range(pid + 1)]


def _batches(sampler, batch_size: int) -> list[list[int]]:
    idx = list(sampler)
    return [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]


def test_pk_batches_composition() -> None:
    sampler = RandomIdentitySampler(PIDS, batch_size=12, num_instances=4, num_iters=50, seed=3)
    assert len(sampler) == 600
    batches = _batches(sampler, 12)
    assert len(batches) == 50
    used = Counter()
    for batch in batches:
        pids = [PIDS[i] for i in batch]
        counts = Counter(pids)
        assert len(counts) == 3 and set(counts.values()) == {4}  # P = 3 ids x K = 4
        for k in range(3):  # each identity's K images are contiguous
            assert len(set(pids[4 * k:4 * k + 4])) == 1
        for pid, group in ((p, [i for i in batch if PIDS[i] == p]) for p in counts):
            if pid >= 3:  # ids with >= K images: no repeat inside a chunk
                assert len(set(group)) == 4
        used.update(batch)
    # ids 0 (1 image) and 1 (2 images) are sampled with replacement
    assert any(Counter(b)[0] == 4 for b in batches)
    assert set(used) == set(range(len(PIDS)))


def test_pass_uses_each_chunk_once() -> None:
    # one pass: 4 ids with 8 images each -> 2 chunks per id, 8 chunks = 4 batches of P = 2
    pids = [p for p in range(4) for _ in range(8)]
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=4, num_iters=4, seed=0)
    assert sorted(sampler) == list(range(32))


def test_determinism_and_set_epoch() -> None:
    make = lambda seed: RandomIdentitySampler(PIDS, batch_size=8, num_instances=4,
                                              num_samples=400, seed=seed)
    a, b = make(1), make(1)
    assert list(a) == list(b)
    assert list(a) != list(make(2))
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first
    b.set_epoch(1)
    assert list(b) == second  # resume: a fresh sampler at epoch 1 gives the same stream
    a.set_epoch(0)
    assert list(a) == first


def test_identity_sampler_sharding() -> None:
    full = RandomIdentitySampler(PIDS, batch_size=8, num_instances=4, num_iters=6, seed=5)
    full_batches = _batches(full, 8)
    ranks = [RandomIdentitySampler(PIDS, batch_size=8, num_instances=4, num_iters=3, seed=5,
                                   rank=r, world_size=2) for r in range(2)]
    per_rank = [_batches(s, 8) for s in ranks]
    assert per_rank[0] == full_batches[0::2]
    assert per_rank[1] == full_batches[1::2]


def test_infinite_identity_sampler() -> None:
    sampler = RandomIdentitySampler(PIDS, batch_size=8, num_instances=2, seed=0)
    with pytest.raises(TypeError):
        len(sampler)
    it = iter(sampler)
    head = [next(it) for _ in range(10_000)]  # many passes
    assert len(head) == 10_000 and set(head) == set(range(len(PIDS)))


def test_identity_sampler_errors() -> None:
    with pytest.raises(ValueError, match="multiple of num_instances"):
        RandomIdentitySampler(PIDS, batch_size=10, num_instances=4)
    with pytest.raises(ValueError, match="2 identities cannot fill"):
        RandomIdentitySampler([0, 0, 1, 1], batch_size=12, num_instances=4)
    with pytest.raises(ValueError, match="empty"):
        RandomIdentitySampler([], batch_size=8, num_instances=4)
    with pytest.raises(ValueError, match="rank"):
        RandomIdentitySampler(PIDS, batch_size=8, num_instances=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="not both"):
        RandomIdentitySampler(PIDS, batch_size=8, num_instances=4, num_samples=8, num_iters=1)


def test_random_sampler_passes_sharding_epochs() -> None:
    sampler = RandomSampler(7, num_samples=21, seed=4)
    idx = list(sampler)
    assert len(sampler) == 21
    for p in range(3):  # concatenated permutations
        assert sorted(idx[7 * p:7 * p + 7]) == list(range(7))
    assert idx != list(range(7)) * 3
    assert list(RandomSampler(7, num_samples=21, seed=4)) == idx
    shards = [list(RandomSampler(7, num_samples=10, seed=4, rank=r, world_size=2))
              for r in range(2)]
    assert shards[0] == idx[0:20:2] and shards[1] == idx[1:20:2]
    sampler.set_epoch(3)
    assert list(sampler) != idx
    endless = iter(RandomSampler(3, seed=0))
    assert sorted(next(endless) for _ in range(30)) == sorted(list(range(3)) * 10)
    with pytest.raises(ValueError, match="data_size"):
        RandomSampler(0)


class _Indexed(Dataset):
    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def __len__(self) -> int:
        return len(self.pids)

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"index": i, "pid": self.pids[i]}


def test_dataloader_batches_are_pk() -> None:
    sampler = RandomIdentitySampler(PIDS, batch_size=8, num_instances=4, num_iters=5, seed=0)
    loader = DataLoader(_Indexed(PIDS), batch_size=8, sampler=sampler, drop_last=True)
    batches = list(loader)
    assert len(batches) == 5
    for batch in batches:
        counts = Counter(batch["pid"].tolist())
        assert sorted(counts.values()) == [4, 4]
        assert torch.equal(batch["pid"], torch.tensor([PIDS[i] for i in batch["index"]]))
