"""Ingestion end to end: the demo study's broken files, idempotency, new versions, races, crashes."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import load_study
from pipelines.demo.generate import generate_demo
from pipelines.ingest.catalog import Catalog, FileStatus
from pipelines.ingest.lake import lake_versions, read_subject, table_parts
from pipelines.ingest.run import ingest_study
from tests.pipelines.conftest import make_study, write_minute_file
from validation.report import ValidationReport

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_STUDY = REPOSITORY / "studies" / "demo" / "study.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo study (every source and every broken file), ingested once."""
    root = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(root, seed=11, n_subjects=6, days=3)
    config = load_study(DEMO_STUDY, root)
    summary = ingest_study(config, workers=1)
    return manifest, config, summary


def records_by_path(config) -> dict:
    with Catalog(config.catalog) as catalog:
        return {record.path: record for record in catalog.latest()}


def waits_for_enrollment(intended: str) -> bool:
    """The demo's file of an unenrolled subject is pending (it waits for enrollment), not quarantined."""
    return intended == "known_subject"


def test_every_broken_demo_file_is_quarantined_by_its_intended_check(demo) -> None:
    manifest, config, _ = demo
    records = records_by_path(config)
    assert manifest.broken_files, "the demo writes broken files"
    for path, intended in manifest.broken_files.items():
        record = records[path]
        if waits_for_enrollment(intended):
            assert record.status is FileStatus.PENDING, (path, record.message)
            assert record.message.startswith("waiting: subject S9999 is not in the enrollment file yet")
            assert not (config.quarantine_root / record.report_id).exists()
            assert record.curated_paths == ()
            continue
        assert record.status is FileStatus.QUARANTINED, (path, record.message)
        report = ValidationReport.from_json((config.reports_root / f"{record.report_id}.json").read_text())
        assert report.rejected and report.file == path
        if intended == "readable":
            assert report.read_error and path.split("/")[-1] in report.read_error
        else:
            rejecting = {f.check for f in report.failures if f.severity == "reject"}
            assert intended in rejecting, (path, rejecting)
        quarantined = config.quarantine_root / record.report_id
        assert (quarantined / Path(path).name).read_bytes() == (config.data_root / path).read_bytes()
        assert json.loads((quarantined / "report.json").read_text())["file"] == path
        assert path in (quarantined / "README.txt").read_text()
        assert record.curated_paths == ()


def test_reports_name_the_file_rows_check_and_likely_cause(demo) -> None:
    manifest, config, _ = demo
    records = records_by_path(config)
    reason_of = {path: records[path].message for path in manifest.broken_files}
    wrong_units = next(p for p in reason_of if "wrong_units" in p)
    assert "expect_column_values_to_be_between(value, 0.1, 20)" in reason_of[wrong_units]
    assert "values look like umol/L" in reason_of[wrong_units]
    unknown_unit = next(p for p in reason_of if "unknown_unit" in p)
    assert "mg/mmol for glucose" in reason_of[unknown_unit]
    names = next(p for p in reason_of if "vitals_export" in p)
    assert "patient_name" in reason_of[names]
    resend = next(p for p in reason_of if "resend" in p)
    assert "repeat an earlier timestamp" in reason_of[resend] and "rows (" in reason_of[resend]
    unknown_subject = next(p for p in reason_of if "S9999" in p)
    assert "S9999 is not in the enrollment file" in reason_of[unknown_subject]
    truncated = next(p for p in reason_of if p.endswith(".cwa"))
    assert "truncated" in reason_of[truncated]
    resampled = next(p for p in reason_of if "resampled" in p)
    assert "about 25 Hz" in reason_of[resampled]


def test_nothing_of_a_quarantined_file_reaches_the_lake(demo) -> None:
    manifest, config, _ = demo
    records = records_by_path(config)
    for path in manifest.broken_files:
        digest = records[path].sha256[:12]
        assert not [p for p in config.lake_root.rglob("*.parquet") if digest in p.name], path


def lake_table(config, source: str) -> pa.Table:
    """Every row of a source's table as its latest snapshot lists them, with the partition columns."""
    parts = table_parts(config.lake_root, source)
    return pa.concat_tables([
        pq.read_table(config.lake_root / part).append_column(
            "subject_id", pa.array([part.split("subject_id=")[1].split("/")[0]] * pq.read_metadata(
                config.lake_root / part).num_rows)) for part in parts])


def test_every_valid_demo_file_is_curated_with_units_and_utc_microseconds(demo) -> None:
    manifest, config, summary = demo
    records = records_by_path(config)
    valid = [p for p in manifest.files if p.startswith("raw/") and p not in manifest.broken_files]
    for path in valid:
        assert records[path].status is FileStatus.CURATED, (path, records[path].message)
        assert records[path].curated_paths
    assert not [o for o in summary.outcomes if o.status == "failed"]

    table = lake_table(config, "minute_wearable")
    assert set(table.column("subject_id").to_pylist()) == set(manifest.subject_ids)
    timestamp = table.schema.field("timestamp").type
    assert (timestamp.unit, timestamp.tz) == ("us", "UTC")
    part = config.lake_root / table_parts(config.lake_root, "wrist_accel")[0]
    metadata = pq.read_schema(part).metadata
    assert json.loads(metadata[b"units"])["accel_x_g"] == "g"
    assert metadata[b"raw_path"].decode().startswith("raw/accel/")


def test_wrist_parquet_in_m_s2_is_curated_in_g(demo) -> None:
    _, config, _ = demo
    frame = lake_table(config, "wrist_accel").select(["accel_x_g", "accel_y_g", "accel_z_g"]).to_pandas()
    magnitude = (frame**2).sum(axis=1) ** 0.5
    assert 0.8 < magnitude.median() < 1.2  # gravity, in g, after conversion from m/s^2


def test_second_run_processes_nothing(demo) -> None:
    manifest, config, first = demo
    again = ingest_study(config, workers=1)
    assert again.processed() == []
    # The file of the unenrolled subject is checked again (enrollment may have grown) and still waits.
    waiting = {path for path, intended in manifest.broken_files.items() if waits_for_enrollment(intended)}
    assert {o.path for o in again.pending()} == waiting
    assert {o.status for o in again.outcomes if o.path not in waiting} == {"skipped"}
    assert len(again.outcomes) == len(first.outcomes)


def test_data_docs_are_built(demo) -> None:
    _, _, summary = demo
    assert summary.data_docs is not None and summary.data_docs.is_file()
    assert "<html" in summary.data_docs.read_text().lower()


def test_changed_file_is_processed_again_as_a_new_version(tiny_study: Path) -> None:
    config = load_study(tiny_study)
    first = ingest_study(config)
    assert sorted(o.status for o in first.outcomes) == ["curated"] * 6
    changed = config.data_root / "raw" / "minute" / "S0002_minute.csv"
    records = records_by_path(config)
    old_parts = records["raw/minute/S0002_minute.csv"].curated_paths

    write_minute_file(changed, 2, minutes=240, heart_rate_offset=5)
    second = ingest_study(config)

    processed = second.processed()
    assert [(o.path, o.status) for o in processed] == [("raw/minute/S0002_minute.csv", "curated")]
    with Catalog(config.catalog) as catalog:
        versions = sorted((r.version, r.status) for r in catalog.files() if r.path.endswith("S0002_minute.csv"))
    assert versions == [(1, FileStatus.SUPERSEDED), (2, FileStatus.CURATED)]
    current = set(table_parts(config.lake_root, "minute_wearable"))
    assert old_parts and not current & set(old_parts)
    assert len(read_subject(config.lake_root, "minute_wearable", "S0002")) == 240  # only the new version
    # The old version is one table version back, still readable (time travel).
    version = lake_versions(config.lake_root, ["minute_wearable"])["minute_wearable"]
    assert records_by_path(config)["raw/minute/S0002_minute.csv"].lake_version == version
    previous = read_subject(config.lake_root, "minute_wearable", "S0002", version - 1)
    assert len(previous) != 240 and not previous["timestamp"].duplicated().any()


def test_a_file_fixed_after_quarantine_is_curated(tiny_study: Path) -> None:
    config = load_study(tiny_study)
    broken = config.data_root / "raw" / "minute" / "S0001_minute.csv"
    frame = pd.read_csv(broken)
    frame.loc[5, "heart_rate"] = 400
    frame.to_csv(broken, index=False)
    first = {o.path: o for o in ingest_study(config).outcomes}
    assert first["raw/minute/S0001_minute.csv"].status == "quarantined"
    assert "rows (6)" in first["raw/minute/S0001_minute.csv"].reason
    assert first["raw/minute/S0002_minute.csv"].status == "curated"  # the rest carries on

    write_minute_file(broken, 1)
    second = {o.path: o for o in ingest_study(config).outcomes}
    assert second["raw/minute/S0001_minute.csv"].status == "curated"


def test_warn_severity_curates_the_file_and_keeps_the_warning(tmp_path: Path) -> None:
    study = make_study(tmp_path / "warn")
    text = study.read_text() + "checks: {plausible_range: warn}\n"
    study.write_text(text)
    config = load_study(study)
    path = config.data_root / "raw" / "minute" / "S0003_minute.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "heart_rate"] = 300
    frame.to_csv(path, index=False)

    outcomes = {o.path: o for o in ingest_study(config).outcomes}

    outcome = outcomes["raw/minute/S0003_minute.csv"]
    assert outcome.status == "curated"
    report = ValidationReport.from_json((config.reports_root / f"{outcome.report_id}.json").read_text())
    assert report.outcome.value == "passed_with_warnings"
    assert [f.check for f in report.failures] == ["plausible_range"]
    assert "curated with warnings" in report.paragraph()


def test_symbolic_link_out_of_the_data_root_is_not_ingested(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study")
    outside = tmp_path / "outside"
    write_minute_file(outside / "S0001_minute.csv", 9)
    (tmp_path / "study" / "raw" / "minute" / "S0001_leak_minute.csv").symlink_to(outside / "S0001_minute.csv")

    outcomes = ingest_study(load_study(study)).outcomes

    assert "raw/minute/S0001_leak_minute.csv" not in {o.path for o in outcomes}
    assert len(outcomes) == 6


def _ingest_in_process(study: str, queue) -> None:
    summary = ingest_study(load_study(study))
    queue.put([(o.path, o.status) for o in summary.outcomes])


def test_two_runs_at_once_never_process_a_file_twice(tmp_path: Path) -> None:
    study = make_study(tmp_path / "race", n_subjects=16)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    runs = [context.Process(target=_ingest_in_process, args=(str(study), queue)) for _ in range(2)]
    for run in runs:
        run.start()
    results = [queue.get(timeout=240) for _ in runs]
    for run in runs:
        run.join(timeout=60)

    processed = [path for result in results for path, status in result if status == "curated"]
    assert sorted(processed) == sorted(set(processed))  # nobody processed a file twice
    assert len(processed) == 18  # 16 minute files, the enrollment file and the endpoints file
    with Catalog(load_study(study).catalog) as catalog:
        assert len(catalog.files()) == 18


@pytest.mark.postgres
def test_ingest_with_the_catalog_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    study = make_study(tmp_path / "pg", catalog_url=postgres_url)
    config = load_study(study)
    assert config.catalog.startswith("postgresql")

    first = ingest_study(config)
    second = ingest_study(config)

    assert sorted({o.status for o in first.outcomes}) == ["curated"]
    assert second.processed() == []
    with Catalog(postgres_url) as catalog:
        assert {r.status for r in catalog.latest()} == {FileStatus.CURATED}


def test_quality_page_lists_every_file_with_working_links(demo) -> None:
    manifest, config, summary = demo
    page = summary.quality_page
    text = page.read_text()
    for path, intended in manifest.broken_files.items():
        row = next(line for line in text.split("<tr>") if path in line)
        if waits_for_enrollment(intended):
            assert 'class="pending"' in row and "waiting: subject S9999" in row
        else:
            assert 'class="quarantined"' in row
    links = re.findall(r'href="([^"]+)"', text)
    assert links and all((page.parent / link).is_file() for link in links)
    assert "http" not in text  # nothing fetched from outside
