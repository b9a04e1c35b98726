"""Parser and image-check throughput against straightforward references in the same run.

Usage: python benchmarks/bench_datasets.py [--ids 3000]

Rows: Market-style parse of a generated layout of empty files (reference: os.listdir + regex,
no checks) and, when ../shared/data exists, cuhk03_detected parse and check_images on the real
CUHK01 images (reference: PIL open + convert in a loop).
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from PIL import Image

import reid
from reid.data.datasets import build_dataset
from reid.data.torch_dataset import check_images

SHARED = Path(reid.__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def reference_market(base: Path) -> int:
    pat = re.compile(r"([-\d]+)_c(\d)")
    n = 0
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        for name in os.listdir(base / split):
            m = pat.search(name)
            if m and int(m.group(1)) != -1:
                n += 1
    return n


def reference_read(paths: list[str]) -> int:
    for p in paths:
        Image.open(p).convert("RGB")
    return len(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=3000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "market1501"
        for split in ("bounding_box_train", "query", "bounding_box_test"):
            (base / split).mkdir(parents=True)
            for pid in range(1, args.ids + 1):
                for k in range(4):
                    (base / split / f"{pid:04d}_c{k + 1}s1_{k:06d}_00.jpg").touch()
        t_ours, ds = timed(lambda: build_dataset("market1501", tmp))
        t_ref, n_ref = timed(lambda: reference_market(base))
        n = len(ds.train) + len(ds.query) + len(ds.gallery)
        assert n == n_ref
        rows.append(("market1501 parse (empty files)", n, t_ours, t_ref))
    if SHARED.is_dir():
        t_ours, ds = timed(lambda: build_dataset("cuhk03_detected", str(SHARED)))
        n = len(ds.train) + len(ds.query) + len(ds.gallery)
        t_ref, _ = timed(lambda: len(os.listdir(SHARED / "cuhk03_detected")))
        rows.append(("cuhk03_detected parse (real)", n, t_ours, t_ref))
        paths = sorted(str(p) for p in (SHARED / "cuhk01").glob("*.png"))
        samples = [(p, 0, 0) for p in paths]
        t_ours, bad = timed(lambda: check_images(samples), repeats=1)
        assert bad == []
        t_ref, _ = timed(lambda: reference_read(paths), repeats=1)
        rows.append(("check_images cuhk01 (full decode)", len(paths), t_ours, t_ref))
    print(f"{'task':<36}{'items':>8}{'ours s':>10}{'ref s':>10}{'ours/ref':>10}")
    for name, n, a, b in rows:
        print(f"{name:<36}{n:>8}{a:>10.3f}{b:>10.3f}{a / b:>10.2f}")


if __name__ == "__main__":
    main()
