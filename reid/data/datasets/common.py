"""Helpers shared by the dataset parsers: locating a layout, listing images, relabelling, splits.

Parsers never open images; they only list folders and read text / ``.mat`` list files, so a
layout made of empty files parses exactly like the real one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
)
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})

# The folders the official archives of each benchmark unpack to, relative to the data root (the
# one place they are listed; datasets/README.md shows them). find_dataset_dir tries each of them
# directly under DATASETS.ROOT and inside the dataset's own folder, after the usual names.
RELEASE_FOLDERS: dict[str, tuple[str, ...]] = {
    "market1501": ("Market-1501-v15.09.15", "Market-1501"),
    "dukemtmcreid": ("DukeMTMC-reID",),
    "msmt17": ("MSMT17_V1", "MSMT17_V2", "MSMT17"),
    "cuhk01": ("CUHK01/campus", "CUHK01", "campus"),
    "personx": ("PersonX",),
    "veri": ("VeRi", "VeRi-776", "VeRi_with_plate"),
    "vehicleid": ("VehicleID_V1.0", "VehicleID"),
    "vehiclex": ("AIC20_ReID_Simulation", "VehicleX"),
    "viper": ("VIPeR",),
    "grid": ("underground_reid", "GRID/underground_reid"),
    "prid2011": ("prid_2011", "PRID2011"),
    "prid2011_video": ("prid_2011", "PRID2011"),
    "mars": ("MARS",),
    "ilidsvid": ("i-LIDS-VID/sequences",),
    "dukemtmcvidreid": ("DukeMTMC-VideoReID",),
}


def dataset_candidates(dataset: str, candidates: Sequence[str]) -> list[str]:
    """``candidates`` followed by the official release folders of ``dataset``
    (:data:`RELEASE_FOLDERS`), directly under the root and inside the first candidate's top
    folder, without repeats."""
    top = candidates[0].split("/")[0] if candidates else dataset
    out = list(candidates)
    for release in RELEASE_FOLDERS.get(dataset, ()):
        out += [release, f"{top}/{release}"]
    return list(dict.fromkeys(out))


# A user's own location of a benchmark layout ("market1501:/data/my_set"), set while its parser
# runs: find_dataset_dir then looks there instead of under the data root.
_DIR_OVERRIDE: ContextVar[dict | None] = ContextVar("dataset_dir_override", default=None)


@contextlib.contextmanager
def dataset_dir_override(path: str | Path) -> Iterator[dict]:
    """While active, :func:`find_dataset_dir` reads the layout from ``path``.

    A candidate ``"market1501/Market-1501-v15.09.15"`` becomes ``path/Market-1501-v15.09.15``
    (its first component is replaced by ``path``). Yields a dict whose ``"used"`` entry tells
    whether a parser looked the folder up (parsers that do not use :func:`find_dataset_dir`
    cannot be pointed elsewhere).
    """
    state = {"path": Path(path).expanduser(), "used": False}
    token = _DIR_OVERRIDE.set(state)
    try:
        yield state
    finally:
        _DIR_OVERRIDE.reset(token)


def layout_error(
    dataset: str, problem: str, tried: Sequence[str], expected: Sequence[str]
) -> DatasetLayoutError:
    """A :class:`DatasetLayoutError` naming the dataset, every path tried and the expected layout.

    Args:
        dataset: registry name of the dataset.
        problem: one-line description of what is wrong.
        tried: paths that were tried (one line each, may carry a short note).
        expected: the expected layout, one line per sub-folder / list file.
    """
    lines = [f"{dataset}: {problem}"]
    if tried:
        lines.append("tried:")
        lines += [f"  {t}" for t in tried]
    lines.append("expected layout:")
    lines += [f"  {e}" for e in expected]
    return DatasetLayoutError("\n".join(lines))


def dataset_top(root: str | Path, folder: str) -> Path:
    """``root/folder``, or the folder of an active :func:`dataset_dir_override`."""
    override = _DIR_OVERRIDE.get()
    if override is not None:
        override["used"] = True
        return override["path"]
    return Path(root).expanduser() / folder


def find_dataset_dir(
    root: str | Path,
    dataset: str,
    candidates: Sequence[str],
    required: Sequence[str],
    expected: Sequence[str],
) -> Path:
    """The first ``root/candidate`` folder that holds every entry of ``required``.

    Args:
        root: the data root (``DATASETS.ROOT``).
        dataset: registry name, for the error message.
        candidates: sub-paths of ``root`` to try in order (e.g. ``"market1501"`` then
            ``"market1501/Market-1501-v15.09.15"``); the official release folders of
            ``dataset`` (:data:`RELEASE_FOLDERS`) are tried after them.
        required: files or folders (relative to the candidate) that must all exist.
        expected: the expected layout for the error message.

    Raises:
        DatasetLayoutError: no candidate holds all required entries; the message names every
            path tried and what was missing there.
    """
    root = Path(root).expanduser()
    override = _DIR_OVERRIDE.get()
    cands = dataset_candidates(dataset, candidates)
    paths = [root / cand for cand in cands]
    if override is not None:
        override["used"] = True
        root = override["path"]
        paths = list(dict.fromkeys(root.joinpath(*Path(c).parts[1:]) for c in cands))
    tried = []
    for path in paths:
        if not path.is_dir():
            tried.append(f"{path} (no such folder)")
            continue
        missing = [r for r in required if not (path / r).exists()]
        if not missing:
            return path
        tried.append(f"{path} (missing: {', '.join(missing)})")
    raise layout_error(dataset, f"layout not found under data root {root}", tried, expected)


def is_junk(path: str | Path) -> bool:
    """True for files a parser ignores: hidden files, OS junk (Thumbs.db) and non-images."""
    name = os.path.basename(path)
    if name.startswith(".") or name.lower() in JUNK_NAMES:
        return True
    return os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS


def list_images(folder: Path) -> list[Path]:
    """Sorted image files directly inside ``folder`` (junk and sub-folders ignored)."""
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.is_file() and not is_junk(e.name))
    return [folder / n for n in names]


def match_name(pattern: re.Pattern, path: Path, dataset: str, expected: str) -> re.Match:
    """``pattern.match(path.name)``; an image whose name does not match raises, naming it.

    Raises:
        DatasetLayoutError: the file name does not follow ``expected`` (a human-readable
            pattern such as ``"PPPP_cC*.jpg"``).
    """
    m = pattern.match(path.name)
    if m is None:
        raise DatasetLayoutError(
            f"{dataset}: cannot parse image file name {path} (expected {expected})"
        )
    return m


def read_list_file(path: Path, dataset: str, num_fields: int) -> list[tuple[int, list[str]]]:
    """Non-empty, non-comment lines of a whitespace-separated list file.

    Returns:
        ``(line_number, fields)`` pairs (1-based line numbers), every ``fields`` of length
        ``num_fields``.

    Raises:
        DatasetLayoutError: the file is missing or a line has the wrong number of fields.
    """
    if not path.is_file():
        raise DatasetLayoutError(f"{dataset}: list file not found: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != num_fields:
                raise DatasetLayoutError(
                    f"{dataset}: {path}:{i}: expected {num_fields} fields, got {line!r}"
                )
            out.append((i, fields))
    return out


def parse_int(text: str, path: Path, line: int, dataset: str, what: str) -> int:
    """``int(text)``; a non-integer raises naming the list file and line."""
    try:
        return int(text)
    except ValueError:
        raise DatasetLayoutError(
            f"{dataset}: {path}:{line}: {what} must be an integer, got {text!r}"
        ) from None


def require_files(paths: Iterable[str], dataset: str, listed_in: Path) -> None:
    """Raise if a file named by a list file does not exist (first missing one named)."""
    for p in paths:
        if not Path(p).is_file():
            raise DatasetLayoutError(f"{dataset}: {listed_in} lists {p}, which does not exist")


def by_camera(samples: Iterable[Sample]) -> dict[int, list[Sample]]:
    """``{camid: its samples, in input order}`` with the cameras in increasing order."""
    groups: dict[int, list[Sample]] = {}
    for item in samples:
        groups.setdefault(int(item[2]), []).append(item)
    return dict(sorted(groups.items()))


def relabel(samples: list[Sample]) -> list[Sample]:
    """Samples with pids mapped to ``0..n-1`` in ascending order of the original pid."""
    mapping = {pid: i for i, pid in enumerate(sorted({s[1] for s in samples}))}
    return [(s[0], mapping[s[1]], s[2]) for s in samples]


def split_ids(
    ids: Iterable[int], split_seed: int, num_train: int | None = None
) -> tuple[list, list]:
    """Deterministic random split of identities into train and test.

    ``rng = np.random.default_rng(split_seed)`` permutes the sorted ids; the first
    ``num_train`` (default ``len(ids) // 2``) are the train ids. Both lists come back sorted.

    Args:
        ids: identities (any iterable of ints, duplicates ignored).
        split_seed: seed of the permutation.
        num_train: train identities; default half (rounded down).

    Returns:
        ``(train_ids, test_ids)``.
    """
    ids = sorted(set(ids))
    n_train = len(ids) // 2 if num_train is None else int(num_train)
    if not 0 < n_train < len(ids):
        raise ValueError(f"cannot split {len(ids)} identities into {n_train} train ids")
    perm = np.random.default_rng(split_seed).permutation(len(ids))
    train = sorted(ids[i] for i in perm[:n_train])
    test = sorted(ids[i] for i in perm[n_train:])
    return train, test


def make_dataset(
    name: str,
    root: Path,
    train: list[Sample],
    query: list[Sample],
    gallery: list[Sample],
    *,
    is_video: bool = False,
    extra: dict | None = None,
    allow_empty: Sequence[str] = (),
) -> ReIDDataset:
    """Check that no split is empty, relabel train pids to ``0..n-1`` and build the dataset.

    Args:
        allow_empty: split names that may be empty by design (e.g. VehicleX query/gallery).

    Raises:
        DatasetLayoutError: a split not in ``allow_empty`` is empty (names the dataset folder).
    """
    for split, items in (("train", train), ("query", query), ("gallery", gallery)):
        if not items and split not in allow_empty:
            raise DatasetLayoutError(
                f"{name}: the {split} split is empty (dataset folder {root}); check the layout "
                "described in datasets/README.md"
            )
    ds = ReIDDataset(
        name=name, root=str(root), train=relabel(train), query=list(query),
        gallery=list(gallery), is_video=is_video, extra=dict(extra or {}),
    )
    logger.debug("%s", ds.summary())
    return ds


def query_first_per_camera(
    test: list[tuple[str, int, int, int]],
) -> tuple[list[Sample], list[Sample]]:
    """Query = the image with the smallest image index of every (identity, camera) pair.

    Args:
        test: ``(path, pid, camid, image_index)`` of every test image.

    Returns:
        ``(query, gallery)`` as ``(path, pid, camid)`` lists in input order; the gallery holds
        every test image that is not a query.
    """
    first: dict[tuple[int, int], tuple[int, str]] = {}
    for path, pid, cam, idx in test:
        key = (pid, cam)
        if key not in first or (idx, path) < first[key]:
            first[key] = (idx, path)
    chosen = {path for _, path in first.values()}
    query = [(p, pid, cam) for p, pid, cam, _ in test if p in chosen]
    gallery = [(p, pid, cam) for p, pid, cam, _ in test if p not in chosen]
    return query, gallery
