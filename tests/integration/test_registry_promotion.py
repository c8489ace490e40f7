"""Promotion gates, rollback, history and the CLI against a real MLflow store with real registered versions.

Versions are small contract-conformant pyfuncs (``testsupport.registry.ReferenceModel``) logged, registered and
loaded through MLflow like the trained families; nothing here is mocked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from registry import audit, ops
from tests.conftest import REPO_ROOT
from testsupport.registry import default_metrics


def _gate(res: ops.PromotionResult, name: str):
    return next(g for g in res.gates if g.name == name)


def test_first_promotion_passes_every_gate_and_sets_stable(registry_store) -> None:
    s = registry_store
    v = s.log("v2").version
    res = ops.promote(s.client, s.cfg, "v2", v.version, "first model", actor="alice")
    assert res.ok, [g.to_dict() for g in res.failed]
    assert [g.name for g in res.gates] == ["metadata", "metrics", "coverage", "schema", "loads_and_predicts",
                                           "licenses"]
    assert s.client.get_model_version_by_alias("trendflow-v2-transformer", "stable").version == v.version
    tags = s.client.get_model_version("trendflow-v2-transformer", v.version).tags
    assert tags["registry.promoted_by"] == "alice" and tags["registry.promotion_reason"] == "first model"
    assert '"gates"' in tags["registry.promotion"]
    desc = s.client.get_model_version("trendflow-v2-transformer", v.version).description
    assert desc.count("### Promotion gates") == 1 and "promoted at" in desc and "| coverage | pass |" in desc
    entry = audit.read(s.cfg.audit_path())[-1]
    assert entry["action"] == "promote" and entry["aliases"]["stable"] == str(v.version) and entry["actor"] == "alice"


def test_second_promotion_moves_previous_and_rollback_restores_it(registry_store) -> None:
    s = registry_store
    v1 = s.log("baseline", metrics=default_metrics(mae=0.30)).version
    v2 = s.log("baseline", metrics=default_metrics(mae=0.29), semver="1.1.0").version
    assert ops.promote(s.client, s.cfg, "baseline", v1.version, "initial").ok
    res = ops.promote(s.client, s.cfg, "baseline", v2.version, "better MAE")
    assert res.ok and res.aliases_after == {"stable": str(v2.version), "previous": str(v1.version)}
    name = "trendflow-baseline"
    assert s.client.get_model_version(name, v1.version).tags["registry.superseded_by"] == str(v2.version)
    rb = ops.rollback(s.client, s.cfg, "baseline", "v2 regressed in production")
    assert rb.ok and rb.aliases_after == {"stable": str(v1.version), "previous": None}
    assert s.client.get_model_version_by_alias(name, "stable").version == v1.version
    assert "rolled_back" in "".join(s.client.get_model_version(name, v2.version).tags)
    with pytest.raises(ops.RegistryError, match="no 'previous'"):
        ops.rollback(s.client, s.cfg, "baseline", "again")
    actions = [e["action"] for e in audit.read(s.cfg.audit_path())]
    assert actions == ["promote", "promote", "rollback"]
    assert audit.verify(s.cfg.audit_path()) == []
    # "which version was stable at time X" for each moment in the log
    entries = audit.read(s.cfg.audit_path())
    assert [ops.stable_at(s.cfg, "baseline", e["ts"]) for e in entries] == [str(v1.version), str(v2.version),
                                                                            str(v1.version)]


def test_worse_metrics_are_refused_and_nothing_moves(registry_store) -> None:
    s = registry_store
    good = s.log("v2", metrics=default_metrics(mae=0.30)).version
    assert ops.promote(s.client, s.cfg, "v2", good.version, "initial").ok
    worse = s.log("v2", metrics=default_metrics(mae=0.40)).version
    res = ops.promote(s.client, s.cfg, "v2", worse.version, "try")
    assert not res.ok and [g.name for g in res.failed] == ["metrics"]
    assert "test/mae_views_7d 0.4000 > 0.3060" in _gate(res, "metrics").reason
    assert s.client.get_model_version_by_alias("trendflow-v2-transformer", "stable").version == good.version
    assert "registry.last_refusal" in s.client.get_model_version("trendflow-v2-transformer", worse.version).tags
    desc = s.client.get_model_version("trendflow-v2-transformer", worse.version).description
    assert "promotion refused at" in desc and "| metrics | FAIL | test/mae_views_7d 0.4000 > 0.3060" in desc
    assert audit.read(s.cfg.audit_path())[-1]["action"] == "promote_refused"
    # within tolerance (2%) passes
    close = s.log("v2", metrics=default_metrics(mae=0.305)).version
    assert ops.promote(s.client, s.cfg, "v2", close.version, "noise-level change").ok


def test_metrics_on_a_different_test_split_are_not_comparable(registry_store) -> None:
    s = registry_store
    a = s.log("v1", run_tags={"split_hash": "aaaa"}).version
    assert ops.promote(s.client, s.cfg, "v1", a.version, "initial").ok
    b = s.log("v1", run_tags={"split_hash": "bbbb"}, metrics=default_metrics(mae=0.1)).version
    res = ops.promote(s.client, s.cfg, "v1", b.version, "better?")
    assert not res.ok and "different test split" in _gate(res, "metrics").reason
    assert "split_hash bbbb != aaaa" in _gate(res, "metrics").reason
    # re-scoring needs the run's resolved training config, which a reference model's run does not log
    assert "re-scoring refused: run " in _gate(res, "metrics").reason
    assert "has no config/resolved.yaml artifact" in _gate(res, "metrics").reason
    c = s.log("v1", run_tags={"split_hash": None}, metrics=default_metrics(mae=0.1)).version
    res = ops.promote(s.client, s.cfg, "v1", c.version, "no split recorded")
    assert not res.ok and "cannot tell whether the test split" in _gate(res, "metrics").reason


def test_coverage_off_nominal_is_refused(registry_store) -> None:
    s = registry_store
    v = s.log("v2", metrics=default_metrics(coverage_90=0.84)).version
    res = ops.promote(s.client, s.cfg, "v2", v.version, "narrow intervals")
    assert not res.ok and [g.name for g in res.failed] == ["coverage"]
    assert "0.840 not within 0.90±0.02" in _gate(res, "coverage").reason


def test_coverage_tolerance_widens_with_the_sampling_error_of_a_small_test_split(registry_store) -> None:
    s = registry_store
    small = s.log("v2", metrics={**default_metrics(coverage_90=0.935), "test/n_rows": 400.0}).version
    res = ops.promote(s.client, s.cfg, "v2", small.version, "0.935 on 400 rows: within 2.58 standard errors")
    assert res.ok, [g.reason for g in res.failed]
    assert _gate(res, "coverage").details["test/coverage_90"]["allowed"] == pytest.approx(0.0387, abs=1e-4)
    off = s.log("v2", metrics={**default_metrics(coverage_90=0.95), "test/n_rows": 400.0}).version
    res = ops.promote(s.client, s.cfg, "v2", off.version, "0.95 on 400 rows")
    assert not res.ok
    assert "0.950 not within 0.90±0.039 (2.58 standard errors for 400 rows)" in _gate(res, "coverage").reason
    big = s.log("v2", metrics={**default_metrics(coverage_90=0.935), "test/n_rows": 20000.0}).version
    res = ops.promote(s.client, s.cfg, "v2", big.version, "0.935 on 20,000 rows: the fixed tolerance rules")
    assert not res.ok and "0.935 not within 0.90±0.020" in _gate(res, "coverage").reason


def test_incompatible_feature_schema_is_refused(registry_store) -> None:
    s = registry_store
    major = s.spec.version_tuple[0]
    v = s.log("v2", feature_schema_version=f"{major + 1}.0.0").version
    res = ops.promote(s.client, s.cfg, "v2", v.version, "trained on a future schema")
    assert not res.ok and "schema" in [g.name for g in res.failed]
    assert "MAJOR" in _gate(res, "schema").reason
    # a model whose signature needs a column the serving spec does not produce
    w = s.log("v2", columns=[*s.columns, "vis_feature_from_the_future"]).version
    res = ops.promote(s.client, s.cfg, "v2", w.version, "new feature")
    assert not res.ok and "vis_feature_from_the_future" in _gate(res, "schema").reason


def test_missing_tags_fail_the_metadata_gate(registry_store) -> None:
    s = registry_store
    v = s.log("v1", tags={"semver": "1.0"}).version
    res = ops.promote(s.client, s.cfg, "v1", v.version, "bad tags")
    assert not res.ok and "semver" in _gate(res, "metadata").reason


def test_broken_artifacts_and_failing_predict_are_refused(registry_store) -> None:
    s = registry_store
    bad_predict = s.log("v2", fail_predict=True).version
    res = ops.promote(s.client, s.cfg, "v2", bad_predict.version, "raises")
    assert not res.ok and "predict failed" in _gate(res, "loads_and_predicts").reason
    broken = s.log("v2").version
    import mlflow.artifacts

    local = Path(mlflow.artifacts.download_artifacts(f"models:/trendflow-v2-transformer/{broken.version}"))
    src = Path(s.client.get_model_version_download_uri("trendflow-v2-transformer", broken.version)
               .removeprefix("file://"))
    # break the stored artifact itself (not a local copy): remove the pickled model
    for p in [*src.rglob("python_model.pkl")]:
        p.unlink()
    shutil.rmtree(local, ignore_errors=True)
    res = ops.promote(s.client, s.cfg, "v2", broken.version, "broken")
    assert not res.ok and "do not load" in _gate(res, "loads_and_predicts").reason


def test_alias_set_outside_the_cli_is_honoured_and_recorded(registry_store) -> None:
    s = registry_store
    a = s.log("baseline").version
    b = s.log("baseline").version
    assert ops.promote(s.client, s.cfg, "baseline", a.version, "initial").ok
    # what the MLflow UI does when someone edits the alias by hand
    s.client.set_registered_model_alias("trendflow-baseline", "stable", b.version)
    added = ops.reconcile(s.client, s.cfg)
    assert len(added) == 1 and added[0]["action"] == "observed" and added[0]["aliases"]["stable"] == str(b.version)
    assert ops.reconcile(s.client, s.cfg) == []  # idempotent
    assert ops.stable_at(s.cfg, "baseline", audit.now_iso()) == str(b.version)


def test_listing_shows_versions_tags_metrics_aliases(registry_store) -> None:
    s = registry_store
    v = s.log("v2").version
    ops.promote(s.client, s.cfg, "v2", v.version, "initial")
    listing = ops.list_versions(s.client, s.cfg)
    assert listing["v1"] == [] and listing["baseline"] == []
    row = listing["v2"][0]
    assert row["aliases"] == ["stable"] and row["tags"]["semver"] == "v2_1.0.0"
    assert row["metrics"]["test/mae_views_7d"] == pytest.approx(0.3) and row["run_id"]


def test_cli_promote_refuse_list_rollback(registry_store, capsys: pytest.CaptureFixture) -> None:
    from registry.__main__ import main

    s = registry_store
    a = s.log("v1", metrics=default_metrics(mae=0.3)).version
    b = s.log("v1", metrics=default_metrics(mae=0.25)).version
    c = s.log("v1", metrics=default_metrics(mae=0.9)).version
    base = ["--config", str(s.config_path)]
    assert main([*base, "promote", "--type", "v1", "--version", str(a.version), "--reason", "initial"]) == 0
    assert main([*base, "promote", "--type", "v1", "--version", str(b.version), "--reason", "better"]) == 0
    assert main([*base, "promote", "--type", "v1", "--version", str(c.version), "--reason", "worse"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] metrics" in out and "promote refused" in out
    assert main([*base, "list", "--type", "v1"]) == 0
    out = capsys.readouterr().out
    assert f"v{b.version}" in out and "stable" in out and "previous" in out and "v1_1.0.0" in out
    assert main([*base, "rollback", "--type", "v1", "--reason", "incident 42"]) == 0
    assert main([*base, "stable-at", "--type", "v1", audit.now_iso()]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(a.version)
    assert main([*base, "verify-audit"]) == 0
    assert main([*base, "promote", "--type", "v1", "--version", "99", "--reason", "x"]) == 2
    assert "model_version_not_found" in capsys.readouterr().err


def test_licence_gate_refuses_a_version_built_on_a_model_no_longer_allowed(registry_store, tmp_path) -> None:
    """A version whose features came from a model whose licence is (now) denied is refused; so is one with no
    licence record at all. The tags are written as training writes them (training.trust) then changed the way a
    re-licensed upstream model would be: the tagged expression is what the version was built on."""
    import json

    import yaml

    from registry.gates import gate_licenses

    s = registry_store
    good = s.log("v1").version
    tags = s.client.get_model_version("trendflow-v1-late-fusion", good.version).tags
    licences = json.loads(tags["model_licenses"])
    assert licences["text_embed"] == "Apache-2.0" and licences["trendflow-v1-late-fusion"].startswith("LicenseRef-")
    assert tags["sbom_sha256"] and tags["sbom_artifact"].startswith("sbom/")
    relicensed = s.log("v1", tags={"model_licenses": json.dumps({**licences, "text_embed": "CC-BY-NC-4.0"})}).version
    res = ops.promote(s.client, s.cfg, "v1", relicensed.version, "built on a non-commercial model")
    assert not res.ok and [g.name for g in res.failed] == ["licenses"]
    assert "text_embed: licence tagged at training CC-BY-NC-4.0 is deny" in res.failed[0].reason
    untagged = s.log("v1", tags={"model_licenses": ""}).version
    res = ops.promote(s.client, s.cfg, "v1", untagged.version, "no licence record")
    assert [g.name for g in res.failed] == ["licenses"] and "no model_licenses tag" in res.failed[0].reason
    # the policy changes after training: the same, once good, version is refused under the new policy
    root = tmp_path / "repo"
    (root / "conf").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "licenses.yaml", root / "licenses.yaml")
    pol = yaml.safe_load((REPO_ROOT / "conf" / "license_policy.yaml").read_text())
    pol["deny"].append("Apache-2.0")
    (root / "conf" / "license_policy.yaml").write_text(yaml.safe_dump(pol))
    mv = s.client.get_model_version("trendflow-v1-late-fusion", good.version)
    assert gate_licenses(mv).passed
    later = gate_licenses(mv, root)
    assert not later.passed and "text_embed" in later.reason and "deny" in later.reason


def test_every_registered_version_carries_its_sbom(registry_store, tmp_path) -> None:
    import json

    from common.hashing import file_hash

    s = registry_store
    v = s.log("baseline").version
    tags = s.client.get_model_version("trendflow-baseline", v.version).tags
    local = s.client.download_artifacts(tags["training_run_id"], tags["sbom_artifact"], str(tmp_path))
    assert file_hash(local, n=64) == tags["sbom_sha256"]
    doc = json.loads(open(local).read())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    names = {c["name"].lower() for c in doc["components"]}
    assert {"numpy", "mlflow", "fastapi", "cyclonedx-bom", "pip-licenses"} <= names
    # from PyPI: a purl; installed from a local wheel (no registry to name): the archive it came from
    assert all(c.get("purl", "").startswith("pkg:pypi/") or any(r["type"] == "distribution" and
               r["url"].startswith("file:") for r in c.get("externalReferences", [])) for c in doc["components"])
    (tmp_path / "d").mkdir()
    got = s.client.download_artifacts(tags["training_run_id"], tags["input_distribution"], str(tmp_path / "d"))
    dist = json.loads(open(got).read())
    assert dist["n_rows"] == 256 and set(dist["features"]) == set(s.columns)
