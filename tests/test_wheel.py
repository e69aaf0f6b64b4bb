"""A wheel carries ``conf/``: built, installed into a fresh venv, its apps run from another folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_own_configs(bin_dir: Path, cwd: Path, env: dict) -> dict:
    """Run README's "Your own configs" bash block with ``bin_dir`` first on PATH; its record."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own configs") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    proc = _run(["bash", "-e", "-c", block], cwd=cwd, env=env)
    assert "fc1" in proc.stdout  # the user's model's cut points were listed
    (path,) = (cwd / "outputs" / "stitch" / "my_stitch").glob("*/results.json")
    return json.loads(path.read_text())


def test_readme_own_config_dir_adds_a_model_and_a_preset(tmp_path):
    env = {**os.environ, "STITCHWORK_ZOO": str(tmp_path / "zoo"), "OMP_NUM_THREADS": "1"}
    record = _readme_own_configs(Path(sys.executable).parent, tmp_path, env)
    assert record["status"] == "ok"
    config = record["config"]
    assert config["model_a"] == {"_target_": "stitchwork.models.MLP", "depth": 2, "width": 32}
    assert (
        config["data"]["_target_"] == "stitchwork.data.MNIST1D"
        and config["layer_pair"]["front"] == "fc1"
    )
    assert 0.0 <= record["metrics"]["relative_acc"]


def _run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_wheel_ships_conf_and_its_apps_run_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            wheels,
            ROOT,
        ],
        cwd=tmp_path,
    )
    wheel = next(wheels.glob("stitchwork-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every yaml under the top-level conf/ is in the wheel, at stitchwork/conf/<same path>.
    expected = {
        f"stitchwork/conf/{p.relative_to(ROOT / 'conf').as_posix()}"
        for p in (ROOT / "conf").rglob("*.yaml")
    }
    assert expected and expected <= names, sorted(expected - names)[:5]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    # torch & co. come from the test venv's site-packages as a plain path entry: its .pth files
    # (the editable stitchwork among them) are not run, so only the wheel provides stitchwork.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n"
    )
    _run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            wheel,
        ],
        cwd=tmp_path,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("STITCHWORK_CONF", "PYTHONPATH")}
    env.update(STITCHWORK_ZOO=str(tmp_path / "zoo"), WANDB_MODE="disabled")
    where = _run(
        [venv / "bin" / "python", "-c", "import stitchwork.apps.config as c; print(c.conf_dir())"],
        cwd=elsewhere,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), (
        where.stdout
    )  # the wheel's copy, not the repo's
    help_ = _run([venv / "bin" / "stitchwork-stitch", "--help"], cwd=elsewhere, env=env)
    assert "stitch" in help_.stdout
    _run(
        [
            venv / "bin" / "stitchwork-train",
            "model=mlp",
            "recipe.epochs=1",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
        ],
        cwd=elsewhere,
        env=env,
    )
    (record,) = [json.loads(p.read_text()) for p in (elsewhere / "outputs").rglob("results.json")]
    assert record["status"] == "ok" and 0.0 < record["metrics"]["test_acc"] <= 1.0
    own = _readme_own_configs(venv / "bin", elsewhere, env)  # the user's configs beside the wheel's
    assert own["status"] == "ok" and own["config"]["model_b"]["width"] == 32
