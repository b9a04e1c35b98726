"""CUHK03 detected crops, the flat shared copy: ``root/cuhk03_detected/PPPP_KK.jpg``.

1,467 identities (0000-1466) from 5 camera pairs, 14,097 images; ``KK`` 00-04 come from the
first camera of the identity's pair, 05-09 from the second. Pairs by identity: 0000-0842 pair 1,
0843-1282 pair 2, 1283-1359 pair 3, 1360-1417 pair 4, 1418-1466 pair 5; camid (0-based)
``= 2 * (pair - 1) + (0 if KK < 5 else 1)``. Split (``/work/shared/data/README.md``): even
identities train (734), odd identities test (733); with an integer ``split_seed`` a random half
(733 train) instead. Test queries: for every test identity and camera, its image with the
smallest ``KK``; the gallery holds the other test images.
"""
from __future__ import annotations

import bisect
import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import (
    find_dataset_dir,
    list_images,
    make_dataset,
    match_name,
    query_first_per_camera,
    split_ids,
)
from reid.data.datasets.registry import DATASET_REGISTRY

CUHK03_NAME = re.compile(r"^(\d{4})_(\d{2})\.jpg$", re.IGNORECASE)
PAIR_STARTS = (0, 843, 1283, 1360, 1418)  # first identity of camera pairs 1..5
NUM_IDS = 1467


def cuhk03_camid(pid: int, index: int) -> int:
    """0-based camera id (0-9) of image ``index`` (0-9) of identity ``pid`` (0-1466)."""
    if not 0 <= pid < NUM_IDS or not 0 <= index <= 9:
        raise ValueError(f"CUHK03 identity must be in 0-{NUM_IDS - 1} and index in 0-9, "
                         f"got {pid}, {index}")
    pair = bisect.bisect_right(PAIR_STARTS, pid)  # 1..5
    return 2 * (pair - 1) + (0 if index < 5 else 1)


@DATASET_REGISTRY.register("cuhk03_detected")
def cuhk03_detected(root: str, split_seed: int | None = None) -> ReIDDataset:
    """CUHK03 detected crops from ``root/cuhk03_detected`` (see the module docstring).

    Args:
        root: data root.
        split_seed: None for the even/odd identity rule, an int for a seeded random half split.
    """
    base = find_dataset_dir(
        root, "cuhk03_detected", ["cuhk03_detected"], [],
        ["cuhk03_detected/PPPP_KK.jpg  (flat; PPPP 0000-1466, KK 00-09)"],
    )
    items = []
    for path in list_images(base):
        m = match_name(CUHK03_NAME, path, "cuhk03_detected", "PPPP_KK.jpg, e.g. 0000_05.jpg")
        pid, k = int(m.group(1)), int(m.group(2))
        if pid >= NUM_IDS or k > 9:
            raise DatasetLayoutError(
                f"cuhk03_detected: identity {pid} outside 0000-{NUM_IDS - 1} or image index {k} "
                f"outside 00-09 in {path}"
            )
        items.append((str(path), pid, cuhk03_camid(pid, k), k))
    ids = {s[1] for s in items}
    if split_seed is None:
        train_set = {p for p in ids if p % 2 == 0}
    else:
        train_set = set(split_ids(ids, split_seed)[0]) if len(ids) >= 2 else set()
    train = [s[:3] for s in items if s[1] in train_set]
    query, gallery = query_first_per_camera([s for s in items if s[1] not in train_set])
    return make_dataset(
        "cuhk03_detected", Path(base), train, query, gallery,
        extra={"split": "parity" if split_seed is None else f"seed {split_seed}"},
    )
