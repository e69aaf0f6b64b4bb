"""Turn a task function into a console-script entry point over ``conf/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sys

import hydra
from omegaconf import DictConfig

from .config import conf_dir, register_resolvers
from .slurm_check import require_slurm_for_argv


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A ``main()`` that registers stitchwork's resolvers and runs ``task`` under Hydra."""

    def main() -> Any:
        # Before Hydra submits anything: a SLURM launcher without SLURM is a clear error.
        require_slurm_for_argv(sys.argv[1:])
        register_resolvers()
        return hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task)()

    main.__doc__ = f"Run the {config_name!r} app (Hydra overrides on the command line)."
    return main
