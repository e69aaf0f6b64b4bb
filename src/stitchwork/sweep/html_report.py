"""``report/index.html``: one self-contained page per report (images embedded, no network).

Sections, each present only when the sweep has something for it: the settings that vary,
the stitching heatmaps, the sanity check (its figure and ``sanity.csv`` as a table), re-basin
interpolation curves, combination histograms, similarity heatmaps, other job figures, and a
table of jobs linking to their ``results.json`` and figures.
"""

from __future__ import annotations

import base64
import csv
import html
import os
from collections.abc import Sequence
from pathlib import Path

from ..utils.text import count
from .report import varying_columns

STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}td.num{text-align:right}")  # fmt: skip
SANITY = "Sanity check: does A's layer i match B's layer i best?"  # its figure, then sanity.csv
#: (section title, (app or "report", figure file-name prefixes)) in page order
SECTIONS = (
    ("Stitching heatmaps", (("report", ("heatmap_",)),)),
    (SANITY, (("report", ("sanity",)),)),
    ("Re-basin interpolation curves", (("report", ("interpolation",)), ("rebasin", ("interpolation",)),
                                       ("combine", ("transitivity",)))),
    ("Combination histograms", (("report", ("combination",)), ("combine", ("combination",)))),
    ("Similarity heatmaps", (("compare", ("heatmap_",)),)),
)  # fmt: skip
#: apps whose own PNGs the report's figures already show (stitch: the matrix job's heatmaps)
LINKED_ONLY = ("stitch",)


def write_html_report(rows: Sequence[dict], figures: Sequence[str | Path], out: Path) -> Path:
    """Write ``out/index.html`` from the report's ``rows`` and ``figures`` (PNG paths) and
    each job folder's own PNGs; return its path."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = _jobs(rows)
    pngs = [("report", Path(f), Path(f).name) for f in figures]
    pngs += [(job["app"], p, _caption(job, p, jobs)) for job in jobs for p in _job_pngs(job)
             if job["app"] not in LINKED_ONLY]  # fmt: skip
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>stitchwork report</title>",
             f"<style>{STYLE}</style></head><body><h1>stitchwork report</h1>", *_settings(rows, jobs)]  # fmt: skip
    shown: set[Path] = set()
    for title, sources in SECTIONS:
        chosen = [(p, c) for app, p, c in pngs if p not in shown and _matches(app, p, sources)]
        shown |= {p for p, _ in chosen}
        if chosen:
            parts += [f"<h2>{html.escape(title)}</h2>", *(_img(p, c) for p, c in chosen)]
            if title == SANITY:
                parts += _sanity_table(out / "sanity.csv")
    rest = [(p, c) for _, p, c in pngs if p not in shown]
    if rest:
        parts += ["<h2>Other figures</h2>", *(_img(p, c) for p, c in rest)]
    parts += [*_jobs_table(jobs, out), "</body></html>"]
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _jobs(rows: Sequence[dict]) -> list[dict]:
    """One entry per job folder (a matrix job's pair rows folded, with its pair counts)."""
    jobs: dict[str, dict] = {}
    for row in rows:
        job = jobs.setdefault(row["path"], {**row, "pairs": {}})
        if row.get("matrix_job"):
            job["status"] = row.get("job_status", "ok")
            job["pairs"][row.get("status")] = job["pairs"].get(row.get("status"), 0) + 1
    return list(jobs.values())


def _job_pngs(job: dict) -> list[Path]:
    return sorted(Path(job["path"]).glob("*.png"))


def _matches(app: str, path: Path, sources: Sequence[tuple[str, Sequence[str]]]) -> bool:
    return any(app == a and path.name.startswith(prefixes) for a, prefixes in sources)


def _caption(job: dict, png: Path, jobs: Sequence[dict]) -> str:
    """``rebasin 1a2b3c4d: matcher._target_=...: interpolation.png`` (the job's varying settings)."""
    same_app = [j for j in jobs if j["app"] == job["app"]]
    settings = ", ".join(
        f"{k.removeprefix('config.')}={job.get(k)}" for k in _job_columns(same_app)
    )
    return f"{job['app']} {str(job.get('identity'))[:8]}{': ' + settings if settings else ''}: {png.name}"


def _job_columns(jobs: Sequence[dict]) -> list[str]:
    """Settings that vary across jobs (the layer pair of matrix jobs' pairs left out)."""
    return [k for k in varying_columns(jobs) if not k.startswith("config.layer_pair.")
            or not any(j.get("matrix_job") for j in jobs)]  # fmt: skip


def _by_app(items: Sequence[dict]) -> dict[str, list[dict]]:
    apps: dict[str, list[dict]] = {}
    for item in items:
        apps.setdefault(str(item.get("app")), []).append(item)
    return dict(sorted(apps.items()))


def _settings(rows: Sequence[dict], jobs: Sequence[dict]) -> list[str]:
    """The page's head: counts, sweeps, and per app the settings that vary with their values."""
    sweeps = sorted({str(j["config.sweep_name"]) for j in jobs if j.get("config.sweep_name")})
    parts = [f"<p>{count(len(jobs), 'job')} ({count(len(rows), 'row')}: a matrix job has one per layer pair); apps: "
             f"{html.escape(', '.join(_by_app(jobs)))}; sweeps: {html.escape(', '.join(sweeps) or 'none')}</p>",
             "<h2>Settings that vary</h2>"]  # fmt: skip
    lines = []
    for app, app_rows in _by_app(rows).items():
        for key, leader in _leaders(app_rows, varying_columns(app_rows)).items():
            values = ", ".join(dict.fromkeys(str(r.get(key)) for r in app_rows))
            note = f" (varies with {leader.removeprefix('config.')})" if leader else ""
            lines.append((app, key, values + note))
    if not lines:
        return [*parts, "<p>none</p>"]
    parts.append("<table><tr><th>app</th><th>setting</th><th>values</th></tr>")
    parts += [f"<tr><td>{html.escape(app)}</td><td>{html.escape(key.removeprefix('config.'))}</td>"
              f"<td>{html.escape(values)}</td></tr>" for app, key, values in lines]  # fmt: skip
    return [*parts, "</table>"]


def _leaders(rows: Sequence[dict], keys: Sequence[str]) -> dict[str, str | None]:
    """Each varying key and the earlier independent key whose value fixes its value in every
    row (``matching.epochs`` is set by ``matching._target_``), or None when no key does."""
    leaders: dict[str, str | None] = {}
    for key in keys:
        leaders[key] = next((m for m in leaders if leaders[m] is None and _fixes(rows, m, key)), None)
    return leaders


def _fixes(rows: Sequence[dict], leader: str, key: str) -> bool:
    seen: dict[str, str] = {}
    return all(seen.setdefault(repr(r.get(leader)), repr(r.get(key))) == repr(r.get(key)) for r in rows)


def _sanity_table(path: Path) -> list[str]:
    """``sanity.csv`` as an HTML table (one line per group, metric and layer)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    if not records:
        return []
    columns = list(records[0])
    lines = [
        "<table class='sanity'><tr>",
        *(f"<th>{html.escape(c)}</th>" for c in columns),
        "</tr>",
    ]
    for record in records:
        cells = "".join(_cell(record[c]) for c in columns)
        lines.append(f"<tr>{cells}</tr>")
    return [*lines, "</table>"]


def _cell(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return f"<td>{html.escape(text)}</td>"
    shown = text if number.is_integer() and "." not in text else f"{number:.4g}"
    return f"<td class='num'>{html.escape(shown)}</td>"


def _jobs_table(jobs: Sequence[dict], out: Path) -> list[str]:
    """Per app, one line per job: id, status, pair counts, varying settings, record and figure links."""
    parts = ["<h2>Jobs</h2>"]
    for app, app_jobs in _by_app(jobs).items():
        columns = _job_columns(app_jobs)
        parts += [f"<h3>{html.escape(app)}</h3><table class='jobs'><tr>",
                  *(f"<th>{html.escape(c.removeprefix('config.'))}</th>" for c in ["identity", "status", "pairs", *columns]),
                  "<th>record</th><th>figures</th></tr>"]  # fmt: skip
        for job in app_jobs:
            pairs = ", ".join(f"{n} {s}" for s, n in sorted(job["pairs"].items(), key=str))
            cells = "".join(f"<td>{html.escape(str('' if c is None else c))}</td>"
                            for c in [job.get("identity"), job.get("status"), pairs, *(job.get(c) for c in columns)])  # fmt: skip
            record = _link(Path(job["path"]) / "results.json", "results.json", out)
            figures = " ".join(_link(p, p.name, out) for p in _job_pngs(job))
            parts.append(f"<tr>{cells}<td>{record}</td><td>{figures}</td></tr>")
        parts.append("</table>")
    return parts


def _link(target: Path, text: str, out: Path) -> str:
    return f"<a href='{html.escape(os.path.relpath(target, out))}'>{html.escape(text)}</a>"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    text = html.escape(caption)
    return f"<figure><img src='data:image/png;base64,{data}' alt='{text}'><figcaption>{text}</figcaption></figure>"
