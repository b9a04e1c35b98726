"""VeRi-776 (Liu et al., ICME 2016 / ECCV 2016): ``image_{train,query,test}/`` vehicle crops.

File names ``VVVV_cCCC_FFFFFFFF_0.jpg`` (vehicle ``VVVV``, camera ``CCC`` from 1). When the
release's ``name_train.txt`` / ``name_query.txt`` / ``name_test.txt`` are present, they define
the split (one file name per line); otherwise every image of the folder is used.
"""
from __future__ import annotations

import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import (
    find_dataset_dir,
    list_images,
    make_dataset,
    match_name,
    read_list_file,
    require_files,
)
from reid.data.datasets.registry import DATASET_REGISTRY

VERI_NAME = re.compile(r"^(\d+)_c(\d+)", re.IGNORECASE)
VERI_SPLITS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
VERI_LISTS = {"train": "name_train.txt", "query": "name_query.txt", "gallery": "name_test.txt"}


def veri_layout_lines(folder: str) -> list[str]:
    """The expected-layout lines of a VeRi-style dataset in ``folder``."""
    return [
        f"{folder}/image_train/  training images VVVV_cCCC_FFFFFFFF_0.jpg",
        f"{folder}/image_query/  query images",
        f"{folder}/image_test/   gallery images",
        f"{folder}/name_train.txt, name_query.txt, name_test.txt  (optional file name lists)",
    ]


def parse_veri_split(base: Path, split: str, dataset: str) -> list[Sample]:
    """``(path, vid, camid)`` of one split; ``name_*.txt`` defines the files when present.

    Raises:
        DatasetLayoutError: unparsable name, camera number 0, or a listed file that is missing.
    """
    folder = base / VERI_SPLITS[split]
    list_file = base / VERI_LISTS[split]
    if list_file.is_file():
        paths = [folder / fields[0] for _, fields in read_list_file(list_file, dataset, 1)]
        require_files((str(p) for p in paths), dataset, list_file)
    else:
        paths = list_images(folder)
    out = []
    for path in paths:
        m = match_name(VERI_NAME, path, dataset, "VVVV_cCCC_*.jpg, e.g. 0001_c001_00016450_0.jpg")
        vid, cam = int(m.group(1)), int(m.group(2))
        if cam < 1:
            raise DatasetLayoutError(f"{dataset}: camera numbers start at 1, got c{cam} in {path}")
        out.append((str(path), vid, cam - 1))
    return out


@DATASET_REGISTRY.register("veri")
def veri(root: str) -> ReIDDataset:
    """VeRi-776 under ``root/veri`` (or ``root/veri/VeRi``).

    576 train vehicles (37,778 images), 1,678 queries, 11,579 gallery images, cameras 0..19.
    """
    base = find_dataset_dir(
        root, "veri", ["veri", "veri/VeRi"], list(VERI_SPLITS.values()), veri_layout_lines("veri")
    )
    splits = {s: parse_veri_split(base, s, "veri") for s in VERI_SPLITS}
    return make_dataset("veri", base, splits["train"], splits["query"], splits["gallery"])
