"""Self-supervised VideoMAE pretraining on unlabelled tracklets (in-domain initialisation).

Example::

    python tools/pretrain_videomae.py --tracklets-root datasets/mars/bbox_train \\
        --arch videomae_vit --epochs 50 --output logs/videomae/pretrain.pth

Tracklets are found under ``--tracklets-root``: in a folder whose image names follow MARS
(``0001C1T0001F001.jpg``), frames sharing the ``<pid>C<cam>T<tracklet>`` prefix form one
tracklet; in any other folder all images (sorted by name) form one tracklet. Labels are never
read. The checkpoint (``{"model": VideoMAEPretrainer state dict, "arch", "encoder", "args"}``)
loads into the re-ID model with ``build_video_encoder(arch, pretrained_path=...)`` or
``MODEL.VIDEO.CHECKPOINT_2D`` (VideoMAE format, detected by its ``encoder.`` keys).
"""
from __future__ import annotations

import argparse
import logging
import math
import re
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from reid.data.video_sampling import VideoClipDataset, build_clip_transform, video_collate
from reid.models.video import VideoMAEPretrainer, build_video_backbone
from reid.utils.checkpoint import save_checkpoint
from reid.utils.env import resolve_device, seed_all
from reid.utils.progress import progress

logger = logging.getLogger("pretrain_videomae")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
MARS_NAME = re.compile(r"^(\d{4}C\d+T\d{4})F\d+$")


def find_tracklets(root: str | Path, min_frames: int = 1) -> list[tuple[str, ...]]:
    """Frame-path tuples of every tracklet under ``root`` (see module docstring).

    Raises:
        FileNotFoundError: ``root`` is not a directory or holds no tracklet of ``min_frames``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--tracklets-root {root} is not a directory")
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        match = MARS_NAME.match(path.stem)
        key = f"{path.parent}/{match.group(1)}" if match else str(path.parent)
        groups[key].append(path)
    tracklets = [tuple(str(p) for p in sorted(frames)) for _, frames in sorted(groups.items())
                 if len(frames) >= min_frames]
    if not tracklets:
        raise FileNotFoundError(f"no tracklet with >= {min_frames} images under {root}")
    return tracklets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tracklets-root", required=True, help="folder of unlabelled tracklets")
    p.add_argument("--output", default="logs/videomae/pretrain.pth", help="checkpoint path")
    p.add_argument("--arch", default="videomae_vit", help="videomae_vit or videomae_vit_tiny")
    p.add_argument("--embed-dim", type=int, default=0, help="encoder width (0: arch default)")
    p.add_argument("--depth", type=int, default=0, help="encoder blocks (0: arch default)")
    p.add_argument("--num-heads", type=int, default=0, help="encoder heads (0: arch default)")
    p.add_argument("--patch-size", type=int, default=16, help="spatial cube size, pixels")
    p.add_argument("--tubelet", type=int, default=2, help="temporal cube size, frames")
    p.add_argument("--seq-len", type=int, default=8, help="frames per clip")
    p.add_argument("--img-size", type=int, nargs=2, default=[256, 128], help="height width")
    p.add_argument("--mask-ratio", type=float, default=0.9, help="tube-masking ratio")
    p.add_argument("--decoder-dim", type=int, default=0, help="decoder width (0: encoder / 2)")
    p.add_argument("--decoder-depth", type=int, default=4, help="decoder blocks")
    p.add_argument("--decoder-heads", type=int, default=0, help="decoder heads (0: width / 64)")
    p.add_argument("--sampler", default="segment", choices=["segment", "dense"])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--iters", type=int, default=0, help="iterations per epoch (0: one pass)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1.5e-4, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up length")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Run pretraining; returns the checkpoint path."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    seed_all(args.seed)
    device = resolve_device(args.device)
    tracklets = find_tracklets(args.tracklets_root)
    logger.info("%d tracklets under %s", len(tracklets), args.tracklets_root)

    sizes = {k: v for k, v in (("embed_dim", args.embed_dim), ("depth", args.depth),
                               ("num_heads", args.num_heads)) if v > 0}
    encoder_kwargs = {"patch_size": args.patch_size, "tubelet": args.tubelet, **sizes}
    encoder = build_video_backbone(args.arch, args.seq_len, tuple(args.img_size),
                                   **encoder_kwargs)
    decoder_dim = args.decoder_dim or max(encoder.out_dim // 2, 8)
    decoder_heads = args.decoder_heads or max(decoder_dim // 64, 1)
    model = VideoMAEPretrainer(encoder, decoder_dim, args.decoder_depth, decoder_heads,
                               args.mask_ratio).to(device)

    transform = build_clip_transform(tuple(args.img_size), [0.485, 0.456, 0.406],
                                     [0.229, 0.224, 0.225], is_train=True, erasing_prob=0.0)
    dataset = VideoClipDataset([(t, 0, 0) for t in tracklets], args.seq_len, args.sampler,
                               transform)
    batch_size = min(args.batch_size, len(dataset))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=args.num_workers, collate_fn=video_collate,
                        persistent_workers=args.num_workers > 0)
    iters = args.iters or len(loader)
    total = args.epochs * iters
    warmup = int(args.warmup_epochs * iters)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr,
                                  weight_decay=args.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return args.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    step = 0
    model.train()
    for epoch in range(args.epochs):
        data = iter(loader)
        losses = []
        for _ in progress(range(iters), desc=f"epoch {epoch + 1}/{args.epochs}"):
            try:
                batch = next(data)
            except StopIteration:
                data = iter(loader)
                batch = next(data)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = model(batch["img"].to(device, non_blocking=True))["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"VideoMAE loss is {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
        logger.info("epoch %d: reconstruction loss %.4f", epoch + 1, sum(losses) / len(losses))

    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "arch": args.arch, "encoder": encoder_kwargs,
             "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
             "epoch": args.epochs}
    path = save_checkpoint(state, args.output)
    logger.info("saved %s", path)
    return path


if __name__ == "__main__":
    main()
