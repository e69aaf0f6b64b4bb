"""Figure titles that say what was compared: models A and B, the method, the sweep.

A title is built from job configs as flat dotted dicts (``model_a._target_``, ``seed_b``,
``matching._target_``, ...: the ``config.`` columns of a report row without their prefix, or a
job's own config flattened), so stitching, similarity and re-basin figures of one sweep, of a
matrix job or of a single job all read the same way, e.g.
``tiny10/digits seed 0 → seed 1, direct (sweep demo)``. Where a part differs between the
configs of one figure, its values are joined with ``|``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .report import flatten

#: config keys a title describes; other varying settings are left to the figure's labels
DESCRIBED = ("model", "model_a", "model_b", "data", "data_a", "data_b", "recipe", "recipe_a", "recipe_b",
             "seed_a", "seed_b", "random_a", "matching", "matcher", "post", "sweep_name", "app")  # fmt: skip


def flat_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """A report row's ``config.*`` columns without the prefix (a nested config is flattened)."""
    if "config" in row and isinstance(row["config"], Mapping):
        return flatten(row["config"])
    return {k.removeprefix("config."): v for k, v in row.items() if k.startswith("config.")}


def config_title(config: Mapping[str, Any]) -> str:
    """The :func:`comparison_title` of one job's nested config (``results.json``'s ``config``)."""
    return comparison_title([flatten(config)])


def comparison_title(configs: Sequence[Mapping[str, Any]]) -> str:
    """What the jobs of ``configs`` (flat dicts, see :func:`flat_config`) compared, in words.

    Two-model jobs (stitch, compare): ``<A> → <B>`` where B names only what differs from A
    (``→ seed 1``, ``→ resnet20/digits seed 1``, ``→ itself`` for within-network runs), then
    the matching method; one-model jobs (rebasin, combine): ``<model> seed a ↔ seed b`` and the
    matcher and post-process; last the sweep name.
    """
    if not configs:
        return ""
    parts = [_joined(configs, _models)]
    parts += [p for p in (_joined(configs, _method),) if p]
    sweep = _joined(configs, lambda c: str(c.get("sweep_name") or ""))
    return ", ".join(p for p in parts if p) + (f" (sweep {sweep})" if sweep else "")


def _joined(configs: Sequence[Mapping[str, Any]], part) -> str:
    return " | ".join(dict.fromkeys(part(c) for c in configs))


def _models(cfg: Mapping[str, Any]) -> str:
    if _has(cfg, "model_a"):
        a, b = _side(cfg, "a"), _side(cfg, "b")
        if a == b:
            return f"{_words({**a, 'recipe': ''})} → itself"
        if a["name"] == b["name"]:
            b = {**b, "name": ""}
        if a["recipe"] == b["recipe"]:
            a, b = {**a, "recipe": ""}, {**b, "recipe": ""}
        return f"{_words(a)} → {_words(b)}"
    if _has(cfg, "model"):
        name = f"{_model_name(cfg, 'model')}/{_data_name(cfg, 'data')}"
        return f"{name} seed {cfg.get('seed_a')} ↔ seed {cfg.get('seed_b')}"
    return ""


def _side(cfg: Mapping[str, Any], side: str) -> dict[str, str]:
    """Model ``a`` or ``b`` in words: random-init flag, model/data, seed, recipe."""
    model, other = f"model_{side}", f"model_{'b' if side == 'a' else 'a'}"
    mine, theirs = _subtree(cfg, model), _subtree(cfg, other)
    differs = (
        []
        if mine.get("_target_") != theirs.get("_target_")
        else sorted(  # same class, other settings
            k
            for k, v in mine.items()
            if k not in ("_target_", "name", "width") and theirs.get(k) != v
        )
    )
    extra = f"[{', '.join(f'{k}={mine[k]}' for k in differs)}]" if differs else ""
    data = _data_name(cfg, "data") + _overrides(cfg, f"data_{side}")
    return {"random": "random-init" if side == "a" and cfg.get("random_a") else "",
            "name": f"{_model_name(cfg, model)}{extra}/{data}", "seed": f"seed {cfg.get(f'seed_{side}')}",
            "recipe": _recipe(cfg, f"recipe_{side}")}  # fmt: skip


def _words(side: Mapping[str, str]) -> str:
    recipe = f"({side['recipe']})" if side["recipe"] else ""
    return " ".join(w for w in (side["random"], side["name"], side["seed"], recipe) if w)


def _subtree(cfg: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix + "."): v for k, v in cfg.items() if k.startswith(prefix + ".")}


def _has(cfg: Mapping[str, Any], prefix: str) -> bool:
    return any(k.startswith(prefix + ".") for k in cfg)


def _short(target: Any) -> str:
    return str(target or "").rsplit(".", 1)[-1]


def _model_name(cfg: Mapping[str, Any], prefix: str) -> str:
    """``tiny10``, ``resnet20×4``, ``resnet18`` (torchvision, timm), the class of ``model=module``."""
    target = _short(cfg.get(f"{prefix}._target_"))
    if cfg.get(f"{prefix}.name"):
        name = str(cfg[f"{prefix}.name"])
    elif target == "module_model":
        name = _short(cfg.get(f"{prefix}.module._target_")) or "module"
    else:
        name = target.lower()
    width = cfg.get(f"{prefix}.width")
    return name + (f"×{width:g}" if isinstance(width, (int, float)) and width != 1 else "")


def _data_name(cfg: Mapping[str, Any], prefix: str) -> str:
    """``digits``, ``cifar10`` (``data.name``), ``imagefolder``; with its train subset if any."""
    name = cfg.get(f"{prefix}.name") or _short(cfg.get(f"{prefix}._target_")).lower().removesuffix(
        "data"
    )
    subset = cfg.get(f"{prefix}.train_subset")
    return str(name) + (f"[train_subset={subset}]" if subset is not None else "")


def _overrides(cfg: Mapping[str, Any], prefix: str) -> str:
    """``data_a`` / ``data_b`` overrides of one side's training data, as ``[key=value]``."""
    items = [f"{k}={v}" for k, v in sorted(_subtree(cfg, prefix).items())]
    return f"[{', '.join(items)}]" if items else ""


def _recipe(cfg: Mapping[str, Any], prefix: str) -> str:
    """A recipe as its optimizer, epochs and SSL flag, plus what else differs from the other side's."""
    recipe = _subtree(cfg, prefix)
    if not recipe:
        return ""
    other = _subtree(cfg, prefix[:-1] + ("b" if prefix.endswith("a") else "a"))
    words = [
        str(recipe.get("optimizer", "?")),
        f"{recipe.get('epochs')} ep",
        *(["ssl"] if _has(recipe, "ssl") else []),
    ]
    words += [f"{k}={v}" for k, v in sorted(recipe.items()) if k not in ("optimizer", "epochs")
              and not k.startswith("ssl.") and other and other.get(k) != v]  # fmt: skip
    return " ".join(words)


def _method(cfg: Mapping[str, Any]) -> str:
    """``direct``, ``task_loss``; re-basin: ``weight matching, post bn_reset`` (and the combine mode)."""
    if cfg.get("matching._target_"):
        return _short(cfg["matching._target_"])
    if not cfg.get("matcher._target_"):
        return ""
    matcher = _short(cfg["matcher._target_"]).removesuffix("Matcher").lower()
    words = [f"{matcher} matching", *([f"post {cfg['post']}"] if cfg.get("post") else [])]
    mode = cfg.get("mode") if cfg.get("app") == "combine" else None
    if mode == "transitivity":
        words.append(f"transitivity via seed {cfg.get('seed_c')}")
    elif mode:
        words.append(f"{mode}, sampler {_short(cfg.get('sampler._target_')).lower()}")
    return ", ".join(words)
