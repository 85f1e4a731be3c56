"""The study report: one self-contained HTML file that shows a study at a glance.

``write_report(config)`` writes ``<platform>/reports/study_report.html`` (a temporary file, then
a rename) from the artifacts the platform already keeps; it trains, scores and validates nothing:

1. data quality per source: the catalog (latest version of every file: curated, quarantined or
   failed, and why) and the validation reports (which curated files passed with warnings);
2. biomarker distributions by arm and site: the published feature tables (``_build.json`` says
   which study they were built for) and the curated enrollment table;
3. trajectories of a few subjects with their endpoint (the curated endpoints table) and anomaly
   events (anomaly models' scores under ``<platform>/scores/``, and alerts);
4. the endpoint model's performance: its registered version's training run in MLflow (metrics
   with bootstrap confidence intervals, the ROC and calibration plots the run logged,
   ``subgroup_metrics.json``);
5. the highest-risk subjects: the endpoint model's newest scores file under ``<platform>/scores/``;
6. the alerts raised: rows of the alerts store, which the caller reads and passes in (only the CLI
   may import ``serving/``).

A section whose artifacts do not exist yet says so in a sentence naming the command that makes
them; a section that fails on an unreadable artifact says which and the others still render.
The page fetches nothing: plots are inline SVG or base64 PNG, the style is inline, there is no
script, and its Content-Security-Policy forbids the browser any request. Subjects appear only by
their study subject code (the platform holds no direct identifier). Every plot is a
``<figure class="plot">`` holding one ``<svg>`` or ``<img>``: what a browser test counts.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import ENDPOINTS_SOURCE, SUBJECTS_SOURCE, ConfigError, StudyConfig
from pipelines.ingest.lake import read_table

logger = logging.getLogger(__name__)

REPORT_FILE = "study_report.html"
KEY_BIOMARKERS = ("steps_sum_1d_count", "resting_heart_rate_1d_bpm", "total_sleep_time_night_min",
                  "interdaily_stability_7d", "relative_amplitude_7d", "rmssd_morning_ms", "creatinine_last_mg_dl")
GROUPINGS = {"arm": "arm", "site_id": "site"}  # enrollment column -> its name on the plots
TRAJECTORY_SUBJECTS = 3
HIGHEST_RISK_SHOWN = 10
ALERTS_SHOWN = 50
MODEL_PLOTS = {"plots/roc.png": "ROC curve", "plots/calibration.png": "calibration curve"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d2433; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #dde2ea; padding-bottom: 0.2rem; margin-top: 2.5rem; }
nav a { margin-right: 1rem; } .meta, figcaption, .note { color: #4c566a; }
.note { background: #f3f5f9; border-left: 4px solid #9aa0a6; padding: 0.5rem 0.8rem; }
.error { border-left-color: #a4262c; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { border-bottom: 1px solid #dde2ea; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure.plot { margin: 1rem 0; } figure.plot svg, figure.plot img { max-width: 100%; height: auto; }
.quarantined { color: #a4262c; font-weight: 600; } .failed { color: #8a3ffc; font-weight: 600; }
"""
# No request of any kind, even if a later change slipped in a link: the browser enforces it.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class ReportError(ValueError):
    """The report cannot be written where it was asked to go; the message says where it may go."""


def report_path(config: StudyConfig, out: str | Path | None = None) -> Path:
    """Where the report is written: ``out`` (relative to the data root, or absolute inside it),
    by default ``<platform>/reports/study_report.html``.

    Raises
    ------
    ReportError
        If ``out`` leaves the study's data root or is a folder.
    """
    try:
        target = config.resolve(config.reports_root / REPORT_FILE if out is None else out)
    except ConfigError as error:
        raise ReportError(f"report file: {error}; write it under the data root, e.g. "
                          f"--out {config.platform_dir}/reports/{REPORT_FILE}") from None
    if target.is_dir():
        raise ReportError(f"report file: {target} is a folder; name the HTML file, e.g. --out {out}/{REPORT_FILE}")
    return target


def write_report(config: StudyConfig, *, out: str | Path | None = None, tables: Path | None = None,
                 alerts: pd.DataFrame | str | None = None, now: datetime | None = None) -> Path:
    """Write the study report atomically and return its path.

    Parameters
    ----------
    config : the study.
    out : the HTML file, inside the data root (see `report_path`); default
        ``<platform>/reports/study_report.html``.
    tables : the feature tables folder (default: the study's, ``StudyConfig.feature_tables_root``).
    alerts : the study's alerts, newest first: a frame with the fields of ``serving.alerts.Alert``
        (``subject_id``, ``event_time``, ``recorded_at``, ``news2``, ``risk_band``, ``reason``,
        ``source``); a sentence saying why they could not be read; or None when the study has
        no alerts store yet.
    now : the time the report says it was written (default: now, UTC).

    Raises
    ------
    ReportError
        If ``out`` is outside the data root, before anything is read.
    """
    target = report_path(config, out)
    page = render_report(config, tables=tables, alerts=alerts, now=now)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target


def render_report(config: StudyConfig, *, tables: Path | None = None, alerts: pd.DataFrame | str | None = None,
                  now: datetime | None = None) -> str:
    """The report's HTML (arguments as for `write_report`)."""
    study = _Study(config, Path(tables or config.feature_tables_root), alerts)
    body = "\n".join(_section(anchor, title, build, study) for anchor, title, build in SECTIONS)
    contents = " ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title, _ in SECTIONS)
    written = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    name = html.escape(config.study_id)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Study report: {name}</title>
<style>{_STYLE}</style></head><body>
<h1>Study report: {name}</h1>
<p class="meta">Written {written} from the artifacts under {html.escape(str(config.data_root))}.
Subjects appear by study subject code only.</p>
<nav>{contents}</nav>
{body}
</body></html>
"""


def sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist: nothing was recorded there yet,
    and opening it would create it (a report only reads)."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:  # not a database URL, e.g. an MLflow server's http://
        return False
    database = parsed.database
    return (parsed.get_backend_name() == "sqlite" and bool(database) and database != ":memory:"
            and not database.startswith("file:") and not Path(database).exists())


# --------------------------------------------------------------------------------------------
# The study's artifacts, each read once on first use (a section that fails to read one says so)


class _Study:
    """The artifacts of one study that the sections read, each loaded once, on first use."""

    def __init__(self, config: StudyConfig, tables: Path, alerts: pd.DataFrame | str | None):
        self.config = config
        self.tables = tables
        self.alerts = alerts

    @cached_property
    def enrollment(self) -> pd.DataFrame | None:
        """subject_id, arm and site_id per enrolled subject ("unknown" where not given)."""
        subjects = read_table(self.config.lake_root, SUBJECTS_SOURCE)
        if subjects is None:
            return None
        frame = pd.DataFrame({"subject_id": subjects["subject_id"].astype(str)})
        for column in GROUPINGS:
            frame[column] = subjects[column].astype("string").fillna("unknown") if column in subjects else "unknown"
        return frame

    @cached_property
    def endpoints(self) -> pd.DataFrame | None:
        return read_table(self.config.lake_root, ENDPOINTS_SOURCE)

    @cached_property
    def endpoint_models(self) -> dict[str, str]:
        """Endpoint model name -> its registered name: the models whose scores are risks (``training.tasks``)."""
        from pipelines.models.train import registered_name
        from training.tasks import task_named

        return {name: registered_name(self.config, name) for name, model in self.config.models.items()
                if task_named(model.task).ranks_risk}

    @cached_property
    def biomarkers(self) -> tuple[pd.DataFrame | None, str]:
        """The key biomarkers, long (subject_id, event_timestamp, biomarker, value) and only of
        enrolled subjects; or None. The sentence says where they come from, or why there are none."""
        from pipelines.build.local import MANIFEST

        manifest_path = self.tables / MANIFEST
        if not manifest_path.is_file():
            return None, (f"No feature tables have been built in {self.tables} yet: run "
                          "`biomarkers build-features STUDY`.")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("study_id") != self.config.study_id:
            return None, (f"The feature tables in {self.tables} were built for study {manifest.get('study_id')!r}, "
                          f"not {self.config.study_id!r}: run `biomarkers build-features STUDY`.")
        import pyarrow.parquet as pq

        parts = []
        for path in sorted(self.tables.glob("*.parquet")):
            wanted = [name for name in KEY_BIOMARKERS if name in pq.read_schema(path).names]
            if wanted:
                frame = pd.read_parquet(path, columns=["subject_id", "event_timestamp", *wanted])
                parts.append(frame.melt(id_vars=["subject_id", "event_timestamp"], var_name="biomarker",
                                        value_name="value").dropna(subset=["value"]))
        source = f"From the feature tables built {manifest.get('built_at', '(time not recorded)')} in {self.tables}."
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if self.enrollment is not None and not rows.empty:
            rows = rows[rows["subject_id"].astype(str).isin(self.enrollment["subject_id"])]
        if rows.empty:
            return None, f"{source} None of the key biomarkers ({', '.join(KEY_BIOMARKERS)}) has a value there."
        rows = rows.astype({"subject_id": str, "value": "float64"})
        rows["event_timestamp"] = pd.to_datetime(rows["event_timestamp"], utc=True)
        order = rows["biomarker"].map({name: index for index, name in enumerate(KEY_BIOMARKERS)})
        rows = rows.assign(order=order).sort_values(["order", "subject_id", "event_timestamp"], ignore_index=True)
        return rows.drop(columns="order"), source

    @cached_property
    def scores(self) -> dict[str, tuple[Path, pd.DataFrame]]:
        """Registered model name -> its newest scores file under ``<platform>/scores/`` and its rows."""
        folder = self.config.platform_root / "scores"
        newest: dict[str, tuple[Path, pd.DataFrame]] = {}
        for path in sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime):  # newest last: it stays
            frame = pd.read_parquet(path)
            if not frame.empty and "model_name" in frame:
                newest[str(frame["model_name"].iloc[0])] = (path, frame)
        return newest

    @cached_property
    def events(self) -> pd.DataFrame:
        """subject_id, time (UTC), kind (a key of ``report_plots.EVENT_STYLES``) and label of every
        endpoint index time, anomaly flagged by an anomaly model's scores, and alert."""
        frames = [pd.DataFrame(columns=["subject_id", "time", "kind", "label"])]
        endpoints = self.endpoints
        if endpoints is not None and not endpoints.empty:
            occurred = endpoints["outcome"].astype(int) == 1
            frames.append(pd.DataFrame({
                "subject_id": endpoints["subject_id"].astype(str),
                "time": pd.to_datetime(endpoints["index_time"], utc=True),
                "kind": np.where(occurred, "endpoint: occurred", "endpoint: did not occur"),
                "label": endpoints["endpoint"].astype(str) + " index time: the endpoint "
                + np.where(occurred, "occurred", "did not occur") + " within its horizon"}))
        for _, scores in self.anomaly_scores():
            flagged = scores[scores["anomaly"].astype(bool)]
            frames.append(pd.DataFrame({
                "subject_id": flagged["subject_id"].astype(str),
                "time": pd.to_datetime(flagged["as_of"], utc=True),
                "kind": "anomaly",
                "label": [f"{row.model_name} v{row.model_version} flagged the window ending here (score "
                          f"{row.score:.3g})" for row in flagged.itertuples()]}))
        alerts = self.alerts
        if isinstance(alerts, pd.DataFrame) and not alerts.empty:
            anomaly = alerts["reason"].str.contains("anomaly", case=False)
            frames.append(pd.DataFrame({
                "subject_id": alerts["subject_id"].astype(str),
                "time": pd.to_datetime(alerts["event_time"], utc=True),
                "kind": np.where(anomaly, "anomaly alert", "NEWS2 alert"),
                "label": alerts["source"].astype(str) + " alert: " + alerts["reason"].astype(str)}))
        events = pd.concat([frame for frame in frames if not frame.empty] or frames, ignore_index=True)
        return events.sort_values(["subject_id", "time"], ignore_index=True)

    def anomaly_scores(self) -> list[tuple[str, pd.DataFrame]]:
        return [(name, frame) for name, (_, frame) in sorted(self.scores.items()) if "anomaly" in frame]


def _section(anchor: str, title: str, build: Callable[[_Study], str], study: _Study) -> str:
    try:
        body = build(study)
    except Exception as error:  # noqa: BLE001 - one unreadable artifact must not cost the other sections
        logger.info("report section %r failed", title, exc_info=True)  # the traceback with --verbose only
        body = _note(f"This section could not be built: {type(error).__name__}: {error}", error=True)
    return f'<section id="{anchor}">\n<h2>{html.escape(title)}</h2>\n{body}\n</section>'


# --------------------------------------------------------------------------------------------
# The sections: each returns its HTML body


def _quality_section(study: _Study) -> str:
    from pipelines.ingest.catalog import Catalog, FileStatus
    from pipelines.report.plots import quality_plot

    config = study.config
    if sqlite_file_missing(config.catalog):
        return _note("Nothing has been ingested yet (the study has no catalog): run "
                     "`biomarkers ingest STUDY`.")
    with Catalog(config.catalog) as catalog:
        records = catalog.latest()
    if not records:
        return _note("The catalog holds no file yet: run `biomarkers ingest STUDY`.")
    files = pd.DataFrame({
        "source": [r.source for r in records],
        "status": [r.status.value for r in records],
        "rows": [(r.rows or 0) if r.status is FileStatus.CURATED else 0 for r in records],
        "warned": [r.status is FileStatus.CURATED and _validation_outcome(config, r.report_id) == "passed_with_warnings"
                   for r in records]})
    counts = pd.crosstab(files["source"], files["status"])
    counts = counts.reindex(columns=list(dict.fromkeys(["curated", "quarantined", "failed", "pending",
                                                         *counts.columns])), fill_value=0)
    per_source = files.groupby("source").agg(rows=("rows", "sum"), warned=("warned", "sum"))
    table = _table(
        ["source", "files", "curated", "of which with warnings", "quarantined", "failed", "pending", "rows curated"],
        [[source, _count(counts.loc[source].sum()), _count(counts.loc[source, "curated"]),
          _count(per_source.loc[source, "warned"]), _count(counts.loc[source, "quarantined"]),
          _count(counts.loc[source, "failed"]), _count(counts.loc[source, "pending"]),
          _count(per_source.loc[source, "rows"])] for source in counts.index],
        numeric=range(1, 8), css="sources")
    problems = sorted((r for r in records if r.status in (FileStatus.QUARANTINED, FileStatus.FAILED)),
                      key=lambda r: (r.source, r.path))
    parts = [_paragraph(f"The latest version of each of the {len(records)} files in the catalog, per source. "
                        f"The data quality page {config.reports_root / 'index.html'} lists every file with its "
                        "evidence."),
             table,
             _figure(quality_plot(counts), "Files per source and outcome.")]
    waiting = sorted((r for r in records if r.status is FileStatus.PENDING), key=lambda r: (r.source, r.path))
    if waiting:
        parts.append(_paragraph(f"{len(waiting)} files wait for their subject's enrollment (pending): nothing of "
                                "them is in the curated lake yet, and the first run after the enrollment file names "
                                "their subject curates them."))
        parts.append(_table(["source", "file", "reason"], [[r.source, r.path, r.message or ""] for r in waiting],
                            css="pending"))
    if not problems:
        parts.append(_paragraph("No file was quarantined and none failed."))
        return "\n".join(parts)
    parts.append(_paragraph(f"{len(problems)} files were quarantined or failed: nothing of them reached the "
                            f"curated lake. Each keeps a copy and its full report under "
                            f"{config.quarantine_root}/<report id>/."))
    parts.append(_table(["source", "file", "status", "reason", "report id"],
                        [[r.source, r.path, _Raw(f'<span class="{r.status.value}">{r.status.value}</span>'),
                          r.message or "", r.report_id or ""] for r in problems], css="quarantine"))
    return "\n".join(parts)


_QC_COLUMNS = ["calibration_error_before_mg", "calibration_error_after_mg", "autocalibrated_flag",
               "clipped_samples_1d_percent", "nonwear_1d_percent"]


def _recording_qc_section(study: _Study) -> str:
    path = study.tables / "accel_activity.parquet"
    if not path.is_file():
        return _note(f"No raw wrist accelerometry has been built into {study.tables} (table accel_activity): "
                     "nothing to check.")
    days = pd.read_parquet(path, columns=["subject_id", "event_timestamp", *_QC_COLUMNS,
                                          "accel_activity_missing_reason"])
    reason = days["accel_activity_missing_reason"].fillna("")
    failed = reason.str.contains("biomarkers.qc.")
    per_subject = days.assign(qc_failed=failed).groupby("subject_id", sort=True).agg(
        days=("event_timestamp", "size"), before=("calibration_error_before_mg", "max"),
        after=("calibration_error_after_mg", "max"), calibrated=("autocalibrated_flag", "max"),
        clipped=("clipped_samples_1d_percent", "max"), nonwear=("nonwear_1d_percent", "median"),
        qc_failed=("qc_failed", "sum"))
    parts = [_paragraph(
        f"Each wrist recording is autocalibrated from its still periods (van Hees et al. 2014) when it is long "
        f"and varied enough, as GGIR does, before any activity level. The calibration error is the mean distance "
        f"from 1 g of its still 10-s windows; a day fails quality control when the error after calibration or its "
        f"share of clipped samples is above the study's limits (biomarkers.qc), and then has no activity levels. "
        f"{int(failed.sum())} of {len(days)} subject-days failed; {int((per_subject['calibrated'] == 1).sum())} of "
        f"{len(per_subject)} subjects' recordings were recalibrated."),
        _table(["subject", "days", "calibration error before (mg)", "after (mg)", "autocalibrated",
                "clipped samples, worst day (%)", "not worn, median day (%)", "days failing QC"],
               [[subject, _count(row.days), _number(row.before, 2), _number(row.after, 2),
                 "yes" if row.calibrated == 1 else "no", _number(row.clipped, 2), _number(row.nonwear, 1),
                 _count(row.qc_failed)] for subject, row in per_subject.iterrows()],
               numeric=(1, 2, 3, 5, 6, 7), css="recording-qc")]
    reasons = sorted(set(reason[failed]))
    if reasons:
        parts.append(_paragraph("Why days failed: " + "; ".join(reasons[:5]) + ("; ..." if len(reasons) > 5 else "")))
    return "\n".join(parts)


def _validation_outcome(config: StudyConfig, report_id: str | None) -> str | None:
    path = config.reports_root / f"{report_id}.json" if report_id else None
    return json.loads(path.read_text()).get("outcome") if path is not None and path.is_file() else None


def _distributions_section(study: _Study) -> str:
    from pipelines.report.plots import distribution_plot

    rows, source = study.biomarkers
    if rows is None:
        return _note(source)
    if study.enrollment is None:
        return _note("There is no curated enrollment table (the arm and site of each subject): run "
                     "`biomarkers ingest STUDY`.")
    per_subject = (rows.groupby(["biomarker", "subject_id"], sort=False)["value"].median().reset_index()
                   .merge(study.enrollment, on="subject_id"))
    parts = [_paragraph(f"{source} Each point is one subject's median over all its windows: subjects are followed "
                        "for different numbers of days, and each counts once.")]
    shown = [name for name in KEY_BIOMARKERS if name in set(per_subject["biomarker"])]
    for name in shown:
        values = per_subject[per_subject["biomarker"] == name]
        parts.append(_figure(distribution_plot(values, name, GROUPINGS),
                             f"{name}: {len(values)} subjects, by arm and by site."))
    absent = [name for name in KEY_BIOMARKERS if name not in shown]
    if absent:
        parts.append(_paragraph(f"Without any value in the feature tables: {', '.join(absent)}."))
    return "\n".join(parts)


def _trajectories_section(study: _Study) -> str:
    from pipelines.report.plots import trajectory_plot

    rows, source = study.biomarkers
    if rows is None:
        return _note(source)
    events = study.events
    anomalous = set(events.loc[events["kind"].isin(["anomaly", "anomaly alert", "NEWS2 alert"]), "subject_id"])
    occurred = set(events.loc[events["kind"] == "endpoint: occurred", "subject_id"])
    subjects = sorted(rows["subject_id"].unique(), key=lambda s: (s not in anomalous, s not in occurred, s))
    shown = subjects[:TRAJECTORY_SUBJECTS]
    parts = [_paragraph(f"{source} {len(shown)} of {len(subjects)} subjects: those with anomaly events or alerts "
                        "first, then those whose endpoint occurred, then by subject code. Vertical lines mark "
                        "each subject's endpoint index time and its anomaly events and alerts."),
             _anomaly_sources(study)]
    for subject in shown:
        own = events[events["subject_id"] == subject]
        listed = "; ".join(f"{event.time:%Y-%m-%d %H:%M} {event.label}" for event in own.itertuples())
        parts.append(_figure(trajectory_plot(subject, rows[rows["subject_id"] == subject], own),
                             f"{subject}: " + (listed or "no endpoint or anomaly event.")))
    return "\n".join(parts)


def _anomaly_sources(study: _Study) -> str:
    models = [name for name, _ in study.anomaly_scores()]
    alerts = study.alerts
    has_alerts = isinstance(alerts, pd.DataFrame) and not alerts.empty
    if not models and not has_alerts:
        return _paragraph("No anomaly events can be marked: no anomaly model has scored this study yet (no anomaly "
                          f"scores under {study.config.platform_root / 'scores'}) and no alert has been raised.")
    sources = [f"the newest scores of {name}" for name in models] + (["the alerts store"] if has_alerts else [])
    return _paragraph(f"Anomaly events come from {' and '.join(sources)}.")


def _model_section(study: _Study) -> str:
    config = study.config
    if not study.endpoint_models:
        return _note("study.yaml declares no endpoint model (a model under `models:` with "
                     "`task: endpoint`).")
    first = next(iter(study.endpoint_models))
    if sqlite_file_missing(config.tracking_uri):
        return _note("No model has been trained for this study yet (it has no MLflow tracking store): run "
                     f"`biomarkers train STUDY --model {first}`.")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    parts = []
    for model, registered in study.endpoint_models.items():
        if len(study.endpoint_models) > 1:
            parts.append(f"<h3>{model}</h3>")
        parts.append(_model_performance(client, model, registered))
    return "\n".join(parts)


def _model_performance(client, model: str, registered: str) -> str:
    version, which = _shown_version(client, registered)
    if version is None:
        return _note(f"No model has been trained for endpoint model {model} yet (no version of "
                     f"{registered} is registered): run `biomarkers train STUDY --model "
                     f"{model}`.")
    run = client.get_run(version.run_id)
    metrics, params = run.data.metrics, run.data.params
    trained = pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
    parts = [_paragraph(
        f"{registered} version {version.version} ({which}), trained {trained:%Y-%m-%d %H:%M} UTC by run "
        f"{run.info.run_id} ({params.get('estimator', 'estimator not recorded')} on feature service "
        f"{params.get('feature_service', '?')}). Evaluated on held-out test subjects: "
        f"{_count(metrics.get('n_samples'))} rows of {_count(metrics.get('n_groups'))} subjects, "
        f"{_count(metrics.get('n_positive'))} with the endpoint; 95% confidence intervals from a bootstrap over "
        "subjects.")]
    headline = [key for key in metrics if f"{key}_ci_low" in metrics]
    parts.append(_table(["metric", "value", "95% CI"],
                        [[key, _number(metrics[key]), _interval(metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"])]
                         for key in sorted(headline)], numeric=(1, 2), css="metrics"))
    missing = []
    with tempfile.TemporaryDirectory() as folder:
        for artifact, caption in MODEL_PLOTS.items():
            path = _download(client, run.info.run_id, artifact, folder)
            if path is None:
                missing.append(artifact)
                continue
            image = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(_figure(f'<img alt="{caption}" src="data:image/png;base64,{image}">',
                                 f"{caption[0].upper()}{caption[1:]} on the test subjects, as the training run drew "
                                 f"it ({artifact})."))
        subgroups_path = _download(client, run.info.run_id, "subgroup_metrics.json", folder)
        subgroups = json.loads(Path(subgroups_path).read_text())["rows"] if subgroups_path else None
    if subgroups is None:
        missing.append("subgroup_metrics.json")
    else:
        parts.append(_paragraph("Per subgroup of the test subjects (a subgroup too small or of one class has no "
                                "estimate; its note says why):"))
        parts.append(_table(
            ["subgroup", "value", "rows", "with endpoint", "subjects", "AUROC", "95% CI", "calibration error",
             "95% CI", "note"],
            [[row["subgroup"], row["value"], _count(row.get("n_samples")), _count(row.get("n_positive")),
              _count(row.get("n_groups")), _number(row.get("auroc")),
              _interval(row.get("auroc_ci_low"), row.get("auroc_ci_high")), _number(row.get("calibration_error")),
              _interval(row.get("calibration_error_ci_low"), row.get("calibration_error_ci_high")),
              row.get("note") or ""] for row in subgroups], numeric=range(2, 9), css="subgroups"))
    if missing:
        parts.append(_note(f"Not among the run's artifacts: {', '.join(missing)}. The run did not log its test-set "
                           "predictions either, so the missing curves cannot be drawn here; train again to log them."))
    else:
        parts.append(_paragraph("The curves are the images the training run logged; its test-set predictions are "
                                "not logged, so they are shown as drawn."))
    return "\n".join(parts)


def _shown_version(client, registered: str):
    """The version to report and why it: the champion, else the candidate, else the newest; (None, None) if none."""
    from mlflow.exceptions import MlflowException

    from pipelines.models.registry import CANDIDATE, CHAMPION

    for alias in (CHAMPION, CANDIDATE):
        try:
            return client.get_model_version_by_alias(registered, alias), f"alias {alias}"
        except MlflowException:
            continue
    versions = client.search_model_versions(f"name = '{registered}'")
    if not versions:
        return None, None
    return max(versions, key=lambda v: int(v.version)), "the newest version, no alias"


def _download(client, run_id: str, artifact: str, folder: str) -> str | None:
    """A run's artifact downloaded into ``folder``, or None if the run has none of that name."""
    from mlflow.exceptions import MlflowException

    try:
        return client.download_artifacts(run_id, artifact, folder)
    except (MlflowException, OSError):
        return None


def _risk_section(study: _Study) -> str:
    found = {name: study.scores[name] for name in study.endpoint_models.values() if name in study.scores}
    if not found:
        return _note("No endpoint model has scored this study yet (no scores file under "
                     f"{study.config.platform_root / 'scores'}): run `biomarkers score STUDY --model "
                     "NAME@champion --as-of latest`.")
    groups = study.enrollment if study.enrollment is not None else pd.DataFrame(columns=["subject_id", *GROUPINGS])
    parts = []
    for name, (path, scores) in found.items():
        top = (scores.assign(subject_id=scores["subject_id"].astype(str))
               .sort_values(["score", "subject_id"], ascending=[False, True]).head(HIGHEST_RISK_SHOWN)
               .merge(groups, on="subject_id", how="left"))
        written = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
        parts.append(_paragraph(
            f"The {len(top)} highest of {len(scores)} risk scores by {name} version {scores['model_version'].iloc[0]}: "
            f"the predicted probability of the endpoint, each subject as of the time shown. From {path.name} "
            f"(written {written:%Y-%m-%d %H:%M} UTC)."))
        parts.append(_table(["rank", "subject", "site", "arm", "risk", "as of (UTC)"],
                            [[_count(rank), row.subject_id, _text(row.site_id), _text(row.arm), _number(row.score),
                              _time(row.as_of)]
                             for rank, row in enumerate(top.itertuples(), start=1)], numeric=(0, 4), css="risk"))
    return "\n".join(parts)


def _alerts_section(study: _Study) -> str:
    alerts = study.alerts
    if isinstance(alerts, str):
        return _note(alerts, error=True)
    if alerts is None:
        return _note("The study has no alerts store yet: alerts are raised when vital-sign events reach "
                     "`biomarkers serve` (POST /v1/events) or `biomarkers stream`.")
    if alerts.empty:
        return _note("No alert has been raised.")
    counts = pd.crosstab(alerts["risk_band"].fillna("none"), alerts["source"])
    by_band = _table(["risk band", *counts.columns], [[band, *map(_count, counts.loc[band])] for band in counts.index],
                     numeric=range(1, len(counts.columns) + 1), css="alert-counts")
    newest = _table(["recorded", "event time", "subject", "NEWS2", "risk band", "source", "reason"],
                    [[_time(row.recorded_at), _time(row.event_time), row.subject_id, _number(row.news2, 0),
                      _text(row.risk_band), row.source, row.reason] for row in alerts.head(ALERTS_SHOWN).itertuples()],
                    numeric=(3,), css="alerts")
    return "\n".join([_paragraph(f"{len(alerts)} alerts read from the alerts store; by risk band and source:"),
                      by_band, _paragraph(f"The newest {min(len(alerts), ALERTS_SHOWN)} (times in UTC):"), newest])


SECTIONS: tuple[tuple[str, str, Callable[[_Study], str]], ...] = (
    ("quality", "Data quality per source", _quality_section),
    ("recording-qc", "Recording quality control", _recording_qc_section),
    ("distributions", "Biomarker distributions by arm and site", _distributions_section),
    ("trajectories", "Subject trajectories", _trajectories_section),
    ("model", "Endpoint model performance", _model_section),
    ("risk", "Highest-risk subjects", _risk_section),
    ("alerts", "Alerts raised", _alerts_section),
)
"""(anchor, heading, builder) of each section, in page order."""


# --------------------------------------------------------------------------------------------
# HTML pieces: every value from the data is escaped; ``_Raw`` marks markup made here


class _Raw(str):
    """Markup built by this module, put into a table cell as is."""


def _cell(value: object) -> str:
    return value if isinstance(value, _Raw) else html.escape(str(value))


def _table(columns: list[str], rows: Iterable[list], *, numeric: Iterable[int] = (), css: str = "") -> str:
    numeric = set(numeric)
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join("<tr>" + "".join(f'<td class="number">{_cell(value)}</td>' if index in numeric
                                      else f"<td>{_cell(value)}</td>" for index, value in enumerate(row)) + "</tr>"
                     for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _prose(text: str) -> str:
    """Plain text as HTML: escaped, with `backticked` commands set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _figure(plot: str, caption: str) -> str:
    """A plot (an inline ``<svg>`` or a data-URI ``<img>``) with its caption (plain text)."""
    return f'<figure class="plot">\n{plot}\n<figcaption>{_prose(caption)}</figcaption>\n</figure>'


def _paragraph(text: str) -> str:
    return f"<p>{_prose(text)}</p>"


def _note(text: str, error: bool = False) -> str:
    return f'<p class="note{" error" if error else ""}">{_prose(text)}</p>'


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _number(value: object, digits: int = 3) -> str:
    return "-" if _missing(value) else f"{float(value):.{digits}f}"


def _count(value: object) -> str:
    return "-" if _missing(value) else f"{int(value):,}"


def _interval(low: object, high: object) -> str:
    return "-" if _missing(low) or _missing(high) else f"{_number(low)} to {_number(high)}"


def _time(value: object) -> str:
    return "-" if _missing(value) else f"{pd.Timestamp(value).tz_convert('UTC'):%Y-%m-%d %H:%M}"


def _text(value: object) -> str:
    return "-" if _missing(value) else str(value)
