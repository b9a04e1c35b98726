"""Pictures of what a model learned (``tools/visualize.py``), drawn with PIL.

* Ranked lists: one PNG per query, the query then its top-k gallery images (same identity in
  the same camera excluded, as in the evaluation), with a green (true match) or red (false
  match) border and the distance under each image.
* Contact sheets of a run's last clustering (``OUTPUT_DIR/pseudo_labels.npz``): one row of
  member images per sampled cluster, and sheets of un-clustered images. With ground truth
  (labelled target sets) each image shows its true identity and the border is green when it
  is the cluster's majority identity, red otherwise.
* ``index.html`` showing every PNG written.

Every picture is a grid of ``thumb`` = (height, width) thumbnails inside ``BORDER``-pixel
borders, with a ``TEXT_H``-pixel caption strip under each; the sizes are given by
:func:`ranked_list_size` and :func:`sheet_size`.
"""
from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reid.utils.errors import DatasetError

logger = logging.getLogger(__name__)

BORDER = 4  # pixels of the coloured frame around a thumbnail
GAP = 4  # pixels between thumbnails
TEXT_H = 14  # pixels of the caption strip under a thumbnail
HEAD_W = 96  # pixels of the row header of a contact sheet (cluster number, size, purity)
GREEN, RED, BLUE = (0, 170, 0), (220, 0, 0), (40, 90, 220)
GREY, WHITE, BLACK = (150, 150, 150), (255, 255, 255), (0, 0, 0)


def _cell(thumb: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of one thumbnail cell: image, border, caption, gap."""
    h, w = thumb
    return w + 2 * BORDER + GAP, h + 2 * BORDER + TEXT_H + GAP


def ranked_list_size(topk: int, thumb: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of a ranked-list PNG: the query, a gap, ``topk`` images."""
    cw, ch = _cell(thumb)
    return (topk + 1) * cw + 2 * GAP + GAP, ch + GAP


def sheet_size(rows: int, per_row: int, thumb: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of a contact sheet with ``rows`` rows of ``per_row`` images."""
    cw, ch = _cell(thumb)
    return HEAD_W + per_row * cw + GAP, rows * ch + GAP


def _thumbnail(path: str, thumb: tuple[int, int]) -> Image.Image:
    h, w = thumb
    try:
        with Image.open(path) as img:
            return img.convert("RGB").resize((w, h), Image.BILINEAR)
    except (OSError, ValueError):
        logger.warning("cannot read %s: drawn grey", path)
        return Image.new("RGB", (w, h), GREY)


def _paste(canvas: Image.Image, x: int, y: int, path: str, thumb: tuple[int, int],
           colour: tuple[int, int, int], caption: str) -> None:
    h, w = thumb
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([x, y, x + w + 2 * BORDER - 1, y + h + 2 * BORDER - 1], fill=colour)
    canvas.paste(_thumbnail(path, thumb), (x + BORDER, y + BORDER))
    if caption:
        draw.text((x + 1, y + h + 2 * BORDER + 1), caption[: max(4, (w + 2 * BORDER) // 6)],
                  fill=BLACK)


def draw_ranked_list(query: str, gallery: Sequence[str], distances: Sequence[float],
                     matches: Sequence[bool], thumb: tuple[int, int] = (128, 64),
                     title: str = "") -> Image.Image:
    """One ranked list: the query (blue frame) then the gallery images in rank order.

    Args:
        query: query image path.
        gallery: the top-k gallery image paths, best first.
        distances: their distances to the query (printed under each).
        matches: True where the gallery image has the query's identity (green, else red).
        thumb: (height, width) of a thumbnail, pixels.
        title: caption of the query (e.g. its AP).

    Returns:
        An RGB image of size :func:`ranked_list_size` ``(len(gallery), thumb)``.
    """
    cw, _ = _cell(thumb)
    canvas = Image.new("RGB", ranked_list_size(len(gallery), thumb), WHITE)
    _paste(canvas, GAP, GAP, query, thumb, BLUE, title or "query")
    x0 = GAP + cw + 2 * GAP
    for r, (path, dist, ok) in enumerate(zip(gallery, distances, matches, strict=True)):
        _paste(canvas, x0 + r * cw, GAP, path, thumb, GREEN if ok else RED, f"{dist:.3f}")
    return canvas


def draw_sheet(rows: Sequence[tuple[str, Sequence[str], Sequence[str],
                                    Sequence[tuple[int, int, int]]]],
               per_row: int, thumb: tuple[int, int] = (128, 64)) -> Image.Image:
    """A contact sheet: per row a header text and up to ``per_row`` framed, captioned images.

    Args:
        rows: ``(header, paths, captions, colours)`` per row.
        per_row: images per row (longer rows are cut).
        thumb: (height, width) of a thumbnail, pixels.

    Returns:
        An RGB image of size :func:`sheet_size` ``(len(rows), per_row, thumb)``.
    """
    cw, ch = _cell(thumb)
    canvas = Image.new("RGB", sheet_size(len(rows), per_row, thumb), WHITE)
    draw = ImageDraw.Draw(canvas)
    for i, (header, paths, captions, colours) in enumerate(rows):
        y = GAP + i * ch
        for j, line in enumerate(header.split("\n")):
            draw.text((GAP, y + 2 + 12 * j), line, fill=BLACK)
        for j, (path, cap, col) in enumerate(list(zip(paths, captions, colours,
                                                      strict=True))[:per_row]):
            _paste(canvas, HEAD_W + j * cw, y, path, thumb, col, cap)
    return canvas


def ranked_lists(distmat: np.ndarray, q_paths: Sequence[str], g_paths: Sequence[str],
                 q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
                 g_camids: np.ndarray, out_dir: str | os.PathLike, *, num_queries: int = 10,
                 topk: int = 10, worst_first: bool = False, seed: int = 0,
                 thumb: tuple[int, int] = (128, 64)) -> list[dict]:
    """Write one ranked-list PNG per selected query into ``out_dir``.

    Gallery images of the query's identity and camera are left out (the evaluation's junk).
    Queries without any true match in the gallery are never selected.

    Args:
        distmat: (Q, G) distances.
        q_paths, g_paths: image paths.
        q_pids, g_pids, q_camids, g_camids: identities and cameras, (Q,) / (G,).
        out_dir: folder receiving ``rank_XXX.png``.
        num_queries: queries drawn.
        topk: gallery images per list.
        worst_first: the queries of lowest AP (ties: query order); otherwise a seeded random
            sample in query order.
        seed: seed of the random sample.
        thumb: (height, width) of a thumbnail, pixels.

    Returns:
        Per picture ``{"file", "query", "ap", "matches"}`` (``matches``: how many of the
        top-k are true).
    """
    from reid.evaluation.rank import query_rank_stats

    distmat = np.asarray(distmat, dtype=np.float32)
    first, ap, _ = query_rank_stats(distmat, q_pids, g_pids, q_camids, g_camids)
    valid = np.flatnonzero(first >= 0)
    if valid.size == 0:
        raise ValueError("no query has a true match in the gallery")
    if worst_first:
        chosen = valid[np.argsort(ap[valid], kind="stable")][:num_queries]
    else:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(valid, size=min(num_queries, valid.size), replace=False))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, q in enumerate(chosen):
        junk = (g_pids == q_pids[q]) & (g_camids == q_camids[q])
        order = [g for g in np.argsort(distmat[q], kind="stable") if not junk[g]][:topk]
        matches = [bool(g_pids[g] == q_pids[q]) for g in order]
        img = draw_ranked_list(q_paths[q], [g_paths[g] for g in order],
                               [float(distmat[q, g]) for g in order], matches, thumb,
                               title=f"AP {ap[q]:.2f}")
        name = f"rank_{n:03d}.png"
        img.save(out / name)
        written.append({"file": name, "query": str(q_paths[q]), "ap": float(ap[q]),
                        "matches": int(sum(matches))})
    logger.info("wrote %d ranked lists to %s", len(written), out)
    return written


def contact_sheets(labels: np.ndarray, paths: Sequence[str], out_dir: str | os.PathLike, *,
                   true_ids: np.ndarray | None = None, camids: np.ndarray | None = None,
                   num_clusters: int = 12, per_row: int = 12, num_outliers: int = 48,
                   seed: int = 0, thumb: tuple[int, int] = (128, 64), prefix: str = ""
                   ) -> list[dict]:
    """Write contact sheets of a clustering: ``clusters.png`` and ``outliers.png``.

    Args:
        labels: (N,) cluster of every image (-1: un-clustered).
        paths: (N,) image paths.
        out_dir: destination folder.
        true_ids: (N,) true identities, or None (unlabelled data: captions show the camera).
        camids: (N,) cameras, or None.
        num_clusters: clusters drawn, a seeded random sample of all clusters (sorted by id).
        per_row: member images per cluster row (a seeded random sample of the members).
        num_outliers: un-clustered images drawn (seeded sample), ``per_row`` per row.
        seed: seed of the samples.
        thumb: (height, width) of a thumbnail, pixels.
        prefix: prefix of the file names (one pair of sheets per target domain).

    Returns:
        Per sheet ``{"file", "title", "rows"}``; cluster rows also report ``purity`` (the
        fraction of the drawn clusters' members with the majority identity, ground truth only).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clusters = np.unique(labels[labels >= 0])
    picked = np.sort(rng.choice(clusters, size=min(num_clusters, clusters.size), replace=False)
                     ) if clusters.size else clusters
    rows = []
    pure_total = member_total = 0
    for c in picked:
        members = np.flatnonzero(labels == c)
        shown = np.sort(rng.choice(members, size=min(per_row, members.size), replace=False))
        header = f"cluster {int(c)}\n{members.size} images"
        if true_ids is not None:
            ids, counts = np.unique(true_ids[members], return_counts=True)
            major = ids[np.argmax(counts)]
            pure_total += int(counts.max())
            member_total += members.size
            header += f"\n{counts.max() / members.size:.0%} id {int(major)}\n{ids.size} ids"
            colours = [GREEN if true_ids[i] == major else RED for i in shown]
            captions = [f"id {int(true_ids[i])}" for i in shown]
        else:
            colours = [GREY] * shown.size
            captions = [f"cam {int(camids[i])}" if camids is not None else "" for i in shown]
        if camids is not None:
            header += f"\n{np.unique(camids[members]).size} cams"
        rows.append((header, [paths[i] for i in shown], captions, colours))
    written = []
    if rows:
        name = f"{prefix}clusters.png"
        draw_sheet(rows, per_row, thumb).save(out / name)
        info = {"file": name, "title": f"{len(rows)} of {clusters.size} clusters",
                "rows": len(rows)}
        if member_total:
            info["purity"] = pure_total / member_total
        written.append(info)
    outliers = np.flatnonzero(labels < 0)
    if outliers.size:
        shown = np.sort(rng.choice(outliers, size=min(num_outliers, outliers.size),
                                   replace=False))
        orows = []
        for start in range(0, shown.size, per_row):
            part = shown[start:start + per_row]
            captions = ([f"id {int(true_ids[i])}" for i in part] if true_ids is not None else
                        [f"cam {int(camids[i])}" if camids is not None else "" for i in part])
            orows.append((f"un-clustered\n{outliers.size} images" if start == 0 else "",
                          [paths[i] for i in part], captions, [GREY] * part.size))
        name = f"{prefix}outliers.png"
        draw_sheet(orows, per_row, thumb).save(out / name)
        written.append({"file": name, "title": f"{shown.size} of {outliers.size} un-clustered "
                        "images", "rows": len(orows)})
    logger.info("wrote %d contact sheets to %s", len(written), out)
    return written


def write_index(out_dir: str | os.PathLike, sections: Sequence[tuple[str, Sequence[dict]]],
                title: str = "unreid pictures") -> Path:
    """``out_dir/index.html`` showing every picture, one section per kind.

    Args:
        out_dir: folder holding the PNGs.
        sections: ``(heading, pictures)``; each picture a dict with ``file`` and optional
            ``title`` / ``query`` / ``ap`` / ``purity`` shown as its caption.
        title: page title.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title></head><body style='font-family:sans-serif'>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, pics in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for pic in pics:
            caption = [pic.get("title", "")]
            if "ap" in pic:
                caption.append(f"AP {pic['ap']:.3f}, {pic['matches']} true in the list, "
                               f"query {pic['query']}")
            if "purity" in pic:
                caption.append(f"purity of the drawn clusters {pic['purity']:.1%}")
            text = html.escape("; ".join(c for c in caption if c))
            parts.append(f"<figure><img src='{html.escape(pic['file'])}' alt='{text}'>"
                         f"<figcaption>{text}</figcaption></figure>")
    parts.append("</body></html>")
    path = Path(out_dir) / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def load_pseudo_labels(path: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Per target domain ``{"labels", "paths", "camids"?, "true_ids"?}`` of a
    ``pseudo_labels.npz`` written by :class:`reid.engine.spcl.SpCLRunner`."""
    data = np.load(path)
    out = []
    t = 0
    while f"labels_{t}" in data:
        item = {"labels": data[f"labels_{t}"], "paths": data[f"paths_{t}"]}
        for key in ("camids", "true_ids"):
            if f"{key}_{t}" in data:
                item[key] = data[f"{key}_{t}"]
        out.append(item)
        t += 1
    if not out:
        raise DatasetError(f"{path} holds no pseudo labels (expected arrays labels_0, paths_0)")
    return out
