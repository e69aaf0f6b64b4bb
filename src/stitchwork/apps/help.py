"""The ``--help`` page of an app: its own config groups and top-level settings.

Hydra's ``$APP_CONFIG_GROUPS`` lists every group under ``conf/``, so each app's help would
offer the others' groups (``combine/sampler`` to ``stitchwork-stitch``). These functions
back the resolvers ``${sw_help_groups:}`` and ``${sw_help_settings:}`` of the help template
(``conf/hydra/help/stitchwork.yaml``): they list only the groups in the app's own defaults
list (``hydra.runtime.choices``), with the choice it starts from, and its plain settings.
"""

from __future__ import annotations

import re
import textwrap

from omegaconf import DictConfig, OmegaConf

from .config import conf_dir

#: The Hydra groups a user picks for stitchwork's job apps (the others are Hydra's internals),
#: and the ``conf/hydra/`` settings that make an app one (job folders by identity, summaries).
HYDRA_GROUPS_SHOWN = ("hydra/launcher",)
JOB_SETTINGS = "stitchwork"

#: Top-level keys that are not settings a user changes (``app`` names the app).
HIDDEN_SETTINGS = ("hydra", "app")

#: Width of the help page's lists.
WIDTH = 92

#: The first ``stitchwork-<app>`` command in a preset's header comment names its app.
_COMMAND = re.compile(r"^#.*?\bstitchwork-([a-z]+)", re.MULTILINE)


def group_lines(root: DictConfig) -> str:
    """One line per config group of this app, in defaults-list order: ``group (now: x): a, b``."""
    choices = OmegaConf.to_container(root.hydra.runtime.choices)
    app = root.get("app")
    keys = [k for k in reversed(choices) if not k.startswith("hydra")]  # Hydra lists them last first
    if choices.get("hydra") == JOB_SETTINGS:  # apps that run recorded jobs, locally or on SLURM
        keys += [k for k in HYDRA_GROUPS_SHOWN if k in choices]
    lines = []
    for key in keys:
        group, choice = key.partition("@")[0], choices[key]
        options = [o for o in group_options(group) if group != "experiment" or preset_app(o) in (None, app)]
        head = f"{key} (now: {'none' if choice is None else choice}): "
        lines.append(_wrap(head + ", ".join(options), indent=len(head)))
    return "\n".join(lines)


def setting_lines(root: DictConfig) -> str:
    """The app's own top-level settings (not groups) as ``key=value``; ``???`` where required."""
    groups = {re.split(r"[/.]", key.partition("@")[2] or key)[0] for key in root.hydra.runtime.choices}
    plain = OmegaConf.to_container(root, resolve=False)
    shown = [f"{k}={_short(_value(v))}" for k, v in plain.items() if k not in groups and k not in HIDDEN_SETTINGS]
    return _wrap(" ".join(shown), indent=0)


def group_options(group: str) -> list[str]:
    """The options of ``group`` on Hydra's search path (``conf/`` and any ``--config-dir``)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    if GlobalHydra.instance().is_initialized():
        return list(GlobalHydra.instance().config_loader().get_group_options(group, ObjectType.CONFIG))
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def preset_app(name: str) -> str | None:
    """The app an experiment preset is for, from its header's first command (None: unknown)."""
    path = conf_dir() / "experiment" / f"{name}.yaml"
    match = _COMMAND.search(path.read_text()) if path.is_file() else None
    return match[1] if match else None


def groups_resolver(*, _root_: DictConfig) -> str:
    return _template_safe(group_lines(_root_))


def settings_resolver(*, _root_: DictConfig) -> str:
    return _template_safe(setting_lines(_root_))


def _template_safe(text: str) -> str:
    """Hydra fills the help template with ``string.Template``: a literal ``$`` is ``$$``."""
    return text.replace("$", "$$")


def _value(value: object) -> str:
    """``value`` as a command line would spell it (``false``, ``null``, ``[a,b]``, ``{k:v}``)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _short(text: str, limit: int = 40) -> str:
    """A long value cut to ``limit`` characters (``--cfg job`` shows it whole)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _wrap(text: str, indent: int) -> str:
    """``text`` in lines of at most :data:`WIDTH`, indented by two (continuations by ``indent`` more)."""
    lines = textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent=" " * (2 + indent),
                          break_on_hyphens=False, break_long_words=False)  # fmt: skip
    return "\n".join(lines)
