"""What the apps print: no library chatter, each user error once, a help page per app, the config tree.

The console checks run real apps in subprocesses (Lightning prints its hints to the stderr
it found at import, so only a process of its own shows them); ``--help`` and bad inputs
run several command lines in one process (``tests/cli_batch.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stitchwork.apps.config import conf_dir, job_id, register_resolvers, to_plain
from stitchwork.apps.quiet import HARMLESS_INFO, LIGHTNING_LOGGERS, DropMessages, quiet_console

REPO = Path(__file__).resolve().parents[1]
APPS = ("train", "stitch", "compare", "rebasin", "combine", "visualize", "report", "layers")

#: What Lightning and torch print during a base model's training, as seen before the filter.
NOISE = (
    "The `srun` command is available",
    "LitLogger",
    "litlogger",
    "LeafSpec",
    "weights_only",
    "GPU available",
    "TPU available",
    "to estimate number of stepping batches",
    "`Trainer.fit` stopped",
    "does not have many workers",
)


def _batch(tmp_path: Path, cases: list[tuple[str, list[str]]]) -> list[dict]:
    """Run ``(app, args)`` cases in one process, HYDRA_FULL_ERROR unset; code and output of each."""
    spec = [{"app": app, "args": args, "cwd": str(tmp_path / f"case{i}")} for i, (app, args) in enumerate(cases)]
    (tmp_path / "cases.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    subprocess.run([sys.executable, str(REPO / "tests" / "cli_batch.py"), "cases.json", "results.json"],
                   cwd=tmp_path, env=env, check=True, timeout=600)  # fmt: skip
    return json.loads((tmp_path / "results.json").read_text())


def _help_file(app: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(conf_dir() / "hydra" / "help" / f"{app}.yaml"))


def _examples(app: str) -> list[str]:
    return [line for line in _help_file(app)["footer"].splitlines() if line.strip()]


# -- quiet consoles --------------------------------------------------------------------------


def test_quiet_console_drops_exactly_the_known_warnings_and_lightning_notes():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_console()
        for message, category in [
            ("The `srun` command is available on your system but is not used. HINT: ...", UserWarning),
            ("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning),
            ("You are using `torch.load` with `weights_only=False` (the current default)", FutureWarning),
            ("The 'train_dataloader' does not have many workers which may be a bottleneck.", UserWarning),
            ("a real warning about srun", UserWarning),
        ]:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in seen] == ["a real warning about srun"]

    logger = logging.getLogger(LIGHTNING_LOGGERS[0])
    kept: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: kept.append(record.getMessage())
    logger.addHandler(handler)
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        quiet_console()  # twice: still one filter
        assert sum(isinstance(f, DropMessages) for f in logger.filters) == 1
        for message in ("GPU available: False, used: False", "TPU available: False, using: 0 TPU cores",
                        "💡 Tip: For seamless cloud logging and experiment tracking, try installing ...",
                        "Loading `train_dataloader` to estimate number of stepping batches.",
                        "`Trainer.fit` stopped: `max_epochs=1` reached.",
                        "`weights_only` was not set, defaulting to `False`.",
                        "Restoring states from the checkpoint path at last.ckpt"):  # fmt: skip
            logger.info(message)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
    assert kept == ["Restoring states from the checkpoint path at last.ckpt"]
    assert len(HARMLESS_INFO) == 5


def test_training_job_console_is_quiet_and_shows_the_config_tree_which_is_outside_the_identity(
        run_cli, tmp_path):  # fmt: skip
    """A fresh base model trains under a visible `srun` (so Lightning has every hint to give)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STITCHWORK_ZOO": str(tmp_path / "zoo"),
           "PYTHONWARNINGS": ""}  # fmt: skip
    args = ("tiny=mlp",)
    proc = run_cli("train", *args, env=env)
    console = proc.stdout + proc.stderr
    assert [n for n in NOISE if n in console] == [], console
    folder, = (tmp_path / "outputs" / "train" / "default").iterdir()
    assert f"train job {folder.name}: effective config" in proc.stdout
    tree = proc.stdout[proc.stdout.index("effective config"):]
    for line in ("├── data", "│   └── _target_: stitchwork.data.MNIST1D", "├── extras",
                 "│   └── print_config: true", "├── seed: 0"):  # fmt: skip
        assert line in tree, tree

    # The same job without the tree: the same identity, so the finished job is skipped.
    quiet = run_cli("train", *args, "extras.print_config=false", env=env)
    assert "effective config" not in quiet.stdout and "├──" not in quiet.stdout
    assert f"skipping train job {folder.name}" in quiet.stdout
    assert len(list((tmp_path / "outputs" / "train" / "default").iterdir())) == 1

    # The user's own warning settings win (python -W / PYTHONWARNINGS): the hint shows again.
    loud = run_cli("train", *args, "force=true", "extras.print_config=false",
                   env={**env, "PYTHONWARNINGS": "default", "STITCHWORK_ZOO": str(tmp_path / "zoo2")})  # fmt: skip
    assert "The `srun` command is available" in loud.stdout + loud.stderr


def test_extras_are_outside_the_job_identity():
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for app in ("train", "stitch", "compare", "rebasin", "combine", "visualize"):
            overrides = ["layer_pair.front=conv4"] if app == "stitch" else []
            on = compose(config_name=app, overrides=overrides)
            off = compose(config_name=app, overrides=[*overrides, "extras.print_config=false"])
            assert on.extras.print_config is True and off.extras.print_config is False
            assert job_id(to_plain(on)) == job_id(to_plain(off)), app


# -- each user error once ----------------------------------------------------------------------


def test_a_user_error_is_printed_once_in_a_run_and_in_a_sweep(tmp_path):
    bad = ["layer_pair.front=conv4", "matching=task_loss", "tiny=two_models"]
    single, sweep, tree = _batch(tmp_path, [
        ("stitch", [*bad, "matching.lr=nan"]),
        ("stitch", ["--multirun", *bad, "matching.lr=nan,inf"]),
        ("train", ["extras.print_config=maybe"]),
    ])  # fmt: skip
    assert single["code"] == 2
    message = "matching.lr must be a positive finite number, got nan"
    assert single["output"].count(message) == 1, single["output"]
    assert f"stitchwork-stitch: error: {message}" in single["output"]
    assert "Traceback" not in single["output"]
    assert "Error executing job" not in single["output"]  # Hydra's own line: the paragraph says it all
    (log,) = (tmp_path / "case0" / "outputs").rglob("*.log")  # the job's log file keeps the line
    assert re.search(rf"stitch job \w+ failed: UserError: {re.escape(message)}", log.read_text())

    # A sweep lists every failed job with its error in its summary, once each.
    assert sweep["code"] == 2, sweep["output"]
    for value in ("nan", "inf"):
        assert sweep["output"].count(f"matching.lr must be a positive finite number, got {value}") == 1, sweep["output"]
    assert "Jobs that are not ok:" in sweep["output"] and "2 failed" in sweep["output"]
    assert re.search(r"stitch job \w+ failed on a user error", sweep["output"]), sweep["output"]

    assert tree["code"] == 2
    assert tree["output"].count("extras.print_config must be true or false, got 'maybe'") == 1, tree["output"]


# -- --help per app ------------------------------------------------------------------------------


def test_every_app_has_its_own_help_page(tmp_path):
    pages = dict(zip(APPS, _batch(tmp_path, [(app, ["--help"]) for app in APPS]), strict=True))
    for app, page in pages.items():
        text = page["output"]
        assert page["code"] == 0, text
        assert "powered by Hydra" not in text, text
        description = " ".join(_help_file(app)["header"].split())
        assert text.startswith(f"stitchwork-{app}: ") and description in " ".join(text.split()), text
        examples = _examples(app)
        assert len(examples) == 3 and all(line in text for line in examples), text
        assert "== Config groups" in text and "== Settings" in text
    stitch, rebasin, report = pages["stitch"]["output"], pages["rebasin"]["output"], pages["report"]["output"]
    # Each app lists its own groups only, and only the presets written for it.
    assert "layer_pair (now: same):" in stitch and "matching (now: direct):" in stitch
    for other in ("rebasin/matcher", "combine/sampler", "similarity", "visualize (now"):
        assert other not in stitch, other
    assert "rebasin/matcher@matcher (now: weight):" in rebasin and "layer_pair" not in rebasin
    experiments = {app: re.search(r"experiment \(now: none\): (.*)", pages[app]["output"])[1] for app in ("stitch", "rebasin")}
    assert "demo" in experiments["stitch"] and "lmc_width" not in experiments["stitch"]
    assert "lmc_width" in experiments["rebasin"] and "demo" not in experiments["rebasin"]
    assert "hydra/launcher (now: basic):" in stitch and "slurm_cpu" in stitch
    assert "dirs=???" in report and "model" not in report.split("== Settings")[0]


@pytest.mark.parametrize("app", APPS)
def test_help_examples_are_commands_of_their_app_that_compose(app):
    """Each example's first job composes (a sweep ``a=1,2`` is tried with its first value)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for line in _examples(app):
            program, *args = shlex.split(line, comments=True)
            assert program == f"stitchwork-{app}", line
            args = [a for a in args if a not in ("--multirun", "-m")]
            first_job = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0][0]
            compose(config_name=app, overrides=list(first_job))


def test_a_sweep_prints_the_whole_config_tree_once_then_only_what_each_job_changes(capsys, monkeypatch):
    from stitchwork.apps.config_tree import SweepTrees

    monkeypatch.setattr(SweepTrees, "first", {})
    first = {"seed": 0, "matching": {"lr": 0.01, "epochs": 5}, "data": {"name": "digits"}}
    second = {"seed": 0, "matching": {"lr": 0.1, "epochs": 5}, "data": {"name": "digits"}}
    SweepTrees.print(first, "stitch job aaa", sweep="multirun/s1")
    SweepTrees.print(second, "stitch job bbb", sweep="multirun/s1")
    whole, changed = capsys.readouterr().out.split("stitch job bbb")
    assert "stitch job aaa: effective config" in whole
    assert "lr: 0.01" in whole and "epochs: 5" in whole and "name: digits" in whole
    assert ": effective config: as for stitch job aaa, except" in changed
    assert "matching.lr: 0.1" in changed and "epochs" not in changed and "digits" not in changed
    SweepTrees.print(second, "stitch job ccc", sweep=None)  # a single run: all of it
    assert "epochs: 5" in capsys.readouterr().out
    SweepTrees.print(second, "stitch job ddd", sweep="multirun/s2")  # another sweep: its own first tree
    assert "epochs: 5" in capsys.readouterr().out
