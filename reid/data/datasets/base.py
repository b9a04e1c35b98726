"""The dataset container shared by every parser.

A sample is ``(path, pid, camid)`` for images and ``(frame_paths, pid, camid)`` for video
tracklets (``frame_paths`` a tuple of file paths in temporal order). Train pids are relabelled
to ``0..n-1``; query/gallery pids keep the benchmark's ids (Market distractors keep pid 0).
Camera ids are 0-based integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reid.utils.errors import DatasetError

Sample = tuple[str | tuple[str, ...], int, int]


class DatasetLayoutError(DatasetError):
    """A dataset folder is missing or does not have the expected layout (a user error, and a
    ``FileNotFoundError``)."""


@dataclass
class ReIDDataset:
    """Train / query / gallery lists of one benchmark.

    Attributes:
        name: registry name of the dataset.
        root: folder the lists were read from.
        train, query, gallery: lists of ``(path_or_frames, pid, camid)``.
        is_video: True when samples are tracklets.
        extra: protocol-specific data (e.g. ``{"protocol": "vehicleid"}``).
    """

    name: str
    root: str
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    is_video: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s[1] for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s[2] for s in self.train})

    @property
    def num_query_pids(self) -> int:
        return len({s[1] for s in self.query})

    @property
    def num_gallery_pids(self) -> int:
        return len({s[1] for s in self.gallery})

    def summary(self) -> str:
        """A small table of ids / images / cameras per split, for the log."""
        rows = []
        unit = "tracklets" if self.is_video else "images"
        splits = (("train", self.train), ("query", self.query), ("gallery", self.gallery))
        for split, items in splits:
            ids, cams = len({s[1] for s in items}), len({s[2] for s in items})
            rows.append(f"  {split:<8}| {ids:6d} ids | {len(items):7d} {unit} | {cams:3d} cams")
        return f"dataset {self.name} ({self.root})\n" + "\n".join(rows)
