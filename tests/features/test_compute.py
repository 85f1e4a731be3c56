"""Assembling one subject's feature tables from its curated frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.compute import Recording, SubjectInputs, compute_subject_tables, measured_rate_hz


def minute_frame(days: float, start: str = "2024-03-04T00:00:00Z") -> pd.DataFrame:
    minutes = int(days * 1440)
    timestamp = pd.date_range(start, periods=minutes, freq="min", tz="UTC")
    hour = timestamp.hour
    asleep = (hour >= 23) | (hour < 7)
    return pd.DataFrame({
        "subject_id": "S0001",
        "timestamp": timestamp,
        "steps_count": np.where(asleep, 0.0, 20.0),
        "heart_rate_bpm": np.where(asleep, 55.0, 75.0),
        "sleep_stage": np.where(asleep, "light", "wake"),
        "wear": True,
    })


def test_windows_still_open_at_the_end_of_the_data_are_not_reported() -> None:
    # Two full days and the morning of a third: the third day and its night are still open.
    inputs = SubjectInputs("S0001", {"minute_wearable": [Recording(minute_frame(2.4))]})
    tables = compute_subject_tables(inputs)
    daily = tables["daily_activity"]
    assert daily["event_timestamp"].max() == pd.Timestamp("2024-03-06T00:00:00Z")
    sleep = tables["sleep"]
    assert sleep["event_timestamp"].max() <= pd.Timestamp("2024-03-06T12:00:00Z")
    assert "daily_activity_missing_reason" in daily.columns


def test_two_recordings_of_one_window_keep_the_more_complete_row() -> None:
    full = minute_frame(1)
    thin = full.assign(heart_rate_bpm=np.nan)
    inputs = SubjectInputs("S0001", {"minute_wearable": [Recording(thin), Recording(full)]})
    daily = compute_subject_tables(inputs)["daily_activity"]
    assert len(daily) == 1
    assert daily["heart_rate_mean_1d_bpm"].notna().all()


def test_a_recording_skdh_cannot_use_gives_nan_rows_with_the_reason() -> None:
    timestamp = pd.date_range("2024-03-04T10:00:00Z", periods=500, freq="20ms", tz="UTC")
    accel = pd.DataFrame({"timestamp": timestamp, "accel_x_g": np.nan, "accel_y_g": 0.0, "accel_z_g": 1.0})
    inputs = SubjectInputs("S0001", {"accelerometry:lower_back": [Recording(accel, 50.0)]})
    gait = compute_subject_tables(inputs)["gait"]
    assert len(gait) == 1
    assert gait["gait_bouts_1d_count"].isna().all() or gait["gait_bouts_1d_count"].eq(0).all()
    assert isinstance(gait["gait_missing_reason"].iloc[0], str) and gait["gait_missing_reason"].iloc[0]


def test_measured_rate_corrects_clock_drift_within_five_percent_only() -> None:
    drifting = pd.Series(pd.date_range("2024-03-04", periods=1000, freq=pd.Timedelta(seconds=1 / 98.4), tz="UTC"))
    assert measured_rate_hz(drifting, 100.0) == pytest.approx(98.4, rel=1e-6)
    other = pd.Series(pd.date_range("2024-03-04", periods=1000, freq="40ms", tz="UTC"))
    assert measured_rate_hz(other, 100.0) == 100.0


def test_a_study_with_gait_off_computes_no_gait() -> None:
    from features.settings import BiomarkerSettings

    still = pd.DataFrame({"timestamp": pd.date_range("2024-03-04", periods=20 * 600, freq="50ms", tz="UTC"),
                          "accel_x_g": 0.0, "accel_y_g": 0.0, "accel_z_g": 1.0})
    recordings = {"accelerometry:lower_back": [Recording(still, sampling_rate_hz=20.0)]}
    off = SubjectInputs("S0001", recordings, settings=BiomarkerSettings(gait={"enabled": False}))
    assert compute_subject_tables(off, only={"gait"}) == {}
    on = SubjectInputs("S0001", recordings)
    assert set(compute_subject_tables(on, only={"gait"})) == {"gait"}
