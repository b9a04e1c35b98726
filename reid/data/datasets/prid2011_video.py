"""PRID2011 multi-shot (Hirzer et al., SCIA 2011): ``multi_shot/cam_a|cam_b/person_PPPP/*.png``.

As usual, only identities whose tracklets in both cameras have at least ``min_seq_len`` (27)
frames are used (178 in the release); they are split in half with ``split_seed`` (89 / 89).
Train holds both tracklets of the train ids; test queries are the ``cam_a`` tracklets and the
gallery the ``cam_b`` tracklets of the test ids. Camera ids: cam_a 0, cam_b 1.
"""
from __future__ import annotations

import re

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import find_dataset_dir, make_dataset, split_ids
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.video_folders import subfolders, tracklet_frames

PERSON_DIR = re.compile(r"^person_(\d+)$")


def _camera(folder, cam: int) -> dict[int, tuple]:
    out = {}
    for d in subfolders(folder):
        m = PERSON_DIR.match(d.name)
        if m is None:
            raise DatasetLayoutError(
                f"prid2011_video: unexpected folder {d} (expected person_PPPP)"
            )
        out[int(m.group(1))] = (tracklet_frames(d, "prid2011_video"), int(m.group(1)), cam)
    return out


@DATASET_REGISTRY.register("prid2011_video")
def prid2011_video(root: str, split_seed: int = 0, min_seq_len: int = 27) -> ReIDDataset:
    """PRID2011 multi-shot under ``root/prid2011/prid_2011`` (or ``root/prid2011``)."""
    base = find_dataset_dir(
        root, "prid2011_video", ["prid2011/prid_2011", "prid2011"],
        ["multi_shot/cam_a", "multi_shot/cam_b"],
        ["prid2011/prid_2011/multi_shot/cam_a/person_PPPP/FFFF.png",
         "prid2011/prid_2011/multi_shot/cam_b/person_PPPP/FFFF.png"],
    )
    cam_a = _camera(base / "multi_shot" / "cam_a", 0)
    cam_b = _camera(base / "multi_shot" / "cam_b", 1)
    keep = {p for p in set(cam_a) & set(cam_b)
            if min(len(cam_a[p][0]), len(cam_b[p][0])) >= min_seq_len}
    if len(keep) < 2:
        raise DatasetLayoutError(
            f"prid2011_video: fewer than 2 persons have tracklets of >= {min_seq_len} frames in "
            f"both cameras under {base / 'multi_shot'}"
        )
    train_ids, test_ids = split_ids(keep, split_seed)
    train = [cam_a[p] for p in train_ids] + [cam_b[p] for p in train_ids]
    query = [cam_a[p] for p in test_ids]
    gallery = [cam_b[p] for p in test_ids]
    return make_dataset(
        "prid2011_video", base, train, query, gallery, is_video=True,
        extra={"split_seed": split_seed, "min_seq_len": min_seq_len},
    )
