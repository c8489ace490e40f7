"""conf/alerts.yaml with Prometheus' own tool: `promtool check rules` and the unit tests in
tests/promtool/alerts_test.yaml (`promtool test rules`). promtool comes from Debian's `prometheus` package
(.ci/run installs it); without it these tests fail with that message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _promtool() -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is not installed: apt-get install prometheus (.ci/run does)"
    return tool


def test_promtool_check_rules() -> None:
    r = subprocess.run([_promtool(), "check", "rules", str(ROOT / "conf" / "alerts.yaml")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 13 rules found" in r.stdout + r.stderr


def test_promtool_unit_tests_of_the_rules() -> None:
    r = subprocess.run([_promtool(), "test", "rules", "alerts_test.yaml"], cwd=ROOT / "tests" / "promtool",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
