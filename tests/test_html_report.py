"""report/index.html, structurally: parsed, every <img> decodes to a PNG, every link exists."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np

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
