"""Records of finished training runs, for the scripts that tabulate them.

A run of ``tools/train.py`` leaves ``metrics.jsonl`` (one line per evaluation, the first one the
initial model), ``labels.jsonl`` (one line of pseudo-label statistics per epoch) and, once the
driver saw it finish, ``wall_time.json`` (``{"seconds": ...}``, summed over its segments). This
module reads them into plain dicts, keeps them in a JSON snapshot (``logs/`` is not
committed, so a report can be rebuilt on another checkout), and trains a config in resumable
segments of bounded length. ``benchmarks/method_table.py`` and the projects' drivers use it.

Example::

    record = run_record(Path("logs/real/usl_cuhk03"), kind="usl", target="cuhk03_detected")
    final = target_metrics(record["metrics"][-1], "cuhk03_detected")["mAP"]
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["collect_runs", "driver_parser", "pct", "read_jsonl", "require_paths", "run_record",
           "target_metrics", "train_in_segments", "train_pending"]

METRIC_KEYS = ("mAP", "mINP", "rank1", "rank5", "rank10")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` ([] when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("-" for None)."""
    return "-" if x is None else f"{100 * x:.1f}"


def target_metrics(line: Mapping[str, Any], dataset: str) -> dict[str, float | None]:
    """The metrics (fractions) of ``dataset`` in one metrics.jsonl line, None where the line
    lacks one. The first test set's metrics are also the line's top-level keys; older logs hold
    only mAP and rank-1 per dataset."""
    if f"{dataset}/mAP" not in line:
        return {k: line.get(k) for k in METRIC_KEYS}
    first = line[f"{dataset}/mAP"] == line.get("mAP")
    return {k: line.get(f"{dataset}/{k}", line.get(k) if first else None) for k in METRIC_KEYS}


def run_record(out: Path, kind: str, target: str) -> dict[str, Any] | None:
    """The record of the finished run in ``out`` (None when it has no evaluation or no
    ``wall_time.json``, i.e. it did not finish): ``kind`` and ``target`` as given, ``metrics``
    and ``labels`` (the JSON lines), ``minutes`` (wall time), ``segments`` (how many
    resumable segments it ran in) and ``camera_bn_flipped``
    (``{"on"|"off": eval.json}`` of ``out/camera_bn_<setting>/``, the checkpoint evaluated with
    the other ``TEST.CAMERA_BN`` setting, where present)."""
    metrics, wall = read_jsonl(out / "metrics.jsonl"), out / "wall_time.json"
    if not metrics or not wall.is_file():
        return None
    wall_time = json.loads(wall.read_text(encoding="utf-8"))
    flipped = {}
    for setting in ("on", "off"):
        eval_json = out / f"camera_bn_{setting}" / "eval.json"
        if eval_json.is_file():
            flipped[setting] = json.loads(eval_json.read_text(encoding="utf-8"))
    return {
        "kind": kind, "target": target, "metrics": metrics, "camera_bn_flipped": flipped,
        "labels": read_jsonl(out / "labels.jsonl"),
        "minutes": wall_time["seconds"] / 60, "segments": wall_time.get("segments", 1),
    }


def collect_runs(runs: Mapping[str, tuple[Path, str, str]], snapshot: Path | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Per finished run, in the order of ``runs`` (``name -> (output dir, kind, target)``): its
    record from the output dir, or else its saved entry in ``snapshot`` (a JSON file of earlier
    records, e.g. from another machine). Runs in neither are left out."""
    saved = (json.loads(snapshot.read_text(encoding="utf-8"))
             if snapshot is not None and snapshot.is_file() else {})
    found: dict[str, dict[str, Any]] = {}
    for name, (out, kind, target) in runs.items():
        record = run_record(out, kind, target)
        if record is not None:
            found[name] = record
        elif name in saved:
            found[name] = saved[name]
    return found


# exit statuses of a trainer stopped by SIGINT (its handler exits 130; killed by it: -2)
_SIGINT_EXITS = (130, -signal.SIGINT)


def _append_segment(path: Path, segments: list[float], seconds: float) -> None:
    segments.append(seconds)
    path.write_text(json.dumps(segments), encoding="utf-8")


def train_in_segments(command: Sequence[str], out: Path, cwd: Path,
                      max_minutes: float | None = None) -> bool:
    """Run one training ``command`` (a ``tools/train.py`` argument list) for at most
    ``max_minutes``, resuming it from ``out/last.pth`` when an earlier segment left one.

    A segment that reaches the limit gets SIGINT (the trainer finishes a checkpoint write in
    progress and exits; the epoch under way is lost and redone by the next segment); a trainer
    stopped by a SIGINT from elsewhere (Ctrl-C, ``kill -INT``) counts as a stopped segment too. Each
    segment's wall time is appended to ``out/segments.json``; when the training finishes,
    ``out/wall_time.json`` gets their sum. Its console goes to ``out/stdout.txt``.

    Returns:
        True when the run finished, False when this segment stopped at the limit or by a
        SIGINT.

    Raises:
        RuntimeError: the training failed (neither finished nor stopped by a SIGINT).
    """
    out.mkdir(parents=True, exist_ok=True)
    segments_file = out / "segments.json"
    segments = (json.loads(segments_file.read_text(encoding="utf-8"))
                if segments_file.is_file() else [])
    resume = (out / "last.pth").is_file() and bool(segments)
    args = [*command, "--resume"] if resume else list(command)
    start = time.perf_counter()
    with open(out / "stdout.txt", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=None if max_minutes is None else 60 * max_minutes)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the trainer too: let it finish its write
            proc.wait()
            _append_segment(segments_file, segments, time.perf_counter() - start)
            raise
    _append_segment(segments_file, segments, time.perf_counter() - start)
    if proc.returncode in _SIGINT_EXITS:  # stopped at the limit or interrupted by hand
        return False
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {proc.returncode}); see "
                           f"{out / 'stdout.txt'}")
    (out / "wall_time.json").write_text(json.dumps({"seconds": sum(segments),
                                                    "segments": len(segments)}),
                                        encoding="utf-8")
    return True


def require_paths(*paths: Path) -> None:
    """Stop with a message naming the first of ``paths`` that does not exist (the local data
    and weights a real-data driver reads; see the README of ``../shared``)."""
    for path in paths:
        if not path.exists():
            raise SystemExit(f"{path.resolve()} is missing: see the README of ../shared")


def train_pending(runs: Mapping[str, tuple[Sequence[str], Path]], cwd: Path, *,
                  names: Sequence[str] | None = None, max_minutes: float | None = None,
                  tag: str = "runs") -> bool:
    """Train ``names`` (default: every run of ``runs`` whose output dir has no
    ``wall_time.json``) one after another with :func:`train_in_segments`, stopping at the first
    run that reaches ``max_minutes`` (the same call again resumes it).

    Args:
        runs: ``name -> (tools/train.py argument list, output dir)``.
        cwd: where the commands run (the repository root).
        tag: the prefix of the progress lines printed.

    Returns:
        True when every run it took on has finished.
    """
    todo = list(names) if names is not None else [
        n for n, (_, out) in runs.items() if not (out / "wall_time.json").is_file()]
    for name in todo:
        command, out = runs[name]
        print(f"[{tag}] {name}: {' '.join(command)}", flush=True)
        if not train_in_segments(command, out, cwd, max_minutes):
            print(f"[{tag}] {name}: stopped after {max_minutes} min; run the same command "
                  "again to resume it", flush=True)
            return False
        print(f"[{tag}] {name}: finished", flush=True)
    return True


def driver_parser(description: str, names: Sequence[str]) -> argparse.ArgumentParser:
    """The command line of a real-data driver around :func:`train_pending`: ``--runs`` (some of
    ``names``; default every unfinished run), ``--max-minutes`` and ``--report-only``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", nargs="*", choices=list(names), default=None,
                        help="runs to train; default: every run without a finished log")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop each run after this many minutes; run again to resume it")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report")
    return parser
