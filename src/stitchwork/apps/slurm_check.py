"""Fail early, and clearly, when a SLURM launcher is asked for on a machine without SLURM.

Without this check submitit stops with ``Could not detect "srun", are you indeed on a
slurm cluster?`` (no SLURM installed) or retries ``sbatch`` against a controller that is
not running. :func:`require_slurm` says which launcher needs SLURM and how to start the
one-node test cluster that ships with stitchwork.

The check has to run in the submitting process before Hydra starts the sweep: a Hydra
callback cannot stop a sweep (Hydra turns callback exceptions into warnings), a launcher
subclass must live in the ``hydra_plugins`` package, and the task function runs only
inside the jobs. So each console entry point calls :func:`require_slurm_for_argv` on its
command line first. Standard library only.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

#: Commands submitit runs to submit (sbatch, srun inside the job script) and to poll.
SLURM_COMMANDS = ("sbatch", "srun", "squeue")

_HOW_TO_START = (
    "To try the SLURM path on this machine, start the one-node test cluster "
    "(Debian packages; needs root): `bash launch/install_slurm.sh && bash launch/slurm_up.sh` "
    "(see launch/README.md). Otherwise run the sweep locally with hydra/launcher=local "
    "or without a hydra/launcher override."
)


def is_slurm_launcher(launcher_target: str) -> bool:
    """Return True when a launcher name or ``_target_`` refers to a SLURM launcher."""
    return "slurm" in launcher_target.lower()


def require_slurm(launcher_target: str, timeout_s: float = 20.0) -> None:
    """Raise RuntimeError unless the SLURM client commands work on this machine.

    Parameters
    ----------
    launcher_target : str
        The launcher asking for SLURM (preset name or ``_target_``), named in the error.
    timeout_s : float
        How long ``squeue`` may take to answer before the controller counts as down.

    Raises
    ------
    RuntimeError
        When ``sbatch``, ``srun`` or ``squeue`` is not on PATH, or ``squeue`` fails
        (controller down, munge not running, no slurm.conf). The message names the
        launcher and says how to start the local cluster.
    """
    missing = [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd) is None]
    if missing:
        raise RuntimeError(
            f"The Hydra launcher '{launcher_target}' submits jobs to SLURM, but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH: "
            f"SLURM is not installed here. {_HOW_TO_START}"
        )
    try:
        probe = subprocess.run(
            ["squeue", "--noheader", "--format=%i"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        reason = f"`squeue` did not answer within {timeout_s:g} s"
    else:
        if probe.returncode == 0:
            return
        detail = (probe.stderr or probe.stdout).strip().splitlines()
        reason = (
            f"`squeue` failed (exit {probe.returncode}: {detail[-1] if detail else 'no output'})"
        )
    raise RuntimeError(
        f"The Hydra launcher '{launcher_target}' submits jobs to SLURM, but {reason}: "
        f"no SLURM controller answers. {_HOW_TO_START}"
    )


def launcher_choice(argv: Sequence[str]) -> str | None:
    """Return the ``hydra/launcher=NAME`` choice on a command line (the last one wins)."""
    choice = None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == "hydra/launcher":
            choice = value or None
    return choice


def require_slurm_for_argv(argv: Sequence[str]) -> None:
    """Call :func:`require_slurm` when a command line starts a multirun on a SLURM launcher.

    A SLURM launcher is ``submitit_slurm`` or any preset whose name contains ``slurm``
    (stitchwork's ``slurm_cpu``, ``slurm_gpu``, ``slurm_multigpu``). Without ``-m`` /
    ``--multirun`` Hydra runs the job in-process and never uses the launcher, so nothing
    is checked. A launcher chosen inside a config file rather than on the command line is
    not seen here; submitit's own error applies then.

    Parameters
    ----------
    argv : Sequence[str]
        The command-line arguments, without the program name (``sys.argv[1:]``).
    """
    if not any(arg in ("-m", "--multirun", "hydra.mode=MULTIRUN") for arg in argv):
        return
    choice = launcher_choice(argv)
    if choice is not None and is_slurm_launcher(choice):
        require_slurm(f"hydra/launcher={choice}")
