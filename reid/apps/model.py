"""Loading the encoder of a config and a checkpoint, with one DSBN branch, for inference."""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from reid.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def load_encoder(cfg, weights: str | os.PathLike | None = None, domain: int = -1,
                 device: torch.device | str = "cpu") -> nn.Module:
    """The eval-mode encoder of ``cfg.MODEL`` with plain BN holding DSBN branch ``domain``.

    The model is built with a single BN branch; a checkpoint trained with domain-specific BN
    (SpCL UDA: sources first, target last) is collapsed onto branch ``domain`` by
    :func:`reid.models.load_pretrained` (-1 = the last branch, the target domain of SpCL).

    Args:
        cfg: config node (``MODEL.*``).
        weights: checkpoint (``last.pth``, ``best.pth``, a state dict); default
            ``cfg.MODEL.WEIGHTS``. Required.
        domain: DSBN branch of the checkpoint to use (negative counts from the end).
        device: where the model is put.

    Returns:
        The encoder in eval mode: ``model(x)`` with ``x`` (B, 3, H, W) gives (B, D) float32
        L2-normalised features.

    Raises:
        ValueError: no checkpoint given.
    """
    from reid.models import build_model, load_pretrained

    weights = weights or cfg.MODEL.WEIGHTS
    if not weights:
        raise ConfigError("no checkpoint: pass --weights (e.g. OUTPUT_DIR/last.pth) or set "
                         "MODEL.WEIGHTS")
    model = build_model(cfg, num_classes=0, num_domains=1)
    load_pretrained(model, weights, dsbn_domain=domain, skip_mismatched=True)
    return model.to(device).eval()
