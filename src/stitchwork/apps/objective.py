"""What an app returns to a Hydra sweeper: its record, or the float that ``objective`` names.

Sweepers that optimise (Optuna) need one number per job, while the basic sweeper ignores
what jobs return. ``objective: null`` (the default) keeps the results record as the return
value; ``objective: relative_acc`` returns ``float(metrics["relative_acc"])`` of the job's
record, whether the job ran now or was skipped as done (the value recorded in its
results.json). A failed job returns nothing: it raises, as without an objective, so an
optimiser marks the trial failed instead of learning from a made-up number. The direction
(maximise or minimise) belongs to the sweeper's config. ``objective`` is outside the job
identity: it picks a number from the result and does not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from .validate import UserError, is_number


def check_objective(cfg: DictConfig, metrics: Sequence[str] | None = None, hint: str = "") -> None:
    """Refuse an ``objective`` that is not null or a metric name, before the job works.

    ``metrics``: every scalar metric the job will record, when the app knows them in advance
    (then a name outside them is refused now, listing them, with ``hint`` appended).
    """
    name = cfg.get("objective")
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise UserError(f"objective must be null or the name of a metric, got {name!r}")
    if metrics is not None and name not in metrics:
        raise UserError(_unknown(name, metrics) + hint)


def sweeper_return(cfg: DictConfig, result: Any) -> Any:
    """``result`` (the job's record) as the app returns it: unchanged, or its objective's float.

    A name that the record's metrics lack, or whose value is not a number, is a user error
    listing the scalar metrics the record has.
    """
    name = cfg.get("objective") if isinstance(cfg, DictConfig) else None
    if name is None or not isinstance(result, dict):
        return result
    metrics = result.get("metrics") or {}
    value = metrics.get(name)
    if not is_number(value):
        raise UserError(_unknown(name, scalar_metrics(metrics)))
    return float(value)


def scalar_metrics(metrics: dict) -> list[str]:
    """Names of the numeric (not boolean) entries of a record's metrics, sorted."""
    return sorted(k for k, v in metrics.items() if is_number(v))


def _unknown(name: str, metrics: Sequence[str]) -> str:
    valid = ", ".join(sorted(metrics)) or "none"
    return f"objective={name} is not a scalar metric of this job; valid: {valid}"
