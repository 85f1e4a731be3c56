"""Vital-sign biomarkers: NEWS2, rolling window statistics, SpO2 desaturation events, hourly features.

Pure functions over arrays and the canonical VITALS frame (``subject_id``, ``timestamp`` (UTC),
``heart_rate_bpm``, ``spo2_percent``, ``respiratory_rate_per_min``, ``temperature_deg_c``,
``systolic_bp_mmhg``, ``consciousness_avpu`` in A/C/V/P/U, ``supplemental_oxygen``). Nothing here
reads files or a clock, and no input is mutated.

NEWS2
-----
Every parameter function implements one row of Chart 1 ("The NEWS scoring system") of

    Royal College of Physicians. National Early Warning Score (NEWS) 2: Standardising the
    assessment of acute-illness severity in the NHS. Updated report of a working party.
    London: RCP, December 2017.

The chart gives integer bands for respiration rate, SpO2, systolic blood pressure and pulse and
bands to one decimal for temperature, i.e. for values as they are charted. A measured value is
therefore first rounded to the chart's resolution, half up (respiration rate 20.5 /min is
charted 21, temperature 38.05 degC is charted 38.1), which puts every band edge half a unit of
resolution beyond the chart's last value of the band. A missing parameter (NaN, ``None``, an
unknown consciousness level) scores NaN, and so does a total with any NaN parameter: a partial
sum is never reported as a score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "AVPU_LEVELS",
    "DESATURATION_ABSOLUTE_THRESHOLD_PERCENT",
    "DESATURATION_BASELINE_WINDOW_H",
    "DESATURATION_DROP_PERCENT",
    "DESATURATION_MIN_CONSECUTIVE_OBSERVATIONS",
    "NEWS2_RISK_BANDS",
    "VITALS_HOURLY_FEATURE_COLUMNS",
    "desaturation_event_onsets",
    "desaturation_events_count",
    "least_squares_slope_per_h",
    "news2_air_or_oxygen_points",
    "news2_consciousness_points",
    "news2_parameter_points",
    "news2_pulse_points",
    "news2_respiration_rate_points",
    "news2_risk_band",
    "news2_score",
    "news2_spo2_scale_1_points",
    "news2_spo2_scale_2_points",
    "news2_systolic_bp_points",
    "news2_temperature_points",
    "rolling_window_statistics",
    "spo2_baseline_percent",
    "spo2_desaturated",
    "vitals_hourly_features",
]

AVPU_LEVELS = ("A", "C", "V", "P", "U")
"""NEWS2 ACVPU levels: alert, new confusion, voice, pain, unresponsive (copied from validation.schemas)."""

NEWS2_RISK_BANDS = ("low", "low_medium", "medium", "high")
"""The NEWS2 clinical risk bands, lowest first, as returned by :func:`news2_risk_band`."""

DESATURATION_DROP_PERCENT = 3.0
DESATURATION_ABSOLUTE_THRESHOLD_PERCENT = 90.0
DESATURATION_BASELINE_WINDOW_H = 4.0
DESATURATION_MIN_CONSECUTIVE_OBSERVATIONS = 2

# (column of the VITALS frame, signal name in feature names, unit in feature names)
_SIGNALS: tuple[tuple[str, str, str], ...] = (
    ("heart_rate_bpm", "heart_rate", "bpm"),
    ("spo2_percent", "spo2", "percent"),
    ("respiratory_rate_per_min", "respiratory_rate", "per_min"),
    ("temperature_deg_c", "temperature", "deg_c"),
    ("systolic_bp_mmhg", "systolic_bp", "mmhg"),
)
_WINDOWS_H: tuple[int, ...] = (1, 24)
_REQUIRED_VITALS_COLUMNS = (
    "subject_id",
    "timestamp",
    *(column for column, _, _ in _SIGNALS),
    "consciousness_avpu",
    "supplemental_oxygen",
)


def _signal_columns(signal: str, unit: str, window_h: int) -> dict[str, str]:
    return {
        "mean": f"{signal}_mean_{window_h}h_{unit}",
        "min": f"{signal}_min_{window_h}h_{unit}",
        "max": f"{signal}_max_{window_h}h_{unit}",
        "slope_per_h": f"{signal}_slope_{window_h}h_{unit}_per_h",
    }


VITALS_HOURLY_FEATURE_COLUMNS: tuple[str, ...] = (
    *(
        name
        for _, signal, unit in _SIGNALS
        for window_h in _WINDOWS_H
        for name in _signal_columns(signal, unit, window_h).values()
    ),
    "news2_score_max_1h",
    "news2_score_max_24h",
    "desaturation_events_24h_count",
)
"""The feature columns of :func:`vitals_hourly_features`, in order (without ``subject_id``,
``event_timestamp`` and ``missing_reason``)."""


# --- array helpers ---------------------------------------------------------------------------


def _float_array(values) -> np.ndarray:
    """Values as a float array of their own shape; ``None``, NaN and ``pd.NA`` become NaN."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(float)
    flat = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
    return flat.astype("Float64").to_numpy(dtype=float, na_value=np.nan).reshape(array.shape)


def _bool_array(values) -> tuple[np.ndarray, np.ndarray]:
    """``(value, known)`` boolean arrays; ``None``, NaN and ``pd.NA`` are unknown.

    Raises
    ------
    ValueError
        For a known value that is not a boolean (``True``/``False``, 1/0).
    """
    array = np.asarray(values)
    if array.dtype == bool:
        return array, np.ones(array.shape, dtype=bool)
    try:
        flags = pd.array(np.asarray(values, dtype=object).ravel(), dtype="boolean")
    except (TypeError, ValueError) as error:
        raise ValueError(
            "supplemental_oxygen must be a boolean (True, False or missing); map the source's yes/no coding "
            f"to booleans in the reader ({error})"
        ) from None
    known = ~flags.isna()
    return flags.to_numpy(dtype=bool, na_value=False).reshape(array.shape), known.reshape(array.shape)


def _banded_points(values: np.ndarray, upper_edges: tuple[float, ...], points: tuple[float, ...]) -> np.ndarray:
    """Points of the band each value falls in; a band holds values below its upper edge."""
    band = np.searchsorted(np.asarray(upper_edges), values, side="right")
    result = np.asarray(points, dtype=float)[np.minimum(band, len(points) - 1)]
    return np.where(np.isnan(values), np.nan, result)


# --- NEWS2: one function per row of the RCP 2017 chart ---------------------------------------


def news2_respiration_rate_points(respiratory_rate_per_min) -> np.ndarray:
    """NEWS2 points for respiration rate (RCP 2017, Chart 1).

    <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (per minute; values rounded to integers, half up).

    Parameters
    ----------
    respiratory_rate_per_min : array-like of shape (n,) or scalar, breaths per minute.

    Returns
    -------
    np.ndarray of shape (n,) (0-d for a scalar), float points; NaN where the rate is missing.
    """
    return _banded_points(_float_array(respiratory_rate_per_min), (8.5, 11.5, 20.5, 24.5), (3, 1, 0, 2, 3))


def news2_spo2_scale_1_points(spo2_percent) -> np.ndarray:
    """NEWS2 points for SpO2 on Scale 1, the default scale (RCP 2017, Chart 1).

    <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (percent; rounded to integers, half up). On Scale 1 the
    oxygen a patient breathes does not change the SpO2 points (it scores as "air or oxygen").

    Parameters
    ----------
    spo2_percent : array-like of shape (n,) or scalar, peripheral oxygen saturation in %.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where SpO2 is missing.
    """
    return _banded_points(_float_array(spo2_percent), (91.5, 93.5, 95.5), (3, 2, 1, 0))


def news2_spo2_scale_2_points(spo2_percent, supplemental_oxygen) -> np.ndarray:
    """NEWS2 points for SpO2 on Scale 2 (RCP 2017, Chart 1).

    Scale 2 is for patients with hypercapnic respiratory failure (usually COPD) whose prescribed
    target saturation is 88-92 %, chosen by a clinician and recorded on the chart:
    <=83: 3, 84-85: 2, 86-87: 1, 88-92: 0, >=93 on air: 0; on oxygen 93-94: 1, 95-96: 2, >=97: 3.

    Parameters
    ----------
    spo2_percent : array-like of shape (n,) or scalar, % (rounded to integers, half up).
    supplemental_oxygen : array-like of shape (n,) or scalar, bool; ``True`` on supplemental oxygen.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where SpO2 is missing, or where SpO2 >= 93 % and
    the oxygen status is missing (below 93 % the status does not change the points).
    """
    spo2 = _float_array(spo2_percent)
    on_oxygen, known = _bool_array(supplemental_oxygen)
    spo2, on_oxygen, known = np.broadcast_arrays(spo2, on_oxygen, known)
    low = _banded_points(spo2, (83.5, 85.5, 87.5, 92.5), (3, 2, 1, 0, 0))
    high_on_oxygen = _banded_points(spo2, (94.5, 96.5), (1, 2, 3))
    high = np.where(known, np.where(on_oxygen, high_on_oxygen, 0.0), np.nan)
    return np.where(spo2 >= 92.5, high, low)


def news2_air_or_oxygen_points(supplemental_oxygen) -> np.ndarray:
    """NEWS2 points for "Air or oxygen?" (RCP 2017, Chart 1): oxygen 2, air 0.

    Parameters
    ----------
    supplemental_oxygen : array-like of shape (n,) or scalar, bool; ``True`` on supplemental oxygen.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where the status is missing.
    """
    on_oxygen, known = _bool_array(supplemental_oxygen)
    return np.where(known, np.where(on_oxygen, 2.0, 0.0), np.nan)


def news2_systolic_bp_points(systolic_bp_mmhg) -> np.ndarray:
    """NEWS2 points for systolic blood pressure (RCP 2017, Chart 1).

    <=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (mmHg; rounded to integers, half up).

    Parameters
    ----------
    systolic_bp_mmhg : array-like of shape (n,) or scalar, mmHg.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where the pressure is missing.
    """
    return _banded_points(_float_array(systolic_bp_mmhg), (90.5, 100.5, 110.5, 219.5), (3, 2, 1, 0, 3))


def news2_pulse_points(heart_rate_bpm) -> np.ndarray:
    """NEWS2 points for pulse (RCP 2017, Chart 1).

    <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (per minute; rounded, half up).

    Parameters
    ----------
    heart_rate_bpm : array-like of shape (n,) or scalar, beats per minute.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where the pulse is missing.
    """
    return _banded_points(_float_array(heart_rate_bpm), (40.5, 50.5, 90.5, 110.5, 130.5), (3, 1, 0, 1, 2, 3))


def news2_consciousness_points(consciousness_avpu) -> np.ndarray:
    """NEWS2 points for consciousness (RCP 2017, Chart 1): alert 0; new confusion, voice, pain or unresponsive 3.

    Parameters
    ----------
    consciousness_avpu : array-like of shape (n,) or scalar, str, one of ``A``, ``C``, ``V``, ``P``, ``U``
        (case and surrounding blanks are ignored).

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where the level is missing or not an ACVPU level.
    """
    array = np.asarray(consciousness_avpu, dtype=object)
    flat = array.ravel()
    points = {"A": 0.0, "C": 3.0, "V": 3.0, "P": 3.0, "U": 3.0}
    out = np.array(
        [points.get(value.strip().upper(), np.nan) if isinstance(value, str) else np.nan for value in flat],
        dtype=float,
    )
    return out.reshape(array.shape)


def news2_temperature_points(temperature_deg_c) -> np.ndarray:
    """NEWS2 points for temperature (RCP 2017, Chart 1).

    <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (degC; rounded to 0.1, half up).

    Parameters
    ----------
    temperature_deg_c : array-like of shape (n,) or scalar, degrees Celsius.

    Returns
    -------
    np.ndarray of shape (n,), float points; NaN where the temperature is missing.
    """
    return _banded_points(_float_array(temperature_deg_c), (35.05, 36.05, 38.05, 39.05), (3, 1, 0, 1, 2))


def news2_parameter_points(
    respiratory_rate_per_min,
    spo2_percent,
    supplemental_oxygen,
    systolic_bp_mmhg,
    heart_rate_bpm,
    consciousness_avpu,
    temperature_deg_c,
    spo2_scale=1,
) -> pd.DataFrame:
    """The points of each of the seven NEWS2 parameters (RCP 2017, Chart 1).

    Parameters
    ----------
    respiratory_rate_per_min, spo2_percent, supplemental_oxygen, systolic_bp_mmhg, heart_rate_bpm,
    consciousness_avpu, temperature_deg_c : array-like of shape (n,) or scalars (broadcast together);
        units as named; ``supplemental_oxygen`` bool, ``consciousness_avpu`` one of A, C, V, P, U.
    spo2_scale : 1 or 2, or array-like of shape (n,) of 1 and 2
        The SpO2 scale of each observation; 2 only for patients with hypercapnic respiratory
        failure whose clinician chose Scale 2 (see :func:`news2_spo2_scale_2_points`).

    Returns
    -------
    pd.DataFrame of shape (n, 7), float points with columns ``respiration_rate``, ``spo2``,
    ``air_or_oxygen``, ``systolic_bp``, ``pulse``, ``consciousness``, ``temperature``; NaN marks a
    missing parameter.

    Raises
    ------
    ValueError
        For a scale other than 1 or 2.
    """
    scale = _float_array(spo2_scale)
    if np.any((scale != 1) & (scale != 2)):
        raise ValueError(f"spo2_scale must be 1 or 2 (NEWS2 SpO2 Scale 1 or Scale 2), got {np.unique(scale)}")
    columns = {
        "respiration_rate": news2_respiration_rate_points(respiratory_rate_per_min),
        "spo2": np.where(
            scale == 2,
            news2_spo2_scale_2_points(spo2_percent, supplemental_oxygen),
            news2_spo2_scale_1_points(spo2_percent),
        ),
        "air_or_oxygen": news2_air_or_oxygen_points(supplemental_oxygen),
        "systolic_bp": news2_systolic_bp_points(systolic_bp_mmhg),
        "pulse": news2_pulse_points(heart_rate_bpm),
        "consciousness": news2_consciousness_points(consciousness_avpu),
        "temperature": news2_temperature_points(temperature_deg_c),
    }
    arrays = np.broadcast_arrays(*columns.values())
    return pd.DataFrame({name: np.atleast_1d(array) for name, array in zip(columns, arrays, strict=True)})


def news2_score(
    respiratory_rate_per_min,
    spo2_percent,
    supplemental_oxygen,
    systolic_bp_mmhg,
    heart_rate_bpm,
    consciousness_avpu,
    temperature_deg_c,
    spo2_scale=1,
) -> np.ndarray:
    """NEWS2 aggregate score: the sum of the seven parameter points (RCP 2017, Chart 1).

    Parameters
    ----------
    Same as :func:`news2_parameter_points`.

    Returns
    -------
    np.ndarray of shape (n,), float points from 0 to 20; NaN where any parameter is missing
    (a partial sum is never a score).

    References
    ----------
    Royal College of Physicians. National Early Warning Score (NEWS) 2. London: RCP, 2017.

    Examples
    --------
    >>> news2_score(22, 95, False, 105, 95, "A", 38.3)
    array([6.])
    """
    points = news2_parameter_points(
        respiratory_rate_per_min,
        spo2_percent,
        supplemental_oxygen,
        systolic_bp_mmhg,
        heart_rate_bpm,
        consciousness_avpu,
        temperature_deg_c,
        spo2_scale,
    )
    return points.sum(axis=1, skipna=False).to_numpy(dtype=float)


def news2_risk_band(news2_score, max_parameter_points) -> np.ndarray:
    """NEWS2 clinical risk band (RCP 2017, Chart 2 "NEWS thresholds and triggers").

    ``high`` for an aggregate score of 7 or more; ``medium`` for 5-6; ``low_medium`` for 0-4 with
    a score of 3 in any single parameter (a "red score"); ``low`` for 0-4 otherwise.

    Parameters
    ----------
    news2_score : array-like of shape (n,), aggregate points (see :func:`news2_score`).
    max_parameter_points : array-like of shape (n,), the highest single-parameter points of the
        same observation (``news2_parameter_points(...).max(axis=1)``).

    Returns
    -------
    np.ndarray of shape (n,), object: one of :data:`NEWS2_RISK_BANDS`, or ``None`` where the score
    is missing.
    """
    score = np.atleast_1d(_float_array(news2_score))
    highest = np.atleast_1d(_float_array(max_parameter_points))
    score, highest = np.broadcast_arrays(score, highest)
    band = np.select(
        [np.isnan(score), score >= 7, score >= 5, highest >= 3],
        [None, "high", "medium", "low_medium"],
        default="low",
    )
    return band.astype(object)


# --- rolling windows -----------------------------------------------------------------------


def least_squares_slope_per_h(timestamp, values) -> float:
    """Ordinary least squares slope of values against time, in the values' unit per hour.

    Parameters
    ----------
    timestamp : array-like of shape (n,), datetime64 (tz-aware or not, one kind throughout).
    values : array-like of shape (n,), any unit; NaN values are left out.

    Returns
    -------
    float, unit of ``values`` per hour; NaN with fewer than two distinct times.
    """
    times = pd.DatetimeIndex(timestamp)
    y = _float_array(values).ravel()
    keep = ~np.isnan(y) & ~times.isna()
    if keep.sum() < 2:
        return float("nan")
    t = (times[keep] - times[keep].min()) / pd.Timedelta(hours=1)
    t = np.asarray(t, dtype=float)
    t_centred = t - t.mean()
    sxx = float(np.sum(t_centred**2))
    if sxx <= 1e-12 * keep.sum():
        return float("nan")
    return float(np.sum(t_centred * (y[keep] - y[keep].mean())) / sxx)


_NS_PER_HOUR = 3_600_000_000_000


def _hour_parts(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(hour_index, hour_fraction)``: whole hours since the epoch and the fraction of the hour elapsed."""
    ns = times.dt.as_unit("ns").astype("int64").to_numpy()
    hour_index = ns // _NS_PER_HOUR
    return hour_index, (ns - hour_index * _NS_PER_HOUR) / _NS_PER_HOUR


def _hour_grid(subject_id: pd.Series, hour_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Map each row to a bucket of its subject's complete hourly grid.

    Returns the subject code of each row, the row -> grid bucket array and the grid
    (``subject_id``, ``event_timestamp`` = end of the hour, ``position``: hours since the
    subject's first hour), sorted by subject then hour.
    """
    codes, uniques = pd.factorize(subject_id, sort=True)
    first = np.full(len(uniques), np.iinfo(np.int64).max)
    last = np.full(len(uniques), np.iinfo(np.int64).min)
    np.minimum.at(first, codes, hour_index)
    np.maximum.at(last, codes, hour_index)
    n_hours = last - first + 1
    offset = (np.cumsum(n_hours) - n_hours).astype(np.int64)
    position = np.arange(int(n_hours.sum()), dtype=np.int64) - np.repeat(offset, n_hours)
    grid_hour = np.repeat(first, n_hours) + position
    grid = pd.DataFrame(
        {
            "subject_id": np.asarray(uniques, dtype=object).repeat(n_hours),
            "event_timestamp": pd.to_datetime((grid_hour + 1) * _NS_PER_HOUR, unit="ns", utc=True),
            "position": position,
        }
    )
    return codes, offset[codes] + hour_index - first[codes], grid


def _lagged(values: np.ndarray, lag: int, position: np.ndarray, fill: float) -> np.ndarray:
    """``values`` of the bucket ``lag`` hours earlier of the same subject, else ``fill``."""
    if lag == 0:
        return values
    if lag >= len(values):
        return np.full(len(values), fill)
    shifted = np.concatenate([np.full(lag, fill), values[:-lag]])
    return np.where(position >= lag, shifted, fill)


def _window_statistics_on_grid(
    row_bucket: np.ndarray, grid_position: np.ndarray, hour_fraction: np.ndarray, values: np.ndarray, window_h: int
) -> dict[str, np.ndarray]:
    """Count, mean, min, max and least-squares slope per hour of the window ending at each bucket's end.

    Sufficient statistics are summed per hourly bucket with time measured inside the bucket, then
    combined over the ``window_h`` buckets with time measured from the window's end, so every
    quantity stays within +-window_h hours and the slope keeps full precision on long records.
    """
    n_buckets = len(grid_position)
    keep = ~np.isnan(values)
    # the slope does not change with a shift of the values; centring keeps the cross sums small
    shift = float(values[keep].mean()) if keep.any() else 0.0
    bucket, u, y = row_bucket[keep], hour_fraction[keep], values[keep] - shift
    n = np.bincount(bucket, minlength=n_buckets).astype(float)
    sum_y = np.bincount(bucket, weights=y, minlength=n_buckets)
    sum_u = np.bincount(bucket, weights=u, minlength=n_buckets)
    sum_uu = np.bincount(bucket, weights=u * u, minlength=n_buckets)
    sum_uy = np.bincount(bucket, weights=u * y, minlength=n_buckets)
    minimum = np.full(n_buckets, np.inf)
    maximum = np.full(n_buckets, -np.inf)
    np.minimum.at(minimum, bucket, values[keep])
    np.maximum.at(maximum, bucket, values[keep])

    count = np.zeros(n_buckets)
    s_y = np.zeros(n_buckets)
    s_t = np.zeros(n_buckets)
    s_tt = np.zeros(n_buckets)
    s_ty = np.zeros(n_buckets)
    low = np.full(n_buckets, np.inf)
    high = np.full(n_buckets, -np.inf)
    for lag in range(window_h):
        offset_h = -(lag + 1.0)  # start of the bucket `lag` hours back, relative to the window's end
        n_l = _lagged(n, lag, grid_position, 0.0)
        y_l = _lagged(sum_y, lag, grid_position, 0.0)
        u_l = _lagged(sum_u, lag, grid_position, 0.0)
        count += n_l
        s_y += y_l
        s_t += u_l + n_l * offset_h
        s_tt += _lagged(sum_uu, lag, grid_position, 0.0) + 2.0 * offset_h * u_l + n_l * offset_h**2
        s_ty += _lagged(sum_uy, lag, grid_position, 0.0) + offset_h * y_l
        low = np.minimum(low, _lagged(minimum, lag, grid_position, np.inf))
        high = np.maximum(high, _lagged(maximum, lag, grid_position, -np.inf))

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, s_y / count + shift, np.nan)
        s_xx = s_tt - s_t**2 / count
        s_xy = s_ty - s_t * s_y / count
        # identical times leave a spread of rounding noise only: fewer than 2 distinct times
        slope = np.where((count >= 2) & (s_xx > 1e-12 * count), s_xy / s_xx, np.nan)
    return {
        "count": count,
        "sum": s_y + count * shift,
        "mean": mean,
        "min": np.where(count > 0, low, np.nan),
        "max": np.where(count > 0, high, np.nan),
        "slope_per_h": slope,
    }


def _utc_timestamps(timestamp: pd.Series, name: str = "timestamp") -> pd.Series:
    times = pd.to_datetime(timestamp)
    if times.dt.tz is None:
        raise ValueError(
            f"{name} must be timezone-aware UTC (datetime64[ns, UTC]); got naive times: localize them in the "
            "reader (Series.dt.tz_localize) so that features use one clock"
        )
    return times.dt.tz_convert("UTC")


def rolling_window_statistics(subject_id, timestamp, values, window_h: int) -> pd.DataFrame:
    """Mean, min, max and least-squares slope of a signal over a trailing window, per subject per hour.

    The window of the hour ``[H, H + 1 h)`` ends at ``T = H + 1 h`` and covers ``[T - window_h, T)``:
    only observations strictly before ``T`` count, so a row never uses the future.

    Parameters
    ----------
    subject_id : array-like of shape (n,), the subject of each observation.
    timestamp : array-like of shape (n,), datetime64 tz-aware (converted to UTC).
    values : array-like of shape (n,), the signal in its unit; NaN observations are left out
        (their rows still extend the subject's hourly grid). Rows without a subject or a time
        are left out.
    window_h : int, window length in hours (>= 1).

    Returns
    -------
    pd.DataFrame with one row per subject per hour of the complete hourly grid from the subject's
    first to last observed hour: ``subject_id``, ``event_timestamp`` (end of the hour, UTC),
    ``count``, ``mean``, ``min``, ``max`` (unit of ``values``), ``slope_per_h`` (unit of ``values``
    per hour; NaN with fewer than two distinct times). Statistics are NaN when the window holds
    no observation.
    """
    if int(window_h) != window_h or window_h < 1:
        raise ValueError(f"window_h must be a whole number of hours >= 1, got {window_h!r}")
    subjects = pd.Series(np.asarray(subject_id, dtype=object))
    times = _utc_timestamps(pd.Series(pd.DatetimeIndex(timestamp)))
    y = _float_array(values).ravel()
    placed = (subjects.notna() & times.notna()).to_numpy()
    subjects, times, y = subjects[placed].reset_index(drop=True), times[placed].reset_index(drop=True), y[placed]
    hour_index, hour_fraction = _hour_parts(times)
    _, row_bucket, grid = _hour_grid(subjects, hour_index)
    stats = _window_statistics_on_grid(row_bucket, grid["position"].to_numpy(), hour_fraction, y, int(window_h))
    return pd.DataFrame(
        {
            "subject_id": grid["subject_id"],
            "event_timestamp": grid["event_timestamp"],
            **{name: stats[name] for name in ("count", "mean", "min", "max", "slope_per_h")},
        }
    )


# --- SpO2 desaturation events --------------------------------------------------------------


def spo2_baseline_percent(timestamp, spo2_percent, baseline_window_h: float = DESATURATION_BASELINE_WINDOW_H):
    """Rolling SpO2 baseline of one subject: the median of the readings in the preceding window.

    The baseline of a reading at ``t`` is the median of the subject's valid readings in
    ``[t - baseline_window_h, t)`` (the reading itself and later ones are left out). The median
    keeps a short desaturation from dragging the baseline down.

    Parameters
    ----------
    timestamp : array-like of shape (n,), datetime64, one subject.
    spo2_percent : array-like of shape (n,), %; NaN readings are left out.
    baseline_window_h : float, hours.

    Returns
    -------
    np.ndarray of shape (n,), % in input order; NaN where the window holds no valid reading or the
    reading itself is missing.
    """
    times = pd.DatetimeIndex(timestamp)
    spo2 = _float_array(spo2_percent).ravel()
    order = np.argsort(times.asi8, kind="stable")
    series = pd.Series(spo2[order], index=times[order])
    valid = series.dropna()
    baseline_sorted = valid.rolling(pd.Timedelta(hours=baseline_window_h), closed="left").median()
    out_sorted = np.full(len(series), np.nan)
    out_sorted[np.flatnonzero(~np.isnan(spo2[order]))] = baseline_sorted.to_numpy()
    out = np.empty(len(series))
    out[order] = out_sorted
    return out


def spo2_desaturated(
    timestamp,
    spo2_percent,
    drop_percent: float = DESATURATION_DROP_PERCENT,
    absolute_threshold_percent: float = DESATURATION_ABSOLUTE_THRESHOLD_PERCENT,
    baseline_window_h: float = DESATURATION_BASELINE_WINDOW_H,
) -> np.ndarray:
    """Whether each SpO2 reading of one subject is desaturated.

    A reading is desaturated when it is at least ``drop_percent`` percentage points below its
    rolling baseline (:func:`spo2_baseline_percent`) or below ``absolute_threshold_percent``.

    Parameters
    ----------
    timestamp : array-like of shape (n,), datetime64, one subject.
    spo2_percent : array-like of shape (n,), %.
    drop_percent : float, percentage points below the baseline (3: the AASM >= 3 % desaturation).
    absolute_threshold_percent : float, % (90: the usual hypoxaemia threshold, as in T90).
    baseline_window_h : float, hours.

    Returns
    -------
    np.ndarray of shape (n,), bool in input order; ``False`` for a missing reading.
    """
    spo2 = _float_array(spo2_percent).ravel()
    baseline = spo2_baseline_percent(timestamp, spo2, baseline_window_h)
    with np.errstate(invalid="ignore"):
        return (spo2 < absolute_threshold_percent) | (spo2 <= baseline - drop_percent)


def desaturation_event_onsets(
    timestamp,
    spo2_percent,
    drop_percent: float = DESATURATION_DROP_PERCENT,
    absolute_threshold_percent: float = DESATURATION_ABSOLUTE_THRESHOLD_PERCENT,
    baseline_window_h: float = DESATURATION_BASELINE_WINDOW_H,
    min_consecutive_observations: int = DESATURATION_MIN_CONSECUTIVE_OBSERVATIONS,
) -> np.ndarray:
    """Mark the reading that confirms each SpO2 desaturation event of one subject.

    Definition. Readings are taken in time order, missing readings left out. A reading is
    desaturated when SpO2 is >= ``drop_percent`` percentage points below its rolling baseline
    (the median of the readings in the preceding ``baseline_window_h`` hours) or below
    ``absolute_threshold_percent``. An event is a run of at least
    ``min_consecutive_observations`` consecutive desaturated readings; it is counted once, at
    the reading that completes the minimum run (so the count at time ``t`` needs no reading
    after ``t``). A run continues across any time gap between readings.

    The >= 3 % drop from a pre-event baseline is the oxygen desaturation criterion of the AASM
    scoring rules and of the 3 % oxygen desaturation index (ODI3); oximetry software defines the
    baseline over the preceding minutes of a continuous recording, which this rolling median
    generalises to irregularly spaced ward observations (the window length is our choice). The
    90 % threshold is the conventional hypoxaemia cut-off (time below 90 %, T90); for NEWS2
    Scale 2 patients, whose target range is 88-92 %, use 88 %.

    Parameters
    ----------
    timestamp : array-like of shape (n,), datetime64, one subject.
    spo2_percent : array-like of shape (n,), %.
    drop_percent, absolute_threshold_percent, baseline_window_h : see :func:`spo2_desaturated`.
    min_consecutive_observations : int, N >= 1.

    Returns
    -------
    np.ndarray of shape (n,), bool in input order; ``True`` at the N-th reading of each event.

    References
    ----------
    Berry RB, Budhiraja R, Gottlieb DJ, et al. Rules for scoring respiratory events in sleep:
    update of the 2007 AASM Manual for the Scoring of Sleep and Associated Events.
    J Clin Sleep Med 2012;8(5):597-619.
    O'Driscoll BR, Howard LS, Earis J, Mak V. BTS guideline for oxygen use in adults in
    healthcare and emergency settings. Thorax 2017;72(Suppl 1):ii1-ii90 (target 88-92 % in
    hypercapnic respiratory failure).
    """
    if min_consecutive_observations < 1:
        raise ValueError(f"min_consecutive_observations must be >= 1, got {min_consecutive_observations}")
    times = pd.DatetimeIndex(timestamp)
    spo2 = _float_array(spo2_percent).ravel()
    desaturated = spo2_desaturated(times, spo2, drop_percent, absolute_threshold_percent, baseline_window_h)
    order = np.argsort(times.asi8, kind="stable")
    valid_sorted = order[~np.isnan(spo2[order])]
    flags = desaturated[valid_sorted].astype(np.int64)
    # length of the run of desaturated readings ending at each reading
    run_id = np.cumsum(flags == 0)
    run_length = pd.Series(flags).groupby(run_id).cumsum().to_numpy()
    onsets = np.zeros(len(spo2), dtype=bool)
    onsets[valid_sorted[run_length == min_consecutive_observations]] = True
    return onsets


def desaturation_events_count(timestamp, spo2_percent, **definition) -> int:
    """Number of SpO2 desaturation events of one subject (see :func:`desaturation_event_onsets`)."""
    return int(desaturation_event_onsets(timestamp, spo2_percent, **definition).sum())


# --- table ---------------------------------------------------------------------------------


def _append_reason(reasons: list[list[str]], mask: np.ndarray, message: str) -> None:
    for i in np.flatnonzero(mask):
        reasons[i].append(message)


def _append_column_reason(reasons: list[list[str]], masks: dict[str, np.ndarray], message: str) -> None:
    """Append ``"<message>: <column>, <column>"`` naming the columns whose mask holds in each row."""
    names = list(masks)
    stacked = np.column_stack([masks[name] for name in names])
    for i in np.flatnonzero(stacked.any(axis=1)):
        reasons[i].append(f"{message}: " + ", ".join(n for n, hit in zip(names, stacked[i], strict=True) if hit))


def vitals_hourly_features(vitals: pd.DataFrame, spo2_scale: int = 1) -> pd.DataFrame:
    """Hourly vital-sign features per subject: rolling statistics, NEWS2 and desaturation events.

    One row per subject per clock hour ``[H, H + 1 h)`` that holds at least one observation,
    with ``event_timestamp = H + 1 h`` (UTC). A row's 1 h window is ``[T - 1 h, T)`` and its 24 h
    window ``[T - 24 h, T)`` with ``T = event_timestamp``: only observations before ``T`` are used.

    Parameters
    ----------
    vitals : pd.DataFrame of shape (n, >= 9)
        The canonical VITALS frame: ``subject_id``, ``timestamp`` (tz-aware, converted to UTC),
        ``heart_rate_bpm``, ``spo2_percent``, ``respiratory_rate_per_min``, ``temperature_deg_c``,
        ``systolic_bp_mmhg``, ``consciousness_avpu`` (A/C/V/P/U), ``supplemental_oxygen`` (bool).
        Missing values are allowed; rows without a subject or timestamp are left out.
    spo2_scale : {1, 2}
        NEWS2 SpO2 scale for every observation. With Scale 2 (hypercapnic respiratory failure,
        target 88-92 %) the desaturation threshold is 88 % instead of 90 %.

    Returns
    -------
    pd.DataFrame with columns ``subject_id``, ``event_timestamp`` (datetime64[ns, UTC]),
    :data:`VITALS_HOURLY_FEATURE_COLUMNS` (float64) and ``missing_reason``, sorted by subject and
    time:

    - ``<signal>_{mean,min,max}_{1h,24h}_<unit>`` and ``<signal>_slope_{1h,24h}_<unit>_per_h``
      (least squares, unit per hour) for heart_rate (bpm), spo2 (percent), respiratory_rate
      (per_min), temperature (deg_c) and systolic_bp (mmhg);
    - ``news2_score_max_{1h,24h}``: highest NEWS2 score (points) of the observations in the
      window that have all seven parameters (:func:`news2_score`; incomplete observations are
      not scored);
    - ``desaturation_events_24h_count``: events (:func:`desaturation_event_onsets`, default
      definition) confirmed in the 24 h window, detected on the subject's whole SpO2 record up to
      each reading;
    - ``missing_reason``: ``None`` when every feature has a value, else ``"; "``-joined reasons
      naming the input columns concerned, in this order: ``"no observation in 1h window: <columns>"``,
      ``"fewer than 2 observation times for slope in 1h window: <columns>"``, the same two for the
      24h window, ``"no complete NEWS2 observation in 1h window"``, the same for 24h. Features
      without data are NaN; nothing is imputed. A desaturation count is NaN exactly when
      ``spo2_percent`` has no observation in the 24h window.

    Raises
    ------
    ValueError
        When a canonical column is missing, timestamps are naive, or ``spo2_scale`` is not 1 or 2.
    """
    if spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2 (NEWS2 SpO2 Scale 1 or Scale 2), got {spo2_scale!r}")
    missing_columns = [c for c in _REQUIRED_VITALS_COLUMNS if c not in vitals.columns]
    if missing_columns:
        raise ValueError(
            f"vitals frame lacks the canonical column(s) {missing_columns}; read it with the VITALS reader "
            "(validation.schemas.SCHEMAS[SourceKind.VITALS])"
        )
    frame = vitals.loc[vitals["subject_id"].notna() & vitals["timestamp"].notna(), list(_REQUIRED_VITALS_COLUMNS)]
    times = _utc_timestamps(frame["timestamp"])
    subjects = frame["subject_id"]
    output_columns = ["subject_id", "event_timestamp", *VITALS_HOURLY_FEATURE_COLUMNS, "missing_reason"]
    if frame.empty:
        empty = pd.DataFrame({c: pd.Series([], dtype=float) for c in output_columns})
        empty["subject_id"] = empty["subject_id"].astype(object)
        empty["event_timestamp"] = pd.Series([], dtype="datetime64[ns, UTC]")
        empty["missing_reason"] = empty["missing_reason"].astype(object)
        return empty

    hour_index, hour_fraction = _hour_parts(times)
    codes, row_bucket, grid = _hour_grid(subjects, hour_index)
    position = grid["position"].to_numpy()
    has_rows = np.bincount(row_bucket, minlength=len(grid)) > 0
    reasons: list[list[str]] = [[] for _ in range(len(grid))]

    features: dict[str, np.ndarray] = {}
    for window_h in _WINDOWS_H:
        no_data: dict[str, np.ndarray] = {}
        no_slope: dict[str, np.ndarray] = {}
        for column, signal, unit in _SIGNALS:
            values = _float_array(frame[column]).ravel()
            stats = _window_statistics_on_grid(row_bucket, position, hour_fraction, values, window_h)
            for statistic, name in _signal_columns(signal, unit, window_h).items():
                features[name] = stats[statistic]
            no_data[column] = stats["count"] == 0
            no_slope[column] = (stats["count"] > 0) & np.isnan(stats["slope_per_h"])
        _append_column_reason(reasons, no_data, f"no observation in {window_h}h window")
        _append_column_reason(reasons, no_slope, f"fewer than 2 observation times for slope in {window_h}h window")

    scores = news2_score(
        frame["respiratory_rate_per_min"].to_numpy(),
        frame["spo2_percent"].to_numpy(),
        frame["supplemental_oxygen"].to_numpy(),
        frame["systolic_bp_mmhg"].to_numpy(),
        frame["heart_rate_bpm"].to_numpy(),
        frame["consciousness_avpu"].to_numpy(),
        frame["temperature_deg_c"].to_numpy(),
        spo2_scale,
    )
    for window_h in _WINDOWS_H:
        stats = _window_statistics_on_grid(row_bucket, position, hour_fraction, scores, window_h)
        features[f"news2_score_max_{window_h}h"] = stats["max"]
        _append_reason(reasons, stats["count"] == 0, f"no complete NEWS2 observation in {window_h}h window")

    spo2 = _float_array(frame["spo2_percent"]).ravel()
    onsets = np.zeros(len(frame), dtype=bool)
    threshold = 88.0 if spo2_scale == 2 else DESATURATION_ABSOLUTE_THRESHOLD_PERCENT
    for rows in pd.Series(np.arange(len(frame))).groupby(codes, sort=False).indices.values():
        onsets[rows] = desaturation_event_onsets(times.iloc[rows], spo2[rows], absolute_threshold_percent=threshold)
    onset_values = np.where(onsets, 1.0, np.where(np.isnan(spo2), np.nan, 0.0))
    stats = _window_statistics_on_grid(row_bucket, position, hour_fraction, onset_values, 24)
    # every valid SpO2 reading adds a 0 or a 1, so an empty window means "no SpO2 in the window"
    features["desaturation_events_24h_count"] = np.where(stats["count"] > 0, np.round(stats["sum"]), np.nan)

    table = pd.DataFrame(
        {
            "subject_id": grid["subject_id"],
            "event_timestamp": grid["event_timestamp"],
            **{name: features[name] for name in VITALS_HOURLY_FEATURE_COLUMNS},
            "missing_reason": ["; ".join(r) if r else None for r in reasons],
        }
    )
    return table.loc[has_rows].reset_index(drop=True)
