"""A CycloneDX (JSON, spec 1.6) SBOM of the installed Python environment, made by ``cyclonedx-py environment``.

The SBOM lists every installed distribution (name, version, purl, declared licences). It is keyed by an
environment fingerprint (the sorted ``name==version`` of every distribution and the Python version), so a training
run logs the SBOM of exactly the environment it ran in while reusing one already made for that environment
(``cyclonedx-py`` takes ~3 s, ~70 s with its schema validation, which ``make sbom`` runs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common.errors import TrendflowError
from common.fsio import atomic_path
from common.hashing import file_hash, sha256_hex
from common.paths import REPO_ROOT, STATE_DIR

SBOM_DIR = STATE_DIR / "sbom"


@dataclass(frozen=True)
class Sbom:
    path: Path
    sha256: str          # full hex digest of the file
    fingerprint: str     # of the environment it describes
    components: int


def environment_fingerprint() -> str:
    from importlib.metadata import distributions

    pins = sorted({f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in distributions()})
    return sha256_hex("\n".join([sys.version, *pins]), 16)


def _describe(path: Path, fingerprint: str) -> Sbom:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrendflowError(f"{path}: not a readable SBOM ({exc})", code="sbom_invalid") from None
    if doc.get("bomFormat") != "CycloneDX" or not isinstance(doc.get("components"), list):
        raise TrendflowError(f"{path}: not a CycloneDX document", code="sbom_invalid")
    return Sbom(path, file_hash(path, n=64), fingerprint, len(doc["components"]))


def write_sbom(out: str | Path | None = None, *, validate: bool = False, reuse: bool = True) -> Sbom:
    """The SBOM of this interpreter's environment at ``out`` (default ``.trendflow/sbom/sbom-<fingerprint>.cdx.json``,
    reused when it already exists); written atomically."""
    fp = environment_fingerprint()
    cached = SBOM_DIR / f"sbom-{fp}.cdx.json"
    if reuse and cached.exists() and not validate:
        if out is None:
            return _describe(cached, fp)
        with atomic_path(out) as tmp:
            shutil.copyfile(cached, tmp)
        return _describe(Path(out), fp)
    target = Path(out) if out is not None else cached
    with atomic_path(target) as tmp:
        cmd = [sys.executable, "-m", "cyclonedx_py", "environment", "--pyproject", str(REPO_ROOT / "pyproject.toml"),
               "--output-reproducible", "--of", "JSON", "-o", str(tmp),
               "--validate" if validate else "--no-validate", sys.executable]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrendflowError(f"cyclonedx-py could not run: {exc}", code="sbom_tool_failed") from None
        if p.returncode != 0:
            raise TrendflowError(f"cyclonedx-py failed (exit {p.returncode}): {p.stderr.strip()[-400:]} "
                                 "(is the `cyclonedx-bom` package installed?)", code="sbom_tool_failed")
    sbom = _describe(target, fp)
    if target != cached:
        with atomic_path(cached) as tmp:
            shutil.copyfile(target, tmp)
    return sbom


def log_with_run(mlflow: object, sbom: Sbom | None = None) -> dict[str, str]:
    """Log the SBOM as an artifact of the active MLflow run (``sbom/``); returns the tags that point at it."""
    sbom = sbom or write_sbom()
    mlflow.log_artifact(str(sbom.path), "sbom")  # type: ignore[attr-defined]
    return {"sbom_artifact": f"sbom/{sbom.path.name}", "sbom_sha256": sbom.sha256,
            "sbom_environment": sbom.fingerprint, "sbom_format": "CycloneDX-1.6-JSON"}
