"""Matrix stitch jobs end to end (subprocesses): records, report, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: The base models of tests/test_apps_stitch.py (the session zoo trains them once).
TINY = ["recipe_a.epochs=1", "recipe_b.epochs=1", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
MATRIX = ["layer_pair=matrix", "device=cpu", *TINY]


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_matrix_job_equals_the_single_pair_job_and_the_report_draws_it(run_cli, tmp_path):
    run_cli("stitch", *MATRIX, "layer_pair.fronts=[conv4,pool]", "layer_pair.backs=[conv4,pool]")
    (record,) = _results(tmp_path / "outputs")
    assert record["status"] == "ok"
    m, folder = record["metrics"], tmp_path / "outputs" / "stitch" / "default" / record["identity"]
    assert [(p["front"], p["back"], p["status"]) for p in m["pairs"]] == [
        ("conv4", "conv4", "ok"), ("conv4", "pool", "skipped"), ("pool", "conv4", "skipped"), ("pool", "pool", "ok")]
    assert "flatten_linear" in m["pairs"][1]["reason"]
    assert m["matrices"]["stitched_acc"][0][1] is None and m["matrices"]["stitched_acc"][1][1] == m["pairs"][3]["stitched_acc"]
    assert record["config"]["layer_pair"]["fronts"] == ["conv4", "pool"]  # the identity covers the lists
    assert len(list((folder / "pairs").glob("*.json"))) == 4 and (folder / "heatmap_all_jobs.png").is_file()

    run_cli("stitch", "layer_pair.front=conv4", "device=cpu", *TINY)  # the same pair as its own job
    single = next(r for r in _results(tmp_path / "outputs") if "pairs" not in r["metrics"])["metrics"]
    pair = m["pairs"][0]
    for key, value in single.items():
        if isinstance(value, float) and not key.endswith("_s"):
            assert pair[key] == pytest.approx(value, abs=1e-6, rel=0), key

    run_cli("report", f"dirs=[{tmp_path / 'outputs'}]")
    report = tmp_path / "outputs" / "report"
    names = {p.name for p in report.iterdir()}
    assert {"sanity.csv", "results.csv"} <= names  # groups: the matrix job's settings, the single job's
    assert "heatmap_layer_pair.max_pairs_per_step=16.png" in names
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 5  # four pairs of the matrix job, one single-pair job
    assert {r["status"] for r in rows} == {"ok", "skipped"}


def test_killed_matrix_job_resumes_at_the_next_pair(run_cli, tmp_path):
    args = [*MATRIX, "layer_pair.fronts=[conv3,conv5]", "layer_pair.backs=[conv4,conv6]",
            "layer_pair.max_pairs_per_step=1", "matching=task_loss", "matching.epochs=4", "stitch.resize=true"]  # fmt: skip
    run_cli("stitch", "layer_pair=same", "layer_pair.front=conv8", "device=cpu", *TINY)  # base models in the zoo
    cmd = [sys.executable, "-m", "stitchwork.apps.stitch", *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline, first = time.monotonic() + 600, []
    while not first and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        first = sorted((tmp_path / "outputs").rglob("pairs/*.json"))
    if proc.poll() is not None:
        pytest.fail(f"the matrix job ended (exit {proc.returncode}) before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p: p.read_bytes() for p in sorted((tmp_path / "outputs").rglob("pairs/*.json"))}
    assert 1 <= len(kept) < 4
    (killed,) = _results(tmp_path / "outputs" / "stitch" / "default" / first[0].parent.parent.name)
    assert killed["status"] == "running"

    again = run_cli("stitch", *args)
    assert f"{len(kept)} of 4 pairs already done, resuming" in again.stdout + again.stderr
    for path, text in kept.items():
        assert path.read_bytes() == text  # finished pairs are not redone
    (done,) = [r for r in _results(tmp_path / "outputs") if "pairs" in r["metrics"]]
    assert done["status"] == "ok" and [p["status"] for p in done["metrics"]["pairs"]] == ["ok"] * 4


def test_a_larger_matrix_reuses_the_pairs_a_smaller_one_of_its_settings_finished(run_cli, tmp_path):
    small = run_cli("stitch", *MATRIX, "layer_pair.fronts=[conv4]", "layer_pair.backs=[conv4,conv6]")
    assert "reused" not in small.stdout + small.stderr
    (first,) = _results(tmp_path / "outputs")
    large = run_cli("stitch", *MATRIX, "layer_pair.fronts=[conv4,conv6]", "layer_pair.backs=[conv4,conv6]")
    assert f"2 of 4 pairs reused from job(s) {first['identity']}" in large.stdout + large.stderr
    (second,) = [r for r in _results(tmp_path / "outputs") if r["identity"] != first["identity"]]
    pairs = {(p["front"], p["back"]): p for p in second["metrics"]["pairs"]}
    for mine in first["metrics"]["pairs"]:
        theirs = pairs[(mine["front"], mine["back"])]
        assert theirs.pop("reused_from") == first["identity"] and theirs == mine
    assert all("reused_from" not in p for (f, _), p in pairs.items() if f == "conv6")

    # jobs of other settings (here the matching method) never lend their pairs; force=true recomputes all
    other = run_cli("stitch", *MATRIX, "layer_pair.fronts=[conv4,conv6]", "layer_pair.backs=[conv4,conv6]",
                    "matching=task_loss", "matching.epochs=1")  # fmt: skip
    assert "reused" not in other.stdout + other.stderr
    forced = run_cli("stitch", *MATRIX, "layer_pair.fronts=[conv4,conv6]", "layer_pair.backs=[conv4,conv6]", "force=true")
    assert "reused" not in forced.stdout + forced.stderr
    (redone,) = [r for r in _results(tmp_path / "outputs") if r["identity"] == second["identity"]]
    assert all("reused_from" not in p for p in redone["metrics"]["pairs"])


@pytest.mark.parametrize("override, message", [
    ("layer_pair.fronts=[conv2,conv99]", "layer_pair.fronts: unknown cut point(s) 'conv99'"),
    ("layer_pair.backs=[]", "layer_pair.backs is an empty list"),
])  # fmt: skip
def test_bad_matrix_lists_fail_before_any_base_model_is_trained(run_cli, tmp_path, override, message):
    zoo = tmp_path / "zoo"
    proc = run_cli("stitch", *MATRIX, override, check=False, env={"STITCHWORK_ZOO": str(zoo)})
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout and "conv1, conv2, conv3" in proc.stderr + proc.stdout
    assert not any(zoo.rglob("*.pt")) if zoo.exists() else True
