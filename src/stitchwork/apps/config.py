"""Where the Hydra configs live, and the resolvers the apps register."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..utils.hashing import content_hash
from ..zoo.identity import RUNTIME_DATA_KEYS

#: Top-level config keys that never change a job's result.
RUNTIME_KEYS = frozenset({"hydra", "logger", "trainer", "zoo", "force", "sweep_name"})


def conf_dir() -> Path:
    """``$STITCHWORK_CONF`` or the repository's ``conf/`` next to ``src/``."""
    env = os.environ.get("STITCHWORK_CONF")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "conf"
    if not (path / "train.yaml").is_file():
        raise FileNotFoundError(
            f"stitchwork configs not found at {str(path)!r}; install the repository with "
            "`pip install -e .` or set STITCHWORK_CONF to its conf/ folder"
        )
    return path


def identity_config(cfg: DictConfig | dict) -> dict:
    """The parts of a job config that determine its result (runtime keys dropped)."""
    plain = cfg if isinstance(cfg, dict) else to_plain(cfg, skip=("hydra",))
    out: dict[str, Any] = {}
    for key, value in plain.items():
        if key in RUNTIME_KEYS:
            continue
        if key.startswith("data") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in RUNTIME_DATA_KEYS}
        out[key] = value
    return out


def job_id(cfg: DictConfig | dict) -> str:
    """Identity hash of a job: its output folder name and results.json ``identity``."""
    return content_hash(identity_config(cfg))


def to_plain(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict:
    """Resolved plain dict of ``cfg`` without the top-level keys in ``skip``."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key not in skip
    }


def _job_id_resolver(*, _root_: DictConfig) -> str:
    return job_id(to_plain(_root_, skip=("hydra",)))


def register_resolvers() -> None:
    """Register ``${sw_job_id:}`` (the job's identity hash) once per process."""
    if not OmegaConf.has_resolver("sw_job_id"):
        OmegaConf.register_new_resolver("sw_job_id", _job_id_resolver, use_cache=False)
