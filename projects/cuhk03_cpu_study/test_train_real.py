"""The study's report (``train_real.py`` beside this file) on hand-written logs (no training)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "train_real.py"


@pytest.fixture(scope="module")
def train_real(load_script):
    return load_script(SCRIPT)



def _line(epoch: int, **maps: float) -> dict:
    """A metrics.jsonl line whose first test set is the first keyword."""
    first = next(iter(maps.values()))
    line = {"epoch": epoch, "mAP": first, "mINP": first / 2, "rank1": first, "rank5": first,
            "rank10": first}
    for name, value in maps.items():
        line |= {f"{name}/{k}": value for k in ("mAP", "rank1", "rank5", "rank10")}
        line[f"{name}/mINP"] = value / 2
    return line


def test_report_rows_and_acceptance_ratios(write_run, train_real, tmp_path):
    write_run(tmp_path, "supervised_cuhk03",
           [_line(-1, cuhk03_detected=0.005, cuhk01=0.026),
            _line(13, cuhk03_detected=0.20, cuhk01=0.22)], [], 1500)
    write_run(tmp_path, "supervised_cuhk01", [_line(-1, cuhk01=0.026), _line(13, cuhk01=0.42)],
           [], 900)
    write_run(tmp_path, "usl_cuhk03", [_line(-1, cuhk03_detected=0.005),
                                    _line(19, cuhk03_detected=0.12)],
           [{"epoch": 0, "num_clusters": 100, "num_outliers": 50, "nmi": 0.5, "ari": 0.1},
            {"epoch": 19, "num_clusters": 300, "num_outliers": 20, "nmi": 0.8, "ari": 0.4}], 3600)
    write_run(tmp_path, "uda_cuhk03_cuhk01_cap", [_line(-1, cuhk01=0.03), _line(19, cuhk01=0.33)],
           [{"epoch": 19, "num_clusters": 250, "num_outliers": 10, "nmi": 0.9, "ari": 0.5}], 3000)
    found = train_real.collect(tmp_path)
    assert set(found) == {"supervised_cuhk03", "supervised_cuhk01", "usl_cuhk03",
                          "uda_cuhk03_cuhk01_cap"}
    text = train_real.report(found)
    # 0.12 / 0.20 = 0.60 < 0.70; (0.33 - 0.22) / (0.42 - 0.22) = 0.55 >= 0.50
    assert "USL CUHK03 (usl_cuhk03) / supervised CUHK03: 0.60 (target 0.70): missed" in text
    assert "UDA cuhk03 -> cuhk01: closes 0.55 of the gap between direct transfer (22.0) and " \
           "the supervised upper bound (42.0) (target 0.50): met" in text
    rows = {r.split(" | ")[0].lstrip("| "): r for r in text.splitlines() if r.startswith("| ")}
    assert "| 12.0 | 6.0 | 12.0 | 12.0 | 12.0 | 300 | 20 | 0.800 | 0.400 |" in rows["usl_cuhk03"]
    assert "| 60.0 |" in rows["usl_cuhk03"]  # wall time in minutes
    direct = rows["supervised_cuhk03 (direct transfer)"]
    assert " cuhk01 " in direct and "| 22.0 | 11.0 | 22.0 | 22.0 | 22.0 |" in direct
    assert "| ImageNet trunk, no training | cuhk03_detected |" in text
    assert "`python tools/train.py --config-file configs/real/usl_cuhk03.yaml`" in text


def test_unfinished_runs_are_left_out(train_real, tmp_path):
    (tmp_path / "usl_cuhk03").mkdir()
    (tmp_path / "usl_cuhk03" / "metrics.jsonl").write_text(json.dumps(_line(-1, x=0.1)) + "\n")
    assert train_real.collect(tmp_path) == {}  # no wall_time.json: the run did not finish
    assert "needs the USL / UDA runs" in train_real.report({})


def test_camera_bn_table_pairs_each_checkpoint_with_the_flipped_setting(write_run, train_real,
                                                                      tmp_path):
    write_run(tmp_path, "supervised_cuhk03",
           [_line(-1, cuhk03_detected=0.005, cuhk01=0.026),
            _line(13, cuhk03_detected=0.20, cuhk01=0.22)], [], 1500)
    flipped = tmp_path / "supervised_cuhk03" / "camera_bn_on"
    flipped.mkdir()
    (flipped / "eval.json").write_text(json.dumps({
        "mAP": 0.18, "rank1": 0.17,
        "datasets": {"cuhk03_detected": {"mAP": 0.18, "rank1": 0.17},
                     "cuhk01": {"mAP": 0.36, "rank1": 0.25}}}))
    write_run(tmp_path, "supervised_cuhk01", [_line(-1, cuhk01=0.026), _line(13, cuhk01=0.42)],
           [], 900)
    text = train_real.report(train_real.collect(tmp_path))
    rows = [r for r in text.split("## Test-time camera BN")[1].splitlines()
            if r.startswith("| supervised")]
    # supervised_cuhk03's config keeps camera BN off: its own numbers are the "without" column
    assert rows[0].startswith("| supervised_cuhk03 | cuhk03_detected | 20.0 / 20.0 | "
                              "18.0 / 17.0 | off |")
    assert rows[1].startswith("| supervised_cuhk03 | cuhk01 | 22.0 / 22.0 | 36.0 / 25.0 | off |")
    assert "TEST.CAMERA_BN True OUTPUT_DIR logs/real/supervised_cuhk03/camera_bn_on`" in rows[0]
    assert len(rows) == 2  # supervised_cuhk01 has no flipped evaluation


def test_saved_results_keep_runs_whose_logs_are_gone(write_run, train_real, tmp_path):
    """results.json keeps the runs of other machines; a run found in the logs replaces its
    saved entry, and the report reads both (in RUNS order)."""
    logs, snapshot = tmp_path / "logs", tmp_path / "results.json"
    write_run(logs, "supervised_cuhk03", [_line(-1, cuhk03_detected=0.005, cuhk01=0.026),
                                       _line(13, cuhk03_detected=0.20, cuhk01=0.22)], [], 1500)
    saved = train_real.collect(logs)
    saved["usl_cuhk03"] = {"kind": "usl", "target": "cuhk03_detected", "minutes": 60.0,
                           "metrics": [_line(19, cuhk03_detected=0.15)], "labels": [],
                           "camera_bn_flipped": {}, "summary_only": True}
    saved["supervised_cuhk03"]["minutes"] = 99.0  # stale: the log's entry wins
    snapshot.write_text(json.dumps(saved))
    found = train_real.collect(logs, snapshot)
    assert list(found) == ["supervised_cuhk03", "usl_cuhk03"]
    assert found["supervised_cuhk03"]["minutes"] == 25.0
    text = train_real.report(found)
    # 0.15 / 0.20: the saved USL run is measured against the logged supervised run
    assert "USL CUHK03 (usl_cuhk03) / supervised CUHK03: 0.75 (target 0.70): met" in text
    assert train_real.collect(tmp_path / "none", snapshot).keys() == found.keys()
    train_real.plot(found, tmp_path / "curves.png")  # a summary-only run: no plot written
    assert not (tmp_path / "curves.png").exists()


def test_saved_results_reproduce_the_committed_report(train_real, monkeypatch):
    """RESULTS.md is exactly the report of results.json (no logs needed)."""
    monkeypatch.setattr(train_real.platform, "processor", lambda: "")
    monkeypatch.setattr(train_real.platform, "machine", lambda: "x86_64")  # the writing machine
    found = train_real.collect(SCRIPT.parent / "no-logs-here", SCRIPT.parent / "results.json")
    assert train_real.report(found) == (SCRIPT.parent / "RESULTS.md").read_text(encoding="utf-8")


def test_every_run_writes_where_the_report_reads(train_real):
    """Each run's config (with its overrides) has OUTPUT_DIR logs/real/<name>."""
    from reid.config import load_cfg

    for name, (config, _, _) in train_real.RUNS.items():
        cfg = load_cfg(str(train_real.ROOT / config), train_real.OVERRIDES.get(name, []))
        assert cfg.OUTPUT_DIR == f"logs/real/{name}", (name, cfg.OUTPUT_DIR)
