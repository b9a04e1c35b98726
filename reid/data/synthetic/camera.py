"""Cameras of the synthetic generator: background, illumination, optics and viewpoints.

Each camera of a domain draws (once, from ``(seed, kind, domain, camera)``) its background
texture and colours, an illumination gain, a colour temperature and tint, a contrast and
saturation, a blur radius, a noise level, a resolution loss and a viewpoint distribution over
front / back / side. ``apply_camera`` turns a clean rendering into that camera's image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid.data.synthetic.common import (
    RGB,
    TAG_BACKGROUND,
    TAG_CAMERA,
    derive_rng,
    jitter,
    kind_code,
    shade,
)
from reid.data.synthetic.domains import domain_index, get_domain

VIEWS = ("front", "back", "side")
BACKGROUNDS = ("tiles", "panels", "wall", "grass", "asphalt", "brick", "foliage", "paving")


@dataclass(frozen=True)
class CameraStyle:
    """Appearance of one camera (see ``DomainStyle`` for the meaning and units of each field).

    ``view_weights`` are the probabilities of (front, back, side); ``scale`` the mean apparent
    size of the object (distance to the camera); ``horizon`` the background horizon height as a
    fraction of the image height.
    """

    cam: int
    background: str
    bg_colours: tuple[RGB, RGB, RGB]
    gain: float
    white_balance: tuple[float, float, float]
    contrast: float
    saturation: float
    blur: float
    noise: float
    res_loss: float
    view_weights: tuple[float, float, float]
    scale: float
    horizon: float


def sample_camera(*, seed: int, kind: str, domain: str, cam: int) -> CameraStyle:
    """The style of camera ``cam`` (1-based) of ``domain``; deterministic in its arguments."""
    style = get_domain(domain)
    rng = derive_rng(seed, kind_code(kind), domain_index(domain), TAG_CAMERA, cam)

    def u(r: tuple[float, float]) -> float:
        return float(rng.uniform(r[0], r[1]))

    idx = rng.choice(len(style.bg_colours), size=3, replace=False)
    colours = tuple(jitter(rng, style.bg_colours[int(i)], 25) for i in idx)
    temperature, tint = u(style.temperature), u(style.tint)
    white_balance = (1.0 + 0.5 * temperature, 1.0 + tint, 1.0 - 0.5 * temperature)
    dominant = int(rng.integers(3))
    views = [0.2, 0.2, 0.2]
    views[dominant] = 0.6
    return CameraStyle(
        cam=cam,
        background=style.backgrounds[int(rng.integers(len(style.backgrounds)))],
        bg_colours=colours,  # type: ignore[arg-type]
        gain=u(style.gain),
        white_balance=white_balance,
        contrast=u(style.contrast),
        saturation=u(style.saturation),
        blur=u(style.blur),
        noise=u(style.noise),
        res_loss=u(style.res_loss),
        view_weights=tuple(views),  # type: ignore[arg-type]
        scale=float(rng.uniform(0.9, 1.08)),
        horizon=float(rng.uniform(0.3, 0.6)),
    )


def render_background(
    camera: CameraStyle, *, size: tuple[int, int], seed: int, kind: str, domain: str
) -> Image.Image:
    """A background texture of ``size`` = (height, width) pixels for ``camera`` (RGB image).

    Render it larger than an image and crop a random window per image (``crop_background``).
    """
    h, w = size
    rng = derive_rng(seed, kind_code(kind), domain_index(domain), TAG_BACKGROUND, camera.cam)
    c0, c1, c2 = camera.bg_colours
    img = Image.new("RGB", (w, h), c0)
    d = ImageDraw.Draw(img)
    hz = int(h * camera.horizon)
    kind_bg = camera.background
    if kind_bg == "tiles":
        d.rectangle([0, hz, w, h], fill=c1)
        y, step = hz, max(4, h // 40)
        while y < h:
            d.line([0, y, w, y], fill=c2, width=max(1, h // 200))
            y += step
            step = int(step * 1.25) + 1
        for x in range(0, w, max(8, w // 12)):
            d.line([x, hz, x + (x - w // 2) // 2, h], fill=c2, width=max(1, h // 200))
    elif kind_bg == "panels":
        x = 0
        while x < w:
            pw = int(rng.integers(w // 10, w // 4))
            col = shade(c0 if rng.random() < 0.5 else c1, float(rng.uniform(0.8, 1.15)))
            d.rectangle([x, 0, x + pw, h], fill=col)
            d.rectangle([x, 0, x + 2, h], fill=c2)
            if rng.random() < 0.5:
                wy = int(rng.integers(0, max(1, hz)))
                d.rectangle([x + pw // 5, wy, x + 4 * pw // 5, wy + h // 6], fill=shade(c2, 0.7))
            x += pw
        d.rectangle([0, int(h * 0.85), w, h], fill=shade(c1, 0.8))
    elif kind_bg == "wall":
        d.rectangle([0, hz, w, hz + h // 25], fill=c1)
        d.rectangle([0, int(h * 0.82), w, h], fill=shade(c1, 0.7))
        for _ in range(int(rng.integers(2, 6))):
            px, py = int(rng.integers(0, w)), int(rng.integers(0, max(1, hz)))
            d.rectangle([px, py, px + w // 6, py + h // 8], fill=jitter(rng, c2, 40))
    elif kind_bg in ("grass", "foliage"):
        base = c0 if kind_bg == "grass" else c1
        d.rectangle([0, 0, w, hz], fill=shade(c1, 1.1) if kind_bg == "grass" else c0)
        top = hz if kind_bg == "grass" else 0
        for _ in range(w * h // 150):
            x, y = int(rng.integers(0, w)), int(rng.integers(top, h))
            r = int(rng.integers(2, max(3, w // 10)))
            d.ellipse([x - r, y - r, x + r, y + r], fill=shade(base, float(rng.uniform(0.7, 1.3))))
    elif kind_bg == "asphalt":
        d.rectangle([0, 0, w, hz], fill=c1)
        for x in range(0, w, max(6, w // 8)):
            d.rectangle([x, int(hz * 0.3), x + w // 20, hz], fill=shade(c1, 0.7))
        for _ in range(w * h // 60):
            x, y = int(rng.integers(0, w)), int(rng.integers(hz, h))
            d.point((x, y), fill=shade(c0, float(rng.uniform(0.75, 1.25))))
        y = int(rng.uniform(hz, h))
        d.polygon([(0, y), (w, y - h // 8), (w, y - h // 8 + h // 40), (0, y + h // 40)], fill=c2)
    elif kind_bg in ("brick", "paving"):
        bw, bh = max(6, w // 8), max(4, h // 24) if kind_bg == "brick" else max(6, w // 6)
        for row, y in enumerate(range(0, h, bh)):
            off = (bw // 2) * (row % 2)
            for x in range(-off, w, bw):
                col = shade(c0 if kind_bg == "brick" else (c0, c1)[(row + x // bw) % 2],
                            float(rng.uniform(0.8, 1.2)))
                d.rectangle([x + 1, y + 1, x + bw - 1, y + bh - 1], fill=col)
        d.rectangle([0, 0, w, h], outline=c2)
    else:
        raise ValueError(f"unknown background kind '{kind_bg}'; expected one of {BACKGROUNDS}")
    return img


def crop_background(
    bg: Image.Image, size: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """A random ``size`` = (height, width) window of ``bg`` (a copy, ready to draw on)."""
    h, w = size
    bw, bh = bg.size
    if bw < w or bh < h:
        raise ValueError(f"background {bw}x{bh} smaller than the requested crop {w}x{h}")
    x, y = int(rng.integers(0, bw - w + 1)), int(rng.integers(0, bh - h + 1))
    return bg.crop((x, y, x + w, y + h))


def apply_camera(
    img: Image.Image, camera: CameraStyle, rng: np.random.Generator, *, light_jitter: float = 0.12
) -> np.ndarray:
    """Film a clean rendering with ``camera``; returns a uint8 array (H, W, 3).

    Order: resolution loss (down- then up-sampling), Gaussian blur, saturation, white balance,
    gain (times a per-image factor in ``1 +- light_jitter``), contrast about mid-grey, additive
    Gaussian noise, clipping to 0-255.
    """
    w, h = img.size
    if camera.res_loss < 0.99:
        small = (max(4, round(w * camera.res_loss)), max(4, round(h * camera.res_loss)))
        img = img.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    if camera.blur > 0.1:
        img = img.filter(ImageFilter.GaussianBlur(camera.blur))
    x = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    grey = x @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    x = grey[..., None] + np.float32(camera.saturation) * (x - grey[..., None])
    gain = camera.gain * (1.0 + float(rng.uniform(-light_jitter, light_jitter)))
    x = x * (np.asarray(camera.white_balance, dtype=np.float32) * np.float32(gain))
    x = np.float32(0.5) + np.float32(camera.contrast) * (x - np.float32(0.5))
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(camera.noise / 255.0)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
