"""The whole config checked before a job does any work, every bad value named by its key.

Every app calls :func:`check_config` at the top of its job body, before any base model is
trained. It refuses NaN and infinity anywhere, values outside what a parameter name means
everywhere in stitchwork (:data:`~.validate.RULES`), and, for a node with a ``_target_``,
unknown keys and values of the wrong type for the target's annotated parameters; ``recipe*``
nodes are checked as a :class:`~stitchwork.training.TrainRecipe`.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..training.recipe import TrainRecipe
from .objective import check_objective
from .validate import UserError, fail, is_number, rule_for, user_errors

#: Subtrees never walked: Hydra's own settings, Lightning Trainer options, logger settings.
SKIP = ("hydra", "trainer", "logger")


def check_config(cfg: DictConfig) -> None:
    """Refuse bad values anywhere in ``cfg`` (except :data:`SKIP`), naming their keys.

    NaN and infinity are refused everywhere; :func:`rule_for` checks values by name; for a
    node with a ``_target_``, unknown keys and values of the wrong type for the target's
    annotated parameters are refused; ``recipe*`` nodes are checked as a :class:`TrainRecipe`;
    ``objective`` must be null or a name (apps that know their metrics check the name too).
    """
    check_objective(cfg)
    for key in cfg:
        if key in SKIP:
            continue
        value = cfg[key]
        plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
        _check_value(str(key), str(key), plain)
        if str(key).startswith("recipe") and isinstance(plain, dict):
            with user_errors():
                TrainRecipe.from_dict(plain)


def _check_value(name: str, key: str, value: Any) -> None:
    rule = rule_for(name)
    if rule is not None:
        rule(key, value)
    if isinstance(value, float) and not math.isfinite(value):
        fail(key, "a finite number", value)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, (dict, list)):
                _check_value("", f"{key}[{i}]", item)
    elif isinstance(value, dict):
        _check_node(key, value)


def _check_node(prefix: str, node: dict) -> None:
    params = _recipe_params() if prefix.startswith("recipe") and "." not in prefix else None
    if "_target_" in node:
        params = _target_params(f"{prefix}._target_", node["_target_"])
    for name, value in node.items():
        if str(name).startswith("_"):
            continue
        key = f"{prefix}.{name}"
        if params is not None and name not in params.names and not params.open:
            listed = ", ".join(sorted(params.listed)) or "none"
            raise UserError(f"{key} is not an option here; valid: {listed}")
        _check_value(str(name), key, value)
        hint = params.hints.get(name) if params is not None else None
        if hint is not None and not _matches(value, hint):
            fail(key, _describe(hint), value)


@dataclass
class Params:
    """What a target accepts: annotations, keyword names (``listed``: those with defaults,
    the ones a user sets), and whether it takes ``**kwargs`` (any name)."""

    hints: dict[str, Any] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    listed: set[str] = field(default_factory=set)
    open: bool = True


def _recipe_params() -> Params:
    names = set(TrainRecipe.__dataclass_fields__)
    return Params(typing.get_type_hints(TrainRecipe), names, names, open=False)


def _target_params(key: str, target: Any) -> Params:
    """(annotations, keyword names, takes ``**kwargs``) of what ``target`` names."""
    from hydra.utils import get_object

    try:
        obj = get_object(str(target))
    except Exception as err:  # noqa: BLE001 - Hydra wraps import errors of every kind
        raise UserError(f"{key}: cannot import {target!r} ({err.__cause__ or err})") from None
    functions = [c.__init__ for c in obj.__mro__ if "__init__" in vars(c)] if isinstance(obj, type) else [obj]
    params = Params()
    for fn in functions:
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return params
        try:
            own_hints = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
            own_hints = {}
        for p in list(parameters)[isinstance(obj, type):]:  # not the `self` of __init__
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in params.names:
                params.names.add(p.name)
                if p.default is not p.empty:
                    params.listed.add(p.name)
                if p.name in own_hints:
                    params.hints[p.name] = own_hints[p.name]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            params.open = False
            return params
    return params


def _matches(value: Any, hint: Any) -> bool:
    """Whether a plain config value fits annotation ``hint`` (unknown kinds of hint: yes)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint in (None, NoneType):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    if hint is dict or origin in (dict, Mapping):
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", NoneType: "null",
             list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(hint) or names.get(typing.get_origin(hint), str(hint))
