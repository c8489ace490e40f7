"""Every command line the README documents answers as documented.

Protects: each ``python -m <module> [<subcommand>]`` in the README's bash blocks exists (``--help`` exits 0 in a
fresh process) and accepts every ``--option`` the README shows with it. A renamed module, subcommand or flag fails
here, before a reader copies the line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true", "HYDRA_FULL_ERROR": "1"}
_CMD = re.compile(r"python -m ([a-z_.]+)(.*)")


def readme_commands(text: str) -> dict[tuple[str, str], set[str]]:
    """``(module, subcommand or "") -> options`` of every ``python -m`` line in the README's bash blocks."""
    out: dict[tuple[str, str], set[str]] = {}
    in_bash = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        m = _CMD.search(line) if in_bash else None
        if m is None:
            continue
        module, rest = m.group(1), m.group(2).split("#", 1)[0]
        words = rest.split()
        subs = words[0].split("|") if words and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", words[0]) else [""]
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
        for sub in subs:
            out.setdefault((module, sub), set()).update(options)
    return out


COMMANDS = readme_commands((REPO / "README.md").read_text())


def _help(module: str, sub: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", module] + ([sub] if sub else []) + ["--help"]
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, str], subprocess.CompletedProcess]:
    keys = sorted(COMMANDS)
    with ThreadPoolExecutor(2) as pool:  # two cores: imports of torch/mlflow dominate
        return dict(zip(keys, pool.map(lambda k: _help(*k), keys), strict=True))


def test_the_readme_documents_the_platforms_entry_points():
    modules = {m for m, _ in COMMANDS}
    assert {"extraction", "features", "training", "registry", "inference", "observability"} <= modules, modules
    assert ("extraction", "gc") in COMMANDS and ("extraction.model_repo", "sync") in COMMANDS


@pytest.mark.parametrize("key", sorted(COMMANDS), ids=lambda k: " ".join(filter(None, k)))
def test_each_documented_command_answers_help_with_its_documented_options(helps, key):
    p = helps[key]
    assert p.returncode == 0, f"python -m {' '.join(key)} --help: exit {p.returncode}\n{p.stderr[-2000:]}"
    text = p.stdout + p.stderr
    missing = sorted(o for o in COMMANDS[key] if o not in text)
    assert not missing, f"python -m {' '.join(key)} does not accept {missing} (README)"
