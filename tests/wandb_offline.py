"""Read W&B offline run files (``run-<id>.wandb``) back for tests, with wandb's own protobufs.

The file is wandb's LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then
32 KiB blocks of chunks (crc32, little-endian length, type FULL/FIRST/MIDDLE/LAST) whose
payloads join into serialised ``wandb.proto.wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK, HEADER, CHUNK = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    """Every Record of one offline ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B log"
    out, pos, parts = [], HEADER, b""
    while pos + CHUNK <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK:
            pos += left  # block trailer padding
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        payload = data[pos + CHUNK : pos + CHUNK + length]
        pos += CHUNK + length
        if kind == 0 and length == 0:
            continue
        parts = payload if kind in (FULL, FIRST) else parts + payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            out.append(record)
    return out


def read_run(path: Path) -> dict:
    """id, name, group, tags, config (plain), history keys and files of one offline run."""
    run: dict[str, Any] = {"config": {}, "history": [], "files": [], "summary": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, name=r.display_name, group=r.run_group, tags=list(r.tags),
                       project=r.project)  # fmt: skip
            run["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            run["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.history.item})  # fmt: skip
        elif kind == "summary":
            run["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.summary.update})  # fmt: skip
        elif kind == "files":
            run["files"] += [f.path for f in record.files.files]
    return run
