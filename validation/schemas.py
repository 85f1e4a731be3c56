"""Canonical frames: the columns, units and types every reader must return, per source kind.

A reader turns a raw file of any format into exactly one canonical frame. Column names carry
their unit (``heart_rate_bpm``, ``accel_x_g``) so a unit is declared once, here, and converted at
ingest, never later. All timestamps are timezone-aware UTC (``datetime64[ns, UTC]``).

The partition columns of the curated lake (``subject_id``, ``date``) come from the frame, so
every canonical frame carries ``subject_id`` except the high-rate kinds, whose subject is fixed
per file and recorded in the catalog and the lake path instead of being repeated per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SourceKind(StrEnum):
    """The kinds of source a study can declare."""

    ACCELEROMETRY = "accelerometry"
    MINUTE_WEARABLE = "minute_wearable"
    ACTIVITY_COUNTS = "activity_counts"
    RR_INTERVALS = "rr_intervals"
    ECG = "ecg"
    PPG = "ppg"
    VITALS = "vitals"
    LABS = "labs"
    SUBJECTS = "subjects"
    ENDPOINTS = "endpoints"


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, pandas dtype family and unit (``None`` for no unit)."""

    name: str
    dtype: str  # one of: "datetime", "float", "int", "string", "bool"
    unit: str | None = None
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class CanonicalSchema:
    kind: SourceKind
    columns: tuple[Column, ...]
    high_rate: bool = False
    per_subject_column: bool = True
    notes: str = ""
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def units(self) -> dict[str, str]:
        """Column name to canonical unit, for the Parquet schema metadata."""
        return {c.name: c.unit for c in self.columns if c.unit}


_TIMESTAMP = Column("timestamp", "datetime", description="sample or event time, UTC")
_SUBJECT = Column("subject_id", "string", description="study subject code, never a direct identifier")

SLEEP_STAGES = ("wake", "light", "deep", "rem", "asleep", "unknown")
AVPU_LEVELS = ("A", "C", "V", "P", "U")  # NEWS2 ACVPU: alert, new confusion, voice, pain, unresponsive
SEXES = ("F", "M", "X")

SCHEMAS: dict[SourceKind, CanonicalSchema] = {
    SourceKind.ACCELEROMETRY: CanonicalSchema(
        SourceKind.ACCELEROMETRY,
        (
            _TIMESTAMP,
            Column("accel_x_g", "float", "g"),
            Column("accel_y_g", "float", "g"),
            Column("accel_z_g", "float", "g"),
            Column("gyro_x_deg_s", "float", "deg/s", required=False),
            Column("gyro_y_deg_s", "float", "deg/s", required=False),
            Column("gyro_z_deg_s", "float", "deg/s", required=False),
            Column("temperature_deg_c", "float", "degC", required=False),
        ),
        high_rate=True,
        per_subject_column=False,
    ),
    SourceKind.MINUTE_WEARABLE: CanonicalSchema(
        SourceKind.MINUTE_WEARABLE,
        (
            _SUBJECT,
            _TIMESTAMP,
            Column("steps_count", "float", "count/min", description="steps in the minute"),
            Column("heart_rate_bpm", "float", "bpm", description="mean heart rate in the minute"),
            Column("sleep_stage", "string", description="one of " + ", ".join(SLEEP_STAGES)),
            Column("wear", "bool", description="device worn during the minute"),
        ),
    ),
    SourceKind.ACTIVITY_COUNTS: CanonicalSchema(
        SourceKind.ACTIVITY_COUNTS,
        (
            _SUBJECT,
            Column("timestamp", "datetime", description="start of the epoch, UTC"),
            Column("activity_count", "float", "count", description="the device's activity counts in the epoch "
                   "(Actiwatch counts; ActiGraph axis-1 or vector-magnitude counts), as the vendor computes them"),
            Column("epoch_s", "float", "s", description="length of the epoch"),
        ),
        notes="epoch counts as the device stored them: counts of different vendors are not on one scale",
    ),
    SourceKind.RR_INTERVALS: CanonicalSchema(
        SourceKind.RR_INTERVALS,
        (
            _SUBJECT,
            Column("timestamp", "datetime", description="time of the beat that ends the interval, UTC"),
            Column("rr_interval_ms", "float", "ms"),
        ),
    ),
    SourceKind.ECG: CanonicalSchema(
        SourceKind.ECG,
        (_TIMESTAMP, Column("ecg_mv", "float", "mV")),
        high_rate=True,
        per_subject_column=False,
    ),
    SourceKind.PPG: CanonicalSchema(
        SourceKind.PPG,
        (_TIMESTAMP, Column("ppg_au", "float", "a.u.", description="photoplethysmogram, arbitrary units")),
        high_rate=True,
        per_subject_column=False,
    ),
    SourceKind.VITALS: CanonicalSchema(
        SourceKind.VITALS,
        (
            _SUBJECT,
            _TIMESTAMP,
            Column("heart_rate_bpm", "float", "bpm"),
            Column("spo2_percent", "float", "%"),
            Column("respiratory_rate_per_min", "float", "/min"),
            Column("temperature_deg_c", "float", "degC"),
            Column("systolic_bp_mmhg", "float", "mmHg"),
            Column("consciousness_avpu", "string", description="ACVPU level: " + ", ".join(AVPU_LEVELS)),
            Column("supplemental_oxygen", "bool", description="on supplemental oxygen"),
        ),
    ),
    SourceKind.LABS: CanonicalSchema(
        SourceKind.LABS,
        (
            _SUBJECT,
            Column("timestamp", "datetime", description="specimen collection time, UTC"),
            Column("loinc_code", "string"),
            Column("analyte", "string", description="canonical analyte name, e.g. creatinine"),
            Column("value", "float", description="value in the canonical unit of the analyte"),
            Column("unit", "string", description="canonical unit of the analyte (UCUM-like)"),
            Column("reference_low", "float", required=False),
            Column("reference_high", "float", required=False),
            Column("abnormal_flag", "string", required=False, description="L, H, LL, HH, A or N"),
            Column("original_value", "float", required=False, description="value as reported"),
            Column("original_unit", "string", required=False, description="unit as reported"),
        ),
        notes="long form: one row per subject, analyte and collection time",
    ),
    SourceKind.SUBJECTS: CanonicalSchema(
        SourceKind.SUBJECTS,
        (
            _SUBJECT,
            Column("site_id", "string"),
            Column("arm", "string"),
            Column("sex", "string", description="one of " + ", ".join(SEXES)),
            Column("age_years", "float", "years", description="age at enrollment"),
            Column("enrollment_date", "datetime", description="midnight UTC of the enrollment day"),
            Column("height_m", "float", "m", required=False,
                   description="height (gait speed; a file may give height_cm instead)"),
        ),
    ),
    SourceKind.ENDPOINTS: CanonicalSchema(
        SourceKind.ENDPOINTS,
        (
            _SUBJECT,
            Column("index_time", "datetime", description="time at which the outcome is predicted, UTC"),
            Column("endpoint", "string"),
            Column("outcome", "int", description="1 if the endpoint occurred within its horizon, else 0"),
        ),
    ),
}

# The measured signals of each high-rate kind, named with their unit, and their columns (axes).
# Per-second aggregates fold a signal's axes (see validation.aggregates).
SIGNALS: dict[SourceKind, dict[str, tuple[str, ...]]] = {
    SourceKind.ACCELEROMETRY: {"accel_g": ("accel_x_g", "accel_y_g", "accel_z_g")},
    SourceKind.ECG: {"ecg_mv": ("ecg_mv",)},
    SourceKind.PPG: {"ppg_au": ("ppg_au",)},
}

# Column names that look like direct identifiers. Matched against the raw file's own header
# (before any column mapping), lower-cased with every run of non-alphanumerics turned into "_",
# so "Patient Name", "patient-name" and "PATIENT_NAME" are all caught while "test_name" is not.
DIRECT_IDENTIFIER_PATTERN = (
    r"^(?:(?:patient|subject|participant|person|home|street|mailing)_)?(?:"
    r"name|first_name|last_name|given_name|family_name|full_name|surname|initials"
    r"|mrn|medical_record_number|medical_record_no|hospital_number|nhs_number"
    r"|dob|date_of_birth|birth_date|birthdate"
    r"|ssn|social_security_number|social_security_no"
    r"|address|street|street_address|zip|zip_code|postcode|postal_code"
    r"|phone|phone_number|telephone|mobile|mobile_number"
    r"|email|e_mail|email_address"
    r")$"
)
