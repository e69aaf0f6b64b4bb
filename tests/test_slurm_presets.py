"""The launcher presets in conf/hydra/launcher/ compose against hydra-submitit-launcher 1.2.0.

Composing validates every key against the plugin's structured configs (an option the
released plugin lacks is an error). Also checked: the site file and the command line
override the presets, in that order, and multi-GPU runs one task per GPU.
"""

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
LAUNCHER_DIR = REPO / "conf" / "hydra" / "launcher"
APP_CONF = REPO / "tests" / "slurm_app" / "conf"
SLURM_TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
LOCAL_TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"


def _launcher(conf_dir: Path, *overrides: str) -> dict:
    """Compose the test app's config with ``conf_dir`` on the search path; return hydra.launcher."""
    with initialize_config_dir(config_dir=str(APP_CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"hydra.searchpath=[file://{conf_dir}]", *overrides],
            return_hydra_config=True,
        )
    # submitit_folder interpolates hydra.sweep.dir; resolve only what the presets set
    launcher = cfg.hydra.launcher
    return {k: launcher[k] for k in launcher if k != "submitit_folder"}


def test_every_preset_file_is_tested():
    assert sorted(p.stem for p in LAUNCHER_DIR.glob("*.yaml")) == [
        "local", "slurm_cpu", "slurm_gpu", "slurm_multigpu",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "target", "expected"),
    [
        ("slurm_cpu", SLURM_TARGET, {"cpus_per_task": 2, "mem_gb": 4, "gpus_per_node": None}),
        (
            "slurm_gpu",
            SLURM_TARGET,
            {"gpus_per_node": 1, "tasks_per_node": 1, "mem_per_gpu": "32G"},
        ),
        ("slurm_multigpu", SLURM_TARGET, {"gpus_per_node": 2, "tasks_per_node": 2}),
        ("local", LOCAL_TARGET, {"cpus_per_task": 1, "gpus_per_node": 0}),
    ],
)
def test_preset_composes(preset, target, expected):
    launcher = _launcher(REPO / "conf", f"hydra/launcher={preset}")
    assert launcher["_target_"] == target
    assert {k: launcher[k] for k in expected} == expected
    if preset.startswith("slurm"):
        assert launcher["partition"] is None  # the cluster's default partition


def test_multigpu_runs_one_task_per_gpu():
    launcher = _launcher(
        REPO / "conf", "hydra/launcher=slurm_multigpu", "hydra.launcher.gpus_per_node=4"
    )
    assert (launcher["gpus_per_node"], launcher["tasks_per_node"]) == (4, 4)


def test_command_line_overrides_site_settings(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(LAUNCHER_DIR, conf / "hydra" / "launcher")
    # without a site file the preset's own values hold
    assert _launcher(conf, "hydra/launcher=slurm_cpu")["account"] is None
    site = conf / "hydra" / "launcher" / "site" / "cluster.yaml"
    site.write_text("partition: cpu_long\naccount: my_lab\ntimeout_min: 720\n")
    launcher = _launcher(conf, "hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu")
    assert launcher["account"] == "my_lab" and launcher["timeout_min"] == 720  # site file
    assert launcher["partition"] == "gpu"  # command line beats site file
    assert launcher["gpus_per_node"] == 1  # preset values the site file leaves alone


def test_site_example_composes(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(LAUNCHER_DIR, conf / "hydra" / "launcher")
    site_dir = conf / "hydra" / "launcher" / "site"
    shutil.copy(site_dir / "example.yaml", site_dir / "cluster.yaml")
    launcher = _launcher(conf, "hydra/launcher=slurm_cpu")
    example = OmegaConf.load(site_dir / "example.yaml")
    assert {k: launcher[k] for k in example} == OmegaConf.to_container(example)


def test_site_file_with_unknown_option_is_an_error(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(LAUNCHER_DIR, conf / "hydra" / "launcher")
    (conf / "hydra" / "launcher" / "site" / "cluster.yaml").write_text("srun_args: [-v]\n")
    with pytest.raises(Exception, match="srun_args"):
        _launcher(conf, "hydra/launcher=slurm_cpu")
