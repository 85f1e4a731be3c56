"""Laboratory biomarkers: CKD-EPI 2021 eGFR, baseline, slope, range flag and the lab feature table.

eGFR expectations are computed by hand in this file from the equation as printed in Inker LA et
al., N Engl J Med 2021;385:1737-49 (no values are copied from a calculator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.biomarkers.labs import (
    CANONICAL_UNIT_BY_ANALYTE,
    DEFAULT_LAB_ANALYTES,
    baseline_value,
    change_from_baseline,
    egfr_ckd_epi_2021_missing_reason,
    egfr_ckd_epi_2021_ml_min_1_73m2,
    labs_feature_columns,
    labs_features,
    last_value,
    least_squares_slope_per_day,
    out_of_range_flag,
)
from validation.analytes import CANONICAL_UNIT_BY_ANALYTE as VALIDATION_UNITS

ENROLL = pd.Timestamp("2024-01-10", tz="UTC")
DAY = pd.Timedelta(days=1)


def _egfr_by_hand(creatinine, age, female):
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938**age
    return value * 1.012 if female else value


# --- eGFR -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("creatinine", "age", "sex", "expected"),
    [
        # 142 x (1.0/0.9)^-1.200 x 0.9938^50 = 142 x 0.88123 x 0.73274
        (1.0, 50, "M", 91.69),
        # at Scr = kappa both ratio terms are 1: 142 x 0.9938^18 x 1.012
        (0.7, 18, "F", 128.48),
        # below kappa: 142 x (0.5/0.7)^-0.241 x 0.9938^40 x 1.012
        (0.5, 40, "F", 121.52),
        # 142 x (2.0/0.9)^-1.200 x 0.9938^70 = 142 x 0.38356 x 0.64705
        (2.0, 70, "M", 35.24),
        # 142 x (1.2/0.7)^-1.200 x 0.9938^60 x 1.012
        (1.2, 60, "F", 51.82),
        # 142 x (0.6/0.9)^-0.302 x 0.9938^30
        (0.6, 30, "M", 133.18),
    ],
)
def test_egfr_hand_computed_values(creatinine, age, sex, expected):
    got = float(egfr_ckd_epi_2021_ml_min_1_73m2(creatinine, age, sex))
    assert got == pytest.approx(expected, abs=0.01)
    assert got == pytest.approx(_egfr_by_hand(creatinine, age, sex == "F"), rel=1e-12)


def test_egfr_at_kappa_reduces_to_the_age_and_sex_terms():
    assert float(egfr_ckd_epi_2021_ml_min_1_73m2(0.9, 40, "M")) == pytest.approx(142 * 0.9938**40, rel=1e-12)
    assert float(egfr_ckd_epi_2021_ml_min_1_73m2(0.7, 40, "F")) == pytest.approx(142 * 0.9938**40 * 1.012, rel=1e-12)


def test_egfr_is_vectorised_over_a_grid():
    creatinine = np.array([0.4, 0.7, 0.9, 1.5, 4.0] * 4)
    age = np.repeat([18.0, 45.5, 80.0, 95.0], 5)
    sex = np.array(["F", "M"] * 10, dtype=object)
    got = egfr_ckd_epi_2021_ml_min_1_73m2(creatinine, age, sex)
    expected = [_egfr_by_hand(c, a, s == "F") for c, a, s in zip(creatinine, age, sex, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.shape == (20,)
    # broadcasting a scalar sex and age
    np.testing.assert_allclose(
        egfr_ckd_epi_2021_ml_min_1_73m2(pd.Series([0.8, 1.1]), 60, "f"),
        [_egfr_by_hand(0.8, 60, True), _egfr_by_hand(1.1, 60, True)],
    )


def test_egfr_falls_with_creatinine_and_age():
    values = egfr_ckd_epi_2021_ml_min_1_73m2(np.linspace(0.3, 8, 50), 50, "M")
    assert np.all(np.diff(values) < 0)
    values = egfr_ckd_epi_2021_ml_min_1_73m2(1.0, np.arange(18, 100), "F")
    assert np.all(np.diff(values) < 0)


@pytest.mark.parametrize(
    ("creatinine", "age", "sex", "reason"),
    [
        (1.0, 50, "X", "sex 'X' (equation has F and M coefficients only)"),
        (1.0, 50, None, "no sex"),
        (1.0, 17.9, "F", "age under 18 years (adult equation)"),
        (1.0, np.nan, "F", "no age"),
        (np.nan, 50, "M", "no creatinine"),
        (0.0, 50, "M", "creatinine not positive"),
    ],
)
def test_egfr_is_nan_with_a_reason_when_it_cannot_be_computed(creatinine, age, sex, reason):
    assert np.isnan(egfr_ckd_epi_2021_ml_min_1_73m2(creatinine, age, sex))
    assert egfr_ckd_epi_2021_missing_reason([creatinine], [age], [sex])[0] == reason


def test_egfr_reason_is_none_when_computed():
    assert egfr_ckd_epi_2021_missing_reason([1.0], [50], ["M"])[0] is None


# --- per-analyte statistics ----------------------------------------------------------------


def test_change_from_baseline():
    np.testing.assert_allclose(change_from_baseline([1.5, 2.0, np.nan], [1.0, np.nan, 1.0]), [0.5, np.nan, np.nan])
    last = pd.Series([1.5, 0.9], index=[10, 11])
    baseline = pd.Series([1.0, 1.2], index=[10, 11])
    change = change_from_baseline(last, baseline)
    assert isinstance(change, pd.Series)
    assert change.index.tolist() == [10, 11]
    np.testing.assert_allclose(change, [0.5, -0.3])
    nullable = change_from_baseline(pd.Series([1.5, None], dtype="Float64"), pd.Series([1.0, 1.0]))
    assert nullable.dtype == np.float64 and np.isnan(nullable.iloc[1])


@pytest.mark.parametrize(
    ("value", "low", "high", "flag"),
    [
        (0.5, 0.6, 1.3, 1.0),
        (1.4, 0.6, 1.3, 1.0),
        (0.6, 0.6, 1.3, 0.0),  # on a bound is in range
        (1.3, 0.6, 1.3, 0.0),
        (1.0, 0.6, 1.3, 0.0),
        (12.0, np.nan, 5.0, 1.0),  # CRP: upper limit only
        (0.1, np.nan, 5.0, 0.0),
        (3.0, np.nan, np.nan, np.nan),
        (np.nan, 0.6, 1.3, np.nan),
    ],
)
def test_out_of_range_flag(value, low, high, flag):
    np.testing.assert_array_equal(out_of_range_flag(value, low, high), flag)


def test_last_value_and_baseline_selection():
    times = pd.DatetimeIndex([ENROLL - 3 * DAY, ENROLL, ENROLL + pd.Timedelta(hours=9), ENROLL + 2 * DAY])
    values = [1.0, 1.1, 1.2, np.nan]
    # the result exactly at enrollment counts; one later the same day does not
    assert baseline_value(times, values, ENROLL) == 1.1
    assert baseline_value(times, values, ENROLL - pd.Timedelta(seconds=1)) == 1.0
    assert np.isnan(baseline_value(times, values, ENROLL - 4 * DAY))
    np.testing.assert_array_equal(
        last_value(times, values, [ENROLL - 5 * DAY, ENROLL, ENROLL + 3 * DAY]), [np.nan, 1.1, 1.2]
    )


def test_slope_is_in_units_per_day():
    times = ENROLL + pd.to_timedelta([0, 3, 7, 12, 20], unit="D")
    days = np.array([0, 3, 7, 12, 20], dtype=float)
    assert least_squares_slope_per_day(times, 1.0 + 0.05 * days) == pytest.approx(0.05)
    assert np.isnan(least_squares_slope_per_day(times[:1], [1.0]))
    assert np.isnan(least_squares_slope_per_day([ENROLL, ENROLL], [1.0, 2.0]))


# --- the table ------------------------------------------------------------------------------


def _labs(rows):
    """Rows of (subject, timestamp, analyte, value[, low, high[, unit]])."""
    records = []
    for row in rows:
        subject, time, analyte, value, *rest = row
        low, high = rest[:2] if len(rest) >= 2 else (np.nan, np.nan)
        unit = rest[2] if len(rest) >= 3 else CANONICAL_UNIT_BY_ANALYTE[analyte]
        records.append(
            {
                "subject_id": subject, "timestamp": time, "loinc_code": "x", "analyte": analyte,
                "value": value, "unit": unit, "reference_low": low, "reference_high": high, "abnormal_flag": None,
            }
        )
    frame = pd.DataFrame.from_records(records)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def _subjects(*rows):
    """Rows of (subject, sex, age_years, enrollment_date)."""
    return pd.DataFrame(
        {
            "subject_id": [r[0] for r in rows],
            "site_id": "site-1",
            "arm": "A",
            "sex": [r[1] for r in rows],
            "age_years": [float(r[2]) for r in rows],
            "enrollment_date": pd.to_datetime([r[3] for r in rows], utc=True),
        }
    )


def _example():
    labs = _labs(
        [
            ("s1", ENROLL - 5 * DAY, "creatinine", 0.9, 0.6, 1.3),
            ("s1", ENROLL, "creatinine", 1.0, 0.6, 1.3),
            ("s1", ENROLL, "c_reactive_protein", 3.0, np.nan, 5.0),
            ("s1", ENROLL + 10 * DAY, "creatinine", 1.5, 0.6, 1.3),
            ("s1", ENROLL + 10 * DAY, "c_reactive_protein", 40.0, np.nan, 5.0),
            ("s1", ENROLL + 20 * DAY, "hemoglobin", 11.0, 12.0, 17.5),
            ("s1", ENROLL + 40 * DAY, "creatinine", 1.3, 0.6, 1.3),
            ("s2", ENROLL + 2 * DAY, "glucose", 110.0, 70.0, 99.0),
            ("s2", ENROLL + 3 * DAY, "glucose", 95.0, 70.0, 99.0),
        ]
    )
    subjects = _subjects(("s1", "F", 60, ENROLL), ("s2", "M", 45, ENROLL))
    return labs, subjects


def test_output_columns_are_the_contract():
    expected = []
    for analyte, unit in (
        ("creatinine", "mg_dl"), ("c_reactive_protein", "mg_l"), ("glucose", "mg_dl"), ("hemoglobin", "g_dl"),
        ("potassium", "mmol_l"), ("sodium", "mmol_l"), ("white_blood_cells", "thousand_per_ul"),
        ("platelets", "thousand_per_ul"),
    ):
        expected += [f"{analyte}_last_{unit}", f"{analyte}_baseline_{unit}", f"{analyte}_slope_30d_{unit}_per_day",
                     f"{analyte}_out_of_range_flag"]
    expected.append("egfr_ckd_epi_2021_ml_min_1_73m2")
    assert labs_feature_columns() == tuple(expected)
    labs, subjects = _example()
    table = labs_features(labs, subjects)
    assert list(table.columns) == ["subject_id", "event_timestamp", *expected, "missing_reason"]
    assert str(table["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(table[c].dtype == np.float64 for c in expected)
    assert labs_feature_columns(("glucose",)) == (
        "glucose_last_mg_dl", "glucose_baseline_mg_dl", "glucose_slope_30d_mg_dl_per_day", "glucose_out_of_range_flag",
    )


def test_canonical_units_match_the_validation_table():
    assert CANONICAL_UNIT_BY_ANALYTE == VALIDATION_UNITS


def test_one_row_per_subject_and_collection_time():
    labs, subjects = _example()
    table = labs_features(labs, subjects)
    assert table[["subject_id", "event_timestamp"]].apply(tuple, axis=1).tolist() == [
        ("s1", ENROLL - 5 * DAY), ("s1", ENROLL), ("s1", ENROLL + 10 * DAY), ("s1", ENROLL + 20 * DAY),
        ("s1", ENROLL + 40 * DAY), ("s2", ENROLL + 2 * DAY), ("s2", ENROLL + 3 * DAY),
    ]


def test_last_baseline_slope_flag_and_egfr_values():
    labs, subjects = _example()
    table = labs_features(labs, subjects).set_index(["subject_id", "event_timestamp"])
    row = table.loc[("s1", ENROLL + 20 * DAY)]
    assert row["creatinine_last_mg_dl"] == 1.5
    assert row["creatinine_baseline_mg_dl"] == 1.0  # the result exactly at enrollment
    assert row["creatinine_out_of_range_flag"] == 1.0  # 1.5 > 1.3
    # creatinine in (day -10, day 20]: (-5, 0.9), (0, 1.0), (10, 1.5): Sxy 14.5/3, Sxx 350/3 -> 0.04143 mg/dL per day
    assert row["creatinine_slope_30d_mg_dl_per_day"] == pytest.approx(14.5 / 350)
    assert row["c_reactive_protein_last_mg_l"] == 40.0
    assert row["c_reactive_protein_baseline_mg_l"] == 3.0
    assert row["c_reactive_protein_out_of_range_flag"] == 1.0
    assert row["hemoglobin_last_g_dl"] == 11.0
    assert row["hemoglobin_out_of_range_flag"] == 1.0
    assert np.isnan(row["hemoglobin_baseline_g_dl"])
    # eGFR from the last creatinine (day 10) at the age then: 60 + 10 / 365.25 years
    assert row["egfr_ckd_epi_2021_ml_min_1_73m2"] == pytest.approx(_egfr_by_hand(1.5, 60 + 10 / 365.25, True))
    reason = row["missing_reason"]
    assert "no result at or before enrollment: hemoglobin" in reason
    assert "fewer than 2 result times for slope in 30d window: hemoglobin" in reason

    last = table.loc[("s1", ENROLL + 40 * DAY)]
    # the 30-day window (day 10, day 40] holds only the day-40 creatinine: the day-10 one is exactly 30 days back
    assert np.isnan(last["creatinine_slope_30d_mg_dl_per_day"])
    assert last["creatinine_out_of_range_flag"] == 0.0  # 1.3 is on the upper bound
    s2 = table.loc[("s2", ENROLL + 3 * DAY)]
    assert s2["glucose_slope_30d_mg_dl_per_day"] == pytest.approx(-15.0)
    assert s2["glucose_out_of_range_flag"] == 0.0
    assert np.isnan(s2["glucose_baseline_mg_dl"])  # first glucose after enrollment


def test_slope_window_against_a_direct_fit():
    days = np.array([0, 2, 5, 9, 14, 20, 27, 33, 41, 50, 52], dtype=float)
    values = 1.0 + 0.02 * days + np.sin(days) * 0.1
    labs = _labs([("s1", ENROLL + d * DAY, "creatinine", v) for d, v in zip(days, values, strict=True)])
    table = labs_features(labs, _subjects(("s1", "M", 50, ENROLL)), analytes=("creatinine",))
    for i, day in enumerate(days):
        inside = (days > day - 30) & (days <= day)
        expected = np.polyfit(days[inside], values[inside], 1)[0] if inside.sum() >= 2 else np.nan
        np.testing.assert_allclose(table["creatinine_slope_30d_mg_dl_per_day"].iloc[i], expected, rtol=1e-9,
                                   equal_nan=True)


def test_no_future_leakage():
    labs, subjects = _example()
    table = labs_features(labs, subjects)
    for _, row in table.iterrows():
        known = labs[labs["timestamp"] <= row["event_timestamp"]]
        again = labs_features(known, subjects)
        same = again[(again["subject_id"] == row["subject_id"]) & (again["event_timestamp"] == row["event_timestamp"])]
        pd.testing.assert_series_equal(same.iloc[0], row, check_names=False)


def test_baseline_is_not_defined_before_enrollment():
    labs, subjects = _example()
    row = labs_features(labs, subjects).iloc[0]  # day -5
    assert row["creatinine_last_mg_dl"] == 0.9
    assert np.isnan(row["creatinine_baseline_mg_dl"])
    assert "before enrollment: baseline not yet defined" in row["missing_reason"]


def test_missing_subject_and_sex_x_give_nan_and_reasons():
    labs = _labs([("s9", ENROLL, "creatinine", 1.0), ("s3", ENROLL, "creatinine", 1.0)])
    subjects = _subjects(("s3", "X", 50, ENROLL))
    table = labs_features(labs, subjects, analytes=("creatinine",)).set_index("subject_id")
    assert np.isnan(table.loc["s9", "creatinine_baseline_mg_dl"])
    assert np.isnan(table.loc["s9", "egfr_ckd_epi_2021_ml_min_1_73m2"])
    assert table.loc["s9", "missing_reason"].startswith("subject not in subjects")
    assert table.loc["s3", "creatinine_baseline_mg_dl"] == 1.0
    assert np.isnan(table.loc["s3", "egfr_ckd_epi_2021_ml_min_1_73m2"])
    assert "egfr: sex 'X' (equation has F and M coefficients only)" in table.loc["s3", "missing_reason"]
    assert "no reference range for last result: creatinine" in table.loc["s3", "missing_reason"]


def test_results_in_a_non_canonical_unit_are_ignored_and_reported():
    labs = _labs(
        [
            ("s1", ENROLL, "creatinine", 1.0, 0.6, 1.3),
            ("s1", ENROLL + DAY, "creatinine", 97.0, 53.0, 115.0, "umol/L"),
        ]
    )
    table = labs_features(labs, _subjects(("s1", "M", 50, ENROLL)), analytes=("creatinine",))
    row = table.iloc[1]
    assert row["creatinine_last_mg_dl"] == 1.0
    assert "result in non-canonical unit ignored: creatinine 'umol/L'" in row["missing_reason"]


def test_complete_rows_have_no_reason():
    labs = _labs(
        [
            ("s1", ENROLL - DAY, "creatinine", 1.0, 0.6, 1.3),
            ("s1", ENROLL + DAY, "creatinine", 1.1, 0.6, 1.3),
        ]
    )
    table = labs_features(labs, _subjects(("s1", "M", 50, ENROLL)), analytes=("creatinine",))
    assert table["missing_reason"].iloc[1] is None
    assert not table.iloc[1][list(labs_feature_columns(("creatinine",)))].isna().any()


def test_inputs_are_not_mutated():
    labs, subjects = _example()
    labs_before, subjects_before = labs.copy(deep=True), subjects.copy(deep=True)
    labs_features(labs, subjects)
    pd.testing.assert_frame_equal(labs, labs_before)
    pd.testing.assert_frame_equal(subjects, subjects_before)
    values = np.array([1.0, 2.0])
    change_from_baseline(values, np.array([0.5, 0.5]))
    np.testing.assert_array_equal(values, [1.0, 2.0])


def test_empty_labs_give_an_empty_table_with_the_columns():
    labs, subjects = _example()
    table = labs_features(labs.iloc[:0], subjects)
    assert table.empty
    assert list(table.columns) == ["subject_id", "event_timestamp", *labs_feature_columns(), "missing_reason"]


def test_contract_violations_are_refused_with_a_fix():
    labs, subjects = _example()
    with pytest.raises(ValueError, match="timezone-aware"):
        labs_features(labs.assign(timestamp=labs["timestamp"].dt.tz_localize(None)), subjects)
    with pytest.raises(ValueError, match="unknown analyte"):
        labs_features(labs, subjects, analytes=("creatinine", "unobtainium"))
    with pytest.raises(ValueError, match="more than once"):
        labs_features(labs, pd.concat([subjects, subjects]))
    with pytest.raises(ValueError, match="lacks the canonical column"):
        labs_features(labs.drop(columns=["value"]), subjects)


def test_default_analytes():
    assert DEFAULT_LAB_ANALYTES == (
        "creatinine", "c_reactive_protein", "glucose", "hemoglobin", "potassium", "sodium", "white_blood_cells",
        "platelets",
    )


def test_no_subjects_at_all_gives_nan_baselines_and_egfr():
    labs, subjects = _example()
    table = labs_features(labs, subjects.iloc[:0])
    assert table["creatinine_baseline_mg_dl"].isna().all()
    assert table["egfr_ckd_epi_2021_ml_min_1_73m2"].isna().all()
    assert table["missing_reason"].str.startswith("subject not in subjects").all()
    assert table["creatinine_last_mg_dl"].notna().any()


def test_subject_without_enrollment_date_has_no_baseline_but_an_egfr():
    labs = _labs([("s1", ENROLL, "creatinine", 1.0, 0.6, 1.3)])
    subjects = _subjects(("s1", "M", 50, ENROLL)).assign(enrollment_date=pd.NaT)
    row = labs_features(labs, subjects, analytes=("creatinine",)).iloc[0]
    assert np.isnan(row["creatinine_baseline_mg_dl"])
    assert "subject has no enrollment_date: baseline undefined" in row["missing_reason"]
    assert row["egfr_ckd_epi_2021_ml_min_1_73m2"] == pytest.approx(_egfr_by_hand(1.0, 50, False))


def test_enrollment_comparison_keeps_nanoseconds():
    just_after = ENROLL + pd.Timedelta(nanoseconds=1)
    labs = _labs([("s1", ENROLL - DAY, "creatinine", 0.8), ("s1", just_after, "creatinine", 1.0)])
    table = labs_features(labs, _subjects(("s1", "M", 50, ENROLL)), analytes=("creatinine",))
    assert table["creatinine_baseline_mg_dl"].iloc[1] == 0.8  # 1 ns after enrollment is not baseline


def test_duplicate_results_at_one_time_the_last_listed_wins():
    labs = _labs([("s1", ENROLL, "creatinine", 1.0), ("s1", ENROLL, "creatinine", 1.2)])
    table = labs_features(labs, _subjects(("s1", "M", 50, ENROLL)), analytes=("creatinine",))
    assert len(table) == 1
    assert table["creatinine_last_mg_dl"].iloc[0] == 1.2
    assert table["creatinine_baseline_mg_dl"].iloc[0] == 1.2
    assert np.isnan(table["creatinine_slope_30d_mg_dl_per_day"].iloc[0])  # one distinct time


def test_egfr_uses_the_age_at_the_creatinine_collection():
    two_years = pd.Timedelta(days=2 * 365.25)
    labs = _labs([("s1", ENROLL + two_years, "creatinine", 1.0)])
    row = labs_features(labs, _subjects(("s1", "F", 60, ENROLL)), analytes=("creatinine",)).iloc[0]
    assert row["egfr_ckd_epi_2021_ml_min_1_73m2"] == pytest.approx(_egfr_by_hand(1.0, 62, True), rel=1e-12)


def test_without_creatinine_there_is_no_egfr_column():
    labs, subjects = _example()
    table = labs_features(labs, subjects, analytes=("glucose", "hemoglobin"))
    assert "egfr_ckd_epi_2021_ml_min_1_73m2" not in table.columns
    assert len(table) == 3  # s1 day 20, s2 days 2 and 3
