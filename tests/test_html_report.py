"""report/index.html, structurally: parsed, every <img> decodes to a PNG, every link exists."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from stitchwork.sweep.html_report import write_html_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.cells = [], [], []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_data(self, data: str) -> None:
        self.cells.append(data.strip())


def test_html_report_embeds_every_image_and_links_every_record(tmp_path):
    rows = []
    for front in ("conv1", "conv2"):
        job = tmp_path / "sweep" / f"job_{front}"
        job.mkdir(parents=True)
        (job / "results.json").write_text("{}")
        rows.append({"path": str(job), "app": "stitch", "identity": job.name, "status": "ok",
                     "config.layer_pair.front": front, "config.seed": 0})  # fmt: skip
    plt.imsave(Path(rows[0]["path"]) / "interpolation.png", np.eye(4))  # a job's own figure
    figure = tmp_path / "sweep" / "report" / "heatmap.png"
    figure.parent.mkdir()
    plt.imsave(figure, np.ones((3, 3)))
    page_path = write_html_report(rows, [figure], tmp_path / "sweep" / "report")
    page = _Page()
    page.feed(page_path.read_text())
    assert len(page.images) == 2  # the report's figure and the job's
    for src in page.images:
        head, _, data = src.partition(",")
        assert (
            head == "data:image/png;base64" and base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
        )
    assert len(page.links) == 2
    for link in page.links:
        assert (page_path.parent / link).resolve().is_file()
    assert "config.layer_pair.front" in " ".join(page.cells) and "config.seed" not in " ".join(
        page.cells
    )


def _chromium() -> str | None:
    """The chromium binary, installed from Debian when absent and running as root."""
    import os
    import shutil
    import subprocess

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
def test_html_report_loads_every_image_in_a_headless_browser(tmp_path):
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip(
            "chromium is not installed and cannot be (needs root and apt-get install chromium)"
        )
    job = tmp_path / "job"
    job.mkdir()
    (job / "results.json").write_text("{}")
    plt.imsave(job / "curve.png", np.eye(4))
    page = write_html_report(
        [{"path": str(job), "app": "rebasin", "identity": "job", "status": "ok"}],
        [],
        tmp_path / "report",
    )
    check = "<script>document.title = [...document.images].every(i => i.complete && i.naturalWidth > 0) ? 'ALL-LOADED' : 'MISSING'</script>"
    page.write_text(page.read_text().replace("</body>", check + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,800"]  # fmt: skip
    shot = tmp_path / "page.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert "<title>ALL-LOADED</title>" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
