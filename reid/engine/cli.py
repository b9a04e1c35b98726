"""Command-line entry points behind ``tools/train.py`` and ``tools/test.py``.

They live in the package (not in ``tools/``) so they are importable and testable, and are also
installed as the ``reid-train`` / ``reid-test`` console scripts.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.config import cfg_diff, load_cfg, save_cfg
from reid.config.validate import validate_cfg
from reid.utils.distributed import get_rank, get_world_size, init_distributed, is_main_process
from reid.utils.env import seed_all
from reid.utils.errors import ConfigError, UserError
from reid.utils.logging import setup_logger

logger = logging.getLogger("reid.cli")

DEBUG_ENV = "REID_DEBUG"  # REID_DEBUG=1: user errors show their traceback too
EXIT_USER_ERROR = 2  # a config, dataset, checkpoint or device error (argparse's status too)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class _Parser(argparse.ArgumentParser):
    """Flags anywhere on the command line; every other word is a ``KEY VALUE`` override."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None
                   ) -> argparse.Namespace:  # type: ignore[override]
        ns, rest = self.parse_known_args(args, namespace)
        flags = [w for w in rest if w.startswith("--")]
        if flags:
            self.error(f"unrecognized option(s): {' '.join(flags)} (options: "
                       f"{', '.join(sorted(self._option_string_actions))})")
        ns.opts = rest
        return ns


def make_parser(description: str, config: bool = True) -> argparse.ArgumentParser:
    """The parser of every tool: flags anywhere, the other words ``KEY VALUE`` overrides
    (``args.opts``), ``--debug``, and (``config``) ``--config-file``."""
    parser = _Parser(description=description, allow_abbrev=False,
                     epilog="KEY VALUE overrides, e.g. SOLVER.MAX_EPOCHS 10 (every key: "
                            "reid/config/defaults.py). Flags may come anywhere. Exit status: 0 "
                            "success, 2 user error (config, dataset, checkpoint, device), 130 "
                            "interrupted, 1 anything else.")
    if config:
        parser.add_argument("--config-file", default="", metavar="FILE", help="YAML config file")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of user errors too (or set {DEBUG_ENV}=1)")
    return parser


_parser = make_parser


def setup_run(cfg, config_file: str) -> torch.device:
    """Device, logger, thread count and the config summary of a tool (train, test, the
    VideoMAE pretraining)."""
    device = init_distributed(cfg.DEVICE)
    setup_logger(cfg.OUTPUT_DIR if is_main_process() else None)
    if cfg.NUM_THREADS < 0:
        raise ConfigError(f"NUM_THREADS must be >= 0 (0 = torch's default), got {cfg.NUM_THREADS}")
    if cfg.NUM_THREADS > 0:
        _set_threads(cfg.NUM_THREADS)
    threads = f"{torch.get_num_threads()} CPU threads" + (
        " (NUM_THREADS)" if cfg.NUM_THREADS > 0 else " (torch's default; set NUM_THREADS)")
    diff = cfg_diff(cfg)
    changed = "\n".join(f"  {k}: {v!r}" for k, v in diff.items()) or "  (none)"
    logger.info("config %s on %s, world size %d", config_file or "(defaults)", device,
                get_world_size())
    logger.info("%s; full config in %s; keys that differ from the defaults:\n%s", threads,
                Path(cfg.OUTPUT_DIR) / "config.yaml", changed)
    return device


def _set_threads(num: int) -> None:
    """``num`` CPU threads for torch and for the clustering's numba and faiss kernels (data
    workers run one torch thread each, PyTorch's default)."""
    torch.set_num_threads(num)
    try:
        import numba

        numba.set_num_threads(min(num, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(num)
    except ImportError:  # pragma: no cover - faiss is optional at run time
        pass


def _writer(output_dir: str) -> Any:
    if not is_main_process():
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        logger.warning("tensorboard is not installed: no curves are written")
        return None
    return SummaryWriter(str(Path(output_dir) / "tb"))


def train_main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``tools/train.py --config-file F [--resume] [--debug] [KEY VALUE ...]`` (flags anywhere);
    returns the last evaluation (``mAP``, ``rank1``... as fractions; {} without evaluation).

    Raises:
        UserError: a config, dataset, checkpoint or device error, or diverged training
            (:func:`main_train` turns it into exit status 2).
        KeyboardInterrupt: Ctrl-C, after logging where the last checkpoint is and the exact
            command that resumes the run.
    """
    from reid.engine.build import build_runner

    parser = _parser("Train a re-ID model (SpCL UDA / USL or supervised)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT_DIR/last.pth (a new run if it does not exist)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    cfg = load_cfg(args.config_file or None, args.opts)
    validate_cfg(cfg)
    device = setup_run(cfg, args.config_file)
    seed_all(cfg.SEED + get_rank())
    if cfg.DETERMINISTIC:
        torch.use_deterministic_algorithms(True, warn_only=True)
    writer = _writer(cfg.OUTPUT_DIR)
    runner = None
    try:
        runner = build_runner(cfg, device=device, writer=writer)
        results = runner.run(resume=args.resume)
    except KeyboardInterrupt:
        if is_main_process():
            logger.warning("%s", _interrupted_message(cfg, argv, runner))
        raise
    finally:
        if writer is not None:
            writer.close()
    if is_main_process() and runner.history:
        first, last = runner.history[0], runner.history[-1]
        print(_table([("before training", first), ("after training", last)]))
        for level, line in runner.summary():
            logger.log(level, "%s", line)
    return results


def _interrupted_message(cfg, argv: list[str], runner: Any) -> str:
    """Where the last checkpoint is and the exact command that resumes the run."""
    last = Path(cfg.OUTPUT_DIR) / "last.pth"
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "reid-train"
    prog = f"python {sys.argv[0]}" if prog.endswith(".py") else prog
    if prog in ("-c", "python -c"):
        prog = "python tools/train.py"
    cmd = f"{prog} {shlex.join(argv + ([] if '--resume' in argv else ['--resume']))}"
    saved = getattr(runner, "saved_epoch", None)
    if last.is_file():
        when = f" (after epoch {saved})" if saved else ""
        return (f"interrupted; the last checkpoint is {last}{when}. Resume with:\n  {cmd}")
    return f"interrupted before the first checkpoint ({last} does not exist). Start again with:" \
           f"\n  {cmd}"


def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = f"{'':<18}{'mAP':>8}{'mINP':>8}{'rank-1':>8}{'rank-5':>8}{'rank-10':>9}"
    lines = [head, "-" * len(head)]
    for name, r in rows:
        lines.append(f"{name:<18}" + "".join(
            f"{100 * r[k]:{w}.1f}" for k, w in
            (("mAP", 8), ("mINP", 8), ("rank1", 8), ("rank5", 8), ("rank10", 9))))
    return "\n".join(lines)


def test_main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``tools/test.py --config-file F [KEY VALUE ...]``: evaluate ``MODEL.WEIGHTS`` (or features).

    Writes ``OUTPUT_DIR/eval.json`` with ``mAP``, ``mINP``, ``rank1``, ``rank5``, ``rank10``
    (fractions) of the first test set, and per-dataset results under ``datasets``.
    """
    from reid.data.build import build_dataset_from_cfg
    from reid.engine.build import build_evaluator
    from reid.models import build_model, load_pretrained

    parser = _parser("Evaluate a re-ID model on query / gallery")
    parser.add_argument("--features", default="", metavar="FILE",
                        help="evaluate saved features (.npz with 'query' and 'gallery' arrays, "
                        "as written with TEST.SAVE_FEATURES) instead of a model: TEST.FEATURES")
    args = parser.parse_args(argv)
    opts = list(args.opts) + (["TEST.FEATURES", args.features] if args.features else [])
    cfg = load_cfg(args.config_file or None, opts)
    device = setup_run(cfg, args.config_file)
    save_cfg(cfg, Path(cfg.OUTPUT_DIR) / "config.yaml")
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TARGET) or list(cfg.DATASETS.SOURCE)
    if not names:
        raise ConfigError("nothing to evaluate: set DATASETS.TEST (or TARGET / SOURCE)")
    tests = {n: build_dataset_from_cfg(cfg, n) for n in names}
    empty = [n for n, ds in tests.items() if not (ds.query and ds.gallery)]
    if empty:
        raise ConfigError(f"{', '.join(empty)}: no query / gallery split to evaluate (an "
                         "unlabelled folder: set?); set DATASETS.TEST to a set with one")
    if cfg.TEST.FEATURES:
        results = {n: _evaluate_saved(cfg, ds) for n, ds in tests.items()}
    else:
        num_domains = max(1, cfg.MODEL.DSBN.NUM_DOMAINS)
        model = build_model(cfg, num_classes=0, num_domains=num_domains).to(device)
        if cfg.MODEL.WEIGHTS:
            report = load_pretrained(model, cfg.MODEL.WEIGHTS,
                                     partial=cfg.MODEL.WEIGHTS_PARTIAL)
            logger.info("evaluating MODEL.WEIGHTS %s (%d tensors loaded)", cfg.MODEL.WEIGHTS,
                        len(report.loaded))
        else:
            logger.warning("MODEL.WEIGHTS is empty: evaluating an untrained model")
        evaluator = build_evaluator(cfg, tests, device,
                                    domain=cfg.MODEL.DSBN.TEST_DOMAIN % num_domains)
        evaluator.keep_features = cfg.TEST.SAVE_FEATURES
        results = evaluator.evaluate(model)
        for name, arrays in evaluator.saved_features.items():
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")  # e.g. "folder:/a/b"
            feat_path = Path(cfg.OUTPUT_DIR) / f"features_{safe}.npz"
            np.savez(feat_path, **arrays)
            logger.info("wrote %s (evaluate it again with TEST.FEATURES %s)", feat_path, feat_path)
    rows = [(n[:18], r) for n, r in results.items()]
    print(_table(rows))
    first = next(iter(results.values()))
    out = {k: float(first[k]) for k in ("mAP", "mINP", "rank1", "rank5", "rank10")}
    out["datasets"] = {n: {k: float(r[k]) for k in ("mAP", "mINP", "rank1", "rank5", "rank10")}
                       for n, r in results.items()}
    path = Path(cfg.OUTPUT_DIR) / "eval.json"
    path.write_text(json.dumps(out, indent=2), encoding="utf-8")
    logger.info("wrote %s", path)
    return out


def _evaluate_saved(cfg, dataset) -> dict[str, Any]:
    """Evaluate features saved as ``.npz`` with ``query``/``gallery`` (N, D) arrays."""
    from reid.evaluation import evaluate_features

    path = Path(cfg.TEST.FEATURES)
    if not path.is_file():
        raise ConfigError(f"TEST.FEATURES file not found: {path}")
    data = np.load(path)
    for key in ("query", "gallery"):
        if key not in data:
            raise ConfigError(f"{path} has no '{key}' array (expected keys 'query' and "
                              "'gallery')")
    qf, gf = torch.from_numpy(data["query"]).float(), torch.from_numpy(data["gallery"]).float()
    if len(qf) != len(dataset.query) or len(gf) != len(dataset.gallery):
        raise ConfigError(
            f"{path}: {len(qf)} query / {len(gf)} gallery features but dataset {dataset.name} has "
            f"{len(dataset.query)} / {len(dataset.gallery)} images"
        )
    rerank = None
    if cfg.TEST.RERANK:
        rerank = {"k1": cfg.TEST.RERANK_K1, "k2": cfg.TEST.RERANK_K2,
                  "lambda_value": cfg.TEST.RERANK_LAMBDA}
    return evaluate_features(
        qf, gf,
        np.asarray([s[1] for s in dataset.query]), np.asarray([s[1] for s in dataset.gallery]),
        np.asarray([s[2] for s in dataset.query]), np.asarray([s[2] for s in dataset.gallery]),
        metric=cfg.TEST.METRIC, normalize=cfg.TEST.NORM_FEAT, block_size=cfg.TEST.BLOCK_SIZE,
        max_rank=cfg.TEST.MAX_RANK, rerank=rerank,
    )


def run_tool(fn: Callable[[Sequence[str]], Any], argv: Sequence[str] | None) -> int:
    """Run ``fn(argv)`` as a command: its status if it returns an int, else 0; 2 on a
    :class:`UserError` (one or two lines, no traceback unless ``--debug`` or ``REID_DEBUG=1``),
    130 on Ctrl-C; any other exception propagates (traceback, status 1)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        status = fn(argv)
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        if not debug:
            print(f"(a user error: fix the input above; --debug or {DEBUG_ENV}=1 shows the "
                  "traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def main_train(argv: Sequence[str] | None = None) -> int:
    """``reid-train`` / ``tools/train.py``: :func:`train_main` as a command; returns the exit
    status (0 success, 2 user error, 130 interrupted)."""
    return run_tool(train_main, argv)


def main_test(argv: Sequence[str] | None = None) -> int:
    """``reid-test`` / ``tools/test.py``: :func:`test_main` as a command; returns the exit
    status (0 success, 2 user error, 130 interrupted)."""
    return run_tool(test_main, argv)

