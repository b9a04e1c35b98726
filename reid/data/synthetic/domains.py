"""Domains of the synthetic generator: distributions over attributes, palettes and cameras.

A domain is what makes a re-ID benchmark a place: who walks or drives there (clothing and
vehicle palettes, attribute frequencies) and how it is filmed (backgrounds, light level, colour
cast, contrast, blur, noise, resolution). Two domains share no identity and differ in both, so
a model trained on one loses accuracy on another (a real domain gap, as Market -> Duke).

- ``A``: bright indoor mall; saturated clothes, warm-neutral light, sharp, little noise.
- ``B``: dim outdoor winter street; dark muted clothes, cool light, blur, strong noise.
- ``C``: summer campus filmed by old CCTV; pastel clothes, green cast, high contrast, low res.
- ``D``: night street under sodium lamps; orange cast, very dark, noisy, low resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

from reid.data.synthetic.common import RGB

Range = tuple[float, float]


@dataclass(frozen=True)
class DomainStyle:
    """Distributions of one domain (ranges are uniform ``(low, high)``).

    Attributes:
        clothes, hair, skin, vehicle: palettes ``((r, g, b), weight)``, colours 0-255.
        backgrounds: background texture kinds drawn per camera (see ``camera.BACKGROUNDS``).
        bg_colours: background palette (colours 0-255).
        gain: illumination gain (multiplies linear intensity).
        temperature: colour temperature, -1 (blue) .. 1 (orange); scales red up and blue down.
        tint: green (+) / magenta (-) cast.
        contrast: contrast factor about mid-grey.
        saturation: saturation factor (0 = grey).
        blur: Gaussian blur radius at output resolution, pixels.
        noise: std of additive Gaussian noise, 0-255 units.
        res_loss: scale of the down-sampling before up-sampling back (1 = none).
        occlusion: probability that an image has an occluder.
        crop_error: probability of a badly cut detector box.
        person_weights, vehicle_weights: categorical attribute frequencies.
    """

    name: str
    description: str
    clothes: tuple[tuple[RGB, float], ...]
    hair: tuple[tuple[RGB, float], ...]
    skin: tuple[tuple[RGB, float], ...]
    vehicle: tuple[tuple[RGB, float], ...]
    backgrounds: tuple[str, ...]
    bg_colours: tuple[RGB, ...]
    gain: Range
    temperature: Range
    tint: Range
    contrast: Range
    saturation: Range
    blur: Range
    noise: Range
    res_loss: Range
    occlusion: float
    crop_error: float
    person_weights: dict[str, dict[str, float]]
    vehicle_weights: dict[str, dict[str, float]]


_SKIN_ALL = (
    ((245, 215, 190), 1.0),
    ((225, 185, 150), 1.0),
    ((190, 140, 105), 1.0),
    ((140, 95, 65), 0.8),
    ((95, 65, 45), 0.6),
)
_HAIR_ALL = (
    ((25, 20, 20), 3.0),
    ((70, 45, 30), 2.0),
    ((130, 90, 50), 1.0),
    ((200, 170, 110), 0.7),
    ((150, 150, 150), 0.5),
    ((160, 60, 40), 0.4),
)


def _person_weights(**over: dict[str, float]) -> dict[str, dict[str, float]]:
    base = {
        "pattern": {"plain": 0.45, "stripes": 0.2, "checks": 0.15, "logo": 0.2},
        "sleeve": {"long": 0.5, "short": 0.5},
        "lower": {"trousers": 0.6, "shorts": 0.2, "skirt": 0.2},
        "hair_length": {"short": 0.6, "long": 0.4},
        "carried": {"none": 0.4, "backpack": 0.25, "handbag": 0.15, "shoulder_bag": 0.2},
    }
    base.update(over)
    return base


def _vehicle_weights(**over: dict[str, float]) -> dict[str, dict[str, float]]:
    base = {
        "body": {"sedan": 0.4, "suv": 0.25, "van": 0.15, "truck": 0.12, "bus": 0.08},
        "roof": {"none": 0.6, "rack": 0.15, "lightbar": 0.1, "box": 0.15},
        "tint": {"clear": 0.5, "dark": 0.5},
        "sticker": {"none": 0.5, "stripe": 0.2, "logo": 0.15, "number": 0.15},
        "wheel": {"spokes": 0.35, "solid": 0.3, "hubcap": 0.25, "coloured": 0.1},
    }
    base.update(over)
    return base


DOMAINS: dict[str, DomainStyle] = {
    "A": DomainStyle(
        name="A",
        description="bright indoor mall",
        clothes=(
            ((235, 235, 230), 2.0), ((30, 30, 35), 2.5), ((200, 40, 45), 1.0),
            ((40, 80, 200), 1.5), ((235, 200, 40), 0.7), ((50, 160, 70), 0.7),
            ((230, 120, 170), 0.6), ((240, 130, 40), 0.5), ((120, 180, 230), 1.0),
            ((130, 130, 135), 1.5),
        ),
        hair=_HAIR_ALL,
        skin=_SKIN_ALL,
        vehicle=(
            ((240, 240, 240), 3.0), ((25, 25, 30), 2.5), ((180, 185, 190), 2.0),
            ((190, 30, 35), 1.0), ((30, 70, 170), 1.0), ((110, 110, 115), 1.5),
        ),
        backgrounds=("tiles", "panels", "wall"),
        bg_colours=(
            (225, 215, 195), (240, 240, 235), (200, 200, 205), (170, 130, 90),
            (215, 190, 150), (180, 195, 210),
        ),
        gain=(0.88, 1.08),
        temperature=(-0.05, 0.12),
        tint=(-0.02, 0.02),
        contrast=(0.95, 1.15),
        saturation=(1.0, 1.2),
        blur=(0.0, 0.5),
        noise=(1.0, 4.0),
        res_loss=(0.8, 1.0),
        occlusion=0.25,
        crop_error=0.15,
        person_weights=_person_weights(),
        vehicle_weights=_vehicle_weights(),
    ),
    "B": DomainStyle(
        name="B",
        description="dim outdoor winter street",
        clothes=(
            ((30, 40, 80), 2.0), ((90, 95, 50), 1.0), ((100, 70, 45), 1.2),
            ((55, 55, 60), 2.5), ((110, 30, 40), 0.8), ((170, 150, 110), 1.0),
            ((35, 70, 45), 0.8), ((200, 185, 160), 0.8), ((15, 15, 18), 2.0),
            ((90, 105, 125), 1.2),
        ),
        hair=_HAIR_ALL,
        skin=_SKIN_ALL,
        vehicle=(
            ((35, 35, 40), 2.5), ((90, 90, 95), 2.0), ((60, 30, 30), 1.0),
            ((40, 55, 70), 1.5), ((160, 160, 155), 1.5), ((85, 90, 60), 0.8),
        ),
        backgrounds=("grass", "asphalt", "brick", "foliage"),
        bg_colours=(
            (60, 80, 50), (90, 90, 95), (120, 60, 45), (45, 60, 40), (110, 105, 95),
            (70, 70, 80),
        ),
        gain=(0.55, 0.8),
        temperature=(-0.35, -0.08),
        tint=(-0.03, 0.03),
        contrast=(0.7, 0.9),
        saturation=(0.6, 0.85),
        blur=(0.5, 1.2),
        noise=(8.0, 16.0),
        res_loss=(0.45, 0.75),
        occlusion=0.35,
        crop_error=0.25,
        person_weights=_person_weights(
            sleeve={"long": 0.9, "short": 0.1},
            lower={"trousers": 0.85, "shorts": 0.03, "skirt": 0.12},
            pattern={"plain": 0.6, "stripes": 0.1, "checks": 0.2, "logo": 0.1},
        ),
        vehicle_weights=_vehicle_weights(
            body={"sedan": 0.25, "suv": 0.2, "van": 0.25, "truck": 0.22, "bus": 0.08}
        ),
    ),
    "C": DomainStyle(
        name="C",
        description="summer campus, old CCTV",
        clothes=(
            ((150, 220, 190), 1.0), ((180, 160, 220), 1.0), ((245, 190, 160), 1.0),
            ((160, 200, 240), 1.2), ((240, 235, 210), 1.5), ((240, 120, 110), 0.8),
            ((40, 140, 150), 0.8), ((210, 170, 60), 0.7), ((70, 100, 150), 1.5),
            ((110, 60, 140), 0.6),
        ),
        hair=_HAIR_ALL,
        skin=_SKIN_ALL,
        vehicle=(
            ((230, 200, 40), 1.5), ((40, 120, 70), 1.0), ((240, 240, 235), 2.0),
            ((150, 30, 30), 1.0), ((60, 110, 170), 1.2), ((200, 200, 195), 1.5),
        ),
        backgrounds=("brick", "paving", "panels"),
        bg_colours=(
            (210, 190, 150), (190, 175, 150), (160, 110, 90), (220, 215, 200), (140, 150, 130),
            (200, 160, 120),
        ),
        gain=(0.85, 1.05),
        temperature=(-0.15, 0.15),
        tint=(0.06, 0.14),
        contrast=(1.1, 1.35),
        saturation=(0.45, 0.75),
        blur=(0.3, 0.8),
        noise=(4.0, 8.0),
        res_loss=(0.55, 0.85),
        occlusion=0.3,
        crop_error=0.2,
        person_weights=_person_weights(
            sleeve={"long": 0.3, "short": 0.7},
            lower={"trousers": 0.35, "shorts": 0.35, "skirt": 0.3},
            carried={"none": 0.25, "backpack": 0.45, "handbag": 0.1, "shoulder_bag": 0.2},
        ),
        vehicle_weights=_vehicle_weights(
            body={"sedan": 0.3, "suv": 0.2, "van": 0.1, "truck": 0.1, "bus": 0.3}
        ),
    ),
    "D": DomainStyle(
        name="D",
        description="night street under sodium lamps",
        clothes=(
            ((20, 20, 25), 3.0), ((120, 25, 30), 1.0), ((230, 230, 225), 1.5),
            ((60, 200, 90), 0.5), ((40, 60, 130), 1.5), ((150, 150, 150), 1.5),
            ((200, 160, 40), 0.7), ((90, 60, 40), 1.0),
        ),
        hair=_HAIR_ALL,
        skin=_SKIN_ALL,
        vehicle=(
            ((25, 25, 30), 3.0), ((220, 220, 220), 2.0), ((150, 150, 155), 1.5),
            ((140, 20, 25), 1.0), ((20, 40, 100), 1.0),
        ),
        backgrounds=("asphalt", "wall", "panels"),
        bg_colours=(
            (60, 60, 65), (40, 40, 50), (90, 80, 70), (30, 35, 45), (110, 100, 80),
        ),
        gain=(0.5, 0.75),
        temperature=(0.3, 0.6),
        tint=(-0.02, 0.04),
        contrast=(0.8, 1.0),
        saturation=(0.5, 0.7),
        blur=(0.6, 1.1),
        noise=(10.0, 18.0),
        res_loss=(0.45, 0.65),
        occlusion=0.3,
        crop_error=0.25,
        person_weights=_person_weights(),
        vehicle_weights=_vehicle_weights(),
    ),
}


def get_domain(name: str) -> DomainStyle:
    """The ``DomainStyle`` called ``name`` (case-insensitive: "A", "b", ...)."""
    key = str(name).upper()
    if key not in DOMAINS:
        raise ValueError(f"unknown synthetic domain '{name}'; available: {sorted(DOMAINS)}")
    return DOMAINS[key]


def domain_index(name: str) -> int:
    """0-based position of domain ``name`` (A=0, B=1, ...); encodes the domain in pids and seeds."""
    return sorted(DOMAINS).index(get_domain(name).name)
