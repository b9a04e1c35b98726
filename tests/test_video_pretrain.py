"""tools/pretrain_videomae.py: tracklet discovery, a tiny run from a yacs config, and loading
its checkpoint into the re-ID model built from the same config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.apps.cli import pretrain_main
from reid.apps.pretrain import CHECKPOINT_NAME, cosine_lr, find_tracklets
from reid.config import load_cfg
from reid.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def _write_mars_like(root: Path) -> None:
    rng = np.random.default_rng(0)
    for pid in (1, 2):
        d = root / f"{pid:04d}"
        d.mkdir(parents=True)
        for tr in (1, 2):
            for f in range(1, 6):
                arr = rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{pid:04d}C1T{tr:04d}F{f:03d}.png")
    other = root / "plain_tracklet"
    other.mkdir()
    for f in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)).save(
            other / f"{f}.png")


def test_find_tracklets_groups_mars_names(tmp_path):
    _write_mars_like(tmp_path)
    tracklets = find_tracklets(tmp_path)
    assert sorted(len(t) for t in tracklets) == [3, 5, 5, 5, 5]
    assert all("T0001" in p for p in tracklets[0])
    with pytest.raises(FileNotFoundError, match="no tracklet"):
        find_tracklets(tmp_path, min_frames=6)
    with pytest.raises(FileNotFoundError, match="missing"):
        find_tracklets(tmp_path / "missing")


def test_cosine_schedule_with_warmup():
    assert [cosine_lr(s, 10, 2, 1.0) for s in (0, 1)] == [0.5, 1.0]
    assert cosine_lr(2, 10, 2, 1.0) == 1.0 and cosine_lr(6, 10, 2, 1.0) == pytest.approx(0.5)
    assert cosine_lr(10, 10, 2, 1.0) == pytest.approx(0.0)


def test_pretrain_tool_reads_a_yacs_config_and_refuses_a_missing_root(tmp_path, capsys):
    assert pretrain_main(["--config-file", str(ROOT / "configs/video/pretrain_videomae_mars.yaml"),
                          "PRETRAIN.TRACKLETS_ROOT", str(tmp_path / "none"),
                          "OUTPUT_DIR", str(tmp_path / "out")]) == 2
    assert "PRETRAIN.TRACKLETS_ROOT" in capsys.readouterr().err
    assert pretrain_main(["PRETRAIN.MAX_EPOCS", "1"]) == 2  # unknown key: a user error


def test_pretrain_checkpoint_loads_into_encoder(tmp_path, caplog):
    _write_mars_like(tmp_path / "data")
    opts = ["MODEL.ARCH", "videomae_vit", "MODEL.VIDEO.EMBED_DIM", "32", "MODEL.VIDEO.DEPTH", "2",
            "MODEL.VIDEO.NUM_HEADS", "4", "MODEL.VIDEO.PATCH_SIZE", "8", "INPUT.SEQ_LEN", "4",
            "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]",
            "MODEL.VIDEO.MASK_RATIO", "0.75"]
    status = pretrain_main([*opts, "PRETRAIN.TRACKLETS_ROOT", str(tmp_path / "data"),
                            "PRETRAIN.DECODER_DEPTH", "1", "PRETRAIN.MAX_EPOCHS", "1",
                            "PRETRAIN.ITERS", "2", "PRETRAIN.IMS_PER_BATCH", "2",
                            "DATALOADER.NUM_WORKERS", "0", "DEVICE", "cpu",
                            "OUTPUT_DIR", str(tmp_path / "out")])
    out = tmp_path / "out" / CHECKPOINT_NAME
    assert status == 0 and out.is_file()
    state = torch.load(out, weights_only=True)["model"]
    # the re-ID model of the same config, initialised from the checkpoint
    cfg = load_cfg(None, [*opts, "MODEL.VIDEO.CHECKPOINT_2D", str(out)])
    model = build_model(cfg)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, state["encoder." + k]), k
    assert "decoder_head.weight" in caplog.text  # decoder keys reported as skipped
