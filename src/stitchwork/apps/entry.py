"""Turn a task function into a console-script entry point over ``conf/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from .config import conf_dir, register_resolvers


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A ``main()`` that registers stitchwork's resolvers and runs ``task`` under Hydra."""

    def main() -> Any:
        register_resolvers()
        return hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task)()

    main.__doc__ = f"Run the {config_name!r} app (Hydra overrides on the command line)."
    return main
