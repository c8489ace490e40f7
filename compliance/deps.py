"""Licences of the installed Python distributions, read by pip-licenses.

Why pip-licenses (5.x, MIT, maintained): it reads exactly the metadata the issue names, in a documented order:
the ``License-Expression`` field (PEP 639) first, then (``--from=mixed``) the Trove licence classifiers, then the
free-text ``License`` field; it sees every distribution of the interpreter it runs under (``--with-system`` keeps
pip/setuptools in). liccheck checks a requirements file rather than the environment and has had no release since
2023. We run it as ``python -m piplicenses`` of the environment being checked and only interpret its JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from common.errors import TrendflowError


@dataclass(frozen=True)
class InstalledLicence:
    name: str
    version: str
    declared: str  # as pip-licenses reports it ("UNKNOWN" when nothing is declared)


def installed_licences(python: str | None = None) -> list[InstalledLicence]:
    """Every distribution installed for ``python`` (default: this interpreter) with its declared licence."""
    cmd = [python or sys.executable, "-m", "piplicenses", "--from=mixed", "--format=json", "--with-system"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrendflowError(f"pip-licenses could not run: {exc}", code="license_tool_failed") from None
    if p.returncode != 0:
        raise TrendflowError(f"pip-licenses failed (exit {p.returncode}): {p.stderr.strip()[-400:]} "
                             "(is the `pip-licenses` package installed?)", code="license_tool_failed")
    return [InstalledLicence(d["Name"], d["Version"], d.get("License") or "UNKNOWN") for d in json.loads(p.stdout)]
