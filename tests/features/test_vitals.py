"""Vital-sign biomarkers: NEWS2 against its published chart, rolling windows, desaturations, hourly table.

The NEWS2 expectations are transcribed from Chart 1 ("The NEWS scoring system") and Chart 2
("NEWS thresholds and triggers") of: Royal College of Physicians. National Early Warning Score
(NEWS) 2: Standardising the assessment of acute-illness severity in the NHS. Updated report of a
working party. London: RCP, December 2017.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.biomarkers.vitals import (
    VITALS_HOURLY_FEATURE_COLUMNS,
    desaturation_event_onsets,
    desaturation_events_count,
    least_squares_slope_per_h,
    news2_air_or_oxygen_points,
    news2_consciousness_points,
    news2_parameter_points,
    news2_pulse_points,
    news2_respiration_rate_points,
    news2_risk_band,
    news2_score,
    news2_spo2_scale_1_points,
    news2_spo2_scale_2_points,
    news2_systolic_bp_points,
    news2_temperature_points,
    rolling_window_statistics,
    spo2_baseline_percent,
    vitals_hourly_features,
)

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")

# --- Chart 1, transcribed: (lowest, highest, points) with inclusive bounds as printed -------------

RESPIRATION_RATE_CHART = [(0, 8, 3), (9, 11, 1), (12, 20, 0), (21, 24, 2), (25, 99, 3)]
SPO2_SCALE_1_CHART = [(0, 91, 3), (92, 93, 2), (94, 95, 1), (96, 100, 0)]
SYSTOLIC_BP_CHART = [(0, 90, 3), (91, 100, 2), (101, 110, 1), (111, 219, 0), (220, 400, 3)]
PULSE_CHART = [(0, 40, 3), (41, 50, 1), (51, 90, 0), (91, 110, 1), (111, 130, 2), (131, 300, 3)]
TEMPERATURE_CHART = [(25.0, 35.0, 3), (35.1, 36.0, 1), (36.1, 38.0, 0), (38.1, 39.0, 1), (39.1, 45.0, 2)]
SPO2_SCALE_2_AIR_CHART = [(0, 83, 3), (84, 85, 2), (86, 87, 1), (88, 92, 0), (93, 100, 0)]
SPO2_SCALE_2_OXYGEN_CHART = [(0, 83, 3), (84, 85, 2), (86, 87, 1), (88, 92, 0), (93, 94, 1), (95, 96, 2), (97, 100, 3)]


def _chart_points(chart, value):
    matches = [points for low, high, points in chart if low <= value <= high]
    assert len(matches) == 1, f"chart transcription does not cover {value} exactly once"
    return matches[0]


@pytest.mark.parametrize(
    ("function", "chart", "values"),
    [
        (news2_respiration_rate_points, RESPIRATION_RATE_CHART, range(0, 100)),
        (news2_spo2_scale_1_points, SPO2_SCALE_1_CHART, range(0, 101)),
        (news2_systolic_bp_points, SYSTOLIC_BP_CHART, range(0, 401)),
        (news2_pulse_points, PULSE_CHART, range(0, 301)),
        (news2_temperature_points, TEMPERATURE_CHART, [round(25.0 + 0.1 * i, 1) for i in range(201)]),
    ],
    ids=["respiration_rate", "spo2_scale_1", "systolic_bp", "pulse", "temperature"],
)
def test_every_charted_value_scores_as_the_chart(function, chart, values):
    values = list(values)
    expected = [_chart_points(chart, v) for v in values]
    np.testing.assert_array_equal(function(np.array(values, dtype=float)), expected)


@pytest.mark.parametrize(
    ("value", "points"),
    [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (8.4, 3), (8.5, 1), (20.49, 0), (20.5, 2)],
)
def test_respiration_rate_band_edges(value, points):
    assert news2_respiration_rate_points(value) == points


@pytest.mark.parametrize(("value", "points"), [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (95.5, 0)])
def test_spo2_scale_1_band_edges(value, points):
    assert news2_spo2_scale_1_points(value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (90.4, 3), (219.5, 3)],
)
def test_systolic_bp_band_edges(value, points):
    assert news2_systolic_bp_points(value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)],
)
def test_pulse_band_edges(value, points):
    assert news2_pulse_points(value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2),
        (35.04, 3), (35.06, 1), (38.04, 0), (38.06, 1),
    ],
)
def test_temperature_band_edges(value, points):
    assert news2_temperature_points(value) == points


@pytest.mark.parametrize("spo2", range(70, 101))
@pytest.mark.parametrize("on_oxygen", [False, True])
def test_spo2_scale_2_every_value_scores_as_the_chart(spo2, on_oxygen):
    chart = SPO2_SCALE_2_OXYGEN_CHART if on_oxygen else SPO2_SCALE_2_AIR_CHART
    assert news2_spo2_scale_2_points(spo2, on_oxygen) == _chart_points(chart, spo2)


@pytest.mark.parametrize(
    ("spo2", "on_oxygen", "points"),
    [
        (83, False, 3), (84, True, 2), (85, False, 2), (86, True, 1), (87, False, 1),
        (88, True, 0), (92, True, 0), (92, False, 0),  # the 88-92 % target range scores 0 on air or oxygen
        (93, False, 0), (97, False, 0), (100, False, 0),  # high SpO2 on air scores 0
        (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2), (97, True, 3), (100, True, 3),
    ],
)
def test_spo2_scale_2_band_edges(spo2, on_oxygen, points):
    assert news2_spo2_scale_2_points(spo2, on_oxygen) == points


def test_spo2_scale_2_needs_the_oxygen_status_only_above_92():
    points = news2_spo2_scale_2_points([85, 93, np.nan], [None, None, True])
    assert points[0] == 2
    assert np.isnan(points[1]) and np.isnan(points[2])


@pytest.mark.parametrize(("oxygen", "points"), [(True, 2), (False, 0), (np.True_, 2)])
def test_air_or_oxygen(oxygen, points):
    assert news2_air_or_oxygen_points(oxygen) == points


def test_air_or_oxygen_missing_and_invalid():
    assert np.isnan(news2_air_or_oxygen_points(pd.Series([True, None], dtype="boolean"))[1])
    with pytest.raises(ValueError, match="supplemental_oxygen must be a boolean"):
        news2_air_or_oxygen_points(["yes"])


@pytest.mark.parametrize(("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3), (" a ", 0)])
def test_consciousness_new_confusion_scores_like_vpu(level, points):
    assert news2_consciousness_points(level) == points


@pytest.mark.parametrize("level", [None, np.nan, "X", ""])
def test_consciousness_missing_or_unknown_is_nan(level):
    assert np.isnan(news2_consciousness_points([level])[0])


# --- aggregate score and risk band (Chart 2) ------------------------------------------------


def test_worked_example_scale_1():
    # RR 22 -> 2, SpO2 95 % (Scale 1) -> 1, air -> 0, systolic 105 -> 1, pulse 95 -> 1, alert -> 0, 38.3 -> 1
    points = news2_parameter_points(22, 95, False, 105, 95, "A", 38.3)
    assert points.iloc[0].tolist() == [2, 1, 0, 1, 1, 0, 1]
    score = news2_score(22, 95, False, 105, 95, "A", 38.3)
    np.testing.assert_array_equal(score, [6.0])
    assert news2_risk_band(score, points.max(axis=1)).tolist() == ["medium"]


def test_worked_example_scale_2_versus_scale_1():
    # a COPD patient at 90 % on oxygen: in target on Scale 2 (0), but 3 on Scale 1
    args = (18, 90, True, 130, 88, "A", 37.2)
    assert news2_score(*args, spo2_scale=2)[0] == 2  # oxygen 2, all else 0
    assert news2_score(*args, spo2_scale=1)[0] == 5  # + SpO2 3
    # 97 % on oxygen is over-oxygenation on Scale 2: 3 points
    assert news2_score(18, 97, True, 130, 88, "A", 37.2, spo2_scale=2)[0] == 5


def test_highest_possible_score_is_20_and_high():
    points = news2_parameter_points(5, 80, True, 80, 150, "U", 34.0)
    assert points.iloc[0].tolist() == [3, 3, 2, 3, 3, 3, 3]
    score = news2_score(5, 80, True, 80, 150, "U", 34.0)
    assert score[0] == 20
    assert news2_risk_band(score, points.max(axis=1))[0] == "high"


def test_score_is_vectorised_and_accepts_per_observation_scales():
    score = news2_score(
        np.array([16, 22, 26]),
        np.array([97, 95, 90]),
        np.array([False, False, True]),
        np.array([120, 105, 95]),
        np.array([70, 95, 120]),
        np.array(["A", "A", "A"]),
        np.array([37.0, 38.3, 39.5]),
        spo2_scale=np.array([1, 1, 2]),
    )
    # row 3: RR 3, SpO2 90 on O2 Scale 2 -> 0, O2 2, BP 2, pulse 2, A 0, 39.5 -> 2
    np.testing.assert_array_equal(score, [0, 6, 11])


def test_missing_parameter_gives_nan_total_never_a_partial_sum():
    score = news2_score(
        [16, 16, 16, 16], [97, np.nan, 97, 97], [False, False, None, False], [120] * 4, [70] * 4,
        ["A", "A", "A", None], [37.0] * 4,
    )
    assert score[0] == 0
    assert np.isnan(score[1:]).all()
    assert news2_risk_band(score, [0, 0, 0, 0]).tolist() == ["low", None, None, None]


def test_invalid_scale_is_refused():
    with pytest.raises(ValueError, match="spo2_scale must be 1 or 2"):
        news2_score(16, 97, False, 120, 70, "A", 37.0, spo2_scale=3)


@pytest.mark.parametrize(
    ("score", "max_points", "band"),
    [
        (0, 0, "low"), (4, 2, "low"), (3, 3, "low_medium"), (4, 3, "low_medium"),
        (5, 2, "medium"), (5, 3, "medium"), (6, 3, "medium"), (7, 2, "high"), (7, 3, "high"), (20, 3, "high"),
    ],
)
def test_risk_band_thresholds(score, max_points, band):
    assert news2_risk_band([score], [max_points])[0] == band


def test_a_single_red_parameter_makes_low_medium():
    # new confusion alone: 3 points, otherwise normal
    points = news2_parameter_points(16, 97, False, 120, 70, "C", 37.0)
    score = points.sum(axis=1)
    assert score[0] == 3
    assert news2_risk_band(score, points.max(axis=1))[0] == "low_medium"


# --- rolling windows ------------------------------------------------------------------------


def _vitals_frame(times, subject="s1", **columns):
    n = len(times)
    defaults = {
        "heart_rate_bpm": np.full(n, 70.0),
        "spo2_percent": np.full(n, 97.0),
        "respiratory_rate_per_min": np.full(n, 16.0),
        "temperature_deg_c": np.full(n, 37.0),
        "systolic_bp_mmhg": np.full(n, 120.0),
        "consciousness_avpu": np.full(n, "A", dtype=object),
        "supplemental_oxygen": np.zeros(n, dtype=bool),
    }
    defaults.update(columns)
    return pd.DataFrame({"subject_id": [subject] * n, "timestamp": pd.DatetimeIndex(times), **defaults})


def _random_vitals(seed=7):
    rng = np.random.default_rng(seed)
    frames = []
    for subject in ("s1", "s2"):
        n = 80
        minutes = np.sort(rng.uniform(0, 40 * 60, n))
        times = T0 + pd.to_timedelta(minutes, unit="min")
        frame = _vitals_frame(
            times,
            subject,
            heart_rate_bpm=rng.normal(85, 12, n),
            spo2_percent=rng.normal(95, 2, n).round(),
            respiratory_rate_per_min=rng.normal(17, 4, n).round(),
            temperature_deg_c=rng.normal(37.2, 0.6, n).round(1),
            systolic_bp_mmhg=rng.normal(120, 18, n).round(),
            consciousness_avpu=rng.choice(np.array(list("AAAACV"), dtype=object), n),
            supplemental_oxygen=rng.random(n) < 0.3,
        )
        for column in ("heart_rate_bpm", "spo2_percent", "temperature_deg_c"):
            frame.loc[rng.random(n) < 0.15, column] = np.nan
        frames.append(frame)
    # a gap of several hours for s2 so that some 1 h windows are empty
    frame = pd.concat(frames, ignore_index=True)
    in_gap = frame["timestamp"].between(T0 + pd.Timedelta(hours=20), T0 + pd.Timedelta(hours=27))
    gap = (frame["subject_id"] == "s2") & in_gap
    return frame.loc[~gap].reset_index(drop=True)


def _naive_window(frame, subject, end, hours, column):
    rows = frame[(frame["subject_id"] == subject) & (frame["timestamp"] >= end - pd.Timedelta(hours=hours))
                 & (frame["timestamp"] < end)]
    values = rows[column].to_numpy(dtype=float)
    keep = ~np.isnan(values)
    values, times = values[keep], rows["timestamp"][keep]
    if len(values) == 0:
        return np.nan, np.nan, np.nan, np.nan
    hours_since = ((times - times.min()) / pd.Timedelta(hours=1)).to_numpy()
    slope = np.polyfit(hours_since, values, 1)[0] if len(np.unique(hours_since)) >= 2 else np.nan
    return values.mean(), values.min(), values.max(), slope


def test_rolling_windows_match_a_naive_reference():
    vitals = _random_vitals()
    table = vitals_hourly_features(vitals)
    scored = vitals.assign(news2=news2_score(
        vitals["respiratory_rate_per_min"], vitals["spo2_percent"], vitals["supplemental_oxygen"],
        vitals["systolic_bp_mmhg"], vitals["heart_rate_bpm"], vitals["consciousness_avpu"], vitals["temperature_deg_c"],
    ))
    assert scored["news2"].notna().sum() > 20  # the reference is not vacuous
    signals = [
        ("heart_rate_bpm", "heart_rate", "bpm"),
        ("spo2_percent", "spo2", "percent"),
        ("respiratory_rate_per_min", "respiratory_rate", "per_min"),
        ("temperature_deg_c", "temperature", "deg_c"),
        ("systolic_bp_mmhg", "systolic_bp", "mmhg"),
    ]
    for _, row in table.iterrows():
        for column, signal, unit in signals:
            for hours in (1, 24):
                mean, low, high, slope = _naive_window(vitals, row["subject_id"], row["event_timestamp"], hours, column)
                got = [row[f"{signal}_{s}_{hours}h_{unit}"] for s in ("mean", "min", "max")]
                np.testing.assert_allclose(got, [mean, low, high], rtol=1e-10, equal_nan=True)
                np.testing.assert_allclose(
                    row[f"{signal}_slope_{hours}h_{unit}_per_h"], slope, rtol=1e-7, atol=1e-8, equal_nan=True
                )
        # NEWS2 maxima against per-observation scores
        for hours in (1, 24):
            rows = scored[(scored["subject_id"] == row["subject_id"])
                          & (scored["timestamp"] >= row["event_timestamp"] - pd.Timedelta(hours=hours))
                          & (scored["timestamp"] < row["event_timestamp"])]
            expected = rows["news2"].max() if rows["news2"].notna().any() else np.nan
            np.testing.assert_allclose(row[f"news2_score_max_{hours}h"], expected, equal_nan=True)


def test_one_row_per_subject_hour_with_observations_at_the_end_of_the_hour():
    vitals = _random_vitals()
    table = vitals_hourly_features(vitals)
    expected = (
        vitals.assign(event_timestamp=vitals["timestamp"].dt.floor("h") + pd.Timedelta(hours=1))
        [["subject_id", "event_timestamp"]].drop_duplicates().sort_values(["subject_id", "event_timestamp"])
    )
    pd.testing.assert_frame_equal(
        table[["subject_id", "event_timestamp"]].reset_index(drop=True), expected.reset_index(drop=True),
        check_dtype=False,
    )
    assert str(table["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(table.columns) == ["subject_id", "event_timestamp", *VITALS_HOURLY_FEATURE_COLUMNS, "missing_reason"]
    assert all(table[c].dtype == np.float64 for c in VITALS_HOURLY_FEATURE_COLUMNS)


def test_output_columns_are_the_contract():
    expected = []
    for signal, unit in (("heart_rate", "bpm"), ("spo2", "percent"), ("respiratory_rate", "per_min"),
                         ("temperature", "deg_c"), ("systolic_bp", "mmhg")):
        for window in ("1h", "24h"):
            expected += [f"{signal}_mean_{window}_{unit}", f"{signal}_min_{window}_{unit}",
                         f"{signal}_max_{window}_{unit}", f"{signal}_slope_{window}_{unit}_per_h"]
    expected += ["news2_score_max_1h", "news2_score_max_24h", "desaturation_events_24h_count"]
    assert list(VITALS_HOURLY_FEATURE_COLUMNS) == expected
    for name in ("heart_rate_mean_1h_bpm", "spo2_min_1h_percent", "respiratory_rate_mean_1h_per_min",
                 "temperature_max_1h_deg_c", "systolic_bp_min_1h_mmhg", "heart_rate_slope_24h_bpm_per_h",
                 "spo2_slope_24h_percent_per_h"):
        assert name in VITALS_HOURLY_FEATURE_COLUMNS


def test_slope_is_in_units_per_hour():
    times = T0 + pd.to_timedelta(np.arange(0, 30 * 60, 10), unit="min")
    hours = (times - T0) / pd.Timedelta(hours=1)
    vitals = _vitals_frame(times, heart_rate_bpm=60 + 6.0 * hours, temperature_deg_c=36.5 + 0.1 * hours)
    table = vitals_hourly_features(vitals)
    np.testing.assert_allclose(table["heart_rate_slope_1h_bpm_per_h"], 6.0, rtol=1e-9)
    np.testing.assert_allclose(table["heart_rate_slope_24h_bpm_per_h"], 6.0, rtol=1e-9)
    np.testing.assert_allclose(table["temperature_slope_24h_deg_c_per_h"], 0.1, rtol=1e-9)
    np.testing.assert_allclose(table["spo2_slope_24h_percent_per_h"], 0.0, atol=1e-12)
    assert least_squares_slope_per_h(times, 60 + 6.0 * hours) == pytest.approx(6.0)


def test_slope_keeps_its_precision_far_from_the_epoch_and_after_long_records():
    # one year of quarter-hourly readings: the window sums are taken relative to each window's end
    times = T0 + pd.to_timedelta(np.arange(0, 365 * 24 * 4) * 15, unit="min")
    hours = ((times - T0) / pd.Timedelta(hours=1)).to_numpy()
    stats = rolling_window_statistics(np.full(len(times), "s1"), times, 80.0 + 0.5 * (hours % 48), 24)
    # within the first half of each 48 h cycle the signal rises 0.5 bpm per hour
    end_hours = ((stats["event_timestamp"] - T0) / pd.Timedelta(hours=1)).to_numpy()
    rising = (end_hours % 48 >= 24) & (end_hours >= 24)
    np.testing.assert_allclose(stats.loc[rising, "slope_per_h"], 0.5, rtol=1e-9)


def test_windows_use_only_observations_before_the_end_of_the_hour():
    times = [T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(hours=1)]  # the second starts the next hour
    vitals = _vitals_frame(times, heart_rate_bpm=np.array([70.0, 130.0]))
    table = vitals_hourly_features(vitals)
    assert table["event_timestamp"].tolist() == [T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2)]
    assert table["heart_rate_max_1h_bpm"].tolist() == [70.0, 130.0]
    assert table["heart_rate_max_24h_bpm"].tolist() == [70.0, 130.0]
    # later data never changes an earlier row
    more = pd.concat([vitals, _vitals_frame([T0 + pd.Timedelta(hours=5)], heart_rate_bpm=np.array([200.0]))])
    pd.testing.assert_frame_equal(vitals_hourly_features(more).iloc[:2], table)


def test_24h_window_drops_observations_older_than_24_hours():
    times = [T0 + pd.Timedelta(minutes=10), T0 + pd.Timedelta(hours=24, minutes=10)]
    vitals = _vitals_frame(times, heart_rate_bpm=np.array([50.0, 100.0]))
    table = vitals_hourly_features(vitals)
    # the row ending 25:00 covers [01:00, 25:00): the 00:10 reading is out
    assert table["heart_rate_mean_24h_bpm"].tolist() == [50.0, 100.0]


def test_non_utc_timestamps_are_converted_to_utc():
    local = pd.DatetimeIndex([pd.Timestamp("2024-03-01 09:30", tz="Europe/Berlin")])
    table = vitals_hourly_features(_vitals_frame(local))
    assert table["event_timestamp"].tolist() == [pd.Timestamp("2024-03-01 09:00", tz="UTC")]


# --- desaturation events --------------------------------------------------------------------


def _hourly_spo2(values):
    times = T0 + pd.to_timedelta(np.arange(len(values)), unit="h")
    return times, np.asarray(values, dtype=float)


def test_baseline_is_the_median_of_the_preceding_window_without_the_reading_itself():
    times, spo2 = _hourly_spo2([97, 96, 98, 90, 97, 97])
    baseline = spo2_baseline_percent(times, spo2, baseline_window_h=4)
    assert np.isnan(baseline[0])
    np.testing.assert_allclose(baseline[1:], [97, 96.5, 97, 96.5, 96.5])


def test_desaturation_events_are_counted_once_per_run_of_n_readings():
    times, spo2 = _hourly_spo2(
        [97, 97, 97, 97, 93, 93, 97, 97, 97, 97, 97, 93, 97, 97, 97, 97, 97, 89, 88, 89, 97]
        #              ^ 1st event: >= 3 below baseline 97, twice  ^ single reading: no event
        #                                                             ^ 2nd event: below 90, three readings
    )
    onsets = desaturation_event_onsets(times, spo2)
    assert np.flatnonzero(onsets).tolist() == [5, 18]  # the reading that completes each run of 2
    assert desaturation_events_count(times, spo2) == 2
    assert desaturation_events_count(times, spo2, min_consecutive_observations=1) == 3
    assert desaturation_events_count(times, spo2, min_consecutive_observations=3) == 1


def test_drop_below_baseline_needs_three_percentage_points():
    times, spo2 = _hourly_spo2([97, 97, 97, 95, 97, 97, 97, 94, 94])
    assert desaturation_events_count(times, spo2) == 1  # 95 is only 2 below baseline 97; 94 is 3 below


def test_a_sustained_step_down_is_one_event():
    times, spo2 = _hourly_spo2([98] * 4 + [94] * 10)
    assert desaturation_events_count(times, spo2) == 1


def test_missing_readings_are_skipped_and_input_order_does_not_matter():
    times, spo2 = _hourly_spo2([97, 97, 97, 93, np.nan, 93, 97])
    assert np.flatnonzero(desaturation_event_onsets(times, spo2)).tolist() == [5]
    order = np.array([6, 2, 0, 5, 1, 4, 3])
    shuffled = desaturation_event_onsets(times[order], spo2[order])
    assert np.flatnonzero(shuffled).tolist() == [3]  # position of original reading 5


def test_desaturation_count_in_the_hourly_table():
    times, spo2 = _hourly_spo2([97, 97, 97, 97, 93, 93, 97, 97, 89, 88] + [97] * 20)
    vitals = _vitals_frame(times + pd.Timedelta(minutes=5), spo2_percent=spo2)
    table = vitals_hourly_features(vitals).set_index("event_timestamp")
    counts = table["desaturation_events_24h_count"]
    end = T0 + pd.Timedelta(hours=1)
    assert counts[end + pd.Timedelta(hours=4)] == 0  # first 93: not yet an event
    assert counts[end + pd.Timedelta(hours=5)] == 1  # second 93 confirms it
    assert counts[end + pd.Timedelta(hours=9)] == 2
    assert counts[end + pd.Timedelta(hours=28)] == 2  # event readings at 5 h and 9 h still inside 24 h
    assert counts[end + pd.Timedelta(hours=29)] == 1  # the 5 h confirmation has left the window


def test_scale_2_uses_the_88_percent_threshold():
    times, spo2 = _hourly_spo2([89, 89, 89, 89])  # in the Scale 2 target range, steady
    vitals = _vitals_frame(times, spo2_percent=spo2)
    assert vitals_hourly_features(vitals, spo2_scale=1)["desaturation_events_24h_count"].iloc[-1] == 1
    assert vitals_hourly_features(vitals, spo2_scale=2)["desaturation_events_24h_count"].iloc[-1] == 0


# --- missing data, contract ----------------------------------------------------------------


def test_missing_data_gives_nan_and_a_reason_never_an_exception():
    times = [T0 + pd.Timedelta(minutes=10), T0 + pd.Timedelta(minutes=20), T0 + pd.Timedelta(hours=3, minutes=5)]
    vitals = _vitals_frame(
        times,
        spo2_percent=np.array([97.0, 96.0, np.nan]),
        consciousness_avpu=np.array(["A", None, "A"], dtype=object),
    )
    table = vitals_hourly_features(vitals)
    first, last = table.iloc[0], table.iloc[1]
    assert first["news2_score_max_1h"] == 0  # the first reading is complete
    assert first["missing_reason"] is None or "NEWS2" not in first["missing_reason"]
    assert first["heart_rate_slope_1h_bpm_per_h"] == pytest.approx(0.0)
    assert np.isnan(last["spo2_mean_1h_percent"]) and np.isnan(last["spo2_min_1h_percent"])
    assert np.isnan(last["news2_score_max_1h"])
    assert last["news2_score_max_24h"] == 0
    assert last["spo2_mean_24h_percent"] == pytest.approx(96.5)
    reason = last["missing_reason"]
    assert "no observation in 1h window: spo2_percent" in reason
    assert "no complete NEWS2 observation in 1h window" in reason
    assert "fewer than 2 observation times for slope in 1h window: heart_rate_bpm" in reason
    assert "24h window: spo2_percent" not in reason  # two SpO2 readings in the 24 h window


def test_a_subject_without_any_spo2_has_nan_desaturation_counts():
    times = [T0 + pd.Timedelta(minutes=10)]
    table = vitals_hourly_features(_vitals_frame(times, spo2_percent=np.array([np.nan])))
    assert np.isnan(table["desaturation_events_24h_count"].iloc[0])
    assert "no observation in 24h window: spo2_percent" in table["missing_reason"].iloc[0]


def test_complete_rows_have_no_reason():
    times = T0 + pd.to_timedelta([5, 35], unit="min")
    table = vitals_hourly_features(_vitals_frame(times))
    assert table["missing_reason"].tolist() == [None]
    assert not table[list(VITALS_HOURLY_FEATURE_COLUMNS)].isna().any(axis=None)


def test_inputs_are_not_mutated():
    vitals = _random_vitals()
    before = vitals.copy(deep=True)
    vitals_hourly_features(vitals, spo2_scale=2)
    pd.testing.assert_frame_equal(vitals, before)
    times, spo2 = _hourly_spo2([97, 93, 93])
    spo2_before = spo2.copy()
    desaturation_event_onsets(times, spo2)
    np.testing.assert_array_equal(spo2, spo2_before)


def test_empty_input_gives_an_empty_table_with_the_columns():
    table = vitals_hourly_features(_vitals_frame(pd.DatetimeIndex([], tz="UTC")))
    assert table.empty
    assert list(table.columns) == ["subject_id", "event_timestamp", *VITALS_HOURLY_FEATURE_COLUMNS, "missing_reason"]


def test_contract_violations_are_refused_with_a_fix():
    vitals = _vitals_frame([T0])
    with pytest.raises(ValueError, match="timezone-aware"):
        vitals_hourly_features(vitals.assign(timestamp=vitals["timestamp"].dt.tz_localize(None)))
    with pytest.raises(ValueError, match="lacks the canonical column"):
        vitals_hourly_features(vitals.drop(columns=["spo2_percent"]))
    with pytest.raises(ValueError, match="spo2_scale"):
        vitals_hourly_features(vitals, spo2_scale=3)


def test_rolling_window_statistics_on_its_own():
    times = pd.DatetimeIndex(["2024-03-01T00:10Z", None, "2024-03-01T02:30Z", "2024-03-01T02:50Z"])
    stats = rolling_window_statistics(["a", "a", None, "a"], times, [1.0, 2.0, 3.0, 5.0], 3)
    # hours 00, 01 (empty, on the grid), 02; the unplaced rows are left out
    assert stats["event_timestamp"].tolist() == [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3)]
    np.testing.assert_array_equal(stats["count"], [1, 1, 2])
    np.testing.assert_allclose(stats["mean"], [1.0, 1.0, 3.0])
    # (0:10, 1) and (2:50, 5): 4 over 2 h 40 min
    np.testing.assert_allclose(stats["slope_per_h"], [np.nan, np.nan, 4 / (8 / 3)])
    empty = rolling_window_statistics([], pd.DatetimeIndex([], tz="UTC"), [], 24)
    assert empty.empty and list(empty.columns) == [
        "subject_id", "event_timestamp", "count", "mean", "min", "max", "slope_per_h",
    ]
