"""Camera-based BN during training (MODEL.CAMERA_BN): shared-affine branches, camera-pure chunk
sampling, per-camera routing of training batches, exact initial statistics, the runner wiring,
resume and configuration errors."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.data.domain_batches import DomainBatches
from reid.data.samplers import CameraChunkSampler
from reid.models import convert_dsbn, estimate_bn_statistics


def test_shared_affine_branches_have_one_parameter_and_per_camera_statistics(tiny_encoder,
                                                                             random_images):
    plain = tiny_encoder()
    model = convert_dsbn(copy.deepcopy(plain), 3, share_affine=True)
    assert len(list(model.parameters())) == len(list(plain.parameters()))
    assert model.bn.dsbn[2].weight is model.bn.dsbn[0].weight
    assert model.bn.dsbn[1].running_mean is not model.bn.dsbn[0].running_mean
    # train mode, cameras interleaved: each camera's samples are normalised by their own batch
    # statistics with the one shared affine transform, exactly as a plain BN fed them alone
    x = torch.cat([random_images(3, 0.0, 1), random_images(4, 3.0, 2)])
    cams = torch.tensor([0, 2, 0, 2, 2, 0, 2])
    model.train()
    out = model(x, domains=cams)
    for c in (0, 2):
        ref = copy.deepcopy(plain).train()
        torch.testing.assert_close(out[cams == c], ref(x[cams == c]), atol=1e-5, rtol=0)
    assert torch.equal(model.bn.dsbn[1].running_mean, plain.bn.running_mean)  # branch 1 unused
    out.sum().backward()
    assert model.bn.dsbn[0].weight.grad is not None
    # the state dict lists the shared tensors under every branch and loads back
    state = model.state_dict()
    assert torch.equal(state["bn.dsbn.1.weight"], state["bn.dsbn.0.weight"])
    again = convert_dsbn(copy.deepcopy(plain), 3, share_affine=True)
    again.load_state_dict(state)
    assert again.bn.dsbn[1].weight is again.bn.dsbn[0].weight
    assert "share_affine=True" in repr(model.bn)


def test_estimate_bn_statistics_sets_only_the_given_branches_in_place(tiny_encoder, random_images,
                                                                      camera_batches):
    plain = tiny_encoder()
    model = convert_dsbn(copy.deepcopy(plain), 3, share_affine=True).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = random_images(9, 2.0, 5)
    estimate_bn_statistics(model, {2: camera_batches(x, 4, 0)})
    assert not model.training  # mode restored
    flat = plain.conv(x).detach().double().permute(1, 0, 2, 3).reshape(4, -1)
    torch.testing.assert_close(model.bn.dsbn[2].running_mean.double(), flat.mean(1),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(model.bn.dsbn[2].running_var.double(), flat.var(1), atol=1e-5,
                               rtol=0)
    after = model.state_dict()
    for key, value in before.items():
        changed = ".dsbn.2.running" in key
        assert torch.equal(value, after[key]) != changed, key
    with pytest.raises(ValueError, match="out of range"):
        estimate_bn_statistics(model, {3: camera_batches(x, 4, 0)})
    with pytest.raises(ValueError, match="fewer than 2"):
        estimate_bn_statistics(model, {1: camera_batches(x[:1], 4, 0)})
    with pytest.raises(ValueError, match="domain-specific BN"):
        estimate_bn_statistics(tiny_encoder(), {0: camera_batches(x, 4, 0)})


CAMS = [0] * 10 + [1] * 3 + [2] * 7


def test_camera_chunk_sampler_yields_camera_pure_chunks_covering_every_image():
    chunk = 4
    sampler = CameraChunkSampler(CAMS, chunk_size=chunk, num_samples=5 * 4 * chunk, seed=3)
    idx = np.asarray(list(sampler))
    assert len(idx) == len(sampler) == 80
    cams = np.asarray(CAMS)[idx].reshape(-1, chunk)
    assert (cams == cams[:, :1]).all()  # every chunk is one camera
    # one pass = ceil(10/4) + 1 + ceil(7/4) = 6 chunks: cameras 0 / 1 / 2 give 3 / 1 / 2 chunks,
    # every image of cameras 0 and 2 at least once, no repeat inside a chunk of camera 0 or 2
    first = idx[:6 * chunk].reshape(-1, chunk)
    assert sorted(cams[:6, 0].tolist()) == [0, 0, 0, 1, 2, 2]
    seen = set(first.ravel().tolist())
    assert set(range(10)) | set(range(13, 20)) <= seen
    for row, cam in zip(first, cams[:6, 0], strict=True):
        if cam != 1:
            assert len(set(row.tolist())) == chunk
        else:  # camera 1 has 3 < 4 images: drawn with replacement
            assert set(row.tolist()) <= {10, 11, 12}
    assert list(CameraChunkSampler(CAMS, chunk, num_samples=80, seed=3)) == idx.tolist()
    sampler.set_epoch(1)
    assert list(sampler) != idx.tolist()
    # sharding by whole chunks: rank r takes chunks r, r + 2, ...
    shards = [list(CameraChunkSampler(CAMS, chunk, num_samples=40, seed=3, rank=r,
                                      world_size=2)) for r in range(2)]
    whole = idx.reshape(-1, chunk)
    assert shards[0] == whole[0::2].ravel().tolist() and shards[1] == whole[1::2].ravel().tolist()
    with pytest.raises(ValueError, match="chunk_size"):
        CameraChunkSampler(CAMS, chunk_size=1)
    with pytest.raises(ValueError, match="multiple"):
        CameraChunkSampler(CAMS, chunk_size=4, num_samples=10)


def test_domain_batches_route_each_sample_to_its_camera_branch():
    loaders = [[{"img": torch.zeros(3, 1), "pid": torch.tensor([5, 6, 5]),
                 "camid": torch.tensor([0, 0, 0])}],
               [{"img": torch.ones(4, 1), "index": torch.arange(4),
                 "pid": torch.tensor([-1] * 4), "camid": torch.tensor([7, 2, 7, 2])}]]
    batches = DomainBatches(loaders, ["pid", "index"], domains=[0, 1],
                            camera_branches=[None, {2: 1, 7: 2}])
    batch = batches.next("cpu")
    assert batch["domain"].tolist() == [0, 0, 0, 2, 1, 2, 1]
    assert batch["dataset"].tolist() == [0, 0, 0, 1, 1, 1, 1]
    bad = DomainBatches(loaders, ["pid", "index"], camera_branches=[None, {2: 1}])
    with pytest.raises(KeyError, match=r"cameras \[7\]"):
        bad.next("cpu")
    with pytest.raises(ValueError, match="one entry"):
        DomainBatches(loaders, ["pid", "index"], camera_branches=[None])


def _cbn_args(tiny, root, out, *extra):
    return ["--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "SOLVER.METHOD", "cap",
            "DATASETS.ROOT", root, "OUTPUT_DIR", str(out), "TEST.EVAL_PERIOD", "2",
            "MODEL.CAMERA_BN", "True", "TEST.CAMERA_BN", "True", "DATALOADER.CAMERA_CHUNK", "4",
            "DATALOADER.SAMPLER", "random",
            *extra]


def test_runner_fills_the_memory_with_camera_normalised_features(tiny, tiny_root, tmp_path):
    from reid.config import load_cfg
    from reid.data.build import build_transform_from_cfg, make_test_loader
    from reid.engine.build import build_runner
    from reid.models import extract_features, fit_camera_bn

    args = _cbn_args(tiny, tiny_root, tmp_path / "out")
    cfg = load_cfg(args[1], args[2:])
    runner = build_runner(cfg, device=torch.device("cpu"))
    model = runner.model
    assert {m.num_domains for m in model.modules() if hasattr(m, "dsbn")} == {2}  # 2 cameras
    untouched = copy.deepcopy(model)
    runner.before_train()
    # the same statistics and features as the test-time path (fit_camera_bn on the train images)
    ds = runner.evaluator.test_sets["synthetic_person_a"]
    loader = lambda items: make_test_loader(  # noqa: E731
        items, is_video=False, transform=build_transform_from_cfg(cfg, is_train=False),
        batch_size=64, num_workers=0)
    by_cam = {c: [s for s in ds.train if s[2] == c] for c in (0, 1)}
    ref_model, ref_map = fit_camera_bn(untouched, {c: loader(v) for c, v in by_cam.items()},
                                       domain=0)
    ref, _, _ = extract_features(ref_model, loader(ds.train), camera_domains=ref_map)
    torch.testing.assert_close(runner.memory.target_features(0), F.normalize(ref, dim=1),
                               atol=1e-4, rtol=0)
    plain, _, _ = extract_features(untouched, loader(ds.train), domain=0)
    assert (runner.memory.target_features(0) - F.normalize(plain, dim=1)).abs().max() > 1e-2


def test_camera_bn_training_resumes_exactly_and_tools_test_reads_it(tiny, tiny_root, tmp_path,
                                                                    train_full_and_resumed):
    import json

    from reid.engine import cli

    root = tiny_root
    full, _ = train_full_and_resumed(lambda out, *extra: _cbn_args(tiny, root, out, *extra),
                                     tmp_path)
    state = full["model"]
    bn = [k[:-len(".dsbn.0.running_mean")] for k in state if k.endswith(".dsbn.0.running_mean")]
    assert bn and all(f"{k}.dsbn.2.running_mean" not in state for k in bn)  # one branch per cam
    assert any(not torch.equal(state[f"{k}.dsbn.0.running_mean"], state[f"{k}.dsbn.1.running_mean"])
               for k in bn)
    assert all(torch.equal(state[f"{k}.dsbn.0.weight"], state[f"{k}.dsbn.1.weight"]) for k in bn)
    last = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    out = cli.test_main(_cbn_args(tiny, root, tmp_path / "test", "MODEL.WEIGHTS",
                                  str(tmp_path / "full" / "last.pth")))
    assert out["mAP"] == pytest.approx(last[-1]["mAP"], abs=1e-6)


@pytest.mark.parametrize("extra, match", [
    (["TEST.CAMERA_BN", "False"], "set TEST.CAMERA_BN True"),
    (["DATALOADER.CAMERA_CHUNK", "3"], "CAMERA_CHUNK >= 2 dividing"),
    (["SOLVER.METHOD", "supervised", "DATASETS.SOURCE", "['synthetic_person_a']",
      "DATASETS.TARGET", "[]"], "clustering methods"),
])
def test_camera_bn_configuration_errors(tiny, tiny_root, tmp_path, extra, match):
    from reid.engine import cli

    with pytest.raises(ValueError, match=match):
        cli.train_main(_cbn_args(tiny, tiny_root, tmp_path / "out", *extra))
