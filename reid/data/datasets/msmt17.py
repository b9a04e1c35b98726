"""MSMT17 (Wei et al., CVPR 2018): images listed by ``list_{train,val,query,gallery}.txt``."""
from __future__ import annotations

import re
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

MSMT_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_")
LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
EXPECTED = [
    "msmt17/train/PPPP/PPPP_III_CC_*.jpg  (mask_train_v2/ for MSMT17_V2)",
    "msmt17/test/PPPP/PPPP_III_CC_*.jpg   (mask_test_v2/ for MSMT17_V2)",
    "msmt17/list_train.txt    lines 'PPPP/name.jpg pid', paths relative to train/",
    "msmt17/list_val.txt      same, merged into training",
    "msmt17/list_query.txt    lines 'PPPP/name.jpg pid', paths relative to test/",
    "msmt17/list_gallery.txt  same",
]


def _read(list_file: Path, image_dir: Path) -> list[Sample]:
    out = []
    for line, (rel, pid_text) in read_list_file(list_file, "msmt17", 2):
        pid = parse_int(pid_text, list_file, line, "msmt17", "pid")
        m = MSMT_NAME.match(Path(rel).name)
        if m is None:
            raise DatasetLayoutError(
                f"msmt17: {list_file}:{line}: cannot parse the camera from {rel} "
                "(expected PPPP_III_CC_*.jpg)"
            )
        cam = int(m.group(3))
        if cam < 1:
            raise DatasetLayoutError(
                f"msmt17: {list_file}:{line}: camera numbers start at 1: {rel}"
            )
        out.append((str(image_dir / rel), pid, cam - 1))
    require_files((s[0] for s in out), "msmt17", list_file)
    return out


@DATASET_REGISTRY.register("msmt17")
def msmt17(root: str) -> ReIDDataset:
    """MSMT17 under ``root/msmt17`` (or ``root/msmt17/MSMT17_V1`` / ``MSMT17_V2``).

    Training uses ``list_train.txt`` + ``list_val.txt`` (1,041 ids, 32,621 images); the test
    split is ``list_query.txt`` (11,659) and ``list_gallery.txt`` (82,161); 15 cameras (0..14),
    read from the third field of the file name.
    """
    candidates = ["msmt17", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2"]
    base = find_dataset_dir(root, "msmt17", candidates, LISTS, EXPECTED)
    train_dir = base / "train" if (base / "train").is_dir() else base / "mask_train_v2"
    test_dir = base / "test" if (base / "test").is_dir() else base / "mask_test_v2"
    for d in (train_dir, test_dir):
        if not d.is_dir():
            raise DatasetLayoutError(
                f"msmt17: image folder not found: {d}\nexpected layout:\n  " + "\n  ".join(EXPECTED)
            )
    train = _read(base / "list_train.txt", train_dir) + _read(base / "list_val.txt", train_dir)
    query = _read(base / "list_query.txt", test_dir)
    gallery = _read(base / "list_gallery.txt", test_dir)
    return make_dataset("msmt17", base, train, query, gallery)
