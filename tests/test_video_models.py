"""Video backbones: inflation, initialisation equivalences, attention variants, masking, shapes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from reid.models.video import (
    VIDEO_BACKBONE_REGISTRY,
    VideoMAEPretrainer,
    VisionTransformer2D,
    build_video_backbone,
    build_video_encoder,
    load_2d_vit,
    load_videomae,
    tube_mask,
)
from reid.models.video.cnn import InflatedResNet, TemporalAttentionPool, inflate_conv2d
from reid.models.video.transformer import TubeletEmbed
from reid.models.video.videomae import cube_targets, patchify_clip
from reid.models.video.vit_blocks import Block, FactorisedDotProductAttention, inflate_conv_weight

IMG = (32, 16)
TINY = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 4}
T = 4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise_norms(model: nn.Module) -> None:
    """LayerNorms start as identity; perturb them so equivalence tests see their parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.add_(0.3 * torch.randn_like(m.weight))
                m.bias.add_(0.1 * torch.randn_like(m.bias))


# ---------------------------------------------------------------- inflation


def test_inflated_conv_on_identical_frames_equals_2d():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    frame = torch.randn(2, 3, 12, 10)
    clip = frame.unsqueeze(2).repeat(1, 1, 6, 1, 1)
    conv3 = inflate_conv2d(conv, time_kernel=3, mode="mean")
    out = conv3(clip)
    ref = conv(frame)
    for t in range(1, 5):  # interior frames (the zero temporal padding changes the two ends)
        assert torch.allclose(out[:, :, t], ref, atol=1e-5)
    assert not torch.allclose(out[:, :, 0], ref, atol=1e-3)
    # a tubelet embedding (no temporal padding) inflated by "mean": every output equals 2-D
    emb = TubeletEmbed(6, (12, 10), 2, 3, 3, 8)
    conv2 = nn.Conv2d(3, 8, 2, stride=2)
    with torch.no_grad():
        emb.proj.weight.copy_(inflate_conv_weight(conv2.weight, 3, "mean"))
        emb.proj.bias.copy_(conv2.bias)
    tokens = emb(clip).reshape(2, 2, 6 * 5, 8)
    ref2 = conv2(frame).flatten(2).transpose(1, 2)
    assert torch.allclose(tokens[:, 0], ref2, atol=1e-5)
    assert torch.allclose(tokens[:, 1], ref2, atol=1e-5)


def test_central_frame_init_equals_per_frame_2d_embedding():
    conv2 = nn.Conv2d(3, 8, 4, stride=4)
    emb = TubeletEmbed(T, IMG, 4, 2, 3, 8)
    with torch.no_grad():
        emb.proj.weight.copy_(inflate_conv_weight(conv2.weight, 2, "center"))
        emb.proj.bias.copy_(conv2.bias)
    clip = torch.randn(2, 3, T, *IMG)  # different frames
    tokens = emb(clip).reshape(2, T // 2, 8 * 4, 8)
    for i in range(T // 2):
        ref = conv2(clip[:, :, 2 * i + 1]).flatten(2).transpose(1, 2)  # central frame of tubelet
        assert torch.allclose(tokens[:, i], ref, atol=1e-5)


def test_i3d_central_init_equals_2d_resnet_per_frame():
    net2d = torchvision.models.resnet18(weights=None)
    net2d.fc = nn.Identity()
    for m in net2d.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path_state = net2d.state_dict()
    i3d = InflatedResNet("resnet18", inflate_init="center", last_stride=2)
    for k, v in path_state.items():
        if k.startswith("fc."):
            continue
        target = i3d.net.state_dict()[k]
        with torch.no_grad():
            if v.ndim == 4:
                target.copy_(inflate_conv_weight(v, target.shape[2], "center"))
            else:
                target.copy_(v)
    i3d.eval()
    net2d.eval()
    clip = torch.randn(2, 3, T, 64, 32)
    with torch.no_grad():
        out = i3d(clip)
        ref = torch.stack([net2d(clip[:, :, t]) for t in range(T)], 1).mean(1)
    assert out.shape == (2, 512)
    assert torch.allclose(out, ref, atol=1e-4)
    # the temporal kernels are really 3-D (3 in every other block, 5 in the stem)
    assert i3d.net.conv1.weight.shape[2] == 5
    assert i3d.net.layer1[0].conv1.weight.shape[2] == 3
    assert i3d.net.layer1[1].conv1.weight.shape[2] == 1


def test_i3d_loads_2d_resnet_file(tmp_path):
    net2d = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net2d.state_dict(), path)
    i3d = build_video_backbone("i3d_resnet18", pretrained_path=str(path), inflate_init="mean")
    w = i3d.net.layer1[0].conv1.weight
    assert torch.allclose(w.sum(2), net2d.layer1[0].conv1.weight, atol=1e-6)


# ---------------------------------------------------------------- transformer init equivalences


@pytest.mark.parametrize("tubelet,init", [(1, "mean"), (2, "center")])
def test_vivit_m3_init_equals_image_model_per_frame(tubelet, init):
    img = VisionTransformer2D(IMG, 8, embed_dim=32, depth=2, num_heads=4, class_token=False,
                              global_pool="avg")
    _randomise_norms(img)
    video = build_video_backbone("vivit_m3_tiny", T, IMG, tubelet=tubelet, **TINY)
    report = load_2d_vit(video, img.state_dict(), inflate_init=init)
    assert not report.unexpected and not report.mismatched
    assert all("temporal_fc" in k for k in report.missing)  # only the zero projections
    img.eval()
    video.eval()
    clip = torch.randn(2, 3, T, *IMG)
    frames = [tubelet * i + tubelet // 2 for i in range(T // tubelet)]
    with torch.no_grad():
        tokens = video.forward_tokens(clip).reshape(2, len(frames), 8, 32)
        for i, f in enumerate(frames):
            assert torch.allclose(tokens[:, i], img.forward_tokens(clip[:, :, f]), atol=1e-5)
        ref = torch.stack([img(clip[:, :, f]) for f in frames], 1).mean(1)
        assert torch.allclose(video(clip), ref, atol=1e-5)
    # the temporal branch is live: training the zero projection changes the output
    with torch.no_grad():
        video.blocks[0].temporal_fc.weight.normal_(0, 0.1)
        assert not torch.allclose(video(clip), ref, atol=1e-3)


def test_timesformer_from_2d_on_static_clip_equals_image_model():
    img = VisionTransformer2D(IMG, 8, embed_dim=32, depth=2, num_heads=4)
    _randomise_norms(img)
    video = build_video_backbone("timesformer_tiny", T, IMG, **TINY)
    report = load_2d_vit(video, img.state_dict())
    assert not report.unexpected and not report.mismatched
    assert set(report.missing) == {"time_embed"} | {
        f"blocks.{i}.temporal_fc.{p}" for i in range(2) for p in ("weight", "bias")}
    frame = torch.randn(2, 3, *IMG)
    clip = frame.unsqueeze(2).repeat(1, 1, T, 1, 1)
    img.eval()
    video.eval()
    with torch.no_grad():
        assert torch.allclose(video(clip), img(frame), atol=1e-5)


def test_2d_checkpoint_file_with_other_grid_and_extra_keys(tmp_path, caplog):
    img = VisionTransformer2D((32, 32), 8, embed_dim=32, depth=2, num_heads=4)
    state = dict(img.state_dict())
    state["head.weight"] = torch.zeros(10, 32)
    path = tmp_path / "vit.pth"
    torch.save({"model": state}, path)
    model = build_video_encoder("vivit_m1_tiny", num_frames=T, img_size=IMG,
                                pretrained_path=str(path), **TINY)
    assert "head.weight" in caplog.text  # the unmatched key is reported
    pos = model.backbone.pos_embed.detach()
    nt, s = model.backbone.token_grid
    assert pos.shape == (1, 1 + nt * s, 32)
    assert torch.equal(pos[:, 1:1 + s], pos[:, 1 + s:1 + 2 * s])  # repeated over time
    assert torch.equal(pos[:, 0], state["pos_embed"][:, 0])
    assert torch.equal(model.backbone.cls_token, state["cls_token"])


# ---------------------------------------------------------------- attention variants


def _reference_factorised(x, attn: FactorisedDotProductAttention, grid):
    """Token-by-token loop: spatial heads see the same time index, temporal heads the same
    spatial position."""
    t, s = grid
    b, n, d = x.shape
    h, hd = attn.num_heads, attn.head_dim
    qkv = attn.qkv(x).reshape(b, n, 3, h, hd)
    out = torch.zeros(b, n, h, hd)
    for head in range(h):
        for i in range(n):
            ti, si = divmod(i, s)
            nb = ([ti * s + j for j in range(s)] if head < h // 2
                  else [j * s + si for j in range(t)])
            q = qkv[:, i, 0, head]
            k = qkv[:, nb, 1, head]
            v = qkv[:, nb, 2, head]
            w = torch.softmax((k @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(hd), dim=-1)
            out[:, i, head] = (w.unsqueeze(-1) * v).sum(1)
    return attn.proj(out.reshape(b, n, d))


@pytest.mark.parametrize("grid", [(3, 4), (1, 6)])
def test_factorised_dot_product_attention_matches_reference(grid):
    attn = FactorisedDotProductAttention(16, 4)
    x = torch.randn(2, grid[0] * grid[1], 16)
    assert torch.allclose(attn(x, grid), _reference_factorised(x, attn, grid), atol=1e-5)


def test_factorised_dot_with_one_time_step_is_spatial_attention():
    dim, heads, s = 16, 4, 6
    attn = FactorisedDotProductAttention(dim, heads)
    x = torch.randn(2, s, dim)
    q, k, v = attn.qkv_heads(x)
    spatial = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), -1) @ v
    # with T = 1 the spatial heads are full attention over the frame and the temporal heads
    # attend only to themselves (weight 1 on their own value)
    ref = attn.merge_heads(torch.cat([spatial[:, :2], v[:, 2:]], 1))
    assert torch.allclose(attn(x, (1, s)), ref, atol=1e-5)
    # ... and a ViViT-4 block at T = 1 equals a joint block whose temporal half of the heads
    # is masked to self-attention
    blk4 = Block(dim, heads, attn_mode="factorised_dot")
    blk1 = Block(dim, heads)
    blk1.load_state_dict(blk4.state_dict())
    assert torch.allclose(blk4(x, (1, s)), _self_masked_block(blk1, x), atol=1e-5)


def _self_masked_block(blk: Block, x: torch.Tensor) -> torch.Tensor:
    """A joint block whose second half of heads is restricted to self-attention."""
    h = blk.attn.num_heads
    y = blk.norm1(x)
    q, k, v = blk.attn.qkv_heads(y)
    spatial = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(blk.attn.head_dim), -1) @ v
    a = blk.attn.merge_heads(torch.cat([spatial[:, :h // 2], v[:, h // 2:]], 1))
    z = x + a
    return z + blk.mlp(blk.norm2(z))


def test_divided_block_matches_reference_loop():
    dim, heads, (t, s) = 16, 2, (3, 4)
    blk = Block(dim, heads, attn_mode="divided", divided_order=("temporal", "spatial"))
    with torch.no_grad():
        blk.temporal_fc.weight.normal_(0, 0.2)
    _randomise_norms(blk)
    x = torch.randn(2, 1 + t * s, dim)
    cls, tok = x[:, :1], x[:, 1:].reshape(2, t, s, dim)
    # temporal: each spatial position over time (class token excluded)
    tok_t = tok.clone()
    for j in range(s):
        seq = tok[:, :, j]
        tok_t[:, :, j] = seq + blk.temporal_fc(blk.temporal_attn(blk.temporal_norm1(seq)))
    # spatial: each frame with the class token; class-token residuals averaged over frames
    tok_s = tok_t.clone()
    cls_res = []
    for i in range(t):
        seq = torch.cat([cls, tok_t[:, i]], 1)
        res = blk.attn(blk.norm1(seq))
        cls_res.append(res[:, :1])
        tok_s[:, i] = tok_t[:, i] + res[:, 1:]
    y = torch.cat([cls + torch.stack(cls_res).mean(0), tok_s.reshape(2, t * s, dim)], 1)
    y = y + blk.mlp(blk.norm2(y))
    assert torch.allclose(blk(x, (t, s)), y, atol=1e-5)


# ---------------------------------------------------------------- shapes and token counts

TOKENS = {  # T=4 frames of 32x16 with 8x8 patches: S = 8 spatial positions
    "timesformer_tiny": 1 + 4 * 8,
    "vivit_m1_tiny": 1 + 2 * 8,
    "vivit_m2_tiny": 2 * (1 + 8),
    "vivit_m3_tiny": 2 * 8,
    "vivit_m4_tiny": 2 * 8,
    "videomae_vit_tiny": 2 * 8,
}


@pytest.mark.parametrize("arch", sorted(TOKENS))
def test_transformer_token_counts_and_contract(arch):
    model = build_video_encoder(arch, num_classes=7, num_frames=T, img_size=IMG, **TINY)
    assert model.backbone.num_tokens == TOKENS[arch]
    assert model.feat_dim == 32 and model.num_domains == 1
    x = torch.randn(3, 3, T, *IMG)
    out = model.train()(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "global": (3, 32), "feat": (3, 32), "logits": (3, 7)}
    feats = model.eval()(x)
    assert feats.shape == (3, 32)
    assert torch.allclose(feats.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="clip"):
        model(torch.randn(1, 3, T + 2, *IMG))


@pytest.mark.parametrize("arch", ["video_resnet2d_avg_tiny", "video_resnet2d_attn_tiny",
                                  "i3d_resnet18"])
def test_cnn_contract_and_dsbn(arch):
    model = build_video_encoder(arch, num_classes=0, num_frames=T, img_size=IMG, num_domains=2)
    assert model.num_domains == 2 and model.feat_dim == 512
    x = torch.randn(4, 3, T, *IMG)
    out = model.train()(x, torch.tensor([0, 0, 1, 1]))
    assert set(out) == {"global", "feat"} and out["feat"].shape == (4, 512)
    # domain-specific BN: a domain's outputs do not depend on the other domain's samples
    model.train()
    torch.manual_seed(1)
    a = model(x, torch.tensor([0, 0, 1, 1]))["feat"][:2]
    x2 = x.clone()
    x2[2:] = torch.randn(2, 3, T, *IMG) * 3
    b = model(x2, torch.tensor([0, 0, 1, 1]))["feat"][:2]
    assert torch.allclose(a, b, atol=1e-4)


def test_registry_names():
    for name in ["video_resnet2d_avg", "video_resnet2d_attn", "i3d_resnet50", "timesformer",
                 "vivit_m1", "vivit_m2", "vivit_m3", "vivit_m4", "videomae_vit"]:
        assert name in VIDEO_BACKBONE_REGISTRY
        if not name.startswith("i3d"):
            assert name + "_tiny" in VIDEO_BACKBONE_REGISTRY
    with pytest.raises(KeyError, match="vivit_m1"):
        build_video_encoder("vivit_m9")


def test_temporal_attention_pool_starts_as_average():
    pool = TemporalAttentionPool(12, hidden=8)
    feats = torch.randn(3, 5, 12)
    assert torch.allclose(pool(feats), feats.mean(1), atol=1e-6)


# ---------------------------------------------------------------- VideoMAE


def test_tube_mask_same_positions_every_frame_and_exact_ratio():
    g = torch.Generator().manual_seed(0)
    mask = tube_mask(5, 4, 40, 0.9, generator=g)
    assert mask.shape == (5, 160) and mask.dtype == torch.bool
    per_frame = mask.reshape(5, 4, 40)
    assert torch.equal(per_frame, per_frame[:, :1].expand(-1, 4, -1))
    assert per_frame.sum(-1).eq(36).all()
    assert mask.float().mean().item() == pytest.approx(0.9)
    assert not torch.equal(per_frame[0, 0], per_frame[1, 0])


def test_encoder_sees_only_visible_tokens():
    enc = build_video_backbone("videomae_vit_tiny", T, IMG, **TINY)
    x = torch.randn(2, 3, T, *IMG)
    mask = tube_mask(2, 2, 8, 0.75)
    tokens = enc.forward_tokens(x, mask)
    assert tokens.shape == (2, 2 * 2, 32)
    # the visible tokens do not depend on the masked pixels
    x2 = x.clone()
    cubes_masked = mask[0].reshape(2, 4, 2)
    for ti in range(2):
        for hi in range(4):
            for wi in range(2):
                if cubes_masked[ti, hi, wi]:
                    x2[0, :, 2 * ti:2 * ti + 2, 8 * hi:8 * hi + 8, 8 * wi:8 * wi + 8] = 9.0
    enc.eval()
    assert torch.allclose(enc.forward_tokens(x, mask)[0], enc.forward_tokens(x2, mask)[0])


def test_cube_targets_are_normalised_per_cube():
    x = torch.randn(2, 3, T, *IMG) * 4 + 2
    tgt = cube_targets(x, 2, 8)
    assert tgt.shape == (2, 16, 2 * 8 * 8 * 3)
    cubes = patchify_clip(x, 2, 8)
    # token 13 = time index 1, row 2, column 1 (time-major, row-major)
    assert torch.equal(cubes[1, 13, :, 2], x[1, 2, 2:4, 16:24, 8:16].reshape(-1))
    per = tgt.reshape(2, 16, 128, 3)
    assert torch.allclose(per.mean(2), torch.zeros(2, 16, 3), atol=1e-5)
    assert torch.allclose(per.std(2), torch.ones(2, 16, 3), atol=1e-4)


def test_videomae_loss_decreases_on_fixed_batch():
    enc = build_video_backbone("videomae_vit_tiny", T, IMG, **TINY)
    model = VideoMAEPretrainer(enc, decoder_dim=32, decoder_depth=1, decoder_heads=2,
                               mask_ratio=0.75)
    x = torch.randn(4, 3, T, *IMG)
    mask = model.random_mask(4, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss = model(x, mask)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.9  # normalised targets: an untrained decoder is near variance 1
    assert losses[-1] < 0.88 * losses[0]  # measured 1.005 -> 0.806
    assert min(losses[-5:]) < min(losses[:5])


def test_videomae_official_key_mapping_reproduces_encoder(caplog):
    src = build_video_backbone("videomae_vit_tiny", T, IMG, **TINY)
    with torch.no_grad():
        for blk in src.blocks:
            blk.attn.qkv.bias[32:64].zero_()  # official VideoMAE has no key bias
    state = {}
    for k, v in src.state_dict().items():
        if k.endswith("attn.qkv.bias"):
            state["encoder." + k.replace("qkv.bias", "q_bias")] = v[:32]
            state["encoder." + k.replace("qkv.bias", "v_bias")] = v[64:]
        else:
            state["encoder." + k] = v
    state["decoder.blocks.0.norm1.weight"] = torch.ones(16)
    state["mask_token"] = torch.zeros(1, 1, 16)
    dst = build_video_backbone("videomae_vit_tiny", T, IMG, **TINY)
    report = load_videomae(dst, state)
    assert not report.missing and not report.mismatched and not report.unexpected
    assert "mask_token" in report.skipped
    x = torch.randn(2, 3, T, *IMG)
    src.eval()
    dst.eval()
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))


def test_missing_checkpoint_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_video_encoder("vivit_m1_tiny", num_frames=T, img_size=IMG,
                            pretrained_path="/nowhere.pth", **TINY)


def test_l2_normalised_eval_uses_neck():
    model = build_video_encoder("vivit_m4_tiny", num_frames=T, img_size=IMG, **TINY).eval()
    x = torch.randn(2, 3, T, *IMG)
    with torch.no_grad():
        raw = model.backbone(x)
        assert torch.allclose(model(x), F.normalize(model.neck(raw), dim=1), atol=1e-6)
