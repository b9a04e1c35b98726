"""The CUHK03 / CUHK01 CPU study: every run of the experiment log, its report and plot.

Runs the study's configs (this project's ``configs/`` and the product's ``configs/real/``) one
after another with ``tools/train.py`` (a user's command, in a subprocess, in resumable segments of
at most ``--max-minutes``), records each run's wall time, and writes this project's
``RESULTS.md``: one row per run with its command, wall time, mAP / mINP / rank-1/5/10 of the last
evaluation, the pseudo-label statistics of the last epoch (clusters, un-clustered, NMI / ARI
against the true ids) for USL / UDA, the initial-model rows (the ImageNet trunk before any
training) and the acceptance ratios of the study (USL / supervised upper bound; share of the
direct-transfer gap UDA closes). A plot of target mAP and the number of clusters per epoch is
written to ``real_curves.png`` when matplotlib is installed. The product's method comparison
is ``benchmarks/method_table.py`` (``docs/RESULTS.md``).

``logs/`` is not committed, so every finished run is also kept in ``results.json`` (its
metrics.jsonl / labels.jsonl lines and wall time): the report of a checkout holds the runs of
earlier machines, and a run found under ``logs/`` replaces its saved entry. Entries marked
``summary_only`` were recovered from an earlier table (final numbers only, no per-epoch curve).

    python projects/cuhk03_cpu_study/train_real.py                    # every run not yet done
    python projects/cuhk03_cpu_study/train_real.py --runs usl_cuhk03_cap_pb
    python projects/cuhk03_cpu_study/train_real.py --report-only      # rebuild RESULTS.md
    python projects/cuhk03_cpu_study/train_real.py --report-only --camera-bn  # + each checkpoint
                                                   # evaluated with TEST.CAMERA_BN flipped

Needs ``../shared/data`` (cuhk03_detected, cuhk01) and ``../shared/weights`` (see their
READMEs); run from anywhere, paths are relative to the repository root.
"""
from __future__ import annotations

import json
import platform
import subprocess
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

PROJECT = Path(__file__).resolve().parent
ROOT = PROJECT.parents[1]
CONFIGS = PROJECT.relative_to(ROOT) / "configs"

# name -> (config, kind, target test set); kinds: sup (supervised), usl, uda. Each config's
# OUTPUT_DIR is logs/real/<name> (tests/test_cuhk03_study.py checks it).
RUNS: dict[str, tuple[str, str, str]] = {
    "supervised_cuhk03": ("configs/real/supervised_cuhk03.yaml", "sup", "cuhk03_detected"),
    "supervised_cuhk01": ("configs/real/supervised_cuhk01.yaml", "sup", "cuhk01"),
    "usl_cuhk03_random": ("configs/real/usl_cuhk03.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03": ("configs/real/usl_cuhk03.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_40ep": (f"{CONFIGS}/usl_cuhk03_cap_40ep.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pb": (f"{CONFIGS}/usl_cuhk03_cap_pb.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pairs": (f"{CONFIGS}/usl_cuhk03_cap_pairs.yaml", "usl", "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_ema": (f"{CONFIGS}/usl_cuhk03_cap_pairs_ema.yaml", "usl",
                                 "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_skip": (f"{CONFIGS}/usl_cuhk03_cap_pairs_skip.yaml", "usl",
                                  "cuhk03_detected"),
    "usl_cuhk03_cap_pairs_ca": (f"{CONFIGS}/usl_cuhk03_cap_pairs_ca.yaml", "usl",
                                "cuhk03_detected"),
    "usl_cuhk03_cap_pb_ca": (f"{CONFIGS}/usl_cuhk03_cap_pb_ca.yaml", "usl", "cuhk03_detected"),
    "uda_cuhk03_cuhk01_cap": ("configs/real/uda_cuhk03_cuhk01_cap.yaml", "uda", "cuhk01"),
    "usl_cuhk01": ("configs/real/usl_cuhk01.yaml", "usl", "cuhk01"),
    "uda_cuhk01_cuhk03": (f"{CONFIGS}/uda_cuhk01_cuhk03.yaml", "uda", "cuhk03_detected"),
}


# runs that are a config plus command-line overrides (name -> KEY VALUE list)
OVERRIDES: dict[str, list[str]] = {
    # plain SpCL before the released sampler: uniform random target batches
    "usl_cuhk03_random": ["DATALOADER.SAMPLER", "random",
                          "OUTPUT_DIR", "logs/real/usl_cuhk03_random"],
}

LOGS = ROOT / "logs" / "real"
SNAPSHOT = PROJECT / "results.json"


def output_dir(name: str, logs: Path = LOGS) -> Path:
    return logs / name


def command(name: str) -> str:
    return " ".join([f"python tools/train.py --config-file {RUNS[name][0]}",
                     *OVERRIDES.get(name, [])])


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


def collect(logs: Path = LOGS, snapshot: Path | None = None) -> dict[str, dict[str, Any]]:
    """Per finished run (in ``RUNS`` order): its record from ``logs`` or else from the saved
    entries of ``snapshot`` (a results.json); see :func:`reid.evaluation.runs.collect_runs`."""
    return collect_runs({n: (output_dir(n, logs), kind, target)
                         for n, (_, kind, target) in RUNS.items()}, snapshot)


def report(found: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# CUHK03 / CUHK01 CPU study: every run",
        "",
        "Written by `python projects/cuhk03_cpu_study/train_real.py` (do not edit by hand).",
        "The product's method comparison (same budget per column, no dataset-specific prior) is",
        "[docs/RESULTS.md](../../docs/RESULTS.md); this is the study's experiment log. ImageNet",
        "MobileNetV2",
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
    lines += ["", "What was tried where a target is missed: [NOTES.md](NOTES.md)."]
    if (PROJECT / "real_curves.png").is_file():
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
    for uda, src, tgt in (("uda_cuhk03_cuhk01_cap", "cuhk03", "cuhk01"),
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
    parser = driver_parser(__doc__.splitlines()[0], RUNS)
    parser.add_argument("--camera-bn", action="store_true",
                        help="also evaluate every finished run with TEST.CAMERA_BN flipped "
                             "(runs whose flipped evaluation exists are kept)")
    args = parser.parse_args(argv)
    if not args.report_only or args.camera_bn:
        require_paths(ROOT / "../shared/data/cuhk03_detected", ROOT / "../shared/weights")
    if not args.report_only:
        train_pending({n: (command(n).split(), output_dir(n)) for n in RUNS}, ROOT,
                      names=args.runs, max_minutes=args.max_minutes, tag="train_real")
    if args.camera_bn:
        for name in collect():
            flipped = "off" if camera_bn_setting(name) else "on"
            if not (output_dir(name) / f"camera_bn_{flipped}" / "eval.json").is_file():
                evaluate_camera_bn(name)
    found = collect(snapshot=SNAPSHOT)
    SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    plot(found, PROJECT / "real_curves.png")
    text = report(found)
    (PROJECT / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
