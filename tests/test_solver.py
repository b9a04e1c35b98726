"""Optimizers and the learning-rate schedule: hand-computed factors, the fused kernels against
PyTorch's reference loop, exact resume."""
from __future__ import annotations

import copy

import pytest
import torch

from reid.solver import (
    build_lr_scheduler,
    build_optimizer,
    load_optimizer_state,
    warmup_multistep_factor,
)


def test_warmup_multistep_factor_by_hand() -> None:
    f = dict(warmup_epochs=10, warmup_factor=0.01, steps=[40, 20], gamma=0.1)
    # linear from 0.01 to 1 over 10 epochs: 0.01 * (1 - e / 10) + e / 10
    assert warmup_multistep_factor(0, **f) == pytest.approx(0.01)
    assert warmup_multistep_factor(5, **f) == pytest.approx(0.505)
    assert warmup_multistep_factor(9, **f) == pytest.approx(0.901)
    assert warmup_multistep_factor(10, **f) == 1.0
    assert warmup_multistep_factor(19, **f) == 1.0
    assert warmup_multistep_factor(20, **f) == pytest.approx(0.1)  # milestones may be unsorted
    assert warmup_multistep_factor(39, **f) == pytest.approx(0.1)
    assert warmup_multistep_factor(40, **f) == pytest.approx(0.01)
    assert warmup_multistep_factor(0, 0, 0.01, [], 0.1) == 1.0


def test_scheduler_sets_the_learning_rate_of_every_epoch() -> None:
    opt = build_optimizer(torch.nn.Linear(3, 2).parameters(), "adam", lr=0.1)
    sched = build_lr_scheduler(opt, warmup_epochs=2, warmup_factor=0.5, steps=[3], gamma=0.1)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.05, 0.075, 0.1, 0.01, 0.01])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    model[0].bias.requires_grad_(False)  # frozen parameters are left out
    return model


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for i in steps:
        g = torch.Generator().manual_seed(100 + i)
        x = torch.randn(6, 3, 8, 8, generator=g)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_kernel_equals_the_reference_loop(name: str) -> None:
    ref, fused = _model(), _model()
    opt_ref = build_optimizer(ref.parameters(), name, lr=1e-2, weight_decay=5e-4)
    opt = build_optimizer(fused.parameters(), name, lr=1e-2, weight_decay=5e-4, fused=True)
    assert opt.defaults["fused"] and not opt_ref.defaults["fused"]  # the default: PyTorch's
    assert sum(len(g["params"]) for g in opt.param_groups) == 5  # 6 tensors, one frozen
    _train(ref, opt_ref, range(6))
    _train(fused, opt, range(6))
    init = _model()
    for a, b, c in zip(ref.parameters(), fused.parameters(), init.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert torch.equal(a, c) != a.requires_grad  # trained tensors moved, the frozen one not


def test_fused_optimizer_resumes_exactly_and_reads_reference_checkpoints() -> None:
    """What a checkpoint of a ``SOLVER.FUSED`` run restores, and a default run's checkpoint
    continued with ``SOLVER.FUSED True``."""
    full = _model()
    opt_full = build_optimizer(full.parameters(), "adam", lr=1e-2, fused=True)
    _train(full, opt_full, range(6))

    part = _model()
    opt_part = build_optimizer(part.parameters(), "adam", lr=1e-2, fused=True)
    _train(part, opt_part, range(3))
    saved = copy.deepcopy((part.state_dict(), opt_part.state_dict()))
    resumed = _model()
    resumed.load_state_dict(saved[0])
    opt_resumed = build_optimizer(resumed.parameters(), "adam", lr=1e-2, fused=True)
    load_optimizer_state(opt_resumed, saved[1])
    _train(resumed, opt_resumed, range(3, 6))
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)

    # a checkpoint written by the default loop continues the same update
    old = _model()
    opt_old = build_optimizer(old.parameters(), "adam", lr=1e-2)
    _train(old, opt_old, range(3))
    again = _model()
    again.load_state_dict(old.state_dict())
    opt_again = build_optimizer(again.parameters(), "adam", lr=1e-2, fused=True)
    load_optimizer_state(opt_again, copy.deepcopy(opt_old.state_dict()))
    assert opt_again.param_groups[0]["fused"]  # PyTorch's own load would restore the loop
    _train(again, opt_again, range(3, 6))
    for a, b in zip(full.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    back = build_optimizer(_model().parameters(), "adam", lr=1e-2)  # and the other way round
    load_optimizer_state(back, opt_full.state_dict())
    assert not back.param_groups[0]["fused"] and back.state_dict()["state"]


def test_automatic_choice_fuses_where_the_device_has_the_kernel() -> None:
    assert build_optimizer(_model().parameters(), "adam", fused=None).defaults["fused"]
    meta = torch.nn.Linear(3, 2, device="meta")
    assert not build_optimizer(meta.parameters(), "adam", fused=None).defaults["fused"]
    with pytest.raises(KeyError, match="unknown"):
        build_optimizer(_model().parameters(), "lamb")


def test_config_key_reaches_the_optimizer() -> None:
    from reid.config import get_cfg
    from reid.engine.build import _solver

    cfg = get_cfg()
    for fused in (False, True):
        cfg.SOLVER.FUSED = fused
        opt, _ = _solver(cfg, _model())
        assert bool(opt.defaults["fused"]) is fused
