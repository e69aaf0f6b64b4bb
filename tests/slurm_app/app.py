"""A tiny Hydra app for the SLURM tests: each job writes one JSON file into its own output dir.

Run directly, e.g. ``python tests/slurm_app/app.py -m x=1,2,3 hydra/launcher=slurm_cpu
hydra.searchpath=[file:///abs/path/to/conf]``. The written record holds the job's value,
the SLURM ids it ran under and its process id, so tests can check that every job of a
sweep ran as a task of one job array.
"""

import json
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from stitchwork.apps.slurm_check import require_slurm_for_argv


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Sleep ``cfg.sleep_s`` seconds, then write ``result.json`` with ``x`` squared."""
    time.sleep(cfg.sleep_s)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    env = os.environ
    record = {
        "x": cfg.x,
        "y": cfg.x**2,
        "pid": os.getpid(),
        "slurm_job_id": env.get("SLURM_JOB_ID"),
        "slurm_array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
    }
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(out_dir / "result.json")
    return float(record["y"])


if __name__ == "__main__":
    require_slurm_for_argv(sys.argv[1:])  # as every stitchwork console entry point does
    main()
