"""Commands a user can trust (issue 22): the README's commands as printed, exit statuses, refusal
of a checkpoint that does not fit, divergence and collapse guards, official dataset folders,
user errors without traceback, Ctrl-C, camera-group priors, the thread-count key."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reid.engine import cli
from reid.utils.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

USL = "configs/demo/usl_synthetic.yaml"


@pytest.fixture
def tiny(tiny) -> list[str]:
    """conftest's tiny overrides, one thread (NUM_THREADS is one of the keys tested here)."""
    return [*tiny, "NUM_THREADS", "1"]


@pytest.fixture
def data_root(tiny_root) -> str:
    """The session's tiny synthetic sets (generated once, read-only)."""
    return tiny_root


@pytest.fixture(autouse=True)
def _keep_thread_counts():
    """NUM_THREADS changes the global thread counts of torch, numba and faiss: restore them."""
    import faiss
    import numba

    threads = torch.get_num_threads(), numba.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(threads[0])
    numba.set_num_threads(threads[1])
    faiss.omp_set_num_threads(threads[2])


def _env() -> dict[str, str]:
    """Environment of a tool subprocess: this checkout's ``reid`` first, one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("REID_DEBUG", None)
    return env


def _run(args: list[str], cwd: Path | str = REPO, timeout: float = 120,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or _env(), timeout=timeout,
                          capture_output=True, text=True)


def _usl(tiny: list[str], root: str, out: Path | str, *extra: str) -> list[str]:
    return ["--config-file", USL, *tiny, "DATASETS.ROOT", root, "OUTPUT_DIR", str(out), *extra]


# ---------------------------------------------------------------------------- 1. flag order
def test_flags_anywhere_and_overrides_are_the_rest():
    parser = cli._parser("t")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(["SEED", "7", "--config-file", USL, "OUTPUT_DIR", "/tmp/x",
                              "SOLVER.BASE_LR", "-1e-3", "--resume"])
    assert args.resume and args.config_file == USL
    assert args.opts == ["SEED", "7", "OUTPUT_DIR", "/tmp/x", "SOLVER.BASE_LR", "-1e-3"]
    with pytest.raises(SystemExit) as err:  # an unknown flag is not taken for an override
        parser.parse_args(["--config-file", USL, "SEED", "7", "--resum"])
    assert err.value.code == 2


def _readme_commands() -> list[str]:
    """The shell commands of the README's bash blocks (continuation lines joined)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    cmds = []
    for line in joined.splitlines():
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("python tools/"):
                cmds.append(" ".join(part.split()))
    return cmds


def test_ci_runs_the_readmes_test_command_with_the_slowest_tests_listed():
    """.ci/run calls exactly the README's install + test command, which lists the slowest
    tests (``--durations``) so that CI logs show where the suite's time goes."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    readme = [line for line in re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0].splitlines()
              if "python -m pytest" in line]
    assert len(readme) == 1 and "--durations=" in readme[0], readme
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme[0] in ci


def test_readme_commands_run_as_printed_in_order(tiny, data_root, tmp_path):
    """The README's USL demo, its resume command (a trailing --resume) and its test command,
    copied from the README and run in that order from a fresh directory with a tiny budget
    appended; every one exits 0, the resume continues the first run, and the test command
    reads the demo's best.pth."""
    cmds = _readme_commands()
    train = next(c for c in cmds if c == f"python tools/train.py --config-file {USL}")
    resume = next(c for c in cmds if USL in c and c.endswith("--resume"))
    test = next(c for c in cmds if c.startswith("python tools/test.py") and USL in c)
    for name in ("configs", "tools"):
        (tmp_path / name).symlink_to(REPO / name)
    budget = [*tiny, "DATASETS.ROOT", data_root, "TEST.EVAL_PERIOD", "1"]
    outs = []
    for cmd, extra in ((train, ["SOLVER.MAX_EPOCHS", "1"]), (resume, ["SOLVER.MAX_EPOCHS", "2"]),
                       (test, [])):
        argv = shlex.split(cmd)[1:] + budget + extra
        proc = _run(argv, cwd=tmp_path)
        assert proc.returncode == 0, (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr and "{'mAP'" not in proc.stderr
        outs.append(proc.stdout)
    run = tmp_path / "logs" / "demo" / "usl_synthetic"
    assert "resumed from" in outs[1] and "at epoch 1" in outs[1]
    assert load_checkpoint(run / "last.pth")["epoch"] == 2
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] \
        == [-1, 0, 1]
    evaluated = json.loads((tmp_path / "logs" / "demo" / "usl_synthetic_test" / "eval.json")
                           .read_text())
    best = load_checkpoint(run / "best.pth")
    assert evaluated["mAP"] == pytest.approx(best["mAP"], abs=1e-6)


# ---------------------------------------------------------------------------- 2. exit codes
def test_entry_points_return_exit_statuses(tiny, data_root, tmp_path, capsys):
    """setup.py's console scripts are the int-returning wrappers; success is 0, a user error 2
    with one message on stderr and no traceback, and the results never go to stderr."""
    setup = (REPO / "setup.py").read_text()
    assert '"reid-train=reid.engine.cli:main_train"' in setup
    assert '"reid-test=reid.engine.cli:main_test"' in setup
    assert cli.main_train(_usl(tiny, data_root, tmp_path / "ok", "SOLVER.MAX_EPOCHS", "1")) == 0
    # reid-test on the demo checkpoint, called the way pip's generated script calls it
    rc = cli.main_test(_usl(tiny, data_root, tmp_path / "t", "MODEL.WEIGHTS",
                            str(tmp_path / "ok" / "best.pth")))
    err = capsys.readouterr().err
    assert rc == 0 and "mAP" not in err
    assert json.loads((tmp_path / "t" / "eval.json").read_text())["mAP"] == pytest.approx(
        load_checkpoint(tmp_path / "ok" / "best.pth")["mAP"], abs=1e-6)
    # resuming with another model than the run's is a user error too, naming the checkpoint
    assert cli.main_train(_usl(tiny, data_root, tmp_path / "ok", "--resume", "MODEL.EMBED_DIM", "8",
                               "SOLVER.MAX_EPOCHS", "2")) == 2
    assert f"error: cannot resume from {tmp_path / 'ok' / 'last.pth'}: it holds another model" \
        in capsys.readouterr().err
    assert cli.main_test(["--config-file", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config file not found: {tmp_path / 'missing.yaml'}\n")
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- 3. partial loads
def test_checkpoint_that_does_not_fit_is_refused(tiny, data_root, tmp_path, capsys):
    """Repro: a ResNet-18 checkpoint evaluated with MODEL.ARCH resnet34 loaded 125 of 221
    tensors and wrote an mAP. Now it is refused, naming the missing keys; the key
    MODEL.WEIGHTS_PARTIAL allows the partial load deliberately."""
    from reid.models import build_encoder, load_pretrained
    from reid.utils.errors import CheckpointError

    r18 = build_encoder("resnet18")
    path = tmp_path / "r18.pth"
    torch.save({"model": r18.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"checkpoint does not fit: .*r18\.pth into "
                                              r"ReIDEncoder: 80 tensors missing from the "
                                              r"checkpoint: backbone\.layer1\.2\.bn1\.bias"):
        load_pretrained(build_encoder("resnet34"), path)
    report = load_pretrained(build_encoder("resnet34"), path, partial=True)
    assert len(report.loaded) == 125 and len(report.missing) == 221 - 125
    # unexpected and mis-shaped keys are named too
    sd = {**r18.state_dict(), "extra.weight": torch.zeros(1)}
    sd["neck.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as err:
        load_pretrained(build_encoder("resnet18"), tmp_path / "odd.pth")
    assert "1 tensors not in the model: extra.weight" in str(err.value)
    assert "neck.weight: checkpoint (3,) vs model (512,)" in str(err.value)
    # through tools/test.py: exit 2 and no eval.json; with MODEL.WEIGHTS_PARTIAL it evaluates
    args = _usl(tiny, data_root, tmp_path / "t34", "MODEL.ARCH", "resnet34", "MODEL.WEIGHTS",
                str(path))
    assert cli.main_test(args) == 2
    assert "MODEL.WEIGHTS_PARTIAL True" in capsys.readouterr().err
    assert not (tmp_path / "t34" / "eval.json").exists()
    assert cli.main_test([*args, "MODEL.WEIGHTS_PARTIAL", "True"]) == 0
    assert (tmp_path / "t34" / "eval.json").is_file()


def test_expected_differences_are_allowed_and_listed(tmp_path, caplog):
    """The classifier head (absent, extra, or of another size with skip_mismatched) and the
    DSBN <-> BN conversion load without a refusal, each said in the log."""
    from reid.models import build_encoder, load_pretrained

    caplog.set_level(logging.INFO, logger="reid")
    sup = build_encoder("resnet18", num_classes=5)
    torch.save({"model": sup.state_dict()}, tmp_path / "sup.pth")
    report = load_pretrained(build_encoder("resnet18", num_domains=2), tmp_path / "sup.pth")
    assert report.unexpected == ["classifier.weight"]
    assert "classifier head of" in caplog.text and "not used by the model (expected)" in \
        caplog.text
    assert "BN -> DSBN (expected)" in caplog.text
    seven = build_encoder("resnet18", num_classes=7)
    report = load_pretrained(seven, tmp_path / "sup.pth", skip_mismatched=True)
    assert "classifier.weight" in report.missing
    dsbn = build_encoder("resnet18", num_domains=2)
    torch.save({"model": dsbn.state_dict()}, tmp_path / "dsbn.pth")
    load_pretrained(build_encoder("resnet18"), tmp_path / "dsbn.pth")
    assert "DSBN -> BN (expected)" in caplog.text


# ---------------------------------------------------------------------------- 4. divergence
def test_divergence_stops_with_the_project_message_and_keeps_the_last_good_checkpoint(tiny,
        data_root, tmp_path):
    """Repro: SOLVER.BASE_LR 1e999 died with the memory's raw "feats contain NaN or Inf". The
    runner's check fires first, naming the step, the learning rate and the fix; here the
    learning rate becomes infinite at epoch 1 (SOLVER.GAMMA 1e999 at step 1), so last.pth of
    epoch 1 is kept byte for byte and best.pth is never a non-finite model."""
    from reid.engine.runner import NonFiniteLossError

    out = tmp_path / "div"
    args = _usl(tiny, data_root, out, "SOLVER.MAX_EPOCHS", "3", "SOLVER.STEPS", "[1]",
                "SOLVER.GAMMA", "1e999", "TEST.EVAL_PERIOD", "1")
    with pytest.raises(NonFiniteLossError) as err:
        cli.train_main(args)
    msg = str(err.value)
    assert "feats contain NaN" not in msg
    assert re.search(r"training diverged: non-finite (features|gradient|loss).* at epoch 1 "
                     r"iteration \d \(step \d, learning rate inf\); the last good checkpoint "
                     r".*last\.pth is kept \(after epoch 1\): lower SOLVER\.BASE_LR", msg), msg
    assert load_checkpoint(out / "last.pth")["epoch"] == 1
    best = load_checkpoint(out / "best.pth")
    assert all(torch.isfinite(v).all() for v in best["model"].values()
               if v.dtype.is_floating_point)
    # the repro itself, through the tool: exit 2, the project's message, no traceback
    proc = _run(["tools/train.py", *_usl(tiny, data_root, tmp_path / "inf",
                                         "SOLVER.BASE_LR", "1e999", "SOLVER.MAX_EPOCHS", "1")])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: training diverged: non-finite" in proc.stderr
    assert "learning rate inf" in proc.stderr and "lower SOLVER.BASE_LR" in proc.stderr
    assert "Traceback" not in proc.stderr and "feats contain NaN" not in proc.stderr


def test_non_finite_gradient_stops_before_the_step(tmp_path):
    """A finite loss with an infinite gradient (sqrt at 0) stops before optimizer.step."""
    from reid.engine.runner import BaseRunner, NonFiniteLossError

    class Sqrt(BaseRunner):
        def train_step(self, iteration):
            return {"loss": torch.sqrt(self.model.weight.sum() * 0)}

    model = torch.nn.Linear(2, 1)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = Sqrt(model=model, optimizer=opt, scheduler=torch.optim.lr_scheduler.StepLR(opt, 1),
                  evaluator=None, output_dir=tmp_path, max_epochs=1, iters=1)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient \(total norm nan\) at "
                                                 r"epoch 0 iteration 0 \(step 1, learning rate "
                                                 r"0\.1\); no checkpoint was written: lower "
                                                 r"SOLVER\.BASE_LR"):
        runner.run()
    assert torch.equal(model.weight, before)


def test_best_checkpoint_is_never_worse_than_the_initial_model(tmp_path):
    """best.pth starts with the initial model and is replaced only by a better finite one; a
    last evaluation far below the initial one (mAP 50% -> 20%, the repro SOLVER.BASE_LR 1e6
    went 10.9% -> 4.1%) makes the summary say the result is suspect."""
    from reid.engine.runner import BaseRunner

    maps = iter([0.5, 0.3, 0.2])

    class Fixed:
        def evaluate(self, model):
            return {"set": {"mAP": next(maps), "mINP": 0.1, "rank1": 0.2, "rank5": 0.3,
                            "rank10": 0.4}}

    class Step(BaseRunner):
        def train_step(self, iteration):
            return {"loss": (self.model.weight ** 2).sum()}

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = Step(model=model, optimizer=opt, scheduler=torch.optim.lr_scheduler.StepLR(opt, 1),
                  evaluator=Fixed(), output_dir=tmp_path, max_epochs=2, iters=1)
    runner.run()
    best = load_checkpoint(tmp_path / "best.pth")
    assert (best["epoch"], best["mAP"]) == (0, 0.5)  # the initial model: training made it worse
    levels, lines = zip(*runner.summary(), strict=True)
    assert levels[-1] == logging.WARNING
    assert lines[-1] == ("the result is SUSPECT: the last mAP 20.0% is far below the initial "
                         "model's 50.0% (diverging? lower SOLVER.BASE_LR)")
    runner.history[-1]["mAP"] = 0.4  # a small dip is not suspect
    runner.suspect.clear()
    assert [level for level, _ in runner.summary()] == [logging.INFO]


# ---------------------------------------------------------------------------- 4b. collapse
def test_cluster_collapse_rule():
    from reid.engine.spcl import cluster_collapse

    assert cluster_collapse(np.array([-1, -1, -1])) == "no cluster: all 3 images un-clustered"
    assert cluster_collapse(np.array([0, 0, 0, 1, -1])) == "one cluster holds 3 of 5 images"
    assert cluster_collapse(np.array([0, 0, 1, 1, -1])) is None


def test_collapsed_clustering_two_epochs_in_a_row_warns_and_marks_the_run(tiny, data_root, tmp_path,
                                                                         caplog):
    """No cluster at all (CLUSTER.MIN_SAMPLES larger than the set) for two epochs: a warning
    names the clustering keys to change, and the final summary says the result is suspect."""
    caplog.set_level(logging.INFO, logger="reid")
    cli.train_main(_usl(tiny, data_root, tmp_path / "col", "SOLVER.MAX_EPOCHS", "2", "SOLVER.ITERS",
                        "1", "CLUSTER.MIN_SAMPLES", "1000", "TEST.EVAL_PERIOD", "2"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    collapse = [w for w in warnings if "collapsed for 2 epochs in a row" in w]
    assert len(collapse) == 1, warnings
    assert "(epoch 1: no cluster: all" in collapse[0]
    for key in ("CLUSTER.EPS", "CLUSTER.K1", "CLUSTER.MIN_SAMPLES"):
        assert key in collapse[0]
    assert any(w.startswith("the result is SUSPECT: the pseudo labels of target 0 collapsed")
               for w in warnings), warnings


# ---------------------------------------------------------------------------- 5. folder names
def _market(base: Path, touch, write_mars) -> None:
    for split, names in (("bounding_box_train", ["0002_c1s1_01.jpg", "0007_c3s1_01.jpg"]),
                         ("query", ["0003_c1s1_01.jpg"]),
                         ("bounding_box_test", ["0003_c2s1_01.jpg", "0000_c4s1_01.jpg"])):
        for name in names:
            touch(base / split / name)


def _msmt17_v2(base: Path, touch, write_mars) -> None:
    lists = {"list_train.txt": "0000/0000_000_01_0303morning_0015_0.jpg 0",
             "list_val.txt": "0001/0001_000_05_0303morning_0016_0.jpg 1",
             "list_query.txt": "0002/0002_000_15_0303noon_0001_0.jpg 2",
             "list_gallery.txt": "0002/0002_001_02_0303noon_0002_0.jpg 2"}
    for name, line in lists.items():
        folder = "mask_train_v2" if name in ("list_train.txt", "list_val.txt") else "mask_test_v2"
        touch(base / folder / line.split()[0])
        (base / name).write_text(line + "\n")


def _veri(base: Path, touch, write_mars) -> None:
    for folder, name in (("image_train", "0001_c001_1_0.jpg"), ("image_query", "0002_c003_1_0.jpg"),
                         ("image_test", "0002_c020_1_0.jpg")):
        touch(base / folder / name)


def _vehicleid(base: Path, touch, write_mars) -> None:
    for n in ("0000001", "0000002", "0000003"):
        touch(base / "image" / f"{n}.jpg")
    (base / "train_test_split").mkdir()
    (base / "train_test_split" / "train_list.txt").write_text("0000001 10\n")
    (base / "train_test_split" / "test_list_800.txt").write_text("0000002 7\n0000003 7\n")


def _mars(base: Path, touch, write_mars) -> None:
    write_mars(base, ["0001C1T0001F001.jpg"], ["0002C1T0001F001.jpg", "0002C3T0002F001.jpg"],
               [[1, 1, 1, 1]], [[1, 1, 2, 1], [2, 2, 2, 3]], [1])


def _cuhk01(base: Path, touch, write_mars) -> None:
    for pid in range(1, 5):
        for k in range(1, 5):
            touch(base / f"{pid:04d}{k:03d}.png")


@pytest.mark.parametrize("name,release,make", [
    ("market1501", "Market-1501-v15.09.15", _market),
    ("dukemtmcreid", "DukeMTMC-reID", _market),
    ("msmt17", "MSMT17_V2", _msmt17_v2),
    ("veri", "VeRi-776", _veri),
    ("vehicleid", "VehicleID_V1.0", _vehicleid),
    ("mars", "MARS", _mars),
    ("cuhk01", "CUHK01/campus", _cuhk01),
])
def test_official_release_folders_are_found(tmp_path, name, release, make, touch, write_mars):
    """Repro: ROOT/Market-1501-v15.09.15 (the folder the archive unpacks to) was not found.
    Each benchmark's release folder is read directly under the data root, giving the same
    samples as its usual folder; datasets/README.md lists it."""
    from reid.data.datasets import build_dataset
    from reid.data.datasets.common import RELEASE_FOLDERS

    (tmp_path / "official" / release).mkdir(parents=True)
    make(tmp_path / "official" / release, touch, write_mars)
    ds = build_dataset(name, str(tmp_path / "official"))
    assert Path(ds.root) == tmp_path / "official" / release
    assert ds.train and ds.query and ds.gallery
    assert release in RELEASE_FOLDERS[name]
    assert f"`{release}`" in (REPO / "datasets" / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- 6. user errors
def test_user_error_exits_2_without_traceback(tmp_path, capsys, monkeypatch):
    """A missing dataset: one clear message and exit 2, no traceback; --debug and REID_DEBUG=1
    show the traceback."""
    args = ["--config-file", USL, "DATASETS.ROOT", str(tmp_path), "DATASETS.TARGET",
            "['market1501']", "OUTPUT_DIR", str(tmp_path / "out")]
    proc = _run(["tools/train.py", *args])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: market1501: layout not found under data root")
    assert "Traceback" not in proc.stderr
    assert "--debug or REID_DEBUG=1 shows the traceback" in proc.stderr
    assert cli.main_train([*args, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("REID_DEBUG", "1")
    assert cli.main_train(args) == 2
    assert "Traceback" in capsys.readouterr().err


def test_config_errors_are_user_errors(tiny, tmp_path, capsys):
    """_BASE_ chain errors name the referencing file; DATASETS.ROOT pointing at a file, an
    unknown key and a bad device are one-line errors with exit 2."""
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: nowhere/base.yaml\n")
    assert cli.main_train(["--config-file", str(child)]) == 2
    assert f"(the _BASE_ of {child})" in capsys.readouterr().err
    root_file = tmp_path / "root.txt"
    root_file.write_text("")
    assert cli.main_train(_usl(tiny, str(root_file), tmp_path / "o")) == 2
    assert f"error: the data root (DATASETS.ROOT) {root_file} is a file, not a folder" in \
        capsys.readouterr().err
    assert cli.main_train(["SOLVER.BASE_LRR", "1", "OUTPUT_DIR", str(tmp_path / "u")]) == 2
    assert "error: unknown config key in overrides" in capsys.readouterr().err
    assert cli.main_test(["DEVICE", "gpu0", "OUTPUT_DIR", str(tmp_path / "d")]) == 2
    assert "error: DEVICE='gpu0' is not a device" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 6b. Ctrl-C
def test_ctrl_c_prints_the_last_checkpoint_and_the_resume_command(tiny, data_root, tmp_path):
    """SIGINT during training: exit 130 and a message naming last.pth and the exact command
    that resumes the run (the same words plus --resume)."""
    out = tmp_path / "int"
    argv = ["--config-file", USL, *tiny, "DATASETS.ROOT", data_root, "OUTPUT_DIR", str(out),
            "SOLVER.MAX_EPOCHS", "200", "TEST.EVAL_PERIOD", "100"]
    proc = subprocess.Popen([sys.executable, "tools/train.py", *argv], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (out / "last.pth").is_file() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    want = f"python tools/train.py {shlex.join([*argv, '--resume'])}"
    m = re.search(r"interrupted; the last checkpoint is (\S+) \(after epoch (\d+)\)\. Resume "
                  r"with:\n  (.*)\n", stdout)
    assert m, stdout[-3000:]
    assert m.group(1) == str(out / "last.pth") and int(m.group(2)) >= 1
    assert m.group(3) == want


def test_ctrl_c_during_a_checkpoint_write_is_held_until_the_file_is_complete(tmp_path):
    """SIGINT inside torch.save surfaced as a RuntimeError of its zip writer (found by the test
    above): the write now finishes, then KeyboardInterrupt is raised."""
    from reid.utils.checkpoint import save_checkpoint, sigint_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append(True)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    save_checkpoint({"x": torch.ones(2)}, tmp_path / "a.pth")
    assert torch.equal(load_checkpoint(tmp_path / "a.pth")["x"], torch.ones(2))


# ---------------------------------------------------------------------------- 8. priors, threads
def test_camera_group_prior_naming_absent_cameras_is_an_error(tiny, data_root, tmp_path, capsys):
    """Repro: groups naming cameras the set does not have silently became no prior."""
    rc = cli.main_train(_usl(tiny, data_root, tmp_path / "g", "CLUSTER.CAMERA_GROUPS",
                             "[[0, 1], [7, 8]]"))
    err = capsys.readouterr().err
    assert rc == 2
    assert ("error: CLUSTER.CAMERA_GROUPS: cameras [7, 8] of the groups [[0, 1], [7, 8]] are in "
            "no clustered set (synthetic_person_a has cameras [0, 1])") in err


def test_thread_count_key_is_applied_and_logged_and_console_is_quiet(tiny, data_root, tmp_path,
                                                                    capsys):
    """NUM_THREADS is applied to torch and logged; the console lists only the keys that differ
    from the defaults (the full config is in config.yaml); a test run with MODEL.WEIGHTS does
    not claim a random initialisation."""
    torch.set_num_threads(2)
    assert cli.main_train(_usl(tiny, data_root, tmp_path / "th", "SOLVER.MAX_EPOCHS", "1",
                               "NUM_THREADS", "1")) == 0
    assert torch.get_num_threads() == 1
    import faiss
    import numba

    assert numba.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    out = capsys.readouterr().out
    assert "1 CPU threads (NUM_THREADS)" in out
    assert "  SOLVER.MAX_EPOCHS: 1\n" in out and "  NUM_THREADS: 1\n" in out
    assert "RERANK_K1" not in out  # a default value, only in config.yaml
    assert "RERANK_K1: 20" in (tmp_path / "th" / "config.yaml").read_text()
    assert "new run; initial weights: random" in out
    assert cli.main_test(_usl(tiny, data_root, tmp_path / "te", "MODEL.WEIGHTS",
                              str(tmp_path / "th" / "best.pth"))) == 0
    out = capsys.readouterr().out
    assert "random initialisation" not in out
    assert f"evaluating MODEL.WEIGHTS {tmp_path / 'th' / 'best.pth'}" in out
    assert not math.isnan(json.loads((tmp_path / "te" / "eval.json").read_text())["mAP"])
    shutil.rmtree(tmp_path / "th")
