"""``stitchwork-report``: collect the results.json files of sweeps into one table.

    stitchwork-report 'dirs=[multirun/train/default]'
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from ..sweep.report import collect_results, write_table
from .entry import hydra_entry

log = logging.getLogger("stitchwork")


def task(cfg: DictConfig) -> dict:
    dirs = [Path(d) for d in cfg.dirs]
    if not dirs:
        raise ValueError("stitchwork-report needs at least one sweep folder: dirs=[path,...]")
    out = Path(cfg.out) if cfg.out else dirs[0] / "report"
    rows, bad = collect_results(dirs)
    for path, reason in bad:
        log.warning("not counted as done: %s (%s)", path, reason)
    table = write_table(rows, out / "results.csv")
    figures: list[str] = []
    for figure in cfg.get("figures", []):
        figures += [str(p) for p in instantiate(figure)(rows, out)]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "running")}
    print(f"{len(rows)} jobs ({counts}) -> {table}; {len(bad)} unreadable; {len(figures)} figures")
    return {"table": str(table), "rows": len(rows), "unreadable": len(bad), "figures": figures, **counts}


main = hydra_entry("report", task)

if __name__ == "__main__":
    main()
