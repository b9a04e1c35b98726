"""Pseudo labels within camera groups (``CLUSTER.CAMERA_GROUPS``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.cluster import SelfPacedLabeler
from reid.cluster.groups import CameraGroupLabeler, camera_group_index


def test_camera_group_index_and_its_errors():
    np.testing.assert_array_equal(camera_group_index([0, 3, 1, 2, 5], [[0, 1], [2, 3], [5]]),
                                  [0, 1, 0, 1, 2])
    with pytest.raises(ValueError, match=r"cameras \[4\] are in no camera group"):
        camera_group_index([0, 4, 4], [[0, 1]])
    with pytest.raises(ValueError, match="camera 1 is in camera groups 0 and 1"):
        camera_group_index([0, 1], [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="camera group 1 is empty"):
        camera_group_index([0], [[0], []])


class _ByValue:
    """Hand-checkable labeler: cluster = rounded first coordinate, -1 where it is negative;
    counts its calls and keeps them as its state."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, camids=None):
        self.calls += 1
        v = np.asarray(x)[:, 0]
        lab = np.where(v < 0, -1, np.round(v)).astype(np.int64)
        return lab, {"num_clusters": int(lab.max()) + 1, "rate": float((lab >= 0).mean()),
                     "name": "not a number"}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_groups_are_labelled_apart_with_offsets_and_merged_statistics():
    camids = [0, 2, 1, 3, 0, 2, 1, 3]
    x = torch.tensor([[0.0], [0.0], [1.0], [-1.0], [1.0], [0.0], [-1.0], [0.0]])
    lab = CameraGroupLabeler(_ByValue, camids, [[0, 1], [2, 3]])
    labels, stats = lab(x)
    # group {0, 1} = samples 0, 2, 4, 6 -> values 0, 1, 1, -1 -> 0, 1, 1, -1 (2 clusters)
    # group {2, 3} = samples 1, 3, 5, 7 -> values 0, -1, 0, 0 -> 0, -1, 0, 0, offset by 2
    np.testing.assert_array_equal(labels, [0, 2, 1, -1, 1, 2, -1, 2])
    assert stats["num_clusters"] == 3 and stats["num_outliers"] == 2
    assert stats["rate"] == pytest.approx(0.5 * 0.75 + 0.5 * 0.75)
    assert "name" not in stats
    state = lab.state_dict()
    assert state == {"groups": [{"calls": 1}, {"calls": 1}]}
    other = CameraGroupLabeler(_ByValue, camids, [[0, 1], [2, 3]])
    other.load_state_dict(state)
    assert [g.calls for g in other.labelers] == [1, 1]
    with pytest.raises(ValueError, match="checkpoint has 2 camera groups, the config 1"):
        CameraGroupLabeler(_ByValue, camids, [[0, 1, 2, 3]]).load_state_dict(state)
    with pytest.raises(ValueError, match="written without CLUSTER.CAMERA_GROUPS"):
        other.load_state_dict({"indep_threshold": 0.5})
    with pytest.raises(ValueError, match="built for 8 samples"):
        lab(x[:4])


def test_equals_independent_self_paced_labelers_per_group_and_never_links_groups(blobs):
    rng = np.random.default_rng(0)
    x, truth = blobs(rng, 12, 10, 16, 0.08)
    camids = np.tile(np.arange(4), 30)  # every identity in all four cameras
    # the same identities in both groups: clustering everything links the groups
    whole, _ = SelfPacedLabeler(eps=0.5, k1=10, k2=4, min_samples=2)(x)
    group = camids // 2
    assert any(len(set(group[whole == c])) == 2 for c in range(whole.max() + 1))
    lab = CameraGroupLabeler(lambda: SelfPacedLabeler(eps=0.5, k1=10, k2=4, min_samples=2),
                             camids, [[0, 1], [2, 3]])
    labels, stats = lab(torch.from_numpy(x))
    offset = 0
    for g in (0, 1):  # reference: a fresh labeler on each group's subset, numbered in order
        idx = np.flatnonzero(group == g)
        ref, _ = SelfPacedLabeler(eps=0.5, k1=10, k2=4, min_samples=2)(x[idx])
        expect = np.where(ref >= 0, ref + offset, -1)
        np.testing.assert_array_equal(labels[idx], expect)
        offset += ref.max() + 1
    assert stats["num_clusters"] == offset == labels.max() + 1
    assert all(len(set(group[labels == c])) == 1 for c in range(labels.max() + 1))
    assert lab.state_dict()["groups"][0]["indep_threshold"] is not None


def test_config_builds_grouped_labelers_and_names_a_missing_camera(tiny, tiny_root_4cams,
                                                                   tmp_path):
    from reid.config import load_cfg
    from reid.engine.build import build_runner

    def cfg(groups):
        return load_cfg("configs/demo/usl_synthetic.yaml", [
            *tiny, "DATASETS.ROOT", tiny_root_4cams, "OUTPUT_DIR", str(tmp_path / "out"),
            "DATASETS.SYNTHETIC.CAMS", "4", "CLUSTER.CAMERA_GROUPS", groups])

    # a listed camera that no target has (4) is an error (issue 22: it silently changed the
    # prior); a camera present in one of several targets is fine
    with pytest.raises(ValueError, match=r"CAMERA_GROUPS: cameras \[4\] of the groups .* are in "
                                         r"no clustered set \(synthetic_person_a has cameras "
                                         r"\[0, 1, 2, 3\]\)"):
        build_runner(cfg("[[0, 1], [2, 3, 4]]"), device=torch.device("cpu"))
    runner = build_runner(cfg("[[0, 1], [2, 3]]"), device=torch.device("cpu"))
    (labeler,) = runner.label_step.labelers
    assert isinstance(labeler, CameraGroupLabeler) and len(labeler.labelers) == 2
    runner.before_train()
    runner.set_epoch(0)
    runner.update_labels(0)
    labels = runner.memory.target_labels(0).numpy()
    group = np.asarray(runner.label_step.camids[0]) // 2
    assert (labels >= 0).any()
    assert all(len(set(group[labels == c])) == 1 for c in range(labels.max() + 1))
    with pytest.raises(ValueError, match=r"CAMERA_GROUPS for .*cameras \[3\] are in no"):
        build_runner(cfg("[[0, 1], [2]]"), device=torch.device("cpu"))
