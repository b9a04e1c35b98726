"""Local weight loading (torchvision / shared MobileNetV2 / unreid checkpoints) and extraction."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

import reid
from reid.data.transforms import build_test_transform
from reid.models import (
    BACKBONE_REGISTRY,
    DomainSpecificBatchNorm,
    FeatureExtractor,
    build_encoder,
    extract_features,
    load_pretrained,
)

H, W = 64, 32
SHARED_WEIGHTS = Path(reid.__file__).resolve().parents[2] / "shared" / "weights"
MOBILENET = SHARED_WEIGHTS / "mobilenet_v2_imagenet_features.pth"


def _tv_resnet_trunk(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_resnet50_torchvision_state_dict_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet50_tv.pth"
    torch.save(tv.state_dict(), path)
    ours = BACKBONE_REGISTRY.get("resnet50")(last_stride=2)
    report = load_pretrained(ours, path)
    assert report.missing == [] and report.unexpected == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), _tv_resnet_trunk(tv, x))
    encoder = build_encoder("resnet50", pretrained_path=path, last_stride=2, num_domains=2)
    for m in encoder.modules():  # plain BN entries fill every DSBN branch
        if isinstance(m, DomainSpecificBatchNorm):
            assert torch.equal(m.dsbn[0].running_mean, m.dsbn[1].running_mean)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder.backbone(x), _tv_resnet_trunk(tv, x))


@pytest.mark.skipif(not MOBILENET.is_file(), reason=f"shared weights absent: {MOBILENET}")
def test_mobilenet_shared_weights_match_torchvision() -> None:
    sd = torch.load(MOBILENET, map_location="cpu", weights_only=True)
    tv = torchvision.models.mobilenet_v2(weights=None)
    tv.load_state_dict(sd, strict=False)
    ours = BACKBONE_REGISTRY.get("mobilenet_v2")(last_stride=2)
    report = load_pretrained(ours, MOBILENET)
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == 312
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), tv.features.eval()(x))
        tv.features[14].conv[1][0].stride = (1, 1)
        one = build_encoder("mobilenet_v2", pretrained_path=MOBILENET, last_stride=1).eval()
        assert torch.equal(one.backbone(x), tv.features(x))


def test_dsbn_checkpoint_collapses_into_plain_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    dsbn = build_encoder("resnet18", num_domains=2)
    dsbn(torch.randn(4, 3, H, W) + 3, domains=torch.tensor([1, 1, 1, 1]))
    path = tmp_path / "ckpt.pth"
    torch.save({"model": dsbn.state_dict(), "epoch": 3}, path)
    plain = build_encoder("resnet18")
    report = load_pretrained(plain, path)  # branch -1 = the last
    assert report.missing == [] and report.unexpected == []
    dsbn.eval()
    plain.eval()
    x = torch.randn(3, 3, H, W)
    with torch.no_grad():
        assert torch.equal(plain(x), dsbn(x))
    load_pretrained(plain, path, dsbn_domain=0)
    dsbn.set_test_domain(0)
    with torch.no_grad():
        assert torch.equal(plain(x), dsbn(x))


def test_load_errors_name_keys_and_paths(tmp_path: Path) -> None:
    sd = BACKBONE_REGISTRY.get("resnet18")().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight: checkpoint \(64, 64, 1, 1\) "
                                         r"vs model \(64, 64, 3, 3\)"):
        load_pretrained(build_encoder("resnet18"), bad)
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth.*Nothing is downloaded"):
        load_pretrained(build_encoder("resnet18"), missing)
    other = tmp_path / "mbv2.pth"
    torch.save(BACKBONE_REGISTRY.get("mobilenet_v2")().state_dict(), other)
    with pytest.raises(ValueError, match="no key of .*mbv2.pth matches"):
        load_pretrained(BACKBONE_REGISTRY.get("resnet18")(), other)


def _images(n: int) -> list[Image.Image]:
    g = torch.Generator().manual_seed(0)
    return [Image.fromarray(torch.randint(0, 256, (40 + i, 20 + i, 3), generator=g,
                                          dtype=torch.uint8).numpy()) for i in range(n)]


def test_skip_mismatched_keeps_new_classifier(tmp_path: Path) -> None:
    """A checkpoint with a classifier over 5 ids loads into a 7-id model only with
    ``skip_mismatched``: everything else is copied, the classifier stays as initialised."""
    torch.manual_seed(0)
    five = build_encoder("resnet18", num_classes=5)
    path = tmp_path / "five.pth"
    torch.save({"model": five.state_dict()}, path)
    seven = build_encoder("resnet18", num_classes=7)
    before = copy.deepcopy(seven.state_dict())
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained(seven, path)
    report = load_pretrained(seven, path, skip_mismatched=True)
    after = seven.state_dict()
    skipped = [k for k in after if after[k].shape != five.state_dict()[k].shape]
    assert skipped and all("classifier" in k for k in skipped)
    assert set(skipped) <= set(report.missing)
    for key, value in after.items():
        expected = before[key] if key in skipped else five.state_dict()[key]
        assert torch.equal(value, expected), key


def test_extract_features_and_feature_extractor(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = build_encoder("resnet18", num_domains=2, embed_dim=16)
    model(torch.randn(4, 3, H, W), domains=torch.tensor([0, 0, 1, 1]))
    transform = build_test_transform((H, W))
    images = _images(5)
    x = torch.stack([transform(im) for im in images])
    model.eval()
    with torch.no_grad():
        ref0 = model(x, domains=torch.zeros(5, dtype=torch.long))
        ref1 = model(x)  # test domain (last)
        ref_flip = torch.nn.functional.normalize(model(x) + model(x.flip(-1)), dim=1)
    loader = [{"img": x[:3], "pid": torch.tensor([1, 2, 3]), "camid": torch.tensor([0, 0, 1])},
              {"img": x[3:], "pid": torch.tensor([4, 5]), "camid": torch.tensor([1, 1])}]
    model.train()
    feats, pids, camids = extract_features(model, loader, device="cpu", domain=0)
    assert model.training  # restored
    torch.testing.assert_close(feats, ref0, rtol=1e-5, atol=1e-6)
    assert pids.tolist() == [1, 2, 3, 4, 5] and camids.tolist() == [0, 0, 1, 1, 1]
    torch.testing.assert_close(extract_features(model, loader, "cpu")[0], ref1,
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(extract_features(model, loader, "cpu", flip=True)[0], ref_flip,
                               rtol=1e-5, atol=1e-6)
    clips = [{"img": x, "num_clips": torch.tensor([2, 3]), "pid": torch.tensor([7, 8]),
              "camid": torch.tensor([0, 1])}]
    avg, _, _ = extract_features(model, clips, "cpu")
    ref_avg = torch.nn.functional.normalize(torch.stack([ref1[:2].mean(0), ref1[2:].mean(0)]))
    torch.testing.assert_close(avg, ref_avg, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no batch"):
        extract_features(model, [], "cpu")

    extractor = FeatureExtractor(copy.deepcopy(model), device="cpu", image_size=(H, W),
                                 batch_size=2)
    out = extractor(images)
    assert out.shape == (5, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(out, ref1, rtol=1e-5, atol=1e-6)
    path = tmp_path / "a.png"
    images[0].save(path)
    torch.testing.assert_close(extractor(path), ref1[:1], rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        extractor([tmp_path / "missing.png"])
