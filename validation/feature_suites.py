"""The plausibility suite of a feature table, derived from its column names.

Every biomarker name ends in its unit (``<signal>_<statistic>_<window>_<unit>``), so the unit
says what range a value can take: a heart rate of 400 bpm or a sleep efficiency of 130 % is a
bug upstream, and the table is not published. Slopes (``..._per_day``, ``..._per_h``) can take
any sign and are only checked for being finite where present.
"""

from __future__ import annotations

from validation.suites import ROWS_BATCH, Check

# (suffix, low, high), most specific suffix first: "_steps_per_min" before "_per_min".
UNIT_RANGES: tuple[tuple[str, float | None, float | None], ...] = (
    ("_per_day", None, None),
    ("_per_h", None, None),
    ("_steps_per_min", 0, 300),
    ("_counts_per_min", 0, None),  # device counts: each vendor's own scale
    ("_per_min", 4, 60),  # respiratory rate
    ("_bpm", 20, 250),
    ("_percent", 0, 100),
    ("_min", 0, 1440),
    ("_count", 0, None),
    ("_ms2", 0, None),
    ("_ms", 0, 3000),
    ("_mg", 0, 2000),
    ("_m_s", 0, 3),
    ("_s", 0, 10),
    ("_deg_c", 30, 45),
    ("_mmhg", 40, 300),
    ("_flag", 0, 1),
    ("_ml_min_1_73m2", 0, 250),
    ("_ratio_morning", 0, None),
)
# Dimensionless measures, by the name they start with. RA is 0 to 1; IS too, but pyActigraphy's
# sample variances let it reach p / (p - 1) of a day's p bins (24/23 for hours); IV is at most
# 4 (a series alternating between two values), about 2 for noise.
SCORE_RANGES = {"news2_score": (0, 20), "interdaily_stability": (0, 1.1), "relative_amplitude": (0, 1),
                "intradaily_variability": (0, 4)}


def feature_table_checks(columns: list[str]) -> list[Check]:
    """Keys unique and present, and every biomarker column within the range its unit allows."""
    checks = [
        Check("required_columns", ROWS_BATCH, "ExpectTableColumnsToMatchSet",
              {"column_set": ["subject_id", "event_timestamp", "created_timestamp"], "exact_match": False}),
        Check("unique_keys", ROWS_BATCH, "ExpectCompoundColumnsToBeUnique",
              {"column_list": ["subject_id", "event_timestamp"]}),
        Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "subject_id"}),
        Check("required_columns", ROWS_BATCH, "ExpectColumnValuesToNotBeNull", {"column": "event_timestamp"}),
    ]
    for column in columns:
        low, high = _range(column)
        if low is None and high is None:
            continue
        kwargs = {"column": column}
        if low is not None:
            kwargs["min_value"] = low
        if high is not None:
            kwargs["max_value"] = high
        checks.append(Check("plausible_range", ROWS_BATCH, "ExpectColumnValuesToBeBetween", kwargs))
    return checks


def _range(column: str) -> tuple[float | None, float | None]:
    for prefix, bounds in SCORE_RANGES.items():
        if column.startswith(prefix):
            return bounds
    for suffix, low, high in UNIT_RANGES:
        if column.endswith(suffix):
            return low, high
    return None, None
