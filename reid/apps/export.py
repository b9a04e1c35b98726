"""TorchScript and ONNX export of an encoder, checked against PyTorch (``tools/export.py``).

The exported graph maps ``images`` (B, 3, H, W) float32, normalised like the test transform
(``INPUT.PIXEL_MEAN`` / ``PIXEL_STD``, resized to ``INPUT.SIZE_TEST``), to ``features`` (B, D)
float32 L2-normalised rows; the batch axis is dynamic. ONNX needs the optional ``export`` extra
(``pip install -e ".[export]"``: onnx and onnxruntime).
"""
from __future__ import annotations

import inspect
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reid.utils.errors import MissingExtraError

logger = logging.getLogger(__name__)

EXPORT_EXTRA = 'pip install -e ".[export]"'


class ExportedEncoder(nn.Module):
    """``images -> features`` of an eval-mode encoder, without the ``domains`` argument."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()

    def forward(self, images: Tensor) -> Tensor:
        return self.encoder(images)


def export_torchscript(model: nn.Module, example: Tensor, path: str | os.PathLike) -> Path:
    """Trace ``model`` (eval mode) on ``example`` (B, 3, H, W) and save it to ``path``."""
    wrapped = ExportedEncoder(model).eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
        traced = torch.jit.trace(wrapped, example, check_trace=False)
        traced.save(str(out))
    return out


def require_onnx() -> None:
    """Raise ImportError naming the install command when onnx / onnxruntime are missing."""
    missing = [m for m in ("onnx", "onnxruntime") if not _importable(m)]
    if missing:
        raise MissingExtraError(f"ONNX export needs {' and '.join(missing)}: {EXPORT_EXTRA}")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def export_onnx(model: nn.Module, example: Tensor, path: str | os.PathLike,
                opset: int = 17) -> Path:
    """Export ``model`` to ONNX with a dynamic batch axis (input ``images``, output ``features``).

    Uses the TorchScript-based exporter (no onnxscript needed).

    Raises:
        ImportError: onnx / onnxruntime not installed (the message names the extra).
    """
    require_onnx()
    wrapped = ExportedEncoder(model).eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, (example,), str(out), input_names=["images"], output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=opset, **kwargs,
        )
    import onnx

    onnx.checker.check_model(onnx.load(str(out)))
    return out


@torch.no_grad()
def check_torchscript(path: str | os.PathLike, model: nn.Module, batch: Tensor) -> float:
    """Max abs difference between the saved TorchScript model and ``model`` on ``batch``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    ref = model.eval().cpu()(batch)
    return float((loaded(batch) - ref).abs().max())


@torch.no_grad()
def check_onnx(path: str | os.PathLike, model: nn.Module, batch: Tensor) -> float:
    """Max abs difference between onnxruntime on the ONNX file and ``model`` on ``batch``."""
    require_onnx()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["features"], {"images": batch.numpy().astype(np.float32)})[0]
    ref = model.eval().cpu()(batch).numpy()
    return float(np.abs(got - ref).max())
