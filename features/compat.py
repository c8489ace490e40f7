"""Schema compatibility between two feature specs (a model's and the one serving it).

Two rules, the stricter wins:

* **content** — features or masks only added → ``additive``; a feature removed, renamed, or changed in
  meaning (source, aggregation, transform, dtype, on_empty, threshold, projection), a mask removed, the age
  buckets changed, or a target removed / re-transformed → ``breaking``; only descriptions, criticality or
  imputation policy changed → ``identical`` content (fitted imputers travel with models; a reason is noted);
* **semver** of ``feature_schema_version`` — another MAJOR → ``breaking``; another MINOR → ``additive``;
  PATCH only → ``identical``. A bump too small for the content change is reported as a reason.

A model trained on ``old`` can be served features built with ``new`` iff the result is not ``breaking``
(``new`` then produces every column the model consumes, with the same meaning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from features.spec import FeatureSpec

Kind = Literal["identical", "additive", "breaking"]
_ORDER = {"identical": 0, "additive": 1, "breaking": 2}


@dataclass(frozen=True)
class Compatibility:
    kind: Kind
    reasons: list[str] = field(default_factory=list)
    content_kind: Kind = "identical"
    semver_kind: Kind = "identical"

    @property
    def compatible(self) -> bool:
        """A model trained on the old spec can be served with the new one."""
        return self.kind != "breaking"

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "compatible": self.compatible, "content_kind": self.content_kind,
                "semver_kind": self.semver_kind, "reasons": list(self.reasons)}


def _worst(*kinds: Kind) -> Kind:
    return max(kinds, key=_ORDER.__getitem__)


def _content(old: FeatureSpec, new: FeatureSpec) -> tuple[Kind, list[str]]:
    reasons: list[str] = []
    kind: Kind = "identical"
    o = {f.name: f for f in old.features}
    n = {f.name: f for f in new.features}
    removed = [k for k in o if k not in n]
    added = [k for k in n if k not in o]
    renamed = {}
    for r in removed:
        for a in added:
            if a not in renamed.values() and o[r].semantic() == n[a].semantic():
                renamed[r] = a
                break
    for r, a in renamed.items():
        reasons.append(f"feature renamed {r!r} -> {a!r}")
    for r in removed:
        if r not in renamed:
            reasons.append(f"feature removed {r!r}")
    if removed:
        kind = "breaking"
    for a in added:
        if a not in renamed.values():
            reasons.append(f"feature added {a!r}")
            kind = _worst(kind, "additive")
    for name in o.keys() & n.keys():
        fo, fn = o[name], n[name]
        so, sn = fo.semantic(), fn.semantic()
        changed = sorted(k for k in so.keys() | sn.keys() if so.get(k) != sn.get(k))
        if changed:
            reasons.append(f"feature {name!r} changed meaning ({', '.join(changed)})")
            kind = "breaking"
        if fo.mask and not fn.mask:
            reasons.append(f"mask of {name!r} removed")
            kind = "breaking"
        elif fn.mask and not fo.mask:
            reasons.append(f"mask of {name!r} added")
            kind = _worst(kind, "additive")
        if fo.critical != fn.critical:
            reasons.append(f"feature {name!r} critical {fo.critical} -> {fn.critical}")
        if old.imputation_for(fo) != new.imputation_for(fn):
            reasons.append(f"feature {name!r} imputation policy changed (fitted imputers travel with models)")
    uses_buckets = any(f.transform == "age_bucket" for f in old.features)
    if old.age_buckets.edges_hours != new.age_buckets.edges_hours:
        reasons.append(f"age bucket edges changed {list(old.age_buckets.edges_hours)} -> "
                       f"{list(new.age_buckets.edges_hours)}")
        kind = "breaking" if uses_buckets else kind
    elif old.age_buckets.labels != new.age_buckets.labels:
        reasons.append("age bucket labels changed (split column only)")
        kind = _worst(kind, "additive")
    if old.targets.transform != new.targets.transform:
        reasons.append(f"targets transform {old.targets.transform} -> {new.targets.transform}")
        kind = "breaking"
    ot = {t.name: t for t in old.targets.columns}
    nt = {t.name: t for t in new.targets.columns}
    for name in ot:
        if name not in nt:
            reasons.append(f"target removed {name!r}")
            kind = "breaking"
        elif ot[name].model_dump(exclude={"optional"}) != nt[name].model_dump(exclude={"optional"}):
            reasons.append(f"target {name!r} changed meaning")
            kind = "breaking"
    for name in nt:
        if name not in ot:
            reasons.append(f"target added {name!r}")
            kind = _worst(kind, "additive")
    return kind, reasons


def _semver(old: FeatureSpec, new: FeatureSpec) -> Kind:
    (oM, om, _), (nM, nm, _) = old.version_tuple, new.version_tuple
    if oM != nM:
        return "breaking"
    if om != nm:
        return "additive"
    return "identical"


def check_compatibility(old: FeatureSpec, new: FeatureSpec) -> Compatibility:
    """Can a model trained on ``old`` be served features built with ``new``? See the module docstring."""
    content_kind, reasons = _content(old, new)
    semver_kind = _semver(old, new)
    ov, nv = old.feature_schema_version, new.feature_schema_version
    if new.version_tuple < old.version_tuple:
        reasons.append(f"version went backwards {ov} -> {nv}")
    if semver_kind != "identical" or ov != nv:
        reasons.append(f"version {ov} -> {nv}: semver says {semver_kind}")
    if _ORDER[content_kind] > _ORDER[semver_kind]:
        need = "a MAJOR" if content_kind == "breaking" else "a MINOR (or MAJOR)"
        reasons.append(f"the content change is {content_kind} but the version bump {ov} -> {nv} is not {need} bump")
    return Compatibility(kind=_worst(content_kind, semver_kind), reasons=reasons, content_kind=content_kind,
                         semver_kind=semver_kind)
