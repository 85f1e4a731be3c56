"""The expectation suites, as data: which checks each source kind gets, with which arguments."""

from __future__ import annotations

import re

import pytest

from validation.batches import normalise_field
from validation.schemas import DIRECT_IDENTIFIER_PATTERN, SCHEMAS, SourceKind
from validation.suites import (
    FILE_BATCH,
    ROWS_BATCH,
    SECONDS_BATCH,
    Check,
    SuiteParameters,
    suite_checks,
)

SUBJECTS = frozenset({"S0001", "S0002"})
HIGH_RATE = [kind for kind in SourceKind if SCHEMAS[kind].high_rate]
ROW_KINDS = [kind for kind in SourceKind if not SCHEMAS[kind].high_rate]
LAB_RANGES = {"creatinine": (0.1, 20.0), "glucose": (10.0, 2000.0), "sodium": (90.0, 200.0)}
LAB_UNITS = {"creatinine": "mg/dL", "glucose": "mg/dL", "sodium": "mmol/L"}


def checks_named(checks: list[Check], name: str) -> list[Check]:
    return [c for c in checks if c.check == name]


def one(checks: list[Check], name: str, column: str | None = None) -> Check:
    found = [c for c in checks_named(checks, name) if column is None or c.column == column]
    assert len(found) == 1, f"expected one {name} check on {column}, found {found}"
    return found[0]


def parameters_for(kind: SourceKind, **overrides) -> SuiteParameters:
    """What ingestion passes: no subject list for the enrollment file itself, a rate for signals."""
    values = {
        "known_subjects": None if kind is SourceKind.SUBJECTS else SUBJECTS,
        "sampling_rate_hz": 250.0 if kind in (SourceKind.ECG, SourceKind.PPG) else 50.0,
        "lab_ranges": LAB_RANGES if kind is SourceKind.LABS else {},
        "lab_units": LAB_UNITS if kind is SourceKind.LABS else {},
    }
    return SuiteParameters(**{**values, **overrides})


@pytest.mark.parametrize("kind", list(SourceKind))
def test_every_kind_checks_for_direct_identifiers_in_the_file_fields(kind):
    checks = suite_checks(kind, parameters_for(kind))

    check = one(checks, "no_direct_identifiers")
    assert check.batch == FILE_BATCH
    assert check.expectation == "ExpectColumnValuesToNotMatchRegex"
    assert check.kwargs == {"column": "field", "regex": DIRECT_IDENTIFIER_PATTERN}


@pytest.mark.parametrize("kind", list(SourceKind))
def test_every_check_runs_on_a_batch_its_kind_has(kind):
    checks = suite_checks(kind, parameters_for(kind))

    data_batch = SECONDS_BATCH if SCHEMAS[kind].high_rate else ROWS_BATCH
    assert {c.batch for c in checks} == {FILE_BATCH, data_batch}
    assert all(c.expectation.startswith("Expect") for c in checks)


@pytest.mark.parametrize("kind", HIGH_RATE)
def test_high_rate_kinds_check_the_sampling_rate_within_the_tolerance_band(kind):
    params = parameters_for(kind, sampling_rate_hz=50.0, sampling_rate_tolerance=0.1)

    check = one(suite_checks(kind, params), "sampling_rate")

    assert check.batch == SECONDS_BATCH
    assert check.expectation == "ExpectColumnValuesToBeBetween"
    assert check.kwargs["column"] == "samples_full_second"
    assert check.kwargs["min_value"] == pytest.approx(45.0)
    assert check.kwargs["max_value"] == pytest.approx(55.0)


@pytest.mark.parametrize("kind", HIGH_RATE)
def test_high_rate_kinds_without_a_sampling_rate_skip_the_rate_check(kind):
    checks = suite_checks(kind, parameters_for(kind, sampling_rate_hz=None))

    assert checks_named(checks, "sampling_rate") == []


@pytest.mark.parametrize("kind", HIGH_RATE)
def test_high_rate_kinds_check_ordering_on_the_seconds(kind):
    ordered = checks_named(suite_checks(kind, parameters_for(kind)), "timestamps_ordered")

    assert {(c.expectation, c.column) for c in ordered} == {
        ("ExpectColumnValuesToBeBetween", "non_increasing"),
        ("ExpectColumnValuesToBeUnique", "second"),
    }
    between = next(c for c in ordered if c.column == "non_increasing")
    assert (between.kwargs["min_value"], between.kwargs["max_value"]) == (0, 0)


@pytest.mark.parametrize(
    ("kind", "column"),
    [(SourceKind.ACCELEROMETRY, "accel_g_nan"), (SourceKind.ECG, "ecg_mv_nan"), (SourceKind.PPG, "ppg_au_nan")],
)
def test_high_rate_missingness_allows_the_configured_fraction_of_seconds(kind, column):
    check = one(suite_checks(kind, parameters_for(kind, max_missing_fraction=0.3)), "missingness")

    assert check.batch == SECONDS_BATCH
    assert check.column == column
    assert (check.kwargs["min_value"], check.kwargs["max_value"]) == (0, 0)
    assert check.kwargs["mostly"] == pytest.approx(0.7)


def test_accelerometry_checks_the_device_range_on_both_extremes():
    checks = suite_checks(SourceKind.ACCELEROMETRY, parameters_for(SourceKind.ACCELEROMETRY, device_range_g=16.0))

    low = one(checks, "device_range", "accel_g_min")
    high = one(checks, "device_range", "accel_g_max")
    assert low.kwargs["min_value"] == -16.0 and "max_value" not in low.kwargs
    assert high.kwargs["max_value"] == 16.0 and "min_value" not in high.kwargs
    gravity = one(checks, "plausible_range", "gravity_estimate_g")
    assert gravity.expectation == "ExpectColumnMedianToBeBetween"
    assert gravity.kwargs["min_value"] <= 1.0 <= gravity.kwargs["max_value"]
    assert gravity.kwargs["max_value"] < 9.8  # a file in m/s^2 must fail


@pytest.mark.parametrize("kind", [SourceKind.ECG, SourceKind.PPG])
def test_other_signals_have_no_device_range(kind):
    assert checks_named(suite_checks(kind, parameters_for(kind)), "device_range") == []


def test_ecg_checks_its_plausible_voltage_on_the_per_second_extremes():
    checks = suite_checks(SourceKind.ECG, parameters_for(SourceKind.ECG))

    assert one(checks, "plausible_range", "ecg_mv_min").kwargs["min_value"] == -10
    assert one(checks, "plausible_range", "ecg_mv_max").kwargs["max_value"] == 10


@pytest.mark.parametrize("kind", HIGH_RATE)
def test_high_rate_files_check_their_subject_on_the_file_batch(kind):
    check = one(suite_checks(kind, parameters_for(kind)), "known_subject")

    assert check.batch == FILE_BATCH
    assert check.kwargs == {"column": "subject_id", "value_set": sorted(SUBJECTS)}


@pytest.mark.parametrize("kind", [k for k in ROW_KINDS if k is not SourceKind.SUBJECTS])
def test_row_kinds_with_subjects_check_them_on_the_rows(kind):
    check = one(suite_checks(kind, parameters_for(kind)), "known_subject")

    assert check.batch == ROWS_BATCH
    assert check.kwargs["value_set"] == ["S0001", "S0002"]


def test_subjects_have_no_known_subject_check_endpoints_do():
    # The enrollment file is the list of known subjects, so it is validated without one
    # (SuiteParameters.known_subjects is None while validating that file itself).
    subjects = suite_checks(SourceKind.SUBJECTS, parameters_for(SourceKind.SUBJECTS))
    endpoints = suite_checks(SourceKind.ENDPOINTS, parameters_for(SourceKind.ENDPOINTS))

    assert checks_named(subjects, "known_subject") == []
    assert len(checks_named(endpoints, "known_subject")) == 1


@pytest.mark.parametrize("kind", ROW_KINDS)
def test_row_kinds_require_their_schema_columns_in_one_check(kind):
    required = checks_named(suite_checks(kind, parameters_for(kind)), "required_columns")

    table = [c for c in required if c.expectation == "ExpectTableColumnsToMatchSet"]
    assert len(table) == 1
    assert table[0].batch == ROWS_BATCH
    assert table[0].kwargs == {"column_set": SCHEMAS[kind].required_columns, "exact_match": False}


@pytest.mark.parametrize("kind", [SourceKind.VITALS, SourceKind.MINUTE_WEARABLE, SourceKind.RR_INTERVALS])
def test_timed_row_kinds_reject_repeated_backward_and_missing_times(kind):
    checks = suite_checks(kind, parameters_for(kind))
    ordered = one(checks, "timestamps_ordered", "seconds_since_latest_earlier")
    present = one(checks, "timestamps_ordered", "timestamp")

    assert ordered.kwargs == {"column": "seconds_since_latest_earlier", "min_value": 0, "strict_min": True}
    assert present.expectation == "ExpectColumnValuesToNotBeNull"


def test_vitals_check_plausible_ranges_and_missingness_with_mostly():
    checks = suite_checks(SourceKind.VITALS, parameters_for(SourceKind.VITALS, max_missing_fraction=0.25))

    heart_rate = one(checks, "plausible_range", "heart_rate_bpm")
    assert (heart_rate.kwargs["min_value"], heart_rate.kwargs["max_value"]) == (20, 250)
    temperature = one(checks, "plausible_range", "temperature_deg_c")
    assert temperature.kwargs["max_value"] < 86  # 86-113 degF must fail
    missing = checks_named(checks, "missingness")
    assert {c.column for c in missing} == {"heart_rate_bpm", "spo2_percent", "respiratory_rate_per_min",
                                           "temperature_deg_c", "systolic_bp_mmhg", "consciousness_avpu"}
    assert all(c.expectation == "ExpectColumnValuesToNotBeNull" for c in missing)
    assert all(c.kwargs["mostly"] == pytest.approx(0.75) for c in missing)


def test_labs_check_the_analyte_unit_pair():
    checks = suite_checks(SourceKind.LABS, parameters_for(SourceKind.LABS))

    check = one(checks, "known_unit")
    assert check.expectation == "ExpectColumnPairValuesToBeInSet"
    assert (check.kwargs["column_A"], check.kwargs["column_B"]) == ("analyte", "unit")
    assert check.kwargs["value_pairs_set"] == [("creatinine", "mg/dL"), ("glucose", "mg/dL"), ("sodium", "mmol/L")]


def test_labs_have_one_row_conditioned_plausible_range_per_analyte():
    checks = suite_checks(SourceKind.LABS, parameters_for(SourceKind.LABS))

    ranges = [c for c in checks_named(checks, "plausible_range") if c.column == "value"]
    assert sorted(c.meta["analyte"] for c in ranges) == ["creatinine", "glucose", "sodium"]
    for check in ranges:
        analyte = check.meta["analyte"]
        assert (check.kwargs["min_value"], check.kwargs["max_value"]) == LAB_RANGES[analyte]
        assert check.meta["unit"] == LAB_UNITS[analyte]
        assert check.kwargs["row_condition"] == f'analyte=="{analyte}" and unit=="{LAB_UNITS[analyte]}"'
        assert check.kwargs["condition_parser"] == "pandas"


def test_labs_results_are_unique_per_subject_code_and_time():
    check = one(suite_checks(SourceKind.LABS, parameters_for(SourceKind.LABS)), "unique_keys")

    assert check.expectation == "ExpectCompoundColumnsToBeUnique"
    assert check.kwargs["column_list"] == ["subject_id", "loinc_code", "timestamp"]


def test_endpoints_check_outcome_levels_and_unique_keys():
    checks = suite_checks(SourceKind.ENDPOINTS, parameters_for(SourceKind.ENDPOINTS))

    assert one(checks, "plausible_range", "outcome").kwargs["value_set"] == [0, 1]
    assert one(checks, "unique_keys").kwargs["column_list"] == ["subject_id", "endpoint", "index_time"]


def test_subjects_are_unique_and_sex_is_a_known_level():
    checks = suite_checks(SourceKind.SUBJECTS, parameters_for(SourceKind.SUBJECTS))

    assert one(checks, "unique_keys", "subject_id").expectation == "ExpectColumnValuesToBeUnique"
    assert one(checks, "plausible_range", "sex").kwargs["value_set"] == ["F", "M", "X"]


def test_check_column_is_the_first_column_argument():
    assert Check("x", ROWS_BATCH, "E", {"column": "value"}).column == "value"
    assert Check("x", ROWS_BATCH, "E", {"column_A": "analyte", "column_B": "unit"}).column == "analyte"
    assert Check("x", ROWS_BATCH, "E", {"column_set": ["a"]}).column is None


@pytest.mark.parametrize(
    "raw",
    ["name", "Patient Name", "patient_name", "First Name", "MRN", "DOB", "Date of Birth", "SSN", "Address",
     "Phone", "Email", "E-mail", "subject_name", "Home Address", "Mobile Number", "Postcode"],
)
def test_identifier_pattern_matches_direct_identifiers(raw):
    assert re.search(DIRECT_IDENTIFIER_PATTERN, normalise_field(raw))


@pytest.mark.parametrize(
    "raw",
    # device_name is not flagged: the pattern only takes a person-like prefix (patient, subject,
    # participant, person, home, street, mailing) before "name", and a device's name is no
    # direct identifier of the person wearing it.
    ["test_name", "Test Name", "subject_id", "analyte", "birth_year", "site_id", "device_name", "surname_hash",
     "email_opt_in", "heart_rate_bpm"],
)
def test_identifier_pattern_leaves_other_fields_alone(raw):
    assert re.search(DIRECT_IDENTIFIER_PATTERN, normalise_field(raw)) is None


@pytest.mark.parametrize("kind", HIGH_RATE)
def test_high_rate_kinds_check_for_samples_of_corrupt_device_blocks(kind):
    checks = checks_named(suite_checks(kind, SuiteParameters(sampling_rate_hz=50)), "corrupt_blocks")
    assert [(c.batch, c.expectation, c.kwargs) for c in checks] == [
        (SECONDS_BATCH, "ExpectColumnValuesToBeBetween", {"column": "corrupt_samples", "min_value": 0, "max_value": 0})
    ]
