"""Procedural multi-domain re-ID data: persons, vehicles and video tracklets (numpy + Pillow).

A small procedural PersonX / VehicleX: identities are combinations of attributes, cameras have
their own background, light, optics and viewpoints, and domains (``A``, ``B``, ``C``, ``D``) are
distributions over all of them with real gaps between them. Datasets are written in the
Market-1501 (persons), VeRi-776 (vehicles) and MARS (video) layouts, so the regular parsers read
them. Default sizes: persons 128x64, vehicles 128x128, video frames 128x64 (height x width).

Example:
    >>> from reid.data.synthetic import make_spec, write_dataset
    >>> spec = make_spec("person", domain="B", ids=20, cams=3, seed=0)
    >>> write_dataset("/tmp/synthetic_person_b", spec)  # doctest: +SKIP
"""
from reid.data.synthetic.camera import CameraStyle, apply_camera, render_background, sample_camera
from reid.data.synthetic.domains import DOMAINS, DomainStyle, domain_index, get_domain
from reid.data.synthetic.generate import (
    DEFAULTS,
    MARKER,
    Renderer,
    Shot,
    SyntheticSpec,
    encode_jpeg,
    estimate_images,
    make_spec,
    pid_of,
    plan_shots,
    preview_grid,
    read_marker,
    write_dataset,
)
from reid.data.synthetic.person import (
    PersonAttributes,
    PersonPose,
    render_person,
    sample_person_identities,
)
from reid.data.synthetic.vehicle import (
    VehicleAttributes,
    render_vehicle,
    sample_vehicle_identities,
)

__all__ = [
    "CameraStyle", "DEFAULTS", "DOMAINS", "DomainStyle", "MARKER", "PersonAttributes",
    "PersonPose", "Renderer", "Shot", "SyntheticSpec", "VehicleAttributes", "apply_camera",
    "domain_index", "encode_jpeg", "estimate_images", "get_domain", "make_spec", "pid_of",
    "plan_shots", "preview_grid", "read_marker", "render_background", "render_person",
    "render_vehicle", "sample_camera", "sample_person_identities", "sample_vehicle_identities",
    "write_dataset",
]
