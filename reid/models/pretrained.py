"""Load weights from a local checkpoint file (nothing is ever downloaded)."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from reid.utils.errors import CheckpointError, CheckpointNotFoundError, CheckpointReadError

logger = logging.getLogger(__name__)

_DSBN_KEY = re.compile(r"^(?P<prefix>.*\.)?dsbn\.(?P<domain>\d+)\.(?P<name>[^.]+)$")
# the classifier head, expected to differ between a checkpoint and a model (torchvision's fc /
# classifier over ImageNet classes, a re-ID classifier over another set of identities, none)
_HEAD_KEY = re.compile(r"^(backbone\.)?(classifier|fc|head)\.")
_SHOW = 8


def is_head_key(key: str) -> bool:
    """True for a tensor of the classifier head (``classifier.*``, ``fc.*``, ``head.*``,
    also under ``backbone.``), which a checkpoint may lack or hold in another shape."""
    return _HEAD_KEY.match(key) is not None


class LoadReport(NamedTuple):
    """Outcome of :func:`load_pretrained` (model-side key names)."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensor state dict stored in ``path``.

    Accepts a plain state dict (torchvision format), a dict with a ``"model"`` state dict (unreid
    checkpoints; an ``"ema"`` one, the mean teacher of a ``MODEL.EMA_MOMENTUM`` run, comes
    first: it is the model that run evaluated) or with a ``"state_dict"`` one; strips DDP's
    ``module.`` prefixes. Loaded with ``torch.load(map_location="cpu", weights_only=True)``.

    Raises:
        FileNotFoundError: the file does not exist (the message says where weights go).
        RuntimeError: the file cannot be read as a checkpoint.
        ValueError: it holds no tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"weights file not found: {path}. Nothing is downloaded: copy a torchvision-format "
            "or unreid checkpoint to a local path and point MODEL.PRETRAINED_PATH (ImageNet trunk) "
            "or MODEL.WEIGHTS (full model) at it, e.g. ../shared/weights/"
            "mobilenet_v2_imagenet_features.pth for mobilenet_v2"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointReadError(f"cannot read checkpoint {path}: {err}") from err
    if isinstance(obj, Mapping):
        for key in ("ema", "model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path} holds no state dict (got {type(obj).__name__})")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a "
                                  "tensor; expected a state dict or a dict with a 'model' "
                                  "state dict")
        state[key[len("module."):] if key.startswith("module.") else key] = value
    return state


def _map_keys(ckpt: Mapping[str, Tensor], model_keys: set[str],
              dsbn_domain: int) -> tuple[dict[str, Tensor], set[str]]:
    """Checkpoint tensors under model key names, and the checkpoint keys used.

    A plain BN entry ``p.name`` fills every DSBN branch ``p.dsbn.<d>.name`` of the model; DSBN
    entries ``p.dsbn.<d>.name`` fill a plain BN ``p.name`` from branch ``dsbn_domain`` (-1: the
    checkpoint's last branch).
    """
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    collapse: dict[str, dict[int, str]] = {}
    for key, value in ckpt.items():
        if key in model_keys:
            out[key] = value
            used.add(key)
            continue
        m = _DSBN_KEY.match(key)
        if m is not None:
            plain = (m["prefix"] or "") + m["name"]
            if plain in model_keys:
                collapse.setdefault(plain, {})[int(m["domain"])] = key
    for plain, branches in collapse.items():
        domains = sorted(branches)
        if not -len(domains) <= dsbn_domain < len(domains):
            raise CheckpointError(f"dsbn_domain {dsbn_domain} out of range: the checkpoint "
                                  f"has {len(domains)} BN branches for {plain}")
        src = branches[domains[dsbn_domain]]
        out[plain] = ckpt[src]
        used.update(branches.values())
    for key in model_keys - out.keys():
        m = _DSBN_KEY.match(key)
        if m is not None:
            plain = (m["prefix"] or "") + m["name"]
            if plain in ckpt:
                out[key] = ckpt[plain]
                used.add(plain)
    return out, used


def _key_variants(ckpt: dict[str, Tensor], model: nn.Module) -> list[dict[str, Tensor]]:
    """The checkpoint as is, with ``backbone.`` added (trunk into an encoder), and stripped."""
    variants = [ckpt]
    if isinstance(getattr(model, "backbone", None), nn.Module):
        variants.append({f"backbone.{k}": v for k, v in ckpt.items()})
    stripped = {k[len("backbone."):]: v for k, v in ckpt.items() if k.startswith("backbone.")}
    if stripped:
        variants.append(stripped)
    return variants


def _log_conversion(ckpt: Mapping[str, Tensor], mapped: Mapping[str, Tensor],
                    dsbn_domain: int) -> None:
    """Say which BN tensors were converted between plain BN and domain-specific BN."""
    filled = [k for k in mapped if k not in ckpt and _DSBN_KEY.match(k)]
    collapsed = [k for k in mapped if k not in ckpt and not _DSBN_KEY.match(k)]
    if filled:
        logger.info("BN -> DSBN (expected): %d plain BN tensors of the checkpoint fill every "
                    "domain branch", len(filled))
    if collapsed:
        logger.info("DSBN -> BN (expected): %d BN tensors taken from checkpoint branch %d",
                    len(collapsed), dsbn_domain)


def _preview(keys: list[str], show: int = _SHOW) -> str:
    more = f" ... (+{len(keys) - show} more)" if len(keys) > show else ""
    return ", ".join(keys[:show]) + more


def load_pretrained(model: nn.Module, path: str | os.PathLike, *, dsbn_domain: int = -1,
                    skip_mismatched: bool = False, partial: bool = False) -> LoadReport:
    """Load the local checkpoint ``path`` into ``model`` (an encoder or a bare backbone).

    Accepted layouts: torchvision ResNet / MobileNetV2 state dicts (``conv1.*``/``layer*.*`` or
    ``features.*``; loaded into an encoder's ``backbone`` automatically, ``fc``/``classifier``
    entries reported as unexpected), unreid checkpoints (``{"model": state_dict, ...}``) and plain
    state dicts of the same model. Plain BN entries fill every branch of a domain-specific BN;
    a DSBN checkpoint loaded into a plain model takes branch ``dsbn_domain`` (-1 = last).

    A checkpoint that does not fit is refused (:class:`CheckpointError` naming the missing,
    unexpected and mis-shaped keys), except for differences a user expects, which are logged
    as such: classifier-head tensors (:func:`is_head_key`) the checkpoint lacks or the model
    lacks, and BN <-> DSBN conversion. ``partial`` loads what fits anyway (logged).

    Args:
        model: the module receiving the weights (modified in place).
        path: local checkpoint file.
        dsbn_domain: checkpoint branch used when collapsing DSBN entries into plain BNs.
        skip_mismatched: leave classifier-head tensors whose shape differs as initialised
            (logged, and listed as missing) instead of raising, e.g. a classifier over another
            set of identities.
        partial: load every tensor that fits and leave the others as initialised (missing,
            unexpected and mis-shaped keys are logged) instead of raising: a deliberate
            partial load (``MODEL.WEIGHTS_PARTIAL``).

    Returns:
        :class:`LoadReport` with the loaded, missing and unexpected key names.

    Raises:
        CheckpointNotFoundError: (a ``FileNotFoundError``) ``path`` does not exist (nothing is
            downloaded).
        CheckpointError: (a ``ValueError``) the checkpoint does not fit: tensors missing from
            it, tensors the model does not have, or tensors whose shape differs (all listed;
            unless ``partial``); or no checkpoint key matches the model at all.
    """
    ckpt = read_state_dict(path)
    target = model.state_dict()
    model_keys = set(target)
    best: tuple[dict[str, Tensor], set[str], dict[str, Tensor]] | None = None
    for variant in _key_variants(ckpt, model):
        mapped, used = _map_keys(variant, model_keys, dsbn_domain)
        if best is None or len(mapped) > len(best[0]):
            best = (mapped, used, variant)
    mapped, used, variant = best
    _log_conversion(variant, mapped, dsbn_domain)
    if not mapped:
        raise CheckpointError(
            f"no key of {path} matches {type(model).__name__}: checkpoint keys "
            f"{_preview(sorted(ckpt))}; model keys {_preview(sorted(model_keys))}"
        )
    bad = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in mapped.items()
           if v.shape != target[k].shape]
    head_bad = [b for b in bad if is_head_key(b[0])] if skip_mismatched else []
    body_bad = [b for b in bad if b not in head_bad]
    missing = sorted(model_keys - mapped.keys())
    unexpected = sorted(set(variant) - used)
    problems = {
        "missing from the checkpoint": [k for k in missing if not is_head_key(k)
                                        and not k.endswith("num_batches_tracked")],
        "not in the model": [k for k in unexpected if not is_head_key(k)],
        "of another shape": [f"{k}: checkpoint {cs} vs model {ms}" for k, cs, ms in body_bad],
    }
    problems = {what: keys for what, keys in problems.items() if keys}
    where = f"{path} into {type(model).__name__}"
    if problems:
        text = "; ".join(f"{len(keys)} tensors {what}: {_preview(keys, 20)}"
                         for what, keys in problems.items())
        if not partial:
            prefix = "shape mismatch loading" if list(problems) == ["of another shape"] \
                else "checkpoint does not fit:"
            raise CheckpointError(
                f"{prefix} {where}: {text}. Check MODEL.ARCH and the other MODEL keys "
                "against the run that wrote it, or set MODEL.WEIGHTS_PARTIAL True to load "
                "only what fits")
        logger.warning("partial load of %s (MODEL.WEIGHTS_PARTIAL): %s", where, text)
    for k, _, _ in head_bad + (body_bad if partial else []):
        del mapped[k]
    if head_bad:
        logger.warning("classifier head of %s has another shape, left as initialised: %s",
                       path, "; ".join(f"{k}: checkpoint {cs} vs model {ms}"
                                       for k, cs, ms in head_bad))
    model.load_state_dict(mapped, strict=False)
    missing = sorted(model_keys - mapped.keys())
    logger.info("loaded %d/%d tensors of %s from %s", len(mapped), len(model_keys),
                type(model).__name__, path)
    head_missing = [k for k in missing if is_head_key(k)]
    head_unused = [k for k in unexpected if is_head_key(k)]
    if head_missing:
        logger.info("classifier head not in %s (expected; left as initialised): %s", path,
                    _preview(head_missing))
    if head_unused:
        logger.info("classifier head of %s not used by the model (expected): %s", path,
                    _preview(head_unused))
    return LoadReport(sorted(mapped), missing, unexpected)
