"""Synthetic generator benchmark: generation speed and how hard the data is for a hand-made feature.

Prints, for persons (domain A, default size 128x64): images/s of one process writing a dataset,
with a reference row (Pillow decoding + re-encoding the same JPEGs, the floor of any generator);
the mAP / rank-1 on the domain A and B test sets of HSV colour histograms of 6 horizontal
stripes (a classic hand-made re-ID feature, computed here), which must stay below 0.3 (else the
data is too easy), next to a random-feature reference; the same histogram on the central person
region shows that the clothing colours do carry identity once the camera background is removed;
and the domain gap: mAP on domain B's test set of the demo's model trained with labels on A
against the same model trained with labels on B (same budget).

    python benchmarks/bench_synthetic.py [--ids 100] [--cams 4] [--train-epochs 10]
"""
from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from reid.data.datasets.market_style import read_market_style
from reid.data.synthetic import estimate_images, make_spec, write_dataset
from reid.evaluation import evaluate_rank


def hsv_stripe_histogram(
    path: str, stripes: int = 6, bins: int = 8, centre: bool = False
) -> np.ndarray:
    """L1-normalised HSV histograms (``bins`` per channel) of ``stripes`` horizontal stripes.

    ``centre`` keeps only the central 80% of rows and 40% of columns (mostly the person), which
    shows how much identity information the colours carry once the background is removed.
    """
    hsv = np.asarray(Image.open(path).convert("HSV"))
    if centre:
        h, w = hsv.shape[:2]
        hsv = hsv[h // 10:h - h // 10, int(w * 0.3):int(w * 0.7)]
    feats = []
    for band in np.array_split(hsv, stripes, axis=0):
        for c in range(3):
            h, _ = np.histogram(band[..., c], bins=bins, range=(0, 256))
            feats.append(h)
    f = np.concatenate(feats).astype(np.float64)
    return f / f.sum()


def rank_metrics(query, gallery, feat) -> tuple[float, float]:
    qf, gf = np.stack([feat(q) for q in query]), np.stack([feat(g) for g in gallery])
    dist = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    cmc, mean_ap = evaluate_rank(
        dist, np.array([q[1] for q in query]), np.array([g[1] for g in gallery]),
        np.array([q[2] for q in query]), np.array([g[2] for g in gallery]),
    )
    return float(mean_ap), float(cmc[0])


def supervised_map(root: str, train: str, test: str, epochs: int) -> float:
    """mAP on ``synthetic_person_<test>`` of the demo's model (ResNet-10 at half width, random init)
    trained with labels (cross-entropy + triplet) on ``synthetic_person_<train>`` with
    ``tools/train.py``'s entry point; the sets are generated under ``root`` with the registry's
    defaults."""
    from reid.engine.cli import train_main

    out = Path(root) / f"sup_{train}_{test}"
    config = Path(__file__).resolve().parents[1] / "configs" / "demo" / "usl_synthetic.yaml"
    train_main([
        "--config-file", str(config),
        "DATASETS.ROOT", str(Path(root) / "registry"), "OUTPUT_DIR", str(out),
        "SOLVER.METHOD", "supervised", "DATASETS.SOURCE", f"['synthetic_person_{train}']",
        "DATASETS.TARGET", "[]", "DATASETS.TEST", f"['synthetic_person_{test}']",
        "SOLVER.MAX_EPOCHS", str(epochs), "SOLVER.STEPS", f"[{max(1, epochs * 3 // 4)}]",
        "SOLVER.WARMUP_EPOCHS", "1", "TEST.EVAL_PERIOD", str(epochs),
    ])
    return float(json.loads((out / "eval.json").read_text())["mAP"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--cams", type=int, default=4)
    parser.add_argument("--train-epochs", type=int, default=10,
                        help="epochs (x 30 iterations) of the supervised A / B runs; 0 skips them")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {}
        for domain in ("A", "B"):
            spec = make_spec("person", domain=domain, ids=args.ids, cams=args.cams, seed=0)
            n = estimate_images(spec)
            t = time.perf_counter()
            write_dataset(Path(tmp) / f"p{domain}", spec, progress=False)
            dt = time.perf_counter() - t
            datasets[domain] = read_market_style(f"p{domain}", tmp, [f"p{domain}"])
            if domain == "A":
                files = sorted((Path(tmp) / "pA").rglob("*.jpg"))
                t = time.perf_counter()
                for f in files:
                    buf = io.BytesIO()
                    Image.open(f).save(buf, format="JPEG", quality=92)
                ref = len(files) / (time.perf_counter() - t)
                rows.append(("generation speed, person A 128x64 (images/s)", f"{n / dt:.0f}",
                             f"{ref:.0f} (decode+encode only)", f"{n / dt / ref:.2f}"))
        rng = np.random.default_rng(0)
        for domain, ds in datasets.items():
            m, r1 = rank_metrics(ds.query, ds.gallery, lambda s: hsv_stripe_histogram(s[0]))
            mr, r1r = rank_metrics(ds.query, ds.gallery, lambda s: rng.random(16))
            rows.append((f"HSV stripe histogram, domain {domain} test: mAP (rank-1)",
                         f"{m:.3f} ({r1:.3f})", f"{mr:.3f} ({r1r:.3f}) random feature",
                         f"{m / mr:.2f}"))
            mc, r1c = rank_metrics(ds.query, ds.gallery,
                                   lambda s: hsv_stripe_histogram(s[0], centre=True))
            rows.append((f"same, central person region only, domain {domain}",
                         f"{mc:.3f} ({r1c:.3f})", f"{mr:.3f} ({r1r:.3f}) random feature",
                         f"{mc / mr:.2f}"))
        if args.train_epochs > 0:
            on_a = supervised_map(tmp, "a", "b", args.train_epochs)
            on_b = supervised_map(tmp, "b", "b", args.train_epochs)
            rows.append(("supervised on A, tested on B test: mAP (domain gap)", f"{on_a:.3f}",
                         f"{on_b:.3f} supervised on B", f"{on_a / on_b:.2f}"))
    widths = [max(len(r[i]) for r in rows + [("what", "value", "reference", "ratio")])
              for i in range(4)]
    header = ("what", "value", "reference", "ratio")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
