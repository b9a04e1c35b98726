"""Reading images with errors that name the file."""
from __future__ import annotations

from pathlib import Path

from PIL import Image


class CorruptImageError(OSError):
    """An image file is missing, unreadable or does not decode completely."""


def read_image(path: str | Path) -> Image.Image:
    """Read ``path`` as an RGB ``PIL.Image``, decoding the whole file.

    Raises:
        CorruptImageError: the file is missing, not an image, or truncated/corrupt (the full
            decode is forced with ``img.load()``); the message names the file.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise CorruptImageError(f"image not found: {path}") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot read image {path}: {exc}") from exc
