"""Physical-activity biomarkers: daily steps and cadence from minute exports, daily activity
levels from raw wrist accelerometry through SKDH.

Two sources, two table functions, one row per subject per UTC day:

* :func:`minute_activity_daily_features` from minute-level wearable exports (steps per minute):
  step total, minutes at a moderate cadence and the peak 1-minute and 30-minute cadences;
* :func:`accel_activity_daily_features` from a raw accelerometry file (one subject) through the
  SKDH pipeline of :func:`skdh_activity_pipeline`: wear detection, then time in sedentary,
  light and moderate-to-vigorous activity by published ENMO cut-points, and the mean ENMO.

A row carries ``event_timestamp``, the end of the UTC day it summarizes (the next midnight), and
``missing_reason``: ``None`` when every measure of the row was computed, else a sentence saying
why the measures that are NaN could not be. Too little data gives NaN and a reason, never an
exception and never a made-up value.

A day is valid with at least 600 worn minutes (10 h), the usual criterion of accelerometer
studies (Troiano et al. 2008) and SKDH's default (``min_wear_time=10`` hours).

SKDH (scikit-digital-health) is imported where it is used, not with this module: it takes
1-2 s to import (it loads matplotlib and lightgbm). The two SKDH process classes defined here,
:class:`ActivityLevelTimes` and :class:`MeanAcceleration`, are built on first access for the
same reason; ``from features.biomarkers.activity import ActivityLevelTimes`` works as usual,
and so does ``skdh.Pipeline.load`` of a saved pipeline that uses them.

References
----------
Troiano RP, Berrigan D, Dodd KW, Masse LC, Tilert T, McDowell M (2008). Physical activity in the
United States measured by accelerometer. Med Sci Sports Exerc 40(1):181-188.
doi:10.1249/mss.0b013e31815a51b3

Adamowicz L, Christakis Y, Czech MD, Adamusiak T (2022). SciKit Digital Health: Python package
for streamlined wearable inertial sensor data processing. JMIR mHealth uHealth 10(4):e36762.
doi:10.2196/36762
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.biomarkers._frames import _empty_frame, _nan_row, _require_columns, _table, _utc, _utc_days

if TYPE_CHECKING:  # pragma: no cover
    import skdh

# Tudor-Locke et al. (2018): 100 steps/min is the heuristic threshold of moderate intensity
# (about 3 METs) in adults.
MODERATE_CADENCE_STEPS_PER_MIN = 100.0
# Valid day: at least 10 h of wear (Troiano et al. 2008), in minutes.
MIN_WEAR_MIN = 600
# Default cut-points: Migueles et al. (2019) dominant-wrist ENMO thresholds for adults, SKDH's
# default ("migueles_wrist_adult"): sedentary < 50 mg <= light < 110 mg <= MVPA.
DEFAULT_CUTPOINTS = "migueles_wrist_adult"
# SKDH's epoch for the acceleration metric, s (ActivityLevelClassification short_wlen).
EPOCH_S = 5

MINUTE_ACTIVITY_DAILY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "steps_sum_1d_count",
    "active_minutes_1d_min",
    "peak_cadence_1min_1d_steps_per_min",
    "peak_cadence_30min_1d_steps_per_min",
    "wear_time_1d_min",
    "missing_reason",
)
ACCEL_ACTIVITY_DAILY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "sedentary_time_1d_min",
    "light_activity_1d_min",
    "mvpa_1d_min",
    "acceleration_intensity_mean_1d_mg",
    "accel_wear_time_1d_min",
    "nonwear_1d_percent",
    "clipped_samples_1d_percent",
    "calibration_error_before_mg",
    "calibration_error_after_mg",
    "autocalibrated_flag",
    "actigraph_counts_vm_mean_1d_counts_per_min",
    "missing_reason",
)
_ACTIVITY_LEVEL_COLUMNS = ("sedentary_time_1d_min", "light_activity_1d_min", "mvpa_1d_min",
                           "acceleration_intensity_mean_1d_mg", "actigraph_counts_vm_mean_1d_counts_per_min")

_DAY = pd.Timedelta(days=1)
_ACCEL_AXES = ("accel_x_g", "accel_y_g", "accel_z_g")
_FILL_BLOCK_ROWS = 1 << 15
_MINUTES_PER_BLOCK = 60  # wrist_minutes sums ENMO an hour of samples at a time
_NS_PER_UNIT = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
# SKDH result keys of ActivityLevelTimes for our columns ("wake": all worn time when no sleep
# periods are passed in, as here).
_SKDH_LEVEL_KEYS = {
    "sedentary_time_1d_min": f"wake sed {EPOCH_S}s epoch [min]",
    "light_activity_1d_min": f"wake light {EPOCH_S}s epoch [min]",
    "mvpa_1d_min": f"wake MVPA {EPOCH_S}s epoch [min]",
}
_SKDH_MEAN_KEY = "wake mean acc [g]"


# --------------------------------------------------------------------------------------------
# Steps and cadence from minute-level exports


def active_minutes_min(
    steps_per_min: np.ndarray, threshold_steps_per_min: float = MODERATE_CADENCE_STEPS_PER_MIN
) -> int:
    """Minutes at or above a cadence threshold (default 100 steps/min, moderate intensity).

    Parameters
    ----------
    steps_per_min : array-like of shape (n_minutes,)
        Steps counted in each minute (steps/min); NaN minutes never count.
    threshold_steps_per_min : float
        Inclusive cadence threshold, steps/min.

    Returns
    -------
    int
        Number of minutes with ``steps >= threshold``.

    References
    ----------
    Tudor-Locke C, Han H, Aguiar EJ, et al. (2018). How fast is fast enough? Walking cadence
    (steps/min) as a practical estimate of intensity in adults: a narrative review. Br J Sports
    Med 52(12):776-788. doi:10.1136/bjsports-2017-097628
    """
    steps = np.asarray(steps_per_min, dtype=float)
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero(steps >= threshold_steps_per_min))


def peak_cadence_steps_per_min(steps_per_min: np.ndarray, n_minutes: int) -> float:
    """Peak cadence: mean of the ``n_minutes`` highest minutes of step counts, steps/min.

    The minutes need not be consecutive (Tudor-Locke et al. 2012). ``n_minutes=1`` gives the
    peak 1-minute cadence, ``n_minutes=30`` the peak 30-minute cadence. NaN when fewer than
    ``n_minutes`` minutes have a count.

    Parameters
    ----------
    steps_per_min : array-like of shape (n_minutes_total,)
        Steps counted in each minute (steps/min); NaN minutes are ignored.
    n_minutes : int
        How many of the highest minutes to average (>= 1).

    Returns
    -------
    float
        Peak cadence, steps/min.

    References
    ----------
    Tudor-Locke C, Brashear MM, Katzmarzyk PT, Johnson WD (2012). Peak stepping cadence in
    free-living adults: 2005-2006 NHANES. J Phys Act Health 9(8):1125-1129.
    doi:10.1123/jpah.9.8.1125
    """
    if n_minutes < 1:
        raise ValueError(f"n_minutes={n_minutes}: pass 1 or more minutes")
    steps = np.asarray(steps_per_min, dtype=float).reshape(-1)
    steps = steps[np.isfinite(steps)]
    if steps.size < n_minutes:
        return math.nan
    return float(np.partition(steps, steps.size - n_minutes)[steps.size - n_minutes:].mean())


def minute_activity_daily_features(minute: pd.DataFrame, *, min_wear_min: int = MIN_WEAR_MIN) -> pd.DataFrame:
    """Daily steps and cadence from minute-level wearable data, one row per subject per UTC day.

    A minute is worn when ``wear`` is True and it has a step count; only worn minutes count
    towards any measure. A day with fewer than ``min_wear_min`` worn minutes gets NaN step
    measures and a ``missing_reason`` such as ``"wear time 410 min < 600 min"``; its
    ``wear_time_1d_min`` is still reported.

    * ``steps_sum_1d_count``: steps over the worn minutes of the day.
    * ``active_minutes_1d_min``: worn minutes at >= 100 steps/min, the cadence threshold of
      moderate intensity (Tudor-Locke et al. 2018); see :func:`active_minutes_min`.
    * ``peak_cadence_1min_1d_steps_per_min``: the highest minute of the day.
    * ``peak_cadence_30min_1d_steps_per_min``: mean of the day's 30 highest minutes, not
      necessarily consecutive (Tudor-Locke et al. 2012); see :func:`peak_cadence_steps_per_min`.
    * ``wear_time_1d_min``: worn minutes.

    Parameters
    ----------
    minute : DataFrame
        Canonical MINUTE_WEARABLE frame: ``subject_id``, ``timestamp`` (UTC, start of the
        minute), ``steps_count`` (steps in the minute), ``wear`` (bool); other columns are
        ignored. Not modified. A repeated minute keeps its last row.
    min_wear_min : int
        Least worn minutes of a valid day (600 = 10 h, Troiano et al. 2008).

    Returns
    -------
    DataFrame
        Columns :data:`MINUTE_ACTIVITY_DAILY_COLUMNS`: ``subject_id``, ``event_timestamp``
        (UTC, end of the day: the next midnight), the five measures above (float) and
        ``missing_reason`` (None or str); one row per subject and UTC day present in ``minute``,
        sorted by subject and day.

    Raises
    ------
    ValueError
        If a column is missing or the timestamps are timezone-naive.

    References
    ----------
    Tudor-Locke C, Han H, Aguiar EJ, et al. (2018). How fast is fast enough? Walking cadence
    (steps/min) as a practical estimate of intensity in adults: a narrative review. Br J Sports
    Med 52(12):776-788. doi:10.1136/bjsports-2017-097628

    Tudor-Locke C, Brashear MM, Katzmarzyk PT, Johnson WD (2012). Peak stepping cadence in
    free-living adults: 2005-2006 NHANES. J Phys Act Health 9(8):1125-1129.
    doi:10.1123/jpah.9.8.1125

    Troiano RP et al. (2008). Physical activity in the United States measured by accelerometer.
    Med Sci Sports Exerc 40(1):181-188. doi:10.1249/mss.0b013e31815a51b3
    """
    _require_columns(minute, ("subject_id", "timestamp", "steps_count", "wear"), "MINUTE_WEARABLE")
    steps = pd.to_numeric(minute["steps_count"], errors="coerce").to_numpy(dtype=float)
    frame = pd.DataFrame({
        "subject_id": minute["subject_id"].astype(str).to_numpy(),
        "timestamp": _utc(minute["timestamp"], "MINUTE_WEARABLE").dt.floor("min").reset_index(drop=True),
        # True, 1 and 1.0 are worn; False, 0, NaN and None are not.
        "worn": minute["wear"].astype(object).eq(True).to_numpy(dtype=bool) & np.isfinite(steps),
        "steps": steps,
    })
    if frame.empty:
        return _empty_frame(MINUTE_ACTIVITY_DAILY_COLUMNS)
    frame = frame.drop_duplicates(["subject_id", "timestamp"], keep="last")
    frame["day"] = frame["timestamp"].dt.floor("D")
    rows = []
    for (subject_id, day), day_min in frame.groupby(["subject_id", "day"], sort=True):
        worn_steps = day_min["steps"].to_numpy()[day_min["worn"].to_numpy()]
        wear_min = worn_steps.size
        row = {
            "subject_id": subject_id,
            "event_timestamp": day + _DAY,
            "steps_sum_1d_count": math.nan,
            "active_minutes_1d_min": math.nan,
            "peak_cadence_1min_1d_steps_per_min": math.nan,
            "peak_cadence_30min_1d_steps_per_min": math.nan,
            "wear_time_1d_min": float(wear_min),
            "missing_reason": None,
        }
        if wear_min < min_wear_min:
            row["missing_reason"] = f"wear time {wear_min} min < {min_wear_min} min"
        else:
            row.update({
                "steps_sum_1d_count": float(worn_steps.sum()),
                "active_minutes_1d_min": float(active_minutes_min(worn_steps)),
                "peak_cadence_1min_1d_steps_per_min": peak_cadence_steps_per_min(worn_steps, 1),
                "peak_cadence_30min_1d_steps_per_min": peak_cadence_steps_per_min(worn_steps, 30),
            })
        rows.append(row)
    return _table(rows, MINUTE_ACTIVITY_DAILY_COLUMNS)


# --------------------------------------------------------------------------------------------
# Raw accelerometry through SKDH


def unix_time_s_and_accel_g(accel: pd.DataFrame, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The arrays SKDH processes take, from a canonical ACCELEROMETRY frame, converted once.

    Parameters
    ----------
    accel : DataFrame of n rows
        Canonical ACCELEROMETRY frame of one recording: ``timestamp`` (timezone-aware),
        ``accel_x_g``, ``accel_y_g``, ``accel_z_g`` (g, any float dtype), in time order and
        without gaps. Not modified.
    fs_hz : float
        Sampling rate, Hz; checked against the timestamps.

    Returns
    -------
    time_s : ndarray of shape (n,), float64
        Unix time, s (UTC).
    accel_g : ndarray of shape (n, 3), float64, C-contiguous
        Acceleration, g, columns x, y, z. The only copy of the samples made (SKDH computes in
        float64).

    Raises
    ------
    ValueError
        If a column is missing, the timestamps are naive or out of order, the sample count does
        not match ``fs_hz`` over the recording's span (gaps or a wrong rate) or a sample is NaN.
    """
    _require_columns(accel, ("timestamp", *_ACCEL_AXES), "ACCELEROMETRY")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz={fs_hz}: pass the sampling rate in Hz (> 0)")
    stamps = accel["timestamp"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"ACCELEROMETRY.timestamp has dtype {stamps.dtype}; canonical frames carry timezone-aware UTC "
            "timestamps (datetime64[ns, UTC]; use tz_localize('UTC'))"
        )
    n = len(accel)
    if n and not stamps.is_monotonic_increasing:
        raise ValueError("ACCELEROMETRY.timestamp is not in increasing order: sort the recording by time first")
    # asi8 views the epoch integers (in the dtype's unit) without a copy.
    time_s = stamps.array.asi8 / float(_NS_PER_UNIT[stamps.dtype.unit])
    if n > 1:
        expected = (time_s[-1] - time_s[0]) * fs_hz + 1
        if abs(n - expected) > 0.01 * expected + 1:
            raise ValueError(
                f"ACCELEROMETRY has {n} samples over {time_s[-1] - time_s[0]:.1f} s, {expected:.0f} at "
                f"fs_hz={fs_hz}: the recording has gaps or another sampling rate; fill gaps "
                "(skdh.preprocessing.FillGaps) or pass the true rate"
            )
    columns = [accel[column].to_numpy() for column in _ACCEL_AXES]  # views of the frame's data
    accel_g = np.empty((n, 3), dtype=np.float64)
    # Interleave block by block, so each block of the output is written while in cache.
    for start in range(0, n, _FILL_BLOCK_ROWS):
        for k, column in enumerate(columns):
            accel_g[start:start + _FILL_BLOCK_ROWS, k] = column[start:start + _FILL_BLOCK_ROWS]
    if n and not np.isfinite(accel_g.sum()):
        bad = int(np.count_nonzero(~np.isfinite(accel_g).all(axis=1)))
        raise ValueError(
            f"ACCELEROMETRY has {bad} samples with NaN or infinite acceleration; SKDH needs finite "
            "samples: drop or fill them first"
        )
    return time_s, accel_g


def skdh_activity_pipeline(fs_hz: float, *, cutpoints: str | dict = DEFAULT_CUTPOINTS,
                           min_wear_min: int = MIN_WEAR_MIN) -> skdh.Pipeline:
    """The SKDH pipeline behind :func:`accel_activity_daily_features`.

    Steps, all with SKDH's defaults unless stated:

    1. ``skdh.preprocessing.GetDayWindowIndices(bases=0, periods=24)``: UTC calendar days;
    2. :class:`BlockWearDetection`: SKDH's ``AccelThresholdWearDetection`` with its defaults
       (non-wear where at least 2 axes have a standard deviation < 13 mg and a range < 67 mg
       over 60-min windows moved by 15 min, van Hees et al. 2013, then SKDH's
       re-classification rules), its window statistics computed per 15-min block;
    3. :class:`ActivityLevelTimes` (SKDH's ``ActivityLevelClassification`` computing only the
       endpoints used here): ENMO in 5-s epochs, time per intensity level by ``cutpoints``,
       mean ENMO over worn time; days with less wear than ``min_wear_min`` (10 h) are left NaN.

    Run it the way :func:`accel_activity_daily_features` does::

        pipeline = skdh_activity_pipeline(50.0)
        results = pipeline.run(time=time_s, accel=accel_g, fs=50.0, tz_name="UTC")
        results["ActivityLevelTimes"]  # dict of per-day arrays

    Parameters
    ----------
    fs_hz : float
        Sampling rate the pipeline is built for, Hz (> 0). SKDH processes take the rate at run
        time, so pass it again to ``run(fs=...)``.
    cutpoints : str or dict
        ENMO cut-points known to SKDH (``skdh.activity.get_available_cutpoints()``), e.g.
        ``"migueles_wrist_adult"`` (default; Migueles et al. 2019) or
        ``"hildebrand_wrist_adult_geneactiv"`` (Hildebrand et al. 2014), or an SKDH cut-point
        dict. Cut-points on another metric (MAD, BFEN) are refused: the mean intensity is ENMO.
    min_wear_min : int
        Least worn minutes of a valid day, a whole number of hours (SKDH counts hours).

    Returns
    -------
    skdh.Pipeline
        A new pipeline; ``pipeline.save(path)`` writes it as YAML with its parameters.

    References
    ----------
    van Hees VT, Gorzelniak L, Dean Leon EC, et al. (2013). Separating movement and gravity
    components in an acceleration signal and implications for the assessment of human daily
    physical activity. PLoS One 8(4):e61691. doi:10.1371/journal.pone.0061691

    Migueles JH, Aadland E, Andersen LB, et al. (2019). Comparability of accelerometer signal
    aggregation metrics across placements and dominant wrist cut points for the assessment of
    physical activity in adults. Sci Rep 9:18235. doi:10.1038/s41598-019-54267-y

    Hildebrand M, van Hees VT, Hansen BH, Ekelund U (2014). Age group comparability of raw
    accelerometer output from wrist- and hip-worn monitors. Med Sci Sports Exerc
    46(9):1816-1824. doi:10.1249/MSS.0000000000000289
    """
    import skdh
    from skdh.preprocessing import GetDayWindowIndices

    if not fs_hz > 0:
        raise ValueError(f"fs_hz={fs_hz}: pass the sampling rate in Hz (> 0)")
    if min_wear_min % 60:
        raise ValueError(f"min_wear_min={min_wear_min}: SKDH counts wear in whole hours; pass a multiple of 60")
    classes = _skdh_process_classes()
    pipeline = skdh.Pipeline()
    pipeline.add(GetDayWindowIndices(bases=0, periods=24))
    pipeline.add(classes["BlockWearDetection"]())
    pipeline.add(classes["ActivityLevelTimes"](cutpoints=cutpoints, min_wear_time=min_wear_min // 60,
                                               day_window=(0, 24)))
    return pipeline



def calibrated_recording(accel: pd.DataFrame, fs_hz: float, *, autocalibrate: bool = True):
    """A wrist recording as SKDH's arrays, autocalibrated from its still periods when asked.

    Returns ``(time_s, accel_g, calibration)``: see :func:`unix_time_s_and_accel_g`; ``accel_g`` is
    the calibrated signal; ``calibration`` the :class:`features.biomarkers.quality.Calibration`
    (``None`` when ``autocalibrate`` is off).
    """
    from features.biomarkers import quality

    time_s, accel_g = unix_time_s_and_accel_g(accel, fs_hz)
    calibration = quality.autocalibrate(time_s, accel_g, fs_hz) if autocalibrate and time_s.size else None
    if calibration is not None:
        accel_g = calibration.apply(accel_g)
    return time_s, accel_g, calibration


def worn_periods(time_s: np.ndarray, accel_g: np.ndarray, fs_hz: float) -> np.ndarray:
    """Worn periods, (k, 2) start and stop sample indices, by the wear detection of
    :func:`skdh_activity_pipeline` (none for a recording shorter than its 60-min window)."""
    if time_s.size < 60 * 60 * fs_hz:
        return np.empty((0, 2), dtype=np.int64)
    with np.errstate(divide="ignore"):  # see accel_activity_daily_features
        return np.asarray(_skdh_process_classes()["BlockWearDetection"]().predict(
            time=time_s, accel=accel_g, fs=float(fs_hz))["wear"], dtype=np.int64).reshape(-1, 2)


def wrist_minutes(time_s: np.ndarray, accel_g: np.ndarray, fs_hz: float, wear: np.ndarray) -> pd.DataFrame:
    """The recording minute by minute (UTC minutes): mean ENMO, ActiGraph counts, worn or not.

    Parameters
    ----------
    time_s : (n,) unix seconds, increasing; accel_g : (n, 3) acceleration in g (calibrated);
    fs_hz : rate.
    wear : (k, 2) worn periods as start and stop sample indices (:func:`worn_periods`).

    Returns
    -------
    DataFrame
        ``timestamp`` (UTC, naive numpy, start of the minute), ``enmo_mg`` (mean of
        max(|a| - 1 g, 0) over the minute's samples, mg), ``counts_vm_per_min`` (vector magnitude
        of the minute's ActiGraph counts per axis, :mod:`features.biomarkers.counts`, summed from
        1-s epochs; NaN for a minute not wholly recorded or below 10 Hz), ``worn`` (at least half
        the minute's samples in a worn period).

    Notes
    -----
    Memory stays that of the minutes, not of the samples (a week at 100 Hz is 60 million): the
    minutes' first samples are found by binary search, ENMO is summed a block of minutes at a
    time and the worn samples from the periods' overlaps with each minute.
    """
    from features.biomarkers import counts

    n = time_s.size
    first = int(np.floor(time_s[0] / 60.0)) if n else 0
    n_minutes = int(np.floor(time_s[-1] / 60.0)) - first + 1 if n else 0
    # bounds[k]: the first sample of minute k (bounds[n_minutes] = n).
    bounds = np.searchsorted(time_s, (first + np.arange(n_minutes + 1)) * 60.0, side="left")
    samples = np.diff(bounds)
    enmo_sum = np.zeros(n_minutes)
    for lo in range(0, n_minutes, _MINUTES_PER_BLOCK):
        hi = min(lo + _MINUTES_PER_BLOCK, n_minutes)
        block = accel_g[bounds[lo]:bounds[hi]]
        enmo = np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block)) - 1.0, 0.0)
        starts = bounds[lo:hi] - bounds[lo]
        filled = samples[lo:hi] > 0
        enmo_sum[lo:hi][filled] = np.add.reduceat(enmo, starts[filled]) if filled.any() else 0.0
    worn_samples = np.zeros(n_minutes)
    for start, stop in np.asarray(wear, dtype=np.int64).reshape(-1, 2):
        worn_samples += np.clip(np.minimum(bounds[1:], min(stop, n)) - np.maximum(bounds[:-1], start), 0, None)
    frame = pd.DataFrame({
        "timestamp": ((first + np.arange(n_minutes)) * 60).astype("datetime64[s]").astype("datetime64[ns]"),
        "enmo_mg": 1000.0 * np.divide(enmo_sum, samples, out=np.full(n_minutes, np.nan), where=samples > 0),
        "counts_vm_per_min": np.nan,
        "worn": worn_samples >= 0.5 * np.maximum(samples, 1),
    })
    rate = counts_rate_hz(fs_hz)
    if rate is None or n < rate:
        return frame
    per_second = counts.actigraph_counts(accel_g, rate, epoch_s=1)
    # Each 1-s epoch (``rate`` samples: a drifting clock's "second" is the device's) into the UTC
    # minute its first sample is in; a minute counts only with all 60 of its seconds. The vector
    # magnitude is of the minute's axis counts, as ActiLife's for 60-s epochs.
    starts = np.minimum(np.floor(np.arange(per_second.shape[0]) * rate).astype(np.int64), n - 1)
    second_minute = np.floor(time_s[starts] / 60.0).astype(np.int64) - first
    seconds = np.bincount(second_minute, minlength=n_minutes)
    summed = counts.vector_magnitude(np.stack(
        [np.bincount(second_minute, weights=axis, minlength=n_minutes) for axis in per_second.T], axis=1))
    frame["counts_vm_per_min"] = np.where(seconds >= 60, summed, np.nan)
    return frame


def counts_rate_hz(fs_hz: float) -> float | None:
    """The rate ActiGraph's count method takes the recording at: the ActiGraph rate within 5 % of
    ``fs_hz`` (device clocks drift: an AX6 at 100 Hz samples ~98.4 Hz), else ``fs_hz`` itself
    (resampled to 30 Hz by the method); ``None`` below 10 Hz."""
    from features.biomarkers.counts import ACTIGRAPH_RATES_HZ, MIN_RATE_HZ

    nearest = min(ACTIGRAPH_RATES_HZ, key=lambda rate: abs(rate - fs_hz))
    if abs(nearest - fs_hz) <= 0.05 * nearest:
        return nearest
    return float(fs_hz) if fs_hz >= MIN_RATE_HZ else None


def accel_activity_daily_features(
    accel: pd.DataFrame, fs_hz: float, subject_id: str, *, cutpoints: str | dict = DEFAULT_CUTPOINTS,
    min_wear_min: int = MIN_WEAR_MIN, autocalibrate: bool = True, device_range_g: float = 8.0,
    max_calibration_error_mg: float | None = 10.0, max_clipped_percent: float | None = 1.0,
) -> pd.DataFrame:
    """Daily activity levels from one raw wrist accelerometry recording, through SKDH, with its
    quality control.

    The recording is first autocalibrated from its still periods
    (:func:`features.biomarkers.quality.autocalibrate`, van Hees et al. 2014) when
    ``autocalibrate``; then :func:`skdh_activity_pipeline` runs on it, one row per UTC day it touches:

    * ``sedentary_time_1d_min``, ``light_activity_1d_min``, ``mvpa_1d_min``: worn time in each
      intensity level by the ENMO cut-points (default Migueles et al. 2019: < 50 mg sedentary,
      50-110 mg light, >= 110 mg moderate-to-vigorous), 5-s epochs, not bouted (SKDH's
      ``"wake <level> 5s epoch [min]"``);
    * ``acceleration_intensity_mean_1d_mg``: mean ENMO (Euclidean norm minus 1 g, negative
      values set to 0) over the worn time, mg;
    * ``accel_wear_time_1d_min``: worn minutes by SKDH's AccelThresholdWearDetection;
    * ``actigraph_counts_vm_mean_1d_counts_per_min``: mean ActiGraph vector-magnitude counts per
      worn minute (:func:`wrist_minutes`; ActiGraph's method, Brønd et al. 2017, equal to
      ActiLife's counts at ActiGraph's rates; NaN below 10 Hz);
    * quality control: ``nonwear_1d_percent`` (recorded minutes not worn), ``clipped_samples_1d_percent``
      (samples at the device's range), the recording's ``calibration_error_before_mg`` and
      ``calibration_error_after_mg`` and ``autocalibrated_flag`` (1 when the calibration was applied).

    Worn-time levels add up to the wear time (to within the epochs of wear blocks shorter than
    a minute, which SKDH skips), so a fully recorded day gives
    ``sedentary + light + mvpa + (1440 - wear) ~= 1440``. A day with < 10 h of wear gets NaN
    levels and intensity and a reason such as ``"wear time 410 min < 600 min"``; so does a day
    failing quality control: more than ``max_clipped_percent`` of its samples clipped, or a
    recording whose calibration error (after autocalibration) exceeds ``max_calibration_error_mg``
    (GGIR's 10 mg); ``None`` turns a check off. A recording shorter than 10 h is not run through
    SKDH (its wear detection needs 60-min windows, and no day could be valid): every row gets NaN
    levels and a reason.

    Parameters
    ----------
    accel : DataFrame of n rows
        Canonical ACCELEROMETRY frame of one wrist recording (``timestamp`` UTC, ``accel_x_g``,
        ``accel_y_g``, ``accel_z_g`` in g), in time order without gaps. Not modified; converted
        once to the float64 arrays SKDH takes (:func:`unix_time_s_and_accel_g`).
    fs_hz : float
        Sampling rate, Hz.
    subject_id : str
        The recording's subject, copied to every row.
    cutpoints : str or dict
        ENMO cut-points, see :func:`skdh_activity_pipeline`.
    min_wear_min : int
        Least worn minutes of a valid day (600), a whole number of hours.
    autocalibrate, device_range_g, max_calibration_error_mg, max_clipped_percent
        Quality control (the study's ``biomarkers.qc``; ``device_range_g`` is the source's).

    Returns
    -------
    DataFrame
        Columns :data:`ACCEL_ACTIVITY_DAILY_COLUMNS`: ``subject_id``, ``event_timestamp`` (UTC,
        the midnight ending the day), the measures above (float) and ``missing_reason``.

    Raises
    ------
    ValueError
        For a frame SKDH cannot take (see :func:`unix_time_s_and_accel_g`).

    References
    ----------
    See :func:`skdh_activity_pipeline` and :mod:`features.biomarkers.quality`.
    """
    from features.biomarkers import quality

    time_s, accel_g, calibration = calibrated_recording(accel, fs_hz, autocalibrate=autocalibrate)
    if time_s.size == 0:
        return _empty_frame(ACCEL_ACTIVITY_DAILY_COLUMNS)
    days = _utc_days(time_s)
    # Per-day sums by day index (one pass over the samples, not one mask per day).
    day_index = np.floor(time_s / 86_400.0).astype(np.int64) - days[0].value // 86_400_000_000_000
    clipped, valid = quality.clipped_samples(accel_g, device_range_g)
    samples, with_values, clipped_count = (np.bincount(day_index, weights=weights, minlength=len(days))
                                           for weights in (None, valid, clipped))
    recorded_min = samples / fs_hz / 60.0
    clipped_percent = np.divide(100.0 * clipped_count, with_values, out=np.full(len(days), np.nan),
                                where=with_values > 0)
    rows = {day: _quality_row(subject_id, day, clipped_percent[i], calibration) for i, day in enumerate(days)}

    duration_min = (time_s[-1] - time_s[0]) / 60.0 + 1.0 / (60.0 * fs_hz)
    if duration_min < min_wear_min:
        reason = f"recording {duration_min:.0f} min < {min_wear_min} min of wear needed for a valid day"
        return _table([{**row, "missing_reason": reason} for row in rows.values()], ACCEL_ACTIVITY_DAILY_COLUMNS)
    pipeline = skdh_activity_pipeline(fs_hz, cutpoints=cutpoints, min_wear_min=min_wear_min)
    # AccelThresholdWearDetection divides by a zero non-wear length when a recording starts
    # or ends worn (the ratio is then inf, which its rules handle): not worth a warning.
    with np.errstate(divide="ignore"):
        results = pipeline.run(time=time_s, accel=accel_g, fs=float(fs_hz), tz_name="UTC")
    result = results["ActivityLevelTimes"]
    minutes = wrist_minutes(time_s, accel_g, fs_hz, np.asarray(results["BlockWearDetection"]["wear"]).reshape(-1, 2))
    worn_counts = minutes["counts_vm_per_min"].where(minutes["worn"])
    counts_by_day = worn_counts.groupby(minutes["timestamp"].dt.floor("D")).mean()
    by_day = {pd.Timestamp(str(date), tz="UTC"): i for i, date in enumerate(result["Date"])}
    calibration_failed = _calibration_failure(calibration, max_calibration_error_mg)
    for recorded, (day, row) in zip(recorded_min, rows.items(), strict=True):
        i = by_day.get(day)
        if i is None:  # SKDH made no window for this day (a recording ending just after midnight)
            row["missing_reason"] = "no SKDH day window"
            continue
        wear_min = float(result["Wear Minutes"][i])
        row.update({column: float(result[key][i]) for column, key in _SKDH_LEVEL_KEYS.items()})
        row.update(acceleration_intensity_mean_1d_mg=1000.0 * float(result[_SKDH_MEAN_KEY][i]),
                   accel_wear_time_1d_min=wear_min,
                   nonwear_1d_percent=100.0 * max(0.0, 1.0 - wear_min / recorded) if recorded else math.nan,
                   actigraph_counts_vm_mean_1d_counts_per_min=float(
                       counts_by_day.get(day.tz_localize(None), math.nan)))
        reasons = [calibration_failed] if calibration_failed else []
        clipped = row["clipped_samples_1d_percent"]
        if max_clipped_percent is not None and clipped > max_clipped_percent:
            reasons.append(f"{clipped:.1f} % of samples clipped at the {device_range_g:g} g range > "
                           f"{max_clipped_percent:g} % (biomarkers.qc.max_clipped_percent)")
        if not np.isfinite(row["sedentary_time_1d_min"]):
            reasons.append(f"wear time {wear_min:.0f} min < {min_wear_min} min" if wear_min < min_wear_min
                           else "SKDH computed no activity levels")
        if reasons:
            row.update(dict.fromkeys(_ACTIVITY_LEVEL_COLUMNS, math.nan), missing_reason="; ".join(reasons))
        elif counts_rate_hz(fs_hz) is None:
            row["missing_reason"] = f"ActiGraph counts need a rate of 10 Hz or more, the recording's is {fs_hz:g} Hz"
    return _table(list(rows.values()), ACCEL_ACTIVITY_DAILY_COLUMNS)


def _quality_row(subject_id: str, day: pd.Timestamp, clipped_percent: float, calibration) -> dict:
    """A day's row with its quality-control columns filled and every other measure NaN."""
    row = _nan_row(subject_id, day + _DAY, ACCEL_ACTIVITY_DAILY_COLUMNS, None)
    row["clipped_samples_1d_percent"] = clipped_percent
    if calibration is not None:
        row.update(calibration_error_before_mg=1000.0 * calibration.error_before_g,
                   calibration_error_after_mg=1000.0 * calibration.error_after_g,
                   autocalibrated_flag=float(calibration.applied))
    return row


def _calibration_failure(calibration, max_error_mg: float | None) -> str | None:
    """Why the recording fails the calibration check, or ``None``."""
    if calibration is None or max_error_mg is None or not np.isfinite(calibration.error_after_g):
        return None
    error_mg = 1000.0 * calibration.error_after_g
    if error_mg <= max_error_mg:
        return None
    why = "after autocalibration" if calibration.applied else f"not autocalibrated: {calibration.reason}"
    return (f"calibration error {error_mg:.1f} mg > {max_error_mg:g} mg ({why}; "
            "biomarkers.qc.max_calibration_error_mg)")


def __getattr__(name: str) -> Any:
    if name in ("ActivityLevelTimes", "MeanAcceleration", "BlockWearDetection"):
        return _skdh_process_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _skdh_process_classes() -> dict[str, type]:
    from skdh.activity import ActivityLevelClassification
    from skdh.activity.endpoints import ActivityEndpoint, TotalIntensityTime
    from skdh.activity.utility import handle_cutpoints
    from skdh.base import handle_process_returns
    from skdh.preprocessing import AccelThresholdWearDetection

    class BlockWearDetection(AccelThresholdWearDetection):
        """SKDH's ``AccelThresholdWearDetection``, its window statistics computed per block.

        The parent takes the standard deviation, maximum and minimum of each axis over every
        60-min window moved by 15 min with SKDH's moving-window kernels, which scan each
        window in full: some 12 s of the 13 s its activity pipeline takes for 7 days at 50 Hz.
        A 60-min window is exactly four consecutive 15-min blocks, so here each block is
        reduced once (mean, sum of squared deviations, max, min per axis) and the windows are
        combined from four blocks: the maximum and minimum are the same numbers, the standard
        deviation (ddof=1) is combined by Chan et al.'s pairwise update, equal to rounding.
        The rules after the statistics (at least 2 axes still, SKDH's re-classification of
        short wear periods) are the parent's own code. When the window is not a whole number
        of skips, or the recording is shorter than one window, the parent runs unchanged.

        References
        ----------
        Chan TF, Golub GH, LeVeque RJ (1983). Algorithms for computing the sample variance:
        analysis and recommendations. Am Stat 37(3):242-247. doi:10.1080/00031305.1983.10483115
        """

        @handle_process_returns(results_to_kwargs=True)
        def predict(self, *, time, accel, fs=None, **kwargs):
            """Wear periods ``{"wear": (n, 2) start and stop sample indices}``, as the parent's."""
            parent = AccelThresholdWearDetection.predict.__wrapped__
            fs = 1 / np.mean(np.diff(time[1000:5000])) if fs is None else fs
            n_wlen = int(self.wlen * 60 * fs)
            n_wskip = int(self.wskip * 60 * fs)
            n = accel.shape[0]
            if n_wskip < 2 or n_wlen % n_wskip or n < n_wlen:
                return parent(self, time=time, accel=accel, fs=fs, **kwargs)
            super(AccelThresholdWearDetection, self).predict(
                expect_days=False, expect_wear=False, time=time, accel=accel, fs=fs, **kwargs)
            sd, spread = _window_sd_and_range(accel, n_wlen // n_wskip, n_wskip)
            nonwear = np.sum((sd < self.sd_crit) & (spread < self.range_crit), axis=1) >= 2
            # The windows that run past the end repeat the last full window's call, as the
            # parent does after its moving statistics return NaN for them.
            n_windows = (n - 1) // n_wskip + 1
            nonwear = np.concatenate([nonwear, np.repeat(nonwear[-1:], n_windows - nonwear.size)])
            wear_starts, wear_stops = self._modify_wear_times(nonwear, self.wskip, self.apply_setup_crit,
                                                              self.ship_crit)
            wear = np.minimum(np.concatenate((wear_starts, wear_stops)).reshape((2, -1)).T * n_wskip, n - 1)
            return {"wear": wear}

    class MeanAcceleration(ActivityEndpoint):
        """SKDH activity endpoint: mean of the acceleration metric (ENMO, g) over the state's
        worn time of a day, epochs of every wear block weighted alike.

        Result key ``"<state> mean acc [g]"``.
        """

        def __init__(self, state: str = "wake"):
            super().__init__("mean acc [g]", state)
            self._sum = 0.0
            self._count = 0

        def predict(self, results, i, accel_metric, accel_metric_60, epoch_s, epochs_per_min, **kwargs):
            """Add one wear block's epochs (``accel_metric``, shape (n_epochs,)) to day ``i``."""
            super().predict()
            finite = np.isfinite(accel_metric)
            self._sum += float(accel_metric[finite].sum())
            self._count += int(finite.sum())
            results[self.name][i] = self._sum / self._count if self._count else math.nan

        def reset_cached(self):
            """Start the next day from zero."""
            self._sum = 0.0
            self._count = 0

    class ActivityLevelTimes(ActivityLevelClassification):
        """SKDH's ``ActivityLevelClassification`` computing only the time per intensity level
        and the mean acceleration metric.

        The parent computes some 90 endpoints per day, among them a detrended fluctuation
        analysis that takes about 20 s per day of 50 Hz data; the daily features need four.
        Everything else (epochs, wear and day handling, minimum wear time, result layout) is
        the parent's. Results per day: ``"wake <level> <short_wlen>s epoch [min]"`` for the
        levels sed, light, mod, vig and MVPA, and ``"wake mean acc [g]"``; the same with
        ``sleep`` when sleep periods are passed to ``predict``.

        Parameters
        ----------
        cutpoints : str or dict
            Cut-points (see ``ActivityLevelClassification``); must use the ``metric_enmo``
            metric, as the mean intensity is reported as ENMO.
        min_wear_time : int
            Least wear of a valid day, hours (default 10).
        short_wlen : int
            Epoch length, s (default 5).
        day_window : tuple of int
            (base hour, period hours) of the days (default (0, 24): calendar days).
        **kwargs
            Other ``ActivityLevelClassification`` parameters (accepted so that a saved
            pipeline loads again; they do not change the endpoints computed here).
        """

        def __init__(self, cutpoints=DEFAULT_CUTPOINTS, min_wear_time=10, short_wlen=EPOCH_S,
                     day_window=(0, 24), **kwargs):
            resolved = handle_cutpoints(cutpoints)
            if resolved["metric"] != "metric_enmo":
                raise ValueError(
                    f"cutpoints {cutpoints!r} use {resolved['metric']}; pass ENMO cut-points, e.g. "
                    f"{DEFAULT_CUTPOINTS!r} or 'hildebrand_wrist_adult_geneactiv'"
                )
            super().__init__(cutpoints=cutpoints, min_wear_time=min_wear_time, short_wlen=short_wlen,
                             day_window=day_window, **kwargs)
            levels = ("MVPA", "sed", "light", "mod", "vig")
            self.wake_endpoints = [TotalIntensityTime(lvl, self.wlen, self.cutpoints, state="wake") for lvl in levels]
            self.wake_endpoints.append(MeanAcceleration(state="wake"))
            self.sleep_endpoints = [TotalIntensityTime(lvl, self.wlen, self.cutpoints, state="sleep") for lvl in levels]
            self.sleep_endpoints.append(MeanAcceleration(state="sleep"))

    classes = {"MeanAcceleration": MeanAcceleration, "ActivityLevelTimes": ActivityLevelTimes,
               "BlockWearDetection": BlockWearDetection}
    for cls in classes.values():  # so Pipeline.save/load and pickle find them in this module
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return classes


def _window_sd_and_range(accel: np.ndarray, blocks_per_window: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis sample standard deviation (ddof=1) and max - min of every full window of
    ``blocks_per_window`` consecutive blocks of ``block`` samples, windows moved by one block.

    ``accel`` has shape (n, axes); the results have shape (n_windows, axes) with
    ``n_windows = (n - blocks_per_window * block) // block + 1``, the full windows of SKDH's
    ``moving_sd(accel, wlen, block)``. Samples past the last whole block belong to no full window.
    """
    n_blocks = accel.shape[0] // block
    blocks = accel[: n_blocks * block].reshape(n_blocks, block, accel.shape[1])
    means = np.empty((n_blocks, accel.shape[1]))
    squares = np.empty_like(means)  # sum of squared deviations from the block's mean
    highs = np.empty_like(means)
    lows = np.empty_like(means)
    for k in range(n_blocks):  # one block at a time keeps the deviations in cache
        values = blocks[k]
        means[k] = values.mean(axis=0)
        squares[k] = np.square(values - means[k]).sum(axis=0)
        highs[k] = values.max(axis=0)
        lows[k] = values.min(axis=0)
    n_windows = n_blocks - blocks_per_window + 1
    window = np.lib.stride_tricks.sliding_window_view
    # Chan et al.: M2 of the union = sum of the blocks' M2 + sum of n_b (mean_b - mean)^2
    window_means = window(means, blocks_per_window, axis=0).mean(axis=-1)
    spread_of_means = np.square(window(means, blocks_per_window, axis=0) - window_means[..., None]).sum(axis=-1)
    m2 = window(squares, blocks_per_window, axis=0).sum(axis=-1) + block * spread_of_means
    sd = np.sqrt(m2 / (blocks_per_window * block - 1))
    spread = (window(highs, blocks_per_window, axis=0).max(axis=-1)
              - window(lows, blocks_per_window, axis=0).min(axis=-1))
    return sd[:n_windows], spread[:n_windows]
