"""Camera-specific BN statistics at test time: exact statistics, routing, evaluator, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data.datasets.base import ReIDDataset
from reid.evaluation import evaluate_features
from reid.evaluation.evaluator import DatasetEvaluator
from reid.models import build_encoder, convert_dsbn, extract_features, fit_camera_bn


def test_first_layer_statistics_are_exact_population_moments_for_any_batching(
        tiny_encoder, random_images, camera_batches):
    model = tiny_encoder()
    cams = {3: random_images(10, 0.0, 1), 7: random_images(7, 2.0, 2)}
    for size in (2, 3, 10):
        cam_model, branches = fit_camera_bn(model, {c: camera_batches(x, size, c)
                                                    for c, x in cams.items()})
        assert branches == {3: 1, 7: 2}
        for cam, x in cams.items():
            conv_out = model.conv(x).detach().double()  # input of the first BN
            flat = conv_out.permute(1, 0, 2, 3).reshape(4, -1)
            bn = cam_model.bn.dsbn[branches[cam]]
            torch.testing.assert_close(bn.running_mean.double(), flat.mean(1), atol=1e-6, rtol=0)
            torch.testing.assert_close(bn.running_var.double(), flat.var(1, unbiased=True),
                                       atol=1e-5, rtol=0)
    # batches of one image (first and last) are merged with a neighbour, none is dropped
    x = cams[7]
    odd = [{"img": x[:1]}, {"img": x[1:6]}, {"img": x[6:]}]
    cam_model, branches = fit_camera_bn(model, {7: odd})
    flat = model.conv(x).detach().double().permute(1, 0, 2, 3).reshape(4, -1)
    torch.testing.assert_close(cam_model.bn.dsbn[1].running_mean.double(), flat.mean(1),
                               atol=1e-6, rtol=0)
    # branch 0 keeps the model's own statistics
    torch.testing.assert_close(cam_model.bn.dsbn[0].running_mean, model.bn.running_mean)
    torch.testing.assert_close(cam_model.neck.dsbn[0].running_var, model.neck.running_var)


def test_one_batch_per_camera_equals_a_train_mode_pass_over_that_camera(
        tiny_encoder, random_images, camera_batches):
    """With each camera in one batch, every layer's statistics equal those BatchNorm records
    (momentum 1) in one train-mode forward over the camera's images."""
    model = tiny_encoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = random_images(9, 1.0, 3)
    cam_model, branches = fit_camera_bn(model, {5: camera_batches(x, 9, 5)})
    ref = tiny_encoder()
    ref.load_state_dict(before)
    for bn in (ref.bn, ref.neck):
        bn.momentum = 1.0
    ref.train()
    with torch.no_grad():
        ref(x)
    for name in ("bn", "neck"):
        got, want = getattr(cam_model, name).dsbn[branches[5]], getattr(ref, name)
        torch.testing.assert_close(got.running_mean, want.running_mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.running_var, want.running_var, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.weight, want.weight)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the model was modified"
    assert not cam_model.training


def test_extraction_routes_each_image_to_its_cameras_statistics(tiny_encoder, random_images,
                                                                camera_batches):
    model = tiny_encoder()
    xa, xb, xc = random_images(6, 0.0, 4), random_images(6, 3.0, 5), random_images(4, -1.0, 6)
    cam_model, branches = fit_camera_bn(model, {0: camera_batches(xa, 3, 0),
                                                1: camera_batches(xb, 3, 1)})
    # a mixed loader: cameras 0, 1 and an unseen camera 9 interleaved in each batch
    x = torch.cat([xa[:2], xb[:2], xc[:2], xa[2:], xb[2:], xc[2:]])
    camids = torch.tensor([0, 0, 1, 1, 9, 9] + [0] * 4 + [1] * 4 + [9] * 2)
    loader = [{"img": x[i:i + 5], "camid": camids[i:i + 5]} for i in range(0, len(x), 5)]
    feats, _, cams = extract_features(cam_model, loader, device="cpu", camera_domains=branches)
    np.testing.assert_array_equal(cams, camids.numpy())
    for cam, branch in ((0, 1), (1, 2), (9, 0)):
        single = tiny_encoder()
        state = {k: v for k, v in model.state_dict().items()}
        for name in ("bn", "neck"):
            src = getattr(cam_model, name).dsbn[branch]
            state[f"{name}.running_mean"] = src.running_mean
            state[f"{name}.running_var"] = src.running_var
        single.load_state_dict(state)
        single.eval()
        with torch.no_grad():
            want = single(x[camids == cam])
        torch.testing.assert_close(feats[camids == cam], want, atol=1e-6, rtol=0)
    plain, _, _ = extract_features(model, loader, device="cpu")
    torch.testing.assert_close(feats[camids == 9], plain[camids == 9], atol=1e-6, rtol=0)


def test_starts_from_the_target_branch_of_a_dsbn_model(tiny_encoder, random_images, camera_batches):
    model = convert_dsbn(tiny_encoder(), 2)
    with torch.no_grad():
        model.bn.dsbn[1].weight.fill_(2.0)
        model.bn.dsbn[0].weight.fill_(-3.0)
    cam_model, branches = fit_camera_bn(model, {4: camera_batches(random_images(4, 0.0, 7), 4, 4)})
    assert cam_model.bn.num_domains == 2
    for branch in (0, branches[4]):
        assert torch.all(cam_model.bn.dsbn[branch].weight == 2.0)


def test_errors_are_clear(tiny_encoder, random_images, camera_batches):
    model = tiny_encoder()
    with pytest.raises(ValueError, match="no camera"):
        fit_camera_bn(model, {})
    with pytest.raises(ValueError, match="camera 2 has fewer than 2 images"):
        fit_camera_bn(model, {2: camera_batches(random_images(1, 0.0, 8), 1, 2)})
    with pytest.raises(ValueError, match="camid"):
        extract_features(model, [{"img": random_images(2, 0.0, 9)}], device="cpu",
                         camera_domains={0: 1})


def _toy_dataset() -> tuple[ReIDDataset, dict[str, torch.Tensor]]:
    """Four identities seen by two cameras; camera 1 adds a strong colour cast."""
    g = torch.Generator().manual_seed(11)
    ids = torch.randn(8, 3, 1, 1, generator=g)
    images: dict[str, torch.Tensor] = {}
    train, query, gallery = [], [], []
    for pid in range(8):
        for cam in (0, 1):
            for k in range(3):
                img = ids[pid] + 0.3 * torch.randn(3, 8, 4, generator=g)
                if cam == 1:
                    img = img * 0.5 + torch.tensor([2.0, -1.0, 0.5]).view(3, 1, 1)
                path = f"p{pid}_c{cam}_{k}"
                images[path] = img
                item = (path, pid, cam)
                if pid < 4:
                    train.append(item)
                elif k == 0:
                    query.append(item)
                else:
                    gallery.append(item)
    return ReIDDataset("toy", "", train, query, gallery), images


def test_evaluator_with_camera_bn_equals_the_manual_pipeline():
    dataset, images = _toy_dataset()

    def make_loader(samples, is_video):
        return [{"img": torch.stack([images[s[0]] for s in samples[i:i + 4]]),
                 "pid": torch.tensor([s[1] for s in samples[i:i + 4]]),
                 "camid": torch.tensor([s[2] for s in samples[i:i + 4]])}
                for i in range(0, len(samples), 4)]

    model = build_encoder("resnet18", num_classes=0)
    model.eval()
    res = DatasetEvaluator({"toy": dataset}, make_loader, camera_bn=True).evaluate(model)["toy"]
    plain = DatasetEvaluator({"toy": dataset}, make_loader).evaluate(model)["toy"]

    loaders = {c: make_loader([s for s in dataset.train if s[2] == c], False) for c in (0, 1)}
    cam_model, branches = fit_camera_bn(model, loaders)
    q, _, _ = extract_features(cam_model, make_loader(dataset.query, False),
                               camera_domains=branches)
    g, _, _ = extract_features(cam_model, make_loader(dataset.gallery, False),
                               camera_domains=branches)
    arrays = {f"{side}_{key}": np.array([s[i] for s in getattr(dataset, name)])
              for side, name in (("q", "query"), ("g", "gallery"))
              for key, i in (("pids", 1), ("camids", 2))}
    want = evaluate_features(q, g, **arrays)
    assert res["mAP"] == pytest.approx(want["mAP"], abs=1e-6)
    assert res["mAP"] != pytest.approx(plain["mAP"], abs=1e-6)

    video = ReIDDataset("v", "", dataset.train, dataset.query, dataset.gallery, is_video=True)
    with pytest.raises(ValueError, match="image sets only"):
        DatasetEvaluator({"v": video}, make_loader, camera_bn=True).evaluate(model)
    empty = ReIDDataset("e", "", [], dataset.query, dataset.gallery)
    with pytest.raises(ValueError, match="training images of e"):
        DatasetEvaluator({"e": empty}, make_loader, camera_bn=True).evaluate(model)
