"""Training under ``torchrun`` (2 CPU processes, Gloo) and the cross-rank consistency check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reid.utils.checkpoint import load_checkpoint
from reid.utils.distributed import check_same_across_ranks

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_uda_training_keeps_ranks_identical(tiny, tiny_root, tmp_path: Path) -> None:
    """Two ranks train UDA SpCL; every checkpoint verifies that weights and memory are identical
    on both ranks (it raises otherwise), and rank 0 alone writes the outputs."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", str(REPO / "tools" / "train.py"),
           "--config-file", str(REPO / "configs" / "demo" / "uda_synthetic.yaml"), *tiny,
           "DATASETS.ROOT", tiny_root, "OUTPUT_DIR", str(out),
           "SOLVER.MAX_EPOCHS", "2", "TEST.EVAL_PERIOD", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ", world size 2\n" in (out / "log.txt").read_text()
    state = load_checkpoint(out / "last.pth")
    assert state["epoch"] == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [-1, 1]  # written once, by rank 0


def _diverging_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        same = {"w": torch.arange(6.0), "mem": [torch.ones(3, 2)]}
        check_same_across_ranks(same, "state")  # identical: no error
        differ = {"w": torch.arange(6.0), "mem": [torch.ones(3, 2) + (1e-7 if rank else 0.0)]}
        try:
            check_same_across_ranks(differ, "state")
            result = "no error"
        except RuntimeError as err:
            result = str(err)
        (Path(out_dir) / f"rank{rank}.txt").write_text(result)
    finally:
        dist.destroy_process_group()


def test_rank_divergence_is_detected(tmp_path: Path) -> None:
    mp.spawn(_diverging_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        text = (tmp_path / f"rank{rank}.txt").read_text()
        assert text.startswith("state differs between ranks (1 of 2 tensors: mem[0])"), text


def test_check_is_a_no_op_without_process_group() -> None:
    check_same_across_ranks({"w": torch.randn(3)}, "state")
