"""Benchmark: sparse Jaccard + DBSCAN vs a dense reference (the published SpCL-style code).

Each case runs in its own subprocess so that its peak memory (ru_maxrss) is measured alone.
Features are clustered synthetic data (identities x images, L2-normalised).

    python benchmarks/bench_cluster.py                 # N = 12,936 (dense + sparse), N = 100,000
    python benchmarks/bench_cluster.py --skip-100k

D = 2048 for every row (``--big-d`` changes it for N = 100,000); about 5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def make_features(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = max(1, n // 17)
    centres = rng.standard_normal((ids, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, ids, n)]
    x += (0.8 / np.sqrt(d)) * rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def dense_reference(x: np.ndarray, k1: int = 30, k2: int = 6) -> np.ndarray:
    """Straightforward dense implementation following the published SpCL code (N x N arrays)."""
    n = x.shape[0]
    dist = 2 - 2 * (x @ x.T)
    initial_rank = np.argpartition(dist, k1, axis=1)[:, :k1]
    order = np.take_along_axis(dist, initial_rank, 1).argsort(1)
    initial_rank = np.take_along_axis(initial_rank, order, 1)
    del dist

    def recip(i, k):
        fwd = initial_rank[i, :k + 1]
        back = initial_rank[fwd, :k + 1]
        return fwd[np.where(back == i)[0]]

    nn_k1 = [recip(i, k1) for i in range(n)]
    nn_half = [recip(i, int(np.around(k1 / 2))) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        r = nn_k1[i]
        exp = r
        for c in r:
            rc = nn_half[c]
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                exp = np.append(exp, rc)
        exp = np.unique(exp)
        w = np.exp(-(2 - 2 * x[i] @ x[exp].T))
        v[i, exp] = w / w.sum()
    v_qe = np.zeros_like(v)
    for i in range(n):
        v_qe[i] = v[initial_rank[i, :k2]].mean(0)
    v = v_qe
    del v_qe
    inv = [np.where(v[:, i] != 0)[0] for i in range(n)]
    jac = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        tmp = np.zeros(n, dtype=np.float32)
        nz = np.where(v[i] != 0)[0]
        for j in nz:
            tmp[inv[j]] += np.minimum(v[i, j], v[inv[j], j])
        jac[i] = 1 - tmp / (2 - tmp)
    jac[jac < 0] = 0.0
    return jac


def run_case(case: str, n: int, d: int) -> dict:
    x = make_features(n, d)
    out: dict = {"case": case, "n": n, "d": d}
    if case == "dense":
        from sklearn.cluster import DBSCAN
        t = time.perf_counter()
        jac = dense_reference(x)
        out["jaccard_s"] = time.perf_counter() - t
        t = time.perf_counter()
        lab = DBSCAN(eps=0.6, min_samples=4, metric="precomputed", n_jobs=-1).fit_predict(jac)
        out["dbscan_s"] = time.perf_counter() - t
    else:
        from reid.cluster import dbscan, jaccard_distance
        from reid.cluster.knn import knn
        jaccard_distance(x[:200])  # numba compile / cache load, not timed
        t = time.perf_counter()
        _, rank = knn(x, 30)
        out["knn_s"] = time.perf_counter() - t
        jac = jaccard_distance(x, k1=30, k2=6, rank=rank)
        out["jaccard_s"] = time.perf_counter() - t
        out["nnz_per_row"] = jac.nnz / n
        t = time.perf_counter()
        lab = dbscan(jac, 0.6, 4)
        out["dbscan_s"] = time.perf_counter() - t
    out["clusters"] = int(lab.max()) + 1
    out["outliers"] = int((lab < 0).sum())
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--case", default="")
    p.add_argument("--n", type=int, default=12936)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--big-d", type=int, default=2048)
    p.add_argument("--skip-100k", action="store_true")
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.n, args.d)))
        return
    cases = [("dense", args.n, args.d), ("sparse", args.n, args.d)]
    if not args.skip_100k:
        cases.append(("sparse", 100_000, args.big_d))
    rows = []
    for case, n, d in cases:
        res = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n),
                              "--d", str(d)], capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"done {case} N={n}", file=sys.stderr, flush=True)
    print(f"{'case':<8}{'N':>8}{'D':>6}{'jaccard+kNN s':>15}{'DBSCAN s':>10}{'peak GiB':>10}"
          f"{'clusters':>10}{'outliers':>10}")
    for r in rows:
        print(f"{r['case']:<8}{r['n']:>8}{r['d']:>6}{r['jaccard_s']:>15.1f}{r['dbscan_s']:>10.2f}"
              f"{r['peak_gib']:>10.2f}{r['clusters']:>10}{r['outliers']:>10}")
    dense = rows[0]
    sparse = rows[1]
    total = (dense["jaccard_s"] + dense["dbscan_s"]) / (sparse["jaccard_s"] + sparse["dbscan_s"])
    print(f"speed-up at N={dense['n']} (Jaccard incl. kNN): "
          f"{dense['jaccard_s'] / sparse['jaccard_s']:.1f}x; total incl. DBSCAN: {total:.1f}x; "
          f"peak memory ratio {dense['peak_gib'] / sparse['peak_gib']:.1f}x")
    for r in rows[1:]:
        print(f"sparse N={r['n']}: exact kNN search (faiss) {r['knn_s']:.1f} s of "
              f"{r['jaccard_s'] + r['dbscan_s']:.1f} s")
    print(f"bound: with this kNN alone the speed-up cannot exceed "
          f"{(dense['jaccard_s'] + dense['dbscan_s']) / sparse['knn_s']:.1f}x")


if __name__ == "__main__":
    main()
