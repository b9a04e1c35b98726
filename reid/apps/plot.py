"""Training curves of a run folder (``tools/plot.py``), with the optional matplotlib extra.

Reads ``RUN_DIR/metrics.jsonl`` (one line per evaluation: ``epoch``, ``mAP``; epoch -1 is the
initial model), ``labels.jsonl`` (per epoch: ``num_clusters``, ``num_outliers``) and
``train.jsonl`` (per epoch: mean losses, keys starting with ``loss``). Curves that have no data
are drawn as an empty panel saying so.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from reid.utils.errors import DatasetError, MissingExtraError

logger = logging.getLogger(__name__)

PLOT_EXTRA = 'pip install -e ".[plot]"'


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a ``.jsonl`` file as dicts ([] when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def run_curves(run_dir: str | os.PathLike) -> dict[str, tuple[list[float], list[float]]]:
    """``{curve: (epochs, values)}`` of a run: ``mAP`` (in %), ``clusters``, ``un-clustered``
    and one entry per loss.

    The x axis counts finished epochs: an evaluation after epoch index ``e`` (0-based, as the
    runner writes it; -1 = the initial model) is at ``e + 1``, the clustering at the start of
    epoch ``e`` at ``e``, and the mean loss over epoch ``e`` at ``e + 1``.

    Raises:
        FileNotFoundError: ``run_dir`` has none of the three files.
    """
    run = Path(run_dir)
    metrics = read_jsonl(run / "metrics.jsonl")
    labels = read_jsonl(run / "labels.jsonl")
    train = read_jsonl(run / "train.jsonl")
    if not (metrics or labels or train):
        raise DatasetError(f"{run} has no metrics.jsonl, labels.jsonl or train.jsonl")
    curves: dict[str, tuple[list[float], list[float]]] = {}
    ev = [m for m in metrics if "mAP" in m]
    curves["target mAP (%)"] = ([m["epoch"] + 1 for m in ev], [100 * m["mAP"] for m in ev])
    for key, title in (("num_clusters", "clusters"), ("num_outliers", "un-clustered images")):
        rows = [r for r in labels if key in r]
        curves[title] = ([r["epoch"] for r in rows], [r[key] for r in rows])
    loss_keys = sorted({k for r in train for k in r if k.startswith("loss")})
    for key in loss_keys:
        rows = [r for r in train if key in r]
        curves[key] = ([r["epoch"] + 1 for r in rows], [r[key] for r in rows])
    if not loss_keys:
        curves["loss"] = ([], [])
    return curves


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
             dpi: int = 100) -> Path:
    """Write a PNG of the run's curves (default ``RUN_DIR/curves.png``), one panel each.

    Raises:
        ImportError: matplotlib is missing (the message names the ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingExtraError(f"tools/plot.py needs matplotlib: {PLOT_EXTRA}") from err
    curves = run_curves(run_dir)
    n = len(curves)
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False)
    for ax, (title, (xs, ys)) in zip(axes.ravel(), curves.items(), strict=False):
        ax.set_title(title)
        ax.set_xlabel("epochs finished")
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3)
            ax.grid(True, alpha=0.3)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    path = Path(out) if out is not None else Path(run_dir) / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
