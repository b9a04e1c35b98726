"""Run every GPU path of the library once and print one table: path, result, time, and whether
it equals the CPU path (with the tolerance used).

    python tools/gpu_check.py                # on a CUDA machine, under 8 minutes on one GPU
    python tools/gpu_check.py --only dbscan knn

Checks (each a function returning a :class:`Row`; ``--only`` selects by name):

* ``knn``: the exact torch kNN on CUDA (``knn``'s path there without a usable faiss-GPU; also
  timed at N = 100,000, D = 256 against faiss-CPU), faiss-GPU exact kNN and IVF kNN
  (``nprobe = nlist``), each against faiss-CPU exact kNN (same lists; tolerance: recall >=
  0.999, near-ties may swap; distances within 1e-3).
* ``kmeans``: faiss-GPU k-means against faiss-CPU k-means, same seed, on well separated
  clusters (tolerance: ARI >= 0.99).
* ``dbscan``: :func:`reid.cluster.dbscan_torch` on CUDA against scikit-learn's DBSCAN on the
  dense Jaccard matrix of clustered features (exact label equality).
* ``spcl``: one synthetic SpCL (USL) epoch (ResNet-50, 256 x 128, 10 steps of 32) through
  ``tools/train.py``'s entry point on CUDA in fp32 and on the CPU (speed ratio; equality not
  expected: different kernels), and with ``SOLVER.AMP True`` (bf16 autocast; finite losses).
* ``ddp``: ``torch.distributed.run`` (NCCL) on ``tools/train.py`` with 1 and, where there are
  two GPUs, 2 processes; every checkpoint verifies that the ranks are identical (it raises
  otherwise), so exit status 0 means equal.
* ``video``: one bf16 forward + backward of a clip batch through TimeSformer and ViViT
  (``_tiny`` sizes) on CUDA, against the fp32 CPU forward of the same weights (tolerance:
  cosine of the embeddings >= 0.99; gradients finite).

Without CUDA it prints "no CUDA" and exits 0.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# a tiny synthetic USL run (like tests/conftest.py's TINY): ResNet-10 at 32 x 16, 2 iterations
TINY_TRAIN = [
    "MODEL.ARCH", "resnet10", "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]",
    "INPUT.PADDING", "2", "DATASETS.SYNTHETIC.IDS", "12", "DATASETS.SYNTHETIC.CAMS", "2",
    "DATASETS.SYNTHETIC.SIZE", "[64, 32]", "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.NUM_INSTANCES", "2", "SOLVER.IMS_PER_BATCH", "8", "SOLVER.ITERS", "2",
    "SOLVER.WARMUP_EPOCHS", "0", "TEST.IMS_PER_BATCH", "64", "CLUSTER.K1", "6", "CLUSTER.K2", "2",
    "CLUSTER.MIN_SAMPLES", "2", "SOLVER.MAX_EPOCHS", "1", "TEST.EVAL_PERIOD", "1",
]
SPCL_CONFIG = REPO / "configs" / "demo" / "usl_synthetic.yaml"
# the speed rows' epoch, at re-ID's usual input: ResNet-50 at 256 x 128, 32 images per step,
# 10 steps (on the 100 synthetic training images of TINY_TRAIN)
SPEED_TRAIN = (
    "MODEL.ARCH", "resnet50", "INPUT.SIZE_TRAIN", "[256, 128]", "INPUT.SIZE_TEST", "[256, 128]",
    "INPUT.PADDING", "10", "SOLVER.IMS_PER_BATCH", "32", "SOLVER.ITERS", "10",
    "TEST.IMS_PER_BATCH", "128",
)
SPEED_NAME = "ResNet-50 256x128, 10 x 32 images"


@dataclass
class Row:
    """One line of the table. ``equal``: "yes", "no" or "n/a"; ``tolerance``: what "yes"
    means for this path."""

    path: str
    result: str
    seconds: float
    equal: str
    tolerance: str


def format_table(rows: list[Row]) -> str:
    """Fixed-width table with a header; columns as wide as their longest cell."""
    head = ("path", "result", "time s", "equal to CPU", "tolerance")
    cells = [(r.path, r.result, f"{r.seconds:.2f}", r.equal, r.tolerance) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(head)]

    def line(vals: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) if i != 2 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(vals, widths, strict=True))).rstrip()

    out = [line(head), line(tuple("-" * w for w in widths))]
    out += [line(c) for c in cells]
    return "\n".join(out)


# ------------------------------------------------------------------ CPU-side comparison helpers
def yes_no(ok: bool) -> str:
    return "yes" if ok else "no"


def knn_equal(idx: np.ndarray, dist: np.ndarray, ref_idx: np.ndarray, ref_dist: np.ndarray,
              min_recall: float = 0.999, dist_atol: float = 1e-3) -> tuple[bool, str]:
    """kNN lists equal up to near-ties: recall@k >= ``min_recall`` and the sorted distances
    within ``dist_atol``. Returns (ok, "recall r, max |dd| x")."""
    from reid.cluster.knn import knn_recall

    recall = knn_recall(idx, ref_idx)
    dd = float(np.abs(np.asarray(dist, np.float64) - np.asarray(ref_dist, np.float64)).max())
    return recall >= min_recall and dd <= dist_atol, f"recall {recall:.4f}, max |dd| {dd:.1e}"


def labels_agree(labels: np.ndarray, ref: np.ndarray, min_ari: float = 1.0) -> tuple[bool, str]:
    """Partitions agree: identical arrays, or ARI (outliers as singletons) >= ``min_ari``."""
    from reid.cluster.quality import partition_ari

    labels, ref = np.asarray(labels), np.asarray(ref)
    if labels.shape == ref.shape and np.array_equal(labels, ref):
        return True, "identical"
    ari = partition_ari(labels, ref)
    return ari >= min_ari, f"ARI {ari:.4f}"


def cosine_agree(a: np.ndarray, b: np.ndarray, min_cos: float = 0.99) -> tuple[bool, str]:
    """Row-wise cosine similarity of two embedding batches: the smallest >= ``min_cos``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    low = float(cos.min())
    return low >= min_cos, f"min cosine {low:.4f}"


def clustered(n_ids: int = 60, per_id: int = 10, d: int = 64, spread: float = 0.3,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised Gaussian clusters on the sphere: (x float32 (N, D), ids)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = np.repeat(np.arange(n_ids), per_id)
    x = centres[ids] + spread / np.sqrt(d) * rng.standard_normal((ids.size, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), ids


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# ------------------------------------------------------------------ checks
def _faiss_gpu_missing() -> str:
    """Why faiss's GPU path is not checked: no GPU build, or a build without code for this
    GPU (:func:`reid.cluster.knn.faiss_gpu_kernels_run`)."""
    from reid.cluster.knn import faiss_gpu_build

    if not faiss_gpu_build():
        return "skipped: faiss has no GPU support here"
    return "skipped: faiss's GPU kernels do not run on this GPU (no code for its architecture)"


def check_knn(device: str = "cuda", n_ids: int = 400) -> list[Row]:
    """The exact torch search on ``device`` (what ``knn`` runs on CUDA without a usable
    faiss-GPU) and, where faiss-GPU runs, faiss's exact and IVF searches, each against
    faiss-CPU exact; on CUDA also one timed 100k x 256 search against faiss-CPU."""
    from reid.cluster.knn import faiss_gpu_available, knn, knn_ivf

    tol = "recall >= 0.999, |dd| <= 1e-3"
    x, _ = clustered(n_ids=n_ids, per_id=25, d=128)
    ref_d, ref_i = knn(x, 30, device="cpu", backend="faiss")
    (dist, idx), sec = _timed(lambda: knn(x, 30, device=device, backend="torch"))
    ok, msg = knn_equal(idx, dist, ref_i, ref_d)
    rows = [Row(f"torch exact kNN ({device}) N={x.shape[0]} k=30", msg, sec, yes_no(ok), tol)]
    if device.startswith("cuda"):
        big, _ = clustered(n_ids=4000, per_id=25, d=256)
        (big_d, big_i), t_cpu = _timed(lambda: knn(big, 30, device="cpu", backend="faiss"))
        (dist, idx), sec = _timed(lambda: knn(big, 30, device=device, backend="torch"))
        ok, msg = knn_equal(idx, dist, big_i, big_d)
        rows.append(Row(f"torch exact kNN ({device}) N={big.shape[0]} D=256 k=30",
                        f"{msg}; faiss-CPU {t_cpu:.1f} s ({t_cpu / sec:.1f}x)", sec,
                        yes_no(ok), tol))
        if not faiss_gpu_available():
            return rows + [Row("faiss kNN (GPU)", _faiss_gpu_missing(), 0.0, "n/a", "-")]
    (dist, idx), sec = _timed(lambda: knn(x, 30, device=device, backend="faiss"))
    ok, msg = knn_equal(idx, dist, ref_i, ref_d)
    rows.append(Row(f"faiss exact kNN ({device}) N={x.shape[0]} k=30", msg, sec, yes_no(ok),
                    tol))
    (dist, idx), sec = _timed(lambda: knn_ivf(x, 30, nlist=64, nprobe=64, device=device))
    ok, msg = knn_equal(idx, dist, ref_i, ref_d)
    rows.append(Row(f"faiss IVF kNN ({device}) nprobe=nlist", msg, sec, yes_no(ok), tol))
    return rows


def check_kmeans(device: str = "cuda") -> list[Row]:
    from reid.cluster.kmeans import kmeans_labels
    from reid.cluster.knn import faiss_gpu_available

    if device.startswith("cuda") and not faiss_gpu_available():
        return [Row("faiss k-means (GPU)", _faiss_gpu_missing(), 0.0, "n/a",
                    "-")]
    x, _ = clustered(n_ids=50, per_id=40, d=64, spread=0.2)
    ref = kmeans_labels(x, 50, niter=50, seed=0, device="cpu")
    labels, sec = _timed(lambda: kmeans_labels(x, 50, niter=50, seed=0, device=device))
    ok, msg = labels_agree(labels, ref, min_ari=0.99)
    return [Row(f"faiss k-means ({device}) k=50", msg, sec, yes_no(ok), "ARI >= 0.99")]


def check_dbscan(device: str = "cuda") -> list[Row]:
    from sklearn.cluster import DBSCAN

    from reid.cluster import dbscan_torch, jaccard_distance

    x, _ = clustered(n_ids=40, per_id=12, d=32, spread=0.5)
    dist = jaccard_distance(x, k1=20, k2=6)
    coo = dist.tocoo()
    dense = np.ones(dist.shape)  # absent entries mean distance 1
    dense[coo.row, coo.col] = coo.data  # stored zeros are real zero distances
    rows = []
    for eps in (0.5, 0.6):
        ref = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(dense)
        labels, sec = _timed(lambda eps=eps: dbscan_torch(dist, eps, 4, device=device))
        ok = bool(np.array_equal(labels, ref))
        rows.append(Row(f"torch DBSCAN ({device}) eps={eps}",
                        f"{int(labels.max()) + 1} clusters, {int((labels < 0).sum())} noise",
                        sec, yes_no(ok), "labels identical to sklearn"))
    return rows


def _train(device: str, out: Path, data: Path, *extra: str) -> tuple[dict, float]:
    from reid.engine.cli import train_main

    args = ["--config-file", str(SPCL_CONFIG), *TINY_TRAIN, "DATASETS.ROOT", str(data),
            "OUTPUT_DIR", str(out), "DEVICE", device, *extra]
    _, sec = _timed(lambda: train_main(args))
    merged: dict = {}  # the last evaluation (metrics.jsonl) and the last epoch's mean losses
    for name in ("metrics.jsonl", "train.jsonl"):
        for line in (out / name).read_text().splitlines():
            merged.update(json.loads(line))
    return merged, sec


def _losses(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if "loss" in k.lower()}


def check_spcl(device: str = "cuda", speed: tuple[str, ...] | list[str] = SPEED_TRAIN
               ) -> list[Row]:
    """The speed rows: one synthetic SpCL (USL) epoch with ``speed`` on top of ``TINY_TRAIN``,
    timed end to end (extraction, clustering, training steps, evaluation) on the CPU, on
    ``device`` in fp32 and on ``device`` with bf16 autocast. A tiny run on each device first
    generates the data and pays CUDA's start-up, so the timed runs compare steady costs."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        _train("cpu", Path(tmp) / "warm_cpu", data, "SOLVER.AMP", "False")  # data generation
        _train(device, Path(tmp) / "warm_dev", data, "SOLVER.AMP", "False")  # CUDA start-up
        cpu, t_cpu = _train("cpu", Path(tmp) / "cpu", data, *speed, "SOLVER.AMP", "False")
        gpu, t_gpu = _train(device, Path(tmp) / "gpu", data, *speed, "SOLVER.AMP", "False")
        rows.append(Row(f"SpCL USL epoch fp32 ({device}){' ' + SPEED_NAME if speed else ''}",
                        f"mAP {gpu.get('mAP', float('nan')):.3f} (CPU {cpu.get('mAP', 0):.3f}); "
                        f"{t_cpu / t_gpu:.1f}x the CPU speed ({t_cpu:.1f} s on CPU)",
                        t_gpu, "n/a", "different kernels: not bitwise"))
        amp, t_amp = _train(device, Path(tmp) / "amp", data, *speed, "SOLVER.AMP", "True")
        losses = _losses(amp)
        finite = bool(losses) and all(math.isfinite(v) for v in losses.values())
        rows.append(Row(f"SpCL USL epoch bf16 autocast ({device}, SOLVER.AMP)",
                        "losses " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
                        + f"; mAP {amp.get('mAP', float('nan')):.3f}; "
                        f"{t_gpu / t_amp:.2f}x the fp32 speed",
                        t_amp, "n/a" if finite else "no", "finite losses"))
    return rows


def check_ddp(device: str = "cuda") -> list[Row]:
    import torch

    rows = []
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in [n for n in (1, 2) if n <= max(1, gpus)]:
            out = Path(tmp) / f"ddp{nproc}"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(nproc), str(REPO / "tools" / "train.py"),
                   "--config-file", str(SPCL_CONFIG), *TINY_TRAIN,
                   "DATASETS.ROOT", str(Path(tmp) / "data"), "OUTPUT_DIR", str(out),
                   "DEVICE", device, "SOLVER.MAX_EPOCHS", "2", "TEST.EVAL_PERIOD", "2"]
            proc, sec = _timed(lambda cmd=cmd: subprocess.run(
                cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300))
            log = (out / "log.txt").read_text() if (out / "log.txt").is_file() else ""
            ok = proc.returncode == 0 and f", world size {nproc}\n" in log
            result = (f"exit {proc.returncode}, world size {nproc}" if ok else
                      f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-200:]!r}")
            rows.append(Row(f"DDP NCCL torchrun x{nproc} (2 epochs)", result, sec,
                            yes_no(ok), "ranks identical (checked at every checkpoint)"))
        if gpus < 2:
            rows.append(Row("DDP NCCL torchrun x2", "skipped: one GPU", 0.0, "n/a", "-"))
    return rows


def check_video(device: str = "cuda") -> list[Row]:
    import torch

    from reid.models.video import build_video_encoder

    rows = []
    for arch in ("timesformer_tiny", "vivit_m2_tiny"):
        torch.manual_seed(0)
        model = build_video_encoder(arch, num_classes=10, num_frames=8, img_size=(64, 32))
        clips = torch.randn(4, 3, 8, 64, 32)
        model.eval()
        with torch.no_grad():
            ref = model(clips).numpy()
        model.to(device).eval()  # before the training step: it moves the BN statistics
        dev_clips = clips.to(device)
        with torch.no_grad(), torch.autocast(device_type=torch.device(device).type,
                                             dtype=torch.bfloat16):
            emb = model(dev_clips).float().cpu().numpy()
        ok, msg = cosine_agree(emb, ref, 0.99)
        model.train()

        def step(model=model, dev_clips=dev_clips) -> tuple[torch.Tensor, bool]:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                out = model(dev_clips)
                loss = torch.nn.functional.cross_entropy(
                    out["logits"].float(), torch.arange(4, device=device) % 10)
            loss.backward()
            finite = all(torch.isfinite(p.grad).all() for p in model.parameters()
                         if p.grad is not None)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return loss.detach(), bool(finite)

        (loss, finite), sec = _timed(step)
        rows.append(Row(f"{arch} bf16 fwd+bwd ({device}) 4x3x8x64x32",
                        f"loss {float(loss):.3f}, grads finite {finite}; {msg}", sec,
                        yes_no(ok and finite), "cosine >= 0.99 vs fp32 CPU"))
    return rows


CHECKS: dict[str, Callable[[str], list[Row]]] = {
    "knn": check_knn, "kmeans": check_kmeans, "dbscan": check_dbscan, "spcl": check_spcl,
    "ddp": check_ddp, "video": check_video,
}


def run_checks(names: list[str], device: str) -> list[Row]:
    """Run the named checks; a check that raises becomes a row with the error."""
    rows: list[Row] = []
    for name in names:
        t = time.perf_counter()
        try:
            rows += CHECKS[name](device)
        except Exception as err:  # noqa: BLE001 - one failing path must not hide the others
            rows.append(Row(name, f"ERROR {type(err).__name__}: {str(err)[:160]}",
                            time.perf_counter() - t, "no", "-"))
        print(f"[gpu_check] {name} done in {time.perf_counter() - t:.1f} s", file=sys.stderr,
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    p.add_argument("--device", default="cuda", help="CUDA device of the checks (cuda, cuda:1)")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA: nothing to check (gpu_check runs the GPU paths on a CUDA machine)")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s), "
          f"torch {torch.__version__}", flush=True)
    rows = run_checks(args.only, args.device)
    print(format_table(rows))
    return 0 if all(r.equal != "no" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
