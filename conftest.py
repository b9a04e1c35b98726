"""Test helpers shared by ``tests/`` and ``projects/*/`` (pytest reads this file for both); the
rest of the shared test data and helpers are in ``tests/conftest.py``."""
from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def load_script() -> Callable[[Path], ModuleType]:
    """``load(path)``: import a script outside any package (``benchmarks/*.py``, a project's
    driver) by its path."""
    def load(path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def write_run() -> Callable[..., Path]:
    """``write(logs, name, metrics, labels, seconds, segments=None)``: the files a finished
    ``tools/train.py`` run leaves for the report scripts, in ``logs/name``: ``metrics.jsonl`` and
    ``labels.jsonl`` (one JSON line per dict) and ``wall_time.json`` (with ``segments`` when
    given, as :func:`reid.evaluation.runs.train_in_segments` writes it)."""
    def write(logs: Path, name: str, metrics: list[dict], labels: list[dict],
              seconds: float, segments: int | None = None) -> Path:
        out = logs / name
        out.mkdir(parents=True)
        (out / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
        (out / "labels.jsonl").write_text("".join(json.dumps(m) + "\n" for m in labels))
        wall = {"seconds": seconds} | ({} if segments is None else {"segments": segments})
        (out / "wall_time.json").write_text(json.dumps(wall))
        return out

    return write
