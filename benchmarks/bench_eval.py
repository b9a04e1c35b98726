"""Benchmark of reid.evaluation: ranking speed and feature-level peak memory.

``python benchmarks/bench_eval.py [--skip-memory] [--dim 2048]``

1. ``evaluate_rank`` on a Market-1501-size random case (3,368 x 19,732, float32 distances,
   751 gallery identities, 6 cameras) versus a plain numpy reference implemented here (argsort
   of every row, loop over queries, torchreid-style). Target: < 2 s and >= 20x faster.
2. Peak RSS of ``evaluate_features`` on an MSMT17-size case (11,659 x 82,161 random normalised
   2048-d float32 features, block 2048), measured with ``resource.getrusage`` in a fresh
   subprocess. Target: < 4 GiB (the full float32 distance matrix alone would be 3.57 GiB).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from reid.evaluation import evaluate_rank


def numpy_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Plain numpy: argsort every row, then a Python loop over queries."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = g_pids[indices] == q_pids[:, None]
    all_cmc, all_ap = [], []
    for i in range(len(distmat)):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = matches[i][keep]
        if not hits.any():
            continue
        cmc = np.minimum(hits.cumsum(), 1)
        all_cmc.append(cmc[:max_rank])
        positions = np.flatnonzero(hits) + 1.0
        all_ap.append(np.mean(np.arange(1, len(positions) + 1) / positions))
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap))


_MEMORY_SCRIPT = """
import json, resource, sys, time
import numpy as np, torch
from reid.evaluation import evaluate_features
nq, ng, dim = 11659, 82161, int(sys.argv[1])
g = torch.Generator().manual_seed(0)
qf = torch.nn.functional.normalize(torch.randn(nq, dim, generator=g), dim=1)
gf = torch.nn.functional.normalize(torch.randn(ng, dim, generator=g), dim=1)
rng = np.random.default_rng(0)
ids = (rng.integers(0, 3060, nq), rng.integers(0, 3060, ng),
       rng.integers(0, 15, nq), rng.integers(0, 15, ng))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
res = evaluate_features(qf, gf, *ids, block_size=2048)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "before_kib": before, "seconds": time.perf_counter() - t}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-memory", action="store_true", help="skip the MSMT17-size run")
    parser.add_argument("--dim", type=int, default=2048, help="feature size of the memory run")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    nq, ng = 3368, 19732
    q_pids, g_pids = rng.integers(1, 751, nq), rng.integers(0, 751, ng)
    q_cams, g_cams = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = rng.random((nq, ng), dtype=np.float32)
    evaluate_rank(dist[:8], q_pids[:8], g_pids, q_cams[:8], g_cams)  # numba cache / compile
    times = []
    for _ in range(3):
        t = time.perf_counter()
        cmc, mean_ap = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
        times.append(time.perf_counter() - t)
    ours = min(times)
    t = time.perf_counter()
    ref_cmc, ref_ap = numpy_reference(dist, q_pids, g_pids, q_cams, g_cams)
    ref = time.perf_counter() - t
    agree = np.allclose(cmc, ref_cmc, atol=1e-12) and abs(mean_ap - ref_ap) < 1e-9

    rows = [
        ("evaluate_rank 3368x19732 (s, best of 3)", f"{ours:.3f}", "< 2"),
        ("numpy reference, argsort + loop (s, once)", f"{ref:.3f}", "-"),
        ("speed-up", f"{ref / ours:.1f}x", ">= 20x"),
        ("results equal reference (1e-9)", str(agree), "True"),
    ]
    if not args.skip_memory:
        out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(args.dim)],
                             capture_output=True, text=True, check=True)
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        rows += [
            (f"evaluate_features 11659x82161x{args.dim} peak RSS (GiB)",
             f"{stats['peak_kib'] / 2**20:.2f}", "< 4"),
            ("  of which before evaluation (features, imports)",
             f"{stats['before_kib'] / 2**20:.2f}", "-"),
            ("  evaluate_features wall time (s)", f"{stats['seconds']:.1f}", "-"),
        ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'measured':>10}  {'target':>8}")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>8}")


if __name__ == "__main__":
    main()
