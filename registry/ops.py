"""Registry operations composed by the CLI, the demo and the tests: list, promote, rollback, history.

Aliases promote, numbers serve: promotion moves ``stable`` to the candidate and ``previous`` to the old stable;
``rollback`` moves ``stable`` back to ``previous``. Every move (and every refusal) is written as model-version
tags (``registry.*``) and appended to the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from common.errors import TrendflowError
from registry import audit
from registry.config import RegistryConfig
from registry.gates import (
    GateResult,
    gate_coverage,
    gate_licenses,
    gate_loads_and_predicts,
    gate_metadata,
    gate_metrics,
    gate_schema,
)
from registry.store import version_run_id

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

TAG_VALUE_LIMIT = 4900  # MLflow caps model-version tag values at 5000 characters


class RegistryError(TrendflowError):
    code = "registry_error"


@dataclass
class PromotionResult:
    action: str                      # promote | rollback
    model_type: str
    name: str
    version: str | None
    ok: bool
    gates: list[GateResult] = field(default_factory=list)
    aliases_before: dict[str, str | None] = field(default_factory=dict)
    aliases_after: dict[str, str | None] = field(default_factory=dict)
    audit_entry: dict[str, Any] | None = None

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "model_type": self.model_type, "name": self.name, "version": self.version,
                "ok": self.ok, "gates": [g.to_dict() for g in self.gates], "aliases_before": self.aliases_before,
                "aliases_after": self.aliases_after}


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _aliases(client: MlflowClient, cfg: RegistryConfig, name: str) -> dict[str, str | None]:
    out = {}
    for a in (cfg.aliases.stable, cfg.aliases.previous):
        mv = alias_version(client, name, a)
        out[a] = str(mv.version) if mv else None
    return out


def _get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{name} version {version} not found ({exc.error_code})",
                            code="model_version_not_found") from None


def _tag(client: MlflowClient, name: str, version: str, key: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    client.set_model_version_tag(name, version, key, text[:TAG_VALUE_LIMIT])


GATES_HEADER = "### Promotion gates"  # the block training's description leaves to the registry


def _describe_gates(client: MlflowClient, mv: ModelVersion, action: str, gates: list[GateResult], at: str,
                    reason: str) -> None:
    """Replace the gates block of the version's description (the MLflow UI's version page) by this decision's."""
    lines = [GATES_HEADER, "", f"{action} at {at}: {reason}", "", "| gate | result | detail |", "|---|---|---|"]
    lines += [f"| {g.name} | {'pass' if g.passed else 'FAIL'} | {g.reason.replace('|', '/')[:300]} |" for g in gates]
    base = (client.get_model_version(mv.name, mv.version).description or "").split(GATES_HEADER)[0].rstrip()
    block = "\n".join(lines)
    client.update_model_version(mv.name, mv.version, description=f"{base}\n\n{block}" if base else block)


def _compact(gates: list[GateResult]) -> list[dict[str, Any]]:
    return [{"name": g.name, "passed": g.passed, "reason": g.reason} for g in gates]


# ---- listing --------------------------------------------------------------------------------------------

def list_versions(client: MlflowClient, cfg: RegistryConfig, model_type: str | None = None,
                  metrics: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per model type: its versions (newest first) with tags, selected run metrics and aliases."""
    from mlflow.exceptions import MlflowException

    types = [model_type] if model_type else list(cfg.models)
    wanted = metrics if metrics is not None else [*cfg.gates.metrics, *cfg.gates.coverage]
    out: dict[str, list[dict[str, Any]]] = {}
    for t in types:
        name = cfg.name_of(t)
        try:
            rm = client.get_registered_model(name)
        except MlflowException:
            out[t] = []
            continue
        by_version: dict[str, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            by_version.setdefault(str(v), []).append(alias)
        rows = []
        for mv in client.search_model_versions(f"name = '{name}'"):
            run_id = version_run_id(mv)
            m: dict[str, float] = {}
            if run_id:
                try:
                    run_metrics = client.get_run(run_id).data.metrics
                    m = {k: run_metrics[k] for k in wanted if k in run_metrics}
                except MlflowException:
                    pass
            rows.append({"name": name, "version": str(mv.version),
                         "aliases": sorted(by_version.get(str(mv.version), [])),
                         "run_id": run_id, "created": mv.creation_timestamp, "status": mv.status,
                         "tags": dict(mv.tags or {}), "metrics": m})
        out[t] = sorted(rows, key=lambda r: int(r["version"]), reverse=True)
    return out


# ---- promotion ------------------------------------------------------------------------------------------

def run_gates(client: MlflowClient, cfg: RegistryConfig, model_type: str, mv: ModelVersion,
              stable: ModelVersion | None, serving_spec: Any | None = None) -> list[GateResult]:
    uri = f"models:/{mv.name}/{mv.version}"
    return [gate_metadata(mv, model_type), gate_metrics(client, cfg, mv, stable), gate_coverage(client, cfg, mv),
            gate_schema(cfg, mv, uri, serving_spec), gate_loads_and_predicts(uri, cfg.gates.sanity_rows),
            gate_licenses(mv)]


def promote(client: MlflowClient, cfg: RegistryConfig, model_type: str, version: str | int, reason: str,
            actor: str | None = None, serving_spec: Any | None = None) -> PromotionResult:
    """Run every gate on ``version``; if all pass move ``stable`` to it and ``previous`` to the old stable.

    A refusal changes no alias; it is recorded (tag ``registry.last_refusal`` + audit entry) like a promotion.
    """
    if not reason or not reason.strip():
        raise RegistryError("a promotion needs a --reason", code="reason_required")
    name = cfg.name_of(model_type)
    mv = _get_version(client, name, version)
    stable_alias, prev_alias = cfg.aliases.stable, cfg.aliases.previous
    stable = alias_version(client, name, stable_alias)
    before = _aliases(client, cfg, name)
    if stable is not None and str(stable.version) == str(mv.version):
        raise RegistryError(f"{name} v{mv.version} is already {stable_alias}", code="already_stable")
    gates = run_gates(client, cfg, model_type, mv, stable, serving_spec)
    who = audit.actor_name(actor)
    ok = all(g.passed for g in gates)
    after = dict(before)
    if ok:
        if stable is not None:
            client.set_registered_model_alias(name, prev_alias, stable.version)
            after[prev_alias] = str(stable.version)
        client.set_registered_model_alias(name, stable_alias, mv.version)
        after[stable_alias] = str(mv.version)
    entry = audit.append(cfg.audit_path(), {
        "action": "promote" if ok else "promote_refused", "model_type": model_type, "name": name,
        "version": str(mv.version), "semver": (mv.tags or {}).get("semver"), "run_id": version_run_id(mv),
        "from_version": str(stable.version) if stable else None, "aliases": after if ok else {}, "actor": who,
        "reason": reason, "gates": _compact(gates)})
    record = {"at": entry["ts"], "by": who, "reason": reason, "gates": _compact(gates),
              "from_version": str(stable.version) if stable else None}
    if ok:
        _tag(client, name, mv.version, "registry.promoted_at", entry["ts"])
        _tag(client, name, mv.version, "registry.promoted_by", who)
        _tag(client, name, mv.version, "registry.promotion_reason", reason)
        _tag(client, name, mv.version, "registry.promotion", record)
        if stable is not None:
            _tag(client, name, stable.version, "registry.demoted_at", entry["ts"])
            _tag(client, name, stable.version, "registry.superseded_by", str(mv.version))
    else:
        _tag(client, name, mv.version, "registry.last_refusal", record)
    _describe_gates(client, mv, "promoted" if ok else "promotion refused", gates, entry["ts"], reason)
    return PromotionResult("promote", model_type, name, str(mv.version), ok, gates, before, after, entry)


def rollback(client: MlflowClient, cfg: RegistryConfig, model_type: str, reason: str, actor: str | None = None,
             check_loads: bool = True) -> PromotionResult:
    """Point ``stable`` at ``previous`` again (and drop ``previous``); the rolled-back version is tagged.

    Only the ``loads_and_predicts`` gate runs (the previous version passed the others when it was promoted);
    ``check_loads=False`` skips it for emergencies.
    """
    if not reason or not reason.strip():
        raise RegistryError("a rollback needs a --reason", code="reason_required")
    name = cfg.name_of(model_type)
    stable_alias, prev_alias = cfg.aliases.stable, cfg.aliases.previous
    prev = alias_version(client, name, prev_alias)
    if prev is None:
        raise RegistryError(f"{name} has no {prev_alias!r} alias to roll back to", code="nothing_to_rollback")
    stable = alias_version(client, name, stable_alias)
    before = _aliases(client, cfg, name)
    gates = [gate_loads_and_predicts(f"models:/{name}/{prev.version}", cfg.gates.sanity_rows)] if check_loads else []
    ok = all(g.passed for g in gates)
    who = audit.actor_name(actor)
    after = dict(before)
    if ok:
        client.set_registered_model_alias(name, stable_alias, prev.version)
        client.delete_registered_model_alias(name, prev_alias)
        after = {stable_alias: str(prev.version), prev_alias: None}
    entry = audit.append(cfg.audit_path(), {
        "action": "rollback" if ok else "rollback_refused", "model_type": model_type, "name": name,
        "version": str(prev.version), "from_version": str(stable.version) if stable else None,
        "aliases": after if ok else {}, "actor": who, "reason": reason, "gates": _compact(gates)})
    if ok:
        _tag(client, name, prev.version, "registry.restored_at", entry["ts"])
        if stable is not None:
            _tag(client, name, stable.version, "registry.rolled_back", {"at": entry["ts"], "by": who,
                                                                        "reason": reason, "to": str(prev.version)})
    return PromotionResult("rollback", model_type, name, str(prev.version), ok, gates, before, after, entry)


# ---- history --------------------------------------------------------------------------------------------

def reconcile(client: MlflowClient, cfg: RegistryConfig) -> list[dict[str, Any]]:
    """Record alias moves made outside this tool (e.g. in the MLflow UI) as ``observed`` audit entries.

    The audit log's last known value of each alias is compared with the registry's; a difference is appended
    with the time it was observed (the true time of a manual move is unknown, only bounded by the two).
    """
    entries, added = audit.read(cfg.audit_path()), []
    now = audit.now_iso()
    for t, name in cfg.models.items():
        current = _aliases(client, cfg, name)
        known = {a: audit.alias_at(entries, name, a, now) for a in current}
        changed = {a: v for a, v in current.items() if v != known[a]}
        if changed:
            added.append(audit.append(cfg.audit_path(), {
                "action": "observed", "model_type": t, "name": name, "version": changed.get(cfg.aliases.stable),
                "aliases": changed, "actor": "observed", "reason": "alias moved outside `python -m registry` "
                "(e.g. the MLflow UI); time of the move is between the previous entry and this one", "gates": []}))
    return added


def stable_at(cfg: RegistryConfig, model_type: str, when: str | datetime) -> str | None:
    """Which version of ``model_type`` was ``stable`` at ``when`` (ISO-8601; from the audit log)."""
    if isinstance(when, str):
        from common.clock import parse_iso

        try:
            parse_iso(when)
        except ValueError:
            raise TrendflowError(f"{when!r} is not an ISO-8601 time (e.g. 2026-12-01T12:00:00Z)",
                                 code="invalid_time") from None
    return audit.alias_at(audit.read(cfg.audit_path()), cfg.name_of(model_type), cfg.aliases.stable, when)


def history(cfg: RegistryConfig, model_type: str | None = None) -> list[dict[str, Any]]:
    """Audit entries, oldest first, optionally for one model type."""
    entries = audit.read(cfg.audit_path())
    return [e for e in entries if model_type is None or e.get("model_type") == model_type]
