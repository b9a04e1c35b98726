"""VehicleID (Liu et al., CVPR 2016): ``image/`` plus ``train_test_split/`` list files.

List lines are ``name vid`` (``name`` with or without ``.jpg``). VehicleID has no camera
labels: every camid is 0. Test protocol: for each repeat the evaluator draws one random image
per vehicle as the gallery and queries with the rest. The dataset therefore carries the whole
test pool as both ``query`` and ``gallery`` (same order) and ``extra["protocol"] ==
"vehicleid"`` tells the evaluator to use :func:`reid.evaluation.evaluate_vehicleid` on the
query list (gallery == query, features are extracted once).
"""
from __future__ import annotations

from pathlib import Path

from reid.data.datasets.base import ReIDDataset, Sample
from reid.data.datasets.common import (
    find_dataset_dir,
    make_dataset,
    parse_int,
    read_list_file,
    require_files,
)
from reid.data.datasets.registry import DATASET_REGISTRY

TEST_SIZES = (800, 1600, 2400)


def _read(list_file: Path, image_dir: Path) -> list[Sample]:
    out = []
    for line, (name, vid_text) in read_list_file(list_file, "vehicleid", 2):
        vid = parse_int(vid_text, list_file, line, "vehicleid", "vehicle id")
        if not Path(name).suffix:
            name += ".jpg"
        out.append((str(image_dir / name), vid, 0))
    require_files((s[0] for s in out), "vehicleid", list_file)
    return out


@DATASET_REGISTRY.register("vehicleid")
def vehicleid(root: str, test_size: int = 800) -> ReIDDataset:
    """VehicleID under ``root/vehicleid`` (or ``root/vehicleid/VehicleID_V1.0``).

    Args:
        root: data root.
        test_size: 800, 1600 or 2400, the test list ``test_list_{test_size}.txt``.

    13,164 train vehicles (113,346 images); the test pool of the 800 list has 800 vehicles.
    """
    if int(test_size) not in TEST_SIZES:
        raise ValueError(f"vehicleid: test_size must be one of {TEST_SIZES}, got {test_size}")
    lists = ["train_test_split/train_list.txt", f"train_test_split/test_list_{int(test_size)}.txt"]
    expected = [
        "vehicleid/image/NNNNNNN.jpg",
        "vehicleid/train_test_split/train_list.txt          lines 'NNNNNNN vid'",
        "vehicleid/train_test_split/test_list_{800,1600,2400}.txt  lines 'NNNNNNN vid'",
    ]
    base = find_dataset_dir(
        root, "vehicleid", ["vehicleid", "vehicleid/VehicleID_V1.0"], ["image", *lists], expected
    )
    train = _read(base / lists[0], base / "image")
    test = _read(base / lists[1], base / "image")
    return make_dataset(
        "vehicleid", base, train, test, list(test),
        extra={"protocol": "vehicleid", "test_size": int(test_size)},
    )
