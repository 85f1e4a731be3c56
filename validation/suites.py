"""One expectation suite per source kind, written as data.

Every raw file is checked on two batches:

``file``
    one row per field name of the raw file (its CSV header, the populated fields of an HL7
    message), lower-cased with non-alphanumerics turned into ``_``, plus the file's subject
    when the whole file belongs to one subject. Direct identifiers and unknown subjects fail here.
``rows`` or ``seconds``
    the canonical frame itself (one row per sample or result), or for high-rate signals the
    exact per-second aggregates of ``validation.aggregates``.

An expectation is a ``Check``: the Great Expectations class name and its arguments, the batch
it runs on and the named check it belongs to. Whether a failed check rejects the file or only
warns is the study's setting, not the suite's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from validation.schemas import (
    AVPU_LEVELS,
    DIRECT_IDENTIFIER_PATTERN,
    SCHEMAS,
    SEXES,
    SIGNALS,
    SLEEP_STAGES,
    SourceKind,
)

FILE_BATCH = "file"
ROWS_BATCH = "rows"
SECONDS_BATCH = "seconds"

# Physiological plausibility in canonical units (the table; wide enough for the sick).
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate_bpm": (20, 250),
    "spo2_percent": (50, 100),
    "temperature_deg_c": (30, 45),
    "systolic_bp_mmhg": (50, 260),
    "respiratory_rate_per_min": (4, 60),
    "rr_interval_ms": (200, 3000),  # 300 to 20 beats per minute
    "steps_count": (0, 300),  # per minute; elite sprinting cadence stays under 250
    # Per epoch, and epochs last 2 s to 1 h: the range catches negative and absurd counts, not high activity.
    "activity_count": (0, 10_000_000),
    "epoch_s": (1, 3600),
    "age_years": (0, 120),
    "height_m": (0.5, 2.5),
    "ecg_mv": (-10, 10),
}
GRAVITY_AT_REST_G = (0.5, 2.0)  # median magnitude of the per-second mean acceleration


@dataclass(frozen=True)
class Check:
    """One expectation of a suite.

    Attributes
    ----------
    check : the named check (``pipelines.config.CheckName`` values) whose severity applies.
    batch : ``file``, ``rows`` or ``seconds``.
    expectation : Great Expectations expectation class name, e.g. ``ExpectColumnValuesToBeBetween``.
    kwargs : its arguments.
    meta : what a report needs beyond the arguments (the analyte of a per-analyte range).
    """

    check: str
    batch: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column") or self.kwargs.get("column_A")


@dataclass(frozen=True)
class SuiteParameters:
    """What a suite needs to know about the study and source.

    Attributes
    ----------
    known_subjects : subject ids of the enrollment file; ``None`` while validating that file itself.
    sampling_rate_hz, sampling_rate_tolerance : expected rate of a high-rate signal and the
        allowed relative deviation of the samples counted in any full second.
    device_range_g : accelerometer full scale; a sample beyond it cannot come from the device.
    max_missing_fraction : the largest share of rows (or seconds) allowed to miss a measured value.
    lab_ranges : analyte -> plausible (low, high) in its canonical unit.
    lab_units : analyte -> canonical unit.
    """

    known_subjects: frozenset[str] | None = None
    sampling_rate_hz: float | None = None
    sampling_rate_tolerance: float = 0.05
    device_range_g: float = 8.0
    max_missing_fraction: float = 0.2
    lab_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    lab_units: dict[str, str] = field(default_factory=dict)


def suite_checks(kind: SourceKind, params: SuiteParameters) -> list[Check]:
    """All checks of the suite for ``kind``: file-level, structural and plausibility."""
    schema = SCHEMAS[kind]
    checks = [
        Check("no_direct_identifiers", FILE_BATCH, "ExpectColumnValuesToNotMatchRegex",
              {"column": "field", "regex": DIRECT_IDENTIFIER_PATTERN}),
    ]
    if params.known_subjects is not None:
        batch = FILE_BATCH if not schema.per_subject_column else ROWS_BATCH
        checks.append(Check("known_subject", batch, "ExpectColumnValuesToBeInSet",
                            {"column": "subject_id", "value_set": sorted(params.known_subjects)}))
    if schema.high_rate:
        # A per-axis NaN count exists exactly when the reader found that axis.
        checks.append(Check("required_columns", SECONDS_BATCH, "ExpectTableColumnsToMatchSet",
                            {"column_set": [f"{name}_nan" for name in schema.required_columns if name != "timestamp"],
                             "exact_match": False}))
        return checks + _high_rate_checks(kind, params)

    # One table-level check for all required columns: each expectation costs Great Expectations a
    # fixed overhead per file, and the result names every missing column at once.
    checks.append(Check("required_columns", ROWS_BATCH, "ExpectTableColumnsToMatchSet",
                        {"column_set": schema.required_columns, "exact_match": False}))
    checks.append(Check("column_types", ROWS_BATCH, "ExpectColumnValuesToBeBetween",
                        {"column": "unparsable_cells", "min_value": 0, "max_value": 0}))
    if kind is SourceKind.LABS:
        # Many analytes share a collection time; a result repeats only if all three repeat.
        checks.append(Check("unique_keys", ROWS_BATCH, "ExpectCompoundColumnsToBeUnique",
                            {"column_list": ["subject_id", "loinc_code", "timestamp"]}))
    if "timestamp" in schema.by_name:
        checks.append(Check("timestamps_ordered", ROWS_BATCH, "ExpectColumnValuesToNotBeNull",
                            {"column": "timestamp"}))
    if "timestamp" in schema.by_name and kind is not SourceKind.LABS:
        # NaN on a subject's first row, so only repeated and backward times fail.
        checks.append(Check("timestamps_ordered", ROWS_BATCH, "ExpectColumnValuesToBeBetween",
                            {"column": "seconds_since_latest_earlier", "min_value": 0, "strict_min": True}))
    for column in schema.by_name:
        if column in PLAUSIBLE_RANGES:
            low, high = PLAUSIBLE_RANGES[column]
            checks.append(Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeBetween",
                                {"column": column, "min_value": low, "max_value": high}))
    checks += _kind_checks(kind, params)
    return checks


def _high_rate_checks(kind: SourceKind, params: SuiteParameters) -> list[Check]:
    checks = [
        Check("timestamps_ordered", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
              {"column": "non_increasing", "min_value": 0, "max_value": 0}),
        Check("timestamps_ordered", SECONDS_BATCH, "ExpectColumnValuesToBeUnique", {"column": "second"}),
        # Samples of device blocks that failed their checksum: the report names the seconds, and
        # the cause the number of blocks (the readers set the samples missing, never zero).
        Check("corrupt_blocks", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
              {"column": "corrupt_samples", "min_value": 0, "max_value": 0}),
    ]
    if params.sampling_rate_hz:
        tolerance = params.sampling_rate_hz * params.sampling_rate_tolerance
        checks.append(Check("sampling_rate", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                            {"column": "samples_full_second",
                             "min_value": params.sampling_rate_hz - tolerance,
                             "max_value": params.sampling_rate_hz + tolerance}))
    for signal in SIGNALS[kind]:
        checks.append(Check("missingness", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                            {"column": f"{signal}_nan", "min_value": 0, "max_value": 0,
                             "mostly": 1 - params.max_missing_fraction}))
        if signal == "accel_g":
            checks += [
                Check("device_range", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                      {"column": "accel_g_min", "min_value": -params.device_range_g}),
                Check("device_range", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                      {"column": "accel_g_max", "max_value": params.device_range_g}),
                Check("plausible_range", SECONDS_BATCH, "ExpectColumnMedianToBeBetween",
                      {"column": "gravity_estimate_g", "min_value": GRAVITY_AT_REST_G[0],
                       "max_value": GRAVITY_AT_REST_G[1]}),
            ]
        if signal in PLAUSIBLE_RANGES:
            low, high = PLAUSIBLE_RANGES[signal]
            checks += [
                Check("plausible_range", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                      {"column": f"{signal}_min", "min_value": low}),
                Check("plausible_range", SECONDS_BATCH, "ExpectColumnValuesToBeBetween",
                      {"column": f"{signal}_max", "max_value": high}),
            ]
    return checks


def _not_missing(column: str, params: SuiteParameters) -> Check:
    return Check("missingness", ROWS_BATCH, "ExpectColumnValuesToNotBeNull",
                 {"column": column, "mostly": 1 - params.max_missing_fraction})


def _kind_checks(kind: SourceKind, params: SuiteParameters) -> list[Check]:
    """Checks particular to one kind: categorical levels, missingness, lab units and ranges."""
    if kind is SourceKind.MINUTE_WEARABLE:
        return [
            Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeInSet",
                  {"column": "sleep_stage", "value_set": list(SLEEP_STAGES)}),
            _not_missing("steps_count", params),
            _not_missing("heart_rate_bpm", params),
        ]
    if kind is SourceKind.ACTIVITY_COUNTS:
        return [_not_missing("activity_count", params)]
    if kind is SourceKind.RR_INTERVALS:
        return [_not_missing("rr_interval_ms", params)]
    if kind is SourceKind.VITALS:
        measured = ("heart_rate_bpm", "spo2_percent", "respiratory_rate_per_min",
                    "temperature_deg_c", "systolic_bp_mmhg", "consciousness_avpu")
        return [
            Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeInSet",
                  {"column": "consciousness_avpu", "value_set": list(AVPU_LEVELS)}),
            *(_not_missing(column, params) for column in measured),
        ]
    if kind is SourceKind.LABS:
        checks = [
            Check("known_unit", ROWS_BATCH, "ExpectColumnPairValuesToBeInSet",
                  {"column_A": "analyte", "column_B": "unit",
                   "value_pairs_set": sorted(params.lab_units.items())}),
            Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "value"}),
        ]
        for analyte, (low, high) in sorted(params.lab_ranges.items()):
            unit = params.lab_units.get(analyte)
            # Only rows already in the canonical unit: a row in an unknown unit fails known_unit instead.
            condition = f'analyte=="{analyte}" and unit=="{unit}"'
            checks.append(Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeBetween",
                                {"column": "value", "min_value": low, "max_value": high,
                                 "row_condition": condition, "condition_parser": "pandas"},
                                {"analyte": analyte, "unit": unit}))
        return checks
    if kind is SourceKind.SUBJECTS:
        return [
            Check("unique_keys", ROWS_BATCH, "ExpectColumnValuesToBeUnique", {"column": "subject_id"}),
            Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeInSet",
                  {"column": "sex", "value_set": list(SEXES)}),
            Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "subject_id"}),
            Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "enrollment_date"}),
        ]
    if kind is SourceKind.ENDPOINTS:
        return [
            Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeInSet",
                  {"column": "outcome", "value_set": [0, 1]}),
            Check("unique_keys", ROWS_BATCH, "ExpectCompoundColumnsToBeUnique",
                  {"column_list": ["subject_id", "endpoint", "index_time"]}),
            Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "index_time"}),
        ]
    return []
