"""Turn a task function into a console-script entry point over ``conf/``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .config import conf_dir, register_resolvers
from .failures import print_failure
from .slurm_check import require_slurm_for_argv


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """A ``main()`` that registers stitchwork's resolvers and runs ``task`` under Hydra."""

    def main() -> Any:
        # Before Hydra submits anything: a SLURM launcher without SLURM is a clear error.
        require_slurm_for_argv(sys.argv[1:])
        register_resolvers()
        full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        try:
            with _hydra_raises():
                return hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task)()
        except (SystemExit, Exception) as stop:  # Hydra exits (--help, ...) or raises
            failed = not isinstance(stop, SystemExit) or stop.code not in (0, None)
            code = None if isinstance(stop, SystemExit) or full_error else print_failure(stop)
            if failed and _is_multirun(sys.argv[1:]):
                summarise_sweep()
            if code is None:
                raise
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
    return "-m" in argv or "--multirun" in argv


class RememberSweepDir(Callback):
    """Hydra callback (conf/hydra/stitchwork.yaml) noting the sweep folder for :func:`summarise_sweep`."""

    sweep_dir: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        RememberSweepDir.sweep_dir = str(config.hydra.sweep.dir)


def summarise_sweep() -> None:
    """After a sweep that ended in error: say which jobs are ok, failed, or never finished."""
    from ..sweep.report import collect_results

    sweep_dir = RememberSweepDir.sweep_dir
    if sweep_dir is None:  # the sweep never started (e.g. a bad override)
        return
    try:
        rows, bad = collect_results([sweep_dir])
    except FileNotFoundError:
        return
    print(f"\nSweep {sweep_dir} ended with errors. Per job:", file=sys.stderr)
    for row in rows:
        status = row["status"] if row["status"] != "running" else "did not finish (killed or preempted)"
        error = f": {row['error']}" if row.get("error") else ""
        print(f"  {row['path']}: {status}{error}", file=sys.stderr)
    for path, reason in bad:
        print(f"  {path}: unreadable ({reason})", file=sys.stderr)
    print("Finished jobs are kept; rerunning the same command runs only the others.", file=sys.stderr)
