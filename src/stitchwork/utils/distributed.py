"""Which process of a data-parallel job this is, read from the launcher's environment."""

from __future__ import annotations

import os


def global_rank() -> int:
    """Global rank from torchrun (``RANK``), SLURM tasks (``SLURM_PROCID``) or Lightning's
    own process launcher (``NODE_RANK`` / ``LOCAL_RANK``); 0 in a single process."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    if "LOCAL_RANK" in os.environ:
        local = int(os.environ["LOCAL_RANK"])
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return int(os.environ.get("NODE_RANK", "0")) * per_node + local
    return 0


def is_main_process() -> bool:
    """True on rank 0: the process that writes records and stores models."""
    return global_rank() == 0
