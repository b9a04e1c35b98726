"""Seeds, colours and small drawing helpers shared by the person and vehicle renderers.

Every random decision of the generator comes from a ``numpy.random.Generator`` derived from a
tuple of integers (seed, kind, domain, pid, camera, index, ...) with ``SeedSequence``, so an
image's pixels depend only on its own key: parallel or partial generation gives the same bytes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import ImageDraw

RGB = tuple[int, int, int]

KIND_CODES = {"person": 1, "vehicle": 2, "video": 3}

# Tags separating the random streams of one (seed, kind, domain) triple.
TAG_IDENTITY = 11
TAG_CAMERA = 12
TAG_BACKGROUND = 13
TAG_IMAGE = 14
TAG_TRACK = 15
TAG_SPLIT = 16


def derive_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by ``seed`` and the non-negative integer ``keys`` only."""
    if seed < 0 or any(k < 0 for k in keys):
        raise ValueError(f"seeds and keys must be non-negative integers, got {seed}, {keys}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]))


def kind_code(kind: str) -> int:
    """Integer code of a generator kind ("person", "vehicle" or "video")."""
    if kind not in KIND_CODES:
        raise ValueError(f"unknown synthetic kind '{kind}'; expected one of {sorted(KIND_CODES)}")
    return KIND_CODES[kind]


def pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """One key of ``weights`` drawn with probability proportional to its weight."""
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def pick_index(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights``."""
    p = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


def jitter(rng: np.random.Generator, colour: RGB, amount: float) -> RGB:
    """``colour`` with each channel moved by a uniform offset in ``[-amount, amount]`` (0-255)."""
    c = np.asarray(colour, dtype=np.float64) + rng.uniform(-amount, amount, size=3)
    return tuple(int(v) for v in np.clip(np.rint(c), 0, 255))  # type: ignore[return-value]


def shade(colour: RGB, factor: float) -> RGB:
    """``colour`` scaled by ``factor`` (darker below 1), clipped to 0-255."""
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)  # type: ignore[return-value]


class Pen:
    """ImageDraw wrapper with x measured from a centre line and an optional mirror.

    Renderers draw a figure facing +x; ``mirror=True`` flips it about ``cx`` (facing -x)
    without touching the background already on the canvas.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, mirror: bool = False) -> None:
        self.draw = draw
        self.cx = cx
        self.sign = -1.0 if mirror else 1.0

    def x(self, dx: float) -> float:
        return self.cx + self.sign * dx

    def poly(self, pts: Sequence[tuple[float, float]], fill: RGB) -> None:
        self.draw.polygon([(self.x(px), py) for px, py in pts], fill=fill)

    def ellipse(self, dx: float, y: float, rx: float, ry: float, fill: RGB) -> None:
        x0, x1 = sorted((self.x(dx - rx), self.x(dx + rx)))
        self.draw.ellipse([x0, y - ry, x1, y + ry], fill=fill)

    def rect(self, dx0: float, y0: float, dx1: float, y1: float, fill: RGB) -> None:
        x0, x1 = sorted((self.x(dx0), self.x(dx1)))
        self.draw.rectangle([x0, min(y0, y1), x1, max(y0, y1)], fill=fill)

    def line(self, pts: Sequence[tuple[float, float]], fill: RGB, width: float) -> None:
        self.draw.line([(self.x(px), py) for px, py in pts], fill=fill, width=max(1, round(width)))

    def limb(
        self, p0: tuple[float, float], p1: tuple[float, float], w0: float, w1: float, fill: RGB
    ) -> None:
        """A tapered segment from ``p0`` (width ``w0``) to ``p1`` (width ``w1``), pixels."""
        (x0, y0), (x1, y1) = p0, p1
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        self.poly(
            [
                (x0 + nx * w0 / 2, y0 + ny * w0 / 2),
                (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
                (x1 - nx * w1 / 2, y1 - ny * w1 / 2),
                (x0 - nx * w0 / 2, y0 - ny * w0 / 2),
            ],
            fill,
        )
