"""Parameters, counted FLOPs and clip throughput of every video backbone.

Clips of 8 x 224 x 112 (T x H x W). Transformers use ViT-S dims (embed 384, depth 12, 6 heads,
patch 16) unless ``--tiny``; CNNs are ResNet-50 based. FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (attention computed with explicit matmuls so it
is counted; 1 multiply-add = 2 FLOPs). The reference row is ViViT model 1 (joint space-time
attention); the ratio columns divide by it.

    python benchmarks/bench_video.py [--batch 2] [--reps 2] [--device auto] [--tiny]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from reid.models.video import build_video_backbone
from reid.models.video.vit_blocks import explicit_attention
from reid.utils.env import resolve_device

ARCHS = ["vivit_m1", "vivit_m2", "vivit_m3", "vivit_m4", "timesformer", "videomae_vit",
         "video_resnet2d_avg", "video_resnet2d_attn", "i3d_resnet50"]


def measure(arch: str, device: torch.device, batch: int, reps: int, tiny: bool,
            frames: int = 8, size: tuple[int, int] = (224, 112)) -> dict:
    kwargs = {}
    if tiny and not arch.startswith(("video_resnet", "i3d")):
        kwargs = {"embed_dim": 64, "depth": 2, "num_heads": 4}
    model = build_video_backbone(arch, frames, size, **kwargs).to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    one = torch.randn(1, 3, frames, *size, device=device)
    with torch.no_grad(), explicit_attention(), FlopCounterMode(display=False) as counter:
        model(one)
    flops = counter.get_total_flops()
    x = torch.randn(batch, 3, frames, *size, device=device)
    with torch.no_grad():
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    tokens = getattr(model, "num_tokens", None)
    return {"arch": arch, "params": params, "flops": flops, "tokens": tokens,
            "clips_s": batch * reps / elapsed}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="embed 64 / depth 2 transformers")
    p.add_argument("--archs", nargs="*", default=ARCHS)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    rows = [measure(a, device, args.batch, args.reps, args.tiny) for a in args.archs]
    ref = next((r for r in rows if r["arch"] == "vivit_m1"), rows[0])
    print(f"device={device} threads={torch.get_num_threads()} clip=8x224x112 batch={args.batch} "
          f"reps={args.reps} dims={'tiny 64/2/4' if args.tiny else 'ViT-S 384/12/6'}; "
          f"reference = {ref['arch']}")
    print(f"{'arch':<20}{'params M':>10}{'tokens':>8}{'GFLOPs':>9}{'x ref':>7}"
          f"{'clips/s':>9}{'x ref':>7}")
    for r in rows:
        print(f"{r['arch']:<20}{r['params'] / 1e6:>10.2f}{str(r['tokens'] or '-'):>8}"
              f"{r['flops'] / 1e9:>9.1f}{r['flops'] / ref['flops']:>7.2f}"
              f"{r['clips_s']:>9.2f}{r['clips_s'] / ref['clips_s']:>7.2f}")


if __name__ == "__main__":
    main()
