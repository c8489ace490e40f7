"""Session-wide pytest fixtures.

``triton_server``: one real Triton for the whole session, serving ``model_repository/`` (started by
:func:`extraction.triton_server.start`, stopped at the end). Tests talk to it via ``.grpc_url`` / ``.http_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from extraction import triton_server as triton_lifecycle

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton_lifecycle.ServerState]:
    """A real Triton serving every model of ``model_repository/``, shared by the whole session."""
    state_dir = tmp_path_factory.mktemp("triton")
    try:
        state = triton_lifecycle.start(model_repository=REPO_ROOT / "model_repository", state_dir=state_dir)
        yield state
    finally:
        triton_lifecycle.stop(state_dir)


# ---- registry / inference ---------------------------------------------------------------------------------

class RegistryStore:
    """A real MLflow store (SQLite + artifact folder) in a temp dir, its registry config and client."""

    def __init__(self, root: Path) -> None:
        import yaml

        from features import load_spec, raw_columns
        from registry.config import load_config
        from registry.store import connect

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        raw = yaml.safe_load((REPO_ROOT / "conf" / "registry.yaml").read_text())
        raw.update(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"),
                   audit_log=str(root / "audit.jsonl"))
        self.config_path = root / "registry.yaml"
        self.config_path.write_text(yaml.safe_dump(raw))
        self.cfg = load_config(self.config_path)
        self.client = connect(self.cfg)
        self.spec = load_spec()
        self.columns = raw_columns(self.spec)

    def log(self, model_type: str, **kw):
        """Log + register a contract-conformant reference pyfunc (``testsupport.registry``); returns LoggedReference."""
        from testsupport.registry import log_reference_model

        kw.setdefault("columns", self.columns)
        kw.setdefault("feature_schema_version", self.spec.feature_schema_version)  # trained on the store's spec
        return log_reference_model(self.client, self.cfg, model_type, **kw)

    def reconnect(self) -> None:
        """Point MLflow's globals at this store again (another store may have been connected since)."""
        from registry.store import connect

        self.client = connect(self.cfg)


@pytest.fixture
def registry_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryStore:
    """A fresh, empty MLflow store for one test (never the repository's .trendflow store)."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return RegistryStore(tmp_path / "mlflow")
