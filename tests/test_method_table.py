"""benchmarks/method_table.py: its cells compare like with like, and its page is rebuilt
exactly from the saved results (hand-written logs, no training)."""
from __future__ import annotations

from pathlib import Path

import pytest

from reid.config import load_cfg

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "method_table.py"


@pytest.fixture(scope="module")
def table(load_script):
    return load_script(SCRIPT)



def _line(epoch: int, **maps: float) -> dict:
    first = next(iter(maps.values()))
    line = {"epoch": epoch, "mAP": first, "mINP": first / 2, "rank1": first / 2,
            "rank5": first, "rank10": first}
    for name, value in maps.items():
        line |= {f"{name}/mAP": value, f"{name}/rank1": value / 2, f"{name}/mINP": value / 2,
                 f"{name}/rank5": value, f"{name}/rank10": value}
    return line


def test_cells_of_a_column_share_backbone_input_and_budget(table):
    """Same trunk, input, batch, epochs, iterations and LR steps within a column; no
    camera-topology prior anywhere; each run writes where the report reads."""
    keys = ("MODEL.ARCH", "MODEL.PRETRAINED_PATH", "INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST",
            "SOLVER.IMS_PER_BATCH", "SOLVER.MAX_EPOCHS", "SOLVER.ITERS", "SOLVER.STEPS",
            "SOLVER.BASE_LR", "MODEL.WEIGHTS", "DATASETS.SOURCE", "DATASETS.TARGET")
    for column in table.COLUMNS:
        seen = {}
        for method in table.METHODS:
            name = table.CELLS[(method, column)]
            if name not in table.RUNS:
                continue
            cfg = load_cfg(str(ROOT / table.RUNS[name][0]))
            values = {}
            for key in keys:
                node = cfg
                for part in key.split("."):
                    node = node[part]
                values[key] = node
            seen[method] = values
            assert not cfg.CLUSTER.CAMERA_GROUPS, name
            assert cfg.OUTPUT_DIR == f"logs/real/{name}", name
        first = next(iter(seen.values()))
        for method, values in seen.items():
            assert values == first, (column, method)
    assert sum(name in table.RUNS for name in table.CELLS.values()) == 8


def test_cells_show_results_missing_runs_and_reasons(write_run, table, tmp_path):
    write_run(tmp_path, "usl_cuhk03", [_line(-1, cuhk03_detected=0.005),
                                    _line(19, cuhk03_detected=0.12)],
           [{"epoch": 19, "num_clusters": 300, "num_outliers": 20, "nmi": 0.8, "ari": 0.4}], 3000)
    write_run(tmp_path, "supervised_cuhk03",
           [_line(-1, cuhk03_detected=0.005, cuhk01=0.026),
            _line(13, cuhk03_detected=0.20, cuhk01=0.24)], [], 1200)
    write_run(tmp_path, "usl_cuhk01", [_line(-1, cuhk01=0.025), _line(19, cuhk01=0.07)],
              [{"epoch": 19, "num_clusters": 90, "num_outliers": 5, "nmi": 0.7, "ari": 0.1}],
              1500, segments=2)
    found = table.collect(tmp_path)
    assert list(found) == ["supervised_cuhk03", "usl_cuhk03", "usl_cuhk01"]
    text = table.report(found)
    comparison = text.split("### Every cell")[0]
    rows = {r.split(" | ")[0].lstrip("| "): r for r in comparison.splitlines()
            if r.startswith("| ")}
    spcl = rows["SpCL"].split(" | ")
    assert spcl[1] == "**12.0** / 6.0 (50 min)" and spcl[2] == "**7.0** / 3.5 (25 min)"
    assert spcl[3] == "not run yet |"
    assert "no UDA variant" in rows["Cluster Contrast"]
    every = [r for r in text.splitlines() if r.startswith("| SpCL | USL CUHK03 |")][0]
    assert ("`python tools/train.py --config-file configs/real/usl_cuhk03.yaml` | 50.0 | 12.0 | "
            "6.0 | 6.0 | 12.0 | 12.0 | 300 | 20 | 0.800 | 0.400 |") in every
    every01 = [r for r in text.splitlines() if r.startswith("| SpCL | USL CUHK01 |")][0]
    assert "usl_cuhk01.yaml` | 25.0 (2 segments) | 7.0 | 3.5 |" in every01
    assert ("| supervised_cuhk03 (direct transfer) | cuhk01 | `python tools/train.py "
            "--config-file configs/real/supervised_cuhk03.yaml` | 20.0 | 24.0 | 12.0 |") in text
    assert "| ImageNet trunk, no training | cuhk03_detected | (initial evaluation) | - | 0.5 |" \
        in text


def test_saved_results_reproduce_the_committed_page(table, monkeypatch):
    """docs/RESULTS.md is exactly the report of docs/results.json (no logs needed)."""
    monkeypatch.setattr(table.platform, "processor", lambda: "")
    monkeypatch.setattr(table.platform, "machine", lambda: "x86_64")  # the writing machine
    found = table.collect(ROOT / "no-logs-here", ROOT / "docs" / "results.json")
    assert table.report(found) == (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
