"""The visualize app end to end (subprocess), and every conf/visualize file composes."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from stitchwork.apps.common import resolve_device
from stitchwork.apps.visualize import settings_from
from stitchwork.rebasin.matching import Matcher
from stitchwork.visualize import MaximizeSettings

CONF = Path(__file__).resolve().parents[1] / "conf"
FAST = ["tiny=one_model", "recipe.epochs=2", "model.width=0.5", "visualize=quick", "visualize.steps=16", "num_channels=3", "examples=4"]


def _record(root: Path) -> dict:
    (path,) = root.rglob("results.json")
    return json.loads(path.read_text())


@pytest.mark.slow  # trains two models and runs four visualizations in a subprocess (~1.5 CPU-minutes)
def test_app_writes_grids_responses_and_results(run_cli, tmp_path):
    run_cli("visualize", *FAST, "layer=conv5", "device=cpu")
    record = _record(tmp_path / "outputs" / "visualize")
    assert record["status"] == "ok" and record["metrics"]["device"] == "cpu"
    metrics = record["metrics"]
    columns = ["A", "B", "B→A", "merged (bn_reset)"]
    assert len(metrics["channels"]) == 3
    assert [r["channel"] for r in metrics["responses"]] == metrics["channels"]  # one row per channel
    assert all(r["A_rel"] == 1.0 and f"{columns[-1]}_rel" in r for r in metrics["responses"])
    assert all(0 <= r["B_unit_matched"] < 16 for r in metrics["responses"])  # conv5 has 16 channels
    assert set(metrics["activations"]) == set(columns)
    grid = mpimg.imread(metrics["figures"]["visualizations"])
    examples = mpimg.imread(metrics["figures"]["examples"])
    # 3 rows × 4 columns at 1.4 in per cell and 100 dpi, plus title, labels and notes
    assert grid.shape[:2] == (round((0.8 + 0.25 + 3 * 1.4) * 100), round((0.6 + 4 * 1.4) * 100))
    assert examples.shape[:2] == (round((0.8 + 0.05 + 3 * 1.4) * 100), round((0.6 + 4 * 1.4) * 100))
    assert Path(metrics["figures"]["visualizations"]).parent.joinpath("visualizations.pt").is_file()


def test_app_refuses_bad_channels_before_training_anything(run_cli, tmp_path):
    proc = run_cli("visualize", *FAST, "layer=conv1", "channels=[3,40]", check=False)
    assert proc.returncode != 0
    assert "channel(s) [40] out of range for cut point 'conv1': valid 0..7" in proc.stderr
    assert "training base model" not in proc.stderr + proc.stdout
    record = _record(tmp_path / "outputs")
    assert record["status"] == "failed" and record["metrics"]["device"] == str(resolve_device("auto"))


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "visualize").glob("*.yaml")))
@pytest.mark.parametrize(  # the one matcher group; `saved` needs a path (tested with the rebasin app)
    "matcher", sorted(p.stem for p in (CONF / "rebasin" / "matcher").glob("*.yaml") if p.stem != "saved")
)
def test_every_visualize_config_composes_and_instantiates(preset, matcher):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("visualize", overrides=[f"visualize={preset}", f"rebasin/matcher@matcher={matcher}"])
    assert isinstance(settings_from(cfg.visualize), MaximizeSettings)
    assert isinstance(instantiate(cfg.matcher), Matcher)
    assert cfg.merge in ("bn_reset", "repair", "none")
