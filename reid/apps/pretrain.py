"""Self-supervised VideoMAE pretraining on unlabelled tracklets (``tools/pretrain_videomae.py``).

Tong et al., *VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised
Video Pre-Training*, NeurIPS 2022: tube masking of a high ratio of the clip's cubes, a light
decoder reconstructs their normalised pixels. The encoder learned here initialises a video
re-ID model of the same ``MODEL.ARCH`` / ``MODEL.VIDEO.*`` through
``MODEL.VIDEO.CHECKPOINT_2D`` (VideoMAE format, detected by its ``encoder.`` keys).

Example::

    cfg = load_cfg("configs/video/pretrain_videomae_mars.yaml")
    path = pretrain_videomae(find_tracklets(cfg.PRETRAIN.TRACKLETS_ROOT), **pretrain_kwargs(cfg))
"""
from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reid.utils.errors import DatasetError, TrainingDivergedError

logger = logging.getLogger(__name__)

MARS_NAME = re.compile(r"^(\d{4}C\d+T\d{4})F\d+$")
CHECKPOINT_NAME = "videomae_pretrain.pth"


def find_tracklets(root: str | Path, min_frames: int = 1) -> list[tuple[str, ...]]:
    """Frame-path tuples of every tracklet under ``root``: in a folder whose image names follow
    MARS (``0001C1T0001F001.jpg``), frames sharing the ``<pid>C<cam>T<tracklet>`` prefix form
    one tracklet; in any other folder all images (sorted by name) form one. Images are those of
    :func:`reid.data.datasets.folder.find_images`. Labels are never read.

    Raises:
        DatasetError: ``root`` is not a directory or holds no tracklet of ``min_frames``.
    """
    from reid.data.datasets.folder import find_images

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"PRETRAIN.TRACKLETS_ROOT {root} is missing or not a directory")
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in find_images(root):
        match = MARS_NAME.match(path.stem)
        key = f"{path.parent}/{match.group(1)}" if match else str(path.parent)
        groups[key].append(path)
    tracklets = [tuple(str(p) for p in sorted(frames)) for _, frames in sorted(groups.items())
                 if len(frames) >= min_frames]
    if not tracklets:
        raise DatasetError(f"no tracklet with >= {min_frames} images under {root}")
    return tracklets


def pretrain_kwargs(cfg) -> dict[str, Any]:
    """The cfg -> kwargs adapter of :func:`pretrain_videomae` (``PRETRAIN.*``, ``MODEL.ARCH``,
    ``MODEL.VIDEO.*``, ``INPUT.{SEQ_LEN, SIZE_TRAIN, SAMPLER_TRAIN}``,
    ``DATALOADER.NUM_WORKERS``, ``OUTPUT_DIR``)."""
    from reid.models.video import video_backbone_kwargs

    backbone = video_backbone_kwargs(cfg)
    backbone.pop("inflate_init", None)
    if backbone.pop("pretrained_path", ""):
        logger.info("MODEL.VIDEO.CHECKPOINT_2D / MODEL.PRETRAINED_PATH are not used: VideoMAE "
                    "pretraining starts from random weights")
    p = cfg.PRETRAIN
    return dict(
        arch=cfg.MODEL.ARCH, backbone_kwargs=backbone, seq_len=cfg.INPUT.SEQ_LEN,
        img_size=tuple(cfg.INPUT.SIZE_TRAIN), clip_sampler=cfg.INPUT.SAMPLER_TRAIN,
        mask_ratio=cfg.MODEL.VIDEO.MASK_RATIO, decoder_dim=p.DECODER_DIM,
        decoder_depth=p.DECODER_DEPTH, decoder_heads=p.DECODER_HEADS, epochs=p.MAX_EPOCHS,
        iters=p.ITERS, batch_size=p.IMS_PER_BATCH, lr=p.BASE_LR, weight_decay=p.WEIGHT_DECAY,
        warmup_epochs=p.WARMUP_EPOCHS, num_workers=cfg.DATALOADER.NUM_WORKERS,
        output=Path(cfg.OUTPUT_DIR) / CHECKPOINT_NAME,
    )


def cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps to ``peak``, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    done = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * done))


def pretrain_videomae(
    tracklets: Sequence[Sequence[str]],
    *,
    arch: str = "videomae_vit",
    backbone_kwargs: dict[str, Any] | None = None,
    seq_len: int = 8,
    img_size: tuple[int, int] = (256, 128),
    clip_sampler: str = "segment",
    mask_ratio: float = 0.9,
    decoder_dim: int = 0,
    decoder_depth: int = 4,
    decoder_heads: int = 0,
    epochs: int = 50,
    iters: int = 0,
    batch_size: int = 16,
    lr: float = 1.5e-4,
    weight_decay: float = 0.05,
    warmup_epochs: float = 0.0,
    num_workers: int = 2,
    device: torch.device | str = "cpu",
    output: str | Path = CHECKPOINT_NAME,
) -> Path:
    """Pretrain the encoder ``arch`` as a VideoMAE on ``tracklets`` and save it.

    Args:
        tracklets: frame paths per tracklet (:func:`find_tracklets`).
        arch, backbone_kwargs: the encoder (:func:`reid.models.video.build_video_backbone`).
        seq_len, img_size: clip length (frames) and frame (height, width) in pixels.
        clip_sampler: "segment" (TSN) or "dense" clip sampling.
        mask_ratio: share of the clip's cubes masked (VideoMAE: 0.9).
        decoder_dim, decoder_depth, decoder_heads: decoder size (0: half the encoder width,
            width / 64 heads).
        epochs, iters: epochs and iterations per epoch (0: one pass over the tracklets).
        batch_size, lr, weight_decay, warmup_epochs: AdamW (betas 0.9 / 0.95) with linear
            warm-up and cosine decay, per step.
        num_workers, device: data workers and the training device.
        output: the checkpoint written: ``{"model": VideoMAEPretrainer state dict, "arch",
            "encoder": backbone_kwargs, "epoch"}``.

    Returns:
        The checkpoint path.

    Raises:
        TrainingDivergedError: a non-finite loss.
    """
    from reid.data.video_sampling import VideoClipDataset, build_clip_transform, video_collate
    from reid.models.video import VideoMAEPretrainer, build_video_backbone
    from reid.utils.checkpoint import save_checkpoint
    from reid.utils.progress import progress

    backbone_kwargs = dict(backbone_kwargs or {})
    encoder = build_video_backbone(arch, seq_len, tuple(img_size), **backbone_kwargs)
    decoder_dim = decoder_dim or max(encoder.out_dim // 2, 8)
    decoder_heads = decoder_heads or max(decoder_dim // 64, 1)
    model = VideoMAEPretrainer(encoder, decoder_dim, decoder_depth, decoder_heads,
                               mask_ratio).to(device)
    transform = build_clip_transform(tuple(img_size), [0.485, 0.456, 0.406],
                                     [0.229, 0.224, 0.225], is_train=True, erasing_prob=0.0)
    dataset = VideoClipDataset([(tuple(t), 0, 0) for t in tracklets], seq_len, clip_sampler,
                               transform)
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                        drop_last=True, num_workers=num_workers, collate_fn=video_collate,
                        persistent_workers=num_workers > 0)
    iters = iters or len(loader)
    total, warmup = epochs * iters, int(warmup_epochs * iters)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                  betas=(0.9, 0.95))
    logger.info("VideoMAE %s: %d tracklets, %d epochs x %d iterations of %d clips", arch,
                len(dataset), epochs, iters, loader.batch_size)
    step = 0
    model.train()
    for epoch in range(epochs):
        data, losses = iter(loader), []
        for _ in progress(range(iters), desc=f"epoch {epoch + 1}/{epochs}"):
            try:
                batch = next(data)
            except StopIteration:
                data = iter(loader)
                batch = next(data)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, lr)
            loss = model(batch["img"].to(device, non_blocking=True))["loss"]
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"VideoMAE loss is {loss.item()} at step {step}: "
                                            "lower PRETRAIN.BASE_LR")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
        logger.info("epoch %d: reconstruction loss %.4f", epoch + 1, sum(losses) / len(losses))
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "arch": arch, "encoder": backbone_kwargs, "epoch": epochs}
    path = save_checkpoint(state, output)
    logger.info("saved %s", path)
    return Path(path)
