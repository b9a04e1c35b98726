"""Mean teacher (``MODEL.EMA_MOMENTUM``): arithmetic, where it is used, checkpoints, resume."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reid.models import ModelEMA, read_state_dict


def test_ema_update_arithmetic_hand_computed():
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = ModelEMA(model, momentum=0.75)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5.0, -2.0]]))
    model.train()(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))  # BN: batch mean 10, counter 1
    ema.update(model)
    # 0.75 * old + 0.25 * new
    torch.testing.assert_close(ema.module[0].weight, torch.tensor([[2.0, 1.0]]))
    bn = model[1]
    assert float(bn.running_mean) == pytest.approx(1.0)  # 0.9 * 0 + 0.1 * 10
    assert float(ema.module[1].running_mean) == pytest.approx(0.25)  # 0.75 * 0 + 0.25 * 1
    assert int(ema.module[1].num_batches_tracked) == 1  # integers are copied
    ema.reset(model)
    torch.testing.assert_close(ema.module[0].weight, model[0].weight)
    state = ema.state_dict()
    other = ModelEMA(nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1)), 0.5)
    other.load_state_dict(state)
    torch.testing.assert_close(other.module[1].running_mean, bn.running_mean)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        ModelEMA(model, 1.0)


def _args(tiny, root, out, *extra):
    return ["--config-file", "configs/demo/usl_synthetic.yaml", *tiny, "DATASETS.ROOT", root,
            "OUTPUT_DIR", str(out), "TEST.EVAL_PERIOD", "1", "MODEL.EMA_MOMENTUM", "0.5",
            "CLUSTER.FEATURES", "extract", *extra]


def test_mean_teacher_extracts_is_evaluated_and_resumes_exactly(tiny, tiny_root, tmp_path,
                                                                train_full_and_resumed):
    from reid.config import load_cfg
    from reid.engine.build import build_runner

    root = tiny_root
    args = _args(tiny, root, tmp_path / "probe")
    runner = build_runner(load_cfg(args[1], args[2:]), device=torch.device("cpu"))
    assert runner.ema is not None and runner.eval_model is runner.ema.module
    runner.before_train()
    runner.set_epoch(0)
    runner.update_labels(0)
    runner.train_epoch(0)
    student = runner.model.state_dict()
    teacher = runner.ema.state_dict()
    assert any(not torch.equal(student[k], teacher[k]) for k in student
               if student[k].dtype.is_floating_point)
    # the features clustered / put into the memory are the mean teacher's
    with torch.no_grad():
        runner.model.load_state_dict(teacher)  # the student replaced by the teacher's weights
        by_teacher = runner.extract(0)
        runner.model.load_state_dict(student)
        assert torch.equal(runner.extract(0), by_teacher)

    full, split = train_full_and_resumed(lambda out, *extra: _args(tiny, root, out, *extra),
                                         tmp_path)
    for key, value in full["ema"].items():
        assert torch.equal(value, split["ema"][key]), key
    # reading last.pth (tools/test.py, MODEL.WEIGHTS) gives the evaluated teacher, not the student
    last_read = read_state_dict(tmp_path / "full" / "last.pth")
    assert last_read.keys() == full["ema"].keys()
    assert all(torch.equal(last_read[k], full["ema"][k]) for k in last_read)
    assert not all(torch.equal(full["model"][k], full["ema"][k]) for k in full["model"])
    # best.pth holds the teacher of the best evaluation (the initial model counts too): the
    # last one when mAP rose above every earlier evaluation at epoch 2
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(x) for x in lines]
    best = torch.load(tmp_path / "full" / "best.pth", weights_only=False)
    assert best["mAP"] == max(m["mAP"] for m in metrics)
    if metrics[-1]["mAP"] > max(m["mAP"] for m in metrics[:-1]):
        assert best["epoch"] == 2
        assert all(torch.equal(best["model"][k], full["ema"][k]) for k in last_read)


def test_resume_without_mean_teacher_state_fails_clearly(tiny, tiny_root, tmp_path):
    from reid.engine import cli

    root = tiny_root
    plain = [a if a != "0.5" else "0.0" for a in _args(tiny, root, tmp_path / "run")]
    cli.train_main([*plain, "SOLVER.MAX_EPOCHS", "1"])
    with pytest.raises(ValueError, match="no mean-teacher state"):
        cli.train_main(["--resume", *_args(tiny, root, tmp_path / "run"), "SOLVER.MAX_EPOCHS", "2"])

