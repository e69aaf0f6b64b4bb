"""Where the Hydra configs live, and the resolvers the apps register."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..sweep import identity as _identity
from ..sweep.identity import RUNTIME_KEYS, apply_matching_overrides

__all__ = ["RUNTIME_KEYS", "apply_matching_overrides", "effective_config", "identity_config", "job_id"]

#: The job-identity rules live in :mod:`stitchwork.sweep.identity`; these names convert configs.
_apply_matching_overrides = apply_matching_overrides


def conf_dir() -> Path:
    """``$STITCHWORK_CONF``, else the repository's ``conf/`` next to ``src/``, else the wheel's copy.

    A source checkout (editable install) reads the top-level ``conf/`` directly; a wheel ships a
    copy of it as ``stitchwork/conf`` (``setup.py`` copies it at build time).
    """
    env = os.environ.get("STITCHWORK_CONF")
    here = Path(__file__).resolve()
    candidates = [Path(env)] if env else [here.parents[3] / "conf", here.parents[1] / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return path
    raise FileNotFoundError(
        f"stitchwork configs not found at {str(candidates[0])!r}; install the repository with "
        "`pip install -e .` or a wheel, or set STITCHWORK_CONF to its conf/ folder"
    )


def identity_config(cfg: DictConfig | dict) -> dict:
    """The parts of a job config that determine its result (see :mod:`stitchwork.sweep.identity`)."""
    return _identity.identity_config(cfg if isinstance(cfg, dict) else to_plain(cfg, skip=("hydra",)))


def job_id(cfg: DictConfig | dict) -> str:
    """Identity hash of a job: its output folder name and results.json ``identity``."""
    return _identity.job_id(cfg if isinstance(cfg, dict) else to_plain(cfg, skip=("hydra",)))


def effective_config(cfg: DictConfig) -> dict:
    """The config a job runs with: resolved (cut points included), ``matching_overrides`` folded.

    What results.json and W&B record, so ``matching.epochs`` is the number of epochs that ran;
    its :func:`job_id` equals the job's (identity folds the same overrides).
    """
    return apply_matching_overrides(to_plain(cfg, skip=("hydra",)))


def to_plain(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict:
    """Resolved plain dict of ``cfg`` without the top-level keys in ``skip``."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key not in skip
    }


def _job_id_resolver(*, _root_: DictConfig) -> str:
    return job_id(to_plain(_root_, skip=("hydra",)))


#: Filters of ``${sw_cut_points:...}``: which activations a cut point may have.
CUT_POINT_KINDS = ("all", "conv", "flat")


def cut_points_of(model_cfg: DictConfig, data_cfg: DictConfig, kind: str = "all") -> list[str]:
    """Cut points of the model that ``model_cfg`` builds for ``data_cfg``'s input.

    Only constructors run (no data is loaded or downloaded). ``kind`` keeps every cut point
    (``all``), those with conv maps ``(c, h, w)`` (``conv``) or those with flat vectors
    (``flat``).
    """
    from hydra.utils import instantiate

    from ..cut import cut_point_shapes

    if kind not in CUT_POINT_KINDS:
        raise ValueError(f"unknown cut point kind {kind!r}; valid: {', '.join(CUT_POINT_KINDS)}")
    data = instantiate(data_cfg)
    model = instantiate(model_cfg, input_shape=list(data.input_shape), num_classes=data.num_classes)
    if kind == "all":
        return list(model.cut_points)
    shapes = cut_point_shapes(model)
    want = 3 if kind == "conv" else 1
    return [name for name in model.cut_points if len(shapes[name]) == want]


def _cut_points_resolver(model_key: str = "model", kind: str = "all", *, _root_: DictConfig) -> str:
    if model_key not in _root_:
        keys = [k for k in _root_ if str(k).startswith("model")]
        raise ValueError(f"sw_cut_points: no model config {model_key!r}; model configs here: {keys}")
    return ",".join(cut_points_of(_root_[model_key], _root_.data, kind))


def register_resolvers() -> None:
    """Register stitchwork's resolvers once per process.

    ``${sw_job_id:}`` is the job's identity hash (it names job folders).
    ``${sw_cut_points:model_a}`` (optionally ``${sw_cut_points:model_a,conv}``) is the
    comma-separated list of the cut points of the model at that config key, for sweeping
    every layer: ``hydra.sweeper.params: {layer_pair.front: ${sw_cut_points:model_a}}``.
    ``${sw_help_groups:}`` and ``${sw_help_settings:}`` fill the ``--help`` page.
    """
    if not OmegaConf.has_resolver("sw_job_id"):
        OmegaConf.register_new_resolver("sw_job_id", _job_id_resolver, use_cache=False)
    if not OmegaConf.has_resolver("sw_cut_points"):
        OmegaConf.register_new_resolver("sw_cut_points", _cut_points_resolver, use_cache=False)
    from . import help as app_help  # the --help page's lists (help imports this module)

    if not OmegaConf.has_resolver("sw_help_groups"):
        OmegaConf.register_new_resolver("sw_help_groups", app_help.groups_resolver, use_cache=False)
    if not OmegaConf.has_resolver("sw_help_settings"):
        OmegaConf.register_new_resolver("sw_help_settings", app_help.settings_resolver, use_cache=False)


def instantiate_named(
    group: str, name: str, what: str, error: type[Exception] = ValueError, **kwargs: Any
) -> Any:
    """Instantiate ``conf/<group>/<name>.yaml`` (its ``_target_``) with ``kwargs``.

    For options that users spell as a plain name (``post=bn_reset``,
    ``similarity.measures=[linear_cka]``) while each choice is one yaml naming its class, so
    a new choice is a module plus a yaml. An unknown ``name`` is an error naming ``what``
    and the valid names (the files of the folder), raised as ``error``.
    """
    folder = conf_dir() / group
    valid = sorted(p.stem for p in folder.glob("*.yaml"))
    if not isinstance(name, str) or name not in valid:
        raise error(f"unknown {what} {name!r}; valid names: {', '.join(valid)}")
    from hydra.utils import instantiate  # the app layer only

    return instantiate(OmegaConf.load(folder / f"{name}.yaml"), **kwargs)
