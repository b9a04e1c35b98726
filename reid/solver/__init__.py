"""Optimizers and learning-rate schedules (epoch-based warm-up + multi-step decay)."""
from reid.solver.build import (
    build_lr_scheduler,
    build_optimizer,
    load_optimizer_state,
    warmup_multistep_factor,
)

__all__ = [
    "build_optimizer", "build_lr_scheduler", "load_optimizer_state", "warmup_multistep_factor",
]
