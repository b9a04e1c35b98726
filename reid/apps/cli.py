"""Entry points of ``tools/extract.py``, ``tools/visualize.py``, ``tools/export.py`` and
``tools/plot.py`` (and the ``reid-extract`` ... console scripts).

Each returns the process exit status, as ``tools/train.py`` does (:func:`reid.engine.cli.run_tool`):
0 on success, 2 on a user error (bad input, a missing optional extra: one or two lines, no
traceback unless ``--debug`` or ``REID_DEBUG=1``), 1 when an exported model fails its check.
Flags may come anywhere; the remaining words are ``KEY VALUE`` config overrides."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from reid.engine.cli import make_parser, run_tool
from reid.utils.errors import ConfigError
from reid.utils.logging import setup_logger

logger = logging.getLogger("reid.apps")



def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="", metavar="FILE",
                        help="checkpoint (OUTPUT_DIR/last.pth or best.pth; default MODEL.WEIGHTS)")
    parser.add_argument("--domain", type=int, default=-1,
                        help="DSBN branch of the checkpoint (-1: the last, SpCL's target domain)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def _cfg(config_file: str, opts: Sequence[str]):
    from reid.config import load_cfg

    return load_cfg(config_file or None, list(opts))


def _extract(argv: Sequence[str]) -> int:
    """``tools/extract.py``: features of images to an ``.npz`` (``features`` (N, D) float32
    L2-normalised rows, ``paths`` (N,) str)."""
    from reid.apps.extract import collect_images, extract_paths, save_features
    from reid.apps.model import load_encoder

    parser = make_parser("Extract L2-normalised re-ID features")
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                        help="folders (searched recursively), list files (.txt) or images")
    parser.add_argument("--output", required=True, metavar="FILE.npz")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--flip", action="store_true", help="average with the flipped image")
    _model_args(parser)
    args = parser.parse_args(argv)
    setup_logger(None)
    cfg = _cfg(args.config_file, args.opts)
    paths = collect_images(args.input)
    logger.info("extracting %d images with %s", len(paths), args.weights or cfg.MODEL.WEIGHTS)
    model = load_encoder(cfg, args.weights, args.domain, args.device)
    feats, kept = extract_paths(cfg, model, paths, batch_size=args.batch_size,
                                device=args.device, flip=args.flip)
    out = save_features(args.output, feats, kept)
    logger.info("wrote %s: %d features of dimension %d", out, *feats.shape)
    return 0


def _test_set(cfg, name: str):
    from reid.data.build import build_dataset_from_cfg

    names = [name] if name else (list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TARGET)
                                 or list(cfg.DATASETS.SOURCE))
    for n in names:
        ds = build_dataset_from_cfg(cfg, n)
        if ds.query and ds.gallery:
            return ds
        logger.info("%s has no query / gallery: no ranked lists from it", n)
    return None


def _ranked(cfg, args, out_dir: Path) -> list[dict]:
    from reid.apps.model import load_encoder
    from reid.apps.visualize import ranked_lists
    from reid.data.build import build_transform_from_cfg, make_test_loader
    from reid.evaluation.features import pairwise_distance
    from reid.models import extract_features

    ds = _test_set(cfg, args.dataset)
    if ds is None:
        return []
    if ds.is_video:
        raise ConfigError(f"{ds.name} is a video set: ranked lists are drawn for image sets")
    if args.features:
        data = np.load(args.features)
        qf, gf = torch.from_numpy(data["query"]).float(), torch.from_numpy(data["gallery"]).float()
        if len(qf) != len(ds.query) or len(gf) != len(ds.gallery):
            raise ConfigError(f"{args.features}: {len(qf)} / {len(gf)} features but {ds.name} has "
                             f"{len(ds.query)} query / {len(ds.gallery)} gallery images")
    else:
        model = load_encoder(cfg, args.weights, args.domain, args.device)
        loader = make_test_loader(list(ds.query) + list(ds.gallery), is_video=False,
                                  transform=build_transform_from_cfg(cfg, is_train=False),
                                  batch_size=cfg.TEST.IMS_PER_BATCH, num_workers=0)
        feats, _, _ = extract_features(model, loader, device=args.device, desc=ds.name)
        qf, gf = feats[:len(ds.query)], feats[len(ds.query):]
    dist = pairwise_distance(qf, gf, metric=cfg.TEST.METRIC).numpy()
    col = lambda items, k: np.asarray([s[k] for s in items])  # noqa: E731
    return ranked_lists(dist, col(ds.query, 0), col(ds.gallery, 0), col(ds.query, 1),
                        col(ds.gallery, 1), col(ds.query, 2), col(ds.gallery, 2), out_dir,
                        num_queries=args.num_queries, topk=args.topk,
                        worst_first=args.worst_first, seed=args.seed, thumb=tuple(args.thumb))


def _visualize(argv: Sequence[str]) -> int:
    """``tools/visualize.py``: ranked lists and pseudo-label contact sheets, with index.html."""
    from reid.apps.visualize import contact_sheets, load_pseudo_labels, write_index

    parser = make_parser("Pictures of ranked lists and pseudo labels")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder of the pictures")
    parser.add_argument("--run", default="", metavar="RUN_DIR",
                        help="training run: contact sheets of its last clustering "
                        "(pseudo_labels.npz); its config.yaml and best.pth / last.pth are the "
                        "defaults of --config-file and --weights")
    parser.add_argument("--dataset", default="", help="test set of the ranked lists "
                        "(default: the first of DATASETS.TEST / TARGET / SOURCE with a query)")
    parser.add_argument("--features", default="", metavar="FILE",
                        help="saved query / gallery features (TEST.SAVE_FEATURES) instead of a "
                        "model")
    parser.add_argument("--num-queries", type=int, default=10)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--worst-first", action="store_true", help="the lowest-AP queries")
    parser.add_argument("--no-ranked", action="store_true", help="contact sheets only")
    parser.add_argument("--clusters", type=int, default=12, help="clusters drawn")
    parser.add_argument("--per-row", type=int, default=12, help="images per cluster row")
    parser.add_argument("--outliers", type=int, default=48, help="un-clustered images drawn")
    parser.add_argument("--thumb", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    _model_args(parser)
    args = parser.parse_args(argv)
    setup_logger(None)
    out_dir = Path(args.out)
    sections = []
    run = Path(args.run) if args.run else None
    if run is not None and not args.config_file and (run / "config.yaml").is_file():
        args.config_file = str(run / "config.yaml")
    if run is not None and not args.weights:
        for name in ("best.pth", "last.pth"):
            if (run / name).is_file():
                args.weights = str(run / name)
                break
    if run is not None:
        targets = load_pseudo_labels(run / "pseudo_labels.npz")
        for t, item in enumerate(targets):
            prefix = f"t{t}_" if len(targets) > 1 else ""
            pics = contact_sheets(item["labels"], list(item["paths"]), out_dir,
                                  true_ids=item.get("true_ids"), camids=item.get("camids"),
                                  num_clusters=args.clusters, per_row=args.per_row,
                                  num_outliers=args.outliers, seed=args.seed,
                                  thumb=tuple(args.thumb), prefix=prefix)
            sections.append((f"pseudo labels of the last clustering, target {t}", pics))
    if not args.no_ranked and (args.config_file or args.opts):
        cfg = _cfg(args.config_file, args.opts)
        pics = _ranked(cfg, args, out_dir)
        if pics:
            order = "lowest AP first" if args.worst_first else "random queries"
            sections.insert(0, (f"ranked lists ({order})", pics))
    if not sections:
        raise ConfigError("nothing to draw: give --run RUN_DIR (contact sheets) and/or a "
                         "config with a test set (ranked lists)")
    index = write_index(out_dir, sections)
    logger.info("open %s", index)
    return 0


def _check_batch(cfg, images: str, size: int) -> torch.Tensor:
    """``size`` test-transformed images of the folder ``images``, or a seeded normal batch."""
    if images:
        from reid.apps.extract import collect_images
        from reid.data.build import build_transform_from_cfg
        from reid.data.image import read_image

        transform = build_transform_from_cfg(cfg, is_train=False)
        paths = collect_images([images])[:size]
        return torch.stack([transform(read_image(p)) for p in paths])
    h, w = cfg.INPUT.SIZE_TEST
    return torch.randn(size, 3, h, w, generator=torch.Generator().manual_seed(0))


def _export(argv: Sequence[str]) -> int:
    """``tools/export.py``: TorchScript and / or ONNX, then the max abs difference to PyTorch
    on a check batch (exit 1 when it exceeds ``--atol``)."""
    from reid.apps.export import (
        check_onnx,
        check_torchscript,
        export_onnx,
        export_torchscript,
        require_onnx,
    )
    from reid.apps.model import load_encoder

    parser = make_parser("Export the encoder to TorchScript / ONNX")
    parser.add_argument("--output", required=True, metavar="PREFIX",
                        help="writes PREFIX.pt (TorchScript) and PREFIX.onnx")
    parser.add_argument("--format", nargs="+", choices=("torchscript", "onnx"),
                        default=["torchscript", "onnx"])
    parser.add_argument("--images", default="", metavar="DIR",
                        help="images of the check batch (default: random normal inputs)")
    parser.add_argument("--batch", type=int, default=3, help="size of the check batch")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest accepted difference to PyTorch")
    parser.add_argument("--opset", type=int, default=17)
    _model_args(parser)
    args = parser.parse_args(argv)
    setup_logger(None)
    if "onnx" in args.format:
        require_onnx()
    cfg = _cfg(args.config_file, args.opts)
    model = load_encoder(cfg, args.weights, args.domain, "cpu")
    h, w = cfg.INPUT.SIZE_TEST
    example = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    batch = _check_batch(cfg, args.images, args.batch)
    worst = 0.0
    for fmt in args.format:
        if fmt == "torchscript":
            path = export_torchscript(model, example, f"{args.output}.pt")
            diff = check_torchscript(path, model, batch)
        else:
            path = export_onnx(model, example, f"{args.output}.onnx", opset=args.opset)
            diff = check_onnx(path, model, batch)
        worst = max(worst, diff)
        logger.info("%s: wrote %s; max abs difference to PyTorch on a batch of %d: %.3g",
                    fmt, path, len(batch), diff)
    if worst > args.atol:
        logger.error("exported features differ from PyTorch by %.3g > --atol %.3g", worst,
                     args.atol)
        return 1
    return 0


def _plot(argv: Sequence[str]) -> int:
    """``tools/plot.py RUN_DIR [RUN_DIR ...]``: PNG of mAP, clusters, un-clustered images and
    loss; several runs are overlaid in one figure (a line per run)."""
    from reid.apps.plot import plot_run, plot_runs, run_curves

    parser = make_parser("Training curves of run folders", config=False)
    parser.add_argument("run_dir", nargs="+", help="OUTPUT_DIR of a training run")
    parser.add_argument("--out", default=None, metavar="FILE.png",
                        help="default RUN_DIR/curves.png (one run), curves.png (several)")
    args = parser.parse_args(argv)
    setup_logger(None)
    if len(args.run_dir) == 1:
        path = plot_run(args.run_dir[0], args.out)
    else:
        path = plot_runs({d: run_curves(d) for d in args.run_dir}, args.out or "curves.png")
    logger.info("wrote %s", path)
    return 0


def _pretrain(argv: Sequence[str]) -> int:
    """``tools/pretrain_videomae.py``: VideoMAE pretraining of the config's video encoder."""
    from reid.apps.pretrain import find_tracklets, pretrain_kwargs, pretrain_videomae
    from reid.engine.cli import setup_run
    from reid.utils.env import seed_all

    parser = make_parser("Self-supervised VideoMAE pretraining on unlabelled tracklets")
    args = parser.parse_args(argv)
    cfg = _cfg(args.config_file, args.opts)
    device = setup_run(cfg, args.config_file)
    seed_all(cfg.SEED)
    if not cfg.PRETRAIN.TRACKLETS_ROOT:
        raise ConfigError("set PRETRAIN.TRACKLETS_ROOT to the folder of unlabelled tracklets")
    tracklets = find_tracklets(cfg.PRETRAIN.TRACKLETS_ROOT)
    pretrain_videomae(tracklets, device=device, **pretrain_kwargs(cfg))
    return 0


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """``tools/pretrain_videomae.py`` / ``reid-pretrain-videomae``; returns the exit status."""
    return run_tool(_pretrain, argv)


def extract_main(argv: Sequence[str] | None = None) -> int:
    """``tools/extract.py`` / ``reid-extract``: features of images to an ``.npz``; returns the
    exit status."""
    return run_tool(_extract, argv)


def visualize_main(argv: Sequence[str] | None = None) -> int:
    """``tools/visualize.py`` / ``reid-visualize``: ranked lists and contact sheets; returns the
    exit status."""
    return run_tool(_visualize, argv)


def export_main(argv: Sequence[str] | None = None) -> int:
    """``tools/export.py`` / ``reid-export``: TorchScript / ONNX with a check against PyTorch;
    returns the exit status (1 when the check fails)."""
    return run_tool(_export, argv)


def plot_main(argv: Sequence[str] | None = None) -> int:
    """``tools/plot.py`` / ``reid-plot``: training curves of a run folder; returns the exit
    status."""
    return run_tool(_plot, argv)
