"""Camera-bias removal before clustering: exact values and a loop reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.cluster import camera_centred, jaccard_distance
from reid.cluster.dbscan import dbscan


def test_hand_computed_case():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    out = camera_centred(f, torch.tensor([5, 5, 9, 9]))
    # camera 5 mean (0.5, 0.5), camera 9 mean (1.5, 0.5): residuals +-(0.5, -0.5)
    r = float(1 / np.sqrt(2))
    expected = torch.tensor([[r, -r], [-r, r], [r, -r], [-r, r]])
    torch.testing.assert_close(out, expected)


def test_equals_loop_reference_on_random_features():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 16, generator=g)
    cams = torch.randint(0, 6, (200,), generator=g) * 3 + 1
    ref = f.clone()
    for c in cams.unique():
        m = cams == c
        ref[m] = f[m] - f[m].mean(0)
    ref = ref / ref.norm(dim=1, keepdim=True)
    torch.testing.assert_close(camera_centred(f, cams), ref, atol=1e-6, rtol=1e-6)


def test_singleton_camera_gives_zero_row_not_nan():
    out = camera_centred(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    assert torch.equal(out, torch.zeros(2, 2))


def test_camera_offset_no_longer_drives_the_clusters():
    """Identity signal plus a large per-camera offset: raw features cluster by camera,
    centred features by identity (8 ids seen by 2 cameras, 5 images each per camera)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randn(8, 32, generator=g)
    cam_offset = 6 * torch.randn(2, 32, generator=g)
    pid = torch.arange(8).repeat_interleave(10)
    cam = torch.tensor(([0] * 5 + [1] * 5) * 8)
    x = ids[pid] + cam_offset[cam] + 0.1 * torch.randn(80, 32, generator=g)
    raw = torch.nn.functional.normalize(x, dim=1)

    def labels(feats):
        return dbscan(jaccard_distance(feats, k1=10, k2=3), eps=0.6, min_samples=3)

    def pure(lab):  # every cluster holds a single identity
        return all(len(set(pid[lab == c].tolist())) == 1 for c in set(lab.tolist()) - {-1})

    assert not pure(labels(raw))  # raw features group different identities of one camera
    centred = labels(camera_centred(x, cam))
    assert pure(centred) and len(set(centred.tolist()) - {-1}) == 8


def test_shape_errors():
    with pytest.raises(ValueError, match="camids"):
        camera_centred(torch.zeros(3, 2), torch.zeros(2))
