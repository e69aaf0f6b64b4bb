"""Canonical JSON and content hashes for job and model identities."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any


def _normalise(obj: Any) -> Any:
    """Turn ``obj`` into plain JSON types with a stable order (tuples become lists)."""
    if isinstance(obj, Mapping):
        return {str(k): _normalise(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj) and obj == int(obj) and abs(obj) < 2**53:
            # 1.0 and 1 name the same setting; hash them alike.
            return int(obj)
        return repr(obj)
    if isinstance(obj, Sequence):
        return [_normalise(v) for v in obj]
    raise TypeError(f"cannot hash a value of type {type(obj).__name__}: {obj!r}")


def typed_fractions(obj: Any, keys: frozenset[str]) -> Any:
    """Copy of ``obj`` where a float under a mapping key in ``keys`` (at any depth) is its repr.

    For settings that are a *count* when an int and a *fraction* when a float, ``1`` (one
    example, one batch) and ``1.0`` (all of them) mean different things, but
    :func:`content_hash` hashes integral floats as ints. The repr (``"1.0"``, ``"0.25"``)
    keeps them apart; non-integral floats hash as their repr anyway, so their keys do not
    change.
    """
    if isinstance(obj, Mapping):
        return {
            k: (repr(float(v)) if k in keys and isinstance(v, float) else typed_fractions(v, keys))
            for k, v in obj.items()
        }
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        return [typed_fractions(v, keys) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: equal configs give equal strings."""
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"))


def content_hash(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 prefix of ``canonical_json(obj)``; the identity of a model or job."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
