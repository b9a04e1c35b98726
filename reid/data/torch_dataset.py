"""A torch ``Dataset`` over ``(path, pid, camid)`` samples, and an up-front image check."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from reid.data.image import CorruptImageError, read_image
from reid.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)


def check_images(samples: Sequence[tuple], progress: bool = False) -> list[str]:
    """Paths of every unreadable image of ``samples`` (each decoded fully once).

    This is the recommended way to handle corrupt files: scan before training, drop the bad
    samples and log their count. Video samples (tuples of frame paths) have every frame checked.

    Args:
        samples: ``(path_or_frames, pid, camid)`` items.
        progress: report progress (:func:`reid.utils.progress.progress`).

    Returns:
        The bad paths, without duplicates, in sample order.
    """
    bad: list[str] = []
    seen: set[str] = set()
    for item in progress_bar(samples, desc="checking images", disable=not progress):
        paths = item[0] if isinstance(item[0], (tuple, list)) else (item[0],)
        for path in paths:
            if path in seen:
                continue
            seen.add(path)
            try:
                read_image(path)
            except CorruptImageError:
                bad.append(str(path))
    return bad


class ImageSampleDataset(Dataset):
    """Image samples as dicts ``{"img", "pid", "camid", "index", "domain", "path"}``.

    Args:
        samples: ``(path, pid, camid)`` items.
        transform: applied to the RGB ``PIL.Image``; None gives a float32 ``(3, H, W)`` tensor
            in ``[0, 1]``.
        domain: domain index returned with every sample (for domain-specific BN).
        skip_corrupt: replace an unreadable image by the next readable sample (index + 1, ...,
            wrapping around); the returned dict is that sample's (its pid, camid, index, path),
            so labels always match the image. ``num_skipped`` counts the replacements and
            ``bad_paths`` the distinct bad files. With several DataLoader workers each worker
            holds its own copy, so the counts are per worker: prefer :func:`check_images`
            before training.

    Raises:
        CorruptImageError: an unreadable image without ``skip_corrupt``, or every image bad.
    """

    def __init__(
        self,
        samples: Sequence[tuple],
        transform: Callable | None = None,
        domain: int = 0,
        skip_corrupt: bool = False,
    ) -> None:
        if len(samples) == 0:
            raise ValueError("ImageSampleDataset needs at least one sample")
        self.samples = list(samples)
        self.transform = transform
        self.domain = int(domain)
        self.skip_corrupt = skip_corrupt
        self.num_skipped = 0
        self.bad_paths: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        for step in range(n):
            i = (index + step) % n
            path = str(self.samples[i][0])
            if path in self.bad_paths:
                continue
            try:
                img = read_image(path)
            except CorruptImageError:
                if not self.skip_corrupt:
                    raise
                self.bad_paths.add(path)
                logger.warning("skipping unreadable image %s (%d bad so far)", path,
                               len(self.bad_paths))
                continue
            if step > 0:
                self.num_skipped += 1
            _, pid, camid = self.samples[i][:3]
            img_t = self.transform(img) if self.transform is not None else to_tensor(img)
            return {"img": img_t, "pid": int(pid), "camid": int(camid), "index": i,
                    "domain": self.domain, "path": path}
        raise CorruptImageError(f"every one of the {n} images is unreadable (first: "
                                f"{self.samples[0][0]})")
