"""Turn a task function into a console-script entry point over ``conf/``."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import hydra
from omegaconf import DictConfig

from ..sweep.signals import JobInterrupted
from .config import conf_dir, register_resolvers
from .failures import print_failure
from .multirun import SweepGuard, summarise_sweep
from .objective import sweeper_return
from .quiet import quiet_console, without_hydra_failure_line
from .slurm_check import require_slurm_for_argv
from .sweeper_check import require_optuna_for_argv


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A ``main()`` that registers stitchwork's resolvers and runs ``task`` under Hydra.

    Exit codes: 0 when every job is ``ok``; 1 when a job failed (or a multirun has any job
    that is not ok); 128 + the signal number when a signal interrupted a job. A multirun
    always ends with its per-job summary. Each job returns its record, or the float of its
    ``objective`` setting for an optimising sweeper (:mod:`.objective`).
    """

    @functools.wraps(task)  # Hydra names the job (and its log file) after the app's module
    def job(cfg: DictConfig) -> Any:
        return sweeper_return(cfg, task(cfg))

    def main() -> Any:
        quiet_console()  # before Lightning can print its hints
        argv = sys.argv[1:]
        # Before Hydra submits anything: a SLURM launcher without SLURM is a clear error.
        require_slurm_for_argv(argv)
        register_resolvers()
        multirun = _is_multirun(argv)
        full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        code: int | None = 0
        try:
            require_optuna_for_argv(argv)
            with _hydra_raises(), nullcontext() if full_error else without_hydra_failure_line():
                hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(job)()
        except JobInterrupted as stop:
            print(f"\n{config_name}: {stop}; the job's results.json records it", file=sys.stderr)
            code = stop.exit_code
        except SystemExit as stop:  # Hydra exits (--help, ...), or the sweep guard refused the sweep
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except Exception as err:  # a user error is one paragraph; a bug (or HYDRA_FULL_ERROR=1) raises
            summarised = multirun and SweepGuard.sweep_dir is not None  # the summary lists job errors
            code = None if full_error else print_failure(err, summarised=summarised)
            if code is None:
                if multirun:
                    summarise_sweep(1)
                raise
        if multirun:
            code = summarise_sweep(code)
        if code:
            sys.exit(code)

    main.__doc__ = f"Run the {config_name!r} app (Hydra overrides on the command line)."
    return main


@contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let errors leave Hydra as exceptions (``HYDRA_FULL_ERROR=1``), so :func:`print_failure` presents them."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def _is_multirun(argv: list[str]) -> bool:
    return "-m" in argv or "--multirun" in argv or "hydra.mode=MULTIRUN" in argv
