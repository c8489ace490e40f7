"""Pure pieces of the registry: audit chain, alias history, output contract, schema rules, config validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError
from contract.output import QUANTILES, TARGETS, check_output, output_columns
from registry import audit
from registry.config import load_config
from registry.gates import SEMVER_TAG_RE, schema_compatible


def _frame(n: int = 3, **overrides: float) -> pd.DataFrame:
    data = {}
    for t in TARGETS:
        for i, q in enumerate(QUANTILES):
            data[f"{t}_{q}"] = np.full(n, 1.0 + i)
        data[f"{t}_confidence"] = np.full(n, 0.5)
    data.update({k: np.full(n, v) for k, v in overrides.items()})
    return pd.DataFrame(data)


def test_output_contract_accepts_a_conforming_frame() -> None:
    assert check_output(_frame(), n_rows=3) == []
    assert len(output_columns()) == 6 * 8


@pytest.mark.parametrize(("override", "needle"), [
    ({"views_7d_p90": 0.0}, "cross"),
    ({"likes_21d_confidence": 1.5}, "confidence"),
    ({"views_14d_p50": float("nan")}, "non-finite"),
])
def test_output_contract_names_the_problem(override: dict[str, float], needle: str) -> None:
    problems = check_output(_frame(**override))
    assert problems and needle in problems[0]


def test_output_contract_missing_columns_and_row_count() -> None:
    assert "missing output columns" in check_output(_frame().drop(columns=["views_7d_p025"]))[0]
    assert "expected 4 rows" in check_output(_frame(), n_rows=4)[0]


def test_audit_chain_detects_edits(tmp_path) -> None:
    log = tmp_path / "audit.jsonl"
    audit.append(log, {"action": "promote", "name": "m", "version": "1", "aliases": {"stable": "1"}})
    audit.append(log, {"action": "promote", "name": "m", "version": "2", "aliases": {"stable": "2", "previous": "1"}})
    assert audit.verify(log) == []
    lines = log.read_text().splitlines()
    e = json.loads(lines[0])
    e["version"] = "9"
    log.write_text("\n".join([json.dumps(e), lines[1]]) + "\n")
    assert any("does not match" in p for p in audit.verify(log))
    log.write_text(lines[1] + "\n")  # deleting the first line breaks the chain
    assert any("chain broken" in p for p in audit.verify(log))


def test_alias_at_answers_which_version_was_stable_when() -> None:
    entries = [
        {"ts": "2026-01-01T00:00:00Z", "name": "m", "aliases": {"stable": "1", "previous": None}},
        {"ts": "2026-02-01T00:00:00Z", "name": "m", "aliases": {"stable": "2", "previous": "1"}},
        {"ts": "2026-02-15T00:00:00Z", "name": "other", "aliases": {"stable": "7"}},
        {"ts": "2026-03-01T00:00:00Z", "name": "m", "aliases": {"stable": "1", "previous": None}},  # rollback
    ]
    assert audit.alias_at(entries, "m", "stable", "2025-12-31") is None
    assert audit.alias_at(entries, "m", "stable", "2026-01-15") == "1"
    assert audit.alias_at(entries, "m", "stable", "2026-02-20T10:00:00") == "2"
    assert audit.alias_at(entries, "m", "previous", "2026-02-20") == "1"
    assert audit.alias_at(entries, "m", "stable", "2026-03-02") == "1"
    assert audit.alias_at(entries, "m", "previous", "2026-03-02") is None


def test_actor_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRENDFLOW_ACTOR", "ci-bot")
    assert audit.actor_name("alice") == "alice"
    assert audit.actor_name(None) == "ci-bot"


def test_semver_tag_pattern() -> None:
    assert SEMVER_TAG_RE.match("baseline_1.2.0")
    assert SEMVER_TAG_RE.match("v2_10.0.3")
    assert not SEMVER_TAG_RE.match("1.2.0")
    assert not SEMVER_TAG_RE.match("baseline_1.2")


def test_schema_rules_on_the_real_spec() -> None:
    from features import load_spec, raw_columns

    spec = load_spec()
    cols = raw_columns(spec)
    major, minor, patch = spec.version_tuple
    assert schema_compatible(spec.feature_schema_version, cols, spec)[0]
    assert schema_compatible(f"{major}.{minor}.{patch + 1}", cols, spec)[0]  # PATCH differs: fine
    ok, why = schema_compatible(f"{major + 1}.0.0", cols, spec)
    assert not ok and "MAJOR" in why
    ok, why = schema_compatible(f"{major}.{minor + 1}.0", cols, spec)
    assert not ok and "newer" in why
    ok, why = schema_compatible(spec.feature_schema_version, [*cols, "vis_new_feature"], spec)
    assert not ok and "vis_new_feature" in why
    assert not schema_compatible("one", cols, spec)[0]


def test_config_typo_fails_naming_the_key(tmp_path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("gates:\n  metric_rel_tolerence: 0.1\n")
    with pytest.raises(ConfigError, match="metric_rel_tolerence"):
        load_config(p)
    cfg = load_config()  # the repository's conf/registry.yaml validates
    assert set(cfg.models) == {"baseline", "v1", "v2"}
    with pytest.raises(ConfigError, match="unknown model type"):
        cfg.name_of("v3")


def test_default_store_is_embedded_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config()
    assert cfg.resolved_tracking_uri().endswith(".trendflow/mlflow/mlflow.db")
    assert cfg.resolved_artifact_root().endswith(".trendflow/mlflow/artifacts")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert load_config().resolved_tracking_uri() == "http://mlflow.example:5000"
    assert load_config(tracking_uri="sqlite:////x.db").resolved_tracking_uri() == "sqlite:////x.db"
