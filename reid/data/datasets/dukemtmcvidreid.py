"""DukeMTMC-VideoReID (Wu et al., CVPR 2018): ``{train,query,gallery}/PPPP/TTTT/*.jpg``.

Frame names ``PPPP_CC_...jpg`` (e.g. ``0001_C6_F0001_X30823.jpg``): the camera is read from the
first frame of each tracklet and must agree with the identity folder. 702 train ids (2,196
tracklets), 702 query tracklets, 2,636 gallery tracklets, cameras 0..7.
"""
from __future__ import annotations

import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import find_dataset_dir, make_dataset
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.video_folders import subfolders, tracklet_frames

DUKEV_FRAME = re.compile(r"^(\d+)_C(\d+)", re.IGNORECASE)


def _split(folder: Path) -> list[Sample]:
    out = []
    for pid_dir in subfolders(folder):
        if not pid_dir.name.isdigit():
            raise DatasetLayoutError(
                f"dukemtmcvidreid: unexpected folder {pid_dir} (expected an identity PPPP)"
            )
        pid = int(pid_dir.name)
        for track in subfolders(pid_dir):
            frames = tracklet_frames(track, "dukemtmcvidreid")
            m = DUKEV_FRAME.match(Path(frames[0]).name)
            if m is None or int(m.group(1)) != pid or int(m.group(2)) < 1:
                raise DatasetLayoutError(
                    f"dukemtmcvidreid: cannot read identity {pid} and a camera (from 1) from "
                    f"frame name {frames[0]} (expected PPPP_CC_*.jpg)"
                )
            out.append((frames, pid, int(m.group(2)) - 1))
    return out


@DATASET_REGISTRY.register("dukemtmcvidreid")
def dukemtmcvidreid(root: str) -> ReIDDataset:
    """DukeMTMC-VideoReID under ``root/dukemtmcvidreid`` (or ``.../DukeMTMC-VideoReID``)."""
    base = find_dataset_dir(
        root, "dukemtmcvidreid", ["dukemtmcvidreid", "dukemtmcvidreid/DukeMTMC-VideoReID"],
        ["train", "query", "gallery"],
        [f"dukemtmcvidreid/{s}/PPPP/TTTT/PPPP_CC_*.jpg" for s in ("train", "query", "gallery")],
    )
    return make_dataset(
        "dukemtmcvidreid", base, _split(base / "train"), _split(base / "query"),
        _split(base / "gallery"), is_video=True,
    )
