"""Real-data results on CUHK03 / CUHK01 from the ImageNet MobileNetV2 trunk (not run in CI).

Runs the configs of ``configs/real/`` one after another with ``tools/train.py`` (a user's
command, in a subprocess), records each run's wall time, and writes ``docs/RESULTS.md``: one
row per run with its command, wall time, mAP / mINP / rank-1/5/10 of the last evaluation, the
pseudo-label statistics of the last epoch (clusters, un-clustered, NMI / ARI against the true
ids) for USL / UDA, the initial-model rows (the ImageNet trunk before any training) and the
acceptance ratios (USL / supervised upper bound; share of the direct-transfer gap UDA closes).
A plot of target mAP and the number of clusters per epoch for the USL / UDA runs is written to
``docs/real_curves.png`` when matplotlib is installed.

``logs/`` is not committed, so every finished run is also kept in ``docs/results.json`` (its
metrics.jsonl / labels.jsonl lines and wall time): the report of a checkout holds the runs of
earlier machines, and a run found under ``logs/`` replaces its saved entry. Entries marked
``summary_only`` were recovered from an earlier RESULTS.md table (final numbers only, no
per-epoch curve); while one exists the plot is left as it is.

    python benchmarks/train_real.py                       # every run (a few hours on 2 cores)
    python benchmarks/train_real.py --runs usl_cuhk03     # some runs; the others are reused
    python benchmarks/train_real.py --report-only         # rebuild docs/RESULTS.md
    python benchmarks/train_real.py --report-only --camera-bn   # + each checkpoint evaluated
                                                          # with TEST.CAMERA_BN flipped

Needs ``../shared/data`` (cuhk03_detected, cuhk01) and ``../shared/weights`` (see their
READMEs); paths are those of ``configs/real/Base-real.yaml``, relative to the repository root.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# name -> (config, kind, target test set); kinds: sup (supervised), usl, uda
RUNS: dict[str, tuple[str, str, str]] = {
    "supervised_cuhk03": ("configs/real/supervised_cuhk03.yaml", "sup", "cuhk03_detected"),
    "supervised_cuhk01": ("configs/real/supervised_cuhk01.yaml", "sup", "cuhk01"),
    "usl_cuhk03_random": ("configs/real/usl_cuhk03.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03": ("configs/real/usl_cuhk03.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap": ("configs/real/usl_cuhk03_cap.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pb": ("configs/real/usl_cuhk03_cap_pb.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pairs": ("configs/real/usl_cuhk03_cap_pairs.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_ema": ("configs/real/usl_cuhk03_cap_pairs_ema.yaml", "usl",
                                 "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_skip": ("configs/real/usl_cuhk03_cap_pairs_skip.yaml", "usl",
                                  "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_ca": ("configs/real/usl_cuhk03_cap_pairs_ca.yaml", "usl",
                                "cuhk03_detected"),
    "usl_cuhk03_cap_pb_ca": ("configs/real/usl_cuhk03_cap_pb_ca.yaml", "usl", "cuhk03_detected"),
    "uda_cuhk03_cuhk01": ("configs/real/uda_cuhk03_cuhk01.yaml", "uda", "cuhk01"),
    "usl_cuhk01": ("configs/real/usl_cuhk01.yaml", "usl", "cuhk01"),
    "uda_cuhk01_cuhk03": ("configs/real/uda_cuhk01_cuhk03.yaml", "uda", "cuhk03_detected"),
}


# runs that are a config plus command-line overrides (name -> KEY VALUE list)
OVERRIDES: dict[str, list[str]] = {
    # plain SpCL before the released sampler: uniform random target batches
    "usl_cuhk03_random": ["DATALOADER.SAMPLER", "random",
                          "OUTPUT_DIR", "logs/real/usl_cuhk03_random"],
}

LOGS = ROOT / "logs" / "real"
SNAPSHOT = ROOT / "docs" / "results.json"


def output_dir(name: str, logs: Path = LOGS) -> Path:
    return logs / name


def command(name: str) -> str:
    return " ".join([f"python tools/train.py --config-file {RUNS[name][0]}",
                     *OVERRIDES.get(name, [])])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def run(name: str) -> None:
    """Train one config from scratch and record its wall time in ``wall_time.json``."""
    out = output_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[train_real] {name}: {command(name)}", flush=True)
    start = time.perf_counter()
    with open(out / "stdout.txt", "w", encoding="utf-8") as log:
        proc = subprocess.run(command(name).split(), cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"[train_real] {name} failed (exit {proc.returncode}); see "
                         f"{out / 'stdout.txt'}")
    (out / "wall_time.json").write_text(json.dumps({"seconds": wall}), encoding="utf-8")
    print(f"[train_real] {name}: done in {wall / 60:.1f} min", flush=True)


def camera_bn_setting(name: str) -> bool:
    """The run's own ``TEST.CAMERA_BN`` (its config, with ``_BASE_`` files merged)."""
    from reid.config import load_cfg

    return bool(load_cfg(str(ROOT / RUNS[name][0])).TEST.CAMERA_BN)


def camera_groups(name: str) -> bool:
    """Whether the run's pseudo labels use a camera-topology prior (``CLUSTER.CAMERA_GROUPS``)."""
    from reid.config import load_cfg

    return bool(load_cfg(str(ROOT / RUNS[name][0])).CLUSTER.CAMERA_GROUPS)


def camera_bn_command(name: str) -> str:
    """tools/test.py on the run's last checkpoint with ``TEST.CAMERA_BN`` flipped."""
    flipped = not camera_bn_setting(name)
    out = (LOGS / name).relative_to(ROOT).as_posix()
    return (f"python tools/test.py --config-file {RUNS[name][0]} MODEL.WEIGHTS {out}/last.pth "
            f"TEST.CAMERA_BN {flipped} OUTPUT_DIR {out}/camera_bn_{'on' if flipped else 'off'}")


def evaluate_camera_bn(name: str) -> None:
    """Evaluate a finished run's checkpoint with the other test-time BN setting."""
    print(f"[train_real] {name}: {camera_bn_command(name)}", flush=True)
    proc = subprocess.run(camera_bn_command(name).split(), cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"[train_real] {name} camera-BN evaluation failed:\n{proc.stderr[-2000:]}")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def target_metrics(line: dict[str, Any], dataset: str) -> dict[str, float | None]:
    """The metrics of ``dataset`` in a metrics.jsonl line (None where the log lacks one)."""
    keys = ("mAP", "mINP", "rank1", "rank5", "rank10")
    if f"{dataset}/mAP" not in line:
        return {k: line.get(k) for k in keys}
    first = line[f"{dataset}/mAP"] == line.get("mAP")  # the first test set: top-level keys
    # older logs hold only mAP and rank-1 per dataset
    return {k: line.get(f"{dataset}/{k}", line.get(k) if first else None) for k in keys}


def collect(logs: Path = LOGS, snapshot: Path | None = None) -> dict[str, dict[str, Any]]:
    """Per finished run (in ``RUNS`` order): its evaluations, label stats per epoch and wall
    time, from ``logs`` or else from the saved entries of ``snapshot`` (a results.json)."""
    saved = (json.loads(snapshot.read_text(encoding="utf-8"))
             if snapshot is not None and snapshot.is_file() else {})
    found: dict[str, dict[str, Any]] = {}
    for name, (_, kind, target) in RUNS.items():
        out = output_dir(name, logs)
        metrics, wall = read_jsonl(out / "metrics.jsonl"), out / "wall_time.json"
        if not metrics or not wall.is_file():
            if name in saved:
                found[name] = saved[name]
            continue
        flipped = {}
        for setting in ("on", "off"):
            eval_json = out / f"camera_bn_{setting}" / "eval.json"
            if eval_json.is_file():
                flipped[setting] = json.loads(eval_json.read_text(encoding="utf-8"))
        found[name] = {
            "kind": kind, "target": target, "metrics": metrics, "camera_bn_flipped": flipped,
            "labels": read_jsonl(out / "labels.jsonl"),
            "minutes": json.loads(wall.read_text(encoding="utf-8"))["seconds"] / 60,
        }
    return found


def report(found: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Real-data results (CUHK03 detected, CUHK01)",
        "",
        "Written by `python benchmarks/train_real.py` (do not edit by hand). ImageNet MobileNetV2",
        "trunk from `../shared/weights`, 128x64 input, split rule of `../shared/data/README.md`,",
        f"CPU only ({platform.processor() or platform.machine()}, 2 cores), torch threads default.",
        "Metrics in % on the target's test set (last evaluation of the run); wall time includes",
        "data loading, clustering and every evaluation. Label columns: the last epoch's pseudo",
        "labels (clusters / un-clustered images / NMI / ARI against the true training ids).",
        "UDA runs start from the source-supervised model (its direct-transfer row is the",
        "baseline); supervised and USL runs from the ImageNet trunk.",
        "",
        "| run | target | command | wall (min) | mAP | mINP | R1 | R5 | R10 "
        "| clusters | un-clustered | NMI | ARI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ds in ("cuhk03_detected", "cuhk01"):
        init = next((r["metrics"][0] for r in found.values() if r["kind"] != "uda"
                     and r["metrics"][0]["epoch"] < 0 and f"{ds}/mAP" in r["metrics"][0]), None)
        if init is not None:
            m = target_metrics(init, ds)
            lines.append(f"| ImageNet trunk, no training | {ds} | (initial evaluation) | - | "
                         + " | ".join(pct(m[k]) for k in ("mAP", "mINP", "rank1", "rank5",
                                                             "rank10"))
                         + " | - | - | - | - |")
    for name, r in found.items():
        rows = [(name, r["target"])]
        if r["kind"] == "sup":  # a supervised run is also the direct transfer to the other set
            other = "cuhk01" if r["target"] == "cuhk03_detected" else "cuhk03_detected"
            if f"{other}/mAP" in r["metrics"][-1]:
                rows.append((f"{name} (direct transfer)", other))
        for label, ds in rows:
            m = target_metrics(r["metrics"][-1], ds)
            lab = r["labels"][-1] if r["labels"] else {}
            stats = [str(int(lab["num_clusters"])) if "num_clusters" in lab else "-",
                     str(int(lab["num_outliers"])) if "num_outliers" in lab else "-",
                     f"{lab['nmi']:.3f}" if "nmi" in lab else "-",
                     f"{lab['ari']:.3f}" if "ari" in lab else "-"]
            lines.append(f"| {label} | {ds} | `{command(name)}` | {r['minutes']:.1f} | "
                         + " | ".join(pct(m[k]) for k in ("mAP", "mINP", "rank1", "rank5",
                                                             "rank10"))
                         + " | " + " | ".join(stats) + " |")
    lines += camera_bn_table(found)
    lines += ["", "## Acceptance ratios", ""]
    lines += ratios(found)
    lines += ["", "What was tried where a target is missed: [REAL_NOTES.md](REAL_NOTES.md)."]
    if (ROOT / "docs" / "real_curves.png").is_file():
        lines += ["", "![target mAP and clusters per epoch](real_curves.png)"]
    return "\n".join(lines) + "\n"


def camera_bn_table(found: dict[str, dict[str, Any]]) -> list[str]:
    """The same checkpoints evaluated with and without test-time camera BN (TEST.CAMERA_BN)."""
    rows = []
    for name, r in found.items():
        setting = "off" if camera_bn_setting(name) else "on"  # the flipped evaluation's
        res = r.get("camera_bn_flipped", {}).get(setting)
        if res is None:
            continue
        sets = [r["target"]]
        if r["kind"] == "sup":
            sets.append("cuhk01" if r["target"] == "cuhk03_detected" else "cuhk03_detected")
        for ds in sets:
            other = res.get("datasets", {}).get(ds, res if ds == r["target"] else None)
            own = target_metrics(r["metrics"][-1], ds)
            if other is None or own["mAP"] is None:
                continue
            off, on = (own, other) if setting == "on" else (other, own)
            rows.append(f"| {name} | {ds} | {pct(off['mAP'])} / {pct(off['rank1'])} | "
                        f"{pct(on['mAP'])} / {pct(on['rank1'])} | "
                        f"{'on' if setting == 'off' else 'off'} | `{camera_bn_command(name)}` |")
    if not rows:
        return []
    return ["", "## Test-time camera BN", "",
            "The last checkpoint of each run with each test image normalised by BatchNorm",
            "statistics of its camera, estimated on the test set's unlabelled training images",
            "(`TEST.CAMERA_BN`, Zhuang et al., ECCV 2020), and without. The run's own config",
            "setting is the one in the table above; the other is from the command shown.", "",
            "| run | test set | mAP / R1 without | mAP / R1 with | config | other setting |",
            "|---|---|---|---|---|---|", *rows]


def final_map(found: dict[str, dict[str, Any]], name: str, ds: str) -> float | None:
    if name not in found:
        return None
    return target_metrics(found[name]["metrics"][-1], ds)["mAP"]


def ratios(found: dict[str, dict[str, Any]]) -> list[str]:
    """USL / supervised upper bound (target >= 0.70) and share of the UDA gap closed (>= 0.5)."""
    out = []
    sup = final_map(found, "supervised_cuhk03", "cuhk03_detected")
    for name in (n for n, (_, kind, target) in RUNS.items()
                 if kind == "usl" and target == "cuhk03_detected"):
        usl = final_map(found, name, "cuhk03_detected")
        if usl is not None and sup:
            prior = (", with the camera-pair topology prior `CLUSTER.CAMERA_GROUPS`"
                     if camera_groups(name) else "")
            out.append(f"- USL CUHK03 ({name}{prior}) / supervised CUHK03: {usl / sup:.2f} "
                       f"(target 0.70): {'met' if usl / sup >= 0.7 else 'missed'}")
    for uda, src, tgt in (("uda_cuhk03_cuhk01", "cuhk03", "cuhk01"),
                          ("uda_cuhk01_cuhk03", "cuhk01", "cuhk03")):
        tgt_ds = "cuhk03_detected" if tgt == "cuhk03" else tgt
        u = final_map(found, uda, tgt_ds)
        direct = final_map(found, f"supervised_{src}", tgt_ds)
        upper = final_map(found, f"supervised_{tgt}", tgt_ds)
        if None in (u, direct, upper) or upper <= direct:
            continue
        closed = (u - direct) / (upper - direct)
        out.append(f"- UDA {src} -> {tgt}: closes {closed:.2f} of the gap between direct "
                   f"transfer ({pct(direct)}) and the supervised upper bound ({pct(upper)}) "
                   f"(target 0.50): {'met' if closed >= 0.5 else 'missed'}")
    return out or ["- (needs the USL / UDA runs and their supervised references)"]


def plot(found: dict[str, dict[str, Any]], path: Path) -> None:
    """Target mAP and clusters per epoch of every USL / UDA run with per-epoch records, drawn by
    ``tools/plot.py``'s :func:`reid.apps.plot.plot_runs` (runs saved as final numbers only are
    left out and named in the title)."""
    from reid.apps.plot import curves_from_records, plot_runs
    from reid.utils.errors import MissingExtraError

    runs = {n: r for n, r in found.items() if r["kind"] in ("usl", "uda")}
    partial = [n for n, r in runs.items() if r.get("summary_only")]
    curves = {}
    for name, r in runs.items():
        if name in partial:
            continue
        metrics = [{"epoch": m["epoch"], "mAP": target_metrics(m, r["target"])["mAP"]}
                   for m in r["metrics"]]
        curves[name] = curves_from_records(metrics, r["labels"], [])
    if not curves:
        return
    title = "USL / UDA runs with per-epoch records"
    if partial:
        title += f" ({len(partial)} runs saved as final numbers only: see RESULTS.md)"
    try:
        plot_runs(curves, path, title=title, dpi=80, panels=["target mAP (%)", "clusters"])
    except MissingExtraError as err:
        print(f"[train_real] {err}: no plot")
        return
    print(f"[train_real] wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", choices=list(RUNS), default=None,
                        help="runs to (re)train; default: every run without a finished log")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report")
    parser.add_argument("--camera-bn", action="store_true",
                        help="also evaluate every finished run with TEST.CAMERA_BN flipped "
                             "(runs whose flipped evaluation exists are kept)")
    args = parser.parse_args(argv)
    for needed in (ROOT / "../shared/data/cuhk03_detected", ROOT / "../shared/weights"):
        if not needed.exists():
            raise SystemExit(f"{needed.resolve()} is missing: see the README of ../shared")
    if not args.report_only:
        todo = args.runs if args.runs is not None else [
            n for n in RUNS if not (output_dir(n) / "wall_time.json").is_file()]
        for name in todo:
            run(name)
    if args.camera_bn:
        for name in collect():
            flipped = "off" if camera_bn_setting(name) else "on"
            if not (output_dir(name) / f"camera_bn_{flipped}" / "eval.json").is_file():
                evaluate_camera_bn(name)
    found = collect(snapshot=SNAPSHOT)
    (ROOT / "docs").mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    plot(found, ROOT / "docs" / "real_curves.png")
    text = report(found)
    (ROOT / "docs" / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
