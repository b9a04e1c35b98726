"""Pseudo-label balanced target batches (CAP's proxy-balanced sampling) and memory refresh."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reid.data.domain_batches import DomainBatches
from reid.data.samplers import RandomIdentitySampler

LABELS = np.array([0, 0, 0, -1, 1, 1, -1, 2, 2, 2, 2, 3, -1, 3, 4, 4])


def _stream(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_outliers_are_never_sampled_and_the_stream_equals_pk_over_the_clustered_subset():
    members = np.flatnonzero(LABELS >= 0)
    ref = RandomIdentitySampler(LABELS[members], batch_size=4, num_instances=2, seed=3)
    ref.set_epoch(2)
    sampler = RandomIdentitySampler(range(len(LABELS)), batch_size=4, num_instances=2, seed=3,
                                    ignore_negative=True)
    sampler.set_pids(LABELS)
    sampler.set_epoch(2)
    got = _stream(sampler, 80)
    assert got == [int(members[i]) for i in _stream(ref, 80)]
    assert not set(got) & set(np.flatnonzero(LABELS < 0).tolist())
    for batch in np.reshape(got, (-1, 4)):  # P = 2 distinct groups x K = 2
        groups = LABELS[batch]
        assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]
    # without ignore_negative, -1 is an ordinary identity (source pids are never relabelled)
    plain = RandomIdentitySampler(LABELS, batch_size=4, num_instances=2, seed=3)
    assert set(_stream(plain, 400)) == set(range(len(LABELS)))


def test_set_pids_regroups_and_checks_its_input(caplog):
    sampler = RandomIdentitySampler(range(6), batch_size=4, num_instances=2, seed=0,
                                    ignore_negative=True)
    assert sorted(map(len, sampler.index_lists)) == [1] * 6  # each image its own group
    sampler.set_pids([0, 0, 1, 1, -1, -1])
    assert sorted(sorted(g.tolist()) for g in sampler.index_lists) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="needs 6 labels"):
        sampler.set_pids([0, 1])
    # fewer labelled groups than P: the unlabelled samples become singleton groups (warned)
    sampler.set_pids([0, 0, 0, -1, -1, -1])
    assert sorted(sorted(g.tolist()) for g in sampler.index_lists) == [[0, 1, 2], [3], [4], [5]]
    assert "only 1 labelled groups" in caplog.text
    with pytest.raises(ValueError, match="cannot fill"):
        RandomIdentitySampler([0, 0, 0], batch_size=4, num_instances=2)


def test_domain_batches_set_labels_restarts_the_loader_with_the_new_groups():
    data = [{"img": torch.full((1,), float(i)), "index": i, "pid": -1} for i in range(16)]
    sampler = RandomIdentitySampler(range(16), batch_size=4, num_instances=2, num_iters=50,
                                    ignore_negative=True)
    batches = DomainBatches([DataLoader(data, batch_size=4, sampler=sampler, drop_last=True)],
                            ["index"])
    batches.set_epoch(0)
    batches.next("cpu")
    batches.set_labels(0, LABELS.tolist())
    seen = torch.cat([batches.next("cpu")["index"] for _ in range(30)])
    assert (torch.as_tensor(LABELS)[seen] >= 0).all()
    with pytest.raises(TypeError, match="RandomIdentitySampler"):
        DomainBatches([[data[0]]], ["index"]).set_labels(0, [0])


def _args(tiny, root, out, method, *extra):
    return ["--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "SOLVER.METHOD", method,
            "DATASETS.ROOT", root, "OUTPUT_DIR", str(out), "TEST.EVAL_PERIOD", "2",
            "DATALOADER.SAMPLER", "pk", "CLUSTER.FEATURES", "extract",
            "MEMORY.REFRESH", "True", *extra]


@pytest.mark.parametrize("method", ["spcl", "cap"])
def test_runner_groups_target_batches_by_its_pseudo_labels(tiny, tiny_root, tmp_path, method):
    from reid.config import load_cfg
    from reid.engine.build import build_runner

    args = _args(tiny, tiny_root, tmp_path / "out", method)
    cfg = load_cfg(args[1], args[2:])
    runner = build_runner(cfg, device=torch.device("cpu"))
    calls = []
    extract = runner.extract
    runner.extract = lambda d: calls.append(d) or extract(d)
    runner.before_train()
    runner.memory.features.add_(1.0)  # stale rows: the refresh must overwrite them
    runner.set_epoch(0)
    runner.update_labels(0)
    assert calls == [0]  # epoch 0 clusters the extraction that filled the memory
    fresh = F.normalize(runner.extract(0), dim=1)
    torch.testing.assert_close(runner.memory.target_features(0), fresh, atol=1e-6, rtol=0)
    labels = runner.memory.target_labels(0)
    groups = labels
    if method == "cap":  # camera proxies of the clusters: one camera per group
        groups = runner._proxies[0][0].masked_fill(labels < 0, -1)
        cams = torch.as_tensor(runner.label_step.camids[0])
        assert all(len(set(cams[g].tolist())) == 1 for g in
                   runner.batches.loaders[0].sampler.index_lists)
    assert torch.equal(runner.sampler_groups(0), groups)
    expected = sorted(sorted(torch.nonzero(groups == g).squeeze(1).tolist())
                      for g in groups.unique() if g >= 0)
    got = sorted(sorted(g.tolist()) for g in runner.batches.loaders[0].sampler.index_lists)
    assert got == expected
    assert (labels < 0).any()  # the test has outliers to leave out
    batch = runner.batches.next("cpu")
    assert (labels[batch["index"]] >= 0).all()


def test_balanced_targets_resume_exactly(tiny, tiny_root, tmp_path, train_full_and_resumed):
    train_full_and_resumed(lambda out, *extra: _args(tiny, tiny_root, out, "cap", *extra),
                           tmp_path)


@pytest.mark.parametrize("extra, match", [
    (["CLUSTER.FEATURES", "memory"], "refresh_memory needs cluster_on='extract'"),
    (["MODEL.CAMERA_BN", "True", "TEST.CAMERA_BN", "True", "DATALOADER.CAMERA_CHUNK", "4"],
     "choose one"),
])
def test_balanced_target_configuration_errors(tiny, tiny_root, tmp_path, extra, match):
    from reid.engine import cli

    with pytest.raises(ValueError, match=match):
        cli.train_main(_args(tiny, tiny_root, tmp_path / "out", "cap", *extra))
