"""W&B runs read back from the offline ``.wandb`` files: effective config, ids, names."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stitchwork.apps.config import job_id
from stitchwork.apps.logging import run_id

from .wandb_offline import read_run

pytest.importorskip("wandb", reason="wandb is not installed (pip install -e '.[dev]')")

OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
#: Direct matching (no epochs): quick; the per-method override is what the effective config must show.
JOB = ["matching=direct", "+matching_overrides.direct.ridge=0.25", "+matching_overrides.task_loss.epochs=3",
       "tiny=two_models", "logger=wandb", "device=cpu"]  # fmt: skip


def _runs(sweep: Path) -> dict[str, tuple[dict, dict]]:
    """Per job folder name: (results.json, the W&B run read back from its offline file)."""
    found = {}
    for results in sorted(sweep.glob("*/results.json")):
        (log,) = results.parent.glob("wandb/offline-run-*/run-*.wandb")
        found[results.parent.name] = (json.loads(results.read_text()), read_run(log))
    return found


def test_wandb_runs_log_the_effective_config_distinct_ids_and_varying_names(run_cli, tmp_path):
    run_cli(
        "stitch", "--multirun", "layer_pair.front=conv4,conv5", "sweep_name=wa", *JOB, env=OFFLINE
    )
    run_cli("stitch", "--multirun", "layer_pair.front=conv4", "sweep_name=wb", *JOB, env=OFFLINE)
    first = _runs(tmp_path / "multirun" / "stitch" / "wa")
    second = _runs(tmp_path / "multirun" / "stitch" / "wb")
    assert len(first) == 2 and len(second) == 1
    for identity, (record, run) in {**first, **second}.items():
        assert record["status"] == "ok", record.get("error")
        for config in (record["config"], run["config"]):  # what ran: the override folded in
            assert config["matching"]["ridge"] == 0.25 and "matching_overrides" not in config
        assert job_id(record["config"]) == identity == record["identity"]  # identity of what ran
        assert run["group"] == record["config"]["sweep_name"]
        assert f"sweep:{run['group']}" in run["tags"]
        assert run["id"] == run_id("stitch", identity, "stitchwork", run["group"])
    names = {run["name"] for _, run in first.values()}
    assert names == {"layer_pair.front=conv4", "layer_pair.front=conv5"}  # only what varies
    (shared,) = set(first) & set(second)  # the same job in two sweeps: two runs, never one
    assert first[shared][1]["id"] != second[shared][1]["id"]


def test_jobs_in_launcher_processes_are_named_by_what_varies_too(run_cli, tmp_path):
    """submitit runs each job in its own process (as on SLURM), away from the sweep's expansion."""
    run_cli("stitch", "--multirun", "hydra/launcher=local", "layer_pair.front=conv4,conv5", "sweep_name=wl",
            *JOB, env=OFFLINE)  # fmt: skip
    runs = _runs(tmp_path / "multirun" / "stitch" / "wl")
    assert {record["status"] for record, _ in runs.values()} == {"ok"}
    assert {run["name"] for _, run in runs.values()} == {"layer_pair.front=conv4", "layer_pair.front=conv5"}


def test_the_effective_config_changes_the_identity():
    base = {"matching": {"_target_": "x.task_loss", "epochs": 30}, "seed": 0}
    folded = {**base, "matching_overrides": {"task_loss": {"epochs": 3}}}
    effective = {**base, "matching": {**base["matching"], "epochs": 3}}
    assert job_id(folded) == job_id(effective) != job_id(base)


def test_report_syncs_finished_jobs_to_wandb_idempotently(run_cli, tmp_path):
    none = [a for a in JOB if a != "logger=wandb"]
    sweep_args = ["stitch", "--multirun", "layer_pair.front=conv4,conv5", "sweep_name=ws", *none]
    done = run_cli(*sweep_args)
    sweep = tmp_path / "multirun" / "stitch" / "ws"
    rel = "multirun/stitch/ws"  # the summary names the sweep folder as Hydra has it
    assert f"Sweep {rel}: 2 jobs: 2 ok, 0 skipped as done, 0 failed, 0 interrupted." in done.stderr
    assert f"stitchwork-report 'dirs=[{rel}]' writes {rel}/report/" in done.stderr
    assert not list(sweep.rglob("*.wandb"))  # logger=none: nothing reached W&B
    records = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    figure = next(iter(records))
    plt.imsave(sweep / figure / "curve.png", np.eye(8))  # a figure beside one record
    for _ in range(2):  # a re-sync resumes the same runs
        run_cli("report", f"dirs=[{sweep}]", "logger=wandb", env=OFFLINE)
    assert (
        sweep / "report" / "index.html"
    ).is_file()  # the offline page (tests/test_html_report.py)
    for identity, record in records.items():
        runs = [
            read_run(p)
            for p in sorted((sweep / "report" / "wandb_sync" / identity).rglob("run-*.wandb"))
        ]
        assert len(runs) == 2 and runs[0]["id"] == runs[1]["id"] == run_id(
            "stitch", identity, "stitchwork", "ws"
        )
        run = runs[0]
        front = record["config"]["layer_pair"]["front"]  # back defaults to front: both vary
        assert run["name"] == f"layer_pair.back={front},layer_pair.front={front}"
        assert run["config"]["matching"]["ridge"] == 0.25 and run["group"] == "ws"
        assert run["summary"]["stitched_acc"] == record["metrics"]["stitched_acc"]
        images = [f for f in run["files"] if f.startswith("media/images/curve")]
        assert bool(images) == (identity == figure)
    (report_log,) = sorted((sweep / "report" / "wandb").glob("offline-run-*/run-report-*.wandb"))[
        -1:
    ]
    report = read_run(report_log)
    assert report["group"] == "ws"  # the report run joins the sweep's group
    (table,) = [f for f in report["files"] if f.startswith("media/table/matrix/stitched_acc/")]
    cells = json.loads((report_log.parent / "files" / table).read_text())
    fronts = {
        row[0]: dict(zip(cells["columns"][1:], row[1:], strict=True)) for row in cells["data"]
    }
    for record in records.values():
        front = record["config"]["layer_pair"]["front"]
        assert fronts[front][f"back {front}"] == record["metrics"]["stitched_acc"]
    again = run_cli(*sweep_args)
    assert "2 jobs: 0 ok, 2 skipped as done, 0 failed, 0 interrupted." in again.stderr
    assert f"report (tables, figures): {rel}/report/" in again.stderr
