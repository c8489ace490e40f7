"""``make licenses``: every offender of the licence rules, each naming the model folder, row or package.

Rules: a folder of ``model_repository/`` without a row in ``licenses.yaml``; a row for a folder that no longer
exists; a row whose licence is unknown or denied by ``conf/license_policy.yaml``, or that says no commercial use;
an installed distribution whose licence is unknown or denied; an exception past its expiry date; a stale
``MODEL_LICENSES.md``. Review-list licences pass and are listed (``notes``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from compliance.deps import InstalledLicence, installed_licences
from compliance.inventory import RENDERED, Inventory, load_inventory, render_markdown
from compliance.policy import Policy, evaluate, load_policy

POLICY = Path("conf") / "license_policy.yaml"


@dataclass(frozen=True)
class Offender:
    subject: str   # "model_repository/foo", "licenses.yaml: row foo", "package bar 1.0", ...
    code: str      # license_row_missing | license_unknown | license_denied | no_commercial_use | ...
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.code}: {self.message}"


@dataclass
class LicenceReport:
    offenders: list[Offender] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked_models: int = 0
    checked_packages: int = 0

    @property
    def ok(self) -> bool:
        return not self.offenders


def _model_folders(root: Path) -> list[str]:
    repo = root / "model_repository"
    return sorted(p.name for p in repo.iterdir() if p.is_dir() and (p / "config.pbtxt").exists()) \
        if repo.is_dir() else []


def check_models(root: Path, inv: Inventory, policy: Policy, today: dt.date) -> LicenceReport:
    rep = LicenceReport(checked_models=len(inv.models))
    folders = _model_folders(root)
    rows = {m.name for m in inv.rows("triton")}
    for f in folders:
        if f not in rows:
            rep.offenders.append(Offender(f"model_repository/{f}", "license_row_missing",
                                          "no row in licenses.yaml (name, source, license, commercial_use, evidence)"))
    for name in sorted(rows - set(folders)):
        rep.offenders.append(Offender(f"licenses.yaml: row {name}", "license_row_stale",
                                      "no such folder in model_repository/"))
    for m in inv.models:
        subject = f"licenses.yaml: row {m.name}"
        verdict = evaluate(m.license, policy)
        exc = policy.exception_for(model=m.name)
        if verdict.status in ("unknown", "deny") and exc is not None and exc.expires >= today:
            rep.notes.append(f"{subject}: {verdict.expression} accepted by exception until {exc.expires}")
        elif verdict.status in ("unknown", "deny"):
            rep.offenders.append(Offender(subject, f"license_{verdict.status}",
                                          f"{verdict.expression}: {verdict.reason}"))
        elif verdict.status == "review":
            rep.notes.append(f"{subject}: {verdict.expression}: {verdict.reason}")
        if not m.commercial_use:
            rep.offenders.append(Offender(subject, "no_commercial_use", "the row says commercial_use: false"))
    return rep


def check_packages(installed: list[InstalledLicence], policy: Policy, today: dt.date) -> LicenceReport:
    rep = LicenceReport(checked_packages=len(installed))
    ignore = {p.lower() for p in policy.ignore_packages}
    for d in installed:
        if d.name.lower() in ignore:
            continue
        subject = f"package {d.name} {d.version}"
        verdict = evaluate(d.declared, policy)
        exc = policy.exception_for(package=d.name)
        if exc is not None and exc.expires >= today:
            rep.notes.append(f"{subject}: {exc.license} by exception until {exc.expires} ({exc.reason})")
        elif verdict.status in ("unknown", "deny"):
            rep.offenders.append(Offender(subject, f"license_{verdict.status}",
                                          f"declares {d.declared!r} -> {verdict.expression}: {verdict.reason}"))
        elif verdict.status == "review":
            rep.notes.append(f"{subject}: {verdict.expression}: {verdict.reason}")
    return rep


def check_repo(root: str | Path, *, deps: bool = True, today: dt.date | None = None,
               installed: list[InstalledLicence] | None = None) -> LicenceReport:
    """Every licence offender of the checkout at ``root`` (and of this interpreter's environment if ``deps``)."""
    root = Path(root)
    today = today or dt.date.today()
    policy = load_policy(root / POLICY)
    inv = load_inventory(root)
    rep = check_models(root, inv, policy, today)
    for e in policy.exceptions:
        if e.expires < today:
            rep.offenders.append(Offender(f"{POLICY}: exception for {e.subject}", "license_exception_expired",
                                          f"expired on {e.expires} ({e.reason}); check again and renew or remove"))
    if deps:
        pk = check_packages(installed if installed is not None else installed_licences(), policy, today)
        rep.offenders += pk.offenders
        rep.notes += pk.notes
        rep.checked_packages = pk.checked_packages
    rendered = root / RENDERED
    if not rendered.exists() or rendered.read_text() != render_markdown(inv):
        rep.offenders.append(Offender(RENDERED, "license_markdown_stale",
                                      "differs from licenses.yaml: run `python -m compliance render`"))
    return rep


def model_licences(components: set[str], root: str | Path) -> dict[str, str]:
    """``{triton model: SPDX expression}`` of the inventory's models that feed any of ``components``."""
    inv = load_inventory(root)
    return {m.name: m.license for m in inv.rows("triton") if components & set(m.feeds)}


def still_allowed(licences: dict[str, str], root: str | Path, today: dt.date | None = None) -> list[str]:
    """Problems with models a version was trained on, under today's inventory and policy (empty = allowed)."""
    root = Path(root)
    today = today or dt.date.today()
    policy, inv = load_policy(root / POLICY), load_inventory(root)
    problems = []
    for name, tagged in sorted(licences.items()):
        row = inv.get(name)
        current = row.license if row is not None else None
        exc = policy.exception_for(model=name)
        excused = exc is not None and exc.expires >= today
        for expr, what in ((tagged, "licence tagged at training"), (current, "licence in licenses.yaml now")):
            if expr is None:
                problems.append(f"{name}: no longer in licenses.yaml")
                continue
            v = evaluate(expr, policy)
            if v.status in ("unknown", "deny") and not excused:
                problems.append(f"{name}: {what} {v.expression} is {v.status} ({v.reason})")
        if row is not None and not row.commercial_use:
            problems.append(f"{name}: licenses.yaml says commercial_use: false")
    return problems
