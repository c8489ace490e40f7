"""Pins from the model registry: the extraction runs registered model versions were trained on.

Training logs ``dataset/extraction_runs.json`` (``training.data.EXTRACTION_RUNS_ARTIFACT``: every
``[platform_id, video_id, run_id]`` of the table's rows) with each run. Every registered version that is not
archived pins its training run's list; a version holding a stable/previous alias pins it even when archived. A
version that records no list (trained before the record existed, or on a synthetic table) is reported, since its
data cannot be pinned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from retention.policy import RetentionPolicy


@dataclass
class Pins:
    """``(platform_id, video_id, run_id) -> why`` plus the versions whose training data is not recorded."""

    runs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)
    versions: int = 0


def store_exists(uri: str) -> bool:
    """A SQLite store whose file is absent has no registered models (and must not be created by a GC)."""
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def registry_pins(policy: RetentionPolicy, registry_config: Path | None = None,
                  tracking_uri: str | None = None) -> Pins:
    """Read the pins from the registry the registry config names (nothing when its store does not exist)."""
    from registry.config import load_config

    cfg = load_config(registry_config, tracking_uri=tracking_uri)
    if not store_exists(cfg.resolved_tracking_uri()):
        return Pins()
    import mlflow

    from registry.store import connect, version_run_id
    from training.data import EXTRACTION_RUNS_ARTIFACT

    client = connect(cfg)
    pins = Pins()
    keep_aliases = set(policy.mlflow.keep_aliases)
    for name in cfg.models.values():
        try:
            aliases = client.get_registered_model(name).aliases or {}
        except mlflow.exceptions.MlflowException:
            continue  # not registered yet
        by_version: dict[str, list[str]] = {}
        for alias, ver in aliases.items():
            by_version.setdefault(str(ver), []).append(alias)
        for mv in client.search_model_versions(f"name='{name}'"):
            held = sorted(set(by_version.get(str(mv.version), [])) & keep_aliases)
            archived = (mv.tags or {}).get(policy.mlflow.archive_tag) == "true"
            if archived and not held and not policy.artifacts.pin_archived_versions:
                continue
            pins.versions += 1
            run_id = version_run_id(mv)
            why = f"training data of {name} v{mv.version}" + (f" (alias {', '.join(held)})" if held else "")
            try:
                rows = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{EXTRACTION_RUNS_ARTIFACT}"))
            except Exception:  # any failure to read the record means: not recorded
                pins.unrecorded.append(f"{name} v{mv.version}")
                continue
            for p, v, r in rows:
                pins.runs.setdefault((str(p), str(v), str(r)), why)
    return pins
