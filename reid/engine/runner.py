"""The training loop shared by every method.

A method is a subclass of :class:`BaseRunner` that fills in exactly two places, as in
OpenUnReID: :meth:`BaseRunner.update_labels` (once per epoch, e.g. clustering for SpCL) and
:meth:`BaseRunner.train_step` (one optimisation step). Everything else -- epochs, schedules,
evaluation, checkpoints, resume, logging -- lives here once.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid.evaluation.evaluator import DatasetEvaluator
from reid.solver import load_optimizer_state
from reid.utils.checkpoint import load_checkpoint, save_checkpoint
from reid.utils.distributed import (
    broadcast_buffers,
    check_same_across_ranks,
    is_main_process,
    wrap_ddp,
)
from reid.utils.env import get_rng_state, set_rng_state
from reid.utils.errors import CheckpointError, TrainingDivergedError
from reid.utils.progress import progress

logger = logging.getLogger(__name__)

# the run summary calls a result suspect when its last mAP is below this fraction of the initial
# model's (a short run may dip a little before it learns; a diverged one loses most of it)
SUSPECT_DROP = 0.75


class NonFiniteLossError(TrainingDivergedError):
    """Training produced a NaN or infinite loss, gradient or feature; the last good checkpoint
    is kept."""


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    """True when every floating-point tensor of a state dict is finite (one reduction each)."""
    return all(bool(torch.isfinite(v).all()) for v in state.values()
               if torch.is_tensor(v) and v.dtype.is_floating_point)


class BaseRunner:
    """Epoch loop: ``update_labels(epoch)`` then ``iters`` x ``train_step(iteration)``.

    Args:
        model: the encoder (train-mode forward returns a dict, eval-mode normalised features).
        optimizer, scheduler: epoch-based scheduler stepped after every epoch.
        evaluator: evaluates the model on the test sets (or None to skip evaluation).
        output_dir: where ``last.pth``, ``best.pth``, ``metrics.jsonl`` (one line per
            evaluation), ``labels.jsonl`` (one line per epoch of label statistics, e.g. number
            of clusters), ``train.jsonl`` (one line per epoch of mean losses) and
            ``eval.json`` go.
        max_epochs, iters: epochs and iterations per epoch.
        eval_period, checkpoint_period: in epochs.
        device: where the model lives.
        amp: bf16 autocast on CUDA (ignored on CPU).
        writer: optional TensorBoard ``SummaryWriter``.
        ema: a :class:`reid.models.ModelEMA` of ``model`` updated after every optimiser step;
            it is the model evaluated and kept in ``best.pth`` (checkpoints hold both), or None.

    Guards: a non-finite loss, total gradient norm or feature (:meth:`check_features`) stops
    the run with :class:`NonFiniteLossError` before the optimiser step, so ``last.pth`` keeps
    the last good state; ``best.pth`` holds the best evaluation so far, the initial model
    included, and never a non-finite model; reasons to doubt the result (``suspect``) are
    listed by :meth:`summary`.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        evaluator: DatasetEvaluator | None,
        output_dir: str | Path,
        max_epochs: int,
        iters: int,
        eval_period: int = 1,
        checkpoint_period: int = 1,
        device: torch.device | str = "cpu",
        amp: bool = False,
        writer: Any = None,
        ema: Any = None,
    ) -> None:
        self.model = model
        self.ema = ema
        self.device = torch.device(device)
        # training forwards go through DDP under torchrun; checkpoints / evaluation use the module
        self.train_model = wrap_ddp(model, self.device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.evaluator = evaluator
        self.output_dir = Path(output_dir)
        self.max_epochs = max_epochs
        self.iters = iters
        self.eval_period = max(1, eval_period)
        self.checkpoint_period = max(1, checkpoint_period)
        self.amp = amp and self.device.type == "cuda"
        self.writer = writer
        self.epoch = 0
        self.best_map = -1.0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.init_description = ""  # where the initial weights come from (logged by run)
        self.saved_epoch = 0  # epochs held by the last checkpoint written or loaded
        self.suspect: list[str] = []  # reasons to doubt the result (run summary)
        self.collapse_streak: dict[str, int] = {}  # consecutive collapsed clusterings per set
        self._iteration = (0, 0)  # (epoch, iteration) of the current step, for error messages

    # ----------------------------------------------------------------- method hooks
    def update_labels(self, epoch: int) -> dict[str, float]:
        """Recompute training targets at the start of ``epoch``; returns statistics to log."""
        return {}

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the losses (their sum is back-propagated)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after ``optimizer.step()`` and the mean-teacher update (e.g. the momentum
        update of a memory whose loss needed the old rows: Cluster Contrast)."""

    def method_state(self) -> dict[str, Any]:
        """Extra state of the method saved in checkpoints (memory, label state...)."""
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`method_state` returned."""

    def set_epoch(self, epoch: int) -> None:
        """Tell samplers the epoch (deterministic shuffling, exact resume)."""

    # ----------------------------------------------------------------- loop
    def autocast(self):
        """bf16 autocast on CUDA when AMP is on; a no-op context otherwise."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train from scratch or from ``output_dir/last.pth``; returns the last evaluation."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        last = self.output_dir / "last.pth"
        if resume and last.is_file():
            self.load(last)
            logger.info("resumed from %s at epoch %d: its weights, optimizer, schedule and "
                        "method state replace the initial weights", last, self.epoch)
        else:
            if resume:
                logger.warning("--resume given but %s does not exist: starting a new run", last)
            if self.init_description:
                logger.info("new run; initial weights: %s", self.init_description)
            (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
            (self.output_dir / "labels.jsonl").unlink(missing_ok=True)
            (self.output_dir / "train.jsonl").unlink(missing_ok=True)
            self.before_train()
            self.evaluate_and_log(epoch=-1, extra={})
        results: dict[str, Any] = self.history[-1] if self.history else {}
        while self.epoch < self.max_epochs:
            epoch = self.epoch
            self.set_epoch(epoch)
            stats = self.update_labels(epoch)
            for key, value in stats.items():
                self._scalar(f"labels/{key}", value, epoch)
            self._log_labels(epoch, stats)
            self.train_epoch(epoch)
            self.scheduler.step()
            self.epoch = epoch + 1
            if self.epoch % self.eval_period == 0 or self.epoch == self.max_epochs:
                results = self.evaluate_and_log(epoch=epoch, extra=stats)
            if self.epoch % self.checkpoint_period == 0 or self.epoch == self.max_epochs:
                self.save(last)
        return results

    def before_train(self) -> None:
        """Called once before the initial evaluation of a new (not resumed) run."""

    def train_epoch(self, epoch: int) -> None:
        self.train_model.train()
        meters: dict[str, float] = {}
        bar = progress(range(self.iters), desc=f"epoch {epoch}", disable=not is_main_process())
        start = time.perf_counter()
        for it in bar:
            self._iteration = (epoch, it)
            losses = self.train_step(it)
            total = sum(losses.values())
            if not torch.isfinite(total.detach()):
                self.diverged(f"loss { {k: float(v.detach()) for k, v in losses.items()} }")
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            grads = [p.grad for g in self.optimizer.param_groups for p in g["params"]
                     if p.grad is not None]
            if grads:  # one fused norm over every gradient, checked before the step
                norm = torch.nn.utils.get_total_norm(grads, foreach=True)
                if not torch.isfinite(norm):
                    self.diverged(f"gradient (total norm {float(norm)})")
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.after_step()
            self.global_step += 1
            for key, value in losses.items():
                meters[key] = meters.get(key, 0.0) + float(value.detach())
                self._scalar(f"train/{key}", float(value.detach()), self.global_step)
            bar.set_postfix({k: f"{v / (it + 1):.3f}" for k, v in meters.items()})
        self._scalar("train/lr", self.optimizer.param_groups[0]["lr"], epoch)
        elapsed = time.perf_counter() - start
        logger.info(
            "epoch %d: %s, lr %.2e, %.1f s",
            epoch,
            ", ".join(f"{k} {v / max(1, self.iters):.4f}" for k, v in meters.items()),
            self.optimizer.param_groups[0]["lr"],
            elapsed,
        )
        if is_main_process():  # mean losses per epoch, for tools/plot.py
            line = {"epoch": epoch, **{k: v / max(1, self.iters) for k, v in meters.items()},
                    "lr": self.optimizer.param_groups[0]["lr"], "seconds": elapsed}
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.output_dir / "train.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

    def diverged(self, what: str) -> None:
        """Raise :class:`NonFiniteLossError` for a non-finite ``what`` at the current step."""
        epoch, it = self._iteration
        lr = self.optimizer.param_groups[0]["lr"]
        last = self.output_dir / "last.pth"
        kept = (f"the last good checkpoint {last} is kept (after epoch {self.saved_epoch})"
                if self.saved_epoch > 0 and last.is_file() else "no checkpoint was written")
        raise NonFiniteLossError(
            f"training diverged: non-finite {what} at epoch {epoch} iteration {it} (step "
            f"{self.global_step + 1}, learning rate {lr:.3g}); {kept}: lower SOLVER.BASE_LR "
            "and start again"
        )

    def check_features(self, feats: torch.Tensor) -> None:
        """Stop with the divergence error when the (B, D) training features are not finite
        (before they reach the memory or a loss)."""
        if not torch.isfinite(feats.detach()).all():
            self.diverged("features")

    def summary(self) -> list[tuple[int, str]]:
        """``(logging level, line)`` of the run's end: best and last evaluation and, when there
        is a reason to doubt the result, a warning that says it is suspect and why."""
        lines: list[tuple[int, str]] = []
        trained = [h for h in self.history if h["epoch"] >= 0]
        if self.history:
            first, last = self.history[0], self.history[-1]
            best = max(self.history, key=lambda h: h["mAP"] if math.isfinite(h["mAP"]) else -1)
            where = "initial model" if best["epoch"] < 0 else f"epoch {best['epoch'] + 1}"
            lines.append((logging.INFO, (
                f"summary: initial mAP {100 * first['mAP']:.1f}%, last {100 * last['mAP']:.1f}% "
                f"(epoch {last['epoch'] + 1}, {self.output_dir / 'last.pth'}), best "
                f"{100 * best['mAP']:.1f}% ({where}, {self.output_dir / 'best.pth'})")))
            if trained and last["mAP"] < SUSPECT_DROP * first["mAP"]:
                reason = (f"the last mAP {100 * last['mAP']:.1f}% is far below the initial "
                          f"model's {100 * first['mAP']:.1f}% (diverging? lower SOLVER.BASE_LR)")
                if reason not in self.suspect:
                    self.suspect.append(reason)
        if self.suspect:
            lines.append((logging.WARNING,
                          "the result is SUSPECT: " + "; ".join(self.suspect)))
        return lines

    def note_collapse(self, name: str, reason: str | None, epoch: int, hint: str) -> None:
        """Count consecutive collapsed clusterings of set ``name`` (``reason`` None: not
        collapsed); from the second in a row, warn naming ``hint`` and mark the run suspect."""
        if reason is None:
            self.collapse_streak[name] = 0
            return
        streak = self.collapse_streak.get(name, 0) + 1
        self.collapse_streak[name] = streak
        if streak >= 2:
            logger.warning("pseudo labels of %s collapsed for %d epochs in a row (epoch %d: %s): "
                           "%s", name, streak, epoch, reason, hint)
            note = f"the pseudo labels of {name} collapsed ({reason}) from epoch {epoch - 1}"
            if not any(s.startswith(f"the pseudo labels of {name} collapsed") for s in
                       self.suspect):
                self.suspect.append(note)

    # ----------------------------------------------------------------- evaluation
    @property
    def eval_model(self) -> nn.Module:
        """The model evaluated and saved as ``best.pth``: the mean teacher when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def evaluate_and_log(self, epoch: int, extra: dict[str, float]) -> dict[str, Any]:
        """Evaluate, append a line to ``metrics.jsonl``, write ``eval.json``, keep ``best.pth``."""
        if self.evaluator is None or not is_main_process():
            return {}
        rng = get_rng_state()  # evaluation must not shift the training random stream
        try:
            all_results = self.evaluator.evaluate(self.eval_model)
        finally:
            set_rng_state(rng)
        first = next(iter(all_results.values()))
        keys = ("mAP", "mINP", "rank1", "rank5", "rank10")
        line: dict[str, Any] = {"epoch": epoch, **{k: float(first[k]) for k in keys}}
        for name, res in all_results.items():
            line.update({f"{name}/{k}": float(res[k]) for k in keys})
        line.update({k: float(v) for k, v in extra.items()})
        self.history.append(line)
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        tmp = self.output_dir / "eval.json.tmp"
        tmp.write_text(json.dumps(line, indent=2), encoding="utf-8")
        tmp.replace(self.output_dir / "eval.json")
        step = epoch + 1
        for key in ("mAP", "mINP", "rank1", "rank5", "rank10"):
            self._scalar(f"test/{key}", line[key], step)
        state = self.eval_model.state_dict()
        if not math.isfinite(line["mAP"]) or not _all_finite(state):
            logger.warning("epoch %d: the evaluated model is not finite: best.pth not updated",
                           epoch)
            self.suspect.append(f"the model evaluated after epoch {epoch + 1} is not finite")
        elif line["mAP"] > self.best_map:  # the initial model (epoch 0) counts too
            self.best_map = line["mAP"]
            save_checkpoint({"model": state, "epoch": epoch + 1, "mAP": line["mAP"]},
                            self.output_dir / "best.pth")
        logger.info(
            "%s: mAP %.1f%%  mINP %.1f%%  rank-1 %.1f%%  rank-5 %.1f%%  rank-10 %.1f%%",
            "initial model" if epoch < 0 else f"epoch {epoch}",
            *(100 * line[k] for k in ("mAP", "mINP", "rank1", "rank5", "rank10")),
        )
        return line

    def _log_labels(self, epoch: int, stats: dict[str, float]) -> None:
        if stats and is_main_process():
            with open(self.output_dir / "labels.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"epoch": epoch, **stats}) + "\n")

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None and isinstance(value, (int, float)) and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; with a mean teacher, ``"ema"`` holds it (the weights
        :func:`reid.models.read_state_dict` reads from this checkpoint)."""
        extra = {"ema": self.ema.state_dict()} if self.ema is not None else {}
        return {
            **extra,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "method": self.method_state(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_map": self.best_map,
            "history": [json.dumps(h) for h in self.history],
            "rng": get_rng_state(),
            "guards": {"suspect": list(self.suspect),
                       "collapse_streak": dict(self.collapse_streak)},
        }

    def save(self, path: str | Path) -> None:
        broadcast_buffers(self.model)
        if self.ema is not None:
            broadcast_buffers(self.ema.module)
        check_same_across_ranks({"model": self.model.state_dict(), "method": self.method_state(),
                                 "ema": self.ema.state_dict() if self.ema is not None else {}},
                                "the training state")
        if is_main_process():
            try:
                save_checkpoint(self.state_dict(), path)
            except KeyboardInterrupt:  # held until the checkpoint was complete
                self.saved_epoch = self.epoch
                raise
        self.saved_epoch = self.epoch

    def load(self, path: str | Path) -> None:
        state = load_checkpoint(path, map_location="cpu")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise CheckpointError(
                f"cannot resume from {path}: it holds another model than the config builds "
                f"({' '.join(str(err).split())[:400]}); resume with the config the run "
                "started with, or start a new run in another OUTPUT_DIR") from None
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError(f"{path} has no mean-teacher state, but MODEL.EMA_MOMENTUM is "
                                 "set: resume with the setting the run was started with")
            self.ema.load_state_dict(state["ema"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.load_method_state(state["method"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.best_map = float(state["best_map"])
        self.history = [json.loads(h) for h in state["history"]]
        set_rng_state(state["rng"])
        guards = state.get("guards", {})
        self.suspect = list(guards.get("suspect", []))
        self.collapse_streak = dict(guards.get("collapse_streak", {}))
        self.saved_epoch = self.epoch
        if is_main_process():  # drop evaluations logged after the checkpoint (a crash in between)
            lines = "".join(json.dumps(h) + "\n" for h in self.history)
            (self.output_dir / "metrics.jsonl").write_text(lines, encoding="utf-8")
            for labels in (self.output_dir / "labels.jsonl", self.output_dir / "train.jsonl"):
                if labels.is_file():
                    kept = [ln for ln in labels.read_text(encoding="utf-8").splitlines()
                            if ln.strip() and json.loads(ln)["epoch"] < self.epoch]
                    labels.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
