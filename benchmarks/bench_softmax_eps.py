"""How much the released SpCL code's two 1e-6 terms change the unified loss and its gradient.

The released code computes ``-log(exp(l+) / (sum_k exp(l_k) + 1e-6) + 1e-6)``; this suite
computes the exact ``-log softmax`` unless ``MEMORY.SOFTMAX_EPS 1e-6``. The ``+ 1e-6`` inside
the log matters when the positive's probability is small, i.e. on untrained features with many
prototypes. Two feature models, D = 2048, temperature 0.05, batch 64:

* ``isotropic``: random unit vectors (cosine ~0 between any two);
* ``correlated``: a shared direction plus noise, mean cosine ~0.8 (what an untrained or
  ImageNet-initialised network gives re-ID crops); the positive is the sample's own noisy copy;
* ``uninformative``: the same, but the batch features are fresh draws, no closer to their
  positive than to any other prototype (p(positive) ~ 1 / P: the first steps of a run).

Prints, per model and number of prototypes P: the mean probability of the positive, the loss
without and with the terms, their difference, and the relative L2 difference of the gradient
with respect to the features, both in the same process.

    python benchmarks/bench_softmax_eps.py
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reid.loss.contrastive import contrastive_logits_loss


def _features(n: int, dim: int, g: torch.Generator, common: torch.Tensor | None
              ) -> torch.Tensor:
    """(n, dim) unit features: isotropic (``common`` None) or ``common`` plus noise."""
    noise = torch.randn(n, dim, generator=g, dtype=torch.float64)
    if common is None:
        return F.normalize(noise, dim=1)
    return F.normalize(common + 0.5 * noise / dim ** 0.5 * common.norm(), dim=1)


def measure(kind: str, num_protos: int, batch: int = 64, dim: int = 2048,
            tau: float = 0.05) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    common = None if kind == "isotropic" else torch.randn(1, dim, generator=g,
                                                            dtype=torch.float64)
    protos = _features(num_protos, dim, g, common)
    targets = torch.arange(batch)
    if kind == "uninformative":
        feats = _features(batch, dim, g, common)
    else:
        jitter = 0.3 * torch.randn(batch, dim, generator=g, dtype=torch.float64) / dim ** 0.5
        feats = F.normalize(protos[:batch] + jitter, dim=1)
    losses, grads = {}, {}
    for eps in (0.0, 1e-6):
        x = feats.clone().requires_grad_(True)
        loss = contrastive_logits_loss(x, protos, targets, tau, eps=eps)
        loss.backward()
        losses[eps] = loss.item()
        grads[eps] = x.grad
    p = torch.softmax(feats @ protos.t() / tau, dim=1)[targets, targets]
    return {
        "p_pos": float(p.mean()),
        "loss": losses[0.0],
        "loss_eps": losses[1e-6],
        "diff": losses[0.0] - losses[1e-6],
        "grad_rel": float((grads[1e-6] - grads[0.0]).norm() / grads[0.0].norm()),
    }


def main() -> None:
    print("| features | prototypes | mean p(positive) | loss exact | loss with 1e-6 | "
          "difference | gradient rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("isotropic", "correlated", "uninformative"):
        for num in (1000, 5000, 20000):
            r = measure(kind, num)
            print(f"| {kind} | {num} | {r['p_pos']:.2e} | {r['loss']:.5f} | {r['loss_eps']:.5f} "
                  f"| {r['diff']:.1e} | {100 * r['grad_rel']:.2f}% |")


if __name__ == "__main__":
    main()
