"""results.json records: atomic, defensive reading, skip-if-done, report table."""

from __future__ import annotations

import csv
import json
import os

import pytest

from stitchwork.sweep import (
    JobRecord,
    ResultsError,
    collect_results,
    is_done,
    read_results,
    write_results,
    write_table,
)
from stitchwork.utils.atomic import atomic_write_json
from stitchwork.utils.hashing import canonical_json, content_hash


def test_hash_ignores_key_order_and_int_float_spelling():
    assert content_hash({"a": 1, "b": {"c": 2.0}}) == content_hash({"b": {"c": 2}, "a": 1.0})
    assert content_hash({"a": 1}) != content_hash({"a": 1.5})
    assert canonical_json({"b": [1, 2], "a": None}) == '{"a":null,"b":[1,2]}'


def test_record_lifecycle_and_is_done(tmp_path):
    record = JobRecord(app="train", identity="abc", config={"seed": 0})
    write_results(tmp_path, record)
    assert read_results(tmp_path)["status"] == "running" and not is_done(tmp_path)
    write_results(tmp_path, record.succeed({"acc": 0.5, "curve": [1, 2]}))
    stored = read_results(tmp_path / "results.json")
    assert stored["status"] == "ok" and stored["metrics"]["acc"] == 0.5
    assert stored["timings"]["wall_time_s"] >= 0 and "commit" in stored["git"]
    assert is_done(tmp_path)


def test_failed_record_keeps_the_error(tmp_path):
    record = JobRecord(app="train", identity="abc", config={})
    try:
        raise FloatingPointError("loss is nan")
    except FloatingPointError as err:
        record.fail(err)
    write_results(tmp_path, record)
    stored = read_results(tmp_path)
    assert stored["status"] == "failed" and stored["error"] == "FloatingPointError: loss is nan"
    assert "raise FloatingPointError" in stored["traceback"] and not is_done(tmp_path)


@pytest.mark.parametrize("content", ["", '{"status": "ok"', '{"metrics": {}}', "[1, 2]"])
def test_corrupt_or_partial_results_are_not_done(tmp_path, content):
    (tmp_path / "results.json").write_text(content)
    assert not is_done(tmp_path)
    with pytest.raises(ResultsError):
        read_results(tmp_path)


def test_atomic_write_leaves_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"status": "ok"})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"status": object()})
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert os.listdir(tmp_path) == ["results.json"]  # no temp files left behind


def test_nan_metrics_are_written_as_null(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"x": float("nan"), "y": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": None, "y": [None, 1.0]}


def test_collect_results_flattens_and_reports_unreadable(tmp_path):
    for i, status in enumerate(["ok", "failed"]):
        record = JobRecord(app="stitch", identity=f"id{i}", config={"model": {"width": i}, "seed": i})
        record.metrics = {"acc": 0.1 * i, "curve": [1, 2]}
        record.status = status
        write_results(tmp_path / f"job{i}", record)
    (tmp_path / "job2").mkdir()
    (tmp_path / "job2" / "results.json").write_text("{broken")
    rows, bad = collect_results([tmp_path])
    assert [r["identity"] for r in rows] == ["id0", "id1"]
    assert rows[1]["config.model.width"] == 1 and rows[1]["metrics.acc"] == pytest.approx(0.1)
    assert "metrics.curve" not in rows[0]  # curves stay in results.json, not in the table
    assert len(bad) == 1 and bad[0][0].parent.name == "job2"
    out = write_table(rows, tmp_path / "report" / "results.csv")
    with out.open() as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_results([tmp_path / "nope"])


def test_job_identity_folds_the_matching_override_that_applies():
    from stitchwork.apps.config import job_id

    direct = {"matching": {"_target_": "m.direct", "ridge": 0.0}, "seed": 0}
    task = {"matching": {"_target_": "m.task_loss", "epochs": 30}, "seed": 0}
    short = {"task_loss": {"epochs": 5}}
    # an override for another method leaves a job's identity alone
    assert job_id({**direct, "matching_overrides": short}) == job_id(direct)
    assert job_id({**direct, "matching_overrides": {"task_loss": {"epochs": 9}}}) == job_id(direct)
    # the override that applies is the same as setting the value directly
    assert job_id({**task, "matching_overrides": short}) == job_id(
        {"matching": {"_target_": "m.task_loss", "epochs": 5}, "seed": 0})
    assert job_id({**task, "matching_overrides": short}) != job_id(task)
    # runtime settings never count (trainer: only its runtime keys; the device count trains
    # other base models under DDP, so since issue 11 it is part of the identity)
    runtime_trainer = {"accelerator": "gpu", "enable_progress_bar": False, "devices": 1}
    assert job_id({**direct, "logger": {"kind": "wandb"}, "force": True, "trainer": runtime_trainer}) == job_id(direct)
    assert job_id({**direct, "trainer": {"devices": 4}}) != job_id(direct)
