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
from reid.utils.errors import ConfigError, ConfigKeyError

__all__ = ["CfgNode", "cfg_diff", "get_cfg", "load_cfg", "load_yaml_with_base", "save_cfg"]

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


class ConfigFileError(ConfigError, FileNotFoundError):
    """A config file (or a ``_BASE_`` it names) that does not exist."""


def load_yaml_with_base(path: str | os.PathLike, _seen: tuple[str, ...] = ()) -> dict:
    """Read a YAML file, recursively merging the files named by its ``_BASE_`` key.

    ``_BASE_`` is a path relative to the file (or a list of them, merged in order); the
    file's own keys override its bases'.

    Raises:
        ConfigFileError: the file does not exist (for a ``_BASE_``, the message names the YAML
            file that references it).
        ConfigError: a circular ``_BASE_`` chain, invalid YAML or no mapping at top level.
    """
    path = Path(path).resolve()
    if not path.is_file():
        where = f" (the _BASE_ of {_seen[-1]})" if _seen else ""
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise ConfigFileError(f"config file {what}: {path}{where}")
    if str(path) in _seen:
        raise ConfigError(f"circular _BASE_ chain: {' -> '.join(_seen + (str(path),))}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
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
        ConfigKeyError: an unknown key (a ``KeyError``; the message names it and the file).
        ConfigError: a value whose type does not match the default (a ``ValueError``; the
            message names the key), or an odd override list.
    """
    cfg = get_cfg()
    if config_file:
        data = load_yaml_with_base(config_file)
        try:
            cfg.merge_from_other_cfg(CfgNode(data))
        except KeyError as err:  # yacs: "Non-existent config key: A.B"
            raise ConfigKeyError(f"{err.args[0] if err.args else err} in {config_file} "
                                 "(every key is listed in reid/config/defaults.py)") from None
        except ValueError as err:
            raise ConfigError(f"{err} in {config_file}") from None
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except AssertionError as err:  # yacs asserts on unknown keys of the override list
            raise ConfigKeyError(f"unknown config key in overrides: {err} (every key is listed "
                                 "in reid/config/defaults.py)") from None
        except ValueError as err:
            raise ConfigError(f"{err} (command-line override)") from None
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


def _flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def cfg_diff(cfg: CfgNode) -> dict[str, Any]:
    """``{"A.B": value}`` of every key whose value differs from the defaults, in key order."""
    ours, defaults = _flatten(cfg_to_dict(cfg)), _flatten(cfg_to_dict(get_cfg()))
    return {k: v for k, v in ours.items() if defaults.get(k, object()) != v}
