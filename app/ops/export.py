"""Export a version's artifacts to a folder, and import a folder of artifacts back (runbook 4.3).

Export follows the exporter's rule (SPEC 4.3): PlanRepository rows whenever they exist, in any mode,
artifacts otherwise; the files are byte-identical to what the pipeline produced. Import is the
runbook heredoc's ``db.upsert_plan_artifact`` loop as one command.
"""

from __future__ import annotations

import os
from pathlib import Path

from app import db
from app.planning.model import PLAN_ARTIFACTS, PSI_ARTIFACTS
from app.storage import codec_artifacts
from app.storage.plans import PlanStore

IMPORTABLE = PLAN_ARTIFACTS + PSI_ARTIFACTS


def export_version(version_id: str, out_dir: str | Path, store: PlanStore | None = None) -> list[Path]:
    """Write every artifact of ``version_id`` into ``out_dir`` (created); returns the files written."""
    store = store or PlanStore()
    content = store.read_for_export(version_id)
    # Content decoded from either encoding already has the declared shapes; re-checking every row
    # would cost as much as writing the files.
    texts = codec_artifacts.encode(content, validated=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(texts.items()):
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a reader never sees half a file
        written.append(path)
    return written


def import_version(version_id: str, folder: str | Path, url: str | None = None) -> list[str]:
    """Store the artifact files found in ``folder`` as ``plan_artifacts`` of ``version_id``."""
    base = Path(folder)
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder")
    names = [n for n in IMPORTABLE if (base / n).is_file()]
    if not names:
        raise FileNotFoundError(f"{base} holds none of the plan artifacts ({', '.join(PLAN_ARTIFACTS)})")
    for name in names:
        db.upsert_plan_artifact(version_id, name, (base / name).read_text(encoding="utf-8"), url=url)
    return names
