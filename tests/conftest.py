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
