"""MARS (Zheng et al., ECCV 2016): video tracklets listed by ``info/*.txt`` and ``info/*.mat``.

Layout (also what the synthetic video generator writes, with ``scipy.io.savemat``)::

    mars/bbox_train/PPPP/PPPPCcTttttFfff.jpg     frames, folder = first 4 characters
    mars/bbox_test/PPPP/...                      (junk identity folder ``00-1``)
    mars/info/train_name.txt, test_name.txt      one frame name per line
    mars/info/tracks_train_info.mat              (N, 4) [start, end, pid, camid], 1-based,
    mars/info/tracks_test_info.mat                 start/end inclusive indices into the names
    mars/info/query_IDX.mat                      1-based indices of the query test tracks

The gallery is every test tracklet that is not a query. Identity -1 (junk) is dropped
everywhere; identity 0 (distractors) is kept in the gallery and dropped from train and query.
Camera ids become 0-based.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import find_dataset_dir, make_dataset
from reid.data.datasets.registry import DATASET_REGISTRY

MARS_FRAME = re.compile(r"^(\d{4}|00-1)C(\d+)T(\d+)F(\d+)")
MARS_FILES = (
    "bbox_train", "bbox_test", "info/train_name.txt", "info/test_name.txt",
    "info/tracks_train_info.mat", "info/tracks_test_info.mat", "info/query_IDX.mat",
)
MARS_EXPECTED = [
    "mars/bbox_train/PPPP/PPPPCcTttttFfff.jpg  training frames",
    "mars/bbox_test/PPPP/PPPPCcTttttFfff.jpg   test frames",
    "mars/info/train_name.txt                  training frame names, one per line",
    "mars/info/test_name.txt                   test frame names, one per line",
    "mars/info/tracks_train_info.mat           track_train_info (N, 4) [start end pid camid]",
    "mars/info/tracks_test_info.mat            track_test_info (M, 4) [start end pid camid]",
    "mars/info/query_IDX.mat                   query_IDX (Q,) 1-based rows of the test tracks",
]


def load_mat_array(path: Path, key: str, dataset: str) -> np.ndarray:
    """The array ``key`` of a ``.mat`` file (or its only array when ``key`` is absent).

    Raises:
        DatasetLayoutError: unreadable file, or ``key`` absent and not exactly one array stored.
    """
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DatasetLayoutError(f"{dataset}: cannot read {path}: {exc}") from exc
    if key in data:
        return np.asarray(data[key])
    arrays = [k for k in data if not k.startswith("__")]
    if len(arrays) != 1:
        raise DatasetLayoutError(f"{dataset}: {path} has no array '{key}' (arrays: {arrays})")
    return np.asarray(data[arrays[0]])


def _names(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _tracks(
    info: np.ndarray, names: list[str], frame_dir: Path, info_path: Path
) -> list[tuple[Sample, int]]:
    """``((frames, pid, camid), row)`` for every row of a tracks info array (camid 0-based)."""
    if info.ndim != 2 or info.shape[1] != 4:
        raise DatasetLayoutError(f"mars: {info_path} must hold an (N, 4) array, got {info.shape}")
    out = []
    for row, (start, end, pid, cam) in enumerate(info.astype(np.int64).tolist()):
        if not 1 <= start <= end <= len(names):
            raise DatasetLayoutError(
                f"mars: {info_path} row {row + 1}: frames {start}..{end} outside the "
                f"{len(names)} frame names"
            )
        frames = names[start - 1:end]
        m = MARS_FRAME.match(frames[0])
        if m is None:
            raise DatasetLayoutError(
                f"mars: cannot parse frame name {frames[0]} (expected PPPPCcTttttFfff.jpg)"
            )
        name_pid = -1 if m.group(1) == "00-1" else int(m.group(1))
        if name_pid != pid or int(m.group(2)) != cam or cam < 1:
            raise DatasetLayoutError(
                f"mars: {info_path} row {row + 1} says pid {pid} camera {cam} but its first "
                f"frame is {frames[0]}"
            )
        paths = tuple(str(frame_dir / f[:4] / f) for f in frames)
        if not Path(paths[0]).is_file():
            raise DatasetLayoutError(f"mars: frame listed in {info_path} not found: {paths[0]}")
        out.append(((paths, int(pid), int(cam) - 1), row))
    return out


@DATASET_REGISTRY.register("mars")
def mars(root: str) -> ReIDDataset:
    """MARS under ``root/mars`` (see the module docstring for the layout and rules).

    Full release: 625 train ids (8,298 tracklets), 1,980 queries, 9,330 gallery tracklets
    (junk dropped), cameras 0..5.
    """
    base = find_dataset_dir(root, "mars", ["mars"], MARS_FILES, MARS_EXPECTED)
    info = base / "info"
    train_info = load_mat_array(info / "tracks_train_info.mat", "track_train_info", "mars")
    test_info = load_mat_array(info / "tracks_test_info.mat", "track_test_info", "mars")
    query_idx = load_mat_array(info / "query_IDX.mat", "query_IDX", "mars").ravel()
    train_all = _tracks(train_info, _names(info / "train_name.txt"), base / "bbox_train",
                        info / "tracks_train_info.mat")
    test_all = _tracks(test_info, _names(info / "test_name.txt"), base / "bbox_test",
                       info / "tracks_test_info.mat")
    qset = {int(i) - 1 for i in query_idx.tolist()}
    bad = [i + 1 for i in qset if not 0 <= i < len(test_all)]
    if bad:
        raise DatasetLayoutError(
            f"mars: {info / 'query_IDX.mat'} has indices {bad[:5]} outside 1..{len(test_all)}"
        )
    train = [t for t, _ in train_all if t[1] > 0]
    query = [t for t, row in test_all if row in qset and t[1] > 0]
    gallery = [t for t, row in test_all if row not in qset and t[1] >= 0]
    return make_dataset("mars", base, train, query, gallery, is_video=True)
