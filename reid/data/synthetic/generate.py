"""Write synthetic re-ID datasets in the Market-1501, VeRi-776 and MARS layouts.

Identities: ``ids`` train identities then ``ids`` test identities per domain; the domain is
encoded in the id range (``pid = 2000 * domain_index + 1 + i``, so domain A uses 1..1998, B
2001..3998, ...) and train / test / domains never share an id. Each identity appears in 2 to
``cams`` cameras.

Determinism: every image is rendered from a generator derived from
``(seed, kind, domain, pid, camera, index)``, written as JPEG with a fixed quality, and file names
depend only on those keys; two runs with the same arguments give the same bytes.

Completeness: a dataset is written into a temporary sibling folder, finished with a marker file
``synthetic.json`` (the generation parameters and counts) and renamed into place, so a crash
never leaves a half-written folder under the final name.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reid.data.synthetic.camera import CameraStyle, render_background, sample_camera
from reid.data.synthetic.common import TAG_IMAGE, TAG_SPLIT, TAG_TRACK, derive_rng, kind_code
from reid.data.synthetic.domains import domain_index, get_domain
from reid.data.synthetic.person import (
    SUPERSAMPLE,
    PersonPose,
    render_person,
    sample_person_identities,
    sample_pose,
)
from reid.data.synthetic.vehicle import (
    render_vehicle,
    sample_vehicle_identities,
    sample_vehicle_pose,
)
from reid.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

MARKER = "synthetic.json"
GENERATOR_VERSION = 1
JPEG_QUALITY = 92
PID_STRIDE = 2000  # pids of domain d lie in [PID_STRIDE * d + 1, PID_STRIDE * d + 2 * ids]
MAX_IDS = (PID_STRIDE - 2) // 2
TRACK_LEN = (8, 32)  # frames per tracklet, inclusive

# Defaults chosen so that a demo set is written in seconds on one CPU core.
DEFAULTS: dict[str, dict] = {
    "person": {"ids": 100, "cams": 4, "size": (128, 64)},
    "vehicle": {"ids": 80, "cams": 4, "size": (128, 128)},
    "video": {"ids": 40, "cams": 3, "size": (128, 64)},
}
MAX_CAMS = {"person": 9, "vehicle": 99, "video": 9}  # Market / MARS names hold a 1-digit camera


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a generated dataset (written to the marker file)."""

    kind: str
    domain: str
    ids: int
    cams: int
    size: tuple[int, int]
    seed: int

    def as_dict(self) -> dict:
        return {"kind": self.kind, "domain": self.domain, "ids": self.ids, "cams": self.cams,
                "size": list(self.size), "seed": self.seed, "version": GENERATOR_VERSION}


def make_spec(
    kind: str, *, domain: str = "A", ids: int | None = None, cams: int | None = None,
    size: tuple[int, int] | None = None, seed: int = 0,
) -> SyntheticSpec:
    """Validate the arguments and fill in the defaults of ``kind`` (see ``DEFAULTS``)."""
    kind_code(kind)
    dom = get_domain(domain).name
    d = DEFAULTS[kind]
    ids = d["ids"] if ids is None else int(ids)
    cams = d["cams"] if cams is None else int(cams)
    size = tuple(d["size"]) if size is None else tuple(int(s) for s in size)
    if not 1 <= ids <= MAX_IDS:
        raise ValueError(f"ids (identities per split) must be in 1..{MAX_IDS}, got {ids}")
    if not 2 <= cams <= MAX_CAMS[kind]:
        raise ValueError(f"cams must be in 2..{MAX_CAMS[kind]} for {kind} data, got {cams}")
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size must be (height, width) with both >= 16 pixels, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return SyntheticSpec(kind, dom, ids, cams, size, int(seed))  # type: ignore[arg-type]


def pid_of(spec: SyntheticSpec, index: int) -> int:
    """Dataset id of identity ``index`` (train ids first, then test ids)."""
    return PID_STRIDE * domain_index(spec.domain) + 1 + index


@dataclass(frozen=True)
class Shot:
    """One image (or one tracklet for video) to render."""

    pid: int
    identity: int  # index into the identity list
    cam: int  # 1-based
    index: int  # per (pid, cam) counter
    split: str  # train / gallery / query
    frames: int = 1


def plan_shots(spec: SyntheticSpec) -> list[Shot]:
    """The images (tracklets) of the dataset: cameras and counts per identity, deterministic.

    Train ids get 2-6 images per camera; test ids get 1 query and 2-5 gallery images per camera
    (Market / VeRi); video ids get tracklets of 8-32 frames: 1-2 per camera for train ids, 2-3
    per camera for test ids, the first of which is the query (MARS: the gallery is every other
    test tracklet).
    """
    shots: list[Shot] = []
    code, dom = kind_code(spec.kind), domain_index(spec.domain)
    for i in range(2 * spec.ids):
        pid = pid_of(spec, i)
        train = i < spec.ids
        rng = derive_rng(spec.seed, code, dom, TAG_SPLIT, pid)
        n_cams = int(rng.integers(2, spec.cams + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(spec.cams, size=n_cams, replace=False))
        for cam in cams:
            if spec.kind == "video":
                n = int(rng.integers(1, 3)) if train else int(rng.integers(2, 4))
                for k in range(n):
                    frames = int(rng.integers(TRACK_LEN[0], TRACK_LEN[1] + 1))
                    split = "train" if train else ("query" if k == 0 else "gallery")
                    shots.append(Shot(pid, i, cam, k, split, frames))
                continue
            if train:
                n = int(rng.integers(2, 7))
                shots += [Shot(pid, i, cam, k, "train") for k in range(n)]
            else:
                n = int(rng.integers(2, 6))
                shots.append(Shot(pid, i, cam, 0, "query"))
                shots += [Shot(pid, i, cam, k, "gallery") for k in range(1, n + 1)]
    return shots


class Renderer:
    """Renders the shots of one spec; caches identities, camera styles and backgrounds."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.style = get_domain(spec.domain)
        sampler = sample_vehicle_identities if spec.kind == "vehicle" else sample_person_identities
        self.identities = sampler(seed=spec.seed, kind=spec.kind, domain=spec.domain,
                                  count=2 * spec.ids)
        self.cameras: dict[int, CameraStyle] = {}
        self.backgrounds: dict[int, Image.Image] = {}

    def camera(self, cam: int) -> tuple[CameraStyle, Image.Image]:
        if cam not in self.cameras:
            s = self.spec
            style = sample_camera(seed=s.seed, kind=s.kind, domain=s.domain, cam=cam)
            h, w = (x * SUPERSAMPLE for x in s.size)
            self.cameras[cam] = style
            self.backgrounds[cam] = render_background(
                style, size=(int(h * 1.4), int(w * 1.6)), seed=s.seed, kind=s.kind,
                domain=s.domain,
            )
        return self.cameras[cam], self.backgrounds[cam]

    def _rng(self, shot: Shot, *extra: int) -> np.random.Generator:
        s = self.spec
        return derive_rng(s.seed, kind_code(s.kind), domain_index(s.domain), TAG_IMAGE,
                          shot.pid, shot.cam, shot.index, *extra)

    def image(self, shot: Shot) -> np.ndarray:
        """The uint8 (H, W, 3) image of an image shot."""
        cam, bg = self.camera(shot.cam)
        rng = self._rng(shot)
        ident = self.identities[shot.identity]
        if self.spec.kind == "vehicle":
            pose, occ = sample_vehicle_pose(rng, cam, self.style)
            return render_vehicle(ident, cam, bg, pose=pose, occluder=occ, size=self.spec.size,
                                  rng=rng)
        pose, occ = sample_pose(rng, cam, self.style)
        return render_person(ident, cam, bg, pose=pose, occluder=occ, size=self.spec.size, rng=rng)

    def tracklet(self, shot: Shot) -> Iterator[np.ndarray]:
        """The frames of a video shot: a walk (phase advancing, small drift in position/scale)."""
        cam, bg = self.camera(shot.cam)
        s = self.spec
        trng = derive_rng(s.seed, kind_code(s.kind), domain_index(s.domain), TAG_TRACK,
                          shot.pid, shot.cam, shot.index)
        pose0, occ = sample_pose(trng, cam, self.style)
        step = float(trng.uniform(0.45, 0.75))  # walking phase per frame, radians
        vx, vs = float(trng.uniform(-0.006, 0.006)), float(trng.uniform(-0.004, 0.004))
        bg_seed = int(trng.integers(2**31))  # one background window per track
        ident = self.identities[shot.identity]
        for f in range(shot.frames):
            rng = self._rng(shot, f)
            pose = PersonPose(
                view=pose0.view, phase=pose0.phase + step * f, mirror=pose0.mirror,
                dx=pose0.dx + vx * f + float(rng.normal(0.0, 0.004)),
                dy=pose0.dy + float(rng.normal(0.0, 0.004)),
                scale=pose0.scale * (1.0 + vs * f),
            )
            yield render_person(
                ident, cam, bg, pose=pose, occluder=occ, size=s.size, rng=rng,
                background_rng=np.random.default_rng(bg_seed),
            )


def encode_jpeg(img: np.ndarray) -> bytes:
    """JPEG bytes of a uint8 (H, W, 3) image at the fixed quality ``JPEG_QUALITY``."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False,
                              subsampling=0)
    return buf.getvalue()


def _frame_number(shot: Shot) -> int:
    return 25 * (1000 * shot.cam + 10 * shot.index) + shot.pid % 25


def market_name(shot: Shot) -> str:
    """``PPPP_cCsS_FFFFFF_00.jpg`` (Market-1501); one sequence per camera."""
    return f"{shot.pid:04d}_c{shot.cam}s1_{_frame_number(shot) % 1_000_000:06d}_00.jpg"


def veri_name(shot: Shot) -> str:
    """``VVVV_cCCC_FFFFFFFF_0.jpg`` (VeRi-776)."""
    return f"{shot.pid:04d}_c{shot.cam:03d}_{_frame_number(shot):08d}_0.jpg"


def mars_name(pid: int, cam: int, track: int, frame: int) -> str:
    """``PPPPCcTttttFfff.jpg`` (MARS), e.g. ``0001C1T0001F001.jpg``; all numbers 1-based."""
    return f"{pid:04d}C{cam}T{track:04d}F{frame:03d}.jpg"


def _write_mat(path: Path, name: str, array: np.ndarray) -> None:
    """A MATLAB v5 file holding ``array`` as variable ``name`` with a fixed header (no date)."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {name: array}, format="5", do_compression=False, oned_as="row")
    data = bytearray(buf.getvalue())
    header = b"MATLAB 5.0 MAT-file, written by unreid synthetic generator"
    data[:116] = header.ljust(116, b" ")
    path.write_bytes(bytes(data))


def _write_images(root: Path, spec: SyntheticSpec, shots: list[Shot], progress: bool) -> dict:
    renderer = Renderer(spec)
    if spec.kind == "person":
        folders = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}
        namer = market_name
    else:
        folders = {"train": "image_train", "gallery": "image_test", "query": "image_query"}
        namer = veri_name
    for f in folders.values():
        (root / f).mkdir(parents=True)
    names: dict[str, list[str]] = {k: [] for k in folders}
    for shot in progress_bar(shots, desc=f"synthetic {spec.kind} {spec.domain}",
                             disable=not progress):
        name = namer(shot)
        (root / folders[shot.split] / name).write_bytes(encode_jpeg(renderer.image(shot)))
        names[shot.split].append(name)
    if spec.kind == "vehicle":
        for split, fname in (("train", "name_train.txt"), ("query", "name_query.txt"),
                             ("gallery", "name_test.txt")):
            (root / fname).write_text("".join(n + "\n" for n in sorted(names[split])))
    return {k: len(v) for k, v in names.items()}


def _write_video(root: Path, spec: SyntheticSpec, shots: list[Shot], progress: bool) -> dict:
    renderer = Renderer(spec)
    (root / "info").mkdir(parents=True)
    counts = {}
    for folder, splits in (("bbox_train", ("train",)), ("bbox_test", ("query", "gallery"))):
        split_shots = sorted((s for s in shots if s.split in splits),
                             key=lambda s: (s.pid, s.cam, s.index))
        names: list[str] = []
        rows: list[list[int]] = []
        query_rows: list[int] = []
        track_no: dict[int, int] = {}
        total = sum(s.frames for s in split_shots)
        bar = progress_bar(total=total, desc=f"synthetic video {spec.domain} {folder}",
                           disable=not progress)
        for shot in split_shots:
            track_no[shot.pid] = track_no.get(shot.pid, 0) + 1
            pid_dir = root / folder / f"{shot.pid:04d}"
            pid_dir.mkdir(parents=True, exist_ok=True)
            start = len(names) + 1
            for f, img in enumerate(renderer.tracklet(shot)):
                name = mars_name(shot.pid, shot.cam, track_no[shot.pid], f + 1)
                (pid_dir / name).write_bytes(encode_jpeg(img))
                names.append(name)
                bar.update(1)
            rows.append([start, len(names), shot.pid, shot.cam])
            if shot.split == "query":
                query_rows.append(len(rows))
        bar.close()
        split = "train" if folder == "bbox_train" else "test"
        (root / "info" / f"{split}_name.txt").write_text("".join(n + "\n" for n in names))
        _write_mat(root / "info" / f"tracks_{split}_info.mat", f"track_{split}_info",
                   np.asarray(rows, dtype=np.float64).reshape(-1, 4))
        if split == "test":
            _write_mat(root / "info" / "query_IDX.mat", "query_IDX",
                       np.asarray(query_rows, dtype=np.float64))
            counts["query"] = len(query_rows)
            counts["gallery"] = len(rows)
        else:
            counts["train"] = len(rows)
        counts[f"{split}_frames"] = len(names)
    return counts


def write_dataset(
    out_dir: str | os.PathLike, spec: SyntheticSpec, *, overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate ``spec`` into ``out_dir`` (the dataset folder itself) atomically.

    Persons are written in the Market-1501 layout (``bounding_box_train/``,
    ``bounding_box_test/``, ``query/``), vehicles in the VeRi-776 layout (``image_train/``,
    ``image_query/``, ``image_test/`` and ``name_*.txt``), video in the MARS layout
    (``bbox_train/PPPP/``, ``bbox_test/PPPP/``, ``info/``). The folder is complete when it holds
    ``synthetic.json``. Raises FileExistsError when ``out_dir`` exists and not ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    shots = plan_shots(spec)
    try:
        if spec.kind == "video":
            counts = _write_video(tmp, spec, shots, progress)
        else:
            counts = _write_images(tmp, spec, shots, progress)
        info = spec.as_dict()
        info["layout"] = {"person": "market1501", "vehicle": "veri", "video": "mars"}[spec.kind]
        info["counts"] = counts
        info["pid_range"] = [pid_of(spec, 0), pid_of(spec, 2 * spec.ids - 1)]
        (tmp / MARKER).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote synthetic %s domain %s (%s) to %s", spec.kind, spec.domain, counts, out)
    return out


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The parameters stored in ``folder/synthetic.json``, or None if the folder lacks it."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"corrupt synthetic marker {path}: {err}") from err


def preview_grid(spec: SyntheticSpec, *, n_ids: int = 8, test: bool = True) -> Image.Image:
    """A grid image: one row per camera, one column per identity (first train or test ids).

    Cells where the identity is not seen by the camera stay black; video shows the first frame.
    """
    renderer = Renderer(spec)
    h, w = spec.size
    first = spec.ids if test else 0
    idx = list(range(first, first + min(n_ids, spec.ids)))
    grid = np.zeros((spec.cams * h, len(idx) * w, 3), dtype=np.uint8)
    by_key = {}
    for shot in plan_shots(spec):
        by_key.setdefault((shot.identity, shot.cam), shot)
    for col, i in enumerate(idx):
        for cam in range(1, spec.cams + 1):
            shot = by_key.get((i, cam))
            if shot is None:
                continue
            img = next(renderer.tracklet(shot)) if spec.kind == "video" else renderer.image(shot)
            grid[(cam - 1) * h:cam * h, col * w:(col + 1) * w] = img
    return Image.fromarray(grid)


def estimate_images(spec: SyntheticSpec) -> int:
    """Number of image files ``spec`` writes (frames for video)."""
    return int(math.fsum(s.frames for s in plan_shots(spec)))
