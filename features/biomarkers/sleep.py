"""Sleep biomarkers: nightly sleep from minute-level sleep stages, and from raw wrist
accelerometry through SKDH.

Two sources, two table functions, one row per subject per night:

* :func:`minute_sleep_nightly_features` from minute-level wearable exports (a sleep stage per
  minute), night window 18:00-12:00 in the wearer's local time;
* :func:`accel_sleep_nightly_features` from a raw wrist accelerometry file (one subject)
  through the SKDH pipeline of :func:`skdh_sleep_pipeline`, SKDH's noon-to-noon windows in the
  wearer's local time.

Both tables carry ``event_timestamp`` = the end of the window (by default local noon on the
morning the night ends, in UTC), so a subject's two rows of one night share it. The measures are those of the
consensus sleep diary and actigraphy reporting (Carney et al. 2012):

* total sleep time (TST): minutes asleep within the sleep period;
* wake after sleep onset (WASO): minutes awake between sleep onset and the final awakening;
* sleep onset latency (SOL): minutes from the start of the rest period (lights-off proxy) to
  sleep onset;
* sleep efficiency (SE): TST as a percentage of the rest period (time in bed proxy).

How each source finds the rest period is documented with its function. ``missing_reason`` is
``None`` when every measure of the row was computed, else a sentence saying why the NaN
measures could not be. A night only partly observed (the recording starts or ends inside it,
or the device was off at bedtime) gives NaN and a reason, never a truncated night.

A defect of SKDH 0.17.18 is worked around (``skdh/sleep/sleep_classification.py``, rule d of
Webster's rescoring): the rule's mask is an integer array, so NumPy indexes with it instead of
masking, and the first two runs of the window's per-minute predictions are set to wake. When no
afternoon rest precedes the night, the night's first sleep run is lost (a whole night, when it is
one run: "no minute asleep"), and which case applies depends on where the window starts. The
sleep step here (:func:`skdh_sleep_pipeline`) takes SKDH's Cole-Kripke scores unrescored and
applies Webster's rules itself (:func:`webster_rescored`).

References
----------
Carney CE, Buysse DJ, Ancoli-Israel S, et al. (2012). The consensus sleep diary: standardizing
prospective sleep self-monitoring. Sleep 35(2):287-302. doi:10.5665/sleep.1642
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.biomarkers._frames import _empty_frame, _require_columns, _table, _utc, local_instant
from features.biomarkers.activity import unix_time_s_and_accel_g

if TYPE_CHECKING:  # pragma: no cover
    import skdh

# Night window of minute data: 18:00 to 12:00 the next day (18 h), the wearer's local time.
NIGHT_START_HOUR = 18
NIGHT_HOURS = 18
# Sleep runs closer than this merge into one sleep period (SKDH's max_activity_break default).
MAX_SLEEP_GAP_MIN = 60
# A sleep period with more minutes than this without a worn stage is not reported.
MAX_UNKNOWN_IN_SLEEP_PERIOD_MIN = 30
ASLEEP_STAGES = ("light", "deep", "rem", "asleep")
# SKDH windows: noon to noon (local), SKDH's default day_window for sleep.
SKDH_SLEEP_WINDOW = (12, 24)
# A sleep period that starts or ends this close to the recording's ends is taken as cut by it.
RECORDING_EDGE_MARGIN_MIN = 15.0

MINUTE_SLEEP_NIGHTLY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "total_sleep_time_night_min",
    "sleep_efficiency_night_percent",
    "waso_night_min",
    "sleep_onset_latency_night_min",
    "missing_reason",
)
ACCEL_SLEEP_NIGHTLY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "total_sleep_time_accel_night_min",
    "sleep_efficiency_accel_night_percent",
    "waso_accel_night_min",
    "sleep_onset_latency_accel_night_min",
    "missing_reason",
)

_UNKNOWN, _WAKE, _ASLEEP = 0, 1, 2
_SKDH_KEYS = {
    "total_sleep_time_accel_night_min": "total sleep time",
    "sleep_efficiency_accel_night_percent": "percent time asleep",
    "waso_accel_night_min": "wake after sleep onset",
    "sleep_onset_latency_accel_night_min": "sleep onset latency",
}


# --------------------------------------------------------------------------------------------
# Pure helpers on per-minute arrays


def main_sleep_period_min(asleep: np.ndarray, max_gap_min: int = MAX_SLEEP_GAP_MIN) -> tuple[int, int] | None:
    """The main sleep period of a night: minute indices ``(onset, final_awakening)``.

    Runs of asleep minutes separated by at most ``max_gap_min`` minutes of anything else merge
    into one period; the main period is the one with the most asleep minutes (the earliest on a
    tie). ``onset`` is its first asleep minute, ``final_awakening`` the minute after its last.

    Parameters
    ----------
    asleep : array-like of bool, shape (n_minutes,)
        True for a minute scored asleep.
    max_gap_min : int
        Longest interruption, minutes, that keeps two runs in one period.

    Returns
    -------
    tuple of int or None
        ``(onset, final_awakening)`` with ``0 <= onset < final_awakening <= n_minutes``, or
        None when no minute is asleep.
    """
    minutes = np.flatnonzero(np.asarray(asleep, dtype=bool))
    if minutes.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(minutes) > max_gap_min + 1)
    starts = np.r_[0, breaks + 1]
    stops = np.r_[breaks + 1, minutes.size]
    best = int(np.argmax(stops - starts))
    return int(minutes[starts[best]]), int(minutes[stops[best] - 1]) + 1


def sleep_efficiency_percent(total_sleep_time_min: float, time_in_bed_min: float) -> float:
    """Sleep efficiency: total sleep time as a percentage of time in bed (NaN for no time in bed)."""
    return 100.0 * total_sleep_time_min / time_in_bed_min if time_in_bed_min > 0 else math.nan


# --------------------------------------------------------------------------------------------
# Minute-level sleep stages


def minute_sleep_nightly_features(minute: pd.DataFrame, *, timezone: str = "UTC",
                                  night_start_hour: int = NIGHT_START_HOUR,
                                  night_hours: int = NIGHT_HOURS) -> pd.DataFrame:
    """Nightly sleep from minute-level sleep stages, one row per subject per night.

    The night of day D is the window from D ``night_start_hour`` (18:00) for ``night_hours``
    (18 h, to D+1 12:00) in the wearer's local time (``timezone``, the source's device clock
    zone: a night in Chicago is not a night in UTC); its row's ``event_timestamp`` is the
    window's end, in UTC. A window spanning a daylight-saving change holds the real minutes
    between its two wall-clock ends (17 or 19 h instead of 18). A minute is *asleep* when worn
    with stage light, deep, rem or asleep;
    *wake* when worn with stage wake; otherwise (not worn, stage unknown or missing, no row)
    *unknown*. In the window:

    1. sleep period: the main sleep period (:func:`main_sleep_period_min`: asleep runs merged
       across gaps of <= 60 min, the one with the most sleep); sleep onset is its first asleep
       minute, the final awakening the minute after its last;
    2. rest period (lights-off proxy, as minute exports carry no in-bed marker): it starts with
       the uninterrupted run of worn, wake, step-free minutes (``steps_count == 0``) that ends
       at sleep onset, and ends with the run of such minutes that starts at the final
       awakening. Without such minutes it starts at onset (SOL 0) and ends at the final
       awakening;
    3. ``total_sleep_time_night_min``: asleep minutes in the sleep period;
       ``waso_night_min``: wake minutes in the sleep period;
       ``sleep_onset_latency_night_min``: from the rest period's start to sleep onset;
       ``sleep_efficiency_night_percent``: 100 * TST / rest period length.

    The night is reported only if it was observed: the minute before the rest period and the
    minute after it must be worn with a stage and inside the window (so bedtime and rising were
    seen; a recording that starts or ends mid-night, or a device taken off at bedtime, gives
    NaN and a reason), and the sleep period may hold at most 30 unknown minutes.

    Parameters
    ----------
    minute : DataFrame
        Canonical MINUTE_WEARABLE frame: ``subject_id``, ``timestamp`` (UTC, start of the
        minute), ``sleep_stage`` (wake, light, deep, rem, asleep, unknown or missing),
        ``steps_count``, ``wear``; other columns are ignored. Not modified. A repeated minute
        keeps its last row.

    Returns
    -------
    DataFrame
        Columns :data:`MINUTE_SLEEP_NIGHTLY_COLUMNS`: ``subject_id``, ``event_timestamp`` (UTC,
        the end of the window: local 12:00 of the morning ending the night by default), the
        four measures (float; minutes and percent) and ``missing_reason``; one row per subject
        and night window holding any of its minutes (by default minutes 12:00-18:00 belong to
        no night), sorted by subject and night.

    Raises
    ------
    ValueError
        If a column is missing or the timestamps are timezone-naive.

    References
    ----------
    Carney CE et al. (2012). The consensus sleep diary: standardizing prospective sleep
    self-monitoring. Sleep 35(2):287-302. doi:10.5665/sleep.1642
    """
    _require_columns(minute, ("subject_id", "timestamp", "sleep_stage", "steps_count", "wear"), "MINUTE_WEARABLE")
    stamps = _utc(minute["timestamp"], "MINUTE_WEARABLE").dt.floor("min").reset_index(drop=True)
    stage = minute["sleep_stage"].astype(object).where(minute["sleep_stage"].notna(), "unknown")
    stage = stage.astype(str).str.lower().to_numpy()
    worn = minute["wear"].astype(object).eq(True).to_numpy(dtype=bool)
    frame = pd.DataFrame({
        "subject_id": minute["subject_id"].astype(str).to_numpy(),
        "timestamp": stamps,
        "state": np.where(~worn, _UNKNOWN, np.where(np.isin(stage, ASLEEP_STAGES), _ASLEEP,
                                                    np.where(stage == "wake", _WAKE, _UNKNOWN))),
        "steps": pd.to_numeric(minute["steps_count"], errors="coerce").to_numpy(dtype=float),
    })
    if frame.empty:
        return _empty_frame(MINUTE_SLEEP_NIGHTLY_COLUMNS)
    frame = frame.drop_duplicates(["subject_id", "timestamp"], keep="last")
    offset = pd.Timedelta(hours=night_start_hour)
    wall = frame["timestamp"].dt.tz_convert(timezone).dt.tz_localize(None)
    frame["night"] = (wall - offset).dt.floor("D") + offset  # the window's wall-clock start
    bounds = {night: (local_instant(night, timezone), local_instant(night + pd.Timedelta(hours=night_hours), timezone))
              for night in frame["night"].unique()}
    start = frame["night"].map(lambda night: bounds[night][0])
    frame["minute"] = ((frame["timestamp"] - start).dt.total_seconds() // 60).astype(np.int64)
    length = frame["night"].map(lambda night: int((bounds[night][1] - bounds[night][0]).total_seconds() // 60))
    frame = frame[frame["minute"] < length]
    rows = []
    for (subject_id, night), in_night in frame.groupby(["subject_id", "night"], sort=True):
        start_utc, end_utc = bounds[night]
        n_minutes = int((end_utc - start_utc).total_seconds() // 60)
        state = np.full(n_minutes, _UNKNOWN, dtype=np.int8)
        steps = np.full(n_minutes, np.nan)
        index = in_night["minute"].to_numpy()
        state[index] = in_night["state"].to_numpy()
        steps[index] = in_night["steps"].to_numpy()
        values, reason = _night_from_minutes(state, steps)
        rows.append({"subject_id": subject_id, "event_timestamp": end_utc, **values, "missing_reason": reason})
    return _table(rows, MINUTE_SLEEP_NIGHTLY_COLUMNS)


def _night_from_minutes(state: np.ndarray, steps: np.ndarray) -> tuple[dict[str, float], str | None]:
    """Measures of one night window from per-minute states and steps, both shape (n_minutes,)."""
    values = dict.fromkeys(MINUTE_SLEEP_NIGHTLY_COLUMNS[2:-1], math.nan)
    observed = state != _UNKNOWN
    if not observed.any():
        return values, "no worn minutes with a sleep stage in the night window"
    period = main_sleep_period_min(state == _ASLEEP)
    if period is None:
        unknown = state.size - int(np.count_nonzero(observed))
        return values, (f"no sleep recorded in the night window ({unknown} of its {state.size} min not worn "
                        "or without a stage)")
    onset, awakening = period
    resting = (state == _WAKE) & (steps == 0)
    in_bed = onset
    while in_bed > 0 and resting[in_bed - 1]:
        in_bed -= 1
    out_of_bed = awakening
    while out_of_bed < state.size and resting[out_of_bed]:
        out_of_bed += 1
    if in_bed == 0 or not observed[in_bed - 1]:
        return values, "bedtime not observed: no worn minute with a sleep stage just before the rest period"
    if out_of_bed == state.size or not observed[out_of_bed]:
        return values, "rising not observed: no worn minute with a sleep stage just after the rest period"
    inside = state[onset:awakening]
    unknown = int(np.count_nonzero(inside == _UNKNOWN))
    if unknown > MAX_UNKNOWN_IN_SLEEP_PERIOD_MIN:
        return values, (f"{unknown} min without a worn sleep stage inside the sleep period "
                        f"(> {MAX_UNKNOWN_IN_SLEEP_PERIOD_MIN} min)")
    total_sleep = float(np.count_nonzero(inside == _ASLEEP))
    values.update({
        "total_sleep_time_night_min": total_sleep,
        "sleep_efficiency_night_percent": sleep_efficiency_percent(total_sleep, float(out_of_bed - in_bed)),
        "waso_night_min": float(np.count_nonzero(inside == _WAKE)),
        "sleep_onset_latency_night_min": float(onset - in_bed),
    })
    return values, None


# --------------------------------------------------------------------------------------------
# Raw wrist accelerometry through SKDH


def webster_rescored(asleep: np.ndarray) -> np.ndarray:
    """Webster's rescoring rules a-d of per-minute sleep (1) / wake (0) scores (Webster et al.
    1982, as listed by Cole et al. 1992), shape (n_minutes,) -> a rescored copy.

    a-c: the first 1, 3 or 4 minutes of a run scored asleep after at least 4, 10 or 15 minutes
    scored awake become wake; d: a run of at most 6 minutes asleep with at least 10 minutes awake
    on both sides (after a-c) becomes wake. A run at the window's start or end has no side there
    and is kept by rule d.
    """
    scores = np.asarray(asleep).astype(np.int_)  # a copy
    lengths, starts, values = _runs(scores)
    for i in np.flatnonzero(values[1:] == 1) + 1:  # sleep runs after a wake run
        wake = lengths[i - 1]
        rescored = 4 if wake >= 15 else 3 if wake >= 10 else 1 if wake >= 4 else 0
        scores[starts[i]:starts[i] + min(rescored, lengths[i])] = 0
    lengths, starts, values = _runs(scores)
    inner = np.arange(1, len(lengths) - 1)
    flanked = (lengths[inner - 1] >= 10) & (lengths[inner + 1] >= 10)
    short = inner[(values[inner] == 1) & (lengths[inner] <= 6) & flanked]
    for i in short:
        scores[starts[i]:starts[i] + lengths[i]] = 0
    return scores


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run lengths, start indices and values of a 1-D array."""
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), values
    starts = np.r_[0, np.flatnonzero(np.diff(values)) + 1]
    return np.diff(np.r_[starts, values.size]), starts, values[starts]


def cole_kripke_rescored(act_index: np.ndarray, sf: float = 0.243, rescore: bool = True) -> np.ndarray:
    """SKDH's Cole-Kripke sleep scores of per-minute activity index, rescored by
    :func:`webster_rescored` instead of SKDH's own rules (see the module notes); SKDH's signature."""
    from skdh.sleep.sleep_classification import compute_sleep_predictions

    scores = compute_sleep_predictions(act_index, sf=sf, rescore=False)
    return webster_rescored(scores) if rescore else scores


@functools.cache
def _rescored_sleep_class() -> type:
    import skdh.sleep.sleep as skdh_sleep
    from skdh.sleep import Sleep

    class RescoredSleep(Sleep):
        """SKDH's ``Sleep`` with Webster's rescoring by :func:`cole_kripke_rescored`: SKDH's
        sleep module calls the scoring function it imported by name, which this step swaps
        for its own run only."""

        def predict(self, **kwargs):
            original = skdh_sleep.compute_sleep_predictions
            skdh_sleep.compute_sleep_predictions = cole_kripke_rescored
            try:
                return super().predict(**kwargs)
            finally:
                skdh_sleep.compute_sleep_predictions = original

    RescoredSleep.__module__ = __name__  # so Pipeline.save/load and pickle find it here
    return RescoredSleep


def __getattr__(name: str):
    if name == "RescoredSleep":
        return _rescored_sleep_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def skdh_sleep_pipeline(fs_hz: float, window_start_hour: int = SKDH_SLEEP_WINDOW[0]) -> skdh.Pipeline:
    """The SKDH pipeline behind :func:`accel_sleep_nightly_features`.

    Steps, all with SKDH's defaults unless stated:

    1. ``skdh.preprocessing.GetDayWindowIndices(bases=12, periods=24)``: noon-to-noon windows
       (``window_start_hour``), in the time zone the pipeline runs with (``tz_name``);
    2. :class:`features.biomarkers.activity.BlockWearDetection` (SKDH's
       ``AccelThresholdWearDetection``, faster): the same wear detection as the
       activity pipeline (van Hees et al. 2013);
    3. ``RescoredSleep(day_window=(12, 24))``, SKDH's ``skdh.sleep.Sleep`` with Webster's
       rescoring applied as published (see the module notes): per window, data resampled to 20 Hz; the total
       sleep opportunity (TSO, the rest period) from changes in the arm's z-angle (van Hees et
       al. 2015, 2018): the longest block of 5-min medians of the absolute z-angle change below
       a window-specific threshold (15 x the 10th percentile, within 0.1-1.0 deg), rest blocks
       of >= 30 min, interruptions of <= 60 min bridged, minus non-wear and SKDH's own
       low-movement non-wear (SD < 1 mg over 30 min); per-minute sleep/wake by the
       Cole-Kripke algorithm on the activity index (Bai et al. 2016) with Webster's rescoring;
       windows with < 6 h of data are skipped.

    Run it the way :func:`accel_sleep_nightly_features` does::

        results = skdh_sleep_pipeline(50.0).run(time=time_s, accel=accel_g, fs=50.0, tz_name="UTC")
        results["RescoredSleep"]  # dict of per-window lists

    Parameters
    ----------
    fs_hz : float
        Sampling rate the pipeline is built for, Hz (> 0); pass it again to ``run(fs=...)``.
    window_start_hour : int
        Local hour at which each 24-h window starts (12).

    Returns
    -------
    skdh.Pipeline
        A new pipeline; ``pipeline.save(path)`` writes it as YAML with its parameters.

    References
    ----------
    van Hees VT, Sabia S, Anderson KN, et al. (2015). A novel, open access method to assess
    sleep duration using a wrist-worn accelerometer. PLoS One 10(11):e0142533.
    doi:10.1371/journal.pone.0142533

    van Hees VT, Sabia S, Jones SE, et al. (2018). Estimating sleep parameters using an
    accelerometer without sleep diary. Sci Rep 8:12975. doi:10.1038/s41598-018-31266-z

    Cole RJ, Kripke DF, Gruen W, Mullaney DJ, Gillin JC (1992). Automatic sleep/wake
    identification from wrist activity. Sleep 15(5):461-469.

    Bai J, Di C, Xiao L, et al. (2016). An activity index for raw accelerometry data and its
    comparison with other activity metrics. PLoS One 11(8):e0160644.
    doi:10.1371/journal.pone.0160644
    """
    import skdh
    from skdh.preprocessing import GetDayWindowIndices

    from features.biomarkers.activity import BlockWearDetection

    if not fs_hz > 0:
        raise ValueError(f"fs_hz={fs_hz}: pass the sampling rate in Hz (> 0)")
    window = (window_start_hour, SKDH_SLEEP_WINDOW[1])
    pipeline = skdh.Pipeline()
    pipeline.add(GetDayWindowIndices(bases=window[0], periods=window[1]))
    pipeline.add(BlockWearDetection())
    pipeline.add(_rescored_sleep_class()(day_window=window))
    return pipeline


def accel_sleep_nightly_features(accel: pd.DataFrame, fs_hz: float, subject_id: str, *, timezone: str = "UTC",
                                 window_start_hour: int = SKDH_SLEEP_WINDOW[0]) -> pd.DataFrame:
    """Nightly sleep from one raw wrist accelerometry recording, through SKDH.

    Runs :func:`skdh_sleep_pipeline`; one row per 24-h window the recording touches, from
    ``window_start_hour`` (noon) in the wearer's local time (``timezone``, the source's device
    clock zone), ``event_timestamp`` = the window's end, in UTC. The rest period is SKDH's
    total sleep opportunity (TSO), its lights-off proxy:

    * ``total_sleep_time_accel_night_min``: minutes scored asleep within the TSO;
    * ``sleep_efficiency_accel_night_percent``: TST / TSO x 100 (SKDH "percent time asleep");
    * ``waso_accel_night_min``: minutes awake between the first and the last sleep minute;
    * ``sleep_onset_latency_accel_night_min``: minutes from the TSO start to the first sleep
      minute.

    Only windows the recording covers from noon to noon (to within a minute) are reported: a
    window the recording starts or ends in may hold part of a night, and a cut night's TST is
    not a TST. Such a window gets NaN and a reason, as does a window in which SKDH found no
    sleep period, or no minute asleep within it, or whose sleep period reaches within 15 min
    of the recording's start or end. SKDH runs only when some window is whole, so a recording
    needs 24 h, from noon to noon, for any value.

    Parameters
    ----------
    accel : DataFrame of n rows
        Canonical ACCELEROMETRY frame of one wrist recording (``timestamp`` UTC, ``accel_x_g``,
        ``accel_y_g``, ``accel_z_g`` in g), in time order without gaps. Not modified.
    fs_hz : float
        Sampling rate, Hz.
    subject_id : str
        The recording's subject, copied to every row.
    timezone, window_start_hour
        The wearer's time zone and the local hour the windows start (noon).

    Returns
    -------
    DataFrame
        Columns :data:`ACCEL_SLEEP_NIGHTLY_COLUMNS`: ``subject_id``, ``event_timestamp``, the four
        measures (float; minutes and percent) and ``missing_reason``.

    Raises
    ------
    ValueError
        For a frame SKDH cannot take (see ``activity.unix_time_s_and_accel_g``).

    References
    ----------
    See :func:`skdh_sleep_pipeline`.
    """
    time_s, accel_g = unix_time_s_and_accel_g(accel, fs_hz)
    if time_s.size == 0:
        return _empty_frame(ACCEL_SLEEP_NIGHTLY_COLUMNS)
    windows = _night_windows(time_s, timezone, window_start_hour)
    tolerance_s = 60.0
    covered = [start.timestamp() >= time_s[0] - tolerance_s and end.timestamp() <= time_s[-1] + tolerance_s
               for start, end in windows]
    result: dict = {"Date": []}
    if any(covered):  # SKDH runs only when a window can be reported
        with np.errstate(divide="ignore"):  # see activity.accel_activity_daily_features
            result = skdh_sleep_pipeline(fs_hz, window_start_hour).run(
                time=time_s, accel=accel_g, fs=float(fs_hz), tz_name=timezone)["RescoredSleep"]
    by_start = {local_instant(pd.Timestamp(str(date)) + pd.Timedelta(hours=window_start_hour), timezone): i
                for i, date in enumerate(result["Date"])}
    rows = []
    for (start, end), whole in zip(windows, covered, strict=True):
        if whole:
            values, reason = _night_from_skdh(result, by_start.get(start), time_s)
        else:
            hours = (min(time_s[-1], end.timestamp()) - max(time_s[0], start.timestamp())) / 3600.0
            values = dict.fromkeys(ACCEL_SLEEP_NIGHTLY_COLUMNS[2:-1], math.nan)
            reason = (f"recording covers {hours:.1f} h of the {(end - start).total_seconds() / 3600:.0f} h window "
                      f"from {window_start_hour:02d}:00 local: the night may be cut")
        rows.append({"subject_id": subject_id, "event_timestamp": end, **values, "missing_reason": reason})
    return _table(rows, ACCEL_SLEEP_NIGHTLY_COLUMNS)


def _night_windows(time_s: np.ndarray, timezone: str, start_hour: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end), UTC, of the windows from local ``start_hour`` to the same hour the next day
    that a recording touches (23, 24 or 25 h: a wall-clock day)."""
    base = pd.Timedelta(hours=start_hour)
    first, last = (pd.Timestamp(float(t), unit="s", tz="UTC").tz_convert(timezone).tz_localize(None)
                   for t in (time_s[0], time_s[-1]))
    starts = pd.date_range((first - base).floor("D") + base, (last - base).floor("D") + base, freq="D")
    return [(local_instant(start, timezone), local_instant(start + pd.Timedelta(days=1), timezone))
            for start in starts]


def _night_from_skdh(result: dict, i: int | None, time_s: np.ndarray) -> tuple[dict[str, float], str | None]:
    """Our measures from SKDH's results for window ``i`` of a recording (``time_s``: unix s)."""
    values = dict.fromkeys(ACCEL_SLEEP_NIGHTLY_COLUMNS[2:-1], math.nan)
    if i is None:
        return values, "SKDH skipped the window (less than 6 h of data)"
    tso_start = float(result["TSO Start Timestamp"][i])
    if not np.isfinite(tso_start):
        return values, "no sleep period found (SKDH total sleep opportunity)"
    tso_end = tso_start + 60.0 * float(result["TSO Duration"][i])
    margin_s = 60.0 * RECORDING_EDGE_MARGIN_MIN
    if tso_start - time_s[0] < margin_s or time_s[-1] - tso_end < margin_s:
        edge = "start" if tso_start - time_s[0] < margin_s else "end"
        return values, f"sleep period reaches the recording's {edge}: the night is cut"
    found = {column: float(result[key][i]) for column, key in _SKDH_KEYS.items()}
    if not found["total_sleep_time_accel_night_min"] > 0:
        # A rest period without a minute of sleep is implausible: no measure rather than zeros.
        return values, "SKDH scored no minute asleep within its sleep period"
    return found, None
