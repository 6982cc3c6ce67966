"""Commands of the operators' runbook, word for word, shared by the tests that run them."""

#: Runbook 4.3, step 2: re-import the exported files (the version id passed before the heredoc).
REIMPORT = """PYTHONPATH=. SCPLN_DB=$(pwd)/data/scpln.db python - {vid} <<'PY'
from pathlib import Path
from app import db
import json, sys

db.init_db()
version_id = sys.argv[1]
base = Path('tmp/restore') / version_id
artifacts = ['aggregate.json','sku_week.json','mrp.json','plan_final.json','report.csv']
for name in artifacts:
    p = base / name
    if not p.exists():
        continue
    payload = p.read_text(encoding='utf-8')
    db.upsert_plan_artifact(version_id, name, payload)
PY"""
