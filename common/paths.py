"""Repository paths. Computed, never created at import (folders are made by the code that writes them)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
STATE_DIR = REPO_ROOT / ".trendflow"  # servers' state, embedded stores, logs (git-ignored)
DATA_DIR = REPO_ROOT / "data"  # generated data (git-ignored)
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
