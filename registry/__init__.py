"""TrendFlow model registry: promotion gates, aliases and an audit log on top of the MLflow registry.

Importable API (the CLI ``python -m registry`` only composes these):
    load_config(path=None) -> RegistryConfig        conf/registry.yaml, validated
    connect(cfg) -> MlflowClient                     client on the configured store (no global state changed)
    list_versions(client, cfg, model_type=None)      versions with tags, metrics and aliases
    promote(client, cfg, model_type, version, reason, actor=None) -> PromotionResult
    rollback(client, cfg, model_type, reason, actor=None) -> PromotionResult
    stable_at(cfg, model_type, when) -> str | None   which version was stable at a moment (from the audit log)

Importing this package has no side effects: no folders, no tracking URI, no mlflow import.
"""

from registry.config import RegistryConfig, load_config

__all__ = ["RegistryConfig", "load_config"]
