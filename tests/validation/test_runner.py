"""Real suites through Great Expectations (an ephemeral context) on small frames built here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validation.analytes import ANALYTES
from validation.batches import file_batch, rows_batch, seconds_batch
from validation.report import Failure, Outcome, ValidationReport
from validation.schemas import SCHEMAS, SourceKind
from validation.suites import FILE_BATCH, ROWS_BATCH, SECONDS_BATCH, SuiteParameters, suite_checks

START = pd.Timestamp("2024-03-04T08:00:00Z")
SUBJECT = "S0001"
KNOWN = frozenset({SUBJECT, "S0002"})
CHECK_NAMES = ("required_columns", "column_types", "timestamps_ordered", "sampling_rate", "plausible_range",
               "device_range", "missingness", "known_subject", "known_unit", "no_direct_identifiers", "unique_keys",
               "corrupt_blocks")
REJECT_ALL = dict.fromkeys(CHECK_NAMES, "reject")
LAB_ANALYTES = ("creatinine", "glucose", "sodium")


@pytest.fixture(scope="module")
def runner():
    import great_expectations as gx

    from validation.runner import SuiteRunner

    return SuiteRunner(gx.get_context(mode="ephemeral"))


def parameters(kind: SourceKind, **overrides) -> SuiteParameters:
    labs = kind is SourceKind.LABS
    values = {
        "known_subjects": None if kind is SourceKind.SUBJECTS else KNOWN,
        "sampling_rate_hz": 50.0 if kind is SourceKind.ACCELEROMETRY else None,
        "lab_ranges": {a: ANALYTES[a].plausible_range for a in LAB_ANALYTES} if labs else {},
        "lab_units": {a: ANALYTES[a].unit for a in LAB_ANALYTES} if labs else {},
    }
    return SuiteParameters(**{**values, **overrides})


def validate(runner, kind: SourceKind, frame: pd.DataFrame, *, severities=REJECT_ALL, fields=None,
             file="raw/file.csv", params=None, subject=SUBJECT) -> ValidationReport:
    """Register the kind's suite and validate ``frame`` as ingestion does: file batch plus rows or seconds."""
    checks = suite_checks(kind, params or parameters(kind))
    suite = f"test.{kind.value}"
    runner.register(suite, checks)
    fields = list(frame.columns) if fields is None else fields
    if SCHEMAS[kind].high_rate:
        batches = {FILE_BATCH: file_batch(fields, subject), SECONDS_BATCH: seconds_batch(kind, frame)}
    else:
        batches = {FILE_BATCH: file_batch(fields, None), ROWS_BATCH: rows_batch(frame)}
    return runner.validate(suite, checks, batches, severities, report_id=f"r-{kind.value}", file=file,
                           source=kind.value, kind=kind.value, sha256="0" * 64, rows=len(frame))


def only(report: ValidationReport, check: str, column: str | None = None) -> Failure:
    found = [f for f in report.failures if f.check == check and (column is None or f.column == column)]
    assert len(found) == 1, f"expected one {check} failure on {column}: {report.failures}"
    return found[0]


def vitals_frame(rows: int = 8) -> pd.DataFrame:
    return pd.DataFrame({
        "subject_id": SUBJECT,
        "timestamp": START + pd.to_timedelta(np.arange(rows) * 15, unit="min"),
        "heart_rate_bpm": np.linspace(68, 80, rows),
        "spo2_percent": 97.0,
        "respiratory_rate_per_min": 14.0,
        "temperature_deg_c": np.linspace(36.6, 37.2, rows),
        "systolic_bp_mmhg": 121.0,
        "consciousness_avpu": "A",
        "supplemental_oxygen": False,
    })


def minute_frame(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({
        "subject_id": SUBJECT,
        "timestamp": START + pd.to_timedelta(np.arange(rows), unit="min"),
        "steps_count": np.arange(rows, dtype=float),
        "heart_rate_bpm": 70.0,
        "sleep_stage": "wake",
        "wear": True,
    })


def accelerometry_frame(seconds: int = 6, fs_hz: float = 50, gravity: float = 1.0) -> pd.DataFrame:
    n = int(seconds * fs_hz)
    return pd.DataFrame({
        "timestamp": START + pd.to_timedelta(np.arange(n) / fs_hz, unit="s"),
        "accel_x_g": np.zeros(n, dtype=np.float32),
        "accel_y_g": np.zeros(n, dtype=np.float32),
        "accel_z_g": np.full(n, gravity, dtype=np.float32),
    })


def test_a_clean_frame_passes_and_keeps_its_results(runner):
    before = len(runner.results)

    report = validate(runner, SourceKind.VITALS, vitals_frame(), file="raw/vitals/clean.csv")

    assert report.outcome is Outcome.PASSED
    assert report.failures == []
    assert report.suites == ["test.vitals.file", "test.vitals.rows"]
    kept = runner.results[before:]
    assert [(suite, file) for suite, file, _ in kept] == [("test.vitals.file", "raw/vitals/clean.csv"),
                                                          ("test.vitals.rows", "raw/vitals/clean.csv")]
    assert all(result.success for _, _, result in kept)
    assert all(len(result.results) > 0 for _, _, result in kept)


def test_a_clean_accelerometry_frame_passes(runner):
    report = validate(runner, SourceKind.ACCELEROMETRY, accelerometry_frame())

    assert report.outcome is Outcome.PASSED
    assert report.seconds == 6
    assert report.rows == 300


def test_vitals_with_an_implausible_heart_rate_and_degf_temperatures(runner):
    frame = vitals_frame()
    frame.loc[2, "heart_rate_bpm"] = 400.0  # data row 3
    frame["temperature_deg_c"] = [98.6, 99.1, 98.2, 98.9, 100.4, 98.6, 98.7, 98.8]

    report = validate(runner, SourceKind.VITALS, frame)

    assert report.outcome is Outcome.REJECTED
    heart_rate = only(report, "plausible_range", "heart_rate_bpm")
    assert heart_rate.severity == "reject"
    assert heart_rate.unit_of_location == "rows"
    assert heart_rate.locations == [3]
    assert heart_rate.unexpected_count == 1
    assert heart_rate.element_count == 8
    assert heart_rate.examples == [400.0]
    assert heart_rate.expectation == "expect_column_values_to_be_between(heart_rate_bpm, 20, 250)"
    temperature = only(report, "plausible_range", "temperature_deg_c")
    assert temperature.unexpected_count == 8
    assert temperature.locations == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "values look like degF" in temperature.likely_cause
    assert "failed for 8 rows (1 to 8); values look like degF" in temperature.sentence()
    assert {f.check for f in report.failures} == {"plausible_range"}


def test_severity_warn_curates_with_warnings(runner):
    frame = vitals_frame()
    frame.loc[2, "heart_rate_bpm"] = 400.0

    report = validate(runner, SourceKind.VITALS, frame, severities={**REJECT_ALL, "plausible_range": "warn"})

    assert report.outcome is Outcome.WARNED
    assert not report.rejected
    failure = only(report, "plausible_range", "heart_rate_bpm")
    assert failure.severity == "warn"
    assert failure.locations == [3]


def test_a_check_missing_from_the_severities_rejects(runner):
    frame = vitals_frame()
    frame.loc[2, "heart_rate_bpm"] = 400.0

    report = validate(runner, SourceKind.VITALS, frame, severities={})

    assert report.outcome is Outcome.REJECTED
    assert only(report, "plausible_range", "heart_rate_bpm").severity == "reject"


def test_a_direct_identifier_in_the_header_is_named_by_field(runner):
    frame = vitals_frame()
    fields = ["Patient Name", "subject_id", "time", "HR", "E-mail"]

    report = validate(runner, SourceKind.VITALS, frame, fields=fields)

    failure = only(report, "no_direct_identifiers")
    assert report.outcome is Outcome.REJECTED
    assert failure.unit_of_location == "fields"
    assert failure.locations == ["patient_name", "e_mail"]
    assert failure.unexpected_count == 2
    assert "direct identifiers" in failure.likely_cause


def test_a_duplicated_block_of_minutes(runner):
    once = minute_frame(10)
    frame = pd.concat([once, once.iloc[3:8]], ignore_index=True)  # rows 4-8 sent again as rows 11-15

    report = validate(runner, SourceKind.MINUTE_WEARABLE, frame)

    failure = only(report, "timestamps_ordered")
    assert report.outcome is Outcome.REJECTED
    assert failure.column == "seconds_since_latest_earlier"
    assert failure.locations == [11, 12, 13, 14, 15]
    assert failure.unexpected_count == 5
    assert failure.element_count == 15
    assert failure.likely_cause.startswith("5 rows repeat an earlier timestamp")
    assert "failed for 5 rows (11 to 15)" in failure.sentence()


def test_an_unknown_subject_in_the_rows(runner):
    frame = minute_frame(4)
    frame.loc[[1, 2], "subject_id"] = "S9999"

    report = validate(runner, SourceKind.MINUTE_WEARABLE, frame)

    failure = only(report, "known_subject")
    assert failure.locations == [2, 3]
    assert failure.unexpected_count == 2
    assert "S9999" in failure.likely_cause


def test_labs_creatinine_in_umol_and_glucose_in_an_unknown_unit(runner):
    frame = pd.DataFrame({
        "subject_id": SUBJECT,
        "timestamp": [START, START, START, START + pd.Timedelta(hours=1)],
        "loinc_code": ["2160-0", "2345-7", "2951-2", "2345-7"],
        "analyte": ["creatinine", "glucose", "sodium", "glucose"],
        "value": [88.0, 5.4, 140.0, 97.0],
        "unit": ["mg/dL", "mg/mmol", "mmol/L", "mg/dL"],
    })

    report = validate(runner, SourceKind.LABS, frame, severities={**REJECT_ALL, "known_unit": "warn"})

    assert report.outcome is Outcome.REJECTED  # the implausible creatinine still rejects
    creatinine = only(report, "plausible_range")
    assert creatinine.severity == "reject"
    assert creatinine.locations == [1]
    assert creatinine.unexpected_count == 1
    assert creatinine.element_count == 1  # only the creatinine rows in mg/dL are in range of the check
    assert creatinine.likely_cause == "values look like umol/L"
    assert 'where analyte=="creatinine" and unit=="mg/dL"' in creatinine.expectation
    unit = only(report, "known_unit")
    assert unit.severity == "warn"
    assert unit.locations == [2]
    assert unit.unexpected_count == 1
    assert "mg/mmol for glucose" in unit.likely_cause
    assert report.failures[0] is creatinine  # rejecting failures come first


def test_labs_in_canonical_units_pass(runner):
    frame = pd.DataFrame({
        "subject_id": SUBJECT,
        "timestamp": START,
        "loinc_code": ["2160-0", "2345-7", "2951-2"],
        "analyte": ["creatinine", "glucose", "sodium"],
        "value": [1.1, 97.0, 140.0],
        "unit": ["mg/dL", "mg/dL", "mmol/L"],
    })

    assert validate(runner, SourceKind.LABS, frame).outcome is Outcome.PASSED


def test_accelerometry_at_25_hz_in_a_50_hz_source(runner):
    report = validate(runner, SourceKind.ACCELEROMETRY, accelerometry_frame(seconds=6, fs_hz=25))

    failure = only(report, "sampling_rate")
    assert report.outcome is Outcome.REJECTED
    assert failure.unit_of_location == "seconds"
    # The first and last second are partial by design and never counted.
    assert failure.locations == ["2024-03-04T08:00:01Z", "2024-03-04T08:00:02Z",
                                 "2024-03-04T08:00:03Z", "2024-03-04T08:00:04Z"]
    assert failure.unexpected_count == 4
    assert "about 25 Hz" in failure.likely_cause
    assert "(2024-03-04T08:00:01Z to 2024-03-04T08:00:04Z)" in failure.sentence()


def test_accelerometry_sampling_rate_as_a_warning(runner):
    report = validate(runner, SourceKind.ACCELEROMETRY, accelerometry_frame(seconds=6, fs_hz=25),
                      severities={**REJECT_ALL, "sampling_rate": "warn"})

    assert report.outcome is Outcome.WARNED
    assert only(report, "sampling_rate").severity == "warn"


def test_accelerometry_in_m_s2_not_converted(runner):
    report = validate(runner, SourceKind.ACCELEROMETRY, accelerometry_frame(gravity=9.80665))

    gravity = only(report, "plausible_range", "gravity_estimate_g")
    assert report.outcome is Outcome.REJECTED
    assert gravity.observed_value == pytest.approx(9.80665, rel=1e-6)
    assert "values look like m/s^2" in gravity.likely_cause
    # 9.8 on z is also beyond an 8 g device, in every second.
    beyond = only(report, "device_range", "accel_g_max")
    assert beyond.unexpected_count == 6
    assert beyond.locations[0] == "2024-03-04T08:00:00Z"


def test_accelerometry_out_of_range_sample_names_its_second(runner):
    frame = accelerometry_frame()
    frame.loc[3 * 50 + 11, "accel_y_g"] = -9.0

    report = validate(runner, SourceKind.ACCELEROMETRY, frame)

    failure = only(report, "device_range")
    assert failure.column == "accel_g_min"
    assert failure.locations == ["2024-03-04T08:00:03Z"]
    assert failure.unexpected_count == 1


def test_accelerometry_from_two_recordings_joined(runner):
    frame = accelerometry_frame(seconds=4)
    frame = pd.concat([frame, frame.iloc[:100]], ignore_index=True)

    report = validate(runner, SourceKind.ACCELEROMETRY, frame)

    ordered = [f for f in report.failures if f.check == "timestamps_ordered"]
    assert {f.column for f in ordered} == {"non_increasing", "second"}
    repeated = next(f for f in ordered if f.column == "second")
    assert repeated.unexpected_count == 4  # seconds 0 and 1, each twice
    assert set(repeated.locations) == {"2024-03-04T08:00:00Z", "2024-03-04T08:00:01Z"}


def test_an_accelerometry_file_of_an_unknown_subject(runner):
    report = validate(runner, SourceKind.ACCELEROMETRY, accelerometry_frame(), subject="S9999")

    failure = only(report, "known_subject")
    assert report.outcome is Outcome.REJECTED
    assert "S9999" in failure.likely_cause


def test_a_rows_frame_missing_a_required_column(runner):
    frame = vitals_frame().drop(columns=["spo2_percent"])

    report = validate(runner, SourceKind.VITALS, frame)

    failure = only(report, "required_columns")
    assert report.outcome is Outcome.REJECTED
    assert failure.unit_of_location == "columns"
    assert failure.locations == ["spo2_percent"]
    assert failure.unexpected_count == 1
    assert "spo2_percent" in failure.sentence()
    assert "column mapping" in failure.likely_cause
    # Checks on the absent column do not add errors of their own.
    assert all(f.column != "spo2_percent" for f in report.failures)


def test_an_accelerometry_frame_missing_an_axis_is_rejected(runner):
    frame = accelerometry_frame().drop(columns=["accel_z_g"])

    report = validate(runner, SourceKind.ACCELEROMETRY, frame, fields=["time", "x", "y"])

    assert report.outcome is Outcome.REJECTED
    assert any("accel_z_g" in f.sentence() for f in report.failures)


@pytest.mark.parametrize("kind", list(SourceKind))
def test_every_kind_suite_registers(runner, kind):
    checks = suite_checks(kind, parameters(kind, sampling_rate_hz=50.0 if SCHEMAS[kind].high_rate else None))

    runner.register(f"registered.{kind.value}", checks)

    for batch in {c.batch for c in checks}:
        stored = runner.context.suites.get(f"registered.{kind.value}.{batch}")
        assert len(stored.expectations) == sum(c.batch == batch for c in checks)


def test_publish_writes_data_docs_that_mention_the_suite(runner, tmp_path):
    import great_expectations as gx

    from validation.runner import publish

    before = len(runner.results)
    validate(runner, SourceKind.MINUTE_WEARABLE, minute_frame(), file="raw/minute/S0001_minute.csv")
    results = runner.results[before:]
    context = gx.get_context(mode="file", project_root_dir=tmp_path)

    index = publish(context, {"test.minute_wearable": suite_checks(SourceKind.MINUTE_WEARABLE,
                                                                   parameters(SourceKind.MINUTE_WEARABLE))}, results)

    assert index is not None and index.is_file()
    assert index.is_relative_to(tmp_path)
    assert index.name == "index.html"
    text = index.read_text()
    assert "test.minute_wearable.rows" in text
    assert "test.minute_wearable.file" in text
    pages = [p for p in index.parent.rglob("*.html") if p != index]
    assert any("S0001_minute.csv" in p.name for p in pages)


def corrupt_accelerometry(blocks: list[tuple[int, int]]) -> tuple[pd.DataFrame, dict]:
    """Six seconds at 50 Hz whose samples in ``blocks`` are missing, as a device reader leaves them, and its batches."""
    frame = accelerometry_frame()
    for start, end in blocks:
        frame.loc[start : end - 1, ["accel_x_g", "accel_y_g", "accel_z_g"]] = np.nan
    batches = {FILE_BATCH: file_batch(list(frame.columns), SUBJECT),
               SECONDS_BATCH: seconds_batch(SourceKind.ACCELEROMETRY, frame, blocks)}
    return frame, batches


@pytest.mark.parametrize(("severity", "outcome"), [("reject", Outcome.REJECTED), ("warn", Outcome.WARNED)])
def test_corrupt_device_blocks_name_the_seconds_and_the_number_of_blocks(runner, severity, outcome):
    kind = SourceKind.ACCELEROMETRY
    checks = suite_checks(kind, parameters(kind, max_missing_fraction=0.5))
    runner.register("test.corrupt", checks)
    frame, batches = corrupt_accelerometry([(40, 80), (200, 240)])  # 0.8-1.6 s and 4.0-4.8 s

    report = runner.validate("test.corrupt", checks, batches, {**REJECT_ALL, "corrupt_blocks": severity},
                             report_id="r-corrupt", file="raw/device/S0001.cwa", source="axivity", kind=kind.value,
                             sha256="0" * 64, rows=len(frame))

    assert report.outcome is outcome
    failure = only(report, "corrupt_blocks")
    assert failure.severity == severity and failure.column == "corrupt_samples"
    assert failure.unit_of_location == "seconds" and failure.unexpected_count == 3
    assert failure.locations == ["2024-03-04T08:00:00Z", "2024-03-04T08:00:01Z", "2024-03-04T08:00:04Z"]
    assert failure.likely_cause.startswith("2 device data blocks failed the checksum; their 80 samples are missing")
    assert "corrupt_blocks:" in report.paragraph() and "08:00:04Z" in report.paragraph()
