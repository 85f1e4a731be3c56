"""Sleep biomarkers: nights from minute-level sleep stages, and from wrist accelerometry through SKDH."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.biomarkers.sleep import (
    ACCEL_SLEEP_NIGHTLY_COLUMNS,
    MINUTE_SLEEP_NIGHTLY_COLUMNS,
    accel_sleep_nightly_features,
    main_sleep_period_min,
    minute_sleep_nightly_features,
    sleep_efficiency_percent,
    webster_rescored,
)

STANDARD_GRAVITY_M_S2 = 9.80665
EVENING = pd.Timestamp("2024-03-05 18:00", tz="UTC")
NIGHT_END = pd.Timestamp("2024-03-06 12:00", tz="UTC")
MEASURES = ("total_sleep_time_night_min", "sleep_efficiency_night_percent", "waso_night_min",
            "sleep_onset_latency_night_min")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pipelines.demo.generate import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), seed=7, n_subjects=6, days=3)


@pytest.fixture(scope="module")
def demo_wrist(demo) -> tuple[str, pd.DataFrame]:
    """The first demo wrist recording (noon of one day to the end of the next) in g."""
    path = next(demo.out_dir / f for f in demo.files if f.endswith("_wrist.parquet") and "resampled" not in f)
    raw = pd.read_parquet(path)
    frame = pd.DataFrame({"timestamp": pd.to_datetime(raw["time"], unit="s", utc=True)})
    for axis in "xyz":
        frame[f"accel_{axis}_g"] = (raw[axis] / STANDARD_GRAVITY_M_S2).astype(np.float32)
    return path.name.split("_")[0], frame


def _night(segments: list[tuple[int, str, float]], *, start: pd.Timestamp = EVENING,
           subject_id: str = "S0001") -> pd.DataFrame:
    """Minute rows from (minutes, sleep_stage, steps per minute) segments; stage None = not worn."""
    stages = [stage for length, stage, _ in segments for _ in range(length)]
    steps = [steps for length, _, steps in segments for _ in range(length)]
    n = len(stages)
    return pd.DataFrame({
        "subject_id": subject_id,
        "timestamp": start + pd.to_timedelta(np.arange(n), unit="min"),
        "steps_count": np.asarray(steps, dtype=float),
        "heart_rate_bpm": 60.0,
        "sleep_stage": stages,
        "wear": [stage is not None for stage in stages],
    })


# 18:00-22:00 up and about; 22:00-22:20 in bed awake; asleep 22:20-02:00; awake 02:00-02:30;
# asleep 02:30-06:30 (deep, then rem); lying awake 06:30-06:35; up from 06:35 to 12:00.
HAND_BUILT_NIGHT = [
    (240, "wake", 12.0),
    (20, "wake", 0.0),
    (220, "light", 0.0),
    (30, "wake", 0.0),
    (120, "deep", 0.0),
    (120, "rem", 0.0),
    (5, "wake", 0.0),
    (325, "wake", 8.0),
]


# --------------------------------------------------------------------------------------------
# Minute-level sleep stages


def test_hand_built_night_gives_exact_measures():
    minute = _night(HAND_BUILT_NIGHT)
    before = minute.copy(deep=True)
    out = minute_sleep_nightly_features(minute)

    pd.testing.assert_frame_equal(minute, before)
    assert list(out.columns) == list(MINUTE_SLEEP_NIGHTLY_COLUMNS)
    row = out.iloc[0]
    assert (row["subject_id"], row["event_timestamp"]) == ("S0001", NIGHT_END)
    assert row["total_sleep_time_night_min"] == 220 + 240
    assert row["waso_night_min"] == 30
    assert row["sleep_onset_latency_night_min"] == 20  # from the first step-free minute in bed
    # Rest period 22:00-06:35 (515 min): in bed from the last minute with steps to the first.
    assert row["sleep_efficiency_night_percent"] == pytest.approx(100 * 460 / 515)
    assert row["missing_reason"] is None


def test_a_recording_that_starts_or_ends_mid_night_is_not_reported():
    # Data start at midnight, in the middle of the night: bedtime was not seen.
    starts_mid_night = _night([(390, "light", 0.0), (330, "wake", 8.0)], start=EVENING + pd.Timedelta(hours=6))
    row = minute_sleep_nightly_features(starts_mid_night).iloc[0]
    assert all(math.isnan(row[m]) for m in MEASURES)
    assert row["missing_reason"].startswith("bedtime not observed")

    # Data stop at midnight while asleep: rising was not seen.
    ends_mid_night = _night([(270, "wake", 12.0), (90, "light", 0.0)])
    row = minute_sleep_nightly_features(ends_mid_night).iloc[0]
    assert all(math.isnan(row[m]) for m in MEASURES)
    assert row["missing_reason"].startswith("rising not observed")


def test_device_off_at_bedtime_or_too_long_in_the_night_is_not_reported():
    off_at_bedtime = _night([(240, "wake", 12.0), (20, None, 0.0), *HAND_BUILT_NIGHT[2:]])
    row = minute_sleep_nightly_features(off_at_bedtime).iloc[0]
    assert row["missing_reason"].startswith("bedtime not observed")

    off_at_night = _night([*HAND_BUILT_NIGHT[:3], (30, None, 0.0), *HAND_BUILT_NIGHT[4:]])
    row = minute_sleep_nightly_features(off_at_night).iloc[0]
    assert row["missing_reason"] is None  # 30 min off the wrist is tolerated; they count as neither
    assert (row["total_sleep_time_night_min"], row["waso_night_min"]) == (460, 0)
    off_longer = _night([*HAND_BUILT_NIGHT[:3], (45, None, 0.0), (15, "wake", 0.0), *HAND_BUILT_NIGHT[4:]])
    row = minute_sleep_nightly_features(off_longer).iloc[0]
    assert row["missing_reason"] == "45 min without a worn sleep stage inside the sleep period (> 30 min)"
    assert all(math.isnan(row[m]) for m in MEASURES)


def test_nights_are_windows_from_18_to_12_utc_and_afternoons_belong_to_none():
    no_sleep = _night([(1080, "wake", 5.0)])
    afternoon = _night([(360, "asleep", 0.0)], start=EVENING - pd.Timedelta(hours=6))  # 12:00-18:00: no night
    second = _night(HAND_BUILT_NIGHT, start=EVENING + pd.Timedelta(days=1), subject_id="S0002")
    out = minute_sleep_nightly_features(pd.concat([second, no_sleep, afternoon], ignore_index=True))

    assert out[["subject_id", "event_timestamp"]].values.tolist() == [
        ["S0001", NIGHT_END], ["S0002", NIGHT_END + pd.Timedelta(days=1)]]
    assert out["missing_reason"].iloc[0].startswith("no sleep recorded in the night window")
    assert out["total_sleep_time_night_min"].iloc[1] == 460


def test_nights_are_the_wearers_local_nights():
    """The hand-built night in Chicago (18:00 CST = 00:00 UTC): in UTC windows its rising falls
    after the 12:00 UTC end; in the wearer's windows it is whole, ending at 12:00 local."""
    chicago = _night(HAND_BUILT_NIGHT, start=pd.Timestamp("2024-03-05 18:00", tz="America/Chicago").tz_convert("UTC"))
    in_utc = minute_sleep_nightly_features(chicago)
    assert in_utc["missing_reason"].iloc[0].startswith("rising not observed")
    local = minute_sleep_nightly_features(chicago, timezone="America/Chicago")
    assert local["event_timestamp"].tolist() == [pd.Timestamp("2024-03-06 18:00", tz="UTC")]
    assert (local["total_sleep_time_night_min"].iloc[0], local["missing_reason"].iloc[0]) == (460, None)
    # A study's own window: 20:00 for 12 h leaves the up-and-about evening out, the same night.
    later = minute_sleep_nightly_features(chicago, timezone="America/Chicago", night_start_hour=20, night_hours=12)
    assert later["event_timestamp"].tolist() == [pd.Timestamp("2024-03-06 14:00", tz="UTC")]
    assert later["total_sleep_time_night_min"].iloc[0] == 460


def test_a_night_across_the_clock_change_holds_its_real_minutes():
    """London, 30-31 March 2024: the clocks go forward at 01:00, so 18:00 to 12:00 is 17 h. The
    hand-built night, laid out in real minutes from 18:00, is whole; its sleep is the same."""
    london = _night(HAND_BUILT_NIGHT[:-1] + [(265, "wake", 8.0)],
                    start=pd.Timestamp("2024-03-30 18:00", tz="Europe/London").tz_convert("UTC"))
    out = minute_sleep_nightly_features(london, timezone="Europe/London")
    assert out["event_timestamp"].tolist() == [pd.Timestamp("2024-03-31 11:00", tz="UTC")]  # 12:00 BST
    assert (out["total_sleep_time_night_min"].iloc[0], out["missing_reason"].iloc[0]) == (460, None)


def test_accel_sleep_windows_follow_the_wearers_clock_across_a_clock_change(demo_wrist):
    """The demo wrist recording (12:00 UTC 9 March 2024 to midnight UTC on the 11th) worn in New
    York: windows start at local noon (17:00 UTC, EST), and the one over the 10 March clock change
    lasts 23 h and is whole, with its night."""
    subject_id, frame = demo_wrist
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-09 12:00", tz="UTC"), \
        "the demo's first wrist recording moved: this test needs the 10 March clock change in it"
    out = accel_sleep_nightly_features(frame, 50.0, subject_id, timezone="America/New_York")
    assert out["event_timestamp"].tolist() == [pd.Timestamp(t, tz="UTC") for t in (
        "2024-03-09 17:00", "2024-03-10 16:00", "2024-03-11 16:00")]
    assert out["missing_reason"].iloc[1] is None and out["total_sleep_time_accel_night_min"].iloc[1] > 60
    assert out["missing_reason"].iloc[2] == ("recording covers 8.0 h of the 24 h window from 12:00 local: "
                                             "the night may be cut")


def test_main_sleep_period_merges_short_gaps_and_keeps_the_longest():
    asleep = np.zeros(600, dtype=bool)
    asleep[10:40] = True  # an evening doze, 30 min, 100 min before the night
    asleep[140:300] = True
    asleep[360:400] = True  # after a 60-min awakening: still the same night
    asleep[470:480] = True  # after 70 min awake: a separate, shorter period
    assert main_sleep_period_min(asleep) == (140, 400)
    assert main_sleep_period_min(np.zeros(10, dtype=bool)) is None
    assert sleep_efficiency_percent(450, 500) == 90
    assert math.isnan(sleep_efficiency_percent(0, 0))


# --------------------------------------------------------------------------------------------
# Wrist accelerometry through SKDH


def test_skdh_finds_the_demo_night_in_its_window(demo_wrist, demo):
    """The demo's wrist recording runs from noon to the midnight a day and a half later: one whole
    noon-to-noon window, with the night, and the next one cut at midnight."""
    subject_id, frame = demo_wrist
    before = frame.copy(deep=True)
    out = accel_sleep_nightly_features(frame, 50.0, subject_id)

    pd.testing.assert_frame_equal(frame, before)
    assert list(out.columns) == list(ACCEL_SLEEP_NIGHTLY_COLUMNS)
    noon = frame["timestamp"].iloc[0]
    assert noon == noon.floor("D") + pd.Timedelta(hours=12)
    assert out["event_timestamp"].tolist() == [noon + pd.Timedelta(days=1), noon + pd.Timedelta(days=2)]
    row, cut = out.iloc[0], out.iloc[1]
    assert row["missing_reason"] is None
    # The minute data the wrist signal was made from say how long the subject slept that night.
    minute = pd.read_csv(demo.out_dir / "raw" / "minute" / f"{subject_id}_minute.csv", parse_dates=["time"])
    window = minute[(minute["time"] >= noon) & (minute["time"] < noon + pd.Timedelta(days=1))]
    asleep_min = int(window["sleep_stage"].isin(["light", "deep", "rem"]).sum())
    assert 60 <= row["total_sleep_time_accel_night_min"] <= asleep_min + 30
    assert 0 < row["sleep_efficiency_accel_night_percent"] <= 100
    assert row["waso_accel_night_min"] >= 0 and row["sleep_onset_latency_accel_night_min"] >= 0
    assert np.isnan(cut["total_sleep_time_accel_night_min"])
    assert cut["missing_reason"] == "recording covers 12.0 h of the 24 h window from 12:00 local: the night may be cut"


def runs(*pairs: tuple[int, int]) -> np.ndarray:
    """Per-minute scores from (value, minutes) runs."""
    return np.concatenate([np.full(minutes, value) for value, minutes in pairs])


@pytest.mark.parametrize(("scores", "expected"), [
    (runs((0, 4), (1, 5)), runs((0, 5), (1, 4))),  # a: after 4 min awake, 1 min
    (runs((0, 10), (1, 5)), runs((0, 13), (1, 2))),  # b: after 10 min, 3 min
    (runs((0, 15), (1, 20)), runs((0, 19), (1, 16))),  # c: after 15 min, 4 min
    (runs((1, 30), (0, 3), (1, 2), (0, 30)), runs((1, 30), (0, 3), (1, 2), (0, 30))),  # short wake: kept
    # d: 8 min asleep between 12 min awake loses 3 to rule b, then the 5 left are a short sleep run
    # between >= 10 min awake on both sides; the last run loses 3 to rule b.
    (runs((1, 30), (0, 12), (1, 8), (0, 12), (1, 30)), runs((1, 30), (0, 35), (1, 27))),
    (runs((1, 5), (0, 30)), runs((1, 5), (0, 30))),  # d needs wake on both sides: the window's first run stays
])
def test_webster_rescoring_rules(scores: np.ndarray, expected: np.ndarray):
    before = scores.copy()
    np.testing.assert_array_equal(webster_rescored(scores), expected)
    np.testing.assert_array_equal(scores, before)


def test_a_night_that_is_one_sleep_run_keeps_it():
    """SKDH 0.17.18's own rule d wipes the first two runs of a window once any run qualifies for
    it. A noon-to-noon window, by activity: 10 h up, 7 h still, and an 11-min doze in the next
    morning that the scoring leaves as a 5-min run: SKDH's rescoring keeps one minute of sleep
    (the doze's last; the night is lost), the platform's scoring keeps the night."""
    from skdh.sleep.sleep_classification import compute_sleep_predictions

    from features.biomarkers.sleep import cole_kripke_rescored

    still = runs((0, 600), (1, 420), (0, 200), (1, 11), (0, 209))
    activity_index = np.where(still == 1, 0.0, 5.0)
    scored = compute_sleep_predictions(activity_index, rescore=False)
    assert scored.sum() == 414 + 5
    assert compute_sleep_predictions(activity_index, rescore=True).sum() == 1  # the defect worked around
    ours = cole_kripke_rescored(activity_index)
    np.testing.assert_array_equal(ours, webster_rescored(scored))
    assert ours.sum() == 410 and ours[604:608].sum() == 0 and ours[608:1018].all()  # rule c: 4 min


def test_the_sleep_pipeline_is_data_that_saves_and_loads(tmp_path):
    import skdh

    from features.biomarkers import sleep
    from features.biomarkers.sleep import skdh_sleep_pipeline

    pipeline = skdh_sleep_pipeline(50.0, window_start_hour=18)
    assert [type(step).__name__ for step in pipeline._steps] == [
        "GetDayWindowIndices", "BlockWearDetection", "RescoredSleep"]
    path = tmp_path / "sleep.skdh"
    pipeline.save(str(path))
    loaded = skdh.Pipeline(load_kwargs={"file": str(path)})
    assert type(loaded._steps[-1]) is sleep.RescoredSleep
    assert tuple(loaded._steps[-1].day_key) == (18, 24) and list(loaded._steps[0].bases) == [18]
