"""Circadian rest-activity rhythm: the non-parametric measures every actigraphy study reports.

From a regular series of activity per epoch (steps or activity counts per minute; per-minute ENMO
from raw accelerometry), over a window of several days:

* :func:`interdaily_stability` (IS, 0-1): how alike the days are, the variance of the average
  daily profile over the total variance (van Someren et al. 1999; Witting et al. 1990);
* :func:`intradaily_variability` (IV, about 0-2): how fragmented the rhythm is, the mean square
  of successive differences over the variance (same references);
* :func:`least_and_most_active` (L5 and M10 with their onsets): the means of the least active 5
  hours and the most active 10 hours of the average day, and when they start;
  :func:`relative_amplitude` (RA) = (M10 - L5) / (M10 + L5) (van Someren et al. 1996).

Two definitions, as the field has two in use (the choice is ``definition``):

``van_someren_1999`` (default)
    The published formulas: IS = n * sum_h (mean_h - mean)^2 / (p * sum_i (x_i - mean)^2) and
    IV = n * sum_i (x_i - x_i-1)^2 / ((n - 1) * sum_i (x_i - mean)^2), with n values, p values
    per day and the grand mean; bins are clock hours of the data's time zone.
``pyactigraphy``
    The conventions of pyActigraphy (Hammad et al. 2021), the common Python implementation:
    bins start at the first sample (``resample(origin="start")``), IS is the ratio of the
    sample variances (ddof 1) of the daily profile and of the series, IV the mean square
    successive difference over the sample variance. It reproduces pyActigraphy's published
    values on its example recordings to float precision (tests).

L5 and M10 are computed on the minute profile in both: the mean over days of each minute of the
day, a window wrapping around midnight (so a night's rest is one window), onsets in minutes
after local midnight.

Activity may be binarized first (active when above a threshold, e.g. counts > 4), as in
pyActigraphy's defaults; epochs with no value (device not worn) are left out: a bin's value is
the mean of its worn epochs, and IV takes differences only between adjacent bins with values.

References
----------
Witting W, Kwa IH, Eikelenboom P, Mirmiran M, Swaab DF (1990). Alterations in the circadian
rest-activity rhythm in aging and Alzheimer's disease. Biol Psychiatry 27(6):563-572.

van Someren EJW, Hagebeuk EEO, Lijzenga C, et al. (1996). Circadian rest-activity rhythm
disturbances in Alzheimer's disease. Biol Psychiatry 40(4):259-270.

van Someren EJW, Swaab DF, Colenda CC, et al. (1999). Bright light therapy: improved sensitivity
to its effects on rest-activity rhythms in Alzheimer patients by application of nonparametric
methods. Chronobiol Int 16(4):505-518. doi:10.3109/07420529908998724

Hammad G, Reyt M, Beliy N, et al. (2021). pyActigraphy: open-source python package for
actigraphy data visualization and analysis. PLoS Comput Biol 17(10):e1009514.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.biomarkers._frames import _empty_frame, _require_columns, _table, _utc
from features.biomarkers.activity import MIN_WEAR_MIN

Definition = Literal["van_someren_1999", "pyactigraphy"]
DEFINITIONS: tuple[Definition, ...] = ("van_someren_1999", "pyactigraphy")

_MINUTES_PER_DAY = 1440


def _check_series(activity: pd.Series) -> pd.Series:
    if not isinstance(activity.index, pd.DatetimeIndex):
        raise ValueError("activity needs a DatetimeIndex (the start of each epoch)")
    if not activity.index.is_monotonic_increasing or activity.index.has_duplicates:
        raise ValueError("activity epochs must be in time order, each once")
    if (activity.dropna() < 0).any():
        raise ValueError("activity cannot be negative")
    return activity.astype(float)


def binarized(activity: pd.Series, threshold: float) -> pd.Series:
    """1.0 where the activity is above ``threshold`` (strictly), 0.0 where not, NaN where missing."""
    return activity.gt(threshold).astype(float).where(activity.notna())


def hourly_bins(activity: pd.Series, bin_minutes: int = 60, definition: Definition = "van_someren_1999") -> pd.Series:
    """The activity per bin of ``bin_minutes``.

    ``van_someren_1999``: bins on the clock (hours of the index's time zone), each the mean of
    its epochs with a value (NaN for a bin without any), so that a bin with unworn epochs is
    not taken as less active; for complete bins this is the sum scaled, and the measures do not
    depend on the scale. ``pyactigraphy``: bins from the first epoch on, each the sum of its
    epochs, as ``resample(origin="start").sum()`` (a partial last bin and unworn epochs count
    as less activity there).
    """
    activity = _check_series(activity)
    if definition == "pyactigraphy":
        return activity.resample(f"{bin_minutes}min", origin="start").sum()
    return activity.resample(f"{bin_minutes}min", origin="start_day").mean()


def interdaily_stability(bins: pd.Series, definition: Definition = "van_someren_1999") -> float:
    """Interdaily stability (IS) of binned activity (:func:`hourly_bins`), 0 (no rhythm) to 1.

    Parameters
    ----------
    bins : Series
        Activity per bin, DatetimeIndex; NaN bins are left out.
    definition : str
        One of :data:`DEFINITIONS` (see the module docstring).

    Returns
    -------
    float
        NaN when fewer than two bins have a value or the series is constant.
    """
    values = bins.dropna()
    if len(values) < 2:
        return math.nan
    time_of_day = values.index - values.index.normalize()
    profile = values.groupby(time_of_day).mean()
    if definition == "pyactigraphy":
        total = values.var(ddof=1)
        return float(profile.var(ddof=1) / total) if total > 0 and len(profile) > 1 else math.nan
    grand = values.mean()
    total = float(((values - grand) ** 2).sum())
    if total <= 0:
        return math.nan
    # n * sum_h (mean_h - mean)^2 / (p * sum_i (x_i - mean)^2), p = bins per day
    return float(len(values) * ((profile - grand) ** 2).sum() / (len(profile) * total))


def intradaily_variability(bins: pd.Series, definition: Definition = "van_someren_1999") -> float:
    """Intradaily variability (IV) of binned activity (:func:`hourly_bins`): near 0 for a sine
    wave, about 2 for noise; differences only between adjacent bins that both have a value.

    Returns
    -------
    float
        NaN when no two adjacent bins have values or the series is constant.
    """
    x = bins.to_numpy(dtype=float)
    differences = np.diff(x)
    differences = differences[np.isfinite(differences)]
    values = x[np.isfinite(x)]
    if differences.size == 0 or values.size < 2:
        return math.nan
    if definition == "pyactigraphy":
        total = values.var(ddof=1)
        return float(np.mean(differences**2) / total) if total > 0 else math.nan
    total = float(((values - values.mean()) ** 2).sum())
    if total <= 0:
        return math.nan
    # n * sum (x_i - x_i-1)^2 / ((n - 1) * sum (x_i - mean)^2), over the differences there are
    return float(values.size * np.sum(differences**2) / (differences.size * total))


@dataclass(frozen=True)
class RestActivityExtremes:
    """L5 and M10 of an average day, in the activity's unit, with their onsets (minutes after midnight)."""

    l5: float
    l5_onset_min: float
    m10: float
    m10_onset_min: float

    @property
    def relative_amplitude(self) -> float:
        return relative_amplitude(self.l5, self.m10)


def daily_profile(activity: pd.Series, epoch_minutes: int = 1) -> np.ndarray:
    """The average day: for each epoch of the day, the mean over days of the epochs with a value;
    shape (1440 / epoch_minutes,), NaN for an epoch of the day never observed."""
    activity = _check_series(activity)
    minute_of_day = (activity.index.hour * 60 + activity.index.minute) // epoch_minutes
    profile = activity.groupby(minute_of_day).mean()
    return profile.reindex(range(_MINUTES_PER_DAY // epoch_minutes)).to_numpy(dtype=float)


Ties = Literal["first", "middle"]


def least_and_most_active(activity: pd.Series, *, low_hours: int = 5, high_hours: int = 10,
                          epoch_minutes: int = 1, ties: Ties = "first") -> RestActivityExtremes:
    """L5 and M10 (:class:`RestActivityExtremes`) of the average day of ``activity``.

    The mean of the least active ``low_hours`` (5) and the most active ``high_hours`` (10)
    consecutive hours of :func:`daily_profile`, windows wrapping around midnight. NaN when an
    epoch of the day was never observed (the profile would be partial).

    The onset is the window's first epoch. Equal windows are common: with step counts a whole
    night holds no steps, and every 5-h window inside it has L5 = 0. ``ties="first"`` takes the
    earliest (pyActigraphy's rule: then the onset says when the night starts, not when its
    quietest 5 h do); ``"middle"`` the middle one of the longest run of equal windows (midnight
    wrapping), so that the L5 window sits in the middle of the rest period.

    Parameters
    ----------
    activity : Series
        Activity per epoch of ``epoch_minutes``, DatetimeIndex in the wearer's local time.
    """
    profile = daily_profile(activity, epoch_minutes)
    if not np.isfinite(profile).all():
        return RestActivityExtremes(math.nan, math.nan, math.nan, math.nan)
    wrapped = np.concatenate([profile, profile])
    cumulative = np.concatenate([[0.0], np.cumsum(wrapped)])

    def window_means(hours: int) -> np.ndarray:
        width = hours * 60 // epoch_minutes
        return (cumulative[width:width + profile.size] - cumulative[:profile.size]) / width

    low, high = window_means(low_hours), window_means(high_hours)
    # Sums in a different order than another implementation's can differ in the last bit: a tie
    # between two windows is decided by a tolerance, not by rounding noise.
    tolerance = 1e-12 * max(1.0, float(np.abs(profile).max()))
    l5_at = _onset(low <= low.min() + tolerance, ties)
    m10_at = _onset(high >= high.max() - tolerance, ties)
    return RestActivityExtremes(float(low[l5_at]), float(l5_at * epoch_minutes),
                                float(high[m10_at]), float(m10_at * epoch_minutes))


def _onset(tied: np.ndarray, ties: Ties) -> int:
    """The window chosen among the ``tied`` ones (boolean per window start, wrapping at midnight)."""
    first = int(np.flatnonzero(tied)[0])
    if ties == "first" or tied.all():
        return first
    # Runs of consecutive tied windows, the day rotated to start just after an untied one so
    # that a run across midnight is one run.
    shift = int(np.flatnonzero(~tied)[-1]) + 1
    rotated = np.roll(tied, -shift).astype(np.int8)
    edges = np.diff(np.concatenate([[0], rotated, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    middle = starts[longest] + (ends[longest] - starts[longest] - 1) // 2
    return int((middle + shift) % tied.size)


def relative_amplitude(l5: float, m10: float) -> float:
    """Relative amplitude RA = (M10 - L5) / (M10 + L5), 0 to 1; NaN when both are 0 or unknown."""
    total = m10 + l5
    return float((m10 - l5) / total) if np.isfinite(total) and total > 0 else math.nan


# --------------------------------------------------------------------------------------------
# Table: one row per subject per UTC day, over the week ending with it

WINDOW_DAYS = 7
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class CircadianColumns:
    """The table's column names for one activity signal: IS, IV and RA are unitless but depend on
    the signal, and L5 and M10 carry its unit, so each signal has its own feature names."""

    interdaily_stability: str
    intradaily_variability: str
    relative_amplitude: str
    l5_mean: str
    l5_onset: str
    m10_mean: str
    m10_onset: str
    valid_days: str

    @property
    def table(self) -> tuple[str, ...]:
        return ("subject_id", "event_timestamp", self.interdaily_stability, self.intradaily_variability,
                self.relative_amplitude, self.l5_mean, self.l5_onset, self.m10_mean, self.m10_onset,
                self.valid_days, "missing_reason")


STEPS_COLUMNS = CircadianColumns(
    "interdaily_stability_7d", "intradaily_variability_7d", "relative_amplitude_7d", "l5_mean_7d_steps_per_min",
    "l5_onset_7d_min", "m10_mean_7d_steps_per_min", "m10_onset_7d_min", "circadian_valid_days_7d_count")
COUNTS_COLUMNS = CircadianColumns(
    "interdaily_stability_counts_7d", "intradaily_variability_counts_7d", "relative_amplitude_counts_7d",
    "l5_mean_7d_counts_per_min", "l5_onset_counts_7d_min", "m10_mean_7d_counts_per_min", "m10_onset_counts_7d_min",
    "circadian_counts_valid_days_7d_count")
ENMO_COLUMNS = CircadianColumns(
    "interdaily_stability_enmo_7d", "intradaily_variability_enmo_7d", "relative_amplitude_enmo_7d",
    "l5_mean_7d_mg", "l5_onset_enmo_7d_min", "m10_mean_7d_mg", "m10_onset_enmo_7d_min",
    "circadian_enmo_valid_days_7d_count")
CIRCADIAN_DAILY_COLUMNS = STEPS_COLUMNS.table
CIRCADIAN_COUNTS_DAILY_COLUMNS = COUNTS_COLUMNS.table
CIRCADIAN_ENMO_DAILY_COLUMNS = ENMO_COLUMNS.table


def circadian_daily_features(
    minute: pd.DataFrame,
    *,
    timezone: str = "UTC",
    definition: Definition = "van_someren_1999",
    bin_minutes: int = 60,
    activity_threshold: float | None = None,
    min_valid_days: int = 5,
    min_wear_min: int = MIN_WEAR_MIN,
) -> pd.DataFrame:
    """The rest-activity rhythm of the 7 days ending with each UTC day, from minute-level steps.

    For each UTC day with data, the window is that day and the 6 before it. A worn minute
    (``wear`` true, a step count) contributes its steps per minute, binarized first when
    ``activity_threshold`` is given; an unworn minute has no value. The window's measures are
    computed in the wearer's local time (``timezone``, the source's device clock zone) so that
    L5 and M10 onsets are clock times, and only when at least ``min_valid_days`` of its days
    have ``min_wear_min`` worn minutes (a valid day, as for the daily activity table); else NaN
    and a reason. L5 and M10 also need every minute of the day worn on at least one day; their
    onsets take the middle of equal windows (``van_someren_1999``) or the first
    (``pyactigraphy``), see :func:`least_and_most_active`.

    Parameters
    ----------
    minute : DataFrame
        Canonical MINUTE_WEARABLE frame: ``subject_id``, ``timestamp`` (UTC, start of the
        minute), ``steps_count``, ``wear``. Not modified. A repeated minute keeps its last row.
    timezone : str
        IANA zone of the wearer's clock.
    definition : str
        IS and IV by :data:`DEFINITIONS`.
    bin_minutes : int
        Bin length for IS and IV (60, van Someren et al. 1999).
    activity_threshold : float, optional
        Binarize the minutes (active above it) before any measure; default: steps as they are.
    min_valid_days : int
        Least valid days in the 7-day window.
    min_wear_min : int
        Least worn minutes of a valid day.

    Returns
    -------
    DataFrame
        Columns :data:`CIRCADIAN_DAILY_COLUMNS`, one row per subject and UTC day present in
        ``minute``, sorted by subject and day.
    """
    _require_columns(minute, ("subject_id", "timestamp", "steps_count", "wear"), "MINUTE_WEARABLE")
    frame = pd.DataFrame({
        "subject_id": minute["subject_id"].astype(str).to_numpy(),
        "timestamp": _utc(minute["timestamp"], "MINUTE_WEARABLE").dt.floor("min").to_numpy(dtype="datetime64[ns]"),
        "activity": pd.to_numeric(minute["steps_count"], errors="coerce").to_numpy(dtype=float),
    })
    frame["activity"] = frame["activity"].where(minute["wear"].fillna(False).astype(bool).to_numpy())
    return _rhythm_rows(frame, STEPS_COLUMNS, timezone=timezone, definition=definition, bin_minutes=bin_minutes,
                        activity_threshold=activity_threshold, min_valid_days=min_valid_days,
                        min_wear_min=min_wear_min)


def counts_per_minute(counts: pd.DataFrame) -> pd.DataFrame:
    """Epoch activity counts (canonical ACTIVITY_COUNTS frame) as counts per minute.

    Epochs shorter than a minute are summed into their minute, which has a value only when all
    its epochs do (a minute with half its epochs would read as half as active). An epoch of
    several minutes gives each of its minutes its mean count per minute. Epochs that neither
    divide a minute nor are whole minutes (45 s) give no minutes.

    Returns
    -------
    DataFrame
        ``subject_id``, ``timestamp`` (UTC, naive numpy, start of the minute), ``activity``
        (counts per minute, NaN where unknown), one row per subject and minute with data.
    """
    _require_columns(counts, ("subject_id", "timestamp", "activity_count", "epoch_s"), "ACTIVITY_COUNTS")
    frame = pd.DataFrame({
        "subject_id": counts["subject_id"].astype(str).to_numpy(),
        "timestamp": _utc(counts["timestamp"], "ACTIVITY_COUNTS").to_numpy(dtype="datetime64[ns]"),
        "count": pd.to_numeric(counts["activity_count"], errors="coerce").to_numpy(dtype=float),
        "epoch_s": pd.to_numeric(counts["epoch_s"], errors="coerce").to_numpy(dtype=float),
    }).drop_duplicates(["subject_id", "timestamp"], keep="last")
    parts = []
    short = frame[(frame["epoch_s"] < 60) & (60 % frame["epoch_s"] == 0)]
    if not short.empty:
        minute = short.assign(timestamp=short["timestamp"].dt.floor("min"),
                              share=short["epoch_s"] / 60 * short["count"].notna())
        summed = minute.groupby(["subject_id", "timestamp"], sort=False).agg(
            activity=("count", "sum"), covered=("share", "sum")).reset_index()
        summed["activity"] = summed["activity"].where(summed["covered"] > 1 - 1e-9)
        parts.append(summed[["subject_id", "timestamp", "activity"]])
    long = frame[(frame["epoch_s"] >= 60) & (frame["epoch_s"] % 60 == 0)]
    if not long.empty:
        minutes = (long["epoch_s"] // 60).astype(int).to_numpy()
        expanded = long.loc[long.index.repeat(minutes)]
        within = np.concatenate([np.arange(n) for n in minutes])
        parts.append(pd.DataFrame({
            "subject_id": expanded["subject_id"].to_numpy(),
            "timestamp": expanded["timestamp"].to_numpy() + within.astype("timedelta64[m]"),
            "activity": (expanded["count"] / (expanded["epoch_s"] / 60)).to_numpy(),
        }))
    if not parts:
        return pd.DataFrame({"subject_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[ns]"),
                             "activity": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


def circadian_counts_daily_features(counts: pd.DataFrame, **options) -> pd.DataFrame:
    """:func:`circadian_daily_features` from epoch activity counts (Actiwatch, ActiGraph), as
    counts per minute (:func:`counts_per_minute`), into :data:`CIRCADIAN_COUNTS_DAILY_COLUMNS`.

    Every minute with a count is taken as worn: counts carry no wear flag, and a run of zero
    counts is rest as often as it is a watch on the table.
    """
    return _rhythm_rows(counts_per_minute(counts), COUNTS_COLUMNS, **options)


def circadian_accel_daily_features(accel: pd.DataFrame, fs_hz: float, subject_id: str, *, autocalibrate: bool = True,
                                   **options) -> pd.DataFrame:
    """:func:`circadian_daily_features` from one raw wrist accelerometry recording, on each worn
    minute's mean ENMO (mg), into :data:`CIRCADIAN_ENMO_DAILY_COLUMNS`.

    The recording is autocalibrated first when ``autocalibrate`` (as for the activity levels),
    its worn minutes found by the same wear detection, then summarised per UTC minute
    (:func:`features.biomarkers.activity.wrist_minutes`): an unworn minute has no value. ``accel``
    is a canonical ACCELEROMETRY frame sampled at ``fs_hz``; ``options`` those of
    :func:`circadian_daily_features`.
    """
    from features.biomarkers import activity

    min_wear_min, needed = options.get("min_wear_min", MIN_WEAR_MIN), options.get("min_valid_days", 5)
    recorded = _recorded_days(accel["timestamp"], min_wear_min)
    if recorded.empty:
        return _empty_frame(ENMO_COLUMNS.table)
    if recorded.max() < needed:  # no window can qualify: its rows say so without the work
        rows = [{"subject_id": subject_id, "event_timestamp": day + _DAY, ENMO_COLUMNS.valid_days: math.nan,
                 "missing_reason": f"{int(days)} of the 7 days to this one hold {min_wear_min} recorded minutes "
                                   f"(needs {needed} valid days)"}
                for day, days in recorded.items()]
        return _table(rows, ENMO_COLUMNS.table)
    time_s, accel_g, _ = activity.calibrated_recording(accel, fs_hz, autocalibrate=autocalibrate)
    minutes = activity.wrist_minutes(time_s, accel_g, fs_hz, activity.worn_periods(time_s, accel_g, fs_hz))
    frame = pd.DataFrame({"subject_id": subject_id, "timestamp": minutes["timestamp"].to_numpy(),
                          "activity": minutes["enmo_mg"].where(minutes["worn"]).to_numpy()})
    return _rhythm_rows(frame, ENMO_COLUMNS, **options)


def _recorded_days(timestamp: pd.Series, min_wear_min: int) -> pd.Series:
    """Per UTC day a recording touches, how many of the 7 days to it hold ``min_wear_min`` recorded
    minutes: an upper bound of the valid days, from the time stamps alone."""
    if timestamp.empty:
        return pd.Series(dtype=float)
    first, last = timestamp.iloc[0].floor("D"), timestamp.iloc[-1].floor("D")
    days = pd.date_range(first, last, freq="D")
    start, end = timestamp.iloc[0], timestamp.iloc[-1]
    minutes = [(min(end, day + _DAY) - max(start, day)).total_seconds() / 60.0 for day in days]
    full = pd.Series([float(m >= min_wear_min) for m in minutes], index=days)
    return full.rolling(WINDOW_DAYS, min_periods=1).sum()


def _rhythm_rows(frame: pd.DataFrame, names: CircadianColumns, *, timezone: str = "UTC",
                 definition: Definition = "van_someren_1999", bin_minutes: int = 60,
                 activity_threshold: float | None = None, min_valid_days: int = 5,
                 min_wear_min: int = MIN_WEAR_MIN) -> pd.DataFrame:
    """The table's rows from ``subject_id``, ``timestamp`` (naive UTC minutes) and ``activity`` per
    minute (NaN: not worn), named by ``names``."""
    if frame.empty:
        return _empty_frame(names.table)
    frame = frame.drop_duplicates(["subject_id", "timestamp"], keep="last").sort_values(["subject_id", "timestamp"])
    ties: Ties = "first" if definition == "pyactigraphy" else "middle"
    rows = []
    for subject_id, subject in frame.groupby("subject_id", sort=True):
        stamps = pd.DatetimeIndex(subject["timestamp"]).tz_localize("UTC")  # numpy times: UTC without a zone
        worn = pd.Series(subject["activity"].to_numpy(dtype=float), index=stamps)
        # Every minute from the first to the last: a minute without a row is a minute without a value.
        worn = worn.reindex(pd.date_range(stamps[0], stamps[-1], freq="min"))
        activity = binarized(worn, activity_threshold) if activity_threshold is not None else worn
        # Every day from the first to the last is there (the minutes were reindexed): a rolling
        # count over 7 rows is the count over the 7 days.
        worn_per_day = worn.notna().groupby(worn.index.floor("D")).sum()
        valid_days = (worn_per_day >= min_wear_min).astype(int).rolling(WINDOW_DAYS, min_periods=1).sum()
        for day, valid in valid_days.astype(int).items():
            start, end = day - (WINDOW_DAYS - 1) * _DAY, day + _DAY
            window = activity.loc[start:end - pd.Timedelta(minutes=1)]
            row = {"subject_id": subject_id, "event_timestamp": end, names.valid_days: float(valid),
                   "missing_reason": None}
            if valid < min_valid_days:
                row["missing_reason"] = (f"{valid} valid days in the 7 days to this one (needs {min_valid_days} with "
                                         f"{min_wear_min} worn minutes)")
                rows.append(row)
                continue
            local = window.tz_convert(timezone)
            bins = hourly_bins(local, bin_minutes, definition)
            extremes = least_and_most_active(local, ties=ties)
            row.update({names.interdaily_stability: interdaily_stability(bins, definition),
                        names.intradaily_variability: intradaily_variability(bins, definition),
                        names.relative_amplitude: extremes.relative_amplitude,
                        names.l5_mean: extremes.l5, names.l5_onset: extremes.l5_onset_min,
                        names.m10_mean: extremes.m10, names.m10_onset: extremes.m10_onset_min})
            if not np.isfinite(extremes.l5):
                row["missing_reason"] = "L5, M10 and RA need every minute of the day worn on at least one day"
            rows.append(row)
    return _table(rows, names.table)
