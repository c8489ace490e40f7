"""The licence policy (``conf/license_policy.yaml``) and the verdict on one SPDX licence expression.

Expressions are parsed with ``license-expression`` (the maintained SPDX expression parser, also used by the
CycloneDX tools): ``A AND B`` is as good as its worst part, ``A OR B`` as its best (we may pick either licence),
``A WITH exc`` is looked up whole first, then as ``A``. Free-text licence names that packages declare ("MIT License",
"Apache Software License") are mapped to SPDX ids by the policy's ``aliases`` before parsing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError

Status = Literal["allow", "review", "unknown", "deny"]
_RANK: dict[str, int] = {"allow": 0, "review": 1, "unknown": 2, "deny": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyException(_Strict):
    """Accept one package's or model's licence (verified by hand) until ``expires``."""

    package: str | None = None
    model: str | None = None
    license: str = Field(description="the licence found by hand (SPDX), recorded for the audit")
    reason: str = Field(min_length=10)
    expires: dt.date

    @model_validator(mode="after")
    def _one_subject(self) -> PolicyException:
        if (self.package is None) == (self.model is None):
            raise ValueError("an exception names exactly one of `package` or `model`")
        return self

    @property
    def subject(self) -> str:
        return f"package {self.package}" if self.package else f"model {self.model}"


class Policy(_Strict):
    allow: list[str]
    review: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    exceptions: list[PolicyException] = Field(default_factory=list)
    ignore_packages: list[str] = Field(default_factory=list, description="our own distributions")

    def exception_for(self, *, package: str | None = None, model: str | None = None) -> PolicyException | None:
        key = (package or "").lower()
        return next((e for e in self.exceptions if (package and (e.package or "").lower() == key)
                     or (model and e.model == model)), None)


@dataclass(frozen=True)
class Verdict:
    status: Status
    expression: str          # the normalised SPDX expression judged
    reason: str


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: licence policy not found", code="license_policy_missing")
    try:
        return Policy.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def normalise(raw: str, policy: Policy) -> str:
    """A declared licence string -> an SPDX expression (aliases applied; ``a; b`` classifiers -> ``a AND b``)."""
    parts = [p.strip() for p in (raw or "").split(";") if p.strip()]
    mapped = [policy.aliases.get(p, p) for p in parts]
    return " AND ".join(f"({m})" if (" OR " in m and len(mapped) > 1) else m for m in mapped)


def _symbol_status(key: str, policy: Policy) -> Status:
    if key in policy.deny:
        return "deny"
    if key in policy.allow:
        return "allow"
    if key in policy.review:
        return "review"
    return "unknown"


def evaluate(raw: str, policy: Policy) -> Verdict:
    """The policy's verdict on ``raw`` (a declared licence string or SPDX expression)."""
    from license_expression import ExpressionError, LicenseSymbol, LicenseWithExceptionSymbol, Licensing

    expr = normalise(raw, policy)
    if not expr or expr.upper() in ("UNKNOWN", "NONE"):
        return Verdict("unknown", expr or "UNKNOWN", "no licence declared")
    try:
        parsed = Licensing().parse(expr)
    except ExpressionError as exc:
        return Verdict("unknown", expr, f"not an SPDX expression ({exc})")

    def judge(node: object) -> Status:
        if isinstance(node, LicenseWithExceptionSymbol):
            whole = f"{node.license_symbol.key} WITH {node.exception_symbol.key}"
            status = _symbol_status(whole, policy)
            return status if status != "unknown" else _symbol_status(node.license_symbol.key, policy)
        if isinstance(node, LicenseSymbol):
            return _symbol_status(node.key, policy)
        ranks = [judge(a) for a in node.args]  # type: ignore[attr-defined]
        pick = min if type(node).__name__ == "OR" else max
        return pick(ranks, key=_RANK.__getitem__)

    status = judge(parsed)
    why = {"allow": "allowed", "review": "allowed, on the review list (legal reads it before a release)",
           "unknown": "not on any list of the policy", "deny": "denied by the policy"}[status]
    return Verdict(status, str(parsed), why)
