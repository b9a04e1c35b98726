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


def curves_from_records(
    metrics: list[dict[str, Any]], labels: list[dict[str, Any]], train: list[dict[str, Any]],
    map_key: str = "mAP",
) -> dict[str, tuple[list[float], list[float]]]:
    """``{curve: (epochs, values)}`` from a run's records: ``target mAP (%)`` (from ``map_key``
    of every evaluation), ``clusters``, ``un-clustered images`` and one entry per loss.

    The x axis counts finished epochs: an evaluation after epoch index ``e`` (0-based, as the
    runner writes it; -1 = the initial model) is at ``e + 1``, the clustering at the start of
    epoch ``e`` at ``e``, and the mean loss over epoch ``e`` at ``e + 1``.
    """
    curves: dict[str, tuple[list[float], list[float]]] = {}
    ev = [m for m in metrics if m.get(map_key) is not None]
    curves["target mAP (%)"] = ([m["epoch"] + 1 for m in ev], [100 * m[map_key] for m in ev])
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


def run_curves(run_dir: str | os.PathLike) -> dict[str, tuple[list[float], list[float]]]:
    """:func:`curves_from_records` of a run folder's ``metrics.jsonl``, ``labels.jsonl`` and
    ``train.jsonl``.

    Raises:
        DatasetError: ``run_dir`` has none of the three files.
    """
    run = Path(run_dir)
    metrics = read_jsonl(run / "metrics.jsonl")
    labels = read_jsonl(run / "labels.jsonl")
    train = read_jsonl(run / "train.jsonl")
    if not (metrics or labels or train):
        raise DatasetError(f"{run} has no metrics.jsonl, labels.jsonl or train.jsonl")
    return curves_from_records(metrics, labels, train)


def plot_runs(runs: dict[str, dict[str, tuple[list[float], list[float]]]],
              out: str | os.PathLike, title: str = "", dpi: int = 100,
              panels: list[str] | None = None) -> Path:
    """Write one PNG with a panel per curve and a line per run (legend: the run names).

    Args:
        runs: ``{run name: curves}`` as :func:`curves_from_records` returns them.
        out: the PNG path.
        title: figure title.
        panels: the curves to draw (default: every curve of any run, in first-seen order).

    Raises:
        MissingExtraError: matplotlib is missing (the message names the ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingExtraError(f"tools/plot.py needs matplotlib: {PLOT_EXTRA}") from err
    if panels is None:
        panels = list(dict.fromkeys(k for curves in runs.values() for k in curves))
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        ax.set_title(panel)
        ax.set_xlabel("epochs finished")
        drawn = False
        for name, curves in runs.items():
            xs, ys = curves.get(panel, ([], []))
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=name if len(runs) > 1 else None)
                drawn = True
        if drawn:
            ax.grid(True, alpha=0.3)
            if len(runs) > 1:
                ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
             dpi: int = 100) -> Path:
    """Write a PNG of the run's curves (default ``RUN_DIR/curves.png``), one panel each.

    Raises:
        DatasetError: no record file in ``run_dir``; MissingExtraError: no matplotlib.
    """
    path = Path(out) if out is not None else Path(run_dir) / "curves.png"
    return plot_runs({str(run_dir): run_curves(run_dir)}, path, title=str(run_dir), dpi=dpi)
