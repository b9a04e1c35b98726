"""Loading local checkpoints into the video backbones, with a report of unmatched keys.

Nothing here downloads: every loader takes a local file (or an already loaded state dict).

* :func:`load_2d_vit` - an image ViT (timm / DeiT key names, or :class:`VisionTransformer2D`)
  into TimeSformer / ViViT: the patch embedding is inflated to a tubelet embedding
  (``"mean"`` or ``"center"``), the spatial position table is resized to the target grid and
  repeated over time, divided-attention temporal branches copy the spatial attention weights
  (their zero ``temporal_fc`` keeps the model equal to the image model at start).
* :func:`load_videomae` - VideoMAE-format checkpoints (the official release or
  ``tools/pretrain_videomae.py``): ``encoder.`` prefix stripped, separate ``q_bias``/``v_bias``
  merged into ``qkv.bias``, decoder and fixed position tables skipped.
* :func:`load_video_checkpoint` - detects the format of a file and dispatches.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from reid.models.video.transformer import FactorisedEncoderViViT, VideoTransformer, repeat_pos_embed
from reid.models.video.vit_blocks import inflate_conv_weight, resize_pos_embed

logger = logging.getLogger(__name__)

_WRAPPERS = ("model", "state_dict", "module", "model_state")
_PREFIXES = ("module.", "model.", "backbone.")


@dataclass
class LoadReport:
    """Outcome of a checkpoint load; every list holds target or source key names."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def log(self, source: str) -> None:
        logger.info("loaded %d tensors from %s", len(self.loaded), source)
        for name, keys in (("missing (kept initialisation)", self.missing),
                           ("unexpected (ignored)", self.unexpected),
                           ("shape mismatch (ignored)", self.mismatched),
                           ("skipped by design", self.skipped)):
            if keys:
                logger.warning("%s: %d %s keys: %s", source, len(keys), name, ", ".join(keys))


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Load a local checkpoint file and unwrap it to a flat ``name -> tensor`` dict.

    Accepts a bare state dict or one nested under ``model`` / ``state_dict`` / ``module``, and
    strips ``module.`` / ``model.`` / ``backbone.`` prefixes.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        RuntimeError: the file is not a loadable checkpoint or holds no tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f"cannot load checkpoint {path}: {err}") from err
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj: object, source: str = "state dict") -> dict[str, Tensor]:
    """Unwrap nested checkpoint dicts and strip wrapper prefixes (see :func:`read_state_dict`)."""
    while isinstance(obj, dict) and not any(isinstance(v, Tensor) for v in obj.values()):
        key = next((k for k in _WRAPPERS if k in obj), None)
        if key is None:
            raise RuntimeError(f"{source} holds no tensors (keys: {sorted(obj)[:10]})")
        obj = obj[key]
    if not isinstance(obj, dict):
        raise RuntimeError(f"{source} is not a state dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, Tensor):
            continue
        for prefix in _PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def load_state_dict_report(model: nn.Module, state: dict[str, Tensor], source: str = "checkpoint",
                           report: LoadReport | None = None) -> LoadReport:
    """Copy every tensor whose name and shape match ``model``; log and return the rest."""
    report = report or LoadReport()
    target = model.state_dict()
    good = {}
    for k, v in state.items():
        if k not in target:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(target[k].shape):
            report.mismatched.append(f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}")
        else:
            good[k] = v
    model.load_state_dict(good, strict=False)
    report.loaded.extend(sorted(good))
    report.missing.extend(k for k in target if k not in good)
    report.log(source)
    return report


def _grid_of(num: int, target_grid: tuple[int, int]) -> tuple[int, int]:
    if num == target_grid[0] * target_grid[1]:
        return target_grid
    side = int(round(math.sqrt(num)))
    if side * side != num:
        raise ValueError(f"cannot infer the 2-D grid of a {num}-row position table")
    return side, side


def load_2d_vit(model: nn.Module, state: dict[str, Tensor] | str | os.PathLike,
                inflate_init: str = "mean") -> LoadReport:
    """Load an image-ViT state dict into a ``VideoTransformer`` or ``FactorisedEncoderViViT``.

    Args:
        model: the video backbone (not the re-ID wrapper).
        state: image-ViT state dict or a local file holding one.
        inflate_init: ``"mean"`` or ``"center"`` tubelet inflation (see ``inflate_conv_weight``).
    """
    source = str(state) if not isinstance(state, dict) else "2-D ViT state dict"
    if not isinstance(state, dict):
        state = read_state_dict(state)
    state = dict(state)
    report = LoadReport()
    mapped: dict[str, Tensor] = {}
    embed = model.patch_embed
    w = state.pop("patch_embed.proj.weight", None)
    if w is not None:
        if w.ndim == 4:
            w = inflate_conv_weight(w, embed.tubelet, inflate_init)
        mapped["patch_embed.proj.weight"] = w
    if "patch_embed.proj.bias" in state:
        mapped["patch_embed.proj.bias"] = state.pop("patch_embed.proj.bias")
    has_cls_2d = "cls_token" in state
    cls = state.pop("cls_token", None)
    if cls is not None:
        if model.num_prefix:
            mapped["cls_token"] = cls
        else:
            report.skipped.append("cls_token (target has no class token)")
    pos = state.pop("pos_embed", None)
    if pos is not None:
        _map_pos_embed(model, pos, int(has_cls_2d), mapped, report)
    divided = isinstance(model, VideoTransformer) and model.attn_mode == "divided"
    for k, v in state.items():
        if k.startswith("blocks.") or k.startswith("norm."):
            mapped[k] = v
            if divided and ".attn." in k:
                mapped[k.replace(".attn.", ".temporal_attn.")] = v
            if divided and ".norm1." in k:
                mapped[k.replace(".norm1.", ".temporal_norm1.")] = v
        else:
            report.unexpected.append(k)
    return load_state_dict_report(model, mapped, source, report)


def _map_pos_embed(model: nn.Module, pos: Tensor, prefix_2d: int, mapped: dict[str, Tensor],
                   report: LoadReport) -> None:
    if isinstance(model, VideoTransformer) and model.pos_type == "sincos":
        report.skipped.append("pos_embed (target uses a fixed sinusoidal table)")
        return
    nt, s = model.token_grid
    target_grid = model.patch_embed.grid[1:]
    grid_2d = _grid_of(pos.shape[1] - prefix_2d, target_grid)
    pos = resize_pos_embed(pos, grid_2d, target_grid, prefix_2d)
    p = model.num_prefix
    current = model.pos_embed.detach()
    if p and prefix_2d:
        cls_pos = pos[:, :1]
    else:
        cls_pos = current[:, :p]
        if p:
            report.missing.append("pos_embed[class row] (2-D table has none)")
    spatial = torch.cat([cls_pos, pos[:, prefix_2d:]], dim=1)
    if isinstance(model, FactorisedEncoderViViT) or model.pos_type == "separate":
        mapped["pos_embed"] = spatial
    else:
        mapped["pos_embed"] = repeat_pos_embed(spatial, nt, p)


def videomae_to_encoder_keys(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Map VideoMAE keys to ``VideoTransformer`` keys; returns (mapped, skipped source keys)."""
    mapped: dict[str, Tensor] = {}
    skipped: list[str] = []
    has_encoder_prefix = any(k.startswith("encoder.") for k in state)
    biases: dict[str, dict[str, Tensor]] = {}
    for k, v in state.items():
        if has_encoder_prefix:
            if not k.startswith("encoder."):
                skipped.append(k)
                continue
            k = k[len("encoder."):]
        if k in ("pos_embed", "head.weight", "head.bias"):
            skipped.append(k)
            continue
        if k.endswith(".q_bias") or k.endswith(".v_bias"):
            biases.setdefault(k[:-len(".q_bias")], {})[k[-6]] = v
            continue
        mapped[k] = v
    for stem, qv in biases.items():
        q = qv.get("q")
        v = qv.get("v", torch.zeros_like(q) if q is not None else None)
        if q is None:
            q = torch.zeros_like(v)
        mapped[f"{stem}.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return mapped, skipped


def load_videomae(model: VideoTransformer, state: dict[str, Tensor] | str | os.PathLike
                  ) -> LoadReport:
    """Load a VideoMAE-format checkpoint (official or ``tools/pretrain_videomae.py``) into the
    encoder ``model``; decoder, mask token and fixed position tables are reported as skipped."""
    source = str(state) if not isinstance(state, dict) else "VideoMAE state dict"
    if not isinstance(state, dict):
        state = read_state_dict(state)
    mapped, skipped = videomae_to_encoder_keys(state)
    report = LoadReport(skipped=skipped)
    return load_state_dict_report(model, mapped, source, report)


def detect_format(state: dict[str, Tensor]) -> str:
    """``"videomae"``, ``"2d_vit"``, ``"2d_resnet"`` or ``"native"`` (keys of the model itself)."""
    keys = list(state)
    if any(k.startswith("encoder.") or k.endswith(".q_bias") for k in keys):
        return "videomae"
    w = state.get("patch_embed.proj.weight")
    if w is not None:
        return "2d_vit" if w.ndim == 4 else "native"
    conv = state.get("conv1.weight")
    if conv is not None and conv.ndim == 4:
        return "2d_resnet"
    return "native"


def load_video_checkpoint(model: nn.Module, path: str | os.PathLike, fmt: str = "auto",
                          inflate_init: str = "mean") -> LoadReport:
    """Load a local checkpoint into a video backbone, detecting its format when ``fmt="auto"``.

    ``fmt``: ``"auto"``, ``"videomae"``, ``"2d_vit"`` or ``"native"``. 2-D ResNet checkpoints
    are inflated when the CNN backbones are built (``pretrained_path`` of their factories).
    """
    state = read_state_dict(path)
    fmt = detect_format(state) if fmt == "auto" else fmt
    logger.info("loading %s as a %s checkpoint", path, fmt)
    if fmt == "videomae":
        return load_videomae(model, state)
    if fmt == "2d_vit":
        return load_2d_vit(model, state, inflate_init)
    if fmt == "2d_resnet":
        raise ValueError(f"{path} is a 2-D ResNet checkpoint; pass it as pretrained_path of a "
                         f"CNN video backbone (it is inflated when the model is built)")
    if fmt != "native":
        raise ValueError(f"unknown checkpoint format {fmt!r}")
    return load_state_dict_report(model, state, str(path))
