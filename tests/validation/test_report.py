"""The validation report: one sentence per failure, one paragraph per file, JSON that round-trips."""

from __future__ import annotations

import json

import pytest

from validation.report import Failure, Outcome, ValidationReport

BETWEEN = "expect_column_values_to_be_between(creatinine_mg_dl, 0.1, 20)"


def failure(**overrides) -> Failure:
    values = {
        "check": "plausible_range",
        "severity": "reject",
        "expectation": BETWEEN,
        "column": "value",
        "unit_of_location": "rows",
    }
    return Failure(**{**values, **overrides})


def report(outcome: Outcome, failures: list[Failure] = (), **overrides) -> ValidationReport:
    values = {
        "report_id": "labs-0123456789ab-deadbeef",
        "file": "raw/labs/labs_2024-05.csv",
        "source": "lims",
        "kind": "labs",
        "sha256": "ab" * 32,
        "checked_at": "2024-05-02T10:00:00+00:00",
        "outcome": outcome,
        "rows": 1200,
        "failures": list(failures),
        "suites": ["demo.lims.file", "demo.lims.rows"],
    }
    return ValidationReport(**{**values, **overrides})


def test_sentence_in_the_house_style():
    text = failure(unexpected_count=3, locations=[17, 240, 981], likely_cause="values look like umol/L").sentence()

    assert text == f"{BETWEEN} failed for 3 rows (17, 240, 981); values look like umol/L"


@pytest.mark.parametrize(
    ("locations", "shown"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8], "1 to 8"),
        ([1, 2, 3, 7], "1 to 3, 7"),
        ([4, 5], "4, 5"),
        ([4, 5, 9, 10, 11, 20], "4, 5, 9 to 11, 20"),
        ([3], "3"),
        ([9, 3], "9, 3"),
    ],
)
def test_sentence_folds_consecutive_rows_into_ranges(locations, shown):
    text = failure(unexpected_count=len(locations), locations=locations).sentence()

    assert text == f"{BETWEEN} failed for {len(locations)} rows ({shown})"


def test_sentence_shows_eight_locations_and_says_there_are_more():
    text = failure(unexpected_count=10, locations=list(range(1, 11))).sentence()

    assert text == f"{BETWEEN} failed for 10 rows (1 to 8, ...)"


def test_sentence_says_there_are_more_when_the_count_exceeds_the_kept_locations():
    text = failure(unexpected_count=25, locations=[2, 4, 6]).sentence()

    assert text.endswith("failed for 25 rows (2, 4, 6, ...)")


def test_sentence_has_no_ellipsis_when_every_location_is_shown():
    assert "..." not in failure(unexpected_count=8, locations=list(range(11, 19))).sentence()
    assert "..." not in failure(unexpected_count=2, locations=[5, 40]).sentence()


def test_sentence_folds_consecutive_seconds():
    seconds = ["2024-03-04T08:00:58Z", "2024-03-04T08:00:59Z", "2024-03-04T08:01:00Z", "2024-03-04T08:01:05Z"]

    text = failure(check="sampling_rate", unit_of_location="seconds", unexpected_count=4, locations=seconds,
                   expectation="expect_column_values_to_be_between(samples_full_second, 47.5, 52.5)").sentence()

    assert text.endswith("failed for 4 seconds (2024-03-04T08:00:58Z to 2024-03-04T08:01:00Z, 2024-03-04T08:01:05Z)")


def test_sentence_of_many_seconds_shows_the_first_eight_folded():
    seconds = [f"2024-03-04T08:00:{s:02d}Z" for s in range(1, 21)]

    text = failure(unit_of_location="seconds", unexpected_count=300, locations=seconds).sentence()

    assert text.endswith("failed for 300 seconds (2024-03-04T08:00:01Z to 2024-03-04T08:00:08Z, ...)")


def test_sentence_lists_fields():
    text = failure(check="no_direct_identifiers", unit_of_location="fields", unexpected_count=2,
                   locations=["patient_name", "dob"], expectation="expect_x(field)").sentence()

    assert text == "expect_x(field) failed for 2 fields (patient_name, dob)"


def test_sentence_of_an_aggregate_gives_the_observed_value():
    text = failure(expectation="expect_column_median_to_be_between(gravity_estimate_g, 0.5, 2)",
                   observed_value=9.806649999, likely_cause="values look like m/s^2").sentence()

    assert text == "expect_column_median_to_be_between(gravity_estimate_g, 0.5, 2) failed (observed 9.807); " \
                   "values look like m/s^2"


def test_sentence_without_counts_or_observation():
    assert failure(expectation="expect_y(z)").sentence() == "expect_y(z) failed"


def full_report() -> ValidationReport:
    return report(Outcome.REJECTED, [
        failure(unexpected_count=3, element_count=1200, locations=[17, 240, 981], examples=[88.0, 91.5, 79.0],
                likely_cause="values look like umol/L"),
        failure(check="known_unit", severity="warn", column="analyte", unexpected_count=1, locations=[5],
                examples=[["glucose", "mg/mmol"]], expectation="expect_column_pair_values_to_be_in_set(analyte, unit)"),
        failure(check="plausible_range", column="gravity_estimate_g", unit_of_location="seconds",
                observed_value=9.8, expectation="expect_column_median_to_be_between(gravity_estimate_g, 0.5, 2)"),
    ])


def test_json_round_trip():
    original = full_report()

    text = original.to_json()

    assert ValidationReport.from_json(text) == original
    assert ValidationReport.from_json(text).outcome is Outcome.REJECTED


def test_json_is_plain_and_carries_the_paragraph():
    original = full_report()

    document = json.loads(original.to_json())

    assert document["outcome"] == "rejected"
    assert document["paragraph"] == original.paragraph()
    assert document["failures"][0]["locations"] == [17, 240, 981]


def test_json_round_trip_of_an_unreadable_file():
    original = report(Outcome.UNREADABLE, rows=None, suites=[], read_error="labs.hl7: not an HL7 v2 file")

    assert ValidationReport.from_json(original.to_json()) == original


def test_paragraph_of_a_passed_file():
    text = report(Outcome.PASSED).paragraph()

    assert text == "raw/labs/labs_2024-05.csv (lims, 1200 rows) passed all labs checks."


def test_paragraph_of_a_passed_signal_counts_samples_and_seconds():
    text = report(Outcome.PASSED, file="raw/accel/S0001_wrist.parquet", source="wrist_accel", kind="accelerometry",
                  rows=30_000, seconds=600).paragraph()

    assert text == "raw/accel/S0001_wrist.parquet (wrist_accel, 30000 samples over 600 seconds) " \
                   "passed all accelerometry checks."


def test_paragraph_of_a_warned_file_names_the_warnings():
    warning = failure(severity="warn", unexpected_count=1, locations=[7])

    text = report(Outcome.WARNED, [warning]).paragraph()

    assert text.startswith("raw/labs/labs_2024-05.csv (lims, 1200 rows) was curated with warnings.")
    assert f"Warnings: plausible_range: {BETWEEN} failed for 1 rows (7)." in text
    assert "quarantined" not in text


def test_paragraph_of_a_rejected_file_names_the_file_source_and_failed_expectation():
    original = full_report()

    text = original.paragraph()

    assert text.startswith("raw/labs/labs_2024-05.csv (lims, 1200 rows) was quarantined: ")
    assert f"plausible_range: {BETWEEN} failed for 3 rows (17, 240, 981); values look like umol/L." in text
    assert "expect_column_median_to_be_between(gravity_estimate_g, 0.5, 2) failed (observed 9.8)" in text
    assert "Warnings: known_unit: expect_column_pair_values_to_be_in_set(analyte, unit) failed for 1 rows (5)." \
        in text


def test_paragraph_of_an_unreadable_file():
    text = report(Outcome.UNREADABLE, read_error="line 3: 'XYZ|1' is not an HL7 segment").paragraph()

    assert text == "raw/labs/labs_2024-05.csv (lims) could not be read and was quarantined: " \
                   "line 3: 'XYZ|1' is not an HL7 segment"


def test_reason_of_a_rejected_file_is_its_first_rejecting_failure():
    original = full_report()

    assert original.rejected
    assert original.reason() == (f"plausible_range: {BETWEEN} failed for 3 rows (17, 240, 981); "
                                 "values look like umol/L (and 1 more failed checks)")


def test_reason_with_one_rejecting_failure_has_no_count():
    rejected = report(Outcome.REJECTED, [failure(unexpected_count=1, locations=[2])])

    assert rejected.reason() == f"plausible_range: {BETWEEN} failed for 1 rows (2)"


def test_no_reason_for_passed_or_warned_files():
    assert report(Outcome.PASSED).reason() is None
    assert report(Outcome.WARNED, [failure(severity="warn", unexpected_count=1, locations=[3])]).reason() is None
    assert not report(Outcome.WARNED).rejected


def test_reason_of_an_unreadable_file_is_the_read_error():
    unreadable = report(Outcome.UNREADABLE, read_error="not valid JSON at line 1")

    assert unreadable.rejected
    assert unreadable.reason() == "not valid JSON at line 1"


def test_messages_name_the_file_and_severity():
    messages = full_report().messages()

    assert messages[0] == f"raw/labs/labs_2024-05.csv: [reject] {BETWEEN} failed for 3 rows (17, 240, 981); " \
                          "values look like umol/L"
    assert messages[1].startswith("raw/labs/labs_2024-05.csv: [warn] expect_column_pair_values_to_be_in_set")
