"""Gait biomarkers from lower-back accelerometry through SKDH."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.biomarkers import gait
from features.biomarkers.gait import (
    GAIT_BOUT_COLUMNS,
    GAIT_DAILY_COLUMNS,
    coefficient_of_variation_percent,
    gait_bouts,
    gait_daily_features,
    skdh_gait_pipeline,
    stride_time_s,
)

HEIGHT_M = 1.70
# Mobilise-D lab recordings with the INDIP reference, from mobgap's example data: see
# tests/data/gait/README.md for the source, licence and how they were extracted.
GAIT_DATA = Path(__file__).resolve().parents[1] / "data" / "gait"
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
    assert without["missing_reason"] == ("height unknown: gait speed not computed (biomarkers.gait.height_source; "
                                         "the subjects file's height_m or height_cm)")
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


def test_skdh_gait_pipeline_is_data_that_saves_and_loads(tmp_path):
    import skdh

    pipeline = skdh_gait_pipeline(50.0)
    assert [type(step).__name__ for step in pipeline._steps] == [
        "GetDayWindowIndices", "PaddedPredictGaitLumbarLgbm", "GaitLumbar"]
    path = tmp_path / "gait.skdh"
    pipeline.save(str(path))
    loaded = skdh.Pipeline(load_kwargs={"file": str(path)})
    assert type(loaded._steps[1]) is gait.PaddedPredictGaitLumbarLgbm
    assert loaded._steps[1].pad_s == gait.BOUT_PAD_S == 3.0
    with pytest.raises(ValueError, match="20 Hz"):
        skdh_gait_pipeline(10.0)


def _mobgap_recording(name: str) -> tuple[pd.DataFrame, float]:
    """One lower-back recording of tests/data/gait as a canonical ACCELEROMETRY frame, and its
    sampling rate (Hz). The sensor's timestamps lie within 0.3 us of this regular grid."""
    with np.load(GAIT_DATA / "mobgap_lab_lowback.npz") as npz:
        accel_g = npz[f"{name}.accel_g"]
        start_s, fs_hz = float(npz[f"{name}.start_unix_s"]), float(npz[f"{name}.fs_hz"])
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(start_s + np.arange(len(accel_g)) / fs_hz, unit="s", utc=True),
        **{f"accel_{axis}_g": accel_g[:, k] for k, axis in enumerate("xyz")},
    })
    return frame, fs_hz


def _indip_walking_bouts(name: str) -> pd.DataFrame:
    """The INDIP reference's walking bouts of one recording; start_s and end_s from the
    recording's first sample (the file's values are MATLAB 1-based: minus one sample)."""
    table = pd.read_csv(GAIT_DATA / "mobgap_lab_indip_walking_bouts.csv", dtype={"participant_id": str})
    rows = table[table[["cohort", "participant_id", "test", "trial"]].agg("_".join, axis=1) == name]
    return rows.assign(start_s=rows["start_s"] - 0.01, end_s=rows["end_s"] - 0.01).reset_index(drop=True)


def _relative_s(stamps: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    return (stamps - frame["timestamp"].iloc[0]).dt.total_seconds().to_numpy()


STRAIGHT_WALKS = ("HA_001_Test5_Trial1", "HA_001_Test5_Trial2", "MS_001_Test5_Trial1", "MS_001_Test5_Trial2")


def test_straight_walks_match_the_indip_reference_in_steps_duration_and_cadence():
    """Mobilise-D Technical Validation Study, lab test 5 (straight walking at comfortable
    speed), participants HA/001 (healthy adult) and MS/001 (multiple sclerosis), two trials
    each: lower-back McRoberts MoveMonitor+ at 100 Hz; reference: the INDIP multi-sensor
    system's walking bouts (Salis et al. 2023, doi:10.3389/fbioe.2023.1143248), 9 initial
    contacts each, 36 in all.

    The targets hold in total over the four walks: steps (initial contacts) and bout duration
    within 5 %, cadence (the mean of the four bouts' cadences) within 2 %. Measured: 35 / 36
    steps (-2.8 %), 17.99 / 18.47 s (-2.6 %), 104.4 / 105.7 steps/min (-1.2 %). Per walk they
    do not all hold: in MS/001 trial 1 the last contact, which starts no stride, fails SKDH's
    stride quality control (8 of 9 steps; the bout ends one step, 0.57 s, early). Each walk is
    found as one bout that starts within 0.25 s of INDIP's bout (measured: within 0.1 s) and
    ends within 0.25 s of it (measured: within 0.1 s) but for a missed last contact.
    """
    ours, reference = [], []
    for name in STRAIGHT_WALKS:
        frame, fs_hz = _mobgap_recording(name)
        bouts = gait_bouts(frame, fs_hz, name[:6])
        indip = _indip_walking_bouts(name)
        assert list(bouts.columns) == list(GAIT_BOUT_COLUMNS)
        assert len(bouts) == len(indip) == 1, name
        missed = indip["initial_contacts_count"].iloc[0] - bouts["bout_steps_count"].iloc[0]
        step_s = 60.0 / indip["cadence_steps_per_min"].iloc[0]
        assert missed in (0, 1), name
        assert abs(_relative_s(bouts["bout_start"], frame)[0] - indip["start_s"].iloc[0]) <= 0.25, name
        assert abs(_relative_s(bouts["bout_end"], frame)[0] - indip["end_s"].iloc[0]) <= 0.25 + missed * step_s, name
        ours.append(bouts.iloc[0])
        reference.append(indip.iloc[0])
    ours, reference = pd.DataFrame(ours), pd.DataFrame(reference)

    assert ours["bout_steps_count"].sum() == pytest.approx(reference["initial_contacts_count"].sum(), rel=0.05)
    assert ours["bout_duration_s"].sum() == pytest.approx(reference["duration_s"].sum(), rel=0.05)
    assert ours["bout_cadence_mean_steps_per_min"].mean() == pytest.approx(
        reference["cadence_steps_per_min"].mean(), rel=0.02)

    # The daily table counts the same bouts and steps.
    frame, fs_hz = _mobgap_recording(STRAIGHT_WALKS[0])
    day = gait_daily_features(frame, fs_hz, "HA_001").iloc[0]
    assert (day["gait_bouts_1d_count"], day["gait_steps_1d_count"]) == (1, ours["bout_steps_count"].iloc[0])


@pytest.mark.xfail(strict=True, reason=(
    "known limitation of SKDH 0.17.18 gait: in simulated daily living (turns, slow irregular steps) its "
    "classifier marks only parts of the walks as gait and its stride quality control rejects most contacts; "
    "measured 8 of 54 INDIP steps, one bout of three"))
def test_daily_living_walks_match_the_indip_reference():
    """Mobilise-D lab test 11 (simulated activities of daily living), participant HA/002:
    three INDIP walking bouts of 6.45, 18.07 and 16.24 s with 11, 22 and 21 initial contacts
    (54; INDIP could time 46 of them) at 92.8, 74.2 and 84.5 steps/min. Same targets, in total,
    as the straight walks. Measured: one bout, 62.6-69.8 s from the start, of 8 steps, 7.19 s,
    81.1 steps/min: -85 % steps, -82 % duration, -3.3 % cadence."""
    name = "HA_002_Test11_Trial1"
    frame, fs_hz = _mobgap_recording(name)
    bouts = gait_bouts(frame, fs_hz, "HA_002")
    indip = _indip_walking_bouts(name)
    assert bouts["bout_steps_count"].sum() == pytest.approx(indip["initial_contacts_count"].sum(), rel=0.05)
    assert bouts["bout_duration_s"].sum() == pytest.approx(indip["duration_s"].sum(), rel=0.05)
    assert bouts["bout_cadence_mean_steps_per_min"].mean() == pytest.approx(
        indip["cadence_steps_per_min"].mean(), rel=0.02)


def test_gait_bouts_of_a_recording_without_walking_or_too_short_are_empty():
    fs_hz = 50.0
    n = int(60 * fs_hz)
    rng = np.random.default_rng(2)
    standing = np.c_[np.ones(n), np.zeros(n), np.zeros(n)] + rng.normal(0, 0.005, (n, 3))
    frame = pd.DataFrame({"timestamp": pd.Timestamp("2024-03-05 10:00", tz="UTC")
                          + pd.to_timedelta(np.arange(n) / fs_hz, unit="s"),
                          **{f"accel_{a}_g": standing[:, k].astype(np.float32) for k, a in enumerate("xyz")}})
    for recording in (frame, frame.iloc[:100]):
        bouts = gait_bouts(recording, fs_hz, "S0001")
        assert bouts.empty and list(bouts.columns) == list(GAIT_BOUT_COLUMNS)
        assert str(bouts["bout_start"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(ValueError, match="20 Hz"):
        gait_bouts(frame.iloc[::5], fs_hz / 5, "S0001")
