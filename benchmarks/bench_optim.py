"""Time one optimizer step, and one whole training step, with PyTorch's fused kernel
(``SOLVER.FUSED True``, ``build_optimizer(fused=True)``) against its default implementation
(reference).

On the CPU PyTorch's default Adam is a Python loop over the parameter tensors (157 for
MobileNetV2); the fused kernel updates them all at once. Both run here on the same model, with
the same gradients, and the parameters after ``--steps`` updates are compared (max abs diff).
The training step is the real one of the CPU configs: encoder forward + backward + step on a
batch of 64 images (128x64 by default), the loss a plain mean of the embedding.

    python benchmarks/bench_optim.py                       # mobilenet_v2, resnet18, resnet50
    python benchmarks/bench_optim.py --device cuda
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch

from reid.config import get_cfg
from reid.models import build_model
from reid.solver import build_optimizer


def best_time(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls (seconds), after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def model_for(arch: str, device: torch.device) -> torch.nn.Module:
    cfg = get_cfg()
    cfg.MODEL.ARCH = arch
    cfg.MODEL.PRETRAINED_PATH = ""
    return build_model(cfg).to(device).train()


def bench(arch: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    base = model_for(arch, device)
    models = {"ref": base, "fused": copy.deepcopy(base)}
    opts = {k: build_optimizer(m.parameters(), "adam", lr=3.5e-4, weight_decay=5e-4,
                               fused=(k == "fused")) for k, m in models.items()}
    for p in base.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    for p, q in zip(base.parameters(), models["fused"].parameters(), strict=True):
        q.grad = p.grad.clone()
    out = {"tensors": float(sum(1 for p in base.parameters() if p.requires_grad))}
    for k, opt in opts.items():
        out[f"step_{k}"] = best_time(opt.step, args.steps, device)
    out["diff"] = max(float((p - q).detach().abs().max()) for p, q in
                      zip(base.parameters(), models["fused"].parameters(), strict=True))
    h, w = args.size
    x = torch.randn(args.batch, 3, h, w, device=device)
    for k, model in models.items():
        def train_step(model=model, opt=opts[k]) -> None:
            opt.zero_grad(set_to_none=True)
            model(x)["feat"].mean().backward()
            opt.step()
        out[f"train_{k}"] = best_time(train_step, args.train_steps, device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["mobilenet_v2", "resnet18", "resnet50"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 64], help="height width")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"Adam, best of {args.steps} optimizer steps / {args.train_steps} training steps "
          f"(batch {args.batch} at {args.size[0]}x{args.size[1]})")
    print(f"{'arch':>13} {'tensors':>7} {'ref ms':>8} {'fused ms':>8} {'speed-up':>8} "
          f"{'max diff':>9} {'train ref ms':>12} {'train fused ms':>14} {'speed-up':>8}")
    for arch in args.archs:
        r = bench(arch, args, device)
        print(f"{arch:>13} {int(r['tensors']):>7} {1e3 * r['step_ref']:>8.1f} "
              f"{1e3 * r['step_fused']:>8.1f} {r['step_ref'] / r['step_fused']:>7.1f}x "
              f"{r['diff']:>9.1e} {1e3 * r['train_ref']:>12.0f} {1e3 * r['train_fused']:>14.0f} "
              f"{r['train_ref'] / r['train_fused']:>7.2f}x")


if __name__ == "__main__":
    main()
