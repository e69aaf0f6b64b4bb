"""Content-addressed store of trained base models.

A model's key is the hash of its *identity* (model, data, recipe, seed: everything that
changes the weights, nothing that does not). ``get_or_train`` returns the stored model or
trains it once: an inter-process file lock makes concurrent callers wait for the one
that trains. Checkpoints are written atomically and verified by checksum on load; a
corrupt entry is moved aside (never deleted) and retrained, or reported.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from ..utils.atomic import atomic_torch_save, atomic_write_json
from ..utils.distributed import is_main_process
from ..utils.hashing import content_hash, file_sha256
from ..utils.provenance import git_info

log = logging.getLogger(__name__)

CHECKPOINT = "model.pt"
METADATA = "metadata.json"


class CorruptCheckpointError(RuntimeError):
    """A zoo entry whose files are missing, truncated or do not match their checksum."""


def default_zoo_root() -> Path:
    """``$STITCHWORK_ZOO``, else ``$XDG_CACHE_HOME/stitchwork/zoo`` (``~/.cache`` by default)."""
    if os.environ.get("STITCHWORK_ZOO"):
        return Path(os.environ["STITCHWORK_ZOO"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "stitchwork" / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    """A stored model: its key, folder and metadata (identity, metrics, provenance)."""

    key: str
    path: Path
    metadata: dict

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT


class ModelZoo:
    """Train-or-load store of base models under ``root`` (one folder per key)."""

    def __init__(self, root: str | os.PathLike | None = None, lock_timeout_s: float = -1):
        self.root = Path(root).expanduser() if root is not None else default_zoo_root()
        self.lock_timeout_s = lock_timeout_s

    @staticmethod
    def key(identity: Mapping[str, Any]) -> str:
        """Content hash of an identity mapping (plain JSON types)."""
        return content_hash(identity)

    def entry_path(self, key: str) -> Path:
        return self.root / key

    def get_or_train(
        self,
        identity: Mapping[str, Any],
        build: Callable[[], nn.Module],
        train: Callable[[nn.Module], Mapping[str, Any]],
        on_corrupt: str = "retrain",
        record: Mapping[str, Any] | None = None,
    ) -> tuple[nn.Module, ZooEntry]:
        """Return the trained model for ``identity``, training it at most once.

        ``build()`` makes the untrained architecture (also used to load), ``train(model)``
        trains it in place and returns its metrics. ``on_corrupt`` is ``"retrain"`` (move
        the bad entry to ``<root>/.corrupt/`` and train again) or ``"error"``. ``record``
        (e.g. the full trainer settings used) is written into the metadata of a model
        trained now.
        """
        if on_corrupt not in ("retrain", "error"):
            raise ValueError(f"on_corrupt must be 'retrain' or 'error', got {on_corrupt!r}")
        key = self.key(identity)
        self.root.mkdir(parents=True, exist_ok=True)
        if not is_main_process():
            return self._follow(key, identity, build, train)
        with FileLock(str(self.root / f".{key}.lock"), timeout=self.lock_timeout_s):
            if (self.entry_path(key) / METADATA).exists() or (self.entry_path(key) / CHECKPOINT).exists():
                try:
                    return self.load(key, build)
                except CorruptCheckpointError as err:
                    if on_corrupt == "error":
                        raise
                    aside = self._move_aside(key)
                    log.warning("%s; moved it to %s and retraining", err, aside)
            return self._train_and_store(key, identity, build, train, record or {})

    def _follow(self, key, identity, build, train) -> tuple[nn.Module, ZooEntry]:
        """A non-zero rank of a data-parallel job: load if stored, else train alongside rank 0.

        Rank 0 holds the lock and stores the result; the others never write to the zoo.
        """
        try:
            return self.load(key, build)
        except CorruptCheckpointError:
            model = build()
            metrics = dict(train(model))
            return model, ZooEntry(key, self.entry_path(key), {"key": key, "identity": dict(identity),
                                                                "metrics": metrics})

    def _train_and_store(self, key, identity, build, train, record) -> tuple[nn.Module, ZooEntry]:
        model = build()
        start = time.time()
        metrics = dict(train(model))
        path = self.entry_path(key)
        atomic_torch_save(path / CHECKPOINT, {k: v.cpu() for k, v in model.state_dict().items()})
        metadata = {
            "key": key,
            "identity": dict(identity),
            "metrics": metrics,
            "checkpoint_sha256": file_sha256(path / CHECKPOINT),
            "wall_time_s": time.time() - start,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": git_info(),
            **record,
        }
        atomic_write_json(path / METADATA, metadata)  # written last: marks the entry complete
        return model, ZooEntry(key, path, metadata)

    def load(self, key: str, build: Callable[[], nn.Module]) -> tuple[nn.Module, ZooEntry]:
        """Load a stored model, verifying metadata, checksum and state-dict fit."""
        path = self.entry_path(key)
        meta_path, ckpt = path / METADATA, path / CHECKPOINT
        try:
            metadata = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CorruptCheckpointError(f"zoo entry {path} has no readable {METADATA} ({err})") from None
        if not ckpt.is_file() or file_sha256(ckpt) != metadata.get("checkpoint_sha256"):
            raise CorruptCheckpointError(
                f"zoo checkpoint {ckpt} is missing or does not match the checksum in {meta_path}"
            )
        model = build()
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - unpickling and shape errors alike
            raise CorruptCheckpointError(f"zoo checkpoint {ckpt} cannot be loaded: {err}") from err
        return model, ZooEntry(key, path, metadata)

    def _move_aside(self, key: str) -> Path:
        aside = self.root / ".corrupt" / f"{key}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.entry_path(key), aside)
        return aside

    def entries(self) -> list[ZooEntry]:
        """Every complete entry in the store (corrupt ones are skipped)."""
        found = []
        for meta in sorted(self.root.glob(f"*/{METADATA}")):
            try:
                found.append(ZooEntry(meta.parent.name, meta.parent, json.loads(meta.read_text())))
            except (OSError, json.JSONDecodeError):
                continue
        return found
