"""Time one loss + backward + momentum-update step of the hybrid memory against references.

References implemented here, on the same data and memory state:

* ``naive``: Python loop over the clusters to build the centroids, then one loop over the
  batch for the momentum updates;
* ``spcl``: the published SpCL formulation, logits against all N instances (B x N matmul)
  averaged per cluster with ``index_add_`` over columns, and the per-sample update loop.

Every implementation's loss and updated memory are checked against ``naive`` (max abs diff).
USL setting: one target domain of N images, ~80 % of them in clusters of 2..30, the rest
outliers; batches of B random distinct images (PK batches of 16 x 4 would only add rounds).

    python benchmarks/bench_memory.py                 # N = 12,936 and 100,000, B = 64, D = 2048
    python benchmarks/bench_memory.py --device cuda
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from reid.memory import HybridMemory


def make_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.full(n, -1, dtype=np.int64)
    perm = rng.permutation(n)
    pos, cluster = 0, 0
    while pos < int(0.8 * n):
        size = int(rng.integers(2, 31))
        labels[perm[pos:pos + size]] = cluster
        pos += size
        cluster += 1
    return labels


def naive_step(mem: torch.Tensor, labels: torch.Tensor, feats: torch.Tensor,
               idx: torch.Tensor, tau: float, m: float) -> float:
    protos, pos_of = [], {}
    clusters = sorted(set(labels[labels >= 0].tolist()))
    for k in clusters:  # loop over clusters
        members = (labels == k).nonzero().squeeze(1)
        pos_of[k] = len(protos)
        protos.append(mem[members].mean(0))
    out_rows = (labels < 0).nonzero().squeeze(1)
    first_out = len(protos)
    proto = torch.cat([torch.stack(protos), mem[out_rows]])
    out_pos = torch.full((mem.shape[0],), -1, dtype=torch.long, device=mem.device)
    out_pos[out_rows] = torch.arange(len(out_rows), device=mem.device) + first_out
    lab = labels[idx]
    targets = torch.tensor([pos_of[int(lab[b])] if lab[b] >= 0 else int(out_pos[idx[b]])
                            for b in range(len(idx))], device=mem.device)
    x = feats.clone().requires_grad_()
    loss = F.cross_entropy(x @ proto.t() / tau, targets)
    loss.backward()
    with torch.no_grad():
        for b in range(len(idx)):  # loop over the batch
            r = int(idx[b])
            mem[r] = F.normalize(m * mem[r] + (1 - m) * feats[b], dim=0)
    return float(loss.detach())


def spcl_step(mem: torch.Tensor, labels: torch.Tensor, feats: torch.Tensor,
              idx: torch.Tensor, tau: float, m: float) -> float:
    # outliers get their own ids after the clusters, as in the published code
    lab = labels.clone()
    out = lab < 0
    lab[out] = int(lab.max()) + 1 + torch.arange(int(out.sum()), device=lab.device)
    x = feats.clone().requires_grad_()
    sim = (x @ mem.t() / tau).t()  # (N, B)
    num = int(lab.max()) + 1
    csim = torch.zeros(num, x.shape[0], device=mem.device).index_add(0, lab, sim)
    nums = torch.zeros(num, device=mem.device).index_add_(0, lab, torch.ones_like(lab,
                                                                                  dtype=sim.dtype))
    loss = F.cross_entropy((csim / nums[:, None]).t(), lab[idx])
    loss.backward()
    with torch.no_grad():
        for b in range(len(idx)):
            r = int(idx[b])
            mem[r] = F.normalize(m * mem[r] + (1 - m) * feats[b], dim=0)
    return float(loss.detach())


def ours_step(memory: HybridMemory, feats: torch.Tensor, idx: torch.Tensor) -> float:
    x = feats.clone().requires_grad_()
    loss = memory(x, torch.zeros_like(idx), idx)
    loss.backward()
    return float(loss.detach())


def timed(fn: Callable[[], float], steps: int, device: torch.device) -> tuple[float, float]:
    """Fastest of ``steps`` timed calls after one warm-up (robust to a shared, busy CPU)."""
    value = fn()
    best = float("inf")
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, value


def bench_size(n: int, batch: int, dim: int, steps: int,
               device: torch.device) -> tuple[int, int, float, float, float, float, float]:
    """(N, prototypes, naive s, spcl s, ours s, max |loss diff|, max |memory diff|)."""
    tau, m = 0.05, 0.2
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    init = F.normalize(torch.randn(n, dim, generator=g), dim=1).to(device)
    labels = torch.as_tensor(make_labels(n, rng), device=device)
    idx = torch.as_tensor(rng.choice(n, size=batch, replace=False), device=device)
    feats = F.normalize(torch.randn(batch, dim, generator=g), dim=1).to(device)

    memory = HybridMemory(dim, [], [n], temperature=tau, momentum=m).to(device)
    memory.init_target(0, init)
    memory.set_target_labels(0, labels)
    mem_naive, mem_spcl = init.clone(), init.clone()
    # correctness of one step from the same state
    ref = naive_step(mem_naive, labels, feats, idx, tau, m)
    got_spcl = spcl_step(mem_spcl, labels, feats, idx, tau, m)
    got = ours_step(memory, feats, idx)
    diff_loss = max(abs(got - ref), abs(got_spcl - ref))
    diff_mem = max(float((memory.target_features(0) - mem_naive).abs().max()),
                   float((mem_spcl - mem_naive).abs().max()))
    t_naive, _ = timed(partial(naive_step, mem_naive, labels, feats, idx, tau, m), steps, device)
    t_spcl, _ = timed(partial(spcl_step, mem_spcl, labels, feats, idx, tau, m), steps, device)
    t_ours, _ = timed(partial(ours_step, memory, feats, idx), steps, device)
    return n, memory.num_prototypes, t_naive, t_spcl, t_ours, diff_loss, diff_mem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[12936, 100000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = [bench_size(n, args.batch, args.dim, args.steps, device) for n in args.sizes]
    print(f"device {device}, B={args.batch}, D={args.dim}, best of {args.steps} timed steps "
          f"after 1 warm-up, torch threads {torch.get_num_threads()}")
    print(f"{'N':>8} {'protos':>7} {'naive ms':>9} {'spcl ms':>9} {'ours ms':>9} "
          f"{'naive/ours':>10} {'spcl/ours':>9} {'max|dloss|':>10} {'max|dmem|':>9}")
    for n, p, tn, ts, to, dl, dm in rows:
        print(f"{n:>8} {p:>7} {1e3 * tn:>9.1f} {1e3 * ts:>9.1f} {1e3 * to:>9.1f} "
              f"{tn / to:>10.1f} {ts / to:>9.2f} {dl:>10.1e} {dm:>9.1e}")


if __name__ == "__main__":
    main()
