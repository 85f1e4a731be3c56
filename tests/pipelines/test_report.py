"""The study report: one self-contained HTML page built from the artifacts a study already has.

On the shared small demo study (``demo_build``: ingested and built, no model trained yet) and on a
study with nothing ingested. The report of a trained and scored model is checked in
``test_train.py``, beside the trained model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import load_study
from pipelines.report.page import KEY_BIOMARKERS, SECTIONS, TRAJECTORY_SUBJECTS, ReportError, report_path, write_report
from tests.browser import headless_chromium_command

ALERTS = pd.DataFrame({
    "id": [2, 1], "study_id": "demo", "subject_id": ["S0002", "S0003"],
    "event_time": pd.to_datetime(["2024-03-12T07:00:00Z", "2024-03-11T05:00:00Z"], utc=True),
    "recorded_at": pd.to_datetime(["2024-03-12T07:00:05Z", "2024-03-11T05:00:02Z"], utc=True),
    "news2": [None, 7.0], "risk_band": [None, "high"],
    "reason": ["vital-sign anomaly: score 0.912 above the threshold of demo-vitals_anomaly v1",
               "NEWS2 7 (high): urgent response threshold"],
    "source": ["stream", "api"],
})


class Page(HTMLParser):
    """Every start tag with its attributes, the text of each table's cells, and the headings."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td":
            self._cell = []
        elif tag == "h2":
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.tables[self._table] = [row for row in self.tables[self._table] if row]  # not the header row
            self._table = None
        elif tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        for part in (self._cell, self._heading):
            if part is not None:
                part.append(data)


def section(page: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S).group(1)


def plots(html_text: str) -> list[str]:
    return re.findall(r'<figure class="plot">(.*?)</figure>', html_text, re.S)


@pytest.fixture(scope="module")
def report(demo_build):
    """The demo study's report at its default place; removed afterwards (the study is shared)."""
    manifest, config, _, tables = demo_build
    path = write_report(config, tables=tables, alerts=ALERTS)
    yield manifest, config, path, path.read_text(encoding="utf-8")
    path.unlink(missing_ok=True)


def test_one_self_contained_page_with_every_section_and_its_plots(report) -> None:
    _, config, path, page = report
    assert path == config.platform_root / "reports" / "study_report.html"
    assert not list(path.parent.glob(".*.tmp"))  # written to a temporary file, then renamed
    parsed = Page(page)
    names = [tag for tag, _ in parsed.tags]
    assert page.startswith("<!doctype html>") and [names.count(tag) for tag in ("html", "head", "body")] == [1, 1, 1]
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(names)
    for tag, attributes in parsed.tags:
        for key in ("src", "href", "xlink:href", "action", "srcset", "poster"):
            value = attributes.get(key)
            assert value is None or value.startswith(("#", "data:")), f"<{tag} {key}={value!r}> is a request"
    assert all(target.startswith("#") for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", page))  # clip paths
    assert "@import" not in page and "@font-face" not in page
    assert parsed.headings == [title for _, title, _ in SECTIONS]

    # the quality bars, one figure per key biomarker (the demo has them all), one per trajectory
    figures = plots(page)
    assert len(plots(section(page, "quality"))) == 1
    assert len(plots(section(page, "distributions"))) == len(KEY_BIOMARKERS)
    assert len(plots(section(page, "trajectories"))) == TRAJECTORY_SUBJECTS
    assert len(figures) == 1 + len(KEY_BIOMARKERS) + TRAJECTORY_SUBJECTS
    assert all(figure.count("<svg") + figure.count('src="data:image/png;base64,') == 1 for figure in figures)


def test_recording_quality_control_lists_each_wrist_recording(report) -> None:
    _, _, _, page = report
    rows = Page(section(page, "recording-qc")).tables["recording-qc"]
    # subject, days, error before, after, autocalibrated, clipped worst day, not worn median day, days failing QC
    assert rows and all(row[0].startswith("S") for row in rows)
    for row in rows:
        assert float(row[2]) >= 0 and float(row[3]) <= float(row[2]) and row[4] in ("yes", "no")
        assert row[7] == "0"  # the demo's simulated sensors are calibrated and never clip
    assert "subject-days failed" in section(page, "recording-qc")


def test_the_quarantine_table_names_each_planted_broken_file_and_its_reason(report) -> None:
    manifest, _, _, page = report
    rows = {row[1]: row for row in Page(page).tables["quarantine"]}  # source, file, status, reason, report id
    # A file whose only fault is a subject not enrolled yet waits (pending) instead of being quarantined.
    broken = {path: check for path, check in manifest.broken_files.items() if check != "known_subject"}
    waiting = {row[1]: row for row in Page(page).tables["pending"]}  # source, file, reason
    assert set(rows) == set(broken)
    assert set(waiting) == set(manifest.broken_files) - set(broken) == {"raw/minute/S9999_minute.csv"}
    assert "S9999 is not in the enrollment file yet" in waiting["raw/minute/S9999_minute.csv"][2]
    for path, check in broken.items():
        source, _, status, reason, report_id = rows[path]
        assert status == "quarantined" and report_id.startswith(f"{source}-")
        if check == "readable":  # the reader's own words: the file is not whole
            assert "truncated" in reason
        else:
            assert reason.startswith(f"{check}: expect_"), reason
    counts = {row[0]: row for row in Page(page).tables["sources"]}
    assert counts["minute_wearable"][4] == "1" and counts["minute_wearable"][6] == "1" and counts["subjects"][2] == "1"


def test_nothing_trained_or_scored_is_said_and_alerts_are_shown_and_marked(report) -> None:
    from pipelines.demo.generate import _FAKE_NAMES

    _, _, _, page = report
    assert "No model has been trained for this study yet" in section(page, "model")
    assert "biomarkers train STUDY --model hospitalization_risk" in section(page, "model")
    assert "No endpoint model has scored this study yet" in section(page, "risk")
    alerts = Page(section(page, "alerts")).tables["alerts"]
    assert [row[2] for row in alerts] == ["S0002", "S0003"] and alerts[1][3] == "7"
    trajectories = section(page, "trajectories")
    assert "Anomaly events come from the alerts store" in trajectories
    assert "S0002: " in trajectories and "stream alert: vital-sign anomaly" in trajectories
    assert "hospitalization_90d index time" in trajectories
    assert not [name for name in _FAKE_NAMES if name in page]  # the export with names was quarantined, unread


def test_a_report_outside_the_data_root_is_refused(report, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tests.pipelines.conftest import DEMO_STUDY

    _, config, _, _ = report
    outside = tmp_path / "report.html"
    with pytest.raises(ReportError, match="outside the study data root"):
        write_report(config, out=outside)
    with pytest.raises(ReportError, match="is a folder"):
        report_path(config, config.platform_root)
    refused = CliRunner().invoke(app, ["report", str(DEMO_STUDY), "--data-root", str(config.data_root),
                                       "--out", "../report.html"])
    assert refused.exit_code == 2 and "outside the study data root" in refused.output
    assert not outside.exists() and not (config.data_root.parent / "report.html").exists()
    helped = CliRunner().invoke(app, ["report", "--help"])
    assert helped.exit_code == 0 and "Example: biomarkers report" in helped.output


def test_a_study_with_nothing_yet_says_so_in_every_section(tiny_study: Path) -> None:
    config = load_study(tiny_study)
    page = write_report(config, out="report.html", tables=config.data_root / "no_tables").read_text()
    assert "Nothing has been ingested yet" in section(page, "quality")
    assert "No raw wrist accelerometry has been built" in section(page, "recording-qc")
    assert "No feature tables have been built" in section(page, "distributions")
    assert "No feature tables have been built" in section(page, "trajectories")
    assert "study.yaml declares no endpoint model" in section(page, "model")
    assert "No endpoint model has scored" in section(page, "risk")
    assert "no alerts store yet" in section(page, "alerts")
    assert not plots(page) and "Traceback" not in page
    assert not (config.platform_root / "catalog.db").exists()  # a report reads; it creates no store


def test_an_unreadable_artifact_costs_only_its_own_section(tiny_study: Path) -> None:
    from pipelines.config import ModelConfig

    config = load_study(tiny_study)
    config = config.model_copy(update={"models": {"risk": ModelConfig(
        task="endpoint", feature_service="endpoint_v1", estimator="logistic_regression")}})
    scores = config.platform_root / "scores"
    scores.mkdir(parents=True)
    (scores / "tiny-risk-v1-latest.parquet").write_text("not parquet")
    page = write_report(config, out="report.html", alerts="The alerts store could not be read: OperationalError",
                        tables=config.data_root).read_text()
    assert "This section could not be built: ArrowInvalid" in section(page, "risk")
    assert "The alerts store could not be read" in section(page, "alerts")
    assert "Nothing has been ingested yet" in section(page, "quality")


def test_biomarkers_report_writes_where_asked_and_prints_the_path(report) -> None:

    from typer.testing import CliRunner

    from pipelines.cli import app
    from tests.pipelines.conftest import DEMO_STUDY

    _, config, _, _ = report
    made = CliRunner().invoke(app, ["report", str(DEMO_STUDY), "--data-root", str(config.data_root),
                                    "--out", ".platform/reports/cli/week12.html"])
    try:
        target = config.platform_root / "reports" / "cli" / "week12.html"
        assert made.exit_code == 0, made.output
        assert f"study report: {target}" in made.output.replace("\n", "")
        assert [title in target.read_text() for _, title, _ in SECTIONS] == [True] * len(SECTIONS)
    finally:
        shutil.rmtree(config.platform_root / "reports" / "cli", ignore_errors=True)


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    """Debian's Chromium, headless, as the issue runs it (a profile of the test's own, nothing kept)."""
    return subprocess.run(headless_chromium_command(profile, *arguments), capture_output=True, text=True, timeout=120)


def test_the_report_renders_in_headless_chromium_with_its_plots(report, tmp_path: Path) -> None:
    """What a reader's browser builds from the file: every section and every plot, and a screenshot
    that shows them (not a blank or an error page)."""
    from PIL import Image

    _, _, path, page = report
    url = path.resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    built = Page(dom.stdout)
    assert built.headings == [title for _, title, _ in SECTIONS]
    figures = plots(dom.stdout)
    assert len(figures) == len(plots(page)) == 1 + len(KEY_BIOMARKERS) + TRAJECTORY_SUBJECTS
    assert all("<svg" in figure or "<img" in figure for figure in figures)

    shot = tmp_path / "report.png"
    taken = chromium("--window-size=1280,3000", f"--screenshot={shot}", url, profile=tmp_path / "profile")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 3000)
    pixels = np.asarray(image).reshape(-1, 3)
    assert (pixels.min(axis=1) < 200).mean() > 0.02  # text and plots drawn, not a blank page
    colours = {tuple(colour) for colour in pixels[::7]}
    assert len(colours) > 100  # the plots' colours and their anti-aliasing: more than a page of text
