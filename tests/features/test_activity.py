"""Activity biomarkers: steps and cadence from minute exports, activity levels through SKDH."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.biomarkers import activity
from features.biomarkers.activity import (
    ACCEL_ACTIVITY_DAILY_COLUMNS,
    MINUTE_ACTIVITY_DAILY_COLUMNS,
    accel_activity_daily_features,
    active_minutes_min,
    minute_activity_daily_features,
    peak_cadence_steps_per_min,
    skdh_activity_pipeline,
)

STANDARD_GRAVITY_M_S2 = 9.80665
DAY = pd.Timestamp("2024-03-05", tz="UTC")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pipelines.demo.generate import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), seed=7, n_subjects=6, days=3)


@pytest.fixture(scope="module")
def demo_wrist(demo) -> tuple[str, pd.DataFrame]:
    """The first demo wrist recording as a canonical frame (m/s^2 converted to g)."""
    path = next(demo.out_dir / f for f in demo.files if f.endswith("_wrist.parquet") and "resampled" not in f)
    raw = pd.read_parquet(path)
    frame = pd.DataFrame({"timestamp": pd.to_datetime(raw["time"], unit="s", utc=True)})
    for axis in "xyz":
        frame[f"accel_{axis}_g"] = (raw[axis] / STANDARD_GRAVITY_M_S2).astype(np.float32)
    return path.name.split("_")[0], frame


def _minutes(steps: np.ndarray, *, start: pd.Timestamp = DAY, subject_id: str = "S0001",
             wear: np.ndarray | None = None) -> pd.DataFrame:
    n = len(steps)
    return pd.DataFrame({
        "subject_id": subject_id,
        "timestamp": start + pd.to_timedelta(np.arange(n), unit="min"),
        "steps_count": np.asarray(steps, dtype=float),
        "heart_rate_bpm": 70.0,
        "sleep_stage": "wake",
        "wear": np.ones(n, dtype=bool) if wear is None else wear,
    })


def _accel_frame(acc_g: np.ndarray, fs_hz: float, start: pd.Timestamp) -> pd.DataFrame:
    stamps = start + pd.to_timedelta(np.arange(len(acc_g)) / fs_hz, unit="s")
    return pd.DataFrame({"timestamp": stamps, **{f"accel_{a}_g": acc_g[:, k].astype(np.float32)
                                                  for k, a in enumerate("xyz")}})


# --------------------------------------------------------------------------------------------
# Minute-level exports


def test_minute_features_exact_sums_threshold_edge_and_peaks():
    steps = np.zeros(1440)
    steps[60:70] = 99  # just under the moderate cadence threshold
    steps[200:210] = 100  # exactly at it: counts
    steps[500:510] = 120
    steps[900:910] = 130
    steps[1000:1100:10] = 5  # sporadic steps, 10 minutes
    wear = np.ones(1440, dtype=bool)
    wear[1200:1300] = False
    steps[1250] = 150  # a non-worn minute never counts, not even for the peaks
    out = minute_activity_daily_features(_minutes(steps, wear=wear))

    assert list(out.columns) == list(MINUTE_ACTIVITY_DAILY_COLUMNS)
    row = out.iloc[0]
    assert row["subject_id"] == "S0001"
    assert row["event_timestamp"] == DAY + pd.Timedelta(days=1)
    assert row["steps_sum_1d_count"] == 10 * (99 + 100 + 120 + 130) + 10 * 5
    assert row["active_minutes_1d_min"] == 30
    assert row["peak_cadence_1min_1d_steps_per_min"] == 130
    assert row["peak_cadence_30min_1d_steps_per_min"] == pytest.approx((130 + 120 + 100) / 3)
    assert row["wear_time_1d_min"] == 1340
    assert row["missing_reason"] is None


def test_minute_features_too_little_wear_gives_nan_and_reason():
    steps = np.full(1440, 50.0)
    wear = np.zeros(1440, dtype=bool)
    wear[:410] = True
    row = minute_activity_daily_features(_minutes(steps, wear=wear)).iloc[0]

    assert row["wear_time_1d_min"] == 410
    for column in ("steps_sum_1d_count", "active_minutes_1d_min", "peak_cadence_1min_1d_steps_per_min",
                   "peak_cadence_30min_1d_steps_per_min"):
        assert math.isnan(row[column])
    assert row["missing_reason"] == "wear time 410 min < 600 min"


def test_minute_features_one_row_per_subject_and_utc_day():
    two_days = _minutes(np.full(2 * 1440, 10.0), start=DAY, subject_id="S0002")
    other = _minutes(np.full(1440, 20.0), start=DAY, subject_id="S0001")
    minute = pd.concat([two_days, other], ignore_index=True)
    # The same instants in another time zone land on the same UTC days.
    minute["timestamp"] = minute["timestamp"].dt.tz_convert("America/New_York")
    out = minute_activity_daily_features(minute)

    assert out[["subject_id", "event_timestamp"]].values.tolist() == [
        ["S0001", DAY + pd.Timedelta(days=1)],
        ["S0002", DAY + pd.Timedelta(days=1)],
        ["S0002", DAY + pd.Timedelta(days=2)],
    ]
    assert out["steps_sum_1d_count"].tolist() == [20 * 1440, 10 * 1440, 10 * 1440]
    assert str(out["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_minute_features_do_not_mutate_input_and_reject_naive_time():
    minute = _minutes(np.arange(1440) % 130)
    before = minute.copy(deep=True)
    minute_activity_daily_features(minute)
    pd.testing.assert_frame_equal(minute, before)

    with pytest.raises(ValueError, match="timezone-naive"):
        minute_activity_daily_features(minute.assign(timestamp=minute["timestamp"].dt.tz_localize(None)))
    with pytest.raises(ValueError, match="steps_count"):
        minute_activity_daily_features(minute.drop(columns="steps_count"))


def test_minute_features_of_an_empty_frame_is_an_empty_table():
    out = minute_activity_daily_features(_minutes(np.array([])))
    assert out.empty and list(out.columns) == list(MINUTE_ACTIVITY_DAILY_COLUMNS)


def test_cadence_helpers():
    steps = np.array([100, 5, np.nan, 130, 99, 120])
    assert active_minutes_min(steps) == 3
    assert peak_cadence_steps_per_min(steps, 1) == 130
    assert peak_cadence_steps_per_min(steps, 2) == 125  # 130 and 120 are not consecutive
    assert math.isnan(peak_cadence_steps_per_min(steps, 30))


# --------------------------------------------------------------------------------------------
# Raw accelerometry through SKDH


def test_demo_wrist_day_gives_plausible_activity_minutes(demo_wrist):
    subject_id, frame = demo_wrist
    before = frame.copy(deep=True)
    out = accel_activity_daily_features(frame, 50.0, subject_id)

    pd.testing.assert_frame_equal(frame, before)
    assert list(out.columns) == list(ACCEL_ACTIVITY_DAILY_COLUMNS)
    assert len(out) == 2  # the demo records from noon of one day to the end of the next
    first, row = out.iloc[0], out.iloc[1]
    assert row["event_timestamp"] == frame["timestamp"].iloc[0].floor("D") + pd.Timedelta(days=2)
    assert row["missing_reason"] is None
    assert first["accel_wear_time_1d_min"] == pytest.approx(720, abs=1)  # the afternoon and evening
    levels = row["sedentary_time_1d_min"] + row["light_activity_1d_min"] + row["mvpa_1d_min"]
    assert levels + (1440 - row["accel_wear_time_1d_min"]) == pytest.approx(1440, abs=5)
    assert row["sedentary_time_1d_min"] > 600  # a day of an older adult, asleep a third of it
    assert row["mvpa_1d_min"] > 0  # the demo walks every day
    assert 1 < row["acceleration_intensity_mean_1d_mg"] < 100
    # Quality control: a day and a half at most of a simulated, well-calibrated sensor.
    assert row["clipped_samples_1d_percent"] == 0.0
    assert 0 <= row["nonwear_1d_percent"] < 30
    assert row["calibration_error_before_mg"] < 10 and row["autocalibrated_flag"] in (0.0, 1.0)


def test_still_but_worn_recording_is_sedentary_and_motionless_one_is_not_worn():
    fs_hz, hours = 20.0, 11
    t = np.arange(int(hours * 3600 * fs_hz)) / fs_hz
    rng = np.random.default_rng(3)
    # Sitting still: the forearm's orientation drifts slowly, no acceleration beyond gravity.
    tilt = 0.6 * np.sin(2 * np.pi * t / 600)
    sitting = np.c_[np.zeros_like(t), np.sin(tilt), np.cos(tilt)] + rng.normal(0, 0.003, (t.size, 3))
    start = DAY + pd.Timedelta(hours=6)
    row = accel_activity_daily_features(_accel_frame(sitting, fs_hz, start), fs_hz, "S0009").iloc[0]

    assert row["missing_reason"] is None
    assert row["accel_wear_time_1d_min"] == pytest.approx(hours * 60, abs=1)
    assert row["sedentary_time_1d_min"] == pytest.approx(row["accel_wear_time_1d_min"], abs=1)
    assert row["light_activity_1d_min"] == 0 and row["mvpa_1d_min"] == 0
    assert row["acceleration_intensity_mean_1d_mg"] < 10

    # Lying on a table: SKDH's wear detection calls it non-wear, so the day is not valid.
    table = np.c_[np.zeros((t.size, 2)), np.ones(t.size)] + rng.normal(0, 0.003, (t.size, 3))
    row = accel_activity_daily_features(_accel_frame(table, fs_hz, start), fs_hz, "S0009").iloc[0]
    assert row["accel_wear_time_1d_min"] == 0
    assert math.isnan(row["sedentary_time_1d_min"]) and math.isnan(row["acceleration_intensity_mean_1d_mg"])
    assert row["missing_reason"] == "wear time 0 min < 600 min"


def test_short_recording_gives_nan_and_reason_without_running_skdh():
    fs_hz = 20.0
    acc = np.c_[np.zeros((int(3600 * fs_hz), 2)), np.ones(int(3600 * fs_hz))]
    out = accel_activity_daily_features(_accel_frame(acc, fs_hz, DAY + pd.Timedelta(hours=23, minutes=30)),
                                        fs_hz, "S0001")
    assert len(out) == 2  # the hour spans midnight: both days get a row
    assert out["missing_reason"].str.startswith("recording 60 min < 600 min").all()
    assert out["sedentary_time_1d_min"].isna().all()


def test_frames_skdh_cannot_take_are_refused_with_the_fix():
    acc = np.c_[np.zeros((1000, 2)), np.ones(1000)]
    frame = _accel_frame(acc, 50.0, DAY)
    with pytest.raises(ValueError, match="gaps or another sampling rate"):
        accel_activity_daily_features(frame, 100.0, "S0001")
    with pytest.raises(ValueError, match="timezone-aware"):
        accel_activity_daily_features(frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None)), 50.0, "S0001")
    with pytest.raises(ValueError, match="NaN"):
        accel_activity_daily_features(frame.assign(accel_x_g=np.float32(np.nan)), 50.0, "S0001")


def test_skdh_pipeline_is_data_that_saves_and_loads(tmp_path):
    import skdh

    pipeline = skdh_activity_pipeline(50.0)
    assert [type(step).__name__ for step in pipeline._steps] == [
        "GetDayWindowIndices", "BlockWearDetection", "ActivityLevelTimes"]
    path = tmp_path / "activity.skdh"
    pipeline.save(str(path))
    loaded = skdh.Pipeline(load_kwargs={"file": str(path)})
    assert type(loaded._steps[-1]) is activity.ActivityLevelTimes
    assert type(loaded._steps[1]) is activity.BlockWearDetection
    assert loaded._steps[-1].cutpoints == pipeline._steps[-1].cutpoints

    with pytest.raises(ValueError, match="ENMO cut-points"):
        skdh_activity_pipeline(50.0, cutpoints="vaha-ypya_hip_adult")


def _wear_both_ways(accel_g: np.ndarray, fs_hz: float, **parameters) -> tuple[np.ndarray, np.ndarray]:
    from skdh.preprocessing import AccelThresholdWearDetection

    time_s = 1_709_596_800.0 + np.arange(len(accel_g)) / fs_hz
    with np.errstate(divide="ignore"):
        stock = AccelThresholdWearDetection(**parameters).predict(time=time_s, accel=accel_g, fs=fs_hz)["wear"]
        block = activity.BlockWearDetection(**parameters).predict(time=time_s, accel=accel_g, fs=fs_hz)["wear"]
    return stock, block


def test_block_wear_detection_finds_the_wear_periods_skdh_finds(demo_wrist):
    _, frame = demo_wrist
    _, accel_g = activity.unix_time_s_and_accel_g(frame, 50.0)
    # Taken off for 3 h in the morning and 2 h in the afternoon: lying still on a table.
    for hours in (slice(6, 9), slice(14, 16)):
        span = slice(hours.start * 180_000, hours.stop * 180_000)
        accel_g[span] = [0.0, 0.0, 1.0] + np.random.default_rng(hours.start).normal(0, 0.002, (180_000 * (
            hours.stop - hours.start), 3))
    stock, block = _wear_both_ways(accel_g, 50.0)
    assert len(stock) == 3  # three wear periods around the two non-wear periods
    np.testing.assert_array_equal(block, stock)
    # A recording that does not end on a whole block, at a rate that is not a whole number.
    rng = np.random.default_rng(4)
    fs = 12.5
    n = int(fs * 3600 * 9) + 777
    still = np.c_[np.zeros((n, 2)), np.ones(n)] + rng.normal(0, 0.002, (n, 3))
    moving = slice(int(fs * 3600 * 2), int(fs * 3600 * 5))
    still[moving] += rng.normal(0, 0.2, (moving.stop - moving.start, 3))
    stock, block = _wear_both_ways(still, fs)
    assert stock.tolist() == block.tolist() and len(stock) == 1


def test_block_window_statistics_equal_skdh_moving_statistics():
    from skdh.utility import moving_max, moving_min, moving_sd

    rng = np.random.default_rng(2)
    accel = np.cumsum(rng.normal(0, 0.01, (50_003, 3)), axis=0) + np.array([0.0, 0.0, 1.0])
    sd, spread = activity._window_sd_and_range(accel, 4, 1000)
    np.testing.assert_allclose(sd, moving_sd(accel, 4000, 1000, axis=0, return_previous=False), rtol=1e-9)
    np.testing.assert_array_equal(spread, moving_max(accel, 4000, 1000, axis=0) - moving_min(accel, 4000, 1000, axis=0))


def test_block_wear_detection_runs_skdh_itself_when_windows_are_not_whole_blocks():
    rng = np.random.default_rng(5)
    n = 50 * 3600 * 3
    accel = np.c_[np.zeros((n, 2)), np.ones(n)] + rng.normal(0, 0.05, (n, 3))
    stock, block = _wear_both_ways(accel, 50.0, window_length=50, window_skip=15)
    np.testing.assert_array_equal(block, stock)
