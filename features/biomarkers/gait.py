"""Gait biomarkers from a lower-back (lumbar) accelerometer, through SKDH.

:func:`gait_daily_features` runs the SKDH pipeline of :func:`skdh_gait_pipeline` on one
recording and summarizes it per UTC day: gait bouts and steps, mean cadence, mean gait speed,
mean stride time and its coefficient of variation. Two small pure helpers,
:func:`stride_time_s` and :func:`coefficient_of_variation_percent`, give the stride-level
definitions.

A row carries ``event_timestamp``, the end of the UTC day it summarizes (the next midnight), and
``missing_reason``: ``None`` when every measure of the row was computed, else a sentence saying
why the NaN measures could not be. A day without gait bouts has counts of 0, NaN for the other
measures and a reason; gait speed needs the subject's height and is NaN, with a reason,
without it.

References
----------
Adamowicz L, Christakis Y, Czech MD, Adamusiak T (2022). SciKit Digital Health: Python package
for streamlined wearable inertial sensor data processing. JMIR mHealth uHealth 10(4):e36762.
doi:10.2196/36762
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.biomarkers._frames import _empty_frame, _nan_row, _table, _utc_days
from features.biomarkers.activity import _DAY, unix_time_s_and_accel_g

if TYPE_CHECKING:  # pragma: no cover
    import skdh

# SKDH's gait classifier and GaitLumbar refuse data below 20 Hz (LowFrequencyError).
MIN_FS_HZ = 20.0
# SKDH GaitLumbar's shortest bout, s (min_bout_time): a shorter recording holds no bout.
MIN_BOUT_S = 8.0
# Heights outside this range, m, are taken as a unit error (e.g. cm) rather than a height.
HEIGHT_RANGE_M = (0.5, 2.5)

GAIT_DAILY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "gait_bouts_1d_count",
    "gait_steps_1d_count",
    "cadence_mean_1d_steps_per_min",
    "gait_speed_mean_1d_m_s",
    "stride_time_mean_1d_s",
    "stride_time_cv_1d_percent",
    "missing_reason",
)


def stride_time_s(initial_contact_idx: np.ndarray, fs_hz: float) -> np.ndarray:
    """Stride times of one continuous gait bout: from each initial contact to the next of the
    same foot, ``(ic[i + 2] - ic[i]) / fs_hz``, s.

    Initial contacts alternate between the feet, so a stride spans two steps. This is SKDH's
    ``StrideTime`` definition for one bout without breaks in its gait cycles.

    Parameters
    ----------
    initial_contact_idx : array-like of int, shape (n_contacts,)
        Sample indices of successive initial contacts (heel strikes) of one bout, increasing.
    fs_hz : float
        Sampling rate of the indices, Hz.

    Returns
    -------
    ndarray of shape (max(n_contacts - 2, 0),)
        Stride times, s; stride ``i`` starts at contact ``i``.

    References
    ----------
    Zijlstra W, Hof AL (2003). Assessment of spatio-temporal gait parameters from trunk
    accelerations during human walking. Gait Posture 18(2):1-10.
    doi:10.1016/S0966-6362(02)00190-X
    """
    if not fs_hz > 0:
        raise ValueError(f"fs_hz={fs_hz}: pass the sampling rate in Hz (> 0)")
    contacts = np.asarray(initial_contact_idx, dtype=float).reshape(-1)
    return (contacts[2:] - contacts[:-2]) / fs_hz


def coefficient_of_variation_percent(values: np.ndarray) -> float:
    """Sample standard deviation (ddof 1) over the mean, percent, of the finite values (NaN for
    fewer than two values or a zero mean)."""
    x = np.asarray(values, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size < 2 or x.mean() == 0:
        return math.nan
    return float(100.0 * x.std(ddof=1) / x.mean())


def skdh_gait_pipeline(fs_hz: float) -> skdh.Pipeline:
    """The SKDH pipeline behind :func:`gait_daily_features`.

    Steps, all with SKDH's defaults unless stated:

    1. ``skdh.preprocessing.GetDayWindowIndices(bases=0, periods=24)``: UTC calendar days;
    2. ``skdh.context.PredictGaitLumbarLgbm()``: gait / not gait per 3-s window by SKDH's
       LightGBM classifier (50 Hz model from 50 Hz up, 20 Hz model below);
    3. ``skdh.gait.GaitLumbar(day_window=(0, 24))``: bouts of > 8 s (windows <= 0.5 s apart
       merged); per bout, orientation correction, initial and final contacts from the
       continuous wavelet transform of the anterior-posterior acceleration (McCamley et al.
       2012), stride quality control; stride time, step time, cadence and, with a leg length of
       0.53 x height, step length and gait speed by the inverted-pendulum model (Zijlstra & Hof
       2003).

    Run it the way :func:`gait_daily_features` does::

        results = skdh_gait_pipeline(50.0).run(time=time_s, accel=accel_g, fs=50.0,
                                               tz_name="UTC", height=1.70)
        results["GaitLumbar"]  # dict of per-step arrays

    Parameters
    ----------
    fs_hz : float
        Sampling rate the pipeline is built for, Hz (>= 20); pass it again to ``run(fs=...)``.

    Returns
    -------
    skdh.Pipeline
        A new pipeline; ``pipeline.save(path)`` writes it as YAML with its parameters.

    References
    ----------
    McCamley J, Donati M, Grimpampi E, Mazza C (2012). An enhanced estimate of initial contact
    and final contact instants of time using lower trunk inertial sensor data. Gait Posture
    36(2):316-318. doi:10.1016/j.gaitpost.2012.02.019

    Zijlstra W, Hof AL (2003). Assessment of spatio-temporal gait parameters from trunk
    accelerations during human walking. Gait Posture 18(2):1-10.
    doi:10.1016/S0966-6362(02)00190-X

    Del Din S, Godfrey A, Rochester L (2016). Validation of an accelerometer to quantify a
    comprehensive battery of gait characteristics in healthy older adults and Parkinson's
    disease. IEEE J Biomed Health Inform 20(3):838-847. doi:10.1109/JBHI.2015.2419317
    """
    import skdh
    from skdh.context import PredictGaitLumbarLgbm
    from skdh.gait import GaitLumbar
    from skdh.preprocessing import GetDayWindowIndices

    if not fs_hz >= MIN_FS_HZ:
        raise ValueError(f"fs_hz={fs_hz}: SKDH gait needs a sampling rate of at least {MIN_FS_HZ:.0f} Hz")
    pipeline = skdh.Pipeline()
    pipeline.add(GetDayWindowIndices(bases=0, periods=24))
    pipeline.add(PredictGaitLumbarLgbm())
    pipeline.add(GaitLumbar(day_window=(0, 24)))
    return pipeline


def gait_daily_features(
    accel: pd.DataFrame, fs_hz: float, subject_id: str, height_m: float | None = None
) -> pd.DataFrame:
    """Daily gait from one lower-back accelerometry recording, through SKDH.

    Runs :func:`skdh_gait_pipeline`; one row per UTC day the recording touches:

    * ``gait_bouts_1d_count``: SKDH gait bouts with at least one step passing its quality
      control;
    * ``gait_steps_1d_count``: steps (initial contacts) passing quality control in those bouts;
    * ``cadence_mean_1d_steps_per_min``: mean of the per-step cadence, 60 / step time;
    * ``gait_speed_mean_1d_m_s``: mean stride speed, stride length / stride time, with the leg
      length taken as 0.53 x ``height_m`` (SKDH's default factor, Del Din et al. 2016); NaN
      when the height is unknown;
    * ``stride_time_mean_1d_s``: mean stride time (:func:`stride_time_s`);
    * ``stride_time_cv_1d_percent``: stride-time variability,
      :func:`coefficient_of_variation_percent` of the day's stride times.

    Parameters
    ----------
    accel : DataFrame of n rows
        Canonical ACCELEROMETRY frame of one lower-back recording (``timestamp`` UTC,
        ``accel_x_g``, ``accel_y_g``, ``accel_z_g`` in g; SKDH estimates the vertical and
        anterior-posterior axes per bout), in time order without gaps. Not modified.
    fs_hz : float
        Sampling rate, Hz; below 20 Hz every row is NaN with a reason.
    subject_id : str
        The recording's subject, copied to every row.
    height_m : float or None
        The subject's height, m. None: gait speed is NaN, with a reason.

    Returns
    -------
    DataFrame
        Columns :data:`GAIT_DAILY_COLUMNS`: ``subject_id``, ``event_timestamp`` (UTC, the
        midnight ending the day), the six measures (float) and ``missing_reason``.

    Raises
    ------
    ValueError
        For a frame SKDH cannot take (see ``activity.unix_time_s_and_accel_g``) or a height
        outside 0.5-2.5 m (a height in cm, say).

    References
    ----------
    See :func:`skdh_gait_pipeline`.
    """
    if height_m is not None and not HEIGHT_RANGE_M[0] <= height_m <= HEIGHT_RANGE_M[1]:
        raise ValueError(f"height_m={height_m}: pass the subject's height in metres "
                         f"({HEIGHT_RANGE_M[0]}-{HEIGHT_RANGE_M[1]}), or None if unknown")
    time_s, accel_g = unix_time_s_and_accel_g(accel, fs_hz)
    if time_s.size == 0:
        return _empty_frame(GAIT_DAILY_COLUMNS)
    days = _utc_days(time_s)
    if fs_hz < MIN_FS_HZ:
        reason = f"sampling rate {fs_hz:g} Hz < {MIN_FS_HZ:.0f} Hz, the least SKDH gait analysis takes"
        return _table([_nan_row(subject_id, day + _DAY, GAIT_DAILY_COLUMNS, reason) for day in days],
                      GAIT_DAILY_COLUMNS)
    duration_s = (time_s[-1] - time_s[0]) + 1.0 / fs_hz
    if duration_s <= MIN_BOUT_S:  # SKDH's classifier fails on less than one 3-s window
        reason = f"recording {duration_s:.1f} s is no longer than a gait bout (> {MIN_BOUT_S:g} s)"
        return _table([{"subject_id": subject_id, "event_timestamp": day + _DAY, **_gait_day(None, height_m),
                        "missing_reason": reason} for day in days], GAIT_DAILY_COLUMNS)
    with warnings.catch_warnings():
        # Documented here instead: without a height, gait speed is NaN with a reason.
        warnings.filterwarnings("ignore", message="height not provided", category=UserWarning)
        result = skdh_gait_pipeline(fs_hz).run(
            time=time_s, accel=accel_g, fs=float(fs_hz), tz_name="UTC", height=height_m
        )["GaitLumbar"]
    steps = pd.DataFrame({
        "date": np.asarray(result["Date"], dtype=str),
        "bout": np.asarray(result["Bout N"]),
        "cadence": np.asarray(result.get("cadence", np.full(len(result["Date"]), np.nan)), dtype=float),
        "speed": np.asarray(result.get("gait speed", np.full(len(result["Date"]), np.nan)), dtype=float),
        "stride": np.asarray(result.get("stride time", np.full(len(result["Date"]), np.nan)), dtype=float),
    })
    by_day = dict(iter(steps.groupby("date", sort=False)))
    rows = []
    for day in days:
        day_steps = by_day.get(day.strftime("%Y-%m-%d"))
        rows.append({"subject_id": subject_id, "event_timestamp": day + _DAY,
                     **_gait_day(day_steps, height_m)})
    return _table(rows, GAIT_DAILY_COLUMNS)


def _gait_day(steps: pd.DataFrame | None, height_m: float | None) -> dict:
    """The measures and reason of one day from its per-step SKDH results (None: no steps)."""
    row = dict.fromkeys(GAIT_DAILY_COLUMNS[2:-1], math.nan)
    if steps is None or steps.empty:
        row.update(gait_bouts_1d_count=0.0, gait_steps_1d_count=0.0, missing_reason="no gait bouts found")
        return row
    stride = steps["stride"].to_numpy()
    reasons = []
    row.update({
        "gait_bouts_1d_count": float(steps["bout"].nunique()),
        "gait_steps_1d_count": float(len(steps)),
        "cadence_mean_1d_steps_per_min": _nanmean(steps["cadence"].to_numpy()),
        "gait_speed_mean_1d_m_s": _nanmean(steps["speed"].to_numpy()),
        "stride_time_mean_1d_s": _nanmean(stride),
        "stride_time_cv_1d_percent": coefficient_of_variation_percent(stride),
    })
    if height_m is None:
        reasons.append("height unknown: gait speed not computed")
    elif not np.isfinite(row["gait_speed_mean_1d_m_s"]):
        reasons.append("no stride passed SKDH's quality control for gait speed")
    if not np.isfinite(row["stride_time_cv_1d_percent"]):
        reasons.append("fewer than 2 strides passed SKDH's quality control")
    row["missing_reason"] = "; ".join(reasons) or None
    return row


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan
