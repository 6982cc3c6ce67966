#!/usr/bin/env python3
"""Write every artifact of a plan version into a folder (runbook 4.3; the same as ``scpln plan export``).

    scripts/plan_export.py <version_id> -o DIR

The files come from the version's PlanRepository rows when it has them, from its artifacts otherwise,
and are identical to what the pipeline wrote. Exit 1 with a message when the version is unknown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without PYTHONPATH

from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from app import db  # noqa: E402
from app.errors import ScplnError  # noqa: E402
from app.ops.export import export_version  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a plan version's artifacts to a folder.")
    parser.add_argument("version_id", help="plan version id")
    parser.add_argument("-o", "--out", required=True, type=Path, help="folder to write the artifacts into")
    args = parser.parse_args(argv)
    try:
        db.init_db()
        files = export_version(args.version_id, args.out)
    except (ScplnError, ValueError, OSError, SQLAlchemyError) as exc:
        print(f"plan_export: error: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(path)
    print(f"exported {len(files)} artifacts of {args.version_id} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
