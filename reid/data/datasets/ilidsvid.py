"""iLIDS-VID (Wang et al., ECCV 2014): ``i-LIDS-VID/sequences/cam1|cam2/personPPP/*.png``.

300 identities, one tracklet per camera. Identities seen by both cameras are split in half
with ``split_seed`` (150 / 150); train holds both tracklets of the train ids; test queries are
the ``cam1`` tracklets and the gallery the ``cam2`` tracklets of the test ids. Camera ids: cam1
0, cam2 1.
"""
from __future__ import annotations

import re

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import find_dataset_dir, make_dataset, split_ids
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.video_folders import subfolders, tracklet_frames

PERSON_DIR = re.compile(r"^person(\d+)$")


def _camera(folder, cam: int) -> dict[int, tuple]:
    out = {}
    for d in subfolders(folder):
        m = PERSON_DIR.match(d.name)
        if m is None:
            raise DatasetLayoutError(f"ilidsvid: unexpected folder {d} (expected personPPP)")
        out[int(m.group(1))] = (tracklet_frames(d, "ilidsvid"), int(m.group(1)), cam)
    return out


@DATASET_REGISTRY.register("ilidsvid")
def ilidsvid(root: str, split_seed: int = 0) -> ReIDDataset:
    """iLIDS-VID under ``root/ilidsvid/i-LIDS-VID/sequences`` (or ``root/ilidsvid/sequences``)."""
    base = find_dataset_dir(
        root, "ilidsvid", ["ilidsvid/i-LIDS-VID/sequences", "ilidsvid/sequences"],
        ["cam1", "cam2"],
        ["ilidsvid/i-LIDS-VID/sequences/cam1/personPPP/*.png",
         "ilidsvid/i-LIDS-VID/sequences/cam2/personPPP/*.png"],
    )
    cam1, cam2 = _camera(base / "cam1", 0), _camera(base / "cam2", 1)
    both = set(cam1) & set(cam2)
    if len(both) < 2:
        raise DatasetLayoutError(f"ilidsvid: fewer than 2 persons have both cameras in {base}")
    train_ids, test_ids = split_ids(both, split_seed)
    train = [cam1[p] for p in train_ids] + [cam2[p] for p in train_ids]
    query = [cam1[p] for p in test_ids]
    gallery = [cam2[p] for p in test_ids]
    return make_dataset(
        "ilidsvid", base, train, query, gallery, is_video=True, extra={"split_seed": split_seed}
    )
