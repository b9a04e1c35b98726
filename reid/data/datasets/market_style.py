"""The Market-1501 folder layout, shared by Market-1501, DukeMTMC-reID, CUHK03-NP and PersonX.

Layout: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` holding images named
``PPPP_cC...`` (identity ``PPPP``, camera ``C`` counted from 1). Identity ``-1`` marks junk
images (dropped everywhere); identity ``0`` marks distractors (kept in the gallery only).
"""
from __future__ import annotations

import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import find_dataset_dir, list_images, make_dataset, match_name

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)", re.IGNORECASE)
MARKET_SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def market_layout_lines(folder: str) -> list[str]:
    """The expected-layout lines of a Market-style dataset in ``folder``."""
    return [
        f"{folder}/bounding_box_train/  training images PPPP_cC*.jpg",
        f"{folder}/query/               query images PPPP_cC*.jpg",
        f"{folder}/bounding_box_test/   gallery images PPPP_cC*.jpg (PPPP 0000: distractor)",
    ]


def parse_market_folder(
    folder: Path, dataset: str, *, keep_distractors: bool
) -> list[tuple[str, int, int]]:
    """``(path, pid, camera_number)`` of every image in ``folder``, junk (pid -1) dropped.

    Args:
        folder: one split folder.
        dataset: registry name, for error messages.
        keep_distractors: keep pid 0 images (gallery) or drop them (train / query).

    Raises:
        DatasetLayoutError: an image name does not match ``PPPP_cC*`` or has a pid below -1.
    """
    out = []
    for path in list_images(folder):
        m = match_name(MARKET_NAME, path, dataset, "PPPP_cC*.jpg, e.g. 0002_c1s1_000451_03.jpg")
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid < -1:
            raise DatasetLayoutError(f"{dataset}: invalid identity {pid} in file name {path}")
        if pid == -1 or (pid == 0 and not keep_distractors):
            continue
        out.append((str(path), pid, cam))
    return out


def read_market_style(
    name: str,
    root: str | Path,
    candidates: list[str],
    *,
    contiguous_cams: bool = False,
) -> ReIDDataset:
    """Parse a Market-style dataset found in the first matching ``root/candidate``.

    Train and query drop pid 0 (distractors) and pid -1 (junk); the gallery keeps pid 0.
    Camera ids are ``C - 1`` (cameras counted from 1, as in Market-1501 and DukeMTMC-reID), or,
    with ``contiguous_cams``, the rank of ``C`` among all cameras of the dataset (for sets whose
    camera numbers have gaps, e.g. PersonX).

    Raises:
        DatasetLayoutError: missing split folder, unparsable image name, camera number 0 without
            ``contiguous_cams``, or an empty split.
    """
    expected = market_layout_lines(candidates[0])
    base = find_dataset_dir(root, name, candidates, MARKET_SPLITS, expected)
    raw = {
        split: parse_market_folder(
            base / split, name, keep_distractors=split == "bounding_box_test"
        )
        for split in MARKET_SPLITS
    }
    if contiguous_cams:
        cams = sorted({s[2] for items in raw.values() for s in items})
        cam_map = {c: i for i, c in enumerate(cams)}
    else:
        cam_map = None
        for items in raw.values():
            for path, _, cam in items:
                if cam < 1:
                    raise DatasetLayoutError(
                        f"{name}: camera numbers start at 1, got c{cam} in {path}"
                    )

    def convert(items: list[tuple[str, int, int]]) -> list[Sample]:
        return [(p, pid, cam_map[c] if cam_map else c - 1) for p, pid, c in items]

    return make_dataset(
        name, base, convert(raw["bounding_box_train"]), convert(raw["query"]),
        convert(raw["bounding_box_test"]),
    )
