"""Camera-aware proxies (CAP): proxy assignment and the intra- / inter-camera losses against a
hand-computed case and a direct per-sample formula."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid.loss.camera_proxy import camera_proxies, camera_proxy_losses, proxy_centroids


def test_proxies_split_clusters_by_camera_and_keep_outliers_alone():
    labels = torch.tensor([3, 3, 3, -1, 7, 7, -1])
    cams = torch.tensor([1, 2, 1, 1, 2, 2, 2])
    proxy, cluster, camera = camera_proxies(labels, cams)
    # cluster 3 -> 0 (cams 1, 2: two proxies), cluster 7 -> 1 (cam 2), outliers -> clusters 2, 3
    assert proxy.tolist() == [0, 1, 0, 3, 2, 2, 4]
    assert cluster.tolist() == [0, 0, 1, 2, 3]
    assert camera.tolist() == [1, 2, 2, 1, 2]
    for i in range(len(labels)):  # every sample's proxy has the sample's camera
        assert camera[proxy[i]] == cams[i]


def test_proxies_of_all_outliers_are_singletons():
    proxy, cluster, camera = camera_proxies(torch.full((4,), -1), torch.tensor([0, 1, 0, 1]))
    assert proxy.tolist() == [0, 1, 2, 3] and cluster.tolist() == [0, 1, 2, 3]
    assert camera.tolist() == [0, 1, 0, 1]


def test_proxy_centroids_are_normalised_means():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    c = proxy_centroids(f, torch.tensor([0, 0, 1]), 2)
    s = 1 / math.sqrt(2)
    assert torch.allclose(c, torch.tensor([[s, s], [0.0, -1.0]]))


def test_losses_on_a_hand_computed_case():
    # proxies: k0 = (1, 0) cam 0 cluster 0; k1 = (0, 1) cam 1 cluster 0; k2 = (-1, 0) cam 0
    # cluster 1. f = (1, 0) of camera 0 in proxy 0, tau = 1, one hard negative (k2).
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    intra, inter = camera_proxy_losses(
        torch.tensor([[1.0, 0.0]]), proxies, torch.tensor([0]), torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 0]), temperature=1.0, num_hard=1)
    # intra: softmax over {k0, k2} (camera 0): -log(e / (e + 1/e)) = log(1 + e^-2)
    assert intra.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    # inter: positives {k0, k1} (logits 1, 0), negative k2 (-1): lse - (1 + 0) / 2
    lse = math.log(math.e + 1 + math.exp(-1))
    assert inter.item() == pytest.approx(lse - 0.5, abs=1e-6)


def test_unseen_camera_skip_on_a_hand_computed_case():
    # k0 = (1, 0) cam 0 cluster 0 (the sample's proxy); k1 = (0.8, 0.6) cam 1 cluster 1;
    # k2 = (0, 1) cam 1 cluster 2; k3 = (-1, 0) cam 0 cluster 3. f = (1, 0), tau 1, 2 hard.
    proxies = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    args = (torch.tensor([[1.0, 0.0]]), proxies, torch.tensor([0]), torch.tensor([0, 1, 2, 3]),
            torch.tensor([0, 1, 1, 0]))
    _, plain = camera_proxy_losses(*args, temperature=1.0, num_hard=2)
    assert plain.item() == pytest.approx(math.log(math.e + math.exp(0.8) + 1) - 1, abs=1e-6)
    # cluster 0 has no proxy in camera 1: its most similar camera-1 proxy (k1) is skipped and
    # the two hardest negatives left are k2 (logit 0) and k3 (-1)
    _, skip = camera_proxy_losses(*args, temperature=1.0, num_hard=2, num_unseen_skip=1)
    assert skip.item() == pytest.approx(math.log(math.e + 1 + math.exp(-1)) - 1, abs=1e-6)
    # camera 1 in another camera group cannot see the sample's identity: nothing is skipped
    _, other = camera_proxy_losses(*args, temperature=1.0, num_hard=2, num_unseen_skip=1,
                                   proxy_group=torch.tensor([0, 1, 1, 0]))
    assert other.item() == pytest.approx(plain.item(), abs=1e-6)
    # skipping more proxies than the camera has leaves out all of camera 1: only k3 remains
    _, most = camera_proxy_losses(*args, temperature=1.0, num_hard=2, num_unseen_skip=5)
    assert most.item() == pytest.approx(math.log(math.e + math.exp(-1)) - 1, abs=1e-6)


def _direct(feats, proxies, target, cluster, camera, tau, num_hard, skip=0, group=None):
    intra, inter = [], []
    group = [0] * len(camera) if group is None else [int(x) for x in group]
    for i in range(feats.shape[0]):
        logits = [feats[i] @ proxies[j] / tau for j in range(proxies.shape[0])]
        p = int(target[i])
        same = [j for j in range(len(logits)) if camera[j] == camera[p]]
        intra.append(-(logits[p] - torch.logsumexp(torch.stack([logits[j] for j in same]), 0)))
        pos = [j for j in range(len(logits)) if cluster[j] == cluster[p]]
        out = set()
        for cam in {int(c) for c in camera}:
            members = [j for j in range(len(logits)) if camera[j] == cam]
            if (cam == camera[p] or group[members[0]] != group[p]
                    or any(cluster[j] == cluster[p] for j in members)):
                continue
            out |= set(sorted(members, key=lambda j: -float(logits[j].detach()))[:skip])
        neg = sorted((j for j in range(len(logits)) if cluster[j] != cluster[p] and j not in out),
                     key=lambda j: -float(logits[j].detach()))[:num_hard]
        lse = torch.logsumexp(torch.stack([logits[j] for j in pos + neg]), 0)
        inter.append(-sum(logits[j] - lse for j in pos) / len(pos))
    return torch.stack(intra).mean(), torch.stack(inter).mean()


@pytest.mark.parametrize("num_hard", [1, 3, 50])
def test_losses_and_gradients_equal_the_direct_formula(num_hard):
    g = torch.Generator().manual_seed(num_hard)
    labels = torch.randint(-1, 5, (40,), generator=g)
    cams = torch.randint(0, 3, (40,), generator=g)
    proxy, cluster, camera = camera_proxies(labels, cams)
    mem = F.normalize(torch.randn(40, 8, generator=g), dim=1)
    proxies = proxy_centroids(mem, proxy, cluster.numel())
    idx = torch.randperm(40, generator=g)[:12]
    f1 = F.normalize(torch.randn(12, 8, generator=g), dim=1).requires_grad_(True)
    f2 = f1.detach().clone().requires_grad_(True)
    got = camera_proxy_losses(f1, proxies, proxy[idx], cluster, camera, 0.1, num_hard)
    want = _direct(f2, proxies, proxy[idx], cluster, camera, 0.1, num_hard)
    for a, b in zip(got, want, strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-5, abs=1e-6)
    (got[0] + 0.5 * got[1]).backward()
    (want[0] + 0.5 * want[1]).backward()
    assert torch.allclose(f1.grad, f2.grad, atol=1e-5)


@pytest.mark.parametrize("skip,num_hard,grouped", [(1, 50, False), (2, 5, False), (3, 50, True),
                                                   (2, 4, True)])
def test_unseen_camera_skip_equals_the_direct_formula(skip, num_hard, grouped):
    g = torch.Generator().manual_seed(skip * 10 + num_hard)
    labels = torch.randint(-1, 8, (60,), generator=g)
    cams = torch.randint(0, 4, (60,), generator=g)
    proxy, cluster, camera = camera_proxies(labels, cams)
    group = camera // 2 if grouped else None  # cameras {0, 1} and {2, 3}
    mem = F.normalize(torch.randn(60, 8, generator=g), dim=1)
    proxies = proxy_centroids(mem, proxy, cluster.numel())
    idx = torch.randperm(60, generator=g)[:16]
    f1 = F.normalize(torch.randn(16, 8, generator=g), dim=1).requires_grad_(True)
    f2 = f1.detach().clone().requires_grad_(True)
    got = camera_proxy_losses(f1, proxies, proxy[idx], cluster, camera, 0.1, num_hard, skip,
                              group)
    want = _direct(f2, proxies, proxy[idx], cluster, camera, 0.1, num_hard, skip, group)
    plain = camera_proxy_losses(f1, proxies, proxy[idx], cluster, camera, 0.1, num_hard)
    assert got[1].item() != pytest.approx(plain[1].item(), rel=1e-4)  # the skip does something
    for a, b in zip(got, want, strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-5, abs=1e-6)
    got[1].backward()
    want[1].backward()
    assert torch.allclose(f1.grad, f2.grad, atol=1e-5)


def test_bad_inputs_raise():
    p = torch.eye(3)
    with pytest.raises(ValueError, match="temperature"):
        camera_proxy_losses(p[:1], p, torch.tensor([0]), torch.tensor([0, 1, 2]),
                            torch.tensor([0, 0, 0]), temperature=0.0)
    with pytest.raises(ValueError, match="one entry per proxy"):
        camera_proxy_losses(p[:1], p, torch.tensor([0]), torch.tensor([0, 1]),
                            torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="num_unseen_skip"):
        camera_proxy_losses(p[:1], p, torch.tensor([0]), torch.tensor([0, 1, 2]),
                            torch.tensor([0, 0, 0]), num_unseen_skip=-1)
    with pytest.raises(ValueError, match="proxy_group"):
        camera_proxy_losses(p[:1], p, torch.tensor([0]), torch.tensor([0, 1, 2]),
                            torch.tensor([0, 0, 0]), num_unseen_skip=1,
                            proxy_group=torch.tensor([0]))
    with pytest.raises(ValueError, match="same shape|one shape"):
        camera_proxies(torch.tensor([0, 1]), torch.tensor([0]))


def _cap_args(tiny, root, out, *extra):
    return ["--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "SOLVER.METHOD", "cap",
            "DATASETS.ROOT", root, "OUTPUT_DIR", str(out), "TEST.EVAL_PERIOD", "2", *extra]


def test_cap_runner_trains_logs_proxies_and_resumes_exactly(tiny, tiny_root, tmp_path,
                                                            train_full_and_resumed):
    import json

    train_full_and_resumed(lambda out, *extra: _cap_args(tiny, tiny_root, out, *extra), tmp_path)
    labels = [json.loads(x) for x in (tmp_path / "full" / "labels.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in labels] == [0, 1]
    for line in labels:  # every cluster yields at least one proxy, every outlier exactly one
        assert line["num_proxies"] >= line["num_clusters"] + line["num_outliers"]


def test_cap_with_a_source_and_no_spcl_term_is_a_clear_error(tiny, tiny_root, tmp_path):
    from reid.engine import cli

    with pytest.raises(ValueError, match="needs CAP.SPCL_WEIGHT > 0"):
        cli.train_main(_cap_args(tiny, tiny_root, tmp_path / "out",
                                 "DATASETS.SOURCE", "['synthetic_person_b']"))


def test_cap_with_only_the_spcl_term_equals_spcl_bit_for_bit(tiny, tiny_root, tmp_path):
    """UDA: CAP.SPCL_WEIGHT 1 with both proxy weights 0 is SpCL exactly (the memory is updated
    once per step, not twice)."""
    from reid.engine import cli
    from reid.utils.checkpoint import load_checkpoint

    common = ["--config-file", "configs/demo/uda_synthetic.yaml", *tiny, "DATASETS.ROOT", tiny_root,
              "SOLVER.MAX_EPOCHS", "1", "TEST.EVAL_PERIOD", "5"]
    cli.train_main([*common, "OUTPUT_DIR", str(tmp_path / "spcl")])
    cli.train_main([*common, "OUTPUT_DIR", str(tmp_path / "cap"), "SOLVER.METHOD", "cap",
                    "CAP.SPCL_WEIGHT", "1.0", "CAP.INTRA_WEIGHT", "0.0", "CAP.INTER_WEIGHT", "0.0"])
    spcl = load_checkpoint(tmp_path / "spcl" / "last.pth")
    cap = load_checkpoint(tmp_path / "cap" / "last.pth")
    for key, value in spcl["model"].items():
        assert torch.equal(value, cap["model"][key]), key
    assert torch.equal(spcl["method"]["memory"]["features"], cap["method"]["memory"]["features"])


def test_cap_runner_unseen_skip_uses_the_camera_groups_and_changes_training(tiny, tiny_root,
                                                                           tiny_root_4cams,
                                                                           tmp_path):
    from reid.config import load_cfg
    from reid.engine import cli
    from reid.engine.build import build_runner
    from reid.utils.checkpoint import load_checkpoint

    root = tiny_root_4cams
    groups = ["DATASETS.SYNTHETIC.CAMS", "4", "CLUSTER.CAMERA_GROUPS", "[[0, 1], [2, 3]]",
              "SOLVER.MAX_EPOCHS", "1"]
    runner = build_runner(load_cfg("configs/demo/usl_synthetic.yaml", _cap_args(
        tiny, root, tmp_path / "probe", *groups, "CAP.UNSEEN_SKIP", "2")[2:]),
        device=torch.device("cpu"))
    runner.before_train()
    runner.set_epoch(0)
    runner.update_labels(0)
    (proxy_group,) = runner._proxy_groups
    assert runner.num_unseen_skip == 2
    assert proxy_group.tolist() == (runner._proxies[0][2] // 2).tolist()
    weights = {}
    for skip in (0, 2):
        out = tmp_path / f"skip{skip}"
        cli.train_main(_cap_args(tiny, root, out, *groups, "CAP.UNSEEN_SKIP", str(skip)))
        weights[skip] = load_checkpoint(out / "last.pth")["model"]
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    with pytest.raises(ValueError, match="UNSEEN_SKIP must be >= 0"):
        cli.train_main(_cap_args(tiny, tiny_root, tmp_path / "bad", "CAP.UNSEEN_SKIP", "-1"))
