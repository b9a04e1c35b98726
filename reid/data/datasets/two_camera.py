"""Single-shot two-camera sets (VIPeR, PRID450S): ``cam_a/`` and ``cam_b/`` image folders.

Identities are read from the file names; identities seen by both cameras are split in half
(train / test) with :func:`reid.data.datasets.common.split_ids` and ``split_seed``. Train holds
both cameras of the train ids; test queries are the ``cam_a`` images and the gallery the
``cam_b`` images of the test ids. Camera ids: ``cam_a`` 0, ``cam_b`` 1.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import (
    find_dataset_dir,
    list_images,
    make_dataset,
    match_name,
    split_ids,
)

logger = logging.getLogger(__name__)


def parse_camera_folder(
    folder: Path, dataset: str, pattern: re.Pattern, expected: str,
    ignore: re.Pattern | None = None,
) -> list[tuple[str, int]]:
    """``(path, pid)`` of every image of ``folder`` whose name matches ``pattern`` (group 1 pid).

    Files matching ``ignore`` (e.g. PRID450S masks) are skipped; other unparsable image names
    raise :class:`DatasetLayoutError` naming the file.
    """
    out = []
    for path in list_images(folder):
        if ignore is not None and ignore.match(path.name):
            continue
        m = match_name(pattern, path, dataset, expected)
        out.append((str(path), int(m.group(1))))
    return out


def read_two_camera(
    name: str,
    root: str | Path,
    candidates: list[str],
    pattern: re.Pattern,
    expected_name: str,
    split_seed: int,
    ignore: re.Pattern | None = None,
) -> ReIDDataset:
    """Parse a ``cam_a/`` + ``cam_b/`` single-shot set and split it (see the module docstring)."""
    expected = [
        f"{candidates[0]}/cam_a/  images {expected_name}",
        f"{candidates[0]}/cam_b/  images {expected_name}",
    ]
    base = find_dataset_dir(root, name, candidates, ["cam_a", "cam_b"], expected)
    cam_a = parse_camera_folder(base / "cam_a", name, pattern, expected_name, ignore)
    cam_b = parse_camera_folder(base / "cam_b", name, pattern, expected_name, ignore)
    ids_a, ids_b = {p for _, p in cam_a}, {p for _, p in cam_b}
    both = ids_a & ids_b
    if len(both) < 2:
        raise DatasetLayoutError(
            f"{name}: fewer than 2 identities appear in both cam_a and cam_b ({len(ids_a)} in "
            f"cam_a, {len(ids_b)} in cam_b; dataset folder {base})"
        )
    if len(both) < len(ids_a | ids_b):
        logger.warning("%s: %d identities appear in one camera only and are not used",
                       name, len(ids_a | ids_b) - len(both))
    train_ids, test_ids = split_ids(both, split_seed)
    train_set, test_set = set(train_ids), set(test_ids)
    train = [(p, pid, 0) for p, pid in cam_a if pid in train_set]
    train += [(p, pid, 1) for p, pid in cam_b if pid in train_set]
    query = [(p, pid, 0) for p, pid in cam_a if pid in test_set]
    gallery = [(p, pid, 1) for p, pid in cam_b if pid in test_set]
    return make_dataset(name, base, train, query, gallery, extra={"split_seed": split_seed})

