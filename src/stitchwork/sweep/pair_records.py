"""Per-pair records of a matrix job, written atomically as pairs complete, read on resume.

A matrix job keeps ``<job folder>/pairs/<front>__<back>.json`` beside its ``results.json``:
one record per finished pair, stamped with the job identity and its family (the identity
without the pair lists, :func:`stitchwork.sweep.identity.matrix_family_id`). A rerun of a
killed job reads the ``ok`` and ``skipped`` records of its own identity and computes only the
rest; failed pairs, unreadable files and records of another identity are recomputed. A job
of the same family in a sibling folder (a smaller matrix of the same sweep) lends its
finished pairs too: they are copied, marked ``reused_from`` with that job's identity.
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


def write_pair_records(directory: str | Path, identity: str, records: Iterable[dict], family: str | None = None) -> None:
    """Write each pair record atomically, stamped with the job ``identity`` and ``family``."""
    stamp = {"identity": identity} if family is None else {"identity": identity, "family": family}
    for record in records:
        atomic_write_json(pair_path(directory, record["front"], record["back"]), {**stamp, **record})


def _finished(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("status") in FINAL else None


def _unstamped(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("identity", "family")}


def read_pair_records(directory: str | Path, identity: str) -> dict[tuple[str, str], dict]:
    """Finished (``ok`` / ``skipped``) records of job ``identity``: ``(front, back) -> record``."""
    out = {}
    for path in sorted((Path(directory) / PAIRS_DIR).glob("*.json")):
        record = _finished(path)
        if record is not None and record.get("identity") == identity:
            out[(record["front"], record["back"])] = _unstamped(record)
    return out


def sibling_pair_records(directory: str | Path, family: str, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Finished records of ``wanted`` pairs kept by other jobs of ``family`` beside ``directory``.

    Looks in the sibling job folders (the same app and sweep folder); each record found gets
    ``reused_from``: the identity of the job that computed it (or the one it had reused it from).
    """
    here = Path(directory).resolve()
    todo = set(wanted)
    names = {pair_path("", front, back).name for front, back in todo}
    out: dict[tuple[str, str], dict] = {}
    for path in sorted(here.parent.glob(f"*/{PAIRS_DIR}/*.json")):  # one listing of the sweep folder
        if path.name not in names or path.parent.parent.resolve() == here:
            continue
        record = _finished(path)
        key = None if record is None else (record.get("front"), record.get("back"))
        if key in todo and key not in out and record.get("family") == family:
            out[key] = {**_unstamped(record), "reused_from": record.get("reused_from", record["identity"])}
    return out


def clear_pair_records(directory: str | Path) -> None:
    """Forget every pair record (``force=true``)."""
    shutil.rmtree(Path(directory) / PAIRS_DIR, ignore_errors=True)
