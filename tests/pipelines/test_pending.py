"""Files that arrive before the enrollment file names their subject wait (``pending``) instead of
being quarantined, and are curated by the first run after the subject is enrolled."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_study
from pipelines.ingest.catalog import Catalog, FileStatus
from pipelines.ingest.lake import lake_versions, read_subject, table_parts
from pipelines.ingest.run import Ingestor, _Task, ingest_study, read_known_subjects, study_status
from tests.pipelines.conftest import make_study, write_minute_file
from tests.pipelines.test_crash_recovery import kill_group, start_paused
from validation.causes import waiting_reason
from validation.report import Failure, Outcome, ValidationReport

WAITING = "raw/minute/S0099_minute.csv"
SOURCE = "minute_wearable"


def study_with_unenrolled_file(root: Path, *, minutes: int = 180):
    """The tiny study (S0001 to S0004 enrolled) plus a minute file of S0099, not enrolled."""
    study = make_study(root)
    write_minute_file(root / WAITING, 99, minutes=minutes)
    return load_study(study)


def enroll(config, subject_id: str) -> None:
    path = config.data_root / "raw" / "subjects.csv"
    subjects = pd.read_csv(path, dtype=str)
    row = {"subject_id": subject_id, "site": "SITE-A", "arm": "placebo", "sex": "F", "birth_year": "1960",
           "enrolled_on": "2024-03-02"}
    pd.concat([subjects, pd.DataFrame([row])]).to_csv(path, index=False)


def records_of(config, path: str) -> list:
    with Catalog(config.catalog) as catalog:
        return [record for record in catalog.files() if record.path == path]


def quarantined_files(config) -> list[Path]:
    root = config.quarantine_root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_file_of_an_unenrolled_subject_is_pending_with_its_reason_and_nowhere_else(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")

    summary = ingest_study(config)

    outcome = next(o for o in summary.outcomes if o.path == WAITING)
    assert outcome.status == "pending"
    assert outcome.reason.startswith("waiting: subject S0099 is not in the enrollment file yet")
    assert summary.pending() == [outcome]
    assert summary.unprocessed() == []  # waiting is not a failure: `biomarkers ingest` exits 0
    assert summary.counts() == {"curated": 6, "quarantined": 0, "failed": 0, "pending": 1, "skipped": 0, "busy": 0}
    assert summary.by_source()[SOURCE]["pending"] == 1
    [record] = records_of(config, WAITING)
    assert (record.status, record.version, record.subject_id) == (FileStatus.PENDING, 1, "S0099")
    assert record.message == outcome.reason and record.curated_paths == () and record.lake_version is None
    assert quarantined_files(config) == []  # no quarantine copy, no quarantine report
    assert not (config.reports_root / f"{record.report_id}.json").exists()  # it would say "quarantined"
    assert read_subject(config.lake_root, SOURCE, "S0099") is None
    assert not [part for part in table_parts(config.lake_root, SOURCE) if "S0099" in part]

    status = study_status(config)
    assert status["counts"]["pending"] == 1 and status["counts"]["curated"] == 6
    entry = next(f for f in status["files"] if f["path"] == WAITING)
    assert (entry["status"], entry["reason"]) == ("pending", outcome.reason)
    row = next(line for line in summary.quality_page.read_text().split("<tr>") if WAITING in line)
    assert 'class="pending">pending<' in row and "waiting: subject S0099 is not in the enrollment file yet" in row
    assert "pending: 1" in summary.quality_page.read_text()


def test_a_pending_file_waits_unchanged_and_is_curated_exactly_once_after_enrollment(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")
    first = ingest_study(config)
    versions = lake_versions(config.lake_root)

    second = ingest_study(config)  # nothing changed: its subject is still unknown, so it waits unread

    outcome = next(o for o in second.outcomes if o.path == WAITING)
    assert outcome.status == "pending" and outcome.reason.startswith("waiting: subject S0099")
    assert {o.status for o in second.outcomes if o.path != WAITING} == {"skipped"}
    [record] = records_of(config, WAITING)  # the same record: no new version, no duplicate
    assert (record.status, record.version, record.run_id) == (FileStatus.PENDING, 1, first.run_id)
    assert lake_versions(config.lake_root) == versions  # no lake commit either
    assert quarantined_files(config) == []

    enroll(config, "S0099")
    third = ingest_study(config)

    statuses = {o.path: o.status for o in third.outcomes}
    assert statuses["raw/subjects.csv"] == "curated" and statuses[WAITING] == "curated"
    assert third.pending() == [] and third.unprocessed() == []
    [record] = records_of(config, WAITING)
    assert (record.status, record.version, record.run_id) == (FileStatus.CURATED, 1, third.run_id)
    rows = read_subject(config.lake_root, SOURCE, "S0099")
    assert len(rows) == 180 and not rows["timestamp"].duplicated().any()  # in the lake exactly once
    assert quarantined_files(config) == []
    assert study_status(config)["counts"]["pending"] == 0

    fourth = ingest_study(config)
    assert {o.status for o in fourth.outcomes} == {"skipped"}
    assert len(read_subject(config.lake_root, SOURCE, "S0099")) == 180


def test_a_malformed_file_of_an_unenrolled_subject_is_quarantined(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")
    path = config.data_root / WAITING
    frame = pd.read_csv(path)
    frame.loc[5, "heart_rate"] = 400
    frame.to_csv(path, index=False)

    outcome = next(o for o in ingest_study(config).outcomes if o.path == WAITING)

    # Bad in itself wins over waiting: enrolling the subject would not make this file good.
    assert outcome.status == "quarantined"
    report = ValidationReport.from_json((config.reports_root / f"{outcome.report_id}.json").read_text())
    assert {f.check for f in report.failures if f.severity == "reject"} == {"known_subject", "plausible_range"}
    assert (config.quarantine_root / outcome.report_id / "S0099_minute.csv").read_bytes() == path.read_bytes()
    assert records_of(config, WAITING)[0].status is FileStatus.QUARANTINED


def test_an_unreadable_file_of_an_unenrolled_subject_is_quarantined(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")
    (config.data_root / WAITING).write_text("time,steps,heart_rate,sleep_stage,worn\n")

    outcome = next(o for o in ingest_study(config).outcomes if o.path == WAITING)

    assert outcome.status == "quarantined"
    assert (config.quarantine_root / outcome.report_id / "S0099_minute.csv").exists()


def test_the_endpoints_file_never_waits(tmp_path: Path) -> None:
    config = load_study(make_study(tmp_path / "study"))
    path = config.data_root / "raw" / "endpoints.csv"
    endpoints = pd.read_csv(path, dtype=str)
    endpoints.loc[0, "subject_id"] = "S0099"
    endpoints.to_csv(path, index=False)

    outcome = next(o for o in ingest_study(config).outcomes if o.path == "raw/endpoints.csv")

    assert outcome.status == "quarantined" and "S0099 is not in the enrollment file" in outcome.reason


def test_known_subject_set_to_warn_still_curates_the_file(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study")
    study.write_text(study.read_text() + "checks: {known_subject: warn}\n")
    config = load_study(study)
    write_minute_file(config.data_root / WAITING, 99)

    outcome = next(o for o in ingest_study(config).outcomes if o.path == WAITING)

    assert outcome.status == "curated"  # the study chose to accept unknown subjects


def test_a_run_already_going_when_a_pending_file_was_checked_does_not_check_it_again(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")
    ingest_study(config)
    with Catalog(config.catalog) as catalog:
        early = catalog.start_run(config.study_id)  # a run that starts before the next one checks the file
    late = next(o for o in ingest_study(config).outcomes if o.path == WAITING)
    ingestor = Ingestor(config, early, read_known_subjects(config))
    try:
        ingestor.register_suites()
        outcome = ingestor.process(_Task(SOURCE, config.data_root / WAITING))
    finally:
        ingestor.catalog.close()

    # `early` reports the file as pending with the check `late` made, and makes none of its own.
    assert (outcome.status, outcome.report_id, outcome.reason) == ("pending", late.report_id, late.reason)
    assert ingestor.runner.results == []
    [record] = records_of(config, WAITING)
    assert (record.report_id, record.status) == (late.report_id, FileStatus.PENDING)


def test_biomarkers_ingest_exits_0_when_files_only_wait(tmp_path: Path) -> None:
    config = study_with_unenrolled_file(tmp_path / "study")

    result = CliRunner().invoke(app, ["ingest", str(config.data_root / "study.yaml"), "--workers", "1"])

    assert result.exit_code == 0, result.output
    assert records_of(config, WAITING)[0].status is FileStatus.PENDING


@pytest.mark.parametrize("point", ["claimed", "part-written", "committed"])
def test_a_run_killed_while_curating_a_pending_file_is_finished_by_the_next_run(tmp_path: Path, point: str) -> None:
    config = study_with_unenrolled_file(tmp_path / "study", minutes=3 * 1440)  # three parts, one per day
    ingest_study(config)
    enroll(config, "S0099")
    process, _ = start_paused(config.data_root / "study.yaml", f"{point}@{WAITING}", tmp_path)
    [held] = records_of(config, WAITING)
    assert (held.status, held.version) == (FileStatus.PROCESSING, 1)
    kill_group(process)

    summary = ingest_study(config)

    assert {o.path: o.status for o in summary.outcomes}[WAITING] == "curated"
    [record] = records_of(config, WAITING)
    assert (record.status, record.version) == (FileStatus.CURATED, 1)
    rows = read_subject(config.lake_root, SOURCE, "S0099")
    assert len(rows) == 3 * 1440 and not rows["timestamp"].duplicated().any()
    with Catalog(config.catalog) as catalog:
        listed = sorted(part for r in catalog.latest() if r.source == SOURCE for part in r.curated_paths)
    assert sorted(table_parts(config.lake_root, SOURCE)) == listed  # the lake lists what the catalog does


def report_with(*failures: Failure, read_error: str | None = None) -> ValidationReport:
    return ValidationReport(report_id="r", file="raw/x.csv", source="labs", kind="labs", sha256="0" * 64,
                            checked_at="2024-03-04T00:00:00+00:00", outcome=Outcome.REJECTED,
                            failures=list(failures), read_error=read_error)


def failure(check: str, severity: str = "reject", examples: tuple = ()) -> Failure:
    return Failure(check=check, severity=severity, expectation="expect_...", column="subject_id",
                   unit_of_location="rows", examples=list(examples))


@pytest.mark.parametrize(("failures", "read_error", "waits"), [
    ([failure("known_subject")], None, True),
    ([failure("known_subject"), failure("missingness", "warn")], None, True),  # warnings do not matter
    ([failure("known_subject"), failure("plausible_range")], None, False),  # bad in itself wins
    ([failure("plausible_range")], None, False),
    ([], "raw/x.csv: no data rows", False),
    ([failure("known_subject", "warn")], None, False),  # nothing rejects it: it is curated
])
def test_a_file_waits_only_when_enrollment_is_all_that_rejects_it(failures, read_error, waits) -> None:
    reason = waiting_reason(report_with(*failures, read_error=read_error), ["S0099"])
    assert (reason is not None) == waits


def test_the_waiting_reason_names_every_unknown_subject() -> None:
    one = waiting_reason(report_with(failure("known_subject")), ["S0099"])
    assert one.startswith("waiting: subject S0099 is not in the enrollment file yet;")
    many = waiting_reason(report_with(failure("known_subject")), ["S0101", "S0100"])
    assert many.startswith("waiting: subjects S0100, S0101 are not in the enrollment file yet;")
    from_examples = waiting_reason(report_with(failure("known_subject", examples=("S0102", "S0102"))), [])
    assert from_examples.startswith("waiting: subject S0102 is not")
