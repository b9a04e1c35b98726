"""Clip sampling, clip-consistent transforms and the clip dataset (reid.data.video_sampling)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from reid.data.video_sampling import (
    ConsistentClipTransform,
    VideoClipDataset,
    all_clip_indices,
    average_clip_features,
    build_clip_transform,
    dense_indices,
    encode_tracklets,
    segment_indices,
    video_collate,
)


def test_segment_hand_cases():
    # n=10, T=4: boundaries floor(k*10/4) = 0, 2, 5, 7, 10
    assert segment_indices(10, 4, random=False).tolist() == [0, 3, 5, 8]
    assert segment_indices(8, 8, random=False).tolist() == list(range(8))
    rng = np.random.default_rng(0)
    seen = [set() for _ in range(4)]
    for _ in range(300):
        idx = segment_indices(10, 4, rng=rng)
        for k, (lo, hi) in enumerate([(0, 2), (2, 5), (5, 7), (7, 10)]):
            assert lo <= idx[k] < hi
            seen[k].add(int(idx[k]))
    assert seen == [{0, 1}, {2, 3, 4}, {5, 6}, {7, 8, 9}]


def test_segment_short_tracklet_repeats_in_order():
    assert segment_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert segment_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="at least one frame"):
        segment_indices(0, 4)


def test_dense_and_all_hand_cases():
    assert dense_indices(10, 4, stride=2, random=False).tolist() == [1, 3, 5, 7]
    starts = {int(dense_indices(10, 4, stride=2, rng=np.random.default_rng(s))[0])
              for s in range(200)}
    assert starts == {0, 1, 2, 3}
    assert dense_indices(3, 4, stride=2).tolist() == [0, 2, 2, 2]
    assert all_clip_indices(10, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert all_clip_indices(8, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all_clip_indices(2, 4).tolist() == [[0, 1, 1, 1]]


def _frame(value: int, size=(16, 32)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8))


def test_consistent_transform_same_parameters_for_every_frame():
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8))
    frame_tf = T.Compose([T.RandomHorizontalFlip(0.5), T.Pad(4), T.RandomCrop((32, 16)),
                          T.ToTensor(), T.RandomErasing(p=0.5, value=0)])
    clip_tf = ConsistentClipTransform(frame_tf)
    torch.manual_seed(0)
    clips = [clip_tf([base] * 4) for _ in range(20)]
    for clip in clips:
        assert clip.shape == (3, 4, 32, 16)
        for t in range(1, 4):
            assert torch.equal(clip[:, t], clip[:, 0])
    # the parameters do change from clip to clip
    assert len({c[:, 0].sum().item() for c in clips}) > 5
    # a per-frame application would not be consistent (so the check above can fail)
    torch.manual_seed(0)
    naive = [torch.stack([frame_tf(base) for _ in range(4)], 1) for _ in range(20)]
    assert any(not torch.equal(c[:, 1], c[:, 0]) for c in naive)


def test_consistent_transform_preserves_frame_differences():
    # frames differing by a constant keep that difference after identical geometry
    frames = [_frame(40 * k + 20) for k in range(4)]
    tf = build_clip_transform((32, 16), [0.0] * 3, [1.0] * 3, is_train=True, padding=0,
                              erasing_prob=0.0)
    clip = tf(frames)
    for k in range(4):
        assert torch.allclose(clip[:, k], torch.full((3, 32, 16), (40 * k + 20) / 255.0))


class _MemoryLoader:
    """Frames are in-memory images whose grey value encodes the frame index."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path: str) -> Image.Image:
        self.calls += 1
        return _frame(int(path.split("/")[-1]))


def _tracklets(lengths):
    return [(tuple(f"t{i}/{k}" for k in range(n)), 100 + i, i % 2) for i, n in enumerate(lengths)]


def _frame_ids(clip: torch.Tensor) -> list[int]:
    return [round(v) for v in (clip[0, :, 0, 0] * 255).tolist()]


def test_dataset_segment_and_all():
    loader = _MemoryLoader()
    ds = VideoClipDataset(_tracklets([10, 3]), seq_len=4, sampler="segment", domain=1,
                          loader=loader)
    torch.manual_seed(0)
    item = ds[0]
    assert set(item) == {"img", "pid", "camid", "index", "domain"}
    assert (item["pid"], item["camid"], item["index"], item["domain"]) == (100, 0, 0, 1)
    assert item["img"].shape == (3, 4, 32, 16)
    ids = _frame_ids(item["img"])
    segments = [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert all(lo <= i < hi for i, (lo, hi) in zip(ids, segments, strict=True))
    assert _frame_ids(ds[1]["img"]) == [0, 0, 1, 2]

    ds_all = VideoClipDataset(_tracklets([10, 3]), seq_len=4, sampler="all", loader=loader)
    loader.calls = 0
    clips = ds_all[0]["img"]
    assert clips.shape == (3, 3, 4, 32, 16)
    assert [_frame_ids(c) for c in clips] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert loader.calls == 10  # each frame read once

    batch = video_collate([ds_all[0], ds_all[1]])
    assert batch["img"].shape == (4, 3, 4, 32, 16)
    assert batch["num_clips"].tolist() == [3, 1]
    assert batch["pid"].tolist() == [100, 101]


def test_dataset_reads_files_with_default_loader(tmp_path):
    paths = []
    for k in range(5):
        p = tmp_path / f"{k:03d}.png"
        _frame(10 * k).save(p)
        paths.append(str(p))
    ds = VideoClipDataset([(tuple(paths), 3, 1)], seq_len=4, sampler="all")
    clips = ds[0]["img"]
    assert [_frame_ids(c) for c in clips] == [[0, 10, 20, 30], [40, 40, 40, 40]]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = VideoClipDataset([((str(tmp_path / "bad.png"),), 3, 1)], seq_len=2)
    with pytest.raises(Exception, match="bad.png"):
        bad[0]


def test_dataset_rejects_empty_tracklet():
    with pytest.raises(ValueError, match="tracklet 1"):
        VideoClipDataset([(("a",), 0, 0), ((), 1, 0)], seq_len=4)


def test_average_clip_features_and_encode():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]])
    out = average_clip_features(feats, torch.tensor([3, 1]))
    assert torch.allclose(out, torch.tensor([[3.0, 2.0], [7.0, 7.0]]))
    with pytest.raises(ValueError, match="partition"):
        average_clip_features(feats, torch.tensor([2, 1]))

    model = lambda x: x.flatten(1)[:, :2]
    clips = torch.arange(4 * 2, dtype=torch.float).reshape(4, 2, 1, 1, 1)
    enc = encode_tracklets(model, clips, torch.tensor([1, 3]), chunk=3)
    assert torch.allclose(enc, torch.tensor([[0.0, 1.0], [4.0, 5.0]]))


def test_evenly_test_clips_are_the_segment_middles_and_batch_across_tracklets():
    """INPUT.SAMPLER_TEST evenly: one deterministic clip per tracklet (the middle frame of each
    of T equal segments: n=10, T=4 -> boundaries 0 2 5 7 10 -> frames 0 3 5 8; n=3 repeats in
    order), so the test loader batches several tracklets, and the extracted features are the
    model's features of those clips."""
    from reid.data.build import make_test_loader
    from reid.data.video_sampling import sample_indices
    from reid.models.extractor import extract_features

    assert sample_indices("evenly", 10, 4).tolist() == [0, 3, 5, 8]
    assert sample_indices("evenly", 3, 8).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    memory = _MemoryLoader()
    tracklets = _tracklets([10, 3, 7])
    ds = VideoClipDataset(tracklets, seq_len=4, sampler="evenly", loader=memory)
    # n=7: boundaries 0 1 3 5 7, middles (lo + hi - 1) // 2 = 0 1 3 5
    assert [_frame_ids(ds[i]["img"]) for i in range(3)] == [[0, 3, 5, 8], [0, 0, 1, 2],
                                                           [0, 1, 3, 5]]
    loader = make_test_loader(tracklets, is_video=True, transform=None, batch_size=2,
                              num_workers=0, seq_len=4, clip_sampler="evenly")
    loader.dataset.loader = memory
    batches = list(loader)
    assert [b["img"].shape[0] for b in batches] == [2, 1]  # tracklets per batch, not 1

    class Mean(torch.nn.Module):
        def forward(self, x, domains=None):  # (B, C, T, H, W) -> (B, 2)
            return torch.stack([x.mean((1, 3, 4))[:, 0], x.mean((1, 3, 4))[:, -1]], 1) + 0.1

    feats, pids, _ = extract_features(Mean(), loader, device="cpu")
    expect = torch.nn.functional.normalize(
        torch.stack([Mean()(ds[i]["img"][None])[0] for i in range(3)]), dim=1)
    assert torch.allclose(feats, expect) and pids.tolist() == [100, 101, 102]
    with pytest.raises(ValueError, match="test clip sampler 'segment'"):
        make_test_loader(tracklets, is_video=True, transform=None, batch_size=2, num_workers=0,
                         clip_sampler="segment")


def test_unknown_test_clip_sampler_is_a_config_error():
    from reid.config import load_cfg
    from reid.config.validate import validate_cfg
    from reid.utils.errors import ConfigError

    validate_cfg(load_cfg("configs/video/usl_synthetic_video.yaml", ["INPUT.SAMPLER_TEST",
                                                                     "evenly"]))
    with pytest.raises(ConfigError, match="INPUT.SAMPLER_TEST must be one of all, evenly"):
        validate_cfg(load_cfg(None, ["INPUT.SAMPLER_TEST", "segment"]))
