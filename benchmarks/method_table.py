"""The method comparison table of ``docs/RESULTS.md``: SpCL, camera-aware proxies and Cluster
Contrast on the same real data and budget (not run in CI).

Rows are the methods, columns the settings (USL CUHK03, USL CUHK01, UDA CUHK03 -> CUHK01).
Within a column every cell has the same backbone (the ImageNet MobileNetV2 of
``../shared/weights``), input size, batch size, epochs and iterations
(``tests/test_method_table.py`` checks the configs), and no cell uses a dataset-specific prior
such as the camera-pair topology of CUHK03 (``CLUSTER.CAMERA_GROUPS``; that lives in
``projects/cuhk03_cpu_study``). Each cell is one ``tools/train.py`` command, run in resumable
segments of at most ``--max-minutes`` (a segment stopped at the limit is resumed by the next
call); its wall time is the sum of the segments. Finished runs are kept in
``docs/results.json``, so ``--report-only`` rebuilds the same page on a checkout without
``logs/``.

    python benchmarks/method_table.py --max-minutes 44          # every unfinished run, in order
    python benchmarks/method_table.py --runs usl_cuhk03_cc --max-minutes 44
    python benchmarks/method_table.py --report-only             # rebuild docs/RESULTS.md

Needs ``../shared/data`` (cuhk03_detected, cuhk01) and ``../shared/weights`` (their READMEs);
the UDA cells start from ``supervised_cuhk03``'s checkpoint, so that run comes first.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from reid.evaluation.runs import (
    collect_runs,
    driver_parser,
    pct,
    require_paths,
    target_metrics,
    train_pending,
)

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "logs" / "real"
SNAPSHOT = ROOT / "docs" / "results.json"

# name -> (config, kind, target test set); each config's OUTPUT_DIR is logs/real/<name>
RUNS: dict[str, tuple[str, str, str]] = {
    "supervised_cuhk03": ("configs/real/supervised_cuhk03.yaml", "sup", "cuhk03_detected"),
    "supervised_cuhk01": ("configs/real/supervised_cuhk01.yaml", "sup", "cuhk01"),
    "usl_cuhk03": ("configs/real/usl_cuhk03.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap": ("configs/real/usl_cuhk03_cap.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cc": ("configs/real/usl_cuhk03_cc.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk01": ("configs/real/usl_cuhk01.yaml", "usl", "cuhk01"),
    "usl_cuhk01_cap": ("configs/real/usl_cuhk01_cap.yaml", "usl", "cuhk01"),
    "usl_cuhk01_cc": ("configs/real/usl_cuhk01_cc.yaml", "usl", "cuhk01"),
    "uda_cuhk03_cuhk01": ("configs/real/uda_cuhk03_cuhk01.yaml", "uda", "cuhk01"),
    "uda_cuhk03_cuhk01_cap": ("configs/real/uda_cuhk03_cuhk01_cap.yaml", "uda", "cuhk01"),
}

METHODS = ("SpCL", "camera-aware proxies (CAP)", "Cluster Contrast")
COLUMNS = ("USL CUHK03", "USL CUHK01", "UDA CUHK03 -> CUHK01")
# (method, column) -> run name, or the reason the method has no such run
CELLS: dict[tuple[str, str], str] = {
    ("SpCL", "USL CUHK03"): "usl_cuhk03",
    ("SpCL", "USL CUHK01"): "usl_cuhk01",
    ("SpCL", "UDA CUHK03 -> CUHK01"): "uda_cuhk03_cuhk01",
    ("camera-aware proxies (CAP)", "USL CUHK03"): "usl_cuhk03_cap",
    ("camera-aware proxies (CAP)", "USL CUHK01"): "usl_cuhk01_cap",
    ("camera-aware proxies (CAP)", "UDA CUHK03 -> CUHK01"): "uda_cuhk03_cuhk01_cap",
    ("Cluster Contrast", "USL CUHK03"): "usl_cuhk03_cc",
    ("Cluster Contrast", "USL CUHK01"): "usl_cuhk01_cc",
    ("Cluster Contrast", "UDA CUHK03 -> CUHK01"):
        "no UDA variant: Cluster Contrast is unsupervised, one softmax over one domain's "
        "clusters; `SOLVER.METHOD cluster_contrast` refuses a DATASETS.SOURCE (docs/METHODS.md)",
}

BUDGETS = {
    "USL CUHK03": "20 epochs x 100 iterations of 64 images, lr 3.5e-4, x0.1 at epoch 15, "
                  "from the ImageNet trunk",
    "USL CUHK01": "20 epochs x 60 iterations of 64 images, lr 3.5e-4, x0.1 at epoch 15, "
                  "from the ImageNet trunk",
    "UDA CUHK03 -> CUHK01": "14 epochs x 60 iterations of 64 source + 64 target images, "
                            "lr 3.5e-5, x0.1 at epoch 10, from the supervised CUHK03 model "
                            "(`supervised_cuhk03`: its direct transfer is the baseline)",
}


def output_dir(name: str, logs: Path = LOGS) -> Path:
    return logs / name


def command(name: str) -> str:
    return f"python tools/train.py --config-file {RUNS[name][0]}"


def collect(logs: Path = LOGS, snapshot: Path | None = None) -> dict[str, dict[str, Any]]:
    """Finished runs (``RUNS`` order) from ``logs``, else from ``snapshot``."""
    return collect_runs({n: (output_dir(n, logs), kind, target)
                         for n, (_, kind, target) in RUNS.items()}, snapshot)


def _final(record: dict[str, Any]) -> dict[str, float | None]:
    return target_metrics(record["metrics"][-1], record["target"])


def _labels(record: dict[str, Any]) -> list[str]:
    last = record["labels"][-1] if record["labels"] else {}
    return [str(int(last["num_clusters"])) if "num_clusters" in last else "-",
            str(int(last["num_outliers"])) if "num_outliers" in last else "-",
            f"{last['nmi']:.3f}" if "nmi" in last else "-",
            f"{last['ari']:.3f}" if "ari" in last else "-"]


def _wall(record: dict[str, Any]) -> str:
    """The wall time in minutes, with the number of segments when there were several."""
    segments = record.get("segments", 1)
    return f"{record['minutes']:.1f}" + (f" ({segments} segments)" if segments > 1 else "")


def cell_text(method: str, column: str, found: dict[str, dict[str, Any]]) -> str:
    """One cell of the comparison: ``mAP / R1 (wall min)``, "not run yet" or the reason."""
    name = CELLS[(method, column)]
    if name not in RUNS:
        return name
    if name not in found:
        return "not run yet"
    m = _final(found[name])
    return f"**{pct(m['mAP'])}** / {pct(m['rank1'])} ({found[name]['minutes']:.0f} min)"


def report(found: dict[str, dict[str, Any]]) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Results",
        "",
        "## Method comparison on real data (CPU)",
        "",
        "Written by `python benchmarks/method_table.py` (do not edit by hand). Cells: target mAP "
        "/ rank-1 in % of the last evaluation (wall time in minutes, data loading, clustering "
        "and evaluations included; a run split into resumable segments redoes, after each "
        "stop, the epoch that was under way, and its wall time counts that epoch twice). Every "
        "cell: ImageNet MobileNetV2 trunk of "
        f"`../shared/weights`, 128x64 input, the split of `../shared/data/README.md`, {cpu} CPU "
        "with 2 cores, and no dataset-specific prior (the camera-pair topology of CUHK03 is in "
        "the experiment log below). Within a column every method has the same budget:",
        "",
        *[f"- **{c}**: {BUDGETS[c]}." for c in COLUMNS],
        "",
        "Each method keeps its own published choices (loss, memory, sampler, clustering "
        "features); the configs' headers and [METHODS.md](METHODS.md) / [SPCL.md](SPCL.md) list "
        "them.",
        "",
        "| method | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    lines += [f"| {m} | " + " | ".join(cell_text(m, c, found) for c in COLUMNS) + " |"
              for m in METHODS]
    lines += ["", "### Every cell", "",
              "| method | setting | command | wall (min) | mAP | mINP | R1 | R5 | R10 | clusters "
              "| un-clustered | NMI | ARI |", "|---" * 13 + "|"]
    for (method, column), name in CELLS.items():
        if name not in RUNS:
            continue
        r = found.get(name)
        if r is None:
            lines.append(f"| {method} | {column} | `{command(name)}` | not run yet |"
                         + " - |" * 9)
            continue
        m = _final(r)
        lines.append(f"| {method} | {column} | `{command(name)}` | {_wall(r)} | "
                     + " | ".join(pct(m[k]) for k in ("mAP", "mINP", "rank1", "rank5", "rank10"))
                     + " | " + " | ".join(_labels(r)) + " |")
    lines += references(found)
    lines += ["", "## Experiment logs", "",
              "- [projects/cuhk03_cpu_study](../projects/cuhk03_cpu_study/README.md): how far USL "
              "CUHK03 goes on a CPU (camera-aware proxies, camera-pair topology prior, "
              "CA-Jaccard, test-time camera BN), every run with its command in its "
              "[RESULTS.md](../projects/cuhk03_cpu_study/RESULTS.md), what was tried in "
              "[NOTES.md](../projects/cuhk03_cpu_study/NOTES.md)."]
    return "\n".join(lines) + "\n"


def references(found: dict[str, dict[str, Any]]) -> list[str]:
    """The initial ImageNet model, the supervised upper bounds and the direct transfer."""
    rows = []
    for ds in ("cuhk03_detected", "cuhk01"):
        init = next((r["metrics"][0] for r in found.values() if r["kind"] != "uda"
                     and r["metrics"][0]["epoch"] < 0 and f"{ds}/mAP" in r["metrics"][0]), None)
        if init is not None:
            m = target_metrics(init, ds)
            rows.append(f"| ImageNet trunk, no training | {ds} | (initial evaluation) | - | "
                        f"{pct(m['mAP'])} | {pct(m['rank1'])} |")
    for name in ("supervised_cuhk03", "supervised_cuhk01"):
        r = found.get(name)
        if r is None:
            rows.append(f"| {name} | {RUNS[name][2]} | `{command(name)}` | not run yet | - | - |")
            continue
        other = "cuhk01" if r["target"] == "cuhk03_detected" else "cuhk03_detected"
        for label, ds in ((f"{name} (upper bound)", r["target"]),
                          (f"{name} (direct transfer)", other)):
            m = target_metrics(r["metrics"][-1], ds)
            if ds != r["target"] and f"{ds}/mAP" not in r["metrics"][-1]:
                continue
            rows.append(f"| {label} | {ds} | `{command(name)}` | {r['minutes']:.1f} | "
                        f"{pct(m['mAP'])} | {pct(m['rank1'])} |")
    return ["", "### References", "",
            "| reference | test set | command | wall (min) | mAP | R1 |", "|---" * 6 + "|", *rows]


def main(argv: list[str] | None = None) -> None:
    parser = driver_parser(__doc__.splitlines()[0], RUNS)
    args = parser.parse_args(argv)
    if not args.report_only:
        require_paths(ROOT / "../shared/data/cuhk03_detected", ROOT / "../shared/weights")
        train_pending({n: (command(n).split(), output_dir(n)) for n in RUNS}, ROOT,
                      names=args.runs, max_minutes=args.max_minutes, tag="method_table")
    found = collect(snapshot=SNAPSHOT)
    SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    text = report(found)
    (ROOT / "docs" / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
