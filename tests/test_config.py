"""Config system: defaults, _BASE_ inheritance, overrides, errors that name the key."""
from pathlib import Path

import pytest
import yaml

from reid.config import get_cfg, load_cfg, save_cfg

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_are_fresh_copies():
    a, b = get_cfg(), get_cfg()
    a.SOLVER.BASE_LR = 1.0
    assert b.SOLVER.BASE_LR == 3.5e-4


def test_base_inheritance_and_overrides(tmp_path):
    _write(tmp_path / "base.yaml", {"SOLVER": {"BASE_LR": 0.1, "MAX_EPOCHS": 7},
                                    "MODEL": {"ARCH": "resnet18"}})
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path / "sub" / "child.yaml",
                   {"_BASE_": "../base.yaml", "SOLVER": {"MAX_EPOCHS": 3}})
    cfg = load_cfg(child, ["MODEL.ARCH", "resnet50", "CLUSTER.EPS", "0.5"])
    assert cfg.SOLVER.BASE_LR == 0.1  # from the base
    assert cfg.SOLVER.MAX_EPOCHS == 3  # child overrides base
    assert cfg.MODEL.ARCH == "resnet50"  # command line overrides both
    assert cfg.CLUSTER.EPS == 0.5
    assert cfg.is_frozen()


def test_multiple_bases_merge_in_order(tmp_path):
    _write(tmp_path / "a.yaml", {"SEED": 1, "OUTPUT_DIR": "a"})
    _write(tmp_path / "b.yaml", {"SEED": 2})
    cfg = load_cfg(_write(tmp_path / "c.yaml", {"_BASE_": ["a.yaml", "b.yaml"]}))
    assert (cfg.SEED, cfg.OUTPUT_DIR) == (2, "a")


def test_unknown_key_in_file_names_it(tmp_path):
    bad = _write(tmp_path / "bad.yaml", {"SOLVER": {"BASE_LRR": 0.1}})
    with pytest.raises(KeyError, match="SOLVER.BASE_LRR"):
        load_cfg(bad)


def test_unknown_key_on_command_line_names_it():
    with pytest.raises(KeyError, match="MODEL.ARCHH"):
        load_cfg(None, ["MODEL.ARCHH", "resnet50"])


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="SOLVER.MAX_EPOCHS"):
        load_cfg(None, ["SOLVER.MAX_EPOCHS", "many"])
    bad = _write(tmp_path / "bad.yaml", {"CLUSTER": {"EPS": "wide"}})
    with pytest.raises(ValueError, match="CLUSTER.EPS"):
        load_cfg(bad)


def test_odd_override_list_is_an_error():
    with pytest.raises(ValueError, match="KEY VALUE"):
        load_cfg(None, ["SEED"])


def test_circular_base_is_an_error(tmp_path):
    _write(tmp_path / "x.yaml", {"_BASE_": "y.yaml"})
    _write(tmp_path / "y.yaml", {"_BASE_": "x.yaml"})
    with pytest.raises(ValueError, match="circular"):
        load_cfg(tmp_path / "x.yaml")


def test_save_round_trip(tmp_path):
    cfg = load_cfg(None, ["SOLVER.STEPS", "[5, 9]", "DATASETS.TARGET", "['a', 'b']"])
    save_cfg(cfg, tmp_path / "out" / "config.yaml")
    again = load_cfg(tmp_path / "out" / "config.yaml")
    assert again == cfg
    assert list(again.SOLVER.STEPS) == [5, 9]


def test_every_default_key_has_a_comment():
    """defaults.py documents every key on its line."""
    text = (REPO / "reid" / "config" / "defaults.py").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("_C.") and " = CN()" not in ln]
    assert lines
    missing = [ln for ln in lines if "#" not in ln]
    assert not missing, missing


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_configs_load(path):
    from reid.engine.build import RUNNER_REGISTRY

    cfg = load_cfg(path)
    assert cfg.SOLVER.METHOD in RUNNER_REGISTRY
