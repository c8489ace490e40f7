"""Promotion gates. Each returns a :class:`GateResult`; all gates run so a refusal names every reason.

- ``metadata``          the version carries the tags the platform relies on (type, semver, run, schema version)
- ``metrics``           test metrics no worse than the current stable's, on the same test split (tolerance); when
                        the splits differ, both re-scored on rows neither has seen (:mod:`registry.rescore`)
- ``coverage``          empirical interval coverage within tolerance of nominal
- ``schema``            the model's feature schema is compatible with the serving ``feature_spec.yaml``
- ``loads_and_predicts`` the artifacts load and predict on the logged input example, output per the contract
- ``licenses``          every model the version's features came from (tag ``model_licenses``) is still allowed by
                        today's ``licenses.yaml`` and ``conf/license_policy.yaml`` (:mod:`compliance`)
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from contract.output import check_output
from registry.config import RegistryConfig
from registry.store import version_run_id

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

SEMVER_TAG_RE = re.compile(r"^(?P<type>[a-z0-9]+)_(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)$")
SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- metadata -------------------------------------------------------------------------------------------

def gate_metadata(mv: ModelVersion, model_type: str) -> GateResult:
    tags = mv.tags or {}
    problems = []
    if tags.get("model_type") not in (None, model_type):
        problems.append(f"tag model_type={tags.get('model_type')!r} but promoting as type {model_type!r}")
    semver = tags.get("semver")
    if not semver:
        problems.append("tag semver is missing")
    elif not SEMVER_TAG_RE.match(semver):
        problems.append(f"tag semver={semver!r} is not <type>_MAJOR.MINOR.PATCH")
    if not tags.get("feature_schema_version"):
        problems.append("tag feature_schema_version is missing")
    if not version_run_id(mv):
        problems.append("no training run id (version run_id or tag training_run_id)")
    return GateResult("metadata", not problems, "; ".join(problems) or "tags complete",
                      {"semver": semver, "run_id": version_run_id(mv)})


# ---- metrics --------------------------------------------------------------------------------------------

def _run_facts(client: MlflowClient, run_id: str | None) -> tuple[dict[str, float], dict[str, str]]:
    if not run_id:
        return {}, {}
    run = client.get_run(run_id)
    return dict(run.data.metrics), {**run.data.params, **run.data.tags}


def gate_metrics(client: MlflowClient, cfg: RegistryConfig, cand: ModelVersion,
                 stable: ModelVersion | None) -> GateResult:
    cm, cfacts = _run_facts(client, version_run_id(cand))
    missing = [m for m in cfg.gates.metrics if m not in cm]
    if missing:
        return GateResult("metrics", False, f"candidate run lacks metrics {missing}", {"missing": missing})
    if stable is None:
        return GateResult("metrics", True, "no current stable to compare with (first promotion)",
                          {"candidate": {m: cm[m] for m in cfg.gates.metrics}})
    sm, sfacts = _run_facts(client, version_run_id(stable))
    # Same test split: every split key recorded by both runs must agree.
    shared = [k for k in cfg.gates.split_keys if k in cfacts and k in sfacts]
    differing = {k: (cfacts[k], sfacts[k]) for k in shared if cfacts[k] != sfacts[k]}
    if differing:
        why = (f"different test split than stable v{stable.version}: "
               + ", ".join(f"{k} {a} != {b}" for k, (a, b) in differing.items()))
        if not cfg.gates.rescore_on_split_change:
            return GateResult("metrics", False, why, {"split_differs": differing})
        return _gate_rescored(client, cfg, cand, stable, cfacts.get("split_hash"), why, differing)
    if not shared and cfg.gates.require_split_identity:
        return GateResult("metrics", False, f"cannot tell whether the test split equals stable v{stable.version}'s "
                          f"(neither run records one of {cfg.gates.split_keys})", {})
    worse, table = compare_metrics(cfg, {m: cm[m] for m in cfg.gates.metrics}, sm, stable.version)
    reason = ("; ".join(worse) if worse
              else f"no worse than stable v{stable.version} on {len(cfg.gates.metrics)} metrics"
              + ("" if shared else " (split identity not recorded by both runs)"))
    return GateResult("metrics", not worse, reason, {"metrics": table, "split_keys_checked": shared})


def compare_metrics(cfg: RegistryConfig, cand: dict[str, float], stable: dict[str, float], stable_version: str
                    ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """``(what is worse, per-metric table)``: a candidate metric may exceed the stable's by the tolerances."""
    worse, table = [], {}
    rel, abs_ = cfg.gates.metric_rel_tolerance, cfg.gates.metric_abs_tolerance
    for m in cfg.gates.metrics:
        c, s = cand[m], stable.get(m)
        if s is None or not math.isfinite(s):
            table[m] = {"candidate": c, "stable": s, "ok": True}
            continue
        limit = s * (1 + rel) + abs_
        ok = math.isfinite(c) and c <= limit
        table[m] = {"candidate": c, "stable": s, "limit": limit, "ok": ok}
        if not ok:
            worse.append(f"{m} {c:.4f} > {limit:.4f} (stable v{stable_version} {s:.4f} +{rel:.0%})")
    return worse, table


def _gate_rescored(client: MlflowClient, cfg: RegistryConfig, cand: ModelVersion, stable: ModelVersion,
                   split_hash: str | None, why: str, differing: dict[str, Any]) -> GateResult:
    """The metrics gate when the test splits differ: both versions re-scored on rows neither has seen."""
    from registry.rescore import RescoreRefused, rescore

    try:
        cm, sm, info = rescore(client, cfg, cand, stable, split_hash)
    except RescoreRefused as exc:
        return GateResult("metrics", False, f"{why}; re-scoring refused: {exc}",
                          {"split_differs": differing, "method": "rescore_refused"})
    worse, table = compare_metrics(cfg, cm, sm, stable.version)
    mean = {k: sum(v.values()) / len(v) for k, v in (("candidate", cm), ("stable", sm))}
    where = (f"re-scored both on the {info['rows']} candidate test rows published after stable "
             f"v{stable.version}'s test cut {info['stable_test_cut']} (mean of the gate metrics: candidate "
             f"{mean['candidate']:.4f}, stable {mean['stable']:.4f})")
    verdict = ("; ".join(worse) if worse
               else f"no worse than stable v{stable.version} on {len(cfg.gates.metrics)} metrics")
    reason = f"{why}; {where}: {verdict}"
    return GateResult("metrics", not worse, reason,
                      {"split_differs": differing, "method": "rescored", "rescore": info, "metrics": table})


# ---- coverage -------------------------------------------------------------------------------------------

def coverage_allowance(nominal: float, n_rows: float | None, tolerance: float, z: float) -> float:
    """How far the empirical coverage of ``n_rows`` test rows may be from ``nominal``: the configured tolerance,
    or ``z`` standard errors of a binomial proportion when the test split is too small for it (a perfectly
    calibrated model's coverage on 180 rows scatters by about 0.022: a fixed +-0.02 would refuse it half the time).
    Rows, not values, count as the sample: a row's six targets share their errors."""
    if not n_rows or not math.isfinite(n_rows) or n_rows <= 0:
        return tolerance
    return max(tolerance, z * math.sqrt(nominal * (1 - nominal) / n_rows))


def gate_coverage(client: MlflowClient, cfg: RegistryConfig, cand: ModelVersion) -> GateResult:
    cm, _ = _run_facts(client, version_run_id(cand))
    bad, table = [], {}
    for metric, nominal in cfg.gates.coverage.items():
        v = cm.get(metric)
        n = cm.get(f"{metric.split('/')[0]}/n_rows") if "/" in metric else None
        tol = coverage_allowance(nominal, n, cfg.gates.coverage_tolerance, cfg.gates.coverage_z)
        ok = v is not None and math.isfinite(v) and abs(v - nominal) <= tol
        table[metric] = {"empirical": v, "nominal": nominal, "allowed": round(tol, 4), "n_rows": n, "ok": ok}
        if not ok:
            why = (f" ({cfg.gates.coverage_z:g} standard errors for {int(n)} rows)"
                   if tol > cfg.gates.coverage_tolerance else "")
            bad.append(f"{metric}={'missing' if v is None else f'{v:.3f}'} not within {nominal:.2f}±{tol:.3f}{why}")
    return GateResult("coverage", not bad, "; ".join(bad) or "coverage within tolerance of nominal", table)


# ---- schema ---------------------------------------------------------------------------------------------

def _semver(v: str) -> tuple[int, int, int] | None:
    m = SEMVER_RE.match(v or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def schema_compatible(model_version: str, model_columns: list[str] | None, serving_spec: Any) -> tuple[bool, str]:
    """Can a model trained on schema ``model_version`` (input columns ``model_columns``) be served on
    ``serving_spec``? Semver rule (same MAJOR, model MINOR <= serving MINOR) and content (every input column
    the model needs is produced by the serving spec)."""
    from features import raw_columns

    mv, sv = _semver(model_version), _semver(serving_spec.feature_schema_version)
    if mv is None:
        return False, f"model feature_schema_version {model_version!r} is not semver"
    if mv[0] != sv[0]:
        return False, (f"breaking: model schema {model_version} vs serving {serving_spec.feature_schema_version} "
                       "(different MAJOR)")
    if mv[1] > sv[1]:
        return False, (f"model schema {model_version} is newer than serving {serving_spec.feature_schema_version} "
                       "(it may need features the serving spec does not produce)")
    if model_columns is not None:
        absent = [c for c in model_columns if c not in set(raw_columns(serving_spec))]
        if absent:
            return False, f"serving spec does not produce model input columns {absent[:8]}"
    return True, f"model schema {model_version} compatible with serving {serving_spec.feature_schema_version}"


def signature_columns(model_uri: str) -> list[str] | None:
    """Input column names from a logged model's signature (None when it has none)."""
    from mlflow.models import get_model_info

    sig = get_model_info(model_uri).signature
    if sig is None or sig.inputs is None:
        return None
    names = sig.inputs.input_names()
    return [str(n) for n in names] if names else None


def model_spec(model_uri: str) -> Any | None:
    """The feature spec a model carries in its artifacts (``**/feature_spec.yaml``), or None."""
    from pathlib import Path

    import mlflow.artifacts

    from features import load_spec

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    found = sorted(local.rglob("feature_spec.yaml"))
    return load_spec(found[0]) if found else None


def gate_schema(cfg: RegistryConfig, mv: ModelVersion, model_uri: str, serving_spec: Any | None = None) -> GateResult:
    """Content rule (``features.check_compatibility`` on the spec the model carries) when the model ships its
    spec; always the semver rule on the version tag and the signature's columns against the serving spec."""
    from features import load_spec
    from features.compat import check_compatibility

    try:
        spec = serving_spec if serving_spec is not None else load_spec(cfg.serving_spec_path())
    except Exception as exc:
        return GateResult("schema", False, f"cannot load serving spec: {exc}")
    version = (mv.tags or {}).get("feature_schema_version", "")
    details: dict[str, Any] = {"model": version, "serving": spec.feature_schema_version,
                               "serving_spec_hash": spec.spec_hash}
    try:
        cols = signature_columns(model_uri)
        carried = model_spec(model_uri)
    except Exception as exc:
        return GateResult("schema", False, f"cannot read model signature/spec: {exc}"[:500], details)
    ok, why = schema_compatible(version, cols, spec)
    if carried is not None:
        compat = check_compatibility(carried, spec)
        details["content"] = compat.to_dict()
        if carried.feature_schema_version != version:
            ok, why = False, (f"tag feature_schema_version {version} != the spec the model carries "
                              f"({carried.feature_schema_version})")
        elif not compat.compatible:
            ok, why = False, "breaking: " + "; ".join(compat.reasons)[:400]
        elif ok:
            why += f" (content: {compat.kind})"
    else:
        details["content"] = "model carries no feature_spec.yaml: semver and signature rules only"
    return GateResult("schema", ok, why, details)


# ---- loads and predicts ---------------------------------------------------------------------------------

def gate_loads_and_predicts(model_uri: str, rows: int = 8) -> GateResult:
    import time

    import mlflow.pyfunc

    t0 = time.perf_counter()
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        return GateResult("loads_and_predicts", False, f"artifacts do not load: {type(exc).__name__}: {exc}"[:500])
    load_s = time.perf_counter() - t0
    example = model.input_example
    if example is None:
        return GateResult("loads_and_predicts", False, "no input example logged with the model",
                          {"load_s": round(load_s, 3)})
    example = example.head(rows) if hasattr(example, "head") else example
    try:
        out = model.predict(example)
    except Exception as exc:
        return GateResult("loads_and_predicts", False, f"predict failed on the input example: "
                          f"{type(exc).__name__}: {exc}"[:500], {"load_s": round(load_s, 3)})
    problems = check_output(out, n_rows=len(example))
    return GateResult("loads_and_predicts", not problems,
                      "; ".join(problems) or f"loaded in {load_s:.2f}s, predicted {len(example)} rows per contract",
                      {"load_s": round(load_s, 3), "rows": len(example)})


# ---- licences -------------------------------------------------------------------------------------------

def gate_licenses(mv: ModelVersion, root: Any = None) -> GateResult:
    """Refuse a version built on a model that is no longer allowed (or that records no licences at all)."""
    import json

    from common.paths import REPO_ROOT
    from compliance.check import still_allowed

    raw = (mv.tags or {}).get("model_licenses")
    if not raw:
        return GateResult("licenses", False, "the version carries no model_licenses tag (trained before licence "
                          "tagging, or not by `python -m training`): retrain it")
    try:
        licences = json.loads(raw)
        assert isinstance(licences, dict) and all(isinstance(v, str) for v in licences.values())
    except (ValueError, AssertionError):
        return GateResult("licenses", False, f"tag model_licenses is not a JSON object of strings: {raw[:200]!r}")
    try:
        problems = still_allowed(licences, root or REPO_ROOT)
    except Exception as exc:  # an unreadable inventory or policy must refuse, not crash the promotion
        return GateResult("licenses", False, f"cannot check licences: {exc}"[:500])
    return GateResult("licenses", not problems, "; ".join(problems) or f"{len(licences)} model licence(s) allowed",
                      {"model_licenses": licences, "sbom_sha256": (mv.tags or {}).get("sbom_sha256")})
