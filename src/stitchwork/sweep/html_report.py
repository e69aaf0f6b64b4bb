"""``report/index.html``: one self-contained page per report (images embedded, no network)."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

from .report import varying_columns

STYLE = "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"


def write_html_report(rows: Sequence[dict], figures: Sequence[str | Path], out: Path) -> Path:
    """Write ``out/index.html``: varying settings, the report's figures, each job's own PNGs
    (re-basin curves, combination histograms, ...) and a jobs table linking to results.json."""
    out.mkdir(parents=True, exist_ok=True)
    varying = varying_columns(rows)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>stitchwork report</title>",
             f"<style>{STYLE}</style></head><body><h1>stitchwork report</h1>",
             f"<p>{len(rows)} rows; settings that vary: {html.escape(', '.join(varying) or 'none')}</p>",
             "<h2>Figures</h2>", *(_img(Path(f)) for f in figures)]  # fmt: skip
    job_pngs = sorted({p for r in rows for p in Path(r["path"]).glob("*.png")})
    if job_pngs:
        parts += ["<h2>Job figures</h2>", *(_img(p) for p in job_pngs)]
    columns = ["app", "identity", "status", *varying]
    parts += [
        "<h2>Jobs</h2><table><tr>",
        *(f"<th>{html.escape(c)}</th>" for c in columns),
        "<th>record</th></tr>",
    ]
    for row in rows:
        link = os.path.relpath(Path(row["path"]) / "results.json", out)
        cells = "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
        parts.append(f"<tr>{cells}<td><a href='{html.escape(link)}'>results.json</a></td></tr>")
    parts.append("</table></body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    title = html.escape(path.parent.name + "/" + path.name)
    return f"<figure><img src='data:image/png;base64,{data}' alt='{title}'><figcaption>{title}</figcaption></figure>"
