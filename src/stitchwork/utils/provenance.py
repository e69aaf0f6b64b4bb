"""Where a result came from: git commit, dirty flag, versions, host."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def git_info(start: str | Path | None = None) -> dict:
    """Commit and dirty flag of the repository holding ``start`` (this package by default).

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout (an installed wheel).
    """
    where = Path(start) if start is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment_info() -> dict:
    """Versions of the stack and the host, for the provenance block of a record."""
    import lightning
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "host": platform.node(),
        "cuda": torch.cuda.is_available(),
    }
