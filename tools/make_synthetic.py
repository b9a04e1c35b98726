"""Generate a synthetic re-ID dataset (persons: Market-1501, vehicles: VeRi-776, video: MARS).

Example:
    python tools/make_synthetic.py --kind person --domain B --ids 50 --cams 4 \
        --out datasets/synthetic_person_b --seed 0 --preview /tmp/grid.png
"""
from __future__ import annotations

import argparse
import logging

from reid.data.synthetic import DEFAULTS, DOMAINS, make_spec, preview_grid, write_dataset


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be HxW, e.g. 128x64, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    defaults = ", ".join(f"{k}: {v['ids']} ids, {v['cams']} cams, {v['size'][0]}x{v['size'][1]}"
                         for k, v in DEFAULTS.items())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=f"defaults per kind: {defaults}")
    parser.add_argument("--kind", choices=sorted(DEFAULTS), required=True)
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="A")
    parser.add_argument("--ids", type=int, default=None, help="identities per split (train, test)")
    parser.add_argument("--cams", type=int, default=None, help="number of cameras")
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_size, default=None, help="image size HxW in pixels")
    parser.add_argument("--preview", default=None, help="also write a camera x identity grid PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = make_spec(args.kind, domain=args.domain, ids=args.ids, cams=args.cams, size=args.size,
                     seed=args.seed)
    write_dataset(args.out, spec, overwrite=args.overwrite)
    if args.preview:
        preview_grid(spec).save(args.preview)
        logging.getLogger(__name__).info("preview grid written to %s", args.preview)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
