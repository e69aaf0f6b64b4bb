"""The effective config of a job as a tree on the console, before the job runs.

As lightning-hydra-template's ``extras.print_config``: one branch per config section, its
YAML beneath, so the console says what ran (resolved: cut points listed, ``matching_overrides``
folded in, as results.json records it). Switched by ``extras.print_config`` (``conf/extras/``),
which is outside the job identity: it changes the console, never a result. In a sweep run
in one process, the first job prints the whole tree and each later one only the settings
in which it differs from that first job (:class:`SweepTrees`), so 128 jobs print one tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text
from rich.tree import Tree

from ..sweep.report import flatten
from .validate import boolean


def wants_config_tree(cfg: DictConfig) -> bool:
    """``extras.print_config`` (false when the app has no ``extras``); true or false, else a UserError."""
    extras = cfg.get("extras") or {}
    return boolean("extras.print_config", extras.get("print_config", False))


def config_tree(config: Mapping[str, Any], title: str) -> Tree:
    """A rich tree of ``config``: top-level values as leaves, each section a branch of YAML."""
    tree = Tree(title, guide_style="dim")
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            tree.add(str(key), guide_style="dim").add(_yaml(dict(value)))
        else:  # a plain value (or an empty section) is one line
            tree.add(_yaml({key: value}))
    return tree


def print_config_tree(config: Mapping[str, Any], title: str) -> None:
    """Print :func:`config_tree` to stdout (no colours where stdout is not a terminal)."""
    Console().print(config_tree(config, title))


class SweepTrees:
    """The config trees of one process's jobs: per sweep, the first in full, later ones as differences."""

    #: sweep folder -> (label, flattened config) of the first job that printed its tree there
    first: dict[str, tuple[str, dict[str, Any]]] = {}

    @classmethod
    def print(cls, config: Mapping[str, Any], label: str, sweep: str | None) -> None:
        """``label``'s whole tree outside a sweep (``sweep`` None) or for the first job of
        ``sweep`` in this process, else only the settings in which it differs from that job."""
        title = f"{label}: effective config"
        if sweep is None or sweep not in cls.first:
            if sweep is not None:
                cls.first[sweep] = (label, flatten(config))
            print_config_tree(config, title)
            return
        first_label, first = cls.first[sweep]
        flat, unset = flatten(config), "(not set)"
        changed = {k: flat.get(k, unset) for k in sorted(set(flat) | set(first)) if flat.get(k, unset) != first.get(k, unset)}
        Console().print(config_tree(changed, f"{title}: as for {first_label}, except"))


def _yaml(node: dict) -> Text:
    """``node`` as highlighted YAML text (no padding to the console's width)."""
    code = OmegaConf.to_yaml(node).rstrip()
    text = Syntax(code, "yaml").highlight(code)
    text.rstrip()  # in place: highlight() ends the text with a newline
    text.justify, text.no_wrap = None, False  # wrap long values, pad nothing
    return text
