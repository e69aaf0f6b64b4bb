"""Fail early, with the install command, when the Optuna sweeper is asked for but not installed.

Without this check Hydra stops with ``Could not find 'hydra/sweeper/optuna'`` and a list of
the sweepers it has, which does not say that the plugin is an optional extra of stitchwork.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from .config import conf_dir
from .validate import UserError

OPTUNA_PLUGIN = "hydra_plugins.hydra_optuna_sweeper"


def wants_optuna(argv: Sequence[str]) -> bool:
    """Whether a command line picks ``hydra/sweeper=optuna``, itself or by an ``hparams_search`` preset."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if sep and key == "hydra/sweeper" and value == "optuna":
            return True
        preset = conf_dir() / "hparams_search" / f"{value}.yaml"
        if sep and key == "hparams_search" and preset.is_file() and "/hydra/sweeper: optuna" in preset.read_text():
            return True
    return False


def require_optuna_for_argv(argv: Sequence[str]) -> None:
    """Raise a :class:`UserError` naming the extra when ``argv`` wants Optuna and it is missing."""
    if wants_optuna(argv) and importlib.util.find_spec(OPTUNA_PLUGIN) is None:
        raise UserError(
            "hydra/sweeper=optuna needs the Optuna sweeper plugin, which is not installed here; "
            "install stitchwork's extra: pip install -e '.[optuna]' (or pip install hydra-optuna-sweeper)"
        )
