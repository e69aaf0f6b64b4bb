"""report/index.html over a sweep of stitch, rebasin, combine and compare jobs: every section
present, every <img> a decodable PNG, every link a file, the sanity table equal to sanity.csv;
and (slow) the same page from real jobs in headless chromium, every image loaded."""

from __future__ import annotations

import base64
import csv
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stitchwork.sweep.rebasin_figures import plot_curves, plot_histograms
from stitchwork.sweep.records import JobRecord, write_results

SECTIONS = ["Settings that vary", "Stitching heatmaps", "Sanity check: does A's layer i match B's layer i best?",
            "Re-basin interpolation curves", "Combination histograms", "Similarity heatmaps", "Jobs"]  # fmt: skip
MODELS = {
    "data": {"_target_": "stitchwork.data.Digits"},
    "seed_a": 0,
    "seed_b": 1,
    "sweep_name": "mixed",
}


class _Page(HTMLParser):
    """The page's images, links, headings and tables (rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.headings, self.tables = [], [], [], []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs, self._tag = dict(attrs), tag
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "table":
            self.tables.append({"class": attrs.get("class"), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])

    def handle_data(self, data: str) -> None:
        if self._tag == "h2":
            self.headings.append(data)
        elif self._tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(data)

    def handle_endtag(self, tag: str) -> None:
        self._tag = ""


def _job(root: Path, app: str, name: str, config: dict, metrics: dict) -> Path:
    folder = root / name
    write_results(folder, JobRecord(app, name, {"app": app, **MODELS, **config}).succeed(metrics))
    return folder


def _curve() -> dict:
    return {"lambda": [0, 0.5, 1], "test": {"loss": [0.1, 1.5, 0.2], "acc": [0.9, 0.4, 0.88]}}


def _sweep(root: Path) -> None:
    """A stitch matrix job (2 x 2), a rebasin, a combine and a compare job, with their PNGs."""
    layers = ["conv1", "conv2"]
    pairs = [{"front": f, "back": b, "status": "ok", "stitched_acc": 0.9 - 0.2 * abs(i - j), "relative_acc": 0.9,
              "dm_residual_test": 0.1 + abs(i - j), "index_a": i, "index_b": j}
             for i, f in enumerate(layers) for j, b in enumerate(layers)]  # fmt: skip
    stitch = {"model_a": {"_target_": "stitchwork.models.Tiny10"}, "model_b": {"_target_": "stitchwork.models.Tiny10"},
              "matching": {"_target_": "stitchwork.stitching.matching.direct"},
              "layer_pair": {"fronts": layers, "backs": layers}}  # fmt: skip
    folder = _job(root, "stitch", "s1", stitch, {"pairs": pairs})
    plot_histograms(
        {"x": [1, 2]}, folder / "heatmap_all_jobs.png", "x"
    )  # stands in for the job's own heatmap
    one_model = {"model": {"_target_": "stitchwork.models.MLP"}, "post": "bn_reset",
                 "matcher": {"_target_": "stitchwork.rebasin.weight_matching.WeightMatcher"}}  # fmt: skip
    folder = _job(
        root, "rebasin", "r1", one_model, {"curve": _curve(), "test_loss_barrier_max": 1.3}
    )
    plot_curves({"aligned": _curve()}, folder / "interpolation.png", "rebasin")
    per_sample = {"aligned": {"loss": [0.2, 0.3]}, "naive": {"loss": [1.0, 2.0]}}
    folder = _job(
        root, "combine", "c1", {**one_model, "mode": "combinability"}, {"per_sample": per_sample}
    )
    plot_histograms(
        {k: v["loss"] for k, v in per_sample.items()}, folder / "combination_loss.png", "loss"
    )
    folder = _job(
        root, "compare", "k1", {k: v for k, v in stitch.items() if k.startswith("model")}, {}
    )
    plot_histograms({"x": [1, 2]}, folder / "heatmap_linear_cka.png", "x")


def _check_page(page_path: Path) -> _Page:
    page = _Page()
    page.feed(page_path.read_text())
    assert page.headings == SECTIONS
    for src in page.images:
        head, _, data = src.partition(",")
        assert (
            head == "data:image/png;base64" and base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
        )
    assert page.links and all((page_path.parent / link).resolve().is_file() for link in page.links)
    records = [link for link in page.links if link.endswith("results.json")]
    assert (
        len(records) == len(set(records)) == 4
    )  # one per job folder, the matrix job's pairs folded
    return page


def test_html_report_of_a_mixed_sweep_has_every_section_image_and_link(run_cli, tmp_path):
    sweep = tmp_path / "multirun" / "mixed"
    _sweep(sweep)
    run_cli("report", f"dirs=[{sweep}]")
    page = _check_page(sweep / "report" / "index.html")
    # report heatmap + sanity figure + re-basin curve + combination histogram + similarity heatmap;
    # the stitch job's own heatmap repeats the report's and is only linked
    assert len(page.images) == 5
    assert any(link.endswith("s1/heatmap_all_jobs.png") for link in page.links)
    with (sweep / "report" / "sanity.csv").open(newline="") as handle:
        expected = [list(r.values()) for r in csv.DictReader(handle)]
    (sanity,) = [t["rows"] for t in page.tables if t["class"] == "sanity"]
    assert (
        len(sanity) == 1 + 4 and sanity[1][:3] == expected[0][:3]
    )  # header + 2 layers x 2 metrics
    assert [float(r[i]) for r in sanity[1:] for i in (3, 5)] == pytest.approx(
        [float(r[i]) for r in expected for i in (3, 5)], rel=1e-3
    )  # self_value and best_value, as sanity.csv has them
    jobs = [t["rows"] for t in page.tables if t["class"] == "jobs"]
    assert [len(t) for t in jobs] == [2, 2, 2, 2]  # per app: header and its one job
    assert "4 ok" in sum(jobs, [])[-1]  # stitch (sorted last): the matrix job's pair count


def _chromium() -> str | None:
    """The chromium binary, installed from Debian when absent and running as root."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True,
            timeout=900,
            check=False,
        )
        found = shutil.which("chromium")
    return found


@pytest.mark.slow
def test_html_report_of_real_jobs_loads_every_image_in_a_headless_browser(run_cli, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "chromium is not installed and cannot be (needs root and apt-get install chromium)"
        )
    common = ["sweep_name=mixed", "device=cpu", f"zoo.root={tmp_path / 'zoo'}"]
    run_cli("stitch", "layer_pair=matrix", "layer_pair.fronts=[conv7,conv8]", "layer_pair.backs=[conv7,conv8]",
            "tiny=two_models", *common)  # fmt: skip
    run_cli(
        "compare",
        "tiny=two_models",
        "cut_points_a=[conv7,conv8]",
        "cut_points_b=[conv7,conv8]",
        *common,
    )
    run_cli("rebasin", "tiny=mlp", "num_points=3", *common)
    run_cli("combine", "tiny=mlp", "k=4", *common)
    dirs = ",".join(
        str(tmp_path / "outputs" / app / "mixed")
        for app in ("stitch", "compare", "rebasin", "combine")
    )
    run_cli("report", f"dirs=[{dirs}]")
    page = tmp_path / "outputs" / "stitch" / "mixed" / "report" / "index.html"
    parsed = _check_page(page)
    check = ("<script>document.title = [...document.images].every(i => i.complete && i.naturalWidth > 0)"
             " ? 'ALL-LOADED-' + document.images.length : 'MISSING'</script>")  # fmt: skip
    page.write_text(page.read_text().replace("</body>", check + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"]  # fmt: skip
    shot = tmp_path / "page.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120,
                   check=False)  # fmt: skip
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    assert f"<title>ALL-LOADED-{len(parsed.images)}</title>" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_that_vary_say_which_follow_another_setting():
    from stitchwork.sweep.html_report import _leaders

    rows = [{"config.layer_pair.front": f, "config.layer_pair.back": b, "config.matching._target_": m,
             "config.matching.epochs": None if m == "direct" else 5}
            for f in ("conv1", "conv2") for b in ("conv1", "conv2") for m in ("direct", "task_loss")]  # fmt: skip
    keys = sorted(rows[0])  # as varying_columns lists them
    assert _leaders(rows, keys) == {"config.layer_pair.back": None, "config.layer_pair.front": None,
                                    "config.matching._target_": None,
                                    "config.matching.epochs": "config.matching._target_"}  # fmt: skip
