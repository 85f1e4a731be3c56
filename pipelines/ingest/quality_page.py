"""A self-contained HTML page of every file's validation outcome, for the study team.

Great Expectations' Data Docs index draws its tables with scripts from a CDN, so offline it
shows an empty list. This page needs nothing from outside: one table of the latest version of
every file (status, rows, the reason a file was quarantined or is pending), linked to its JSON
report and to its Data Docs pages, which do render offline, and a list of every other
validation page (replaced versions, earlier runs), so all the evidence is one click away offline.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path

from pipelines.config import StudyConfig
from pipelines.ingest.catalog import Catalog, FileStatus

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2433; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #dde2ea; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
.quarantined { color: #a4262c; font-weight: 600; } .failed { color: #8a3ffc; font-weight: 600; }
.pending { color: #8a5a00; font-weight: 600; } .curated { color: #107c10; } .counts span { margin-right: 1.5rem; }
"""


def write_quality_page(config: StudyConfig) -> Path:
    """Write ``<platform>/reports/index.html`` from the catalog; return its path."""
    with Catalog(config.catalog) as catalog:
        records = catalog.latest()
    docs = _data_docs_pages(config)
    order = {FileStatus.QUARANTINED: 0, FileStatus.FAILED: 1, FileStatus.PENDING: 2, FileStatus.PROCESSING: 3,
             FileStatus.CURATED: 4}
    records.sort(key=lambda r: (order.get(r.status, 5), r.source, r.path))
    counts = Counter(r.status.value for r in records)
    rows = []
    target = config.reports_root / "index.html"
    for record in records:
        links = []
        if record.report_id and (config.reports_root / f"{record.report_id}.json").exists():
            links.append(f'<a href="{html.escape(record.report_id)}.json">report</a>')
        links += _page_links(docs.get(record.report_id or "", []), target.parent)
        rows.append(
            "<tr>"
            f"<td>{html.escape(record.source)}</td><td>{html.escape(record.path)}</td>"
            f"<td>{record.version}</td>"
            f'<td class="{record.status.value}">{record.status.value}</td>'
            f"<td>{'' if record.rows is None else f'{record.rows:,}'}</td>"
            f"<td>{html.escape(record.message or '') if record.status is not FileStatus.CURATED else ''}</td>"
            f"<td>{' · '.join(links)}</td>"
            "</tr>"
        )
    # Pages of superseded versions and earlier runs: the Data Docs index cannot list them offline.
    shown = {record.report_id for record in records}
    earlier = "".join(f"<tr><td>{html.escape(report_id)}</td>"
                      f"<td>{' · '.join(_page_links(pages, target.parent))}</td></tr>"
                      for report_id, pages in sorted(docs.items()) if report_id not in shown)
    summary = "".join(f"<span>{html.escape(status)}: {count}</span>" for status, count in sorted(counts.items()))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data quality: study {html.escape(config.study_id)}</title>
<style>{_STYLE}</style></head><body>
<h1>Data quality: study {html.escape(config.study_id)}</h1>
<p class="counts">{summary}</p>
<p>The latest version of every file the catalog holds. Quarantined files keep a copy and their
report under <code>quarantine/&lt;report id&gt;/</code>. Pending files wait for their subject to be
added to the enrollment file: each ingest run checks them again, and curates them once it is.</p>
<table><thead><tr><th>source</th><th>file</th><th>version</th><th>status</th><th>rows</th>
<th>reason</th><th>evidence</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<h2>Earlier versions and runs</h2>
<p>Validation pages of file versions that were replaced, and of earlier checks of a file.</p>
<table><thead><tr><th>report</th><th>evidence</th></tr></thead><tbody>
{earlier or '<tr><td colspan="2">none</td></tr>'}
</tbody></table></body></html>
"""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target


def data_docs_site(config: StudyConfig) -> Path:
    """The folder of the study's Great Expectations Data Docs (``index.html`` is their home page)."""
    return config.platform_root / "gx" / "uncommitted" / "data_docs" / "local_site"


def _data_docs_pages(config: StudyConfig) -> dict[str, list[tuple[str, Path]]]:
    """report id -> (batch, its Data Docs validation page) of every run, in order."""
    site = data_docs_site(config) / "validations"
    pages: dict[str, list[tuple[str, Path]]] = {}
    if not site.exists():
        return pages
    for page in sorted(site.rglob("*.html")):
        run_name = page.parent.parent.name  # <report id>.<batch>/<run time>/<file>.html
        report_id, _, batch = run_name.rpartition(".")
        if report_id:
            pages.setdefault(report_id, []).append((batch, page))
    return pages


def _page_links(pages: list[tuple[str, Path]], folder: Path) -> list[str]:
    """Links from ``folder`` to validation pages, named by batch (and run time when a batch ran more than once)."""
    runs = Counter(batch for batch, _ in pages)
    return [f'<a href="{html.escape(os.path.relpath(page, folder))}">{html.escape(batch)}'
            f'{html.escape(" " + page.parent.name) if runs[batch] > 1 else ""}</a>'
            for batch, page in sorted(pages)]
