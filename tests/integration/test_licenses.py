"""`make licenses` (``python -m compliance licenses``, what the Makefile target runs) on the real checkout and on
temporary copies of it with one thing broken each: a model folder without a row, a denied licence, an expired
exception, an unknown licence, a stale MODEL_LICENSES.md. Plus the dependency rules on real pip-licenses output."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compliance.check import check_packages, check_repo, still_allowed
from compliance.deps import InstalledLicence, installed_licences
from compliance.policy import evaluate, load_policy

ROOT = Path(__file__).resolve().parents[2]


def _cli(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compliance", "licenses", "--root", str(root), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The licence-relevant part of the checkout: inventory, rendered markdown, policy, model folders."""
    dst = tmp_path / "repo"
    (dst / "conf").mkdir(parents=True)
    for name in ("licenses.yaml", "MODEL_LICENSES.md"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copy(ROOT / "conf" / "license_policy.yaml", dst / "conf" / "license_policy.yaml")
    shutil.copytree(ROOT / "model_repository", dst / "model_repository", ignore=shutil.ignore_patterns("*.npz"))
    return dst


def _edit_yaml(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _render(root: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "compliance", "render", "--root", str(root)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_the_real_checkout_passes_models_and_installed_packages() -> None:
    p = _cli(ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert ", 0 offender(s)" in p.stdout and "installed packages" in p.stdout
    assert int(p.stdout.split(" model rows, ")[1].split(" installed")[0]) > 100  # really read the environment


def test_a_model_folder_without_a_row_fails_naming_it(copy: Path) -> None:
    (copy / "model_repository" / "new_detector" / "1").mkdir(parents=True)
    (copy / "model_repository" / "new_detector" / "config.pbtxt").write_text('name: "new_detector"\n')
    p = _cli(copy, "--no-deps")
    assert p.returncode == 1
    assert "offender: model_repository/new_detector: license_row_missing" in p.stderr, p.stderr
    assert p.stderr.count("offender:") == 1


def test_a_denied_licence_fails_naming_the_row(copy: Path) -> None:
    def deny(inv: dict) -> None:
        next(m for m in inv["models"] if m["name"] == "text_embed")["license"] = "Apache-2.0 AND GPL-3.0-only"

    _edit_yaml(copy / "licenses.yaml", deny)
    _render(copy)
    p = _cli(copy, "--no-deps")
    assert p.returncode == 1
    assert "offender: licenses.yaml: row text_embed: license_deny: Apache-2.0 AND GPL-3.0-only" in p.stderr, p.stderr


def test_an_unknown_licence_and_no_commercial_use_fail(copy: Path) -> None:
    def edit(inv: dict) -> None:
        row = next(m for m in inv["models"] if m["name"] == "optical_flow")
        row.update(license="LicenseRef-Mystery", license_url="https://example.invalid/licence", commercial_use=False)

    _edit_yaml(copy / "licenses.yaml", edit)
    _render(copy)
    p = _cli(copy, "--no-deps")
    assert p.returncode == 1
    assert "row optical_flow: license_unknown: LicenseRef-Mystery" in p.stderr
    assert "row optical_flow: no_commercial_use" in p.stderr


def test_an_expired_exception_fails(copy: Path) -> None:
    def expire(pol: dict) -> None:
        pol["exceptions"].append({"package": "oldthing", "license": "MIT", "reason": "verified by hand in 2019",
                                  "expires": dt.date(2020, 1, 31)})

    _edit_yaml(copy / "conf" / "license_policy.yaml", expire)
    p = _cli(copy, "--no-deps")
    assert p.returncode == 1
    assert ("offender: conf/license_policy.yaml: exception for package oldthing: license_exception_expired: "
            "expired on 2020-01-31") in p.stderr, p.stderr


def test_a_hand_edited_markdown_is_stale(copy: Path) -> None:
    md = copy / "MODEL_LICENSES.md"
    md.write_text(md.read_text().replace("Apache-2.0", "MIT", 1))
    p = _cli(copy, "--no-deps")
    assert p.returncode == 1 and "MODEL_LICENSES.md: license_markdown_stale" in p.stderr


def test_dependency_rules_on_the_real_environment_plus_bad_rows() -> None:
    policy = load_policy(ROOT / "conf" / "license_policy.yaml")
    real = installed_licences()
    assert {d.name.lower() for d in real} >= {"numpy", "mlflow", "fastapi", "pip-licenses"}
    bad = [InstalledLicence("copyleftlib", "1.0", "GNU General Public License v3 (GPLv3)"),
           InstalledLicence("mystery", "0.1", "UNKNOWN"),
           InstalledLicence("dual", "2.0", "GPL-3.0-only OR MIT")]
    rep = check_packages(real + bad, policy, dt.date.today())
    ours = {f"package {d.name} {d.version}" for d in bad}  # the real environment is the test above's business
    assert [(o.subject, o.code) for o in rep.offenders if o.subject in ours] == [
        ("package copyleftlib 1.0", "license_deny"), ("package mystery 0.1", "license_unknown")]
    assert evaluate("Apache Software License; BSD License", policy).status == "allow"
    assert evaluate("MPL-2.0 AND MIT", policy).status == "review"
    # an exception stops covering a package the day after it expires
    rep = check_repo(ROOT, deps=True, installed=[InstalledLicence("huey", "3.5.4", "UNKNOWN")],
                     today=dt.date(2027, 7, 1))
    assert {o.code for o in rep.offenders} == {"license_unknown", "license_exception_expired"}


def test_still_allowed_names_models_that_are_no_longer_allowed(copy: Path) -> None:
    assert still_allowed({"text_embed": "Apache-2.0"}, copy) == []
    assert still_allowed({"text_embed": "CC-BY-NC-4.0"}, copy) == [
        "text_embed: licence tagged at training CC-BY-NC-4.0 is deny (denied by the policy)"]
    _edit_yaml(copy / "conf" / "license_policy.yaml", lambda pol: pol["deny"].append("Apache-2.0"))
    problems = still_allowed({"text_embed": "Apache-2.0"}, copy)
    assert len(problems) == 2 and all("deny" in p for p in problems)
    assert still_allowed({"gone_model": "MIT"}, copy) == ["gone_model: no longer in licenses.yaml"]
