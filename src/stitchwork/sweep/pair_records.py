"""Per-pair records of a matrix job, written atomically as pairs complete, read on resume.

A matrix job keeps ``<job folder>/pairs/<front>__<back>.json`` beside its ``results.json``:
one record per finished pair, stamped with the job identity. A rerun of a killed job reads
the ``ok`` and ``skipped`` records of its own identity and computes only the rest; failed
pairs, unreadable files and records of another identity are recomputed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..utils.atomic import atomic_write_json

PAIRS_DIR = "pairs"
#: Pair statuses a rerun keeps.
FINAL = ("ok", "skipped")


def pair_path(directory: str | Path, front: str, back: str) -> Path:
    """Where the record of pair ``(front, back)`` lives (names made file-safe)."""
    safe = lambda name: re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # noqa: E731
    return Path(directory) / PAIRS_DIR / f"{safe(front)}__{safe(back)}.json"


def write_pair_records(directory: str | Path, identity: str, records: Iterable[dict]) -> None:
    """Write each pair record atomically, stamped with the job ``identity``."""
    for record in records:
        atomic_write_json(pair_path(directory, record["front"], record["back"]), {"identity": identity, **record})


def read_pair_records(directory: str | Path, identity: str) -> dict[tuple[str, str], dict]:
    """Finished (``ok`` / ``skipped``) records of job ``identity``: ``(front, back) -> record``."""
    out = {}
    for path in sorted((Path(directory) / PAIRS_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and record.get("identity") == identity and record.get("status") in FINAL:
            record.pop("identity")
            out[(record["front"], record["back"])] = record
    return out


def clear_pair_records(directory: str | Path) -> None:
    """Forget every pair record (``force=true``)."""
    shutil.rmtree(Path(directory) / PAIRS_DIR, ignore_errors=True)
