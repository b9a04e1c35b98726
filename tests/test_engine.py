"""End-to-end training on tiny synthetic data: learning, resume, errors, tools/test.py."""
from __future__ import annotations

import json

import pytest

from reid.data.datasets.base import DatasetLayoutError
from reid.engine import cli
from reid.utils.checkpoint import load_checkpoint


def _args(tiny, root, out, *extra):
    return ["--config-file", "configs/demo/uda_synthetic.yaml", *tiny,
            "DATASETS.ROOT", root, "OUTPUT_DIR", str(out), *extra]


def test_uda_resume_equals_uninterrupted_run(tiny, tiny_root, tmp_path, train_full_and_resumed):
    """Stopping after epoch 1 and resuming gives the same model and memory as one run."""
    full, split = train_full_and_resumed(
        lambda out, *extra: _args(tiny, tiny_root, out, *extra, "TEST.EVAL_PERIOD", "2"),
        tmp_path)
    assert full["method"]["labelers"] == split["method"]["labelers"]
    def metrics(run):
        return [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert [x["epoch"] for x in metrics("full")] == [-1, 1]  # initial model, end of epoch 2
    assert [x["epoch"] for x in metrics("split")] == [-1, 0, 1]  # + the end of the first run
    assert metrics("split")[-1] == metrics("full")[-1]
    assert {"mAP", "rank1", "rank5", "rank10", "num_clusters", "nmi"} <= set(metrics("full")[-1])
    assert (tmp_path / "split" / "config.yaml").is_file()
    labels = {run: [json.loads(x)
                    for x in (tmp_path / run / "labels.jsonl").read_text().splitlines()]
              for run in ("full", "split")}
    assert [x["epoch"] for x in labels["split"]] == [0, 1]  # one line per epoch, none repeated
    assert labels["split"] == labels["full"]


def _train_supervised(tiny, root, out, test_set: str, *extra: str) -> None:
    """Supervised training on synthetic_person_a, evaluated on ``test_set``."""
    cli.train_main([
        "--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "DATASETS.ROOT", root,
        "OUTPUT_DIR", str(out), "SOLVER.METHOD", "supervised",
        "DATASETS.SOURCE", "['synthetic_person_a']", "DATASETS.TARGET", "[]",
        "DATASETS.TEST", f"['{test_set}']", *extra,
    ])


def test_supervised_training_improves_map_and_test_tool_reads_checkpoint(tiny, tiny_root, tmp_path):
    out = tmp_path / "sup"
    _train_supervised(tiny, tiny_root, out, "synthetic_person_a", "SOLVER.MAX_EPOCHS", "6",
                      "SOLVER.ITERS", "8", "SOLVER.BASE_LR", "0.001", "TEST.EVAL_PERIOD", "6",
                      "SOLVER.STEPS", "[100]")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    before, after = lines[0]["mAP"], lines[-1]["mAP"]
    assert after > before + 0.05, (before, after)
    res = cli.test_main([
        "--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "DATASETS.ROOT", tiny_root,
        "OUTPUT_DIR", str(tmp_path / "test"), "DATASETS.TARGET", "['synthetic_person_a']",
        "MODEL.WEIGHTS", str(out / "last.pth"),
    ])
    saved = json.loads((tmp_path / "test" / "eval.json").read_text())
    assert set(saved) >= {"mAP", "mINP", "rank1", "rank5", "rank10"}
    assert all(0.0 <= saved[k] <= 1.0 for k in ("mAP", "mINP", "rank1", "rank5", "rank10"))
    assert saved["mAP"] == pytest.approx(lines[-1]["mAP"], abs=1e-6)
    assert res["mAP"] == saved["mAP"]


def test_missing_dataset_fails_before_training(tiny, tmp_path):
    with pytest.raises(DatasetLayoutError, match="market1501"):
        cli.train_main(["--config-file", "configs/demo/usl_synthetic.yaml", *tiny,
                    "DATASETS.ROOT", str(tmp_path / "empty"), "DATASETS.TARGET", "['market1501']",
                    "OUTPUT_DIR", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "last.pth").exists()


def test_unknown_method_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="mmt"):
        cli.train_main(["SOLVER.METHOD", "mmt", "OUTPUT_DIR", str(tmp_path)])


def test_video_usl_runs_through_trainer_and_test_tool(tiny, tiny_root, tmp_path):
    """Tracklets flow through the same SpCL pipeline (clip transforms, clip sampling, memory,
    clustering, evaluation with all frames in clips averaged) and tools/test.py reproduces the
    last evaluation from the checkpoint."""
    video = ["--config-file", "configs/video/usl_synthetic_video.yaml", *tiny,
             "DATASETS.ROOT", tiny_root, "MODEL.ARCH", "video_resnet2d_avg",
             "MODEL.VIDEO.FRAME_TRUNK", "resnet10",
             "INPUT.SEQ_LEN", "2", "TEST.IMS_PER_BATCH", "8"]
    out = tmp_path / "video"
    cli.train_main([*video, "OUTPUT_DIR", str(out), "SOLVER.MAX_EPOCHS", "1",
                    "TEST.EVAL_PERIOD", "1"])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [-1, 0]
    assert {"num_clusters", "nmi", "ari"} <= set(lines[-1])
    memory = load_checkpoint(out / "last.pth")["method"]["memory"]
    from reid.config import load_cfg
    from reid.data.build import build_dataset_from_cfg

    cfg = load_cfg(video[1], video[2:])
    train = build_dataset_from_cfg(cfg, "synthetic_video_a").train
    assert {v.shape[0] for v in memory.values() if v.ndim == 2} == {len(train)}  # per tracklet
    res = cli.test_main([*video, "OUTPUT_DIR", str(tmp_path / "video_test"),
                         "MODEL.WEIGHTS", str(out / "last.pth")])
    assert res["mAP"] == pytest.approx(lines[-1]["mAP"], abs=1e-6)


def test_training_starts_from_model_weights(tiny, tiny_root, tmp_path):
    """MODEL.WEIGHTS initialises SpCL (two-stage UDA): the SpCL run's initial evaluation equals
    the supervised model's last evaluation on the same test set, DSBN branches filled from the
    plain BNs of the checkpoint."""
    sup = tmp_path / "sup"
    _train_supervised(tiny, tiny_root, sup, "synthetic_person_b", "SOLVER.MAX_EPOCHS", "1")
    uda = tmp_path / "uda"
    cli.train_main([*_args(tiny, tiny_root, uda, "SOLVER.MAX_EPOCHS", "1"),
                    "MODEL.WEIGHTS", str(sup / "last.pth")])

    def first_and_last(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[0]), json.loads(lines[-1])

    trained = first_and_last("sup")[1]["mAP"]
    assert trained != first_and_last("sup")[0]["mAP"]  # the supervised model did change
    assert first_and_last("uda")[0]["mAP"] == pytest.approx(trained, abs=1e-9)
    with pytest.raises(FileNotFoundError):
        cli.train_main([*_args(tiny, tiny_root, tmp_path / "x", "SOLVER.MAX_EPOCHS", "1"),
                        "MODEL.WEIGHTS", str(tmp_path / "missing.pth")])


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tiny, tiny_root, tmp_path,
                                                                   monkeypatch):
    """A non-finite loss in epoch 2 raises NonFiniteLossError naming the kept checkpoint, and
    last.pth still holds the end of epoch 1, byte for byte."""
    from reid.engine.runner import NonFiniteLossError
    from reid.engine.spcl import SpCLRunner

    out = tmp_path / "nan"
    original = SpCLRunner.train_step
    calls = {"n": 0}

    def step(self, iteration):
        losses = original(self, iteration)
        calls["n"] += 1
        if calls["n"] > 2:  # SOLVER.ITERS = 2: the first step of the second epoch
            losses = {k: v * float("nan") for k, v in losses.items()}
        return losses

    monkeypatch.setattr(SpCLRunner, "train_step", step)
    cli.train_main(_args(tiny, tiny_root, out, "SOLVER.MAX_EPOCHS", "1", "TEST.EVAL_PERIOD", "5"))
    saved = (out / "last.pth").read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1 iteration 0.*last\.pth is kept"):
        cli.train_main(["--resume", *_args(tiny, tiny_root, out, "SOLVER.MAX_EPOCHS", "2",
                                           "TEST.EVAL_PERIOD", "5")])
    assert (out / "last.pth").read_bytes() == saved
    assert load_checkpoint(out / "last.pth")["epoch"] == 1
