"""Bad inputs give one clear paragraph naming the key the user typed, exit non-zero, no traceback.

The command lines run through real console-script ``main()``s (several per process, see
``tests/cli_batch.py``) with ``HYDRA_FULL_ERROR`` unset, as a user's shell has it; the
traceback must still reach the job's log file and results.json, and the console when
``HYDRA_FULL_ERROR=1`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from stitchwork.apps.config import conf_dir, register_resolvers
from stitchwork.apps.config_check import check_config
from stitchwork.apps.failures import USER_ERROR_EXIT, print_failure, user_message
from stitchwork.apps.validate import UserError, is_user_error
from stitchwork.data import DatasetCorruptError, VisionData

from .real_format_files import write_cifar10

REPO = Path(__file__).resolve().parents[1]
FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
TINY = {"train": ["model.width=0.25", "recipe=adam", "recipe.epochs=1"],
        "stitch": ["model_a.width=0.25", "model_b.width=0.25", "recipe@recipe_a=adam", "recipe_a.epochs=1",
                   "recipe@recipe_b=adam", "recipe_b.epochs=1"],
        "rebasin": ["model.width=0.25", "recipe=adam", "recipe.epochs=1", "num_points=3"]}  # fmt: skip

#: Issue 11, items 7 and 8: (app, overrides, the exact message fragment).
ISSUE_CASES = [
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.lr=nan"],
     "matching.lr must be a positive finite number, got nan"),
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.epochs=-1"],
     "matching.epochs must be an integer >= 1, got -1"),
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.batch_size=0"],
     "matching.batch_size must be an integer >= 1, got 0"),
    ("stitch", [], "layer_pair.front is required and has no value"),
    ("train", ["model.width=abc"], "model.width must be a positive finite number, got 'abc'"),
    ("train", ["seed=abc"], "seed must be an integer in [0, 4294967295], got 'abc'"),
    ("train", ["data=cifar10", "data.root={corrupt}", "data.num_workers=0"], "cannot read {corrupt}/cifar-10-batches-py/data_batch_1"),
    ("train", ["hydra.run.dir=/proc/stitchwork/out"], "cannot create the job's output folder /proc/stitchwork"),
    ("rebasin", ["merge_lam=nan"], "merge_lam must be a finite number, got nan"),
]  # fmt: skip


def _run_batch(tmp_path: Path, cases: list[tuple[str, list[str], str]]) -> list[dict]:
    """Run the cases in one process from their own folders; HYDRA_FULL_ERROR unset."""
    corrupt = tmp_path / "corrupt"
    if not corrupt.exists():
        corrupt.mkdir()
        write_cifar10(corrupt)
        (corrupt / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle\x00")
    batch = [{"app": app, "args": [*TINY.get(app, []), *FAST, *(a.format(corrupt=corrupt) for a in args)],
              "cwd": str(tmp_path / f"case{i}")} for i, (app, args, _) in enumerate(cases)]  # fmt: skip
    (tmp_path / "cases.json").write_text(json.dumps(batch))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    subprocess.run([sys.executable, str(REPO / "tests" / "cli_batch.py"), str(tmp_path / "cases.json"),
                    str(tmp_path / "results.json")], env=env, check=True, timeout=1200)  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    for (app, args, fragment), result in zip(cases, results, strict=True):
        shown = f"stitchwork-{app} {' '.join(args)} exited {result['code']}:\n{result['output']}"
        assert result["code"] == USER_ERROR_EXIT, shown
        assert "Traceback" not in result["output"], shown
        assert fragment.format(corrupt=corrupt) in result["output"], shown
    return results


def test_issue_bad_inputs_give_one_paragraph_naming_the_key(tmp_path):
    _run_batch(tmp_path, ISSUE_CASES)
    # the traceback is not lost: results.json says failed with it, and so does the job's log
    (job,) = [p.parent for p in (tmp_path / "case0" / "outputs").rglob("results.json")]
    record = json.loads((job / "results.json").read_text())
    assert record["status"] == "failed" and "matching.lr must be a positive finite number" in record["error"]
    assert "Traceback" in record["traceback"] and "UserError" in record["traceback"]
    (log,) = job.glob("*.log")
    assert "Traceback" in log.read_text()
    # NaN is refused before anything is computed: the job failed and wrote no merged.pt
    rebasin_jobs = list((tmp_path / "case8" / "outputs").rglob("results.json"))
    assert len(rebasin_jobs) == 1 and not (rebasin_jobs[0].parent / "merged.pt").exists()
    assert json.loads(rebasin_jobs[0].read_text())["status"] == "failed"


def _compose(app: str, overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=app, overrides=overrides)


#: Checked in-process on the composed config, as every app's job body does first.
CONFIG_CASES = [
    ("train", ["model.width=nan"], "model.width must be a positive finite number, got nan"),
    ("train", ["model.width=-1"], "model.width must be a positive finite number, got -1"),
    ("train", ["model=mlp", "model.width=1.5"], "model.width must be an integer, got 1.5"),
    ("train", ["model=mlp", "model.depth=0"], "model.depth must be an integer >= 1, got 0"),
    ("train", ["+model.foo=1"], "model.foo is not an option here; valid: norm, width"),
    ("train", ["recipe.lr=inf"], "recipe.lr must be a positive finite number, got inf"),
    ("train", ["recipe.epochs=2.5"], "recipe.epochs must be an integer >= 0, got 2.5"),
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.epochs=0"], "matching.epochs must be an integer >= 1, got 0"),
    ("train", ["recipe.optimizer=foo"], "recipe.optimizer must be one of sgd, adam, adamw, got 'foo'"),
    ("train", ["recipe.momentum=nan"], "recipe.momentum must be a finite number >= 0, got nan"),
    ("train", ["+recipe.foo=1"], "recipe.foo is not an option here; valid: batch_size, epochs, label_smoothing, "
     "lr, momentum, nesterov, optimizer, precision, schedule, ssl, warmup_epochs, weight_decay"),
    ("train", ["recipe=simclr", "recipe.ssl.temperature=0"], "recipe.ssl.temperature must be a positive finite number, got 0"),
    ("train", ["data.batch_size=abc"], "data.batch_size must be an integer >= 1, got 'abc'"),
    ("train", ["data.val_size=1.5"], "data.val_size must be a count >= 0 or a fraction in [0, 1), got 1.5"),
    ("train", ["data.train_subset=0"], "data.train_subset must be null, a count >= 1 or a fraction in (0, 1], got 0"),
    ("train", ["data.num_workers=-1"], "data.num_workers must be an integer >= 0, got -1"),
    ("train", ["seed=-1"], "seed must be an integer in [0, 4294967295], got -1"),
    ("stitch", ["layer_pair.front=conv4", "seed_a=abc"], "seed_a must be an integer in [0, 4294967295], got 'abc'"),
    ("stitch", ["layer_pair.front=conv4", "recipe_a.lr=nan"], "recipe_a.lr must be a positive finite number, got nan"),
    ("stitch", ["layer_pair.front=conv4", "matching=soft_task_loss", "matching.temperature=0"],
     "matching.temperature must be a positive finite number, got 0"),
    ("stitch", ["layer_pair.front=conv4", "matching=l1", "matching.l1_lambda=nan"],
     "matching.l1_lambda must be a finite number >= 0, got nan"),
    ("stitch", ["layer_pair.front=conv4", "matching.ridge=-1"], "matching.ridge must be a finite number >= 0, got -1"),
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.schedule=foo"],
     "matching.schedule must be one of constant, cosine, step, got 'foo'"),
    ("stitch", ["layer_pair.front=conv4", "matching=task_loss", "matching.cache=abc"],
     "matching.cache must be true or false or null, got 'abc'"),
    ("stitch", ["layer_pair.front=conv4", "stitch=low_rank", "stitch.rank=0"], "stitch.rank must be an integer >= 1, got 0"),
    ("stitch", ["layer_pair.front=conv4", "+matching_overrides.task_loss.epochs=0"],
     "matching_overrides.task_loss.epochs must be an integer >= 1, got 0"),
    ("compare", ["similarity.n_subset=0"], "similarity.n_subset must be an integer >= 1, got 0"),
    ("compare", ["split=foo"], "split must be one of train, val, test, got 'foo'"),
    ("compare", ["similarity.max_moment_gib=nan"], "similarity.max_moment_gib must be a positive finite number, got nan"),
    ("rebasin", ["merge_lam=inf"], "merge_lam must be a finite number, got inf"),
    ("rebasin", ["num_points=1"], "num_points must be an integer >= 2, got 1"),
    ("rebasin", ["post=foo"], "post must be one of none, bn_reset, repair, got 'foo'"),
    ("rebasin", ["splits=[train,foo]"], "splits[1] must be one of train, val, test, got 'foo'"),
    ("rebasin", ["post_batches=0"], "post_batches must be an integer >= 1, got 0"),
    ("rebasin", ["matcher.max_sweeps=0"], "matcher.max_sweeps must be an integer >= 1, got 0"),
    ("rebasin", ["matcher.restarts=0"], "matcher.restarts must be an integer >= 1, got 0"),
    ("combine", ["k=abc"], "k must be an integer >= 1, got 'abc'"),
    ("combine", ["combine/sampler@sampler=bernoulli", "sampler.p=nan"], "sampler.p must be a number in [0, 1], got nan"),
    ("combine", ["combine/sampler@sampler=vicinity", "sampler.eps=inf"], "sampler.eps must be a finite number >= 0, got inf"),
    ("combine", ["qs=[0,nan]"], "qs[1] must be a number in [0, 1], got nan"),
    ("combine", ["chunk_size=0"], "chunk_size must be an integer >= 1, got 0"),
    ("visualize", ["lam=nan"], "lam must be a finite number, got nan"),
    ("visualize", ["visualize.lr=nan"], "visualize.lr must be a positive finite number, got nan"),
    ("visualize", ["visualize.steps=0"], "visualize.steps must be an integer >= 1, got 0"),
    ("visualize", ["merge=foo"], "merge must be one of none, bn_reset, repair, got 'foo'"),
    ("visualize", ["examples=-1"], "examples must be an integer >= 0, got -1"),
    ("layers", ["model.width=abc"], "model.width must be a positive finite number, got 'abc'"),
    ("train", ["model.norm=foo"], "model.norm must be one of bn, ln, none, got 'foo'"),
    ("train", ["zoo.on_corrupt=foo"], "zoo.on_corrupt must be one of retrain, error, got 'foo'"),
    ("rebasin", ["rebasin/matcher@matcher=saved", "matcher.path=/nonexistent/permutation.pt"],
     "matcher.path must be the path of an existing file, got '/nonexistent/permutation.pt'"),
]  # fmt: skip


@pytest.mark.parametrize(("app", "overrides", "message"), CONFIG_CASES)
def test_config_checks_name_the_key_and_what_is_valid(app, overrides, message):
    with pytest.raises(UserError) as caught:
        check_config(_compose(app, overrides))
    assert str(caught.value) == message


@pytest.mark.parametrize(("overrides", "message"), [
    (["recipe.ssl.drop=1.0"], "recipe.ssl.drop must be in [0, 1), got 1.0"),
    (["+recipe.ssl.tau=1"], "unknown recipe.ssl keys ['tau']; valid: drop, noise, probe_epochs, probe_lr, "
     "proj_dim, proj_hidden, scale, shift, temperature"),
])  # fmt: skip
def test_recipe_ssl_checks_are_user_errors_naming_the_key(overrides, message):
    with pytest.raises(ValueError) as caught:
        check_config(_compose("train", ["recipe=simclr", *overrides]))
    assert is_user_error(caught.value) and str(caught.value) == message


@pytest.mark.parametrize("app", ["train", "stitch", "compare", "rebasin", "combine", "visualize", "report", "layers"])
def test_default_configs_pass_the_checks(app):
    overrides = {"stitch": ["layer_pair.front=conv4"], "report": ["dirs=[x]"]}.get(app, [])
    check_config(_compose(app, overrides))


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    data = VisionData("cifar10", root=str(tmp_path), num_workers=0)
    with pytest.raises(DatasetCorruptError, match=f"cifar10: cannot read {bad} "):
        data.setup()
    assert user_message(DatasetCorruptError(f"cannot read {bad}")) == f"cannot read {bad}"


def test_a_bug_keeps_its_traceback_and_a_user_error_does_not(capsys):
    try:
        raise RuntimeError("an internal invariant broke")
    except RuntimeError as err:
        assert user_message(err) is None
        assert print_failure(err) == 1
    assert "Traceback" in capsys.readouterr().err
    try:
        raise UserError("k must be an integer >= 1, got 0")
    except UserError as err:
        assert print_failure(err) == USER_ERROR_EXIT
    printed = capsys.readouterr().err
    assert "Traceback" not in printed and "error: k must be an integer >= 1, got 0" in printed


def test_hydra_full_error_prints_the_traceback_on_the_console(run_cli):
    proc = run_cli("train", "seed=abc", *FAST, check=False, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "UserError: seed must be an integer" in proc.stderr
