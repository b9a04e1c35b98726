"""Benchmark: sparse Jaccard + DBSCAN vs a dense reference (the published SpCL-style code), and
the scaling rows of issue #27 (exact vs IVF kNN, streamed Jaccard, N up to 1,000,000).

Each case runs in its own subprocess so that its peak memory is measured alone.
Features are clustered synthetic data (identities x images, L2-normalised).

    python benchmarks/bench_cluster.py                 # N = 12,936 (dense + sparse), N = 100,000
    python benchmarks/bench_cluster.py --skip-100k

D = 2048 for every row (``--big-d`` changes it for N = 100,000); about 5 minutes on 2 cores.

Scaling rows (``--sizes``): the full pseudo-label pipeline of
:class:`reid.cluster.SelfPacedLabeler` (kNN, Jaccard, DBSCAN at eps - gap / eps / eps + gap,
reliability), stage by stage, for each N and each kNN method, one child process per row
reading its own peak RSS (VmHWM of /proc/self/status; per stage too, the peak being reset
through /proc/self/clear_refs where the kernel allows it). Features: Gaussian clusters on the
sphere with log-normal sizes (median ~ 15 images, 2 to 200) plus ``--noise`` un-clusterable
uniform points. Where the exact row is run (N <= ``--exact-max``) the table also gives the
IVF kNN recall@k1 against exact, the ARI between the IVF and the exact pseudo labels, and the
end-to-end speed ratio exact / IVF; every row gives the ARI against the true identities.

``--features FILE.npz`` replaces the synthetic clusters by real features (``tools/extract.py``
output) tiled to N under random rotations (:func:`tiled_real_features`). ``--methods jitter``
adds the exact path run on the features plus Gaussian noise of ``--jitter`` (1e-4) per
coordinate: how far a near-exact kNN moves the pseudo labels, the floor for "ARI against
exact".

    python benchmarks/bench_cluster.py --sizes 10000 30000 --dim 256          # ~2 min, 2 cores
    python benchmarks/bench_cluster.py --sizes 100000 --dim 256               # exact + ivf
    python benchmarks/bench_cluster.py --sizes 300000 --dim 256
    python benchmarks/bench_cluster.py --sizes 1000000 --dim 256 --methods ivf
    python benchmarks/bench_cluster.py --sizes 1000000 --dim 2048 --methods ivf --ivf-spherical
    python tools/extract.py --config-file C --weights W --input DIRS --output real.npz
    python benchmarks/bench_cluster.py --sizes 100000 --features real.npz --methods exact ivf jitter
    python benchmarks/bench_cluster.py --sizes 100000 --features real.npz --repeat 5
    python benchmarks/bench_cluster.py --sizes 100000 --features real.npz --ivf-seed 1

``--block-rows`` (default 50000) is ``CLUSTER.BLOCK_ROWS``; 0 runs the in-memory Jaccard path.
``--nlist`` / ``--nprobe`` / ``--ivf-spherical`` / ``--ivf-fp16`` / ``--ivf-pq`` are the
``CLUSTER.IVF_*`` keys; ``--ivf-seed S`` trains the IVF k-means with seed S (the library's
is 0), to read the agreement with exact over seeds. ``--repeat R`` runs the methods R times
in turn and reports each method's median run (the machine's speed drifts; ratios are between
medians). ``--json FILE`` also writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
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


# ------------------------------------------------------------------ scaling rows (issue #27)
def _proc_status_kib(key: str) -> int:
    """A ``VmHWM`` / ``VmRSS`` line of /proc/self/status in KiB (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s() -> float:
    """User + system CPU seconds of this process, all threads (wall time on a shared machine
    depends on the other load; CPU time much less)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def clustered_features(n: int, d: int, noise: float = 0.1, spread: float = 0.8, seed: int = 0,
                       block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 L2-normalised features and (N,) int64 true ids (-1 - i for noise points).

    Identities have log-normal sizes (median 15, clipped to [2, 200]); an image is its
    identity's unit centre plus isotropic Gaussian noise of total norm ~ ``spread``; a fraction
    ``noise`` of the rows are uniform on the sphere (un-clusterable). Filled in row blocks, so
    the peak is the array itself plus one block.
    """
    rng = np.random.default_rng(seed)
    n_clean = n - int(round(noise * n))
    sizes = []
    total = 0
    while total < n_clean:
        s = int(np.clip(round(rng.lognormal(np.log(15), 0.6)), 2, 200))
        s = min(s, n_clean - total) if n_clean - total >= 2 else s
        sizes.append(s)
        total += s
    sizes = np.asarray(sizes)
    ids = np.repeat(np.arange(sizes.size), sizes)[:n_clean]
    ids = np.concatenate([ids, -1 - np.arange(n - n_clean)])
    ids = ids[rng.permutation(n)]
    centres = rng.standard_normal((sizes.size, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, d), np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        part = rng.standard_normal((b - a, d), dtype=np.float32)
        idb = ids[a:b]
        clean = idb >= 0
        part[clean] *= spread / np.sqrt(d)
        part[clean] += centres[idb[clean]]
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        x[a:b] = part
    return x, ids


def tiled_real_features(path: str, n: int, d: int, noise: float = 0.1, seed: int = 0,
                        id_regex: str = r"^(\d{4})") -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 L2-normalised features made from real ones, and (N,) int64 ids (-1 where
    the file name gives none).

    ``path`` is an ``.npz`` of ``tools/extract.py`` (``features`` (M, D0), ``paths`` (M,)), for
    example a CUHK03-trained model's features of CUHK03 and CUHK01. The features are centred,
    reduced to their ``d`` leading principal components and L2-normalised: the real set. It is
    tiled ceil(N / M) times, tile t > 0 being the real set under its own random rotation (so
    each tile keeps the real neighbourhood structure exactly, and tiles are as unrelated as
    independent camera networks) plus Gaussian noise of total norm ~ ``noise``; N rows are
    then drawn at random. An identity is (tile, parent folder, ``id_regex``'s first group on
    the file name).
    """
    import re

    z = np.load(path)
    f = z["features"].astype(np.float64)
    if f.ndim != 2 or min(f.shape) < d:
        raise SystemExit(f"{path}: need (M >= {d}, D0 >= {d}) features for {d} principal "
                         f"components, got {f.shape}")
    keys: dict[tuple[str, str], int] = {}
    base_ids = np.full(f.shape[0], -1, np.int64)
    for i, p in enumerate(z["paths"] if "paths" in z else []):
        m = re.search(id_regex, os.path.basename(str(p)))
        if m:
            base_ids[i] = keys.setdefault((os.path.dirname(str(p)), m.group(1)), len(keys))
    f -= f.mean(0)
    _, _, vt = np.linalg.svd(f, full_matrices=False)
    y = f @ vt[:d].T
    y = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    rng = np.random.default_rng(seed)
    tiles = -(-n // y.shape[0])
    x = np.empty((tiles * y.shape[0], d), np.float32)
    ids = np.empty(tiles * y.shape[0], np.int64)
    for t in range(tiles):
        part = x[t * y.shape[0]:(t + 1) * y.shape[0]]
        if t == 0:
            part[:] = y
        else:
            q, _ = np.linalg.qr(rng.standard_normal((d, d)))
            part[:] = y @ q.astype(np.float32).T
        part += (noise / np.sqrt(d)) * rng.standard_normal(part.shape, dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        ids[t * y.shape[0]:(t + 1) * y.shape[0]] = np.where(base_ids >= 0,
                                                            base_ids + t * len(keys), -1)
    keep = np.sort(rng.choice(x.shape[0], n, replace=False))
    return np.ascontiguousarray(x[keep]), ids[keep]


def run_scale(args: argparse.Namespace) -> dict:
    """One row: the labeler pipeline stage by stage (see the module docstring)."""
    from reid.cluster.dbscan import dbscan
    from reid.cluster.jaccard import jaccard_distance
    from reid.cluster.knn import search_knn
    from reid.cluster.quality import label_quality
    from reid.cluster.reliability import (
        cluster_reliability,
        independence_threshold,
        relabel_kept,
        self_paced_filter,
    )

    n, d, k1, k2 = args.n, args.d, 30, 6
    eps, gap, min_samples = 0.6, 0.02, 4
    tiny = clustered_features(300, 16)[0]
    jaccard_distance(tiny, k1=k1, k2=k2, block_rows=100, max_distance=eps + gap,
                     normalized=True)  # numba compile / cache load, outside the timers
    if args.method == "ivf":  # the IVF merge kernels too (recompiled after an edit); PQ: 4
        search_knn(tiny, k1, method="ivf", device=args.device, pq_m=args.ivf_pq and 4,
                   fp16=args.ivf_fp16, spherical=args.ivf_spherical)
    if args.features:
        x, ids = tiled_real_features(args.features, n, d, noise=args.tile_noise, seed=args.seed)
    else:
        x, ids = clustered_features(n, d, noise=args.noise, seed=args.seed)
    out: dict = {"method": args.method, "n": n, "d": d,
                 "base_gib": _proc_status_kib("VmRSS") / 2**20}
    can_reset = _reset_peak()
    stage_peak: dict[str, float] = {}
    t_all = time.perf_counter()

    cpu0 = [_cpu_s()]

    def stage(name: str, t0: float) -> None:
        out[f"{name}_s"] = time.perf_counter() - t0
        cpu = _cpu_s()
        out[f"{name}_cpu_s"] = cpu - cpu0[0]
        cpu0[0] = cpu
        stage_peak[name] = _proc_status_kib("VmHWM") / 2**20
        if can_reset:
            _reset_peak()

    if args.method == "jitter":  # the exact path on features moved by ~1e-4 per coordinate
        rng = np.random.default_rng(args.seed + 1)
        for a in range(0, n, 65536):
            part = x[a:a + 65536]
            part += np.float32(args.jitter) * rng.standard_normal(part.shape, dtype=np.float32)
            part /= np.linalg.norm(part, axis=1, keepdims=True)
    method = "exact" if args.method == "jitter" else args.method
    t = time.perf_counter()
    opts = ({"nlist": args.nlist, "nprobe": args.nprobe, "fp16": args.ivf_fp16, "pq_m": args.ivf_pq,
             "spherical": args.ivf_spherical, "seed": args.ivf_seed}
            if args.method == "ivf" else {})
    _, rank = search_knn(x, k1, method=method, device=args.device, **opts)
    stage("knn", t)
    t = time.perf_counter()
    dist = jaccard_distance(x, k1=k1, k2=k2, rank=rank, block_rows=args.block_rows,
                            max_distance=eps + gap if args.block_rows > 0 else None,
                            normalized=True)
    out["nnz_per_row"] = dist.nnz / n
    stage("jaccard", t)
    t = time.perf_counter()
    labels = dbscan(dist, eps, min_samples)
    tight = dbscan(dist, eps - gap, min_samples)
    loose = dbscan(dist, eps + gap, min_samples)
    del dist
    stage("dbscan", t)
    t = time.perf_counter()
    r_comp, r_indep = cluster_reliability(tight, labels, loose)
    thr = independence_threshold(labels, r_indep)
    final = relabel_kept(labels, self_paced_filter(labels, r_comp, r_indep, thr))
    stage("reliability", t)
    out["total_s"] = time.perf_counter() - t_all
    out["total_cpu_s"] = sum(out[f"{k}_cpu_s"] for k in ("knn", "jaccard", "dbscan",
                                                         "reliability"))
    out["peak_gib"] = max(stage_peak.values())
    out["stage_peak_gib"] = stage_peak if can_reset else {}
    out["clusters"] = int(final.max()) + 1
    out["unclustered"] = int((final < 0).sum())
    out["ari_true"] = label_quality(final, ids)["ari"]
    if args.save:
        np.save(args.save + "_rank.npy", rank)
        np.save(args.save + "_labels.npy", final)
    return out


def _run_row(args: argparse.Namespace, method: str, n: int, save: str) -> dict:
    """One row in a child process (its own peak RSS); ``save`` a path prefix for the kNN lists
    and labels, or "" for none."""
    cmd = [sys.executable, __file__, "--scale-case", "--method", method, "--n", str(n),
           "--d", str(args.dim), "--nlist", str(args.nlist), "--nprobe",
           str(args.nprobe), "--ivf-pq", str(args.ivf_pq), "--ivf-seed", str(args.ivf_seed),
           "--block-rows",
           str(args.block_rows), "--noise", str(args.noise), "--seed", str(args.seed),
           "--device", args.device, "--features", args.features,
           "--tile-noise", str(args.tile_noise), "--jitter", str(args.jitter),
           "--save", save]
    cmd += ["--ivf-fp16"] if args.ivf_fp16 else []
    cmd += ["--ivf-spherical"] if args.ivf_spherical else []
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"row {method} N={n} failed:\n{res.stderr[-3000:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"done {method} N={n}: {row['total_s']:.1f} s, peak {row['peak_gib']:.2f} GiB",
          file=sys.stderr, flush=True)
    return row


def scale_rows(args: argparse.Namespace) -> list[dict]:
    """Run every (N, method) row in a child process; exact first so IVF can be compared.

    With ``--repeat R`` the methods run R times in turn (exact, ivf, ..., exact, ivf, ...), so
    a change in the machine's speed falls on every method alike; each method's row is its run
    of median total time, with every run's total in ``total_runs``, and the time ratios are
    between those medians. Recall and ARI come from the first round (the runs are seeded)."""
    from reid.cluster.knn import knn_recall
    from reid.cluster.quality import partition_ari

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            methods = [m for m in args.methods
                       if m not in ("exact", "jitter") or n <= args.exact_max]
            runs: dict[str, list[dict]] = {m: [] for m in methods}
            for rep in range(args.repeat):
                for method in methods:
                    save = os.path.join(tmp, f"{method}_{n}") if rep == 0 else ""
                    runs[method].append(_run_row(args, method, n, save))
            for method in methods:
                by_time = sorted(runs[method], key=lambda r: r["total_s"])
                row = dict(by_time[(len(by_time) - 1) // 2])
                row["total_runs"] = [r["total_s"] for r in runs[method]]
                if method != "exact" and "exact" in runs:
                    ex = next(r for r in rows if r["n"] == n and r["method"] == "exact")
                    mine, ref = os.path.join(tmp, f"{method}_{n}"), os.path.join(tmp, f"exact_{n}")
                    row["recall"] = knn_recall(np.load(mine + "_rank.npy"),
                                               np.load(ref + "_rank.npy"))
                    row["ari_vs_exact"] = partition_ari(np.load(mine + "_labels.npy"),
                                                        np.load(ref + "_labels.npy"))
                    row["speedup"] = ex["total_s"] / row["total_s"]
                    row["cpu_speedup"] = ex["total_cpu_s"] / row["total_cpu_s"]
                rows.append(row)
    return rows


def format_scale_table(rows: list[dict]) -> str:
    """The scaling table: one line per row, stage wall seconds, total CPU seconds (all
    threads), peak GiB, bytes per image above the process's RSS once the features exist
    (B/img), the comparison columns (end-to-end wall and CPU time ratios exact / IVF)."""
    head = (f"{'kNN':<6}{'N':>9}{'D':>6}{'kNN s':>8}{'Jacc s':>8}{'DBSCAN s':>9}{'rel s':>7}"
            f"{'total s':>9}{'CPU s':>8}{'peak GiB':>9}{'B/img':>7}{'clusters':>9}{'uncl.':>8}"
            f"{'ARI gt':>8}"
            f"{'recall':>8}{'ARI ex':>8}{'ex/ivf':>8}{'cpu ex/ivf':>11}")
    lines = [head]

    def opt(r: dict, key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else "-"

    for r in rows:
        lines.append(
            f"{r['method']:<6}{r['n']:>9}{r['d']:>6}{r['knn_s']:>8.1f}{r['jaccard_s']:>8.1f}"
            f"{r['dbscan_s']:>9.2f}{r['reliability_s']:>7.2f}{r['total_s']:>9.1f}"
            f"{r['total_cpu_s']:>8.1f}"
            f"{r['peak_gib']:>9.2f}{(r['peak_gib'] - r['base_gib']) * 2**30 / r['n']:>7.0f}"
            f"{r['clusters']:>9}{r['unclustered']:>8}{r['ari_true']:>8.3f}"
            f"{opt(r, 'recall', '.3f'):>8}{opt(r, 'ari_vs_exact', '.3f'):>8}"
            f"{opt(r, 'speedup', '.2f'):>8}{opt(r, 'cpu_speedup', '.2f'):>11}")
    for r in rows:
        if len(r.get("total_runs", [])) > 1:
            lines.append(f"{r['method']} N={r['n']}: total s of the {len(r['total_runs'])} "
                         "runs, in order: " + ", ".join(f"{t:.1f}" for t in r["total_runs"]))
    return "\n".join(lines)


def main() -> None:
    from reid.cluster.knn import IVF_NPROBE_DEFAULT

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="")
    p.add_argument("--n", type=int, default=12936)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--big-d", type=int, default=2048)
    p.add_argument("--skip-100k", action="store_true")
    g = p.add_argument_group("scaling rows (issue #27)")
    g.add_argument("--sizes", type=int, nargs="+", default=[],
                   help="N of the scaling rows, e.g. 100000 300000 1000000")
    g.add_argument("--dim", type=int, default=256, help="feature dimension of the scaling rows")
    g.add_argument("--methods", nargs="+", default=["exact", "ivf"],
                   choices=["exact", "ivf", "jitter"],
                   help="jitter: the exact path on the features plus Gaussian noise of --jitter "
                        "per coordinate (re-normalised), the ARI floor of a near-exact kNN")
    g.add_argument("--jitter", type=float, default=1e-4)
    g.add_argument("--exact-max", type=int, default=300_000,
                   help="largest N that also runs the exact path (for recall / ARI / speed)")
    g.add_argument("--nlist", type=int, default=0, help="CLUSTER.IVF_NLIST (0 = rule)")
    g.add_argument("--nprobe", type=int, default=IVF_NPROBE_DEFAULT, help="CLUSTER.IVF_NPROBE")
    g.add_argument("--ivf-fp16", action="store_true", help="CLUSTER.IVF_FP16")
    g.add_argument("--ivf-spherical", action="store_true", help="CLUSTER.IVF_SPHERICAL")
    g.add_argument("--ivf-pq", type=int, default=0, help="CLUSTER.IVF_PQ")
    g.add_argument("--ivf-seed", type=int, default=0,
                   help="the IVF k-means seed (the library uses 0): agreement by seed")
    g.add_argument("--block-rows", type=int, default=50_000, help="CLUSTER.BLOCK_ROWS")
    g.add_argument("--noise", type=float, default=0.1, help="fraction of un-clusterable points")
    g.add_argument("--features", default="",
                   help="tools/extract.py .npz of real features, tiled to N (tiled_real_features)"
                        " instead of the synthetic clusters")
    g.add_argument("--tile-noise", type=float, default=0.1,
                   help="norm of the Gaussian noise added to the tiled real features")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--repeat", type=int, default=1,
                   help="run the methods this many times in turn; rows are the median runs")
    g.add_argument("--device", default="cpu",
                   help="device of the kNN stage (cuda: faiss-GPU, else the exact torch search "
                        "on the GPU; Jaccard, DBSCAN and reliability stay on the CPU)")
    g.add_argument("--json", default="", help="also write the rows to this file")
    g.add_argument("--scale-case", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--method", default="ivf", help=argparse.SUPPRESS)
    g.add_argument("--save", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.scale_case:
        print(json.dumps(run_scale(args)))
        return
    if args.sizes:
        rows = scale_rows(args)
        print(f"features: {args.features or 'synthetic clusters'}; kNN stage on {args.device};"
              " the other stages on the CPU")
        print(f"ivf: nlist {args.nlist or 'rule'}, nprobe {args.nprobe}, "
              f"{'spherical' if args.ivf_spherical else 'plain'} k-means"
              + (f" (seed {args.ivf_seed})" if args.ivf_seed else "")
              + (", fp16" if args.ivf_fp16 else "")
              + (f", PQ {args.ivf_pq}" if args.ivf_pq else ""))
        print(format_scale_table(rows))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
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
