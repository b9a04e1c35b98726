"""Self-supervised VideoMAE pretraining on unlabelled tracklets (in-domain initialisation):

``python tools/pretrain_videomae.py --config-file configs/video/pretrain_videomae_mars.yaml
PRETRAIN.TRACKLETS_ROOT datasets/mars/bbox_train``; the encoder is written to
``OUTPUT_DIR/videomae_pretrain.pth`` (see :mod:`reid.apps.pretrain`).
"""
from reid.apps.cli import pretrain_main

if __name__ == "__main__":
    raise SystemExit(pretrain_main())
