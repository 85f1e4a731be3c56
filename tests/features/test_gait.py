"""Gait biomarkers from lower-back accelerometry through SKDH."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.biomarkers.gait import (
    GAIT_DAILY_COLUMNS,
    coefficient_of_variation_percent,
    gait_daily_features,
    skdh_gait_pipeline,
    stride_time_s,
)

HEIGHT_M = 1.70
NOT_COUNTS = ("cadence_mean_1d_steps_per_min", "gait_speed_mean_1d_m_s", "stride_time_mean_1d_s",
              "stride_time_cv_1d_percent")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pipelines.demo.generate import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), seed=7, n_subjects=6, days=3)


@pytest.fixture(scope="module")
def lowback(demo) -> dict[str, pd.DataFrame]:
    """Every demo lower-back recording (2-h clinic visits with walking bouts, in g), by subject."""
    frames = {}
    for name in sorted(f for f in demo.files if f.endswith("_lowback.csv")):
        raw = pd.read_csv(demo.out_dir / name)
        frames[name.split("/")[-1].split("_")[0]] = pd.DataFrame({
            "timestamp": pd.to_datetime(raw["time"], unit="s", utc=True),
            "accel_x_g": raw["ax"].astype(np.float32),
            "accel_y_g": raw["ay"].astype(np.float32),
            "accel_z_g": raw["az"].astype(np.float32),
        })
    return frames


@pytest.fixture(scope="module")
def gait_tables(lowback) -> pd.DataFrame:
    return pd.concat([gait_daily_features(frame, 50.0, sid, HEIGHT_M) for sid, frame in lowback.items()],
                     ignore_index=True)


def test_demo_visits_give_walking_bouts_at_a_plausible_cadence(lowback, gait_tables):
    assert list(gait_tables.columns) == list(GAIT_DAILY_COLUMNS)
    assert len(gait_tables) == len(lowback) == 3  # one visit, one day each
    assert gait_tables["missing_reason"].isna().all()
    assert (gait_tables["gait_bouts_1d_count"] >= 3).all()  # the demo walks 6-10 bouts per visit
    assert (gait_tables["gait_steps_1d_count"] > 100).all()
    assert gait_tables["cadence_mean_1d_steps_per_min"].between(80, 130).all()
    # Two steps per stride: mean stride time ~ 120 / cadence.
    expected_stride_s = 120.0 / gait_tables["cadence_mean_1d_steps_per_min"]
    assert np.allclose(gait_tables["stride_time_mean_1d_s"], expected_stride_s, rtol=0.05)
    assert gait_tables["stride_time_cv_1d_percent"].between(0, 15).all()
    assert gait_tables["gait_speed_mean_1d_m_s"].between(0.5, 1.8).all()
    first = next(iter(lowback.values()))
    assert gait_tables["event_timestamp"].iloc[0] == first["timestamp"].iloc[0].floor("D") + pd.Timedelta(days=1)


def test_decliners_walk_slower_than_non_decliners(demo, gait_tables):
    outcomes = pd.read_csv(demo.out_dir / "raw" / "endpoints.csv").set_index("subject_id")["outcome"]
    table = gait_tables.assign(outcome=gait_tables["subject_id"].map(outcomes))
    assert set(table["outcome"]) == {0, 1}  # the demo gives gait sensors to a decliner and non-decliners
    by_outcome = table.groupby("outcome")[["cadence_mean_1d_steps_per_min", "gait_speed_mean_1d_m_s"]].mean()
    assert by_outcome.loc[1, "cadence_mean_1d_steps_per_min"] < by_outcome.loc[0, "cadence_mean_1d_steps_per_min"]
    assert by_outcome.loc[1, "gait_speed_mean_1d_m_s"] < by_outcome.loc[0, "gait_speed_mean_1d_m_s"]


def test_without_height_speed_is_nan_with_a_reason_and_the_rest_is_unchanged(lowback):
    # The first 15 minutes of a visit hold its first walking bout.
    frame = next(iter(lowback.values())).iloc[: 15 * 60 * 50]
    before = frame.copy(deep=True)
    with_height = gait_daily_features(frame, 50.0, "S0001", HEIGHT_M).iloc[0]
    without = gait_daily_features(frame, 50.0, "S0001").iloc[0]

    pd.testing.assert_frame_equal(frame, before)
    assert with_height["gait_bouts_1d_count"] >= 1 and with_height["missing_reason"] is None
    assert math.isnan(without["gait_speed_mean_1d_m_s"])
    assert without["missing_reason"] == "height unknown: gait speed not computed"
    for column in ("gait_bouts_1d_count", "gait_steps_1d_count", "cadence_mean_1d_steps_per_min",
                   "stride_time_mean_1d_s", "stride_time_cv_1d_percent"):
        assert without[column] == with_height[column]


def test_recording_without_walking_gives_zero_bouts_nan_and_a_reason():
    fs_hz = 50.0
    n = int(10 * 60 * fs_hz)
    rng = np.random.default_rng(1)
    standing = np.c_[np.ones(n), np.zeros(n), np.zeros(n)] + rng.normal(0, 0.005, (n, 3))
    frame = pd.DataFrame({"timestamp": pd.Timestamp("2024-03-05 10:00", tz="UTC")
                          + pd.to_timedelta(np.arange(n) / fs_hz, unit="s"),
                          **{f"accel_{a}_g": standing[:, k].astype(np.float32) for k, a in enumerate("xyz")}})
    row = gait_daily_features(frame, fs_hz, "S0001", HEIGHT_M).iloc[0]

    assert (row["gait_bouts_1d_count"], row["gait_steps_1d_count"]) == (0, 0)
    assert all(math.isnan(row[c]) for c in NOT_COUNTS)
    assert row["missing_reason"] == "no gait bouts found"

    short = gait_daily_features(frame.iloc[:100], fs_hz, "S0001").iloc[0]
    assert short["gait_bouts_1d_count"] == 0
    assert short["missing_reason"].startswith("recording 2.0 s is no longer than a gait bout")
    slow = gait_daily_features(frame.iloc[::5], fs_hz / 5, "S0001").iloc[0]
    assert slow["missing_reason"].startswith("sampling rate 10 Hz < 20 Hz")


def test_height_in_the_wrong_unit_is_refused():
    frame = pd.DataFrame({"timestamp": pd.to_datetime([0.0], unit="s", utc=True),
                          "accel_x_g": [1.0], "accel_y_g": [0.0], "accel_z_g": [0.0]})
    with pytest.raises(ValueError, match="metres"):
        gait_daily_features(frame, 50.0, "S0001", height_m=170)


def test_stride_time_and_its_variability():
    contacts = np.array([0, 50, 105, 155, 212])  # alternating feet at 50 Hz
    assert stride_time_s(contacts, 50.0) == pytest.approx([2.1, 2.1, 2.14])
    assert stride_time_s(contacts[:2], 50.0).size == 0
    assert coefficient_of_variation_percent(np.array([1.0, 1.2, np.nan])) == pytest.approx(
        100 * np.std([1.0, 1.2], ddof=1) / 1.1)
    assert math.isnan(coefficient_of_variation_percent(np.array([1.0])))


def test_skdh_gait_pipeline_steps():
    pipeline = skdh_gait_pipeline(50.0)
    assert [type(step).__name__ for step in pipeline._steps] == [
        "GetDayWindowIndices", "PredictGaitLumbarLgbm", "GaitLumbar"]
    with pytest.raises(ValueError, match="20 Hz"):
        skdh_gait_pipeline(10.0)
