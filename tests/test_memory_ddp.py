"""HybridMemory under torch.distributed (2 CPU processes, Gloo): identical updates on every rank."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from reid.memory import HybridMemory

WORLD = 2


def _setup(seed: int = 0) -> tuple[HybridMemory, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same memory on every rank and a (WORLD * 6)-sample global batch."""
    g = torch.Generator().manual_seed(seed)
    mem = HybridMemory(8, [4], [10], momentum=0.2)
    mem.init_source(0, torch.randn(4, 8, generator=g))
    mem.init_target(0, torch.randn(10, 8, generator=g))
    mem.set_target_labels(0, torch.tensor([0, 0, 1, 1, -1, 2, 2, -1, 0, -1]))
    feats = F.normalize(torch.randn(WORLD * 6, 8, generator=g), dim=1)
    domains = torch.tensor([0, 0, 0, 1, 1, 1] * WORLD)
    # source class 2 appears on both ranks: rank 0's samples must be applied first
    indexes = torch.tensor([2, 2, 1, 0, 4, 7, 2, 3, 2, 5, 6, 9])
    return mem, feats, domains, indexes


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        mem, feats, domains, indexes = _setup()
        part = slice(rank * 6, (rank + 1) * 6)
        x = feats[part].clone().requires_grad_()
        loss = mem(x, domains[part], indexes[part])
        loss.backward()
        torch.save({"features": mem.features, "loss": loss.detach(), "grad": x.grad},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_update_identically(tmp_path: Path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    mem, feats, domains, indexes = _setup()
    for r in range(WORLD):  # the loss and gradient use the local batch with the old memory
        part = slice(r * 6, (r + 1) * 6)
        local = HybridMemory(8, [4], [10]).eval()
        local.load_state_dict(mem.state_dict())
        x = feats[part].clone().requires_grad_()
        loss = local(x, domains[part], indexes[part])
        loss.backward()
        torch.testing.assert_close(results[r]["loss"], loss.detach())
        torch.testing.assert_close(results[r]["grad"], x.grad)
    mem.update(feats, domains, indexes)  # single process, whole batch in rank order
    for r in range(WORLD):
        torch.testing.assert_close(results[r]["features"], mem.features, rtol=0, atol=1e-6)
    assert torch.equal(results[0]["features"], results[1]["features"])
