"""Throughput of the image encoders: images/s of forward (eval) and forward+backward (train).

For each backbone (ResNet-18/50, MobileNetV2) and input size (256x128, 128x64) it times the
reference configuration (float32, contiguous NCHW) and two variants in the same run: channels-
last memory format and bf16 autocast; the ratio column is variant / reference throughput.
Runs on CPU and, when available, on CUDA. Random initialisation, random inputs, batch 32.

    python benchmarks/bench_models.py [--iters 3] [--batch 32] [--archs resnet18 ...]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from reid.models import build_encoder

MODES = ("fp32", "channels_last", "bf16")


def _time(fn, iters: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / iters


def bench(arch: str, size: tuple[int, int], mode: str, device: torch.device, batch: int,
          iters: int, warmup: int) -> tuple[float, float]:
    """(forward images/s, forward+backward images/s)."""
    model = build_encoder(arch, channels_last=mode == "channels_last").to(device)
    if mode == "channels_last":
        model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, *size, device=device)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16"
           else contextlib.nullcontext())

    def forward() -> None:
        with torch.inference_mode(), amp:
            model(x)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        with amp:
            out = model(x)
        out["feat"].float().pow(2).mean().backward()

    model.eval()
    fwd = _time(forward, iters, warmup, device)
    model.train()
    bwd = _time(train_step, iters, warmup, device)
    return batch / fwd, batch / bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "mobilenet_v2"])
    parser.add_argument("--sizes", nargs="+", default=["256x128", "128x64"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--devices", nargs="+", default=None)
    args = parser.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
          f"{args.iters} timed iterations after {args.warmup} warm-up")
    head = (f"{'device':<7}{'arch':<14}{'size':<9}{'mode':<15}{'fwd img/s':>11}{'ratio':>7}"
            f"{'fwd+bwd img/s':>15}{'ratio':>7}")
    print(head)
    print("-" * len(head))
    for dev in devices:
        device = torch.device(dev)
        for arch in args.archs:
            for size_s in args.sizes:
                size = tuple(int(v) for v in size_s.split("x"))
                ref = None
                for mode in MODES:
                    torch.manual_seed(0)
                    fwd, bwd = bench(arch, size, mode, device, args.batch, args.iters,
                                     args.warmup)
                    ref = ref or (fwd, bwd)
                    print(f"{dev:<7}{arch:<14}{size_s:<9}{mode:<15}{fwd:>11.1f}"
                          f"{fwd / ref[0]:>7.2f}{bwd:>15.1f}{bwd / ref[1]:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
