"""CLI: ``python -m compliance {licenses, render, sbom}``.

    licenses [--root DIR] [--no-deps]   the licence check of `make licenses`; exit 1 naming every offender
    render   [--root DIR]               write MODEL_LICENSES.md from licenses.yaml
    sbom     [--out FILE] [--no-validate]   CycloneDX JSON of the installed environment (`make sbom`)

Errors print as ``error: code: message`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import TrendflowError
from common.fsio import atomic_write_text
from common.paths import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compliance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    lic = sub.add_parser("licenses")
    lic.add_argument("--root", type=Path, default=REPO_ROOT)
    lic.add_argument("--no-deps", action="store_true", help="models only (skip the installed distributions)")
    ren = sub.add_parser("render")
    ren.add_argument("--root", type=Path, default=REPO_ROOT)
    sb = sub.add_parser("sbom")
    sb.add_argument("--out", type=Path, default=REPO_ROOT / ".trendflow" / "sbom" / "sbom.cdx.json")
    sb.add_argument("--no-validate", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.cmd == "licenses":
            from compliance.check import check_repo

            rep = check_repo(args.root, deps=not args.no_deps)
            for note in rep.notes:
                print(f"note: {note}")
            for off in rep.offenders:
                print(f"offender: {off}", file=sys.stderr)
            print(f"licences: {rep.checked_models} model rows, {rep.checked_packages} installed packages, "
                  f"{len(rep.offenders)} offender(s)")
            return 0 if rep.ok else 1
        if args.cmd == "render":
            from compliance.inventory import RENDERED, load_inventory, render_markdown

            atomic_write_text(args.root / RENDERED, render_markdown(load_inventory(args.root)))
            print(f"wrote {args.root / RENDERED}")
            return 0
        from compliance.sbom import write_sbom

        s = write_sbom(args.out, validate=not args.no_validate, reuse=False)
        print(f"sbom: {s.path} ({s.components} components, sha256 {s.sha256}, environment {s.fingerprint})")
        return 0
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
