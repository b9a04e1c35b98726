"""Configuration: yacs defaults, ``_BASE_`` inheritance and command-line overrides.

Example:
    >>> from reid.config import load_cfg
    >>> cfg = load_cfg("configs/demo/usl_synthetic.yaml", ["SOLVER.MAX_EPOCHS", "2"])
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode

from reid.config.defaults import _C

__all__ = ["CfgNode", "get_cfg", "load_cfg", "load_yaml_with_base", "save_cfg"]

BASE_KEY = "_BASE_"


def get_cfg() -> CfgNode:
    """Return a fresh, mutable copy of the defaults (never a shared global)."""
    return _C.clone()


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_with_base(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict:
    """Read a YAML file, recursively merging the files named by its ``_BASE_`` key.

    ``_BASE_`` is a path relative to the file (or a list of them, merged in order); the
    file's own keys override its bases'.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if str(path) in _seen:
        raise ValueError(f"circular _BASE_ chain: {' -> '.join(_seen + (str(path),))}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at top level")
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        base_path = Path(base) if os.path.isabs(base) else path.parent / base
        merged = _deep_merge(merged, load_yaml_with_base(base_path, _seen + (str(path),)))
    return _deep_merge(merged, data)


def load_cfg(
    config_file: str | os.PathLike | None = None, opts: Sequence[str] | None = None
) -> CfgNode:
    """Defaults <- YAML file (with ``_BASE_``) <- ``KEY VALUE`` overrides, then frozen.

    Args:
        config_file: YAML file or None for the defaults.
        opts: flat list ``["SOLVER.BASE_LR", "0.1", ...]`` from the command line.

    Raises:
        KeyError: an unknown key (the message names it).
        ValueError: a value whose type does not match the default (the message names the key).
    """
    cfg = get_cfg()
    if config_file:
        data = load_yaml_with_base(config_file)
        cfg.merge_from_other_cfg(CfgNode(data))
    if opts:
        if len(opts) % 2:
            raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except AssertionError as err:  # yacs asserts on unknown keys of the override list
            raise KeyError(f"unknown config key in overrides: {err}") from None
    cfg.freeze()
    return cfg


def save_cfg(cfg: CfgNode, path: str | os.PathLike) -> None:
    """Write the merged config as YAML (atomically), e.g. to ``OUTPUT_DIR/config.yaml``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(cfg.dump(), encoding="utf-8")
    os.replace(tmp, path)


def cfg_to_dict(cfg: CfgNode) -> dict[str, Any]:
    """Plain nested dict of a config (for logging and checkpoints)."""
    return yaml.safe_load(cfg.dump())
