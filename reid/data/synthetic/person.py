"""Procedural pedestrians: attribute identities and a PIL renderer with views and walking pose.

An identity is a combination of clothing and body attributes (``PersonAttributes``); each
attribute is shared by many identities of a domain, so no single one identifies a person.
``render_person`` draws an identity from a viewpoint (front / back / side: a backpack shows from
the back, a logo from the front) at a walking phase on a camera background, with detector-style
box errors and occluders, at twice the output resolution, then resizes and films it
(``camera.apply_camera``).
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

SUPERSAMPLE = 2  # drawing resolution / output resolution
SHOE_PALETTE: tuple[RGB, ...] = (
    (20, 20, 20), (235, 235, 235), (110, 70, 40), (120, 120, 125), (40, 50, 120), (170, 40, 40),
)
LOGO_SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class PersonAttributes:
    """One synthetic identity. Colours are RGB 0-255; ``height``/``width`` scale the body."""

    upper_colour: RGB
    upper_pattern: str  # plain / stripes / checks / logo
    pattern_colour: RGB
    logo_shape: str
    sleeve: str  # long / short
    lower_type: str  # trousers / shorts / skirt
    lower_colour: RGB
    shoe_colour: RGB
    hair_colour: RGB
    hair_length: str  # short / long
    skin: RGB
    height: float
    width: float
    carried: str  # none / backpack / handbag / shoulder_bag
    carried_colour: RGB
    key: tuple  # discrete description (palette indices, categories, size bins), unique per domain


@dataclass(frozen=True)
class PersonPose:
    """Where and how a person appears in one image.

    ``dx``/``dy`` shift the body centre by fractions of the image width/height (detector box
    error), ``scale`` multiplies its height, ``phase`` is the walking phase in radians and
    ``mirror`` faces the side view to -x (and swaps left/right in the other views).
    """

    view: str
    phase: float
    mirror: bool
    dx: float
    dy: float
    scale: float


@dataclass(frozen=True)
class Occluder:
    """A foreground object: ``kind`` bottom (bench, car bonnet) / side (pole, wall edge) /
    pedestrian (part of another person); position and size as fractions of the image."""

    kind: str
    x: float
    y: float
    size: float
    colour: RGB
    colour2: RGB


def sample_person_identities(
    *, seed: int, kind: str, domain: str, count: int
) -> list[PersonAttributes]:
    """``count`` distinct identities of ``domain`` (their ``key``s are unique), deterministic.

    Identity ``i`` is the same for every ``count > i``: callers take train ids first and test
    ids after them, so splits never share an identity.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    style = get_domain(domain)
    rng = derive_rng(seed, kind_code(kind), domain_index(domain), TAG_IDENTITY)
    out: list[PersonAttributes] = []
    seen: set[tuple] = set()
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"cannot draw {count} distinct identities in domain {domain}")
        person = _sample_person(rng, style)
        if person.key not in seen:
            seen.add(person.key)
            out.append(person)
    return out


def _palette_colour(rng: np.random.Generator, palette, amount: float) -> tuple[int, RGB]:
    i = pick_index(rng, [w for _, w in palette])
    return i, jitter(rng, palette[i][0], amount)


def _sample_person(rng: np.random.Generator, style: DomainStyle) -> PersonAttributes:
    w = style.person_weights
    iu, upper = _palette_colour(rng, style.clothes, 18)
    pattern = pick(rng, w["pattern"])
    ip, pcol = _palette_colour(rng, style.clothes, 18)
    if ip == iu:
        ip = (ip + 1) % len(style.clothes)
        pcol = jitter(rng, style.clothes[ip][0], 18)
    logo = LOGO_SHAPES[int(rng.integers(len(LOGO_SHAPES)))]
    sleeve = pick(rng, w["sleeve"])
    lower_type = pick(rng, w["lower"])
    il, lower = _palette_colour(rng, style.clothes, 18)
    ishoe = int(rng.integers(len(SHOE_PALETTE)))
    ih, hair = _palette_colour(rng, style.hair, 12)
    hair_length = pick(rng, w["hair_length"])
    isk, skin = _palette_colour(rng, style.skin, 10)
    height = float(rng.uniform(0.88, 1.05))
    width = float(rng.uniform(0.85, 1.2))
    carried = pick(rng, w["carried"])
    ic, ccol = _palette_colour(rng, style.clothes, 25)
    key = (
        iu, pattern, ip if pattern != "plain" else -1, logo if pattern == "logo" else "",
        sleeve, lower_type, il, ishoe, ih, hair_length, isk, round(height * 10),
        round(width * 5), carried, ic if carried != "none" else -1,
    )
    return PersonAttributes(
        upper_colour=upper, upper_pattern=pattern, pattern_colour=pcol, logo_shape=logo,
        sleeve=sleeve, lower_type=lower_type, lower_colour=lower,
        shoe_colour=jitter(rng, SHOE_PALETTE[ishoe], 15), hair_colour=hair,
        hair_length=hair_length, skin=skin, height=height, width=width, carried=carried,
        carried_colour=ccol, key=key,
    )


def sample_pose(
    rng: np.random.Generator, camera: CameraStyle, style: DomainStyle
) -> tuple[PersonPose, Occluder | None]:
    """A viewpoint (from the camera's distribution), walking phase, box error and occluder."""
    view = VIEWS[pick_index(rng, camera.view_weights)]
    dx, dy = float(rng.normal(0.0, 0.04)), float(rng.normal(0.0, 0.025))
    scale = float(rng.uniform(0.92, 1.06))
    if rng.random() < style.crop_error:
        err = int(rng.integers(5))
        if err == 0:
            dx += float(rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.28))
        elif err == 1:
            dy -= float(rng.uniform(0.08, 0.16))  # head cut
        elif err == 2:
            dy += float(rng.uniform(0.1, 0.2))  # feet cut
        elif err == 3:
            scale *= float(rng.uniform(1.2, 1.35))  # box too tight
        else:
            scale *= float(rng.uniform(0.68, 0.8))  # box too loose
    pose = PersonPose(
        view=view,
        phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        mirror=bool(rng.random() < 0.5),
        dx=dx,
        dy=dy,
        scale=scale,
    )
    return pose, sample_occluder(rng, camera, style)


def sample_occluder(
    rng: np.random.Generator, camera: CameraStyle, style: DomainStyle
) -> Occluder | None:
    """An occluder with probability ``style.occlusion``, else None."""
    if rng.random() >= style.occlusion:
        return None
    kind = ("bottom", "side", "pedestrian")[int(rng.integers(3))]
    if kind == "pedestrian":
        colour = jitter(rng, style.clothes[pick_index(rng, [w for _, w in style.clothes])][0], 20)
        colour2 = jitter(rng, style.clothes[pick_index(rng, [w for _, w in style.clothes])][0], 20)
    else:
        colour = jitter(rng, camera.bg_colours[int(rng.integers(3))], 30)
        colour2 = shade(colour, 0.7)
    return Occluder(
        kind=kind,
        x=float(rng.choice([-1.0, 1.0])),
        y=float(rng.uniform(0.0, 1.0)),
        size=float(rng.uniform(0.2, 0.4)),
        colour=colour,
        colour2=colour2,
    )


def draw_occluder(draw: ImageDraw.ImageDraw, occ: Occluder, size: tuple[int, int]) -> None:
    """Draw ``occ`` on a canvas of ``size`` = (height, width) pixels."""
    h, w = size
    if occ.kind == "bottom":
        top = h * (1.0 - occ.size)
        draw.rectangle([0, top, w, h], fill=occ.colour)
        draw.rectangle([0, top, w, top + h * 0.03], fill=occ.colour2)
    elif occ.kind == "side":
        bw = w * occ.size * 0.8
        x0 = 0 if occ.x < 0 else w - bw
        draw.rectangle([x0, 0, x0 + bw, h], fill=occ.colour)
        draw.rectangle([x0 + bw * 0.4, 0, x0 + bw * 0.55, h], fill=occ.colour2)
    else:
        bw = w * (occ.size + 0.15)
        cx = -bw * 0.15 if occ.x < 0 else w + bw * 0.15
        y0 = h * (0.15 + 0.2 * occ.y)
        head = [cx - bw * 0.35, y0 - h * 0.07, cx + bw * 0.35, y0 + h * 0.07]
        draw.ellipse(head, fill=occ.colour2)
        draw.rounded_rectangle(
            [cx - bw / 2, y0 + h * 0.07, cx + bw / 2, h * 1.1], radius=bw / 4, fill=occ.colour
        )


def draw_person(
    draw: ImageDraw.ImageDraw, p: PersonAttributes, pose: PersonPose, size: tuple[int, int],
    camera_scale: float = 1.0,
) -> None:
    """Draw person ``p`` with ``pose`` on a canvas of ``size`` = (height, width) pixels."""
    h, w = size
    body_h = 0.84 * h * p.height * pose.scale * camera_scale
    top = (h - body_h) / 2 + pose.dy * h
    cx = w / 2 + pose.dx * w
    view = pose.view
    # In the back view the person's right side is on the image's right: mirror the layout.
    mirror = pose.mirror if view == "side" else (view == "back") != pose.mirror
    pen = Pen(draw, cx, mirror)
    u = body_h / 8.0
    side = view == "side"
    s = math.sin(pose.phase)
    yh = top + 0.55 * u  # head centre
    ys = top + 1.3 * u  # shoulders
    yw = top + 3.7 * u  # waist
    yhip = top + 4.0 * u
    ya = top + 7.6 * u  # ankles
    sw = (0.5 if side else 0.95) * u * p.width
    ww = (0.45 if side else 0.75) * u * p.width
    skin, upper, lower = p.skin, p.upper_colour, p.lower_colour
    leg_w0, leg_w1 = 0.62 * u * p.width, 0.36 * u
    arm_w0, arm_w1 = 0.4 * u, 0.3 * u
    arm_len = 2.9 * u
    lower_is_leg = p.lower_type == "trousers"

    # Legs and feet: (hip, foot) per leg, far leg first.
    if side:
        leg_len = ya - yhip
        legs = []
        for sign in (-1.0, 1.0):
            th = 0.42 * s * sign
            legs.append(((0.0, yhip), (leg_len * math.sin(th), yhip + leg_len * math.cos(th))))
    else:
        hx = 0.4 * u * p.width
        legs = [
            ((-hx, yhip), (-hx * 0.9, ya - 0.25 * u * max(0.0, s))),
            ((hx, yhip), (hx * 0.9, ya - 0.25 * u * max(0.0, -s))),
        ]
    # Arms: (shoulder, hand), far first.
    if side:
        arms = []
        for sign in (1.0, -1.0):
            th = 0.38 * s * sign
            sh = (0.0, ys + 0.2 * u)
            arms.append((sh, (sh[0] + arm_len * math.sin(th), sh[1] + arm_len * math.cos(th))))
    else:
        ax = sw - 0.15 * u
        arms = [
            ((-ax, ys + 0.2 * u), (-(ax + 0.12 * u), ys + 0.2 * u + arm_len - 0.2 * u * abs(s))),
            ((ax, ys + 0.2 * u), (ax + 0.12 * u, ys + 0.2 * u + arm_len - 0.2 * u * abs(s))),
        ]

    def draw_leg(hip, foot, dim: float) -> None:
        base = lower if lower_is_leg else skin
        pen.limb(hip, foot, leg_w0, leg_w1, shade(base, dim))
        if p.lower_type == "shorts":
            knee = (hip[0] + 0.38 * (foot[0] - hip[0]), hip[1] + 0.38 * (foot[1] - hip[1]))
            pen.limb(hip, knee, leg_w0 * 1.15, leg_w0 * 1.05, shade(lower, dim))
        fx = foot[0] + (0.15 * u if side else 0.0)
        pen.ellipse(fx, foot[1] + 0.1 * u, (0.4 if side else 0.27) * u, 0.17 * u,
                    shade(p.shoe_colour, dim))

    def draw_arm(sh, hand, dim: float) -> None:
        if p.sleeve == "long":
            pen.limb(sh, hand, arm_w0, arm_w1, shade(upper, dim))
        else:
            pen.limb(sh, hand, arm_w0 * 0.85, arm_w1, shade(skin, dim))
            el = (sh[0] + 0.4 * (hand[0] - sh[0]), sh[1] + 0.4 * (hand[1] - sh[1]))
            pen.limb(sh, el, arm_w0 * 1.15, arm_w0 * 1.05, shade(upper, dim))
        pen.ellipse(hand[0], hand[1], 0.19 * u, 0.21 * u, shade(skin, dim))

    def draw_hair_back() -> None:  # long hair falling behind the shoulders / down the back
        if p.hair_length != "long":
            return
        if side:
            pen.rect(-0.45 * u, yh - 0.2 * u, -0.05 * u, ys + 0.9 * u, p.hair_colour)
        else:
            pen.rect(-0.45 * u, yh - 0.2 * u, 0.45 * u, ys + 1.0 * u, p.hair_colour)

    def draw_head() -> None:
        pen.rect(-0.15 * u, yh, 0.15 * u, ys + 0.1 * u, skin)  # neck
        if view == "back":
            pen.ellipse(0.0, yh, 0.37 * u, 0.5 * u, skin)
            pen.ellipse(0.0, yh - 0.08 * u, 0.4 * u, 0.47 * u, p.hair_colour)
        elif view == "front":
            pen.ellipse(0.0, yh - 0.12 * u, 0.4 * u, 0.42 * u, p.hair_colour)
            pen.ellipse(0.0, yh + 0.08 * u, 0.33 * u, 0.42 * u, skin)
            for ex in (-0.13 * u, 0.13 * u):
                pen.ellipse(ex, yh + 0.02 * u, 0.05 * u, 0.05 * u, (30, 25, 25))
        else:
            pen.ellipse(0.05 * u, yh, 0.4 * u, 0.5 * u, skin)
            pen.ellipse(-0.1 * u, yh - 0.12 * u, 0.38 * u, 0.4 * u, p.hair_colour)
            pen.ellipse(0.36 * u, yh + 0.02 * u, 0.05 * u, 0.05 * u, (30, 25, 25))

    def torso_half(y: float) -> float:
        return sw + (ww - sw) * (y - ys) / (yw - ys)

    def draw_torso() -> None:
        pen.poly([(-sw, ys), (sw, ys), (ww, yw + 0.1 * u), (-ww, yw + 0.1 * u)], upper)
        pc = p.pattern_colour
        if p.upper_pattern in ("stripes", "checks"):
            y = ys + 0.3 * u
            while y + 0.2 * u < yw:
                a, b = torso_half(y), torso_half(y + 0.2 * u)
                pen.poly([(-a, y), (a, y), (b, y + 0.2 * u), (-b, y + 0.2 * u)], pc)
                y += 0.5 * u
        if p.upper_pattern == "checks":
            lim = ww - 0.1 * u
            x = -lim
            while x + 0.16 * u <= lim:
                pen.rect(x, ys, x + 0.16 * u, yw, pc)
                x += 0.45 * u
        if p.upper_pattern == "logo" and view == "front":
            ly, r = ys + 0.95 * u, 0.33 * u
            if p.logo_shape == "circle":
                pen.ellipse(0.0, ly, r, r, pc)
            elif p.logo_shape == "square":
                pen.rect(-r, ly - r, r, ly + r, pc)
            else:
                pen.poly([(0.0, ly - r), (r, ly + r), (-r, ly + r)], pc)

    def draw_lower() -> None:
        if p.lower_type == "skirt":
            flare = 1.5 if not side else 1.7
            pen.poly([(-ww, yw), (ww, yw), (ww * flare, yhip + 1.9 * u),
                      (-ww * flare, yhip + 1.9 * u)], lower)
        else:
            pen.poly([(-ww, yw), (ww, yw), (ww * 1.05, yhip + 0.45 * u),
                      (-ww * 1.05, yhip + 0.45 * u)], lower)

    cc = p.carried_colour

    def draw_backpack() -> None:
        if p.carried != "backpack":
            return
        if view == "back":
            bw = 0.7 * u * p.width
            draw.rounded_rectangle(
                [pen.cx - bw, ys + 0.25 * u, pen.cx + bw, ys + 2.4 * u], radius=0.25 * u, fill=cc
            )
            pen.rect(-bw * 0.7, ys + 1.5 * u, bw * 0.7, ys + 2.1 * u, shade(cc, 0.75))
        elif view == "front":
            for sx in (-0.5 * u, 0.5 * u):
                pen.limb((sx, ys), (sx * 1.1, ys + 1.6 * u), 0.16 * u, 0.16 * u, cc)
        else:
            pen.rect(-sw - 0.55 * u, ys + 0.25 * u, -sw + 0.1 * u, ys + 2.3 * u, cc)
            pen.limb((0.0, ys), (-sw, ys + 0.6 * u), 0.14 * u, 0.14 * u, cc)

    def draw_shoulder_bag() -> None:
        if p.carried != "shoulder_bag":
            return
        if side:
            pen.limb((0.0, ys), (0.1 * u, yw - 0.2 * u), 0.12 * u, 0.12 * u, shade(cc, 0.8))
            pen.rect(-0.05 * u, yw - 0.3 * u, 0.45 * u, yw + 0.45 * u, cc)
        else:
            pen.limb((-0.55 * u, ys), (ww, yw - 0.2 * u), 0.12 * u, 0.12 * u, shade(cc, 0.8))
            pen.rect(ww - 0.1 * u, yw - 0.35 * u, ww + 0.5 * u, yw + 0.45 * u, cc)

    def draw_handbag(hand) -> None:
        if p.carried != "handbag":
            return
        hx, hy = hand
        pen.line([(hx - 0.15 * u, hy + 0.3 * u), (hx, hy), (hx + 0.15 * u, hy + 0.3 * u)],
                 shade(cc, 0.7), 0.08 * u)
        pen.rect(hx - 0.32 * u, hy + 0.25 * u, hx + 0.32 * u, hy + 0.85 * u, cc)

    far_dim = 0.75
    if side:
        draw_arm(*arms[0], far_dim)
        draw_leg(*legs[0], far_dim)
        draw_leg(*legs[1], 1.0)
        draw_lower()
        draw_hair_back()
        draw_torso()
        draw_backpack()
        draw_shoulder_bag()
        draw_head()
        draw_arm(*arms[1], 1.0)
        draw_handbag(arms[1][1])
    elif view == "front":
        draw_hair_back()
        for leg in legs:
            draw_leg(*leg, 1.0)
        draw_lower()
        draw_torso()
        draw_backpack()
        draw_shoulder_bag()
        for arm in arms:
            draw_arm(*arm, 1.0)
        draw_handbag(arms[1][1])
        draw_head()
    else:
        for leg in legs:
            draw_leg(*leg, 1.0)
        draw_lower()
        draw_torso()
        draw_shoulder_bag()
        for arm in arms:
            draw_arm(*arm, 1.0)
        draw_handbag(arms[1][1])
        draw_head()
        draw_hair_back()
        draw_backpack()


def render_person(
    p: PersonAttributes,
    camera: CameraStyle,
    background: Image.Image,
    *,
    pose: PersonPose,
    occluder: Occluder | None,
    size: tuple[int, int],
    rng: np.random.Generator,
    background_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One camera image of person ``p``: uint8 array (height, width, 3) for ``size`` (h, w).

    ``background`` is the camera's texture (``camera.render_background``) at ``SUPERSAMPLE``
    times the output size or larger; ``background_rng`` (default ``rng``) draws the background
    window (a tracklet keeps one), ``rng`` the illumination jitter and the noise.
    """
    h, w = size
    big = (h * SUPERSAMPLE, w * SUPERSAMPLE)
    canvas = crop_background(background, big, rng if background_rng is None else background_rng)
    draw = ImageDraw.Draw(canvas)
    draw_person(draw, p, pose, big, camera.scale)
    if occluder is not None:
        draw_occluder(draw, occluder, big)
    return apply_camera(canvas.resize((w, h), Image.BILINEAR, reducing_gap=None), camera, rng)
