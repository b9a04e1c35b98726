"""PRID2011 single-shot (Hirzer et al., SCIA 2011): ``single_shot/cam_a|cam_b/person_PPPP.png``.

``cam_a`` holds 385 identities and ``cam_b`` 749; identities 1-200 appear in both. The
identities seen by both cameras are split in half with ``split_seed``; train holds both cameras
of the train ids; test queries are the ``cam_a`` images of the test ids and the gallery holds the
``cam_b`` images of the test ids plus every ``cam_b``-only identity (201-749) as distractors, as
in the usual protocol. ``cam_a``-only identities are not used. Camera ids: cam_a 0, cam_b 1.
"""
from __future__ import annotations

import re

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import find_dataset_dir, make_dataset, split_ids
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.two_camera import parse_camera_folder

PRID_NAME = re.compile(r"^person_(\d+)\.", re.IGNORECASE)


@DATASET_REGISTRY.register("prid2011")
def prid2011(root: str, split_seed: int = 0) -> ReIDDataset:
    """PRID2011 single-shot under ``root/prid2011`` (or ``root/prid2011/prid_2011``).

    Counts with the full release: 100 train ids (200 images), 100 queries, 649 gallery images.
    """
    expected = [
        "prid2011/single_shot/cam_a/person_PPPP.png",
        "prid2011/single_shot/cam_b/person_PPPP.png",
    ]
    base = find_dataset_dir(
        root, "prid2011", ["prid2011", "prid2011/prid_2011"],
        ["single_shot/cam_a", "single_shot/cam_b"], expected,
    )
    shot = base / "single_shot"
    cam_a = parse_camera_folder(shot / "cam_a", "prid2011", PRID_NAME, "person_PPPP.png")
    cam_b = parse_camera_folder(shot / "cam_b", "prid2011", PRID_NAME, "person_PPPP.png")
    both = {p for _, p in cam_a} & {p for _, p in cam_b}
    if len(both) < 2:
        raise DatasetLayoutError(
            f"prid2011: fewer than 2 identities appear in both cam_a and cam_b ({shot})"
        )
    train_ids, test_ids = split_ids(both, split_seed)
    train_set, test_set = set(train_ids), set(test_ids)
    train = [(p, pid, 0) for p, pid in cam_a if pid in train_set]
    train += [(p, pid, 1) for p, pid in cam_b if pid in train_set]
    query = [(p, pid, 0) for p, pid in cam_a if pid in test_set]
    gallery = [(p, pid, 1) for p, pid in cam_b if pid in test_set or pid not in both]
    return make_dataset(
        "prid2011", base, train, query, gallery, extra={"split_seed": split_seed}
    )
