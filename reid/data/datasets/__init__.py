"""Dataset parsers: ``DATASET_REGISTRY`` maps a name to ``callable(root, **kwargs) -> ReIDDataset``.

``root`` is the data root (``DATASETS.ROOT``); each dataset lives in its conventional
sub-folder (``root/market1501``, ...). See ``datasets/README.md`` for every layout.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from reid.data.datasets import (  # noqa: F401  (each module registers its datasets)
    cuhk01,
    cuhk03_detected,
    cuhk03_np,
    custom,
    dukemtmcreid,
    dukemtmcvidreid,
    folder,
    grid,
    ilidsvid,
    market1501,
    mars,
    msmt17,
    personx,
    prid450s,
    prid2011,
    prid2011_video,
    vehicleid,
    vehiclex,
    veri,
    viper,
)
from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.common import dataset_dir_override
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.utils.errors import ConfigError

if importlib.util.find_spec("reid.data.datasets.synthetic") is not None:
    importlib.import_module("reid.data.datasets.synthetic")

__all__ = [
    "DATASET_REGISTRY", "DatasetLayoutError", "ReIDDataset", "Sample", "build_dataset",
    "combine_datasets",
]


def build_dataset(name: str, root: str, **kwargs) -> ReIDDataset:
    """Parse dataset ``name`` under the data root ``root``.

    ``"NAME:PATH"`` reads dataset ``NAME`` from ``PATH`` (relative paths are relative to
    ``root``) and reports it under the full name ``"NAME:PATH"`` in logs and results:

    * ``"custom:FOLDER"``: the list-file dataset in ``root/FOLDER`` (see ``custom``);
    * ``"folder:PATH"`` / ``"identities:PATH"``: folders of crops (see ``folder``);
    * any benchmark, e.g. ``"market1501:/data/my_set"``: its layout read from ``PATH`` instead
      of ``root/market1501``.

    Raises:
        KeyError: unknown name (the message lists the registered names).
        DatasetLayoutError: missing or malformed layout, or ``root`` is a file.
        ConfigError: an empty ``PATH``, or a dataset that cannot be read from another path
            (the generated synthetic sets).
    """
    if Path(root).expanduser().exists() and not Path(root).expanduser().is_dir():
        raise DatasetLayoutError(f"the data root (DATASETS.ROOT) {root} is a file, not a folder: "
                                 "point it at the folder holding one sub-folder per dataset")
    base, sep, path = name.partition(":")
    if not sep:
        return DATASET_REGISTRY.get(name)(root, **kwargs)
    key = base.lower()
    if key == "custom":
        return DATASET_REGISTRY.get("custom")(root, folder=path, name=name, **kwargs)
    if not path:
        raise ConfigError(f"dataset name {name!r} has an empty path after ':'")
    location = Path(root).expanduser() / Path(path).expanduser()
    if key in ("folder", "identities"):
        return DATASET_REGISTRY.get(key)(str(location), name=name, **kwargs)
    if key.startswith("synthetic"):
        raise ConfigError(f"{name}: generated synthetic sets live under DATASETS.ROOT; to train "
                          "on a copy elsewhere use its layout's name (e.g. market1501:PATH)")
    loader = DATASET_REGISTRY.get(base)
    with dataset_dir_override(location) as state:
        dataset = loader(root, **kwargs)
    if not state["used"]:
        raise ConfigError(f"{name}: the {base} parser cannot be pointed at another folder; put "
                          f"it under DATASETS.ROOT as documented in datasets/README.md")
    dataset.name = name
    return dataset


def combine_datasets(datasets: list[ReIDDataset], disjoint_cams: bool = True) -> list[Sample]:
    """Concatenate the train lists of ``datasets`` with disjoint identities.

    The pids of each dataset are relabelled to ``0..n_k-1`` and offset by the number of
    identities of the datasets before it, so the result has pids ``0..sum(n_k)-1``. With
    ``disjoint_cams`` the camids are offset the same way (camera 0 of two sets are different
    cameras).

    Raises:
        ValueError: empty list, an empty train split, or image and video sets mixed.
    """
    if not datasets:
        raise ValueError("combine_datasets needs at least one dataset")
    if len({d.is_video for d in datasets}) > 1:
        raise ValueError("cannot combine image and video datasets: "
                         + ", ".join(f"{d.name} (video={d.is_video})" for d in datasets))
    out: list[Sample] = []
    pid_offset = cam_offset = 0
    for ds in datasets:
        if not ds.train:
            raise ValueError(f"dataset {ds.name} has an empty train split")
        pids = {p: i for i, p in enumerate(sorted({s[1] for s in ds.train}))}
        cams = {c: i for i, c in enumerate(sorted({s[2] for s in ds.train}))}
        for path, pid, cam in ds.train:
            camid = cam_offset + cams[cam] if disjoint_cams else cam
            out.append((path, pid_offset + pids[pid], camid))
        pid_offset += len(pids)
        cam_offset += len(cams)
    return out
