"""``python -m features``: build the training table, check two specs' compatibility, describe the spec.

    python -m features build --artifacts ARTIFACTS --labels LABELS --out data/dataset.parquet [--spec PATH]
    python -m features check-compat OLD_SPEC NEW_SPEC     # exit 0 compatible, 1 breaking
    python -m features describe [--spec PATH]

Errors print as ``error: <code>: <message>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.errors import TrendflowError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m features")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="training table (features + targets + keys + split columns) as Parquet")
    b.add_argument("--artifacts", type=Path, required=True)
    b.add_argument("--labels", type=Path, default=None)
    b.add_argument("--out", type=Path, default=Path("data/dataset.parquet"))
    b.add_argument("--spec", type=Path, default=None)
    b.add_argument("--errors", choices=("drop", "raise"), default="drop",
                   help="rows missing a critical feature: drop and report (default) or fail")
    c = sub.add_parser("check-compat", help="is NEW additive, identical or breaking relative to OLD")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    d = sub.add_parser("describe", help="version, hash and columns per modality of a spec")
    d.add_argument("--spec", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        from features.spec import load_spec

        if args.cmd == "build":
            from features.build import build_dataset

            summary = build_dataset(args.artifacts, args.labels, args.out, load_spec(args.spec), errors=args.errors)
            print("\n".join(summary.lines()))
            return 0
        if args.cmd == "check-compat":
            from features.compat import check_compatibility

            result = check_compatibility(load_spec(args.old), load_spec(args.new))
            print(json.dumps(result.to_dict(), indent=2))
            return 0 if result.compatible else 1
        spec = load_spec(args.spec)
        from features.spec import raw_columns, target_columns

        print(json.dumps({"feature_schema_version": spec.feature_schema_version, "spec_hash": spec.spec_hash,
                          "features": len(spec.features), "raw_columns": len(raw_columns(spec)),
                          "columns_by_modality": {k: len(v) for k, v in spec.by_modality().items()},
                          "masks": len(spec.mask_columns), "targets": target_columns(spec)}, indent=2))
        return 0
    except TrendflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or an input no check caught yet: still one line, naming it, not a traceback
        print(f"error: internal_error: {type(exc).__name__}: {exc}"[:2000], file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
