"""Reading a YAML config file into a mapping, with one error naming the file (``config_invalid``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import ConfigError


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; ``config_invalid`` naming the file when it is not UTF-8 YAML of a mapping."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_bytes().decode("utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())  # YAML errors span lines: one line for `error: code: message`
        raise ConfigError(f"{path}: not a readable YAML file ({type(exc).__name__}: {why})"[:600]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config is a YAML mapping of keys")
    return raw
