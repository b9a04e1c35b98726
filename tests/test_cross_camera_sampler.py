"""CrossCameraIdentitySampler: SpCL's released batch sampler on a hand-made set of clusters.

The set (K = 4): cluster 0 spans three cameras with two images each (enough images of other
cameras for any anchor: drawn without replacement); cluster 1 spans two cameras with too few
images of the other camera (drawn with replacement); clusters 2 and 3 lie in one camera each
(fallback to the identity's other images, without / with replacement); cluster 4 has a single
image; four outliers (label -1), each an identity of its own.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from reid.data.samplers import CrossCameraIdentitySampler

K = 4
#        cluster 0 (6)        cluster 1 (3)  cluster 2 (5)     cluster 3  c4  outliers
PIDS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 4, -1, -1, -1, -1]
CAMS = [0, 0, 1, 1, 2, 2, 0, 1, 1, 3, 3, 3, 3, 3, 0, 0, 1, 0, 1, 2, 3]
MEMBERS = {c: [i for i, p in enumerate(PIDS) if p == c] for c in range(5)}
OUTLIERS = [i for i, p in enumerate(PIDS) if p < 0]
PASS_LEN = 4 * K + 1 + len(OUTLIERS)  # clusters 0-3 give K images, cluster 4 and outliers one


def _groups(stream: list[int]) -> list[list[int]]:
    """Cut a stream into its identity groups: K consecutive indices of a cluster with two or
    more images, a single index otherwise."""
    groups, i = [], 0
    while i < len(stream):
        pid = PIDS[stream[i]]
        size = K if pid >= 0 and len(MEMBERS[pid]) > 1 else 1
        group = stream[i:i + size]
        assert len(group) == size or i + len(group) == len(stream)
        if len(group) == size:
            assert all(PIDS[j] == pid for j in group), group
        groups.append(group)
        i += size
    return groups


def _check_group(group: list[int]) -> None:
    """The released rule for one identity's group (anchor first)."""
    anchor, rest = group[0], group[1:]
    pid = PIDS[anchor]
    if pid < 0 or len(MEMBERS[pid]) == 1:
        assert rest == []
        return
    others = [j for j in MEMBERS[pid] if CAMS[j] != CAMS[anchor]]
    assert len(rest) == K - 1
    if others:  # companions from the other cameras
        assert all(CAMS[j] != CAMS[anchor] for j in rest), group
        if len(others) >= K:
            assert len(set(rest)) == K - 1  # without replacement
    else:  # one-camera cluster: the identity's other images
        assert anchor not in rest
        pool = [j for j in MEMBERS[pid] if j != anchor]
        assert set(rest) <= set(pool)
        if len(pool) >= K:
            assert len(set(rest)) == K - 1


@pytest.mark.parametrize("epoch", [0, 1, 2, 3, 4])
def test_one_pass_has_every_identity_once_in_released_form(epoch: int) -> None:
    sampler = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=5, num_samples=PASS_LEN)
    sampler.set_epoch(epoch)
    stream = list(sampler)
    assert len(stream) == len(sampler) == PASS_LEN
    groups = _groups(stream)
    for group in groups:
        _check_group(group)
    # every outlier exactly once; every cluster exactly once as a group
    counts = Counter(stream)
    assert all(counts[o] == 1 for o in OUTLIERS)
    by_pid = Counter(PIDS[g[0]] for g in groups if PIDS[g[0]] >= 0)
    assert by_pid == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    assert len(groups) == 5 + len(OUTLIERS)


def test_fallbacks_and_replacement_by_hand() -> None:
    """Over many passes: cluster 1's anchor in camera 1 can only be followed by its single
    camera-0 image, three times (with replacement); cluster 3 (one camera, two images) is
    always its two images, the other one three times."""
    sampler = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=0)
    seen_anchor_cam1 = 0
    for group in _groups(list(itertools.islice(iter(sampler), 40 * PASS_LEN))):
        if len(group) < K:
            continue
        pid, anchor = PIDS[group[0]], group[0]
        if pid == 1 and CAMS[anchor] == 1:
            assert group[1:] == [6, 6, 6]
            seen_anchor_cam1 += 1
        if pid == 3:
            other = 15 if anchor == 14 else 14
            assert group[1:] == [other] * 3
        if pid == 0:
            assert len(set(group)) == K  # 4 images of other cameras: no repeat
    assert seen_anchor_cam1 > 0


def test_anchors_cover_the_identity() -> None:
    sampler = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=1)
    anchors = {g[0] for g in _groups(list(itertools.islice(iter(sampler), 60 * PASS_LEN)))
               if PIDS[g[0]] == 0}
    assert anchors == set(MEMBERS[0])


def test_deterministic_per_seed_and_epoch() -> None:
    def stream(seed: int, epoch: int) -> list[int]:
        s = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=seed, num_samples=3 * PASS_LEN)
        s.set_epoch(epoch)
        return list(s)

    assert stream(3, 2) == stream(3, 2)
    assert stream(3, 2) != stream(3, 1)
    assert stream(3, 2) != stream(4, 2)


def test_two_ranks_take_disjoint_interleaved_groups_covering_the_stream() -> None:
    def groups(rank: int, world_size: int, n: int) -> list[list[int]]:
        sampler = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=7, rank=rank,
                                             world_size=world_size)
        return _groups(list(itertools.islice(iter(sampler), 12 * PASS_LEN)))[:n]

    full = groups(0, 1, 60)
    shards = [groups(r, 2, 30) for r in (0, 1)]
    assert shards[0] == full[0::2] and shards[1] == full[1::2]
    merged = [g for pair in zip(*shards, strict=True) for g in pair]
    assert merged == full  # disjoint positions of one stream, covering it


def test_set_pids_regroups_and_unique_outlier_ids_are_equivalent() -> None:
    sampler = CrossCameraIdentitySampler([-1] * len(PIDS), CAMS, K, seed=2,
                                         num_samples=len(PIDS))
    assert sorted(sampler) == list(range(len(PIDS)))  # before clustering: each image once
    sampler.set_pids(PIDS)
    a = list(sampler)
    unique = [p if p >= 0 else 100 + i for i, p in enumerate(PIDS)]
    sampler.set_pids(unique)
    assert list(sampler) == a


def test_errors() -> None:
    with pytest.raises(ValueError, match="num_instances"):
        CrossCameraIdentitySampler(PIDS, CAMS, 0)
    with pytest.raises(ValueError, match="one per camid"):
        CrossCameraIdentitySampler(PIDS[:-1], CAMS, K)
    with pytest.raises(ValueError, match="empty"):
        CrossCameraIdentitySampler([], [], K)


def test_spcl_runner_regroups_by_clusters_with_outliers_as_singletons(tiny, tiny_root,
                                                                      tmp_path) -> None:
    """``DATALOADER.SAMPLER cross_camera``: after a clustering the target sampler's identities
    are the clusters plus one per un-clustered image, and batches mix both."""
    from reid.config import load_cfg
    from reid.engine.build import build_runner

    cfg = load_cfg("configs/demo/usl_synthetic.yaml", [
        *tiny, "DATASETS.ROOT", tiny_root, "OUTPUT_DIR", str(tmp_path / "out"),
        "DATALOADER.SAMPLER", "cross_camera"])
    runner = build_runner(cfg, device=torch.device("cpu"))
    runner.before_train()
    runner.set_epoch(0)
    runner.update_labels(0)
    labels = runner.memory.target_labels(0)
    sampler = runner.batches.loaders[0].sampler
    assert isinstance(sampler, CrossCameraIdentitySampler)
    expected = sorted([sorted(torch.nonzero(labels == c).squeeze(1).tolist())
                       for c in labels.unique() if c >= 0]
                      + [[int(i)] for i in torch.nonzero(labels < 0).squeeze(1)])
    assert sorted(sorted(g.tolist()) for g in sampler.index_lists) == expected
    assert (labels >= 0).any() and (labels < 0).any()
    idx = torch.cat([runner.batches.next("cpu")["index"] for _ in range(4)])
    assert (labels[idx] >= 0).any() and (labels[idx] < 0).any()


def test_unknown_sampler_is_an_error(tiny, tiny_root, tmp_path) -> None:
    from reid.engine import cli

    with pytest.raises(ValueError, match="DATALOADER.SAMPLER must be one of"):
        cli.train_main(["--config-file", "configs/demo/usl_synthetic.yaml", *tiny,
                        "DATASETS.ROOT", tiny_root, "OUTPUT_DIR",
                        str(tmp_path / "out"), "DATALOADER.SAMPLER", "pk_cams"])


def test_source_batches_use_true_ids(tiny, tiny_root, tmp_path) -> None:
    """UDA: the source loader draws the released sampler over the true ids."""
    from reid.config import load_cfg
    from reid.engine.build import build_runner

    cfg = load_cfg("configs/demo/uda_synthetic.yaml", [
        *tiny, "DATASETS.ROOT", tiny_root, "OUTPUT_DIR", str(tmp_path / "out")])
    runner = build_runner(cfg, device=torch.device("cpu"))
    sampler = runner.batches.loaders[0].sampler
    assert isinstance(sampler, CrossCameraIdentitySampler)
    pids = np.asarray([s[1] for s in runner.batches.loaders[0].dataset.samples])
    assert all(len(set(pids[g])) == 1 for g in sampler.index_lists)
    assert len(sampler.index_lists) == len(set(pids.tolist()))


def test_ignore_negative_never_samples_outliers_and_keeps_the_cluster_groups():
    """Cluster Contrast's use: the released sampler over the clustered images only. A pass is
    clusters 0-3 (K images each) and cluster 4 (one image): 17 indices, no outlier."""
    sampler = CrossCameraIdentitySampler(PIDS, CAMS, K, seed=3, num_samples=5 * 17,
                                         ignore_negative=True)
    stream = list(sampler)
    assert len(stream) == 5 * 17 and not set(stream) & set(OUTLIERS)
    for p in range(5):
        one_pass = stream[17 * p:17 * (p + 1)]
        assert Counter(PIDS[i] for i in one_pass) == {0: K, 1: K, 2: K, 3: K, 4: 1}
    # five identity groups instead of nine: the four outliers are no identity of their own
    assert len(CrossCameraIdentitySampler(PIDS, CAMS, K, num_samples=1).index_lists) == 9
    assert len(sampler.index_lists) == 5


def test_ignore_negative_without_any_cluster_samples_every_image_alone(caplog):
    sampler = CrossCameraIdentitySampler([-1] * 6, [0, 1, 0, 1, 0, 1], K, seed=0, num_samples=6,
                                         ignore_negative=True)
    assert sorted(sampler) == list(range(6))
    assert "no labelled sample" not in caplog.text  # before the first clustering: silent
    sampler.set_pids([-1] * 6)
    assert sorted(sampler) == list(range(6))
    assert "no labelled sample" in caplog.text
