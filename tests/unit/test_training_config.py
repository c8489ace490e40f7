"""Hydra config tree: every exp composes with `+exp=`, every group option validates, typos fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import REPO_ROOT, ConfigError, compose, validate

CONF = REPO_ROOT / "conf"
EXPERIMENTS = {"baseline": ("catboost", "baseline", "trendflow-baseline"),
               "v1": ("late_fusion", "v1", "trendflow-v1-late-fusion"),
               "v2": ("transformer", "v2", "trendflow-v2-transformer")}


def test_primary_defaults_have_no_overrides_and_no_exp() -> None:
    """`+exp=...` only composes when the primary config's defaults list has no `override` and no `exp` entry."""
    defaults = yaml.safe_load((CONF / "train.yaml").read_text())["defaults"]
    for entry in defaults:
        if isinstance(entry, dict):
            (key,) = entry
            assert not key.startswith("override"), entry
            assert key != "exp", entry


@pytest.mark.parametrize("exp", sorted(EXPERIMENTS))
def test_each_exp_composes_with_plus_syntax(exp: str) -> None:
    cfg = validate(compose([f"+exp={exp}"]))
    name, family, registered = EXPERIMENTS[exp]
    assert (cfg.model.name, cfg.model.family, cfg.model.registered_name) == (name, family, registered)
    assert cfg.tags["experiment"] == exp


def test_exp_files_are_global_packages() -> None:
    for path in sorted((CONF / "exp").glob("*.yaml")):
        assert path.read_text().startswith("# @package _global_"), path


def test_command_line_overrides_apply_on_top_of_an_exp() -> None:
    cfg = validate(compose(["+exp=v2", "trainer.max_epochs=5", "data.path=/tmp/x.parquet", "model.lr=3e-4"]))
    assert cfg.trainer.max_epochs == 5 and cfg.data.path == "/tmp/x.parquet" and cfg.model.lr == 3e-4
    # the exp's own setting is used when not overridden
    assert validate(compose(["+exp=v2"])).trainer.max_epochs == 60


def test_default_is_the_baseline_and_lightgbm_is_selectable() -> None:
    assert validate(compose([])).model.name == "catboost"
    cfg = validate(compose(["+exp=baseline", "model=lightgbm"]))
    assert cfg.model.name == "lightgbm" and cfg.model.registered_name == "trendflow-baseline"


GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name in
                {"data", "model", "trainer", "intervals", "paths", "tracking"})


@pytest.mark.parametrize(("group", "option"),
                         [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))])
def test_every_group_option_validates(group: str, option: str) -> None:
    validate(compose([f"{group}={option}"]))


def test_typo_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.lrr: unknown key"):
        validate(compose(["+exp=v1", "+model.lrr=0.1"]))
    with pytest.raises(ConfigError, match=r"data\.split"):
        validate(compose(["data.split.train=0.9"]))  # fractions no longer sum to 1
    with pytest.raises(ConfigError, match=r"d_model \(30\) must be divisible by n_heads"):
        validate(compose(["+exp=v2", "model.d_model=30", "model.n_heads=4"]))


def test_intervals_must_cover_the_output_contract() -> None:
    with pytest.raises(ConfigError, match="intervals.levels"):
        validate(compose(["intervals.levels=[0.8,0.9]"]))


def test_paths_resolve_relative_to_repo_root(tmp_path: Path) -> None:
    cfg = validate(compose([]))
    assert cfg.paths.resolve("data/dataset.parquet") == REPO_ROOT / "data" / "dataset.parquet"
    cfg = validate(compose([f"paths.root={tmp_path}"]))
    assert cfg.paths.resolve("x") == tmp_path / "x"
    assert cfg.paths.resolve("/abs/y") == Path("/abs/y")
