"""Circadian rest-activity measures: against pyActigraphy's published values on its example
recording, against closed forms on constructed series, and the daily table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.biomarkers import circadian
from tests.reference_data import PYACTIGRAPHY_WHEEL, reference_file

START = pd.Timestamp("2026-03-02", tz="UTC")


def awd_example(number: int) -> pd.Series:
    """pyActigraphy's ``example_0<number>.AWD`` (Actiwatch 4 recordings, 60-s epochs, the years
    anonymised as 1918): activity counts per minute.

    Actiwatch AWD text: seven header lines (name, start date, start time, epoch code "4" = 60 s,
    age, serial number, sex), then one epoch per line, its count first (a marker "M" may follow).
    """
    member = f"pyActigraphy/tests/data/example_{number:02d}.AWD"
    lines = reference_file(PYACTIGRAPHY_WHEEL, member).decode("ascii").splitlines()
    assert lines[3].strip() == "4"  # 60-s epochs
    counts = [float(line.split()[0]) for line in lines[7:] if line.strip()]
    start = pd.Timestamp(f"{lines[1].strip()} {lines[2].strip()}")
    return pd.Series(counts, index=pd.date_range(start, periods=len(counts), freq="min"))


def test_pyactigraphy_example_recording_gives_its_published_values():
    """Reference: pyActigraphy 1.2.2 (Hammad et al. 2021, GPL-3), ``example_01.AWD`` of its wheel
    (SHA-256 checked), and the values its documentation publishes for it, in the executed
    notebook ``docs/source/pyActigraphy-Non-parametric-variables.ipynb`` (defaults: activity
    binarized above 4 counts, 1-h bins): IS 0.527656245354158, IV 0.32913524895082263; with
    30-min bins IS 0.49538299172546324, IV 0.314973337080311; above 10 counts IS
    0.5418567121727559, IV 0.33654319292100576; counts as they are IS 0.46561431150973936, IV
    0.7095292983583361; RA 0.7576503909857768, unbinarized 0.9168632026873167.

    L5 and M10 are not printed there; the values below are pyActigraphy 1.2.2's own output for
    this file (binarized: L5 0.10512820512820513 from 02:02, an exact tie with 02:03, M10
    0.7624465811965813 from 08:26; counts: L5 10.991794871794871 from 01:06, M10
    253.43491452991452 from 08:27).
    """
    counts = awd_example(1)
    assert len(counts) == 18_401 and counts.sum() == 2_596_555
    active = circadian.binarized(counts, 4)

    def is_iv(activity: pd.Series, bin_minutes: int = 60) -> tuple[float, float]:
        bins = circadian.hourly_bins(activity, bin_minutes, "pyactigraphy")
        return (circadian.interdaily_stability(bins, "pyactigraphy"),
                circadian.intradaily_variability(bins, "pyactigraphy"))

    published = {
        "binarized above 4": (is_iv(active), (0.527656245354158, 0.32913524895082263)),
        "30-min bins": (is_iv(active, 30), (0.49538299172546324, 0.314973337080311)),
        "binarized above 10": (is_iv(circadian.binarized(counts, 10)), (0.5418567121727559, 0.33654319292100576)),
        "counts": (is_iv(counts), (0.46561431150973936, 0.7095292983583361)),
    }
    for case, (ours, theirs) in published.items():
        assert ours == pytest.approx(theirs, abs=1e-6), case

    binarized_extremes = circadian.least_and_most_active(active)
    count_extremes = circadian.least_and_most_active(counts)
    assert binarized_extremes.relative_amplitude == pytest.approx(0.7576503909857768, abs=1e-6)
    assert count_extremes.relative_amplitude == pytest.approx(0.9168632026873167, abs=1e-6)
    assert binarized_extremes.l5 == pytest.approx(0.10512820512820513, abs=1e-6)
    assert binarized_extremes.l5_onset_min in (2 * 60 + 2, 2 * 60 + 3)  # the tie
    assert binarized_extremes.m10 == pytest.approx(0.7624465811965813, abs=1e-6)
    assert binarized_extremes.m10_onset_min == 8 * 60 + 26
    assert (count_extremes.l5, count_extremes.l5_onset_min) == (pytest.approx(10.991794871794871, abs=1e-6), 66)
    assert (count_extremes.m10, count_extremes.m10_onset_min) == (pytest.approx(253.43491452991452, abs=1e-6),
                                                                  8 * 60 + 27)


@pytest.mark.parametrize(("number", "published"), [
    (2, 0.5237758757150337), (3, 0.3720781873681576), (4, 0.2551624866267735), (5, 0.6595438549841431)])
def test_pyactigraphys_other_example_recordings_give_their_published_interdaily_stability(number, published):
    """IS with pyActigraphy's defaults (binarized above 4 counts, 1-h bins), as its documentation
    publishes it for each example recording (``docs/source/pyActigraphy-Batch.ipynb``)."""
    bins = circadian.hourly_bins(circadian.binarized(awd_example(number), 4), 60, "pyactigraphy")
    assert circadian.interdaily_stability(bins, "pyactigraphy") == pytest.approx(published, abs=1e-6)


def minutes(values_by_minute_of_day: np.ndarray, days: int, start: pd.Timestamp = START) -> pd.Series:
    """The same day ``days`` times, one value per minute."""
    return pd.Series(np.tile(values_by_minute_of_day, days),
                     index=pd.date_range(start, periods=1440 * days, freq="min"))


def test_identical_days_are_perfectly_stable_and_alternating_hours_maximally_variable():
    hour_of_day = np.arange(1440) // 60
    alternating = minutes(np.where(hour_of_day % 2 == 0, 30.0, 0.0), days=7)
    bins = circadian.hourly_bins(alternating)

    assert circadian.interdaily_stability(bins) == pytest.approx(1.0)
    # n * (n - 1) * d^2 / ((n - 1) * n * d^2 / 4) = 4 exactly, by van Someren's formula
    assert circadian.intradaily_variability(bins) == pytest.approx(4.0)


def test_a_smooth_daily_rhythm_is_stable_and_unfragmented_and_noise_is_neither():
    minute_of_day = np.arange(1440)
    sine = minutes(50 + 50 * np.sin(2 * np.pi * minute_of_day / 1440), days=7)
    noise = pd.Series(np.random.default_rng(1).gamma(2.0, 10.0, 1440 * 14),
                      index=pd.date_range(START, periods=1440 * 14, freq="min"))

    sine_bins, noise_bins = circadian.hourly_bins(sine), circadian.hourly_bins(noise)
    assert circadian.interdaily_stability(sine_bins) == pytest.approx(1.0)
    # Successive hours of a sine of period p hours differ by 2 sin(pi / p) of its amplitude:
    # IV = 2 (1 - cos(2 pi / 24)) = 0.068, over whole periods.
    assert circadian.intradaily_variability(sine_bins) == pytest.approx(2 * (1 - np.cos(2 * np.pi / 24)), rel=0.01)
    assert circadian.interdaily_stability(noise_bins) < 0.15  # about 1 / days for noise
    assert circadian.intradaily_variability(noise_bins) == pytest.approx(2.0, rel=0.15)


def test_l5_and_m10_of_a_day_active_from_8_to_18():
    minute_of_day = np.arange(1440)
    day = np.where((minute_of_day >= 8 * 60) & (minute_of_day < 18 * 60), 100.0, 0.0)
    extremes = circadian.least_and_most_active(minutes(day, days=3))

    assert (extremes.m10, extremes.m10_onset_min) == (100.0, 480.0)
    assert (extremes.l5, extremes.l5_onset_min) == (0.0, 0.0)  # the earliest of the all-rest windows
    assert extremes.relative_amplitude == 1.0


def test_equal_rest_windows_give_the_middle_one_when_asked():
    """Rest 18:00-08:00 (14 h): every 5-h window inside it has L5 = 0, starting 18:00 to 03:00;
    the middle one starts at 22:30 (across midnight), and the 10-h windows of activity tie once."""
    minute_of_day = np.arange(1440)
    day = np.where((minute_of_day >= 8 * 60) & (minute_of_day < 18 * 60), 100.0, 0.0)
    first = circadian.least_and_most_active(minutes(day, days=3))
    middle = circadian.least_and_most_active(minutes(day, days=3), ties="middle")
    assert first.l5_onset_min == 0.0  # midnight: the first of the tied windows in clock order
    assert middle.l5_onset_min == 18 * 60 + (9 * 60) // 2  # windows 18:00 to 03:00 tie: the middle is 22:30
    assert (middle.l5, middle.m10, middle.m10_onset_min) == (0.0, 100.0, 480.0)


def counts_frame(epoch_s: int, counts: list[float], start: str = "2026-03-02T10:00:00Z") -> pd.DataFrame:
    return pd.DataFrame({"subject_id": "S1", "timestamp": pd.date_range(start, periods=len(counts),
                                                                        freq=f"{epoch_s}s"),
                         "activity_count": counts, "epoch_s": float(epoch_s)})


def test_epoch_counts_become_counts_per_minute():
    # 15-s epochs: four to a minute; a minute with a missing epoch has no value (not a quarter less).
    short = circadian.counts_per_minute(counts_frame(15, [1, 2, 3, 4, 10, np.nan, 10, 10, 5, 5]))
    np.testing.assert_array_equal(short["activity"].to_numpy(), [10.0, np.nan, np.nan])
    # 2-min epochs: each minute gets half the epoch's count.
    long = circadian.counts_per_minute(counts_frame(120, [100, 40]))
    np.testing.assert_array_equal(long["activity"].to_numpy(), [50, 50, 20, 20])
    assert list(long["timestamp"].astype("datetime64[ns]")) == list(
        pd.date_range("2026-03-02T10:00:00", periods=4, freq="min"))
    # 45-s epochs do not tile minutes: no value is made up.
    assert circadian.counts_per_minute(counts_frame(45, [5, 5, 5, 5])).empty


def test_the_counts_table_has_its_own_names_and_the_same_measures():
    """The same minute activity as steps and as counts gives the same IS, IV, RA and L5/M10,
    under the names of each signal."""
    minute_of_day = np.arange(1440)
    activity = np.tile(np.where((minute_of_day >= 7 * 60) & (minute_of_day < 22 * 60), 30.0, 1.0), 8)
    stamps = pd.date_range(START, periods=activity.size, freq="min")
    steps = pd.DataFrame({"subject_id": "S1", "timestamp": stamps, "steps_count": activity, "wear": True})
    counts = pd.DataFrame({"subject_id": "S1", "timestamp": stamps, "activity_count": activity, "epoch_s": 60.0})

    from_steps = circadian.circadian_daily_features(steps)
    from_counts = circadian.circadian_counts_daily_features(counts)
    assert list(from_counts.columns) == list(circadian.CIRCADIAN_COUNTS_DAILY_COLUMNS)
    renamed = from_counts.rename(columns=dict(zip(circadian.CIRCADIAN_COUNTS_DAILY_COLUMNS,
                                                  circadian.CIRCADIAN_DAILY_COLUMNS, strict=True)))
    pd.testing.assert_frame_equal(renamed, from_steps)
    assert from_counts["interdaily_stability_counts_7d"].iloc[-1] == pytest.approx(1.0)


def test_l5_spans_midnight_when_the_rest_does():
    minute_of_day = np.arange(1440)
    day = np.where((minute_of_day >= 22 * 60) | (minute_of_day < 3 * 60), 1.0, 50.0)  # rest 22:00-03:00
    extremes = circadian.least_and_most_active(minutes(day, days=3))
    assert (extremes.l5, extremes.l5_onset_min) == (1.0, 22 * 60.0)


def test_unworn_minutes_are_left_out_not_taken_as_rest():
    hour_of_day = np.arange(1440) // 60
    rhythm = minutes(np.where((hour_of_day >= 8) & (hour_of_day < 20), 40.0, 5.0), days=7)
    unworn = rhythm.copy()
    unworn.iloc[np.random.default_rng(2).choice(unworn.size, unworn.size // 5, replace=False)] = np.nan

    for measure in (circadian.interdaily_stability, circadian.intradaily_variability):
        assert measure(circadian.hourly_bins(unworn)) == pytest.approx(measure(circadian.hourly_bins(rhythm)))
    assert circadian.least_and_most_active(unworn) == circadian.least_and_most_active(rhythm)
    # A minute of the day never worn: no average day to take L5 and M10 from.
    rhythm[rhythm.index.hour * 60 + rhythm.index.minute == 180] = np.nan
    assert math.isnan(circadian.least_and_most_active(rhythm).l5)


def test_too_little_or_constant_data_gives_nan_and_bad_input_is_refused():
    flat = minutes(np.full(1440, 7.0), days=2)
    assert math.isnan(circadian.interdaily_stability(circadian.hourly_bins(flat)))
    assert math.isnan(circadian.intradaily_variability(circadian.hourly_bins(flat)))
    assert math.isnan(circadian.interdaily_stability(pd.Series([1.0], index=[START])))
    assert math.isnan(circadian.relative_amplitude(0.0, 0.0))
    with pytest.raises(ValueError, match="DatetimeIndex"):
        circadian.hourly_bins(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="negative"):
        circadian.hourly_bins(pd.Series([1.0, -2.0], index=pd.date_range(START, periods=2, freq="min")))


def minute_frame(days: int, worn_hours: tuple[int, int] = (0, 24)) -> pd.DataFrame:
    """A wearer active 08:00-18:00 UTC (about 60 steps/min), resting otherwise, for ``days`` days;
    the device worn in ``worn_hours`` only."""
    stamps = pd.date_range(START, periods=1440 * days, freq="min")
    hour = stamps.hour
    steps = np.where((hour >= 8) & (hour < 18), 60.0, 0.0) + np.random.default_rng(3).poisson(2.0, stamps.size)
    return pd.DataFrame({"subject_id": "S0001", "timestamp": stamps, "steps_count": steps,
                         "heart_rate_bpm": 70.0, "sleep_stage": None,
                         "wear": (hour >= worn_hours[0]) & (hour < worn_hours[1])})


def test_the_daily_table_takes_the_week_to_each_day_in_the_wearers_time():
    frame = minute_frame(days=8)
    before = frame.copy()

    utc = circadian.circadian_daily_features(frame)
    local = circadian.circadian_daily_features(frame, timezone="Asia/Kolkata")  # UTC+5:30, no daylight saving

    pd.testing.assert_frame_equal(frame, before)
    assert list(utc.columns) == list(circadian.CIRCADIAN_DAILY_COLUMNS)
    assert list(utc["event_timestamp"]) == [START + pd.Timedelta(days=day) for day in range(1, 9)]
    early, later = utc.iloc[:4], utc.iloc[4:]
    assert early["interdaily_stability_7d"].isna().all()
    assert early["missing_reason"].iloc[0] == "1 valid days in the 7 days to this one (needs 5 with 600 worn minutes)"
    assert later["missing_reason"].isna().all() and (later["circadian_valid_days_7d_count"] >= 5).all()
    assert (later["interdaily_stability_7d"] > 0.9).all() and (later["relative_amplitude_7d"] > 0.9).all()
    assert (later["m10_onset_7d_min"] == 8 * 60).all()
    # The same minutes on a clock in India: the active day starts at 13:30 local.
    assert (local.iloc[4:]["m10_onset_7d_min"] == 13 * 60 + 30).all()
    assert local.iloc[4:]["interdaily_stability_7d"].to_numpy() == pytest.approx(
        later["interdaily_stability_7d"].to_numpy(), abs=0.02)


def test_the_daily_table_says_why_when_the_nights_are_never_worn():
    table = circadian.circadian_daily_features(minute_frame(days=7, worn_hours=(6, 23)))
    last = table.iloc[-1]
    assert np.isfinite(last["interdaily_stability_7d"]) and math.isnan(last["l5_mean_7d_steps_per_min"])
    assert last["missing_reason"] == "L5, M10 and RA need every minute of the day worn on at least one day"


def wrist_days(days: int, fs_hz: float, timezone: str, seed: int = 5) -> pd.DataFrame:
    """Raw wrist accelerometry of ``days`` days from local midnight in ``timezone``: arm swing
    along gravity (4 Hz, some 20-60 mg of ENMO) from 07:00 to 23:00 local, a still night with the wrist
    turning every 20 min, and a device left on a table (motionless, no noise) from 13:00 to 17:00
    on the last day."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-02", tz=timezone)
    t = np.arange(int(days * 86_400 * fs_hz)) / fs_hz
    local_hour = (t / 3600.0) % 24
    awake = (local_hour >= 7) & (local_hour < 23)
    swing = 0.12 * np.sin(2 * np.pi * 4.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * t / 900))
    tilt = np.where(awake, 0.3 * np.sin(2 * np.pi * t / 60), 0.8 * np.floor(t / 1200) % 2)
    accel = np.c_[np.sin(tilt), np.zeros_like(t), np.cos(tilt) + np.where(awake, swing, 0)]
    accel += rng.normal(0, 0.004, accel.shape)
    table = (t >= (days - 1) * 86_400 + 13 * 3600) & (t < (days - 1) * 86_400 + 17 * 3600)
    accel[table] = [0.0, 0.0, 1.0]
    return pd.DataFrame({"timestamp": start.tz_convert("UTC") + pd.to_timedelta(t, unit="s"),
                         "accel_x_g": accel[:, 0], "accel_y_g": accel[:, 1], "accel_z_g": accel[:, 2]})


def test_the_rhythm_from_raw_wrist_accelerometry_uses_worn_minutes_enmo_in_local_time():
    """Three days in New York: the active day starts at 07:00 and the rest at 23:00 local, whatever
    the UTC clock, and the afternoon on a table is unworn, not rest."""
    accel = wrist_days(3, 20.0, "America/New_York")
    table = circadian.circadian_accel_daily_features(accel, 20.0, "S0001", autocalibrate=False,
                                                     timezone="America/New_York", min_valid_days=2)
    assert list(table.columns) == list(circadian.CIRCADIAN_ENMO_DAILY_COLUMNS)
    week = table.dropna(subset=["interdaily_stability_enmo_7d"])
    assert len(week) >= 1 and (week["circadian_enmo_valid_days_7d_count"] >= 2).all()
    last = week.iloc[-1]
    assert last["interdaily_stability_enmo_7d"] > 0.8 and last["relative_amplitude_enmo_7d"] > 0.8
    assert 7 * 60 <= last["m10_onset_enmo_7d_min"] <= 13 * 60
    assert last["l5_onset_enmo_7d_min"] >= 23 * 60 or last["l5_onset_enmo_7d_min"] <= 2 * 60  # 5 h in the night
    assert last["m10_mean_7d_mg"] > 20 > 5 > last["l5_mean_7d_mg"]
    # The table afternoon has no value: were it rest, 13:00-17:00 would pull M10 out of the afternoon.
    from features.biomarkers.activity import calibrated_recording, worn_periods, wrist_minutes

    time_s, accel_g, _ = calibrated_recording(accel, 20.0, autocalibrate=False)
    minutes = wrist_minutes(time_s, accel_g, 20.0, worn_periods(time_s, accel_g, 20.0))
    local = pd.DatetimeIndex(minutes["timestamp"]).tz_localize("UTC").tz_convert("America/New_York")
    on_table = (local.day == 4) & (local.hour >= 14) & (local.hour < 16)
    assert not minutes["worn"][on_table].any() and minutes["worn"][~on_table & (local.hour == 3)].all()


def test_a_recording_too_short_for_any_window_says_so_without_the_work():
    """33 h (15:00 to the next midnight) hold one day of 10 h: no window reaches two valid days,
    and no calibration, wear detection or minute summary is run for it."""
    accel = wrist_days(2, 20.0, "UTC").iloc[int(15 * 3600 * 20):]
    table = circadian.circadian_accel_daily_features(accel, 20.0, "S0001", timezone="UTC", min_valid_days=2)
    assert table["missing_reason"].tolist() == [
        "0 of the 7 days to this one hold 600 recorded minutes (needs 2 valid days)",
        "1 of the 7 days to this one hold 600 recorded minutes (needs 2 valid days)"]
    assert table["interdaily_stability_enmo_7d"].isna().all()
