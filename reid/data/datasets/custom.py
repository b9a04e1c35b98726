"""A user dataset described by three list files: ``train.txt``, ``query.txt``, ``gallery.txt``.

Each non-empty line is ``relative/path.jpg pid camid`` (whitespace separated; ``#`` starts a
comment line); paths are relative to the dataset folder and may not contain spaces. ``pid`` and
``camid`` are integers, camids 0-based. Lines with ``pid == -1`` are junk and dropped
everywhere; other negative pids or camids raise. Train pids are relabelled to ``0..n-1``;
query and gallery keep the given pids (pid 0 is an ordinary identity here). Every listed file
must exist. See ``datasets/README.md``.
"""
from __future__ import annotations

from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import (
    find_dataset_dir,
    make_dataset,
    parse_int,
    read_list_file,
    require_files,
)
from reid.data.datasets.registry import DATASET_REGISTRY

CUSTOM_LISTS = ("train.txt", "query.txt", "gallery.txt")


def _read(list_file: Path, base: Path, name: str) -> list[Sample]:
    out = []
    for line, (rel, pid_text, cam_text) in read_list_file(list_file, name, 3):
        pid = parse_int(pid_text, list_file, line, name, "pid")
        cam = parse_int(cam_text, list_file, line, name, "camid")
        if pid < -1 or cam < 0:
            raise DatasetLayoutError(
                f"{name}: {list_file}:{line}: pid must be >= -1 and camid >= 0, got {pid} {cam}"
            )
        if Path(rel).is_absolute():
            raise DatasetLayoutError(f"{name}: {list_file}:{line}: path must be relative: {rel}")
        if pid != -1:
            out.append((str(base / rel), pid, cam))
    require_files((s[0] for s in out), name, list_file)
    return out


@DATASET_REGISTRY.register("custom")
def custom(root: str, folder: str = "custom", name: str | None = None) -> ReIDDataset:
    """A list-file dataset in ``root/folder``.

    Args:
        root: data root.
        folder: sub-folder of ``root`` holding ``train.txt``, ``query.txt``, ``gallery.txt``
            and the images. :func:`reid.data.datasets.build_dataset` maps the name
            ``"custom:FOLDER"`` to ``folder=FOLDER``.
        name: dataset name reported in logs and results (default ``"custom:FOLDER"``, or
            ``"custom"`` for the default folder).
    """
    name = name or ("custom" if folder == "custom" else f"custom:{folder}")
    expected = [f"{folder}/{f}  lines 'relative/path.jpg pid camid'" for f in CUSTOM_LISTS]
    base = find_dataset_dir(root, name, [folder], CUSTOM_LISTS, expected)
    splits = [_read(base / f, base, name) for f in CUSTOM_LISTS]
    return make_dataset(name, base, *splits)
