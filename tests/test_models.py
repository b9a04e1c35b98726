"""Backbones, encoder contract, domain-specific BN, grouped BN and builders."""
from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from reid.config import get_cfg
from reid.models import (
    BACKBONE_REGISTRY,
    DomainSpecificBatchNorm,
    GroupedBatchNorm1d,
    GroupedBatchNorm2d,
    ReIDEncoder,
    build_encoder,
    build_model,
    convert_dsbn,
    convert_dsbn_to_bn,
    convert_grouped_bn,
    convert_sync_bn,
    gem,
    use_domains,
)
from reid.models.backbones import IBN

H, W = 64, 32


def _bn_modules(model: nn.Module) -> dict[str, nn.Module]:
    bn_types = nn.modules.batchnorm._BatchNorm
    return {n: m for n, m in model.named_modules() if isinstance(m, bn_types)}


# ----------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("arch,channels", [
    ("resnet10_half", 256), ("resnet10", 512), ("resnet18", 512), ("resnet34", 512),
    ("resnet50", 2048), ("resnet101", 2048), ("resnet50_ibn_a", 2048), ("resnet101_ibn_a", 2048),
    ("mobilenet_v2", 1280),
])
def test_backbone_shapes_and_last_stride(arch: str, channels: int) -> None:
    x = torch.randn(2, 3, H, W)
    net = BACKBONE_REGISTRY.get(arch)(last_stride=1).eval()
    assert net.out_channels == channels
    with torch.no_grad():
        assert net(x).shape == (2, channels, H // 16, W // 16)
    if arch in ("resnet10_half", "resnet10", "resnet18", "resnet50", "mobilenet_v2"):
        net = BACKBONE_REGISTRY.get(arch)(last_stride=2).eval()
        with torch.no_grad():
            assert net(x).shape == (2, channels, H // 32, W // 32)


def test_resnet10_is_resnet18_with_one_block_per_stage() -> None:
    r10 = BACKBONE_REGISTRY.get("resnet10")().state_dict()
    r18 = BACKBONE_REGISTRY.get("resnet18")().state_dict()
    assert [len(getattr(BACKBONE_REGISTRY.get("resnet10")(), f"layer{i}")) for i in range(1, 5)] \
        == [1, 1, 1, 1]
    # the first block of every stage, downsampling included, is ResNet-18's, key for key
    assert set(r10) == {k for k in r18 if not re.match(r"layer\d\.1\.", k)}
    assert all(r10[k].shape == r18[k].shape for k in r10)


def test_resnet10_half_is_resnet10_at_half_width_with_torchvision_init() -> None:
    torch.manual_seed(0)
    half = BACKBONE_REGISTRY.get("resnet10_half")()
    full = BACKBONE_REGISTRY.get("resnet10")().state_dict()
    sd = half.state_dict()
    assert set(sd) == set(full)
    for k, v in sd.items():  # every width halved, the RGB input and the kernel sizes kept
        want = list(full[k].shape)
        if want:
            want[0] //= 2
        if len(want) == 4 and want[1] != 3:
            want[1] //= 2
        assert list(v.shape) == want, k
    convs = [m for m in half.modules() if isinstance(m, nn.Conv2d)]
    ref = [m for m in BACKBONE_REGISTRY.get("resnet10")().modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.padding) for c in convs] \
        == [(c.kernel_size, c.stride, c.padding) for c in ref]
    # torchvision's init: Kaiming-normal (fan_out) convolutions, BN weight 1 and bias 0
    w = half.layer4[0].conv1.weight
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert float(w.detach().std()) == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.02)
    bns = [m for m in half.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((b.weight == 1).all()) and bool((b.bias == 0).all()) for b in bns)


def test_ibn_a_layout_and_normalisation() -> None:
    net = BACKBONE_REGISTRY.get("resnet50_ibn_a")(last_stride=1)
    for name in ("layer1", "layer2", "layer3"):
        for block in getattr(net, name):
            assert isinstance(block.bn1, IBN)
            assert block.bn1.IN.num_features == block.conv1.out_channels // 2
            assert block.bn1.BN.num_features == block.conv1.out_channels // 2
            assert isinstance(block.bn2, nn.BatchNorm2d)
    assert all(isinstance(b.bn1, nn.BatchNorm2d) for b in net.layer4)
    ibn = net.layer1[0].bn1.eval()
    with torch.no_grad():
        ibn.IN.weight.uniform_(0.5, 2)
        ibn.IN.bias.uniform_(-1, 1)
        ibn.BN.running_mean.uniform_(-1, 1)
    x = torch.randn(3, 64, 5, 4)
    ref_in = F.instance_norm(x[:, :32], weight=ibn.IN.weight, bias=ibn.IN.bias, eps=ibn.IN.eps)
    ref_bn = F.batch_norm(x[:, 32:], ibn.BN.running_mean, ibn.BN.running_var, ibn.BN.weight,
                          ibn.BN.bias, False, 0.0, ibn.BN.eps)
    with torch.no_grad():
        out = ibn(x)
    torch.testing.assert_close(out, torch.cat([ref_in, ref_bn], 1), rtol=0, atol=1e-6)


def test_mobilenet_last_stride_changes_block_14_only() -> None:
    net = BACKBONE_REGISTRY.get("mobilenet_v2")(last_stride=1)
    ref = torchvision.models.mobilenet_v2(weights=None).features
    strides = [(i, m.stride) for i, m in enumerate(net.features.modules())
               if isinstance(m, nn.Conv2d)]
    ref_strides = [(i, m.stride) for i, m in enumerate(ref.modules()) if isinstance(m, nn.Conv2d)]
    diff = [(a, b) for a, b in zip(strides, ref_strides, strict=True) if a != b]
    assert len(diff) == 1 and diff[0][0][1] == (1, 1) and diff[0][1][1] == (2, 2)
    assert net.features[14].conv[1][0].stride == (1, 1)


# ----------------------------------------------------------------------------- encoder


def test_encoder_train_and_eval_contract() -> None:
    model = build_encoder("resnet18", embed_dim=64, num_classes=7, dropout=0.1)
    x = torch.randn(4, 3, H, W)
    out = model(x)
    assert set(out) == {"global", "feat", "logits"}
    assert out["global"].shape == (4, 512) and out["feat"].shape == (4, 64)
    assert out["logits"].shape == (4, 7)
    assert model.feat_dim == 64 and model.num_domains == 1
    assert model.classifier.bias is None
    # BNNeck: neck output of the reduced embedding, bias frozen at 0, not normalised
    emb = model.reduction(out["global"])
    ref = F.batch_norm(emb, None, None, model.neck.weight, model.neck.bias, True, 0.0,
                       model.neck.eps)
    torch.testing.assert_close(out["feat"], ref)
    assert not model.neck.bias.requires_grad
    assert not torch.allclose(out["feat"].norm(dim=1), torch.ones(4))
    model.eval()
    with torch.no_grad():
        feats = model(x)
    assert feats.dtype == torch.float32 and feats.shape == (4, 64)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(4))
    no_cls = build_encoder("resnet18", neck=False)
    assert set(no_cls(x)) == {"global", "feat"}
    torch.testing.assert_close(no_cls(x)["feat"], no_cls(x)["global"])


def test_neck_bias_stays_zero_after_training_step() -> None:
    model = build_encoder("resnet18", num_classes=3)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(4, 3, H, W))
    F.cross_entropy(out["logits"], torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert torch.equal(model.neck.bias, torch.zeros(512))


def test_pooling_values() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    assert gem(x, 2.0).item() == pytest.approx(7.5 ** 0.5)
    assert gem(x, 1.0).item() == pytest.approx(2.5)
    backbone = nn.Conv2d(3, 4, 1)
    backbone.out_channels = 4
    fmap = torch.rand(2, 3, 5, 3) + 0.1
    for pooling, ref in (("avg", backbone(fmap).mean((2, 3))),
                         ("max", backbone(fmap).amax((2, 3)))):
        model = ReIDEncoder(backbone, pooling=pooling, neck=False)
        torch.testing.assert_close(model(fmap)["global"], ref)
    model = ReIDEncoder(backbone, pooling="gem", gem_p=4.0, neck=False)
    y = backbone(fmap).clamp(min=1e-6)
    torch.testing.assert_close(model(fmap)["global"], y.pow(4).mean((2, 3)).pow(0.25))
    model(fmap)["global"].sum().backward()
    assert model.pool.p.grad is not None and model.pool.p.grad.abs().item() > 0


# ----------------------------------------------------------------------------- DSBN


def _mixed_batch(n0: int = 6, n1: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unsorted two-domain batch; domain-1 images are huge (1e3 scale, shifted)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n0, 3, H, W, generator=g)
    x1 = 1e3 * torch.randn(n1, 3, H, W, generator=g) + 500.0
    domains = torch.tensor([0] * n0 + [1] * n1)
    perm = torch.randperm(n0 + n1, generator=g)
    return torch.cat([x0, x1])[perm], domains[perm]


def test_dsbn_module_routes_each_domain_to_its_bn() -> None:
    bn = nn.BatchNorm2d(3)
    dsbn = DomainSpecificBatchNorm(bn, num_domains=3)
    x, d = _mixed_batch()
    d = d.clone()
    d[d == 1] = 2  # domains 0 and 2 present, 1 absent
    refs = [copy.deepcopy(bn) for _ in range(3)]
    with use_domains(dsbn, d):
        out = dsbn(x)
    assert dsbn.routing is None  # cleared after the context
    for k in (0, 2):
        torch.testing.assert_close(out[d == k], refs[k](x[d == k]), rtol=0, atol=1e-6)
        torch.testing.assert_close(dsbn.dsbn[k].running_mean, refs[k].running_mean)
        torch.testing.assert_close(dsbn.dsbn[k].running_var, refs[k].running_var)
    assert torch.equal(dsbn.dsbn[1].running_mean, torch.zeros(3))  # untouched branch
    assert dsbn.dsbn[0].running_mean.abs().max() < 1.0  # the huge domain never leaked into 0
    assert int(dsbn.dsbn[1].num_batches_tracked) == 0
    # domains outside the branches are rejected
    with pytest.raises(ValueError, match=r"\[0, 3\)"), use_domains(dsbn, torch.tensor([0, 3])):
        pass


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_dsbn_encoder_statistics_only_from_own_domain(arch: str) -> None:
    torch.manual_seed(0)
    plain = build_encoder(arch, num_classes=0)
    model = convert_dsbn(copy.deepcopy(plain), 2)
    assert model.num_domains == 2
    assert not [n for n, m in model.named_modules() if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)
                and ".dsbn." not in n]
    x, d = _mixed_batch()
    out = model(x, domains=d)
    ref0 = copy.deepcopy(plain)(x[d == 0])
    ref1 = copy.deepcopy(plain)
    ref1_out = ref1(x[d == 1])
    torch.testing.assert_close(out["feat"][d == 0], ref0["feat"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["feat"][d == 1], ref1_out["feat"], rtol=1e-4, atol=1e-4)
    ref0_model = copy.deepcopy(plain)
    ref0_model(x[d == 0])
    ref_bns = _bn_modules(ref0_model)
    ref1_bns = _bn_modules(ref1)
    checked = 0
    for name, m in model.named_modules():
        if isinstance(m, DomainSpecificBatchNorm):
            torch.testing.assert_close(m.dsbn[0].running_mean, ref_bns[name].running_mean,
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(m.dsbn[0].running_var, ref_bns[name].running_var,
                                       rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(m.dsbn[1].running_mean, ref1_bns[name].running_mean,
                                       rtol=1e-4, atol=1e-3)
            checked += 1
    assert checked == len(_bn_modules(plain))
    # the gradient of a domain-0-only loss never reaches domain-1 BN parameters
    model.zero_grad()
    model(x, domains=d)["feat"][d == 0].pow(2).sum().backward()
    for m in model.modules():
        if isinstance(m, DomainSpecificBatchNorm):
            assert m.dsbn[1].weight.grad is None or not m.dsbn[1].weight.grad.any()


def test_dsbn_contiguous_and_shuffled_batches_agree() -> None:
    torch.manual_seed(1)
    model = build_encoder("resnet18", num_domains=2)
    x, d = _mixed_batch(4, 4, seed=3)
    order = torch.argsort(d, stable=True)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    out_sorted = a(x[order], domains=d[order])["feat"]
    out_mixed = b(x, domains=d)["feat"]
    torch.testing.assert_close(out_mixed[order], out_sorted, rtol=1e-5, atol=1e-5)
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


def test_dsbn_eval_equals_converted_plain_model() -> None:
    torch.manual_seed(2)
    model = build_encoder("resnet18", num_domains=3, test_domain=-1)
    for k in range(3):  # give every branch its own statistics
        model(torch.randn(4, 3, H, W) * (k + 1) + k, domains=torch.full((4,), k))
    x = torch.randn(5, 3, H, W)
    model.eval()
    plain_keys = set(build_encoder("resnet18").state_dict())
    outs = []
    with torch.no_grad():
        for domain in (0, 1, -1):
            plain = convert_dsbn_to_bn(copy.deepcopy(model), domain).eval()
            assert not any(isinstance(m, DomainSpecificBatchNorm) for m in plain.modules())
            assert set(plain.state_dict()) == plain_keys
            model.set_test_domain(domain)
            ref = plain(x)
            assert torch.equal(model(x), ref)
            assert torch.equal(model(x, domains=torch.full((5,), domain % 3)), ref)
            outs.append(ref)
    assert not torch.allclose(outs[0], outs[2], atol=1e-3)


# ----------------------------------------------------------------------------- grouped BN


@pytest.mark.parametrize("dims,momentum", [((64, 4, 3, 2), 0.1), ((64, 5), 0.1),
                                           ((64, 4, 3, 2), None)])
def test_grouped_bn_equals_separate_passes(dims: tuple[int, ...], momentum: float | None) -> None:
    torch.manual_seed(3)
    bn = (nn.BatchNorm2d if len(dims) == 4 else nn.BatchNorm1d)(dims[1], momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.num_batches_tracked.fill_(3)
    grouped = convert_grouped_bn(copy.deepcopy(bn), 16)
    assert isinstance(grouped, GroupedBatchNorm2d if len(dims) == 4 else GroupedBatchNorm1d)
    x = torch.randn(*dims) * torch.arange(1, 65).view(64, *[1] * (len(dims) - 1))
    x.requires_grad_(True)
    copies = [copy.deepcopy(bn) for _ in range(4)]
    ref = torch.cat([c(x[16 * k:16 * (k + 1)]) for k, c in enumerate(copies)])
    out = grouped(x)
    assert torch.equal(out, ref)
    assert torch.equal(grouped.running_mean,
                       torch.stack([c.running_mean for c in copies]).mean(0))
    assert torch.equal(grouped.running_var, torch.stack([c.running_var for c in copies]).mean(0))
    assert int(grouped.num_batches_tracked) == 4
    whole = copy.deepcopy(bn)
    assert not torch.allclose(whole(x), out)
    # gradients equal the sum over the copies
    w = torch.randn_like(out)
    (gx,) = torch.autograd.grad((out * w).sum(), x, retain_graph=True)
    (rx,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(gx, rx)
    grouped.eval()
    bn.load_state_dict(grouped.state_dict())
    bn.eval()
    assert torch.equal(grouped(x), bn(x))


def test_grouped_bn_inside_dsbn_groups_each_domain() -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ref_bn = copy.deepcopy(net[1])
    model = convert_grouped_bn(convert_dsbn(copy.deepcopy(net), 2), 8)
    x = torch.randn(32, 3, 6, 5)
    d = torch.tensor([0, 1] * 16)[torch.randperm(32)]
    with use_domains(model, d):
        out = model(x)
    conv = net[0](x)
    for k in (0, 1):
        part = conv[d == k]  # 16 samples of domain k, in batch order -> 2 groups of 8
        copies = [copy.deepcopy(ref_bn) for _ in range(2)]
        ref = torch.cat([c(part[8 * j:8 * (j + 1)]) for j, c in enumerate(copies)])
        torch.testing.assert_close(out[d == k], ref, rtol=0, atol=1e-6)
        branch = model[1].dsbn[k]
        assert isinstance(branch, GroupedBatchNorm2d)
        torch.testing.assert_close(branch.running_var,
                                   torch.stack([c.running_var for c in copies]).mean(0))
    with pytest.raises(ValueError, match="multiple of samples_per_bn=8"), \
            use_domains(model, torch.zeros(12, dtype=torch.long)):
        model(torch.randn(12, 3, 6, 5))


# ----------------------------------------------------------------------------- builders


def test_build_model_reads_config() -> None:
    cfg = get_cfg()
    cfg.MODEL.ARCH = "resnet18"
    cfg.MODEL.POOLING = "gem"
    cfg.MODEL.EMBED_DIM = 32
    cfg.MODEL.LAST_STRIDE = 2
    cfg.MODEL.BN.SAMPLES_PER_BN = 4
    model = build_model(cfg, num_classes=5, num_domains=2)
    assert model.num_domains == 2 and model.feat_dim == 32
    assert model.backbone.layer4[0].conv1.stride == (2, 2)
    assert {m.test_domain for m in model.modules() if isinstance(m, DomainSpecificBatchNorm)} \
        == {1}
    assert all(isinstance(b, GroupedBatchNorm1d | GroupedBatchNorm2d)
               for m in model.modules() if isinstance(m, DomainSpecificBatchNorm) for b in m.dsbn)
    assert model(torch.randn(8, 3, H, W), domains=torch.tensor([0] * 4 + [1] * 4))[
        "logits"].shape == (8, 5)
    cfg.MODEL.DSBN.ENABLED = False
    cfg.MODEL.BN.SAMPLES_PER_BN = 0
    assert build_model(cfg, num_domains=2).num_domains == 1
    cfg.MODEL.BN.SYNC = True  # not distributed: ignored
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in build_model(cfg).modules())
    cfg.MODEL.BN.SAMPLES_PER_BN = 16
    with pytest.raises(ValueError, match="contradict"):
        build_model(cfg)
    cfg.MODEL.BN.SYNC = False
    cfg.MODEL.ARCH = "resnet_nope"
    with pytest.raises(KeyError, match="resnet_nope.*mobilenet_v2"):
        build_model(cfg)


def test_build_model_channels_last_matches_default() -> None:
    torch.manual_seed(5)
    cfg = get_cfg()
    cfg.MODEL.ARCH = "resnet18"
    ref = build_model(cfg).eval()
    cfg.MODEL.CHANNELS_LAST = True
    model = build_model(cfg).eval()
    model.load_state_dict(ref.state_dict())
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)


def test_build_model_dispatches_video_archs() -> None:
    video = pytest.importorskip("reid.models.video")
    cfg = get_cfg()
    cfg.MODEL.ARCH = "video_resnet2d_avg_tiny"
    cfg.INPUT.SEQ_LEN = 2
    cfg.INPUT.SIZE_TRAIN = [H, W]
    model = build_model(cfg, num_domains=2)
    assert isinstance(model, video.VideoReIDModel) and model.num_domains == 2
    model.eval()
    with torch.no_grad():
        feats = model(torch.randn(2, 3, 2, H, W))
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2))


def test_convert_sync_bn_leaves_dsbn_branches() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)),
                          DomainSpecificBatchNorm(nn.BatchNorm2d(5), 2))
    with torch.no_grad():
        model[0].running_mean.fill_(0.5)
    convert_sync_bn(model)
    assert isinstance(model[0], nn.SyncBatchNorm) and isinstance(model[1][0], nn.SyncBatchNorm)
    assert torch.equal(model[0].running_mean, torch.full((3,), 0.5))
    assert all(type(b) is nn.BatchNorm2d for b in model[2].dsbn)
