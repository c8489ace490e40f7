"""The model licence inventory (``licenses.yaml``): one row per Triton model and per trained model family.

``MODEL_LICENSES.md`` is rendered from it (:func:`render_markdown`, ``python -m compliance render``) and checked
to be current by ``make licenses``; nobody edits the markdown by hand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError

INVENTORY = "licenses.yaml"
RENDERED = "MODEL_LICENSES.md"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Evidence(_Strict):
    where: str = Field(min_length=3, description="file path or URL that states the licence")
    checked: dt.date


class ModelRow(_Strict):
    name: str
    kind: Literal["triton", "trained"]
    what: str
    source: str
    license: str = Field(description="SPDX expression, or LicenseRef-... with license_url")
    license_url: str | None = None
    commercial_use: bool
    evidence: Evidence
    feeds: list[str] = Field(default_factory=list, description="extractor components it produces (triton rows)")
    notes: str = ""

    @model_validator(mode="after")
    def _ref_has_link(self) -> ModelRow:
        if "LicenseRef-" in self.license and not self.license_url:
            raise ValueError(f"{self.name}: a LicenseRef licence needs license_url (where its text is)")
        return self


class Inventory(_Strict):
    title: str = "Model licenses"
    intro: str
    models: list[ModelRow]
    appendix: str = ""

    @model_validator(mode="after")
    def _unique(self) -> Inventory:
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rows named more than once: {dup}")
        return self

    def rows(self, kind: str) -> list[ModelRow]:
        return [m for m in self.models if m.kind == kind]

    def get(self, name: str) -> ModelRow | None:
        return next((m for m in self.models if m.name == name), None)


def load_inventory(root: str | Path) -> Inventory:
    path = Path(root) / INVENTORY
    if not path.exists():
        raise ConfigError(f"{path}: licence inventory not found", code="license_inventory_missing")
    try:
        return Inventory.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}", code="license_inventory_invalid") from None


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _licence_cell(m: ModelRow) -> str:
    return f"[`{m.license}`]({m.license_url})" if m.license_url else f"`{m.license}`"


def render_markdown(inv: Inventory) -> str:
    """``MODEL_LICENSES.md``: deterministic (same inventory -> same bytes)."""
    out = [f"# {inv.title}", "",
           "<!-- Generated from licenses.yaml by `python -m compliance render`; edit the YAML. -->", "",
           inv.intro.strip(), ""]
    head = "| {} | What it is | Source | License (SPDX) | Commercial use | Evidence (checked) |"
    for kind, label in (("triton", "Triton model"), ("trained", "Trained model family")):
        out += [f"## {label}s", "", head.format(label), "| --- | --- | --- | --- | --- | --- |"]
        for m in inv.rows(kind):
            use = "yes" if m.commercial_use else "**no**"
            if m.notes:
                use += f" ({_cell(m.notes)})"
            out.append(f"| `{m.name}` | {_cell(m.what)} | {_cell(m.source)} | {_licence_cell(m)} | {use} | "
                       f"{_cell(m.evidence.where)} ({m.evidence.checked.isoformat()}) |")
        out.append("")
    if inv.appendix.strip():
        out += [inv.appendix.strip(), ""]
    return "\n".join(out)
