"""Train / test image transforms and random erasing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from reid.config import get_cfg
from reid.data.transforms import (
    RandomErasing,
    build_test_transform,
    build_train_transform,
    build_transforms,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


def _image(h: int = 40, w: int = 20) -> Image.Image:
    g = torch.Generator().manual_seed(0)
    return Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g,
                                         dtype=torch.uint8).numpy())


def test_test_transform_normalises_exactly() -> None:
    img = Image.new("RGB", (7, 9), (255, 102, 0))
    out = build_test_transform((16, 8), MEAN, STD)(img)
    assert out.shape == (3, 16, 8) and out.dtype == torch.float32
    expect = [(1.0 - 0.5) / 0.2, (0.4 - 0.4) / 0.25, (0.0 - 0.3) / 0.5]
    for c in range(3):
        torch.testing.assert_close(out[c], torch.full((16, 8), expect[c]))


def test_train_flip_only_equals_mirrored_test_image() -> None:
    img = _image()
    train = build_train_transform((32, 16), MEAN, STD, flip_prob=1.0, padding=0, erasing_prob=0)
    test = build_test_transform((32, 16), MEAN, STD)
    assert torch.equal(train(img), test(ImageOps.mirror(img)))


def test_pad_and_crop_is_a_zero_filled_shift() -> None:
    img = _image()
    base = build_test_transform((32, 16), (0, 0, 0), (1, 1, 1))(img)
    train = build_train_transform((32, 16), (0, 0, 0), (1, 1, 1), flip_prob=0, padding=3,
                                  erasing_prob=0)
    torch.manual_seed(1)
    for _ in range(5):
        out = train(img)
        padded = torch.nn.functional.pad(base, (3, 3, 3, 3))
        hits = [(dy, dx) for dy in range(7) for dx in range(7)
                if torch.equal(padded[:, dy:dy + 32, dx:dx + 16], out)]
        assert hits


def test_random_erasing_rectangle_and_probability() -> None:
    x = torch.ones(3, 64, 32)
    assert torch.equal(RandomErasing(p=0.0)(x), x)
    torch.manual_seed(2)
    erase = RandomErasing(p=1.0, value=(-1.0, -2.0, -3.0))
    for _ in range(20):
        out = erase(x)
        mask = out[0] != 1
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert int(mask.sum()) == h * w  # one axis-aligned rectangle
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
        assert 0.02 * 0.8 <= h * w / (64 * 32) <= 0.4 * 1.2
        assert 0.3 * 0.7 <= h / w <= (1 / 0.3) * 1.3
        for c, v in enumerate((-1.0, -2.0, -3.0)):
            assert torch.all(out[c][mask] == v)
    assert torch.equal(x, torch.ones(3, 64, 32))  # input untouched
    torch.manual_seed(3)
    hits = sum(not torch.equal(RandomErasing(p=0.5)(x), x) for _ in range(400))
    assert 150 < hits < 250


def test_build_transforms_from_config_and_errors() -> None:
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.SIZE_TEST = [24, 12]
    torch.manual_seed(4)
    assert build_transforms(cfg, is_train=True)(_image()).shape == (3, 32, 16)
    assert build_transforms(cfg, is_train=False)(_image()).shape == (3, 24, 12)
    torch.manual_seed(5)
    a = build_transforms(cfg, is_train=True)(_image())
    torch.manual_seed(5)
    assert torch.equal(a, build_transforms(cfg, is_train=True)(_image()))
    with pytest.raises(ValueError, match="height, width"):
        build_test_transform((0, 8))


def test_grayscale_and_colour_jitter() -> None:
    img = _image()
    plain = build_train_transform((40, 20), (0.0,) * 3, (1.0,) * 3, flip_prob=0, padding=0,
                                  erasing_prob=0)(img)
    gray = build_train_transform((40, 20), (0.0,) * 3, (1.0,) * 3, flip_prob=0, padding=0,
                                 erasing_prob=0, grayscale_prob=1.0)(img)
    # PIL's "L" conversion: L = (299 R + 587 G + 114 B) / 1000, rounded, copied to 3 channels
    expect = torch.from_numpy(np.array(img.convert("L"), dtype=np.float32))
    for c in range(3):
        torch.testing.assert_close(gray[c], expect / 255)
    torch.manual_seed(0)
    jitter = build_train_transform((40, 20), (0.0,) * 3, (1.0,) * 3, flip_prob=0, padding=0,
                                   erasing_prob=0, color_jitter_prob=1.0,
                                   color_jitter=(0.5, 0.0, 0.0, 0.0))(img)
    # brightness only: every pixel scaled by one factor in [0.5, 1.5], clipped to [0, 1]
    unclipped = (jitter > 0) & (jitter < 1) & (plain > 0.05)
    ratio = jitter[unclipped] / plain[unclipped]
    assert 0.5 <= float(ratio.mean()) <= 1.5 and abs(float(ratio.mean()) - 1) > 1e-3
    assert float(ratio.std()) < 0.02
    with pytest.raises(ValueError, match="brightness, contrast, saturation, hue"):
        build_train_transform(color_jitter_prob=0.5, color_jitter=(0.4, 0.4))
    cfg = get_cfg()
    cfg.INPUT.GRAYSCALE_PROB = 0.1
    from reid.data.video_sampling import build_clip_transform_from_cfg

    with pytest.raises(ValueError, match="image datasets only"):
        build_clip_transform_from_cfg(cfg, is_train=True)
