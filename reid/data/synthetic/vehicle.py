"""Procedural vehicles: attribute identities and a PIL renderer with front / back / side views.

An identity combines body type (sedan / SUV / van / truck / bus), colour, roof items, window
tint, stickers and wheel style. Wheel style and side stickers are only visible from the side,
the rear lights from the back, the grille from the front.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from reid.data.synthetic.camera import VIEWS, CameraStyle, apply_camera, crop_background
from reid.data.synthetic.common import (
    RGB,
    TAG_IDENTITY,
    Pen,
    derive_rng,
    jitter,
    kind_code,
    pick,
    pick_index,
    shade,
)
from reid.data.synthetic.domains import DomainStyle, domain_index, get_domain
from reid.data.synthetic.person import SUPERSAMPLE, Occluder, draw_occluder, sample_occluder

TINTS: dict[str, RGB] = {"clear": (150, 180, 200), "dark": (30, 35, 42)}
STICKER_PALETTE: tuple[RGB, ...] = (
    (240, 240, 240), (20, 20, 20), (220, 30, 30), (250, 200, 0), (20, 90, 200), (30, 160, 60),
)
# (length, height) of the body relative to the image width, side view.
_BODY_SIDE = {"sedan": (0.92, 0.3), "suv": (0.9, 0.38), "van": (0.9, 0.46),
              "truck": (0.96, 0.5), "bus": (0.98, 0.52)}
# (width, height) relative to the image width, front / back view.
_BODY_FRONT = {"sedan": (0.7, 0.42), "suv": (0.72, 0.52), "van": (0.74, 0.66),
               "truck": (0.78, 0.72), "bus": (0.8, 0.8)}


@dataclass(frozen=True)
class VehicleAttributes:
    """One synthetic vehicle identity (colours RGB 0-255)."""

    body: str  # sedan / suv / van / truck / bus
    colour: RGB
    roof: str  # none / rack / lightbar / box
    tint: str  # clear / dark
    sticker: str  # none / stripe / logo / number
    sticker_colour: RGB
    wheel: str  # spokes / solid / hubcap / coloured
    key: tuple


@dataclass(frozen=True)
class VehiclePose:
    """View, mirror (side view facing -x), box shift (fractions of the image) and scale."""

    view: str
    mirror: bool
    dx: float
    dy: float
    scale: float


def sample_vehicle_identities(
    *, seed: int, kind: str, domain: str, count: int
) -> list[VehicleAttributes]:
    """``count`` distinct vehicle identities of ``domain`` (unique ``key``s), deterministic."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    style = get_domain(domain)
    rng = derive_rng(seed, kind_code(kind), domain_index(domain), TAG_IDENTITY)
    w = style.vehicle_weights
    out: list[VehicleAttributes] = []
    seen: set[tuple] = set()
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"cannot draw {count} distinct vehicles in domain {domain}")
        body = pick(rng, w["body"])
        ic = pick_index(rng, [x for _, x in style.vehicle])
        colour = jitter(rng, style.vehicle[ic][0], 15)
        roof, tint, sticker = pick(rng, w["roof"]), pick(rng, w["tint"]), pick(rng, w["sticker"])
        isc = int(rng.integers(len(STICKER_PALETTE)))
        wheel = pick(rng, w["wheel"])
        key = (body, ic, roof, tint, sticker, isc if sticker != "none" else -1, wheel)
        if key in seen:
            continue
        seen.add(key)
        out.append(VehicleAttributes(body, colour, roof, tint, sticker,
                                     jitter(rng, STICKER_PALETTE[isc], 15), wheel, key))
    return out


def sample_vehicle_pose(
    rng: np.random.Generator, camera: CameraStyle, style: DomainStyle
) -> tuple[VehiclePose, Occluder | None]:
    """A view from the camera's distribution, a box error and an occluder."""
    view = VIEWS[pick_index(rng, camera.view_weights)]
    dx, dy = float(rng.normal(0.0, 0.04)), float(rng.normal(0.0, 0.04))
    scale = float(rng.uniform(0.88, 1.05))
    if rng.random() < style.crop_error:
        if rng.random() < 0.5:
            dx += float(rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.25))
        else:
            scale *= float(rng.uniform(1.15, 1.3))
    pose = VehiclePose(view, bool(rng.random() < 0.5), dx, dy, scale)
    return pose, sample_occluder(rng, camera, style)


def _wheel_side(pen: Pen, x: float, y: float, r: float, v: VehicleAttributes) -> None:
    pen.ellipse(x, y, r, r, (20, 20, 22))
    rim = 0.6 * r
    if v.wheel == "spokes":
        pen.ellipse(x, y, rim, rim, (90, 90, 95))
        for k in range(5):
            a = 2 * math.pi * k / 5
            pen.line([(x, y), (x + rim * math.cos(a), y + rim * math.sin(a))], (200, 200, 205),
                     0.12 * r)
    elif v.wheel == "solid":
        pen.ellipse(x, y, rim, rim, (55, 55, 60))
    elif v.wheel == "hubcap":
        pen.ellipse(x, y, 0.75 * r, 0.75 * r, (205, 205, 210))
        pen.ellipse(x, y, 0.2 * r, 0.2 * r, (120, 120, 125))
    else:
        pen.ellipse(x, y, rim, rim, v.sticker_colour)
        pen.ellipse(x, y, 0.25 * rim, 0.25 * rim, (30, 30, 30))


def _roof(pen: Pen, x0: float, x1: float, y: float, u: float, v: VehicleAttributes) -> None:
    if v.roof == "rack":
        pen.rect(x0, y - 0.05 * u, x1, y - 0.03 * u, (40, 40, 40))
        for x in (x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0)):
            pen.rect(x, y - 0.05 * u, x + 0.02 * u, y, (40, 40, 40))
    elif v.roof == "lightbar":
        mid, half = (x0 + x1) / 2, 0.12 * u
        pen.rect(mid - half, y - 0.05 * u, mid, y, (30, 80, 230))
        pen.rect(mid, y - 0.05 * u, mid + half, y, (240, 150, 20))
    elif v.roof == "box":
        draw = pen.draw
        a, b = sorted((pen.x(x0 + 0.15 * (x1 - x0)), pen.x(x1 - 0.15 * (x1 - x0))))
        draw.rounded_rectangle([a, y - 0.09 * u, b, y], radius=0.03 * u, fill=(35, 35, 40))


def _sticker(pen: Pen, x0: float, x1: float, y0: float, y1: float, v: VehicleAttributes) -> None:
    c = v.sticker_colour
    if v.sticker == "stripe":
        pen.rect(x0, y0 + 0.45 * (y1 - y0), x1, y0 + 0.6 * (y1 - y0), c)
    elif v.sticker == "logo":
        r = 0.25 * (y1 - y0)
        pen.ellipse((x0 + x1) / 2, (y0 + y1) / 2, r, r, c)
    elif v.sticker == "number":
        h, step = 0.5 * (y1 - y0), 0.08 * (x1 - x0)
        for k in range(3):
            x = (x0 + x1) / 2 + (k - 1) * step
            pen.rect(x - 0.025 * (x1 - x0), y0 + 0.25 * (y1 - y0), x + 0.025 * (x1 - x0),
                     y0 + 0.25 * (y1 - y0) + h, c)


def draw_vehicle(
    draw: ImageDraw.ImageDraw, v: VehicleAttributes, pose: VehiclePose, size: tuple[int, int],
    camera_scale: float = 1.0,
) -> None:
    """Draw vehicle ``v`` with ``pose`` on a canvas of ``size`` = (height, width) pixels."""
    h, w = size
    u = w * pose.scale * camera_scale  # reference length: the image width
    cx = w / 2 + pose.dx * w
    ground = h * 0.8 + pose.dy * h
    body, col = v.body, v.colour
    glass = TINTS[v.tint]
    dark = shade(col, 0.7)
    if pose.view == "side":
        pen = Pen(draw, cx, pose.mirror)
        length, height = (a * u for a in _BODY_SIDE[body])
        r = (0.1 if body in ("truck", "bus") else 0.085) * length
        x0, x1 = -length / 2, length / 2
        yb = ground - r * 0.7  # bottom of the body
        pen.ellipse(0.0, ground + 0.02 * u, length * 0.5, 0.03 * u, (25, 25, 28))  # shadow
        if body in ("sedan", "suv"):
            belt = yb - height * (0.55 if body == "sedan" else 0.5)
            top = yb - height
            pen.poly([(x0, yb), (x0, belt + 0.03 * u), (x0 + 0.04 * u, belt), (x1 - 0.05 * u, belt),
                      (x1, belt + 0.05 * u), (x1, yb)], col)
            if body == "sedan":
                cab = [(x0 + 0.22 * length, belt), (x0 + 0.32 * length, top),
                       (x1 - 0.33 * length, top), (x1 - 0.18 * length, belt)]
            else:
                cab = [(x0 + 0.02 * length, belt), (x0 + 0.05 * length, top),
                       (x1 - 0.3 * length, top), (x1 - 0.16 * length, belt)]
            pen.poly(cab, col)
            inset = 0.03 * u
            pen.poly([(cab[0][0] + inset * 1.5, belt - 0.01 * u), (cab[1][0] + inset, top + inset),
                      (cab[2][0] - inset, top + inset), (cab[3][0] - inset * 1.5, belt - 0.01 * u)],
                     glass)
            mid = (cab[1][0] + cab[2][0]) / 2
            pen.rect(mid - 0.012 * u, top, mid + 0.012 * u, belt, col)
            _roof(pen, cab[1][0], cab[2][0], top, u, v)
            _sticker(pen, x0 + 0.25 * length, x1 - 0.25 * length, belt, yb, v)
            pen.rect(x1 - 0.03 * u, belt + 0.02 * u, x1, belt + 0.06 * u, (250, 240, 200))
            pen.rect(x0, belt + 0.02 * u, x0 + 0.025 * u, belt + 0.06 * u, (200, 30, 30))
        elif body in ("van", "bus"):
            top = yb - height
            nose = 0.2 * length if body == "van" else 0.03 * length
            pen.poly([(x0, yb), (x0, top), (x1 - nose, top), (x1, top + 0.4 * height), (x1, yb)],
                     col)
            wy0, wy1 = top + 0.1 * height, top + 0.38 * height
            if body == "van":
                pen.poly([(x1 - nose + 0.02 * u, wy0), (x1 - 0.02 * u, top + 0.38 * height),
                          (x1 - nose, wy1)], glass)
                pen.rect(x1 - nose - 0.2 * length, wy0, x1 - nose - 0.03 * length, wy1, glass)
                _sticker(pen, x0 + 0.05 * length, x1 - nose - 0.25 * length, wy1 + 0.05 * u, yb, v)
            else:
                n = 6
                step = (length - 0.1 * u) / n
                for k in range(n):
                    pen.rect(x0 + 0.04 * u + k * step, wy0, x0 + 0.04 * u + (k + 0.8) * step, wy1,
                             glass)
                pen.rect(x1 - 0.08 * u, wy0, x1 - 0.02 * u, yb - 0.02 * u, shade(glass, 0.8))
                _sticker(pen, x0 + 0.1 * length, x1 - 0.15 * length, wy1 + 0.03 * u, yb, v)
            _roof(pen, x0 + 0.1 * length, x1 - nose, top, u, v)
        else:  # truck: cab + cargo box
            top = yb - height
            cab_x = x1 - 0.28 * length
            pen.rect(x0, top, cab_x - 0.02 * u, yb, shade(col, 0.85))
            pen.poly([(cab_x, yb), (cab_x, top + 0.2 * height), (x1 - 0.06 * length,
                      top + 0.2 * height), (x1, top + 0.5 * height), (x1, yb)], col)
            pen.rect(cab_x + 0.03 * u, top + 0.27 * height, x1 - 0.09 * length, top + 0.5 * height,
                     glass)
            _sticker(pen, x0 + 0.05 * length, cab_x - 0.05 * length, top + 0.1 * height, yb, v)
            _roof(pen, cab_x, x1 - 0.06 * length, top + 0.2 * height, u, v)
        for wx in (x0 + 0.2 * length, x1 - 0.2 * length):
            _wheel_side(pen, wx, ground - r, r, v)
        if body in ("truck", "bus"):
            _wheel_side(pen, x0 + 0.38 * length, ground - r, r, v)
        return

    # front / back views
    pen = Pen(draw, cx, pose.mirror)
    bw, bh = (a * u for a in _BODY_FRONT[body])
    half = bw / 2
    top = ground - bh
    belt = ground - bh * (0.5 if body in ("sedan", "suv") else 0.45)
    pen.ellipse(0.0, ground, half * 1.05, 0.03 * u, (25, 25, 28))
    for sx in (-half * 0.85, half * 0.85):
        pen.rect(sx - 0.05 * u, ground - 0.09 * u, sx + 0.05 * u, ground, (20, 20, 22))
    pen.rect(-half, belt, half, ground - 0.05 * u, col)
    roof_half = half * (0.72 if body == "sedan" else 0.88 if body == "suv" else 0.97)
    pen.poly([(-half, belt), (-roof_half, top), (roof_half, top), (half, belt)], col)
    gi = 0.04 * u
    if pose.view == "front":
        pen.poly([(-half + gi, belt - 0.01 * u), (-roof_half + gi, top + gi),
                  (roof_half - gi, top + gi), (half - gi, belt - 0.01 * u)], glass)
        pen.rect(-half * 0.45, belt + 0.06 * u, half * 0.45, belt + 0.14 * u, dark)  # grille
        for sx in (-half * 0.75, half * 0.75):
            pen.ellipse(sx, belt + 0.08 * u, 0.07 * u, 0.035 * u, (250, 245, 215))
        if v.sticker == "logo":
            pen.ellipse(0.0, belt + 0.03 * u, 0.03 * u, 0.02 * u, v.sticker_colour)
        elif v.sticker == "stripe":
            pen.rect(-0.03 * u, belt, 0.03 * u, ground - 0.06 * u, v.sticker_colour)
    else:
        win_bottom = top + (belt - top) * (0.75 if body in ("truck",) else 0.9)
        if body == "truck":
            pen.rect(-half, top, half, ground - 0.05 * u, shade(col, 0.85))
            pen.rect(-0.01 * u, top + 0.02 * u, 0.01 * u, ground - 0.08 * u, dark)
        else:
            pen.poly([(-half + gi, win_bottom), (-roof_half + gi, top + gi),
                      (roof_half - gi, top + gi), (half - gi, win_bottom)], glass)
        for sx in (-half * 0.78, half * 0.78):
            pen.rect(sx - 0.06 * u, belt + 0.04 * u, sx + 0.06 * u, belt + 0.09 * u, (190, 25, 25))
        pen.rect(-0.07 * u, belt + 0.1 * u, 0.07 * u, belt + 0.15 * u, (235, 235, 225))  # plate
        if v.sticker != "none":
            _sticker(pen, -half * 0.6, half * 0.2, belt + 0.01 * u, belt + 0.12 * u, v)
    pen.rect(-half, ground - 0.08 * u, half, ground - 0.05 * u, (40, 40, 45))  # bumper
    _roof(pen, -roof_half, roof_half, top, u, v)


def render_vehicle(
    v: VehicleAttributes,
    camera: CameraStyle,
    background: Image.Image,
    *,
    pose: VehiclePose,
    occluder: Occluder | None,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """One camera image of vehicle ``v``: uint8 array (height, width, 3) for ``size`` (h, w)."""
    h, w = size
    big = (h * SUPERSAMPLE, w * SUPERSAMPLE)
    canvas = crop_background(background, big, rng)
    draw = ImageDraw.Draw(canvas)
    draw_vehicle(draw, v, pose, big, camera.scale)
    if occluder is not None:
        draw_occluder(draw, occluder, big)
    return apply_camera(canvas.resize((w, h), Image.BILINEAR, reducing_gap=None), camera, rng)
