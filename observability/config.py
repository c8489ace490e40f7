"""Typed config of the observability store (``conf/observability.yaml``); a typo fails at start-up, naming the key.

The store URL is decided once, by :func:`store_url`: the config's ``url``, else ``$TRENDFLOW_OBSERVABILITY_URL``,
else the embedded ``sqlite:///<root>/.trendflow/observability.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from common.auth import AdminAuth
from common.errors import ConfigError
from common.paths import CONF_DIR, REPO_ROOT, STATE_DIR

DEFAULT_CONFIG = CONF_DIR / "observability.yaml"
URL_ENV = "TRENDFLOW_OBSERVABILITY_URL"
DEFAULT_URL = f"sqlite:///{STATE_DIR / 'observability.db'}"


class AdminConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = "TRENDFLOW_ADMIN_TOKEN"
    token_file: str | None = None

    def auth(self) -> AdminAuth:
        return AdminAuth(token_env=self.token_env, token_file=self.token_file)


class ObservabilityConfig(BaseModel):
    """``conf/observability.yaml``; relative paths are relative to the repository root."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    spool_dir: str = ".trendflow/observability/spool"
    window_s: float = 60.0
    artifacts: str = "data/artifacts"
    mlflow_uri: str | None = None
    audit_log: str = ".trendflow/registry/audit.jsonl"
    gc_log: str = ".trendflow/gc.jsonl"
    alerts_file: str = "conf/alerts.yaml"
    webhook_url: str | None = None
    admin: AdminConfig = AdminConfig()

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p

    def store_url(self) -> str:
        return store_url(self)


def load_config(path: Path | None = None) -> ObservabilityConfig:
    """Read and validate the config (default ``conf/observability.yaml``; missing file = defaults)."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    try:
        return ObservabilityConfig.model_validate(raw or {})
    except ValidationError as exc:
        bad = ", ".join(".".join(str(p) for p in e["loc"]) + f" ({e['msg']})" for e in exc.errors())
        raise ConfigError(f"{path}: invalid keys: {bad}", code="config_invalid") from None


def store_url(cfg: ObservabilityConfig | None = None) -> str:
    """The SQLAlchemy URL of the store (see the module docstring)."""
    if cfg is not None and cfg.url:
        return cfg.url
    return os.environ.get(URL_ENV) or DEFAULT_URL
