"""reid.evaluation.runs: a training command run in time-limited segments that resume."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from reid.evaluation.runs import train_in_segments, train_pending

# a stand-in for tools/train.py: logs its arguments, leaves a checkpoint; a fresh start then
# runs "forever" (until SIGINT), a resumed one finishes at once
FAKE_TRAIN = """
import sys, time
from pathlib import Path
out = Path(sys.argv[1])
with open(out / "argv.txt", "a") as f:
    f.write(" ".join(sys.argv[2:]) + "\\n")
(out / "last.pth").write_text("x")
if "--resume" not in sys.argv:
    time.sleep(60)
"""


def _command(tmp_path: Path, out: Path) -> list[str]:
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    return [sys.executable, str(script), str(out)]


def test_a_segment_stopped_at_the_limit_is_resumed_and_the_wall_times_add_up(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    command = _command(tmp_path, out)
    assert train_in_segments(command, out, tmp_path, max_minutes=0.03) is False
    assert not (out / "wall_time.json").exists()
    assert len(json.loads((out / "segments.json").read_text())) == 1
    assert train_in_segments(command, out, tmp_path, max_minutes=0.5) is True
    assert (out / "argv.txt").read_text().splitlines() == ["", "--resume"]
    segments = json.loads((out / "segments.json").read_text())
    wall = json.loads((out / "wall_time.json").read_text())
    assert wall == {"seconds": sum(segments), "segments": 2} and segments[0] >= 1.8


def test_a_trainer_stopped_by_hand_is_a_stopped_segment_not_a_failure(tmp_path):
    """``kill -INT`` on the trainer (its handler exits 130) between two driver calls: the
    segment is recorded and the next call resumes, as after the time limit."""
    out = tmp_path / "run"
    out.mkdir()
    script = tmp_path / "interrupted_train.py"
    script.write_text("import sys\nfrom pathlib import Path\n"
                      "(Path(sys.argv[1]) / 'last.pth').write_text('x')\nsys.exit(130)\n")
    assert train_in_segments([sys.executable, str(script), str(out)], out, tmp_path) is False
    assert len(json.loads((out / "segments.json").read_text())) == 1
    assert not (out / "wall_time.json").exists()
    assert train_in_segments(_command(tmp_path, out), out, tmp_path, max_minutes=0.5) is True
    assert (out / "argv.txt").read_text().splitlines() == ["--resume"]


def test_train_pending_skips_finished_runs_and_stops_at_the_first_limit(tmp_path, capsys):
    done, slow, later = (tmp_path / n for n in ("done", "slow", "later"))
    for out in (done, slow, later):
        out.mkdir()
    (done / "wall_time.json").write_text('{"seconds": 1}')
    runs = {n.name: (_command(tmp_path, n), n) for n in (done, slow, later)}
    assert train_pending(runs, tmp_path, max_minutes=0.03, tag="t") is False
    assert not (done / "argv.txt").exists() and not (later / "argv.txt").exists()
    assert "[t] slow: stopped after 0.03 min" in capsys.readouterr().out
    assert train_pending(runs, tmp_path, names=["slow"], max_minutes=0.5) is True  # resumed
    assert (slow / "argv.txt").read_text().splitlines() == ["", "--resume"]
    assert (slow / "wall_time.json").is_file() and not (later / "argv.txt").exists()
