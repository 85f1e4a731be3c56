"""Gait biomarkers from a lower-back (lumbar) accelerometer, through SKDH.

:func:`gait_bouts` runs the SKDH pipeline of :func:`skdh_gait_pipeline` on one recording and
lists its walking bouts (start, end, duration, steps, cadence); :func:`gait_daily_features`
summarizes the same steps per UTC day: gait bouts and steps, mean cadence, mean gait speed,
mean stride time and its coefficient of variation. Two small pure helpers,
:func:`stride_time_s` and :func:`coefficient_of_variation_percent`, give the stride-level
definitions.

A walking bout is a run of initial contacts (the steps that pass SKDH's stride quality
control) without a pause of more than 3 s, from its first to its last initial contact: the
Mobilise-D walking-bout definition (Kluge et al. 2021), the one its INDIP reference system
reports. SKDH's own bouts are the spans its gait classifier marks, widened here by one
classifier window on each side (:class:`PaddedPredictGaitLumbarLgbm`); they only say where
to look for steps.

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

Kluge F, Del Din S, Cereatti A, et al. (2021). Consensus based framework for digital mobility
monitoring. PLoS One 16(8):e0256541. doi:10.1371/journal.pone.0256541

SKDH (scikit-digital-health) is imported where it is used, and the SKDH process class defined
here, :class:`PaddedPredictGaitLumbarLgbm`, is built on first access, as in ``activity``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

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
# SKDH's gait classifier labels non-overlapping windows of this length, s.
CLASSIFIER_WINDOW_S = 3.0
# Widening of each classifier bout on both sides, s: one classifier window. A window only
# partly walking (where a walk starts or ends) scores below the classifier's 0.7 threshold,
# so the walk's first and last seconds lie in the windows next to its bout; without them the
# bouts started late and ended early and their first and last steps were never looked for.
BOUT_PAD_S = CLASSIFIER_WINDOW_S
# Longest pause between two initial contacts of one walking bout, s (Mobilise-D, Kluge et al.
# 2021); it also splits widened SKDH bouts that merged two walks.
MAX_BREAK_S = 3.0
# Fewest initial contacts of a walking bout: each starts a stride that passed SKDH's quality
# control, and Mobilise-D bouts hold at least two strides (Kluge et al. 2021).
MIN_BOUT_STEPS = 2
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
GAIT_BOUT_COLUMNS = (
    "subject_id",
    "bout_start",
    "bout_end",
    "bout_duration_s",
    "bout_steps_count",
    "bout_cadence_mean_steps_per_min",
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
    """The SKDH pipeline behind :func:`gait_bouts` and :func:`gait_daily_features`.

    Steps, all with SKDH's defaults unless stated:

    1. ``skdh.preprocessing.GetDayWindowIndices(bases=0, periods=24)``: UTC calendar days;
    2. :class:`PaddedPredictGaitLumbarLgbm`: gait / not gait per 3-s window by SKDH's LightGBM
       classifier (50 Hz model from 50 Hz up, 20 Hz model below), given data at its model's
       rate, each bout widened by one window (3 s) on both sides;
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
    from skdh.gait import GaitLumbar
    from skdh.preprocessing import GetDayWindowIndices

    if not fs_hz >= MIN_FS_HZ:
        raise ValueError(f"fs_hz={fs_hz}: SKDH gait needs a sampling rate of at least {MIN_FS_HZ:.0f} Hz")
    pipeline = skdh.Pipeline()
    pipeline.add(GetDayWindowIndices(bases=0, periods=24))
    pipeline.add(_skdh_process_classes()["PaddedPredictGaitLumbarLgbm"](pad_s=BOUT_PAD_S))
    pipeline.add(GaitLumbar(day_window=(0, 24)))
    return pipeline


def gait_bouts(accel: pd.DataFrame, fs_hz: float, subject_id: str) -> pd.DataFrame:
    """Walking bouts of one lower-back accelerometry recording, through SKDH.

    A bout is a run of initial contacts passing SKDH's stride quality control with no pause
    over 3 s (:data:`MAX_BREAK_S`) and at least :data:`MIN_BOUT_STEPS` contacts; it lasts from
    its first to its last initial contact, as the bouts (walking bouts, WB) of the Mobilise-D
    INDIP reference system do (Kluge et al. 2021).

    Parameters
    ----------
    accel : DataFrame of n rows
        Canonical ACCELEROMETRY frame of one lower-back recording (``timestamp`` UTC,
        ``accel_x_g``, ``accel_y_g``, ``accel_z_g`` in g; SKDH estimates the vertical and
        anterior-posterior axes per bout), in time order without gaps. Not modified.
    fs_hz : float
        Sampling rate, Hz (>= 20).
    subject_id : str
        The recording's subject, copied to every row.

    Returns
    -------
    DataFrame of one row per bout, in time order
        Columns :data:`GAIT_BOUT_COLUMNS`: ``subject_id``; ``bout_start`` and ``bout_end``, the
        first and last initial contact (UTC); ``bout_duration_s``, s; ``bout_steps_count``,
        the initial contacts; ``bout_cadence_mean_steps_per_min``, the mean of the per-step
        cadence (60 / step time; NaN when no step time is defined). No rows when the recording
        holds no bout or is no longer than :data:`MIN_BOUT_S`.

    Raises
    ------
    ValueError
        For a frame SKDH cannot take (see ``activity.unix_time_s_and_accel_g``) or a sampling
        rate below 20 Hz.

    References
    ----------
    See :func:`skdh_gait_pipeline`.
    """
    if not fs_hz >= MIN_FS_HZ:
        raise ValueError(f"fs_hz={fs_hz}: SKDH gait needs a sampling rate of at least {MIN_FS_HZ:.0f} Hz")
    time_s, accel_g = unix_time_s_and_accel_g(accel, fs_hz)
    steps = None
    if time_s.size and (time_s[-1] - time_s[0]) + 1.0 / fs_hz > MIN_BOUT_S:
        steps = _gait_steps(time_s, accel_g, fs_hz, None)
    if steps is None or steps.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in GAIT_BOUT_COLUMNS})
        frame["subject_id"] = frame["subject_id"].astype(object)
        for column in ("bout_start", "bout_end"):
            frame[column] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    by_bout = steps.groupby("bout", sort=True)
    first, last = by_bout["ic_time_s"].min(), by_bout["ic_time_s"].max()
    return pd.DataFrame({
        "subject_id": pd.Series([subject_id] * len(first), dtype=object),
        "bout_start": pd.to_datetime(first.to_numpy(), unit="s", utc=True),
        "bout_end": pd.to_datetime(last.to_numpy(), unit="s", utc=True),
        "bout_duration_s": (last - first).to_numpy(dtype=float),
        "bout_steps_count": by_bout.size().to_numpy(dtype=float),
        "bout_cadence_mean_steps_per_min": by_bout["cadence"].agg(_nanmean).to_numpy(dtype=float),
    }, columns=list(GAIT_BOUT_COLUMNS))


def gait_daily_features(
    accel: pd.DataFrame, fs_hz: float, subject_id: str, height_m: float | None = None
) -> pd.DataFrame:
    """Daily gait from one lower-back accelerometry recording, through SKDH.

    Runs :func:`skdh_gait_pipeline`; one row per UTC day the recording touches:

    * ``gait_bouts_1d_count``: walking bouts (:func:`gait_bouts`) in the day (SKDH splits a
      bout at midnight);
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
    steps = _gait_steps(time_s, accel_g, fs_hz, height_m)
    by_day = dict(iter(steps.groupby("date", sort=False)))
    rows = []
    for day in days:
        day_steps = by_day.get(day.strftime("%Y-%m-%d"))
        rows.append({"subject_id": subject_id, "event_timestamp": day + _DAY,
                     **_gait_day(day_steps, height_m)})
    return _table(rows, GAIT_DAILY_COLUMNS)


def _gait_steps(time_s: np.ndarray, accel_g: np.ndarray, fs_hz: float, height_m: float | None) -> pd.DataFrame:
    """The steps of a recording that belong to walking bouts, from :func:`skdh_gait_pipeline`.

    One row per initial contact passing SKDH's quality control, in time order: ``date`` (UTC,
    ``YYYY-MM-DD``), ``bout`` (0, 1, ... over the recording), ``ic_time_s`` (Unix time, s),
    ``cadence`` (steps/min), ``speed`` (m/s), ``stride`` (s).
    """
    with warnings.catch_warnings():
        # Documented here instead: without a height, gait speed is NaN with a reason.
        warnings.filterwarnings("ignore", message="height not provided", category=UserWarning)
        result = skdh_gait_pipeline(fs_hz).run(
            time=time_s, accel=accel_g, fs=float(fs_hz), tz_name="UTC", height=height_m
        )["GaitLumbar"]
    n = len(result["Date"])

    def floats(key: str) -> np.ndarray:
        return np.asarray(result.get(key, np.full(n, np.nan)), dtype=float).reshape(-1)

    day_n = np.asarray(result.get("Day N", np.zeros(n)), dtype=int).reshape(-1)
    skdh_bout = np.asarray(result["Bout N"], dtype=int).reshape(-1)
    ic_time_s = floats("IC Timestamp")
    # A new walking bout starts with each SKDH bout (bouts are per day) and after each pause
    # of more than MAX_BREAK_S: a widened SKDH bout can hold two walks and the standing between.
    starts = np.ones(n, dtype=bool)
    starts[1:] = (day_n[1:] != day_n[:-1]) | (skdh_bout[1:] != skdh_bout[:-1]) | (np.diff(ic_time_s) > MAX_BREAK_S)
    steps = pd.DataFrame({
        "date": np.asarray(result["Date"], dtype=str).reshape(-1),
        "bout": np.cumsum(starts) - 1,
        "ic_time_s": ic_time_s,
        "cadence": floats("cadence"),
        "speed": floats("gait speed"),
        "stride": floats("stride time"),
    })
    kept = steps[steps.groupby("bout")["bout"].transform("size") >= MIN_BOUT_STEPS]
    return kept.assign(bout=kept["bout"].rank(method="dense").astype(int) - 1).reset_index(drop=True)


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
        reasons.append("height unknown: gait speed not computed (biomarkers.gait.height_source; the subjects "
                       "file's height_m or height_cm)")
    elif not np.isfinite(row["gait_speed_mean_1d_m_s"]):
        reasons.append("no stride passed SKDH's quality control for gait speed")
    if not np.isfinite(row["stride_time_cv_1d_percent"]):
        reasons.append("fewer than 2 strides passed SKDH's quality control")
    row["missing_reason"] = "; ".join(reasons) or None
    return row


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


# --------------------------------------------------------------------------------------------
# SKDH process class, built on first access (PEP 562) so importing this module stays fast


def __getattr__(name: str) -> Any:
    if name == "PaddedPredictGaitLumbarLgbm":
        return _skdh_process_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _skdh_process_classes() -> dict[str, type]:
    from skdh.base import handle_process_returns
    from skdh.context import PredictGaitLumbarLgbm

    # SKDH's internal resampler, the one its own steps use; checked against skdh 0.17.18.
    from skdh.utility.internal import apply_resample

    class PaddedPredictGaitLumbarLgbm(PredictGaitLumbarLgbm):
        """SKDH's ``PredictGaitLumbarLgbm`` given data at its model's rate, its bouts widened.

        Two changes to the parent's gait bouts, nothing else:

        * Data at another rate than the model's (50 Hz from 50 Hz up, else 20 Hz) are resampled
          here, with SKDH's own anti-aliased resampling, before the parent sees them. The
          parent (skdh 0.17.18) designs its 0.25-5 Hz band-pass for the rate it was given but
          applies it after resampling to the model's rate, so at 100 Hz its features were
          computed on a 0.125-2.5 Hz band: in the 100 Hz Mobilise-D lab recordings of
          tests/data/gait it then found no gait at all in some walks.
        * Each bout is widened by ``pad_s`` on both sides (clipped to the recording; bouts
          that then overlap are merged), see :data:`BOUT_PAD_S`. The steps, and so the bouts'
          true ends, are then found by ``GaitLumbar`` and :func:`gait_bouts`.

        Parameters
        ----------
        pad_s : float
            Widening on each side, s (default one classifier window, 3 s).
        downsample_aa_filter : bool
            Anti-aliasing filter when resampling down (default True, as the parent's).
        """

        def __init__(self, pad_s=BOUT_PAD_S, downsample_aa_filter=True):
            super().__init__(downsample_aa_filter=downsample_aa_filter)
            self._kw["pad_s"] = pad_s  # SKDH saves a step's parameters from _kw
            self.pad_s = pad_s

        @handle_process_returns(results_to_kwargs=False)
        def predict(self, *, time, accel, fs=None, tz_name=None, **kwargs):
            """Gait bouts ``{"gait_bouts": (k, 2) start and stop sample indices}``, as the parent's."""
            parent = PredictGaitLumbarLgbm.predict.__wrapped__
            fs = 1 / np.mean(np.diff(time)) if fs is None else fs
            model_fs = 50.0 if fs >= 50.0 else 20.0
            if fs < MIN_FS_HZ or fs == model_fs:
                time_m, accel_m, fs_m = time, accel, fs  # the parent refuses < 20 Hz itself
            else:
                time_m, (accel_m,), *_ = apply_resample(goal_fs=model_fs, time=time, data=(accel,), indices=(),
                                                        aa_filter=self.downsample_aa_filter, fs=fs)
                fs_m = model_fs
            results, _ = parent(self, time=time_m, accel=accel_m, fs=fs_m, tz_name=tz_name, **kwargs)
            n = time.size
            pad_n = int(round(self.pad_s * fs))
            starts = np.searchsorted(time, np.asarray(results["Gait Bout Start"]), side="left") - pad_n
            stops = np.searchsorted(time, np.asarray(results["Gait Bout Stop"]), side="right") - 1 + pad_n
            bouts = []
            for start, stop in zip(np.clip(starts, 0, n - 1), np.clip(stops, 0, n - 1), strict=True):
                if bouts and start <= bouts[-1][1]:
                    bouts[-1][1] = max(bouts[-1][1], stop)
                else:
                    bouts.append([start, stop])
            bouts = np.asarray(bouts, dtype=np.int64).reshape(-1, 2)
            results.update({
                "Gait Bout Start": time[bouts[:, 0]],
                "Gait Bout Stop": time[bouts[:, 1]],
                "Gait Bout Start Index": bouts[:, 0],
                "Gait Bout Stop Index": bouts[:, 1],
            })
            return results, {"gait_bouts": bouts}

    classes = {"PaddedPredictGaitLumbarLgbm": PaddedPredictGaitLumbarLgbm}
    for cls in classes.values():  # so Pipeline.save/load and pickle find them in this module
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return classes
