"""Cardiac biomarkers: heart-rate variability, resting heart rate and beat detection.

Raw beats become features in four steps, each a pure function of arrays:

1. beats from a waveform: :func:`r_peak_indices` (ECG) or :func:`pulse_peak_positions` (PPG, to a
   fraction of a sample), their quality (:func:`beat_template_correlation`, and for PPG the
   windowed index :func:`acceptable_pulse_windows`), then :func:`rr_intervals_from_peaks_ms`;
2. normal-to-normal (NN) intervals: :func:`nn_intervals_ms` flags ectopic beats and artefacts;
3. time-domain measures (:func:`mean_nn_ms`, :func:`sdnn_ms`, :func:`rmssd_ms`,
   :func:`pnn50_percent`) and frequency-domain measures (:func:`lf_power_ms2`,
   :func:`hf_power_ms2`, :func:`lf_hf_ratio`) with the definitions of the Task Force (1996);
4. table functions the feature build calls, one row per subject per UTC day:
   :func:`hrv_daily_features`, :func:`ecg_hrv_features`, :func:`ppg_hrv_features` (short morning
   recordings), :func:`hrv_night_features` (overnight recordings, in 5-min segments) and
   :func:`heart_rate_daily_features`.

A day's row carries ``event_timestamp``, the end of the UTC day it summarizes (the next
midnight), and ``missing_reason``: ``None`` when every measure of the row was computed, else a
sentence saying why the measures that are NaN could not be. Too little or too poor data gives
NaN and a reason, never an exception and never a made-up value.

References
----------
Task Force of the European Society of Cardiology and the North American Society of Pacing and
Electrophysiology (1996). Heart rate variability: standards of measurement, physiological
interpretation and clinical use. Circulation 93(5):1043-1065.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import interpolate, ndimage, signal

from features.biomarkers._frames import _empty_frame, _require_columns, _utc

# Frequency bands of short-term HRV (Task Force 1996), Hz, half-open [low, high).
LF_BAND_HZ = (0.04, 0.15)
HF_BAND_HZ = (0.15, 0.40)

HRV_MORNING_COLUMNS = (
    "mean_nn_morning_ms",
    "mean_hr_morning_bpm",
    "sdnn_morning_ms",
    "rmssd_morning_ms",
    "pnn50_morning_percent",
    "lf_power_morning_ms2",
    "hf_power_morning_ms2",
    "lf_hf_ratio_morning",
    "ectopic_beats_morning_percent",
)
HRV_DAILY_COLUMNS = ("subject_id", "event_timestamp", *HRV_MORNING_COLUMNS, "missing_reason")
HRV_NIGHT_COLUMNS = (
    "mean_nn_night_ms",
    "mean_hr_night_bpm",
    "sdnn_night_ms",
    "rmssd_night_ms",
    "pnn50_night_percent",
    "lf_power_night_ms2",
    "hf_power_night_ms2",
    "lf_hf_ratio_night",
    "ectopic_beats_night_percent",
    "hrv_segments_night_count",
)
HRV_NIGHTLY_COLUMNS = ("subject_id", "event_timestamp", *HRV_NIGHT_COLUMNS, "missing_reason")
# The night window's measures from one segment's (the morning recording's names, as _hrv_window gives them).
_NIGHT_FROM_SEGMENT = dict(zip(HRV_NIGHT_COLUMNS[:8], HRV_MORNING_COLUMNS[:8], strict=True))
HEART_RATE_DAILY_COLUMNS = (
    "subject_id",
    "event_timestamp",
    "resting_heart_rate_1d_bpm",
    "heart_rate_mean_1d_bpm",
    "missing_reason",
)

# Least correlation of a beat with the average beat for an acceptable ECG or PPG beat
# (Orphanidou et al. 2015).
MIN_BEAT_CORRELATION = 0.86

# Signal-quality index of Orphanidou et al. (2015) for PPG: windows of 10 s whose beats have a
# mean rate of 40-180 bpm, no stretch of 3 s or more without a beat and a longest interval less
# than 2.2 times the shortest.
SQI_WINDOW_S = 10.0
SQI_HEART_RATE_BPM = (40.0, 180.0)
SQI_MAX_GAP_S = 3.0
SQI_MAX_INTERVAL_RATIO = 2.2

_DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# NN intervals: ectopic beats and artefacts


ARTEFACT_METHODS = ("lipponen_tarvainen_2019", "local_median", "none")

# Lipponen and Tarvainen (2019): threshold multiplier, decision-boundary constants, and the beats
# of the windows for the thresholds' quartile deviation and for the local median.
LT_ALPHA = 5.2
LT_C1, LT_C2 = 0.13, 0.17
LT_THRESHOLD_BEATS = 91
LT_MEDIAN_BEATS = 11
# A quartile deviation below half a millisecond is below what RR devices resolve (1 ms): it is
# taken as 0.5 ms, so a perfectly regular series still has a threshold to exceed.
_MIN_QUARTILE_DEVIATION_MS = 0.5


def nn_intervals_ms(
    rr_interval_ms: np.ndarray,
    *,
    method: str = "lipponen_tarvainen_2019",
    min_ms: float = 300.0,
    max_ms: float = 2000.0,
    alpha: float = LT_ALPHA,
    max_deviation_fraction: float = 0.20,
    median_beats: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """Normal-to-normal intervals: the RR series with ectopic beats and artefacts removed.

    Every method flags an interval that is missing (NaN) or outside ``[min_ms, max_ms]``
    (300-2000 ms, i.e. 30-200 bpm). Then, by ``method``:

    * ``lipponen_tarvainen_2019`` (default): the adaptive beat classification of Lipponen and
      Tarvainen (2019), :func:`lipponen_tarvainen_artefacts`: ectopic, missed, extra, long and
      short beats, judged against thresholds that follow the series' own local spread, so a
      regular series keeps its normal variability;
    * ``local_median``: an interval more than ``max_deviation_fraction`` (20 %) from the median
      of the ``median_beats`` (11) in-range intervals centred on it: the 20 % rule of Malik et al.
      (1989) against a local median, as in the threshold-based correction of Kubios HRV
      (Tarvainen et al. 2014). On clean series it removes some 3-7 % of genuine beats;
    * ``none``: nothing more (for series already edited into NN intervals).

    Flagged intervals are replaced by NaN rather than removed or interpolated, so the series
    keeps its beat positions: the time-domain functions of this module take successive
    differences only between two adjacent normal intervals (Task Force 1996: "adjacent NN
    intervals"), and the spectral functions bridge removed intervals by interpolating at the
    kept beats' times.

    Parameters
    ----------
    rr_interval_ms : array-like of shape (n_intervals,)
        Consecutive RR intervals in ms, in beat order.
    method : str
        One of :data:`ARTEFACT_METHODS`.
    min_ms, max_ms : float
        Physiological range of an interval, ms.
    alpha : float
        ``lipponen_tarvainen_2019``: threshold multiplier of the quartile deviation (5.2).
    max_deviation_fraction : float
        ``local_median``: largest accepted relative difference from the local median (0.20).
    median_beats : int
        ``local_median``: number of intervals in the centred local-median window (odd).

    Returns
    -------
    nn_ms : ndarray of shape (n_intervals,)
        The intervals in ms with every flagged interval set to NaN.
    is_ectopic : ndarray of bool, shape (n_intervals,)
        True where the interval was flagged as ectopic or artefact; its mean times 100 is the
        ectopic percentage (:func:`ectopic_beats_percent`).

    References
    ----------
    Lipponen JA, Tarvainen MP (2019). A robust algorithm for heart rate variability time series
    artefact correction using novel beat classification. J Med Eng Technol 43(3):173-181.
    doi:10.1080/03091902.2019.1640306

    Malik M, Farrell T, Cripps T, Camm AJ (1989). Heart rate variability in relation to
    prognosis after myocardial infarction: selection of optimal processing techniques.
    Eur Heart J 10(12):1060-1074.

    Tarvainen MP, Niskanen JP, Lipponen JA, Ranta-aho PO, Karjalainen PA (2014). Kubios HRV -
    heart rate variability analysis software. Comput Methods Programs Biomed 113(1):210-220.
    """
    if method not in ARTEFACT_METHODS:
        raise ValueError(f"unknown artefact method {method!r}: use one of {', '.join(ARTEFACT_METHODS)}")
    rr = np.array(rr_interval_ms, dtype=float).reshape(-1)
    out_of_range = ~np.isfinite(rr) | (rr < min_ms) | (rr > max_ms)
    is_ectopic = out_of_range.copy()
    if method == "lipponen_tarvainen_2019":
        # Classified on the in-range intervals in order: an out-of-range one is not a beat to compare with.
        kept = np.flatnonzero(~out_of_range)
        is_ectopic[kept] = lipponen_tarvainen_artefacts(rr[kept], alpha=alpha)
    elif method == "local_median":
        in_range = np.where(out_of_range, np.nan, rr)
        local_median = (
            pd.Series(in_range).rolling(median_beats, center=True, min_periods=1).median().to_numpy()
        )
        with np.errstate(invalid="ignore"):
            is_ectopic |= np.abs(rr - local_median) > max_deviation_fraction * local_median
    return np.where(is_ectopic, np.nan, rr), is_ectopic


def _quartile_deviation(values: np.ndarray, beats: int) -> np.ndarray:
    """Half the interquartile range of ``|values|`` in a centred window of ``beats``, per beat."""
    window = pd.Series(np.abs(values)).rolling(beats, center=True, min_periods=1)
    return np.maximum((window.quantile(0.75) - window.quantile(0.25)).to_numpy() / 2.0, _MIN_QUARTILE_DEVIATION_MS)


def lipponen_tarvainen_artefacts(rr_ms: np.ndarray, *, alpha: float = LT_ALPHA) -> np.ndarray:
    """The intervals of an RR series that the beat classification of Lipponen and Tarvainen (2019) flags.

    Two series describe each beat: dRR, the difference from the previous interval, and mRR, the
    difference from the median of the 11 intervals around it (doubled when negative, as the
    paper does, so short beats stand out as much as long ones). Each is divided by its
    threshold: ``alpha`` (5.2) times its quartile deviation over the 91 beats around it. A beat
    whose normalized dRR exceeds 1 in magnitude is a candidate, and is

    * ectopic when the neighbouring differences have the opposite sign pattern of a premature
      beat and its compensatory pause (the paper's S11-S12 subspace, boundary constants
      c1 = 0.13, c2 = 0.17);
    * long or short (the missed and extra beats among them) when the next differences return
      it towards the rhythm (S21-S22 subspace, beyond 1) or its normalized mRR exceeds 3.

    When the next beat's difference is smaller than the one after it, the next beat is judged
    by the long-or-short rule too, as in the paper's flow chart. An extra beat splits one
    interval in two: both halves are flagged.

    Parameters
    ----------
    rr_ms : array-like of shape (n_intervals,)
        Consecutive finite RR intervals in ms, in beat order.
    alpha : float
        Threshold multiplier of the quartile deviation.

    Returns
    -------
    ndarray of bool, shape (n_intervals,)
        True for a flagged interval.
    """
    rr = np.asarray(rr_ms, dtype=float).reshape(-1)
    if rr.size < 3:
        return np.zeros(rr.size, dtype=bool)
    drr = np.r_[0.0, np.diff(rr)]
    d = drr / (alpha * _quartile_deviation(drr, LT_THRESHOLD_BEATS))
    previous, following, after_next = np.r_[0.0, d[:-1]], np.r_[d[1:], 0.0], np.r_[d[2:], 0.0, 0.0]
    s12 = np.where(d > 0, np.maximum(previous, following), np.where(d < 0, np.minimum(previous, following), 0.0))
    s22 = np.where(d >= 0, np.minimum(following, after_next), np.maximum(following, after_next))
    local_median = pd.Series(rr).rolling(LT_MEDIAN_BEATS, center=True, min_periods=1).median().to_numpy()
    deviation = rr - local_median
    deviation = np.where(deviation < 0, 2.0 * deviation, deviation)
    th2 = alpha * _quartile_deviation(deviation, LT_THRESHOLD_BEATS)
    m = deviation / th2

    candidate = np.abs(d) > 1
    ectopic = candidate & (((d > 1) & (s12 < -LT_C1 * d - LT_C2)) | ((d < -1) & (s12 > -LT_C1 * d + LT_C2)))
    long_or_short = ((d > 1) & (s22 < -1)) | (np.abs(m) > 3) | ((d < -1) & (s22 > 1))
    judged = candidate & ~ectopic
    next_judged = np.r_[False, (judged & (np.abs(following) < np.abs(after_next)))[:-1]]
    flagged = ectopic | ((judged | next_judged) & long_or_short)
    # Extra beat: a short interval that with the next one makes up one interval of the rhythm.
    short = flagged & ~ectopic & (d < -1)
    pair = np.r_[rr[:-1] + rr[1:], np.inf]
    extra = short & (np.abs(pair - local_median) < th2)
    return flagged | np.r_[False, extra[:-1]]


def ectopic_beats_percent(is_ectopic: np.ndarray) -> float:
    """Share of intervals flagged as ectopic or artefact, percent (NaN for no intervals)."""
    flags = np.asarray(is_ectopic, dtype=bool)
    return float(100.0 * flags.mean()) if flags.size else math.nan


# --------------------------------------------------------------------------------------------
# Time domain (Task Force 1996)


def _finite(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).reshape(-1)
    return x[np.isfinite(x)]


def successive_differences_ms(nn_ms: np.ndarray) -> np.ndarray:
    """Differences between adjacent NN intervals, ms, shape (n_pairs,).

    Only pairs of two adjacent finite intervals count: a NaN (a removed ectopic beat or a gap)
    breaks the chain, so no difference spans it.
    """
    d = np.diff(np.asarray(nn_ms, dtype=float).reshape(-1))
    return d[np.isfinite(d)]


def mean_nn_ms(nn_ms: np.ndarray) -> float:
    """Mean of the NN intervals in ms (NaN entries ignored; NaN when there are none)."""
    x = _finite(nn_ms)
    return float(x.mean()) if x.size else math.nan


def mean_heart_rate_bpm(nn_ms: np.ndarray) -> float:
    """Mean heart rate over the NN intervals, bpm: the mean of the beat-to-beat rates ``60000 / NN``,
    as Kubios HRV and pyHRV report it (not ``60000 / mean NN``, which is lower whenever the
    intervals vary). NaN entries are ignored; NaN when there are none."""
    x = _finite(nn_ms)
    return float(np.mean(60_000.0 / x)) if x.size else math.nan


def sdnn_ms(nn_ms: np.ndarray) -> float:
    """Standard deviation of the NN intervals (SDNN), ms.

    Sample standard deviation (``ddof=1``), as Kubios HRV and pyHRV compute it; NaN entries
    are ignored and fewer than two intervals give NaN.

    Parameters
    ----------
    nn_ms : array-like of shape (n_intervals,)
        NN intervals in ms; NaN marks a removed interval.

    Returns
    -------
    float
        SDNN in ms (Task Force 1996, time-domain measures).
    """
    x = _finite(nn_ms)
    return float(x.std(ddof=1)) if x.size >= 2 else math.nan


def rmssd_ms(nn_ms: np.ndarray) -> float:
    """Root mean square of successive differences of adjacent NN intervals (RMSSD), ms.

    Parameters
    ----------
    nn_ms : array-like of shape (n_intervals,)
        NN intervals in ms; NaN marks a removed interval and breaks the chain of differences.

    Returns
    -------
    float
        ``sqrt(mean(diff(nn) ** 2))`` over adjacent normal pairs in ms (Task Force 1996);
        NaN when there is no such pair.
    """
    d = successive_differences_ms(nn_ms)
    return float(np.sqrt(np.mean(d**2))) if d.size else math.nan


def pnn50_percent(nn_ms: np.ndarray) -> float:
    """Percentage of adjacent NN pairs differing by more than 50 ms (pNN50), percent.

    Parameters
    ----------
    nn_ms : array-like of shape (n_intervals,)
        NN intervals in ms; NaN marks a removed interval.

    Returns
    -------
    float
        ``100 * NN50 / n_pairs`` where NN50 counts ``|diff| > 50`` ms, strictly (Task Force
        1996); the denominator is the number of successive differences. NaN when there is no
        pair.
    """
    d = successive_differences_ms(nn_ms)
    return float(100.0 * np.mean(np.abs(d) > 50.0)) if d.size else math.nan


# --------------------------------------------------------------------------------------------
# Frequency domain


def beat_times_s(rr_interval_ms: np.ndarray) -> np.ndarray:
    """Time of the beat that ends each interval, s from the start of the first interval.

    For a gap-free series only: ``cumsum(rr) / 1000``, shape (n_intervals,).
    """
    return np.cumsum(np.asarray(rr_interval_ms, dtype=float).reshape(-1)) / 1000.0


def nn_power_spectral_density_ms2_per_hz(
    nn_ms: np.ndarray,
    beat_time_s: np.ndarray,
    *,
    resample_hz: float = 4.0,
    segment_s: float = 120.0,
    overlap_fraction: float = 0.5,
    window: str = "hann",
    detrend: str = "linear",
    nfft: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectral density of an NN series: cubic resampling at 4 Hz, then Welch.

    The NN intervals, unevenly spaced in time, are interpolated with a cubic spline at the
    times of their ending beats and resampled at ``resample_hz`` (4 Hz, the rate of Kubios
    HRV); Welch's method then averages Hann-windowed, linearly detrended segments of
    ``segment_s`` (120 s, the Task Force minimum recording for LF, so each segment resolves LF
    on its own) overlapping by half, zero-padded to ``nfft`` points (frequency grid of about
    1 mHz at 4 Hz). A 5-minute recording gives four averaged segments. A record shorter than
    one segment is analysed as a single segment.

    Why Welch and not Lomb-Scargle: the Lomb-Scargle periodogram needs no resampling, but its
    power scaling differs between implementations and it leaks high-frequency power, so its
    ms² values are not comparable with published short-term norms (Nunan et al. 2010), which
    are almost all from resampled FFT/Welch spectra. Removed ectopic beats are no problem for
    the resampling approach because each kept interval keeps its own beat time: the spline
    bridges the gap as Kubios' interpolation-based correction does.

    Parameters
    ----------
    nn_ms : array-like of shape (n_intervals,)
        NN intervals in ms; NaN entries (removed intervals) are skipped.
    beat_time_s : array-like of shape (n_intervals,)
        Time of the beat ending each interval, s (any origin), increasing.
    resample_hz : float
        Rate of the evenly resampled series, Hz.
    segment_s : float
        Welch segment length, s.
    overlap_fraction : float
        Overlap of consecutive segments, fraction of a segment.
    window : str
        Window function name understood by :func:`scipy.signal.get_window`.
    detrend : {"linear", "constant"}
        Detrending of each segment.
    nfft : int
        Length of the FFT (zero padding); raised to the segment length if shorter.

    Returns
    -------
    frequency_hz : ndarray of shape (n_frequencies,)
        Frequencies from 0 to ``resample_hz / 2``, Hz.
    psd_ms2_per_hz : ndarray of shape (n_frequencies,)
        One-sided power spectral density, ms²/Hz. Both arrays are empty when fewer than four
        finite intervals or less than four resampled points are available.

    References
    ----------
    Welch PD (1967). The use of fast Fourier transform for the estimation of power spectra.
    IEEE Trans Audio Electroacoust 15(2):70-73.

    Nunan D, Sandercock GRH, Brodie DA (2010). A quantitative systematic review of normal
    values for short-term heart rate variability in healthy adults. Pacing Clin Electrophysiol
    33(11):1407-1417.
    """
    nn = np.asarray(nn_ms, dtype=float).reshape(-1)
    t = np.asarray(beat_time_s, dtype=float).reshape(-1)
    if nn.shape != t.shape:
        raise ValueError(f"nn_ms has shape {nn.shape} but beat_time_s has shape {t.shape}; pass one time per interval")
    keep = np.isfinite(nn) & np.isfinite(t)
    nn, t = nn[keep], t[keep]
    order = np.argsort(t, kind="stable")
    nn, t = nn[order], t[order]
    unique = np.r_[True, np.diff(t) > 0]
    nn, t = nn[unique], t[unique]
    empty = (np.empty(0), np.empty(0))
    if nn.size < 4:
        return empty
    grid = np.arange(t[0], t[-1], 1.0 / resample_hz)
    if grid.size < 4:
        return empty
    resampled = interpolate.CubicSpline(t, nn)(grid)
    nperseg = min(int(round(segment_s * resample_hz)), grid.size)
    return signal.welch(
        resampled,
        fs=resample_hz,
        window=window,
        nperseg=nperseg,
        noverlap=int(nperseg * overlap_fraction),
        nfft=max(nfft, nperseg),
        detrend=detrend,
        scaling="density",
    )


def band_power_ms2(frequency_hz: np.ndarray, psd_ms2_per_hz: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Power in the band ``[low_hz, high_hz)``, ms²: the PSD summed over its bins times the bin width.

    NaN when the spectrum is empty.
    """
    f = np.asarray(frequency_hz, dtype=float)
    p = np.asarray(psd_ms2_per_hz, dtype=float)
    if f.size < 2:
        return math.nan
    in_band = (f >= low_hz) & (f < high_hz)
    return float(p[in_band].sum() * (f[1] - f[0]))


def lf_power_ms2(nn_ms: np.ndarray, beat_time_s: np.ndarray, **spectrum_options) -> float:
    """Low-frequency power (0.04-0.15 Hz) of an NN series, ms².

    Parameters
    ----------
    nn_ms, beat_time_s : array-like of shape (n_intervals,)
        NN intervals (ms, NaN = removed) and the times of their ending beats (s).
    **spectrum_options
        Passed to :func:`nn_power_spectral_density_ms2_per_hz`.

    Returns
    -------
    float
        Absolute LF power in ms² (Task Force 1996); NaN for too short a series.
    """
    f, p = nn_power_spectral_density_ms2_per_hz(nn_ms, beat_time_s, **spectrum_options)
    return band_power_ms2(f, p, *LF_BAND_HZ)


def hf_power_ms2(nn_ms: np.ndarray, beat_time_s: np.ndarray, **spectrum_options) -> float:
    """High-frequency power (0.15-0.40 Hz) of an NN series, ms².

    Parameters
    ----------
    nn_ms, beat_time_s : array-like of shape (n_intervals,)
        NN intervals (ms, NaN = removed) and the times of their ending beats (s).
    **spectrum_options
        Passed to :func:`nn_power_spectral_density_ms2_per_hz`.

    Returns
    -------
    float
        Absolute HF power in ms² (Task Force 1996); NaN for too short a series.
    """
    f, p = nn_power_spectral_density_ms2_per_hz(nn_ms, beat_time_s, **spectrum_options)
    return band_power_ms2(f, p, *HF_BAND_HZ)


def _ratio(lf: float, hf: float) -> float:
    return lf / hf if np.isfinite(lf) and np.isfinite(hf) and hf > 0 else math.nan


def lf_hf_ratio(nn_ms: np.ndarray, beat_time_s: np.ndarray, **spectrum_options) -> float:
    """Ratio of LF to HF power of an NN series, dimensionless (NaN when HF power is 0 or unknown).

    Parameters and spectrum as :func:`lf_power_ms2`.
    """
    f, p = nn_power_spectral_density_ms2_per_hz(nn_ms, beat_time_s, **spectrum_options)
    return _ratio(band_power_ms2(f, p, *LF_BAND_HZ), band_power_ms2(f, p, *HF_BAND_HZ))


# --------------------------------------------------------------------------------------------
# Beat detection from waveforms


def _without_nan(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signal with NaN samples linearly interpolated, and the mask of the finite ones."""
    finite = np.isfinite(x)
    if finite.all() or not finite.any():
        return np.where(finite, x, 0.0), finite
    idx = np.arange(x.size)
    return np.interp(idx, idx[finite], x[finite]), finite


def _blocks(above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) indices of the runs of True in ``above``."""
    edges = np.diff(np.r_[0, above.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _peaks_in_blocks(
    detector: np.ndarray,
    feature: np.ndarray,
    fs_hz: float,
    *,
    short_window_s: float,
    long_window_s: float,
    beta: float,
    refractory_s: float,
) -> np.ndarray:
    """Elgendi's two-moving-averages block detector.

    Blocks of interest are the runs where the short moving average of ``detector`` exceeds its
    long moving average plus ``beta`` times its mean; a block at least one short window wide
    holds one beat, located at the maximum of ``feature`` inside it. Of two beats closer than
    ``refractory_s`` the smaller is dropped.
    """
    w1 = max(int(round(short_window_s * fs_hz)), 1)
    w2 = max(int(round(long_window_s * fs_hz)), 1)
    ma_short = ndimage.uniform_filter1d(detector, w1, mode="nearest")
    ma_long = ndimage.uniform_filter1d(detector, w2, mode="nearest")
    starts, stops = _blocks(ma_short > ma_long + beta * detector.mean())
    wide = (stops - starts) >= w1
    peaks = np.array(
        [start + int(np.argmax(feature[start:stop])) for start, stop in zip(starts[wide], stops[wide], strict=True)],
        dtype=np.int64,
    )
    # A maximum on the first or last sample is where the record was cut, not a peak.
    peaks = peaks[np.isfinite(feature[peaks]) & (peaks > 0) & (peaks < feature.size - 1)]
    return _enforce_refractory(peaks, feature, int(round(refractory_s * fs_hz)))


def _enforce_refractory(peaks: np.ndarray, height: np.ndarray, min_distance: int) -> np.ndarray:
    kept: list[int] = []
    for p in peaks:
        if kept and p - kept[-1] < min_distance:
            if height[p] > height[kept[-1]]:
                kept[-1] = int(p)
            continue
        kept.append(int(p))
    return np.asarray(kept, dtype=np.int64)


def r_peak_indices(ecg_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """Sample indices of the R peaks of an ECG.

    Elgendi's knowledge-based QRS detector: 3rd-order Butterworth band-pass 8-20 Hz (zero
    phase), squaring, two moving averages (97 ms for the QRS, 611 ms for the beat) and the
    offset ``beta = 0.08`` times the mean squared signal; each block of interest at least
    97 ms wide holds one QRS. The R peak is then placed at the maximum of the ECG inside the
    block after removing baseline wander (0.5 Hz zero-phase high-pass), so its timing is that
    of the recorded wave, not of the filtered one. The polarity of the QRS is taken from the
    larger of the median positive and median negative deflections over all blocks, so inverted
    leads work too. Two peaks closer than 250 ms (240 bpm) keep the larger.

    Parameters
    ----------
    ecg_mv : array-like of shape (n_samples,)
        One ECG lead in mV (any unit works), evenly sampled; NaN samples are interpolated for
        filtering and never chosen as peaks.
    fs_hz : float
        Sampling rate in Hz (at least 50 Hz; 250 Hz or more recommended for HRV).

    Returns
    -------
    ndarray of int64, shape (n_beats,)
        Increasing R-peak indices, never the first or last sample (a record cut mid-beat);
        empty for a signal too short to filter (< 2 s) or flat.

    References
    ----------
    Elgendi M (2013). Fast QRS detection with an optimized knowledge-based method: evaluation
    on 11 standard ECG databases. PLoS ONE 8(9):e73557.

    Pan J, Tompkins WJ (1985). A real-time QRS detection algorithm. IEEE Trans Biomed Eng
    32(3):230-236 (band-pass, squaring and moving-window integration).
    """
    x, finite = _without_nan(np.asarray(ecg_mv, dtype=float).reshape(-1))
    if x.size < 2 * fs_hz or not np.any(np.ptp(x)):
        return np.empty(0, dtype=np.int64)
    band = signal.sosfiltfilt(signal.butter(3, [8.0, 20.0], btype="bandpass", fs=fs_hz, output="sos"), x)
    baseline_free = signal.sosfiltfilt(signal.butter(2, 0.5, btype="highpass", fs=fs_hz, output="sos"), x)
    squared = band**2
    w1 = max(int(round(0.097 * fs_hz)), 1)
    w2 = max(int(round(0.611 * fs_hz)), 1)
    ma_qrs = ndimage.uniform_filter1d(squared, w1, mode="nearest")
    ma_beat = ndimage.uniform_filter1d(squared, w2, mode="nearest")
    starts, stops = _blocks(ma_qrs > ma_beat + 0.08 * squared.mean())
    wide = (stops - starts) >= w1
    starts, stops = starts[wide], stops[wide]
    if starts.size == 0:
        return np.empty(0, dtype=np.int64)
    highs = np.array([baseline_free[a:b].max() for a, b in zip(starts, stops, strict=True)])
    lows = np.array([baseline_free[a:b].min() for a, b in zip(starts, stops, strict=True)])
    polarity = 1.0 if np.median(highs) >= -np.median(lows) else -1.0
    feature = np.where(finite, polarity * baseline_free, -np.inf)
    peaks = np.array([a + int(np.argmax(feature[a:b])) for a, b in zip(starts, stops, strict=True)], dtype=np.int64)
    # A maximum on the first or last sample is where the record was cut, not a peak.
    peaks = peaks[np.isfinite(feature[peaks]) & (peaks > 0) & (peaks < x.size - 1)]
    return _enforce_refractory(peaks, feature, int(round(0.25 * fs_hz)))


def _pulse_band(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """The pulse band of a gap-free PPG: 2nd-order Butterworth band-pass 0.5-8 Hz, zero phase (Elgendi et al. 2013)."""
    return signal.sosfiltfilt(signal.butter(2, [0.5, 8.0], btype="bandpass", fs=fs_hz, output="sos"), x)


def _pulse_peaks_on_band(x: np.ndarray, finite: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Systolic-peak sample indices and the band-passed signal they were found on (empty when too short or flat)."""
    if x.size < 2 * fs_hz or not np.any(np.ptp(x)):
        return np.empty(0, dtype=np.int64), np.empty(0)
    band = _pulse_band(x, fs_hz)
    squared = np.clip(band, 0.0, None) ** 2
    feature = np.where(finite, band, -np.inf)
    peaks = _peaks_in_blocks(
        squared, feature, fs_hz, short_window_s=0.111, long_window_s=0.667, beta=0.02, refractory_s=0.3
    )
    return peaks, feature


def pulse_peak_indices(ppg_au: np.ndarray, fs_hz: float) -> np.ndarray:
    """Sample indices of the systolic peaks of a photoplethysmogram.

    Elgendi's two-event-related-moving-averages method: 2nd-order Butterworth band-pass
    0.5-8 Hz (zero phase), negative values clipped to zero, squaring, moving averages of
    111 ms (systolic peak) and 667 ms (beat), offset ``beta = 0.02`` times the mean squared
    signal; each block of interest at least 111 ms wide holds one systolic peak, placed at the
    maximum of the band-passed signal inside the block. Two peaks closer than 300 ms (200 bpm)
    keep the larger. Pulse-to-pulse intervals approximate RR intervals (pulse rate
    variability) at rest. :func:`pulse_peak_positions` times the same peaks to a fraction of a
    sample, which HRV needs at the sampling rates of wearables.

    Parameters
    ----------
    ppg_au : array-like of shape (n_samples,)
        Photoplethysmogram in arbitrary units, larger = more blood volume (invert a raw
        absorbance signal first), evenly sampled; NaN samples are interpolated for filtering and
        never chosen as peaks.
    fs_hz : float
        Sampling rate in Hz (at least 20 Hz).

    Returns
    -------
    ndarray of int64, shape (n_beats,)
        Increasing pulse-peak indices, never the first or last sample (a record cut mid-beat);
        empty for a signal too short to filter (< 2 s) or flat.

    References
    ----------
    Elgendi M, Norton I, Brearley M, Abbott D, Schuurmans D (2013). Systolic peak detection in
    acceleration photoplethysmograms measured from emergency responders in tropical conditions.
    PLoS ONE 8(10):e76585.
    """
    x, finite = _without_nan(np.asarray(ppg_au, dtype=float).reshape(-1))
    return _pulse_peaks_on_band(x, finite, fs_hz)[0]


def interpolated_peak_positions(waveform: np.ndarray, peak_indices: np.ndarray) -> np.ndarray:
    """Peak positions to a fraction of a sample: the vertex of the parabola through each peak and its neighbours.

    A sampled peak is off the true maximum by up to half a sample (5 ms at 100 Hz), an error that
    enters every interval and inflates RMSSD; the parabola recovers most of it (Béres and Hejjel
    2021: it lowers the sampling rate PPG needs for accurate RMSSD several-fold). The offset is
    kept within half a sample of the peak, so two equal top samples give their midpoint; a peak
    on the first or last sample, next to a NaN or not above its neighbours keeps its position.

    Parameters
    ----------
    waveform : array-like of shape (n_samples,)
        The signal the peaks were found on, evenly sampled.
    peak_indices : array-like of int, shape (n_beats,)
        Sample indices of local maxima of ``waveform``.

    Returns
    -------
    ndarray of float, shape (n_beats,)
        Peak positions in samples (same origin as the indices).

    References
    ----------
    Béres S, Hejjel L (2021). The minimal sampling frequency of the photoplethysmogram for
    accurate pulse rate variability parameters in healthy volunteers. Biomed Signal Process
    Control 68:102589. doi:10.1016/j.bspc.2021.102589
    """
    y = np.asarray(waveform, dtype=float).reshape(-1)
    peaks = np.asarray(peak_indices, dtype=np.int64).reshape(-1)
    positions = peaks.astype(float)
    inner = (peaks > 0) & (peaks < y.size - 1)
    p = peaks[inner]
    left, centre, right = y[p - 1], y[p], y[p + 1]
    curvature = left - 2.0 * centre + right
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    positions[inner] += np.clip(np.nan_to_num(offset), -0.5, 0.5)
    return positions


def pulse_peak_positions(ppg_au: np.ndarray, fs_hz: float) -> np.ndarray:
    """Systolic peaks of a photoplethysmogram, in samples to a fraction of a sample.

    The peaks of :func:`pulse_peak_indices`, timed by :func:`interpolated_peak_positions` on the
    signal they were found on: the 0.5-8 Hz pulse band, i.e. the systolic wave without its
    baseline wander and without sensor noise above the pulse's harmonics. Timing the raw wave
    instead (as HeartPy does; here with the same interpolation) was measured to be less
    accurate on pulse waves with a known peak: with 3 % white noise and respiratory baseline
    wander at 125 Hz the raw maximum lies 11 ms (standard deviation) from the true peak and
    RMSSD comes out 30 % high, against 1.8 ms and 0.2 % here (2.9 ms for the sample index
    alone); with skewed pulses of varying shape and 0.5 % noise at 100 Hz, 3.5 ms against
    0.7 ms. A slope under the peak (baseline wander) moves the raw maximum by a different
    amount on every beat; the high-pass removes it.
    On HeartPy's clean example recording (``data.csv``, 100 Hz) the first five positions lie
    within 0.25 sample of the high-precision peaks HeartPy publishes for it.

    Parameters
    ----------
    ppg_au : array-like of shape (n_samples,)
        As for :func:`pulse_peak_indices`.
    fs_hz : float
        Sampling rate in Hz.

    Returns
    -------
    ndarray of float, shape (n_beats,)
        Increasing peak positions in samples from the first sample, one per index of
        :func:`pulse_peak_indices` and within half a sample of it.
    """
    x, finite = _without_nan(np.asarray(ppg_au, dtype=float).reshape(-1))
    peaks, feature = _pulse_peaks_on_band(x, finite, fs_hz)
    return interpolated_peak_positions(feature, peaks)


def beat_template_correlation(waveform: np.ndarray, peak_indices: np.ndarray, fs_hz: float) -> np.ndarray:
    """Correlation of each beat with the recording's average beat (template), dimensionless.

    The waveform is high-passed at 0.5 Hz (zero phase) to remove baseline wander; each beat is
    the stretch from 0.3 median beat intervals before its peak to 0.6 after, the template is
    the mean of all beats, and each beat's Pearson correlation with the template measures its
    quality. Orphanidou et al. (2015) accept ECG and PPG whose beats correlate with the
    template at 0.86 or more; a beat below that is a motion artefact, noise or an ectopic beat
    of another shape.

    Parameters
    ----------
    waveform : array-like of shape (n_samples,)
        ECG (mV) or PPG (a.u.), evenly sampled; NaN samples are interpolated.
    peak_indices : array-like of int, shape (n_beats,)
        Beat locations (R or systolic peaks), increasing.
    fs_hz : float
        Sampling rate, Hz.

    Returns
    -------
    ndarray of shape (n_beats,)
        Correlation in [-1, 1] per beat; NaN where it cannot be computed: a beat cut by either
        end of the signal, a flat beat, or fewer than three complete beats in all.

    References
    ----------
    Orphanidou C, Bonnici T, Charlton P, Clifton D, Vallance D, Tarassenko L (2015).
    Signal-quality indices for the electrocardiogram and photoplethysmogram: derivation and
    applications to wireless monitoring. IEEE J Biomed Health Inform 19(3):832-838.
    """
    peaks = np.asarray(peak_indices, dtype=np.int64).reshape(-1)
    out = np.full(peaks.size, np.nan)
    x, _ = _without_nan(np.asarray(waveform, dtype=float).reshape(-1))
    if peaks.size < 3 or x.size < 2 * fs_hz:
        return out
    x = signal.sosfiltfilt(signal.butter(2, 0.5, btype="highpass", fs=fs_hz, output="sos"), x)
    median_interval = float(np.median(np.diff(peaks)))
    before, after = int(round(0.3 * median_interval)), int(round(0.6 * median_interval))
    complete = (peaks - before >= 0) & (peaks + after < x.size)
    if complete.sum() < 3:
        return out
    beats = np.array([x[p - before : p + after] for p in peaks[complete]])
    template = beats.mean(axis=0)
    if before + after < 3 or not np.std(template) > 0:
        return out
    spread = beats.std(axis=1)
    correlation = np.full(beats.shape[0], np.nan)
    ok = spread > 0
    centred = beats[ok] - beats[ok].mean(axis=1, keepdims=True)
    reference = template - template.mean()
    correlation[ok] = centred @ reference / (np.linalg.norm(centred, axis=1) * np.linalg.norm(reference))
    out[complete] = correlation
    return out


def _window_index(positions: np.ndarray, width: float, n_windows: int) -> np.ndarray:
    """Window of each position (samples) for windows of ``width`` samples, the last one open-ended."""
    return np.minimum(np.floor(positions / width).astype(np.int64), n_windows - 1)


def acceptable_pulse_windows(
    peak_positions: np.ndarray,
    correlation: np.ndarray,
    n_samples: int,
    fs_hz: float,
    *,
    window_s: float = SQI_WINDOW_S,
    min_correlation: float = MIN_BEAT_CORRELATION,
) -> np.ndarray:
    """Which windows of a waveform pass the signal-quality index of Orphanidou et al. (2015).

    The record is cut into consecutive windows of ``window_s`` (10 s), the last one running to the
    end of the record (0.5 to 1.5 windows long), so a short tail is not judged on its own.
    A window is acceptable when the beats whose peaks fall in it meet three physiological
    feasibility rules and match the average beat:

    1. their mean rate is 40-180 bpm;
    2. no stretch without a beat, window edges included, is 3 s or longer;
    3. the longest interval is less than 2.2 times the shortest (a missed beat doubles an
       interval, a spurious one halves it);
    4. their mean :func:`beat_template_correlation` is at least 0.86 (unknown correlations are
       left out; all unknown passes this rule).

    A window with fewer than two beats fails. Noise, motion and signal loss fail as whole
    windows, so their beats are set aside with the stretch they came from instead of passing
    spurious or missed beats into the intervals one by one.

    Parameters
    ----------
    peak_positions : array-like of shape (n_beats,)
        Increasing beat positions in samples (integer or fractional).
    correlation : array-like of shape (n_beats,)
        Each beat's correlation with the average beat, NaN where unknown.
    n_samples : int
        Length of the waveform in samples.
    fs_hz : float
        Sampling rate, Hz.
    window_s : float
        Window length, s.
    min_correlation : float
        Least mean correlation of an acceptable window.

    Returns
    -------
    ndarray of bool, shape (max(round(n_samples / (window_s * fs_hz)), 1),)
        True for an acceptable window; window ``k`` covers samples
        ``[k * window_s * fs_hz, (k + 1) * window_s * fs_hz)``, the last one up to ``n_samples``.

    References
    ----------
    Orphanidou C, Bonnici T, Charlton P, Clifton D, Vallance D, Tarassenko L (2015).
    Signal-quality indices for the electrocardiogram and photoplethysmogram: derivation and
    applications to wireless monitoring. IEEE J Biomed Health Inform 19(3):832-838.
    """
    positions = np.asarray(peak_positions, dtype=float).reshape(-1)
    quality = np.asarray(correlation, dtype=float).reshape(-1)
    width = window_s * fs_hz
    n_windows = max(int(round(n_samples / width)), 1)
    acceptable = np.zeros(n_windows, dtype=bool)
    window_of_beat = _window_index(positions, width, n_windows)
    for k in range(n_windows):
        start, stop = k * width, (k + 1) * width if k < n_windows - 1 else n_samples
        inside = window_of_beat == k
        beats_s = positions[inside] / fs_hz
        if beats_s.size < 2:
            continue
        intervals_s = np.diff(beats_s)
        rate_bpm = 60.0 / intervals_s.mean()
        longest_gap_s = np.diff(np.r_[start / fs_hz, beats_s, stop / fs_hz]).max()
        known = quality[inside][np.isfinite(quality[inside])]
        acceptable[k] = bool(
            SQI_HEART_RATE_BPM[0] <= rate_bpm <= SQI_HEART_RATE_BPM[1]
            and longest_gap_s < SQI_MAX_GAP_S
            and intervals_s.max() < SQI_MAX_INTERVAL_RATIO * intervals_s.min()
            and (known.size == 0 or known.mean() >= min_correlation)
        )
    return acceptable


def rr_intervals_from_peaks_ms(peak_indices: np.ndarray, fs_hz: float) -> np.ndarray:
    """Intervals between consecutive beats in ms, shape (n_beats - 1,), from sample indices and the rate in Hz."""
    peaks = np.asarray(peak_indices, dtype=float).reshape(-1)
    return np.diff(peaks) * 1000.0 / fs_hz


# --------------------------------------------------------------------------------------------
# Table functions








def _hrv_window(
    rr_ms: np.ndarray,
    end_time_s: np.ndarray,
    *,
    min_duration_s: float,
    max_ectopic_percent: float,
    max_spectral_gap_s: float,
    artefacts: Mapping[str, Any],
    gap_tolerance_s: float = 0.25,
) -> tuple[dict[str, float], str | None]:
    """HRV measures of one recording: intervals and end-of-interval times (s), both shape (n,)."""
    nn, is_ectopic = nn_intervals_ms(rr_ms, **artefacts)
    values = dict.fromkeys(HRV_MORNING_COLUMNS, math.nan)
    values["ectopic_beats_morning_percent"] = ectopic_beats_percent(is_ectopic)
    duration_s = float(np.nansum(rr_ms)) / 1000.0
    if duration_s < min_duration_s:
        return values, f"only {duration_s:.0f} s of RR data (needs {min_duration_s:.0f} s)"
    if values["ectopic_beats_morning_percent"] > max_ectopic_percent:
        return values, (
            f"{values['ectopic_beats_morning_percent']:.1f} % of intervals flagged as ectopic or artefact "
            f"(at most {max_ectopic_percent:.0f} % allowed)"
        )
    # A jump in the beat times that the interval does not explain is a gap in the stream: a NaN
    # placed there keeps successive differences from spanning it.
    start_s = end_time_s - rr_ms / 1000.0
    gap = np.r_[False, np.abs(start_s[1:] - end_time_s[:-1]) > gap_tolerance_s]
    chained = np.insert(nn, np.flatnonzero(gap), np.nan)
    values.update(
        mean_nn_morning_ms=mean_nn_ms(nn),
        mean_hr_morning_bpm=mean_heart_rate_bpm(nn),
        sdnn_morning_ms=sdnn_ms(nn),
        rmssd_morning_ms=rmssd_ms(chained),
        pnn50_morning_percent=pnn50_percent(chained),
    )
    # The spline would have to invent the oscillation of a gap longer than a breathing cycle.
    kept_s = end_time_s[np.isfinite(nn)]
    longest_gap_s = float(np.diff(kept_s).max()) if kept_s.size >= 2 else math.inf
    if longest_gap_s > max_spectral_gap_s:
        return values, (
            f"frequency-domain measures need NN data without gaps over {max_spectral_gap_s:.0f} s "
            f"(longest gap {longest_gap_s:.0f} s)"
        )
    f, p = nn_power_spectral_density_ms2_per_hz(nn, end_time_s)
    lf, hf = band_power_ms2(f, p, *LF_BAND_HZ), band_power_ms2(f, p, *HF_BAND_HZ)
    values.update(lf_power_morning_ms2=lf, hf_power_morning_ms2=hf, lf_hf_ratio_morning=_ratio(lf, hf))
    unknown = [k for k, v in values.items() if not np.isfinite(v)]
    return values, (f"could not compute {', '.join(unknown)} from the NN series" if unknown else None)


def hrv_daily_features(
    rr: pd.DataFrame,
    *,
    window_s: float = 300.0,
    min_duration_s: float = 120.0,
    max_ectopic_percent: float = 20.0,
    max_spectral_gap_s: float = 5.0,
    artefacts: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Morning heart-rate variability, one row per subject per UTC day that has RR data.

    Each day's morning recording (the demo study records 5 minutes seated, 20-50 min after
    waking) is the first ``window_s`` seconds of the day's RR data, from the start of its first
    interval; a source with continuous RR data should select the recording upstream. Its RR
    intervals become NN intervals (:func:`nn_intervals_ms`, with ``artefacts``), then time- and
    frequency-domain measures (Task Force 1996) and the mean heart rate. A gap in the beat
    stream (beat times jumping by more than the interval explains) is never bridged by a
    successive difference.

    Parameters
    ----------
    rr : DataFrame
        Canonical RR_INTERVALS frame: ``subject_id``, ``timestamp`` (UTC, time of the beat ending
        the interval), ``rr_interval_ms``. Not modified. A missing (NaN) interval counts as an
        artefact: it adds to the ectopic share but not to the duration.
    window_s : float
        Length of the analysed recording, s.
    min_duration_s : float
        Least RR data (sum of the finite intervals, s) for any measure: 120 s, the Task Force
        minimum for LF power (about 1 min for HF, 2 min for LF).
    max_ectopic_percent : float
        Above this share of flagged intervals the recording is not analysed (the measures are
        NaN; the share is still reported).
    max_spectral_gap_s : float
        Longest time between two kept NN intervals for the frequency-domain measures (5 s,
        longer than a breathing cycle of the HF band); past it they are NaN with a reason,
        the time-domain measures are kept.
    artefacts : mapping, optional
        Keyword arguments of :func:`nn_intervals_ms` (``method`` and its parameters); default
        its defaults (Lipponen and Tarvainen 2019).

    Returns
    -------
    DataFrame
        Columns ``subject_id``, ``event_timestamp`` (UTC, end of the day), ``mean_nn_morning_ms``,
        ``mean_hr_morning_bpm``, ``sdnn_morning_ms``, ``rmssd_morning_ms``, ``pnn50_morning_percent``,
        ``lf_power_morning_ms2``, ``hf_power_morning_ms2``, ``lf_hf_ratio_morning``,
        ``ectopic_beats_morning_percent``, ``missing_reason`` (None, or why the NaN measures are
        NaN); sorted by subject and day.
    """
    frame = _rr_frame(rr)
    if frame.empty:
        return _empty_frame(HRV_DAILY_COLUMNS)
    frame["day"] = frame["timestamp"].dt.floor("D")
    rows = []
    for (subject_id, day), day_rr in frame.groupby(["subject_id", "day"], sort=True):
        rr_ms = day_rr["rr_interval_ms"].to_numpy()
        end_s = (day_rr["timestamp"] - day).dt.total_seconds().to_numpy()
        start_s = end_s - np.nan_to_num(rr_ms) / 1000.0
        in_window = end_s <= start_s[0] + window_s + 1e-9
        values, reason = _hrv_window(
            rr_ms[in_window],
            end_s[in_window],
            min_duration_s=min_duration_s,
            max_ectopic_percent=max_ectopic_percent,
            max_spectral_gap_s=max_spectral_gap_s,
            artefacts=artefacts or {},
        )
        rows.append({"subject_id": subject_id, "event_timestamp": day + _DAY, **values, "missing_reason": reason})
    return _as_table(rows, HRV_DAILY_COLUMNS)


def hrv_night_features(
    rr: pd.DataFrame,
    *,
    timezone: str = "UTC",
    night_start_hour: int = 0,
    night_end_hour: int = 6,
    segment_s: float = 300.0,
    min_segments: int = 6,
    min_duration_s: float = 120.0,
    max_ectopic_percent: float = 20.0,
    max_spectral_gap_s: float = 5.0,
    artefacts: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Night-time heart-rate variability of overnight recordings, one row per subject per night.

    The night is the window from ``night_start_hour`` to ``night_end_hour`` (00:00 to 06:00) in
    the wearer's local time (``timezone``), cut into consecutive ``segment_s`` (5-min) segments
    from its start, each analysed as a short-term recording (:func:`hrv_daily_features`'s
    measures, NN intervals by ``artefacts``; a segment with less than ``min_duration_s`` of
    data or more than ``max_ectopic_percent`` flagged is left out), then summarised by the mean
    over the analysable segments (the Task Force's "SDNN index" for SDNN; frequency-domain
    measures over the segments without a gap longer than ``max_spectral_gap_s``). The row's
    ``event_timestamp`` is the end of the UTC day in which the window ends, so that it joins
    the morning recording of that day; a night needs ``min_segments`` analysable segments (30
    min), else NaN and a reason. ``ectopic_beats_night_percent`` is the share of the window's
    intervals flagged, over all its segments.

    Parameters
    ----------
    rr : DataFrame
        Canonical RR_INTERVALS frame (``subject_id``, ``timestamp`` of the beat ending each
        interval, ``rr_interval_ms``). Not modified.
    timezone, night_start_hour, night_end_hour
        The night window, local wall-clock hours (the end may be the start's next day).
    segment_s, min_segments
        Segment length, s, and least analysable segments of a night.
    min_duration_s, max_ectopic_percent, max_spectral_gap_s, artefacts
        Per segment, as for :func:`hrv_daily_features`.

    Returns
    -------
    DataFrame
        Columns :data:`HRV_NIGHTLY_COLUMNS`, one row per subject and night with beats in its
        window, sorted by subject and night.

    References
    ----------
    Task Force (1996), see the module; Sammito S, Thielmann B, Böckelmann I (2024). Update:
    factors influencing heart rate variability - a narrative review. Front Physiol 15:1430458
    (nocturnal recordings in 5-min segments).
    """
    from features.biomarkers._frames import local_instant

    frame = _rr_frame(rr)
    if frame.empty:
        return _empty_frame(HRV_NIGHTLY_COLUMNS)
    length = pd.Timedelta(hours=(night_end_hour - night_start_hour) % 24 or 24)
    start_offset = pd.Timedelta(hours=night_start_hour)
    wall = frame["timestamp"].dt.tz_convert(timezone).dt.tz_localize(None)
    frame["night"] = (wall - start_offset).dt.floor("D") + start_offset
    rows = []
    for (subject_id, night), beats in frame.groupby(["subject_id", "night"], sort=True):
        start, end = local_instant(night, timezone), local_instant(night + length, timezone)
        beats = beats[beats["timestamp"] < end]
        if beats.empty:
            continue
        elapsed_s = (beats["timestamp"] - start).dt.total_seconds().to_numpy()
        rr_ms = beats["rr_interval_ms"].to_numpy()
        values, reason = _night_window(elapsed_s, rr_ms, segment_s=segment_s, min_segments=min_segments,
                                       window=f"{night_start_hour:02d}:00 and {night_end_hour:02d}:00 local",
                                       segment_options={"min_duration_s": min_duration_s,
                                                        "max_ectopic_percent": max_ectopic_percent,
                                                        "max_spectral_gap_s": max_spectral_gap_s,
                                                        "artefacts": artefacts or {}})
        day_end = (end - pd.Timedelta(1, "ns")).floor("D") + _DAY
        rows.append({"subject_id": subject_id, "event_timestamp": day_end, **values, "missing_reason": reason})
    return _as_table(rows, HRV_NIGHTLY_COLUMNS)


def _rr_frame(rr: pd.DataFrame) -> pd.DataFrame:
    """A canonical RR_INTERVALS frame checked, in UTC and float ms, sorted by subject and time."""
    _require_columns(rr, ("subject_id", "timestamp", "rr_interval_ms"), "RR_INTERVALS")
    return pd.DataFrame({
        "subject_id": rr["subject_id"].astype(str).to_numpy(),
        "timestamp": _utc(rr["timestamp"], "RR_INTERVALS").reset_index(drop=True),
        "rr_interval_ms": pd.to_numeric(rr["rr_interval_ms"], errors="coerce").to_numpy(dtype=float),
    }).sort_values(["subject_id", "timestamp"], kind="stable")


def _night_window(elapsed_s: np.ndarray, rr_ms: np.ndarray, *, segment_s: float, min_segments: int, window: str,
                  segment_options: dict) -> tuple[dict[str, float], str | None]:
    """A night's measures from its beats' times (s after the window's start) and intervals (ms)."""
    values = dict.fromkeys(HRV_NIGHT_COLUMNS, math.nan)
    segment = np.floor(elapsed_s / segment_s).astype(np.int64)
    analysed = []
    flagged = total = 0
    for k in np.unique(segment):
        inside = segment == k
        measures, _ = _hrv_window(rr_ms[inside], elapsed_s[inside] - k * segment_s, **segment_options)
        count = int(inside.sum())
        flagged += measures["ectopic_beats_morning_percent"] / 100.0 * count
        total += count
        if np.isfinite(measures["mean_nn_morning_ms"]):
            analysed.append(measures)
    values["ectopic_beats_night_percent"] = 100.0 * flagged / total if total else math.nan
    values["hrv_segments_night_count"] = float(len(analysed))
    if len(analysed) < min_segments:
        return values, (f"{len(analysed)} analysable {segment_s / 60:g}-min segments of RR data between {window} "
                        f"(needs {min_segments})")
    for night_name, segment_name in _NIGHT_FROM_SEGMENT.items():
        found = np.array([measures[segment_name] for measures in analysed])
        values[night_name] = float(np.nanmean(found)) if np.isfinite(found).any() else math.nan
    unknown = [name for name in _NIGHT_FROM_SEGMENT if not np.isfinite(values[name])]
    return values, (f"no segment gave {', '.join(unknown)}" if unknown else None)


def _as_table(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    if not rows:
        return _empty_frame(columns)
    out = pd.DataFrame(rows, columns=list(columns))
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    out["missing_reason"] = out["missing_reason"].astype(object).where(out["missing_reason"].notna(), None)
    return out.reset_index(drop=True)


class _Intervals(NamedTuple):
    """Beat intervals of one contiguous waveform stretch and what its signal-quality index rejected."""

    end_ns: np.ndarray  # int64 UTC ns of the beat ending each interval, shape (n,)
    rr_ms: np.ndarray  # the intervals in ms, NaN for an artefact, shape (n,)
    rejected_ns: np.ndarray = np.empty(0, np.int64)  # start of each rejected window, UTC ns
    rejected_s: np.ndarray = np.empty(0)  # length of each rejected window, s


def _time_ns(t_ns: np.ndarray, position: np.ndarray) -> np.ndarray:
    """UTC ns at fractional sample positions of an evenly sampled stretch (clamped to its ends)."""
    elapsed = (t_ns - t_ns[0]).astype(float)
    return t_ns[0] + np.round(np.interp(position, np.arange(t_ns.size), elapsed)).astype(np.int64)


def _ecg_intervals(x: np.ndarray, t_ns: np.ndarray, fs_hz: float) -> _Intervals:
    peaks = r_peak_indices(x, fs_hz)
    if peaks.size < 2:
        return _Intervals(np.empty(0, np.int64), np.empty(0))
    # An interval bounded by a beat unlike the recording's average beat is an artefact: NaN, so
    # it counts in the ectopic share and never as an NN interval.
    poor = beat_template_correlation(x, peaks, fs_hz) < MIN_BEAT_CORRELATION  # NaN (unknown) is not poor
    return _Intervals(t_ns[peaks[1:]], np.where(poor[1:] | poor[:-1], np.nan, rr_intervals_from_peaks_ms(peaks, fs_hz)))


def _pulse_intervals(x: np.ndarray, t_ns: np.ndarray, fs_hz: float) -> _Intervals:
    """Pulse intervals of one PPG stretch: sub-sample peaks, Orphanidou windows, poor beats NaN.

    The beats of a rejected window are set aside; in their place the stretch from the last kept
    beat before it to the first kept beat after it counts as the NaN intervals it would hold at
    the stretch's median pulse interval, so the ectopic share is the share of the recording's
    beats lost, whether the window held noise, spurious peaks or no pulse at all.
    """
    values, finite = _without_nan(x)
    peaks, band = _pulse_peaks_on_band(values, finite, fs_hz)
    if peaks.size < 2:
        return _Intervals(np.empty(0, np.int64), np.empty(0))
    positions = interpolated_peak_positions(band, peaks)
    correlation = beat_template_correlation(x, peaks, fs_hz)
    acceptable = acceptable_pulse_windows(positions, correlation, x.size, fs_hz)
    width = SQI_WINDOW_S * fs_hz
    window = _window_index(positions, width, acceptable.size)
    rejected_before = np.cumsum(~acceptable)
    kept = acceptable[window]
    # An interval is measured only between two beats of acceptable windows with no rejected window between them.
    measured = kept[1:] & kept[:-1] & (rejected_before[window[1:]] == rejected_before[window[:-1]])
    poor = correlation < MIN_BEAT_CORRELATION  # NaN (quality unknown) is not poor
    rr = np.where(poor[1:] | poor[:-1], np.nan, np.diff(positions) * 1000.0 / fs_hz)
    ends, rr_ms = [positions[1:][measured]], [rr[measured]]
    typical_ms = rr[measured][np.isfinite(rr[measured])]
    if typical_ms.size == 0:
        typical_ms = np.diff(positions) * 1000.0 / fs_hz
    typical_s = float(np.clip(np.median(typical_ms), 300.0, 2000.0)) / 1000.0
    kept_positions = positions[kept]
    starts, stops = _blocks(~acceptable)
    for start, stop in zip(starts, stops, strict=True):
        before = kept_positions[window[kept] < start]
        after = kept_positions[window[kept] >= stop]
        left = before[-1] if before.size else 0.0
        right = after[0] if after.size else x.size - 1.0
        n_lost = max(int(round((right - left) / fs_hz / typical_s)), 1)
        ends.append(left + (right - left) * np.arange(1, n_lost + 1) / n_lost)
        rr_ms.append(np.full(n_lost, np.nan))
    end_position = np.concatenate(ends)
    order = np.argsort(end_position, kind="stable")
    rejected_start = starts.astype(float) * width
    rejected_s = (np.where(stops == acceptable.size, x.size, stops * width) - rejected_start) / fs_hz
    return _Intervals(_time_ns(t_ns, end_position[order]), np.concatenate(rr_ms)[order],
                      _time_ns(t_ns, rejected_start), rejected_s)


def _waveform_segments(waveform: pd.DataFrame, column: str, fs_hz: float,
                       intervals: Callable[[np.ndarray, np.ndarray, float], _Intervals]) -> tuple[list[_Intervals],
                                                                                                  np.ndarray]:
    """The intervals of each contiguous stretch of a waveform, and its samples' UTC ns (time order)."""
    _require_columns(waveform, ("timestamp", column), column.split("_")[0].upper())
    ts = _utc(waveform["timestamp"], column.split("_")[0].upper())
    all_ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
    order = np.argsort(all_ns, kind="stable")
    t_ns = all_ns[order]
    x = pd.to_numeric(waveform[column], errors="coerce").to_numpy(dtype=float)[order]
    # Contiguous segments: a step longer than 1.5 sample periods starts a new recording, and
    # no interval spans two recordings.
    breaks = np.flatnonzero(np.diff(t_ns) > 1.5e9 / fs_hz) + 1
    segments = [intervals(x[lo:hi], t_ns[lo:hi], fs_hz)
                for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, x.size], strict=True)] if x.size else []
    return segments, t_ns


def _segments_rr(segments: list[_Intervals], subject_id: str) -> pd.DataFrame:
    return pd.DataFrame({
        "subject_id": subject_id,
        "timestamp": pd.to_datetime(np.concatenate([s.end_ns for s in segments] or [np.empty(0, np.int64)]), utc=True),
        "rr_interval_ms": np.concatenate([s.rr_ms for s in segments] or [np.empty(0)]),
    })


def waveform_rr_intervals(waveform: pd.DataFrame, column: str, fs_hz: float, subject_id: str) -> pd.DataFrame:
    """The canonical RR_INTERVALS frame of an ECG (``column`` ``ecg_mv``: R peaks) or PPG
    (``ppg_au``: pulse peaks behind the signal-quality index), as :func:`ecg_hrv_features` and
    :func:`ppg_hrv_features` find them; artefacts and rejected windows are NaN intervals."""
    intervals = _ecg_intervals if column == "ecg_mv" else _pulse_intervals
    return _segments_rr(_waveform_segments(waveform, column, fs_hz, intervals)[0], subject_id)


def _waveform_hrv_features(
    waveform: pd.DataFrame,
    column: str,
    fs_hz: float,
    subject_id: str,
    intervals: Callable[[np.ndarray, np.ndarray, float], _Intervals],
    beat_name: str,
    **options,
) -> pd.DataFrame:
    segments, t_ns = _waveform_segments(waveform, column, fs_hz, intervals)
    if t_ns.size == 0:
        return _empty_frame(HRV_DAILY_COLUMNS)
    rr = _segments_rr(segments, subject_id)
    features = hrv_daily_features(rr, **options)
    all_days = pd.to_datetime(t_ns, utc=True).floor("D")
    rejected_day = pd.to_datetime(np.concatenate([s.rejected_ns for s in segments]), utc=True).floor("D")
    rejected_s = pd.Series(np.concatenate([s.rejected_s for s in segments])).groupby(rejected_day).sum()
    if len(rejected_s):
        recorded_s = pd.Series(all_days).value_counts() / fs_hz
        features["missing_reason"] = [
            reason if reason is None or rejected_s.get(end - _DAY, 0.0) <= 0 else
            f"{reason}; the signal-quality index rejected {rejected_s[end - _DAY]:.0f} s of the day's "
            f"{recorded_s.get(end - _DAY, 0.0):.0f} s of waveform"
            for reason, end in zip(features["missing_reason"], features["event_timestamp"], strict=True)
        ]
    found = set(features["event_timestamp"])
    absent = [
        {"subject_id": subject_id, "event_timestamp": day + _DAY, **dict.fromkeys(HRV_MORNING_COLUMNS, math.nan),
         "missing_reason": f"fewer than two {beat_name} detected in the waveform"}
        for day in pd.DatetimeIndex(np.unique(all_days))
        if day + _DAY not in found
    ]
    if not absent:
        return features
    both = pd.concat([features, _as_table(absent, HRV_DAILY_COLUMNS)], ignore_index=True) if len(features) \
        else _as_table(absent, HRV_DAILY_COLUMNS)
    return _as_table(both.sort_values("event_timestamp").to_dict("records"), HRV_DAILY_COLUMNS)


def ecg_hrv_features(ecg: pd.DataFrame, fs_hz: float, subject_id: str, **options) -> pd.DataFrame:
    """Morning HRV from a raw ECG, one row per UTC day of waveform.

    R peaks (:func:`r_peak_indices`) of each contiguous stretch of samples give RR intervals
    stamped with the time of their ending peak; an interval bounded by a beat whose
    :func:`beat_template_correlation` is below 0.86 is an artefact (NaN). The day's measures are then those of
    :func:`hrv_daily_features`, with the same columns and missing reasons. A day with waveform
    but fewer than two R peaks gets NaN measures and a reason.

    Parameters
    ----------
    ecg : DataFrame
        Canonical ECG frame: ``timestamp`` (UTC) and ``ecg_mv``, one subject. Not modified.
    fs_hz : float
        Sampling rate, Hz.
    subject_id : str
        The subject of the recording (high-rate frames carry no subject column).
    **options
        ``window_s``, ``min_duration_s``, ``max_ectopic_percent``, ``max_spectral_gap_s``, ``artefacts`` of
        :func:`hrv_daily_features`.

    Returns
    -------
    DataFrame
        The columns of :func:`hrv_daily_features`.
    """
    return _waveform_hrv_features(ecg, "ecg_mv", fs_hz, subject_id, _ecg_intervals, "R peaks", **options)


def ppg_hrv_features(ppg: pd.DataFrame, fs_hz: float, subject_id: str, **options) -> pd.DataFrame:
    """Morning pulse-rate variability from a raw PPG, one row per UTC day of waveform.

    As :func:`ecg_hrv_features`, with systolic peaks in place of R peaks and a signal-quality
    index in front of the intervals. For each contiguous stretch of samples:

    1. systolic peaks (:func:`pulse_peak_indices`) timed to a fraction of a sample
       (:func:`pulse_peak_positions`);
    2. 10-s windows that fail the signal-quality index of Orphanidou et al. (2015)
       (:func:`acceptable_pulse_windows`) are set aside whole: their beats give no interval, and
       the stretch from the last kept beat before them to the first kept beat after them counts
       as the NaN (artefact) intervals it would hold at the stretch's median pulse interval;
    3. in the windows kept, an interval bounded by a beat correlating below 0.86 with the
       average beat is NaN, as for ECG.

    ``ectopic_beats_morning_percent`` is therefore the share of the analysed recording's beats
    that were rejected, by the quality index or by the ectopic/artefact filter, and a recording
    that is mostly noise or signal loss exceeds ``max_ectopic_percent`` or has too little data
    instead of giving HRV from spurious peaks. When a day's row has a missing reason and the
    quality index rejected part of that day, the reason adds how many seconds of how many. A day whose
    waveform holds fewer than two peaks (flat, all NaN) gets NaN measures and a reason.

    Parameters
    ----------
    ppg : DataFrame
        Canonical PPG frame: ``timestamp`` (UTC) and ``ppg_au``, one subject. Not modified.
    fs_hz : float
        Sampling rate, Hz; the samples are taken as evenly spaced at this rate within a stretch.
    subject_id : str
        The subject of the recording.
    **options
        As for :func:`ecg_hrv_features`.

    Returns
    -------
    DataFrame
        The columns of :func:`hrv_daily_features`.
    """
    return _waveform_hrv_features(ppg, "ppg_au", fs_hz, subject_id, _pulse_intervals, "pulse peaks", **options)


# --------------------------------------------------------------------------------------------
# Heart rate from minute-level wearable data


def resting_heart_rate_bpm(
    heart_rate_bpm: np.ndarray, *, rolling_minutes: int = 5, lowest_fraction: float = 0.10
) -> float:
    """Resting heart rate: mean of the lowest 10 % of 5-minute rolling means, bpm.

    Parameters
    ----------
    heart_rate_bpm : array-like of shape (n_minutes,)
        Consecutive minutes of heart rate in bpm, NaN where a minute does not qualify (not
        worn, asleep, no reading). Only windows of ``rolling_minutes`` qualifying minutes count.
    rolling_minutes : int
        Length of the rolling window, minutes.
    lowest_fraction : float
        Share of the lowest window means averaged (at least one window).

    Returns
    -------
    float
        Resting heart rate in bpm; NaN when no complete window exists.

    Notes
    -----
    Clinically, resting heart rate is measured after about 5 minutes of seated rest (Palatini
    2009); in free-living minute data the quietest 5-minute stretches of the awake day stand in
    for that rest. Averaging the lowest decile of windows, rather than taking the single
    lowest, keeps one artefactual low reading from setting the value. This is this project's
    operational definition (consumer devices such as Fitbit use undisclosed algorithms).

    References
    ----------
    Palatini P (2009). Recommendations on how to measure resting heart rate. Medicographia
    31(4):414-419.
    """
    hr = pd.Series(np.asarray(heart_rate_bpm, dtype=float).reshape(-1))
    means = hr.rolling(rolling_minutes, min_periods=rolling_minutes).mean().to_numpy()
    means = np.sort(means[np.isfinite(means)])
    if means.size == 0:
        return math.nan
    return float(means[: max(int(math.ceil(lowest_fraction * means.size)), 1)].mean())


def heart_rate_daily_features(
    minute: pd.DataFrame,
    *,
    min_worn_minutes: int = 600,
    min_awake_minutes: int = 60,
    rolling_minutes: int = 5,
    lowest_fraction: float = 0.10,
) -> pd.DataFrame:
    """Daily resting and mean heart rate from minute-level wearable data, one row per subject per UTC day.

    ``heart_rate_mean_1d_bpm`` is the mean heart rate over the day's worn minutes with a
    reading; it needs ``min_worn_minutes`` such minutes (600 = 10 h, the usual valid-day wear
    criterion of wearable studies, e.g. Troiano et al. 2008), since a partly worn day is biased
    towards the hours worn. ``resting_heart_rate_1d_bpm`` is :func:`resting_heart_rate_bpm` over
    the worn, awake (``sleep_stage == "wake"``) minutes with a reading, windows never spanning
    a minute that does not qualify; it needs ``min_awake_minutes`` such minutes.

    Parameters
    ----------
    minute : DataFrame
        Canonical MINUTE_WEARABLE frame: ``subject_id``, ``timestamp`` (UTC, start of the
        minute), ``heart_rate_bpm``, ``sleep_stage``, ``wear`` (``steps_count`` is not used).
        Not modified. A repeated minute keeps its last row.
    min_worn_minutes, min_awake_minutes : int
        Least qualifying minutes for the mean and the resting heart rate.
    rolling_minutes, lowest_fraction : int, float
        Passed to :func:`resting_heart_rate_bpm`.

    Returns
    -------
    DataFrame
        Columns ``subject_id``, ``event_timestamp`` (UTC, end of the day),
        ``resting_heart_rate_1d_bpm``, ``heart_rate_mean_1d_bpm``, ``missing_reason``; one row
        per subject and UTC day present in ``minute``.

    References
    ----------
    Troiano RP, Berrigan D, Dodd KW, Masse LC, Tilert T, McDowell M (2008). Physical activity
    in the United States measured by accelerometer. Med Sci Sports Exerc 40(1):181-188.
    """
    _require_columns(minute, ("subject_id", "timestamp", "heart_rate_bpm", "sleep_stage", "wear"), "MINUTE_WEARABLE")
    frame = pd.DataFrame({
        "subject_id": minute["subject_id"].astype(str).to_numpy(),
        "timestamp": _utc(minute["timestamp"], "MINUTE_WEARABLE").dt.floor("min").reset_index(drop=True),
        "heart_rate_bpm": pd.to_numeric(minute["heart_rate_bpm"], errors="coerce").to_numpy(dtype=float),
        "awake": (minute["sleep_stage"].astype(object) == "wake").to_numpy(dtype=bool),
        # True, 1 and 1.0 are worn; False, 0, NaN and None are not.
        "worn": minute["wear"].astype(object).eq(True).to_numpy(dtype=bool),
    })
    if frame.empty:
        return _empty_frame(HEART_RATE_DAILY_COLUMNS)
    frame = frame.drop_duplicates(["subject_id", "timestamp"], keep="last").sort_values(["subject_id", "timestamp"])
    frame["day"] = frame["timestamp"].dt.floor("D")
    rows = []
    for (subject_id, day), day_min in frame.groupby(["subject_id", "day"], sort=True):
        hr = day_min["heart_rate_bpm"].to_numpy()
        worn = day_min["worn"].to_numpy() & np.isfinite(hr) & (hr > 0)
        rest = worn & day_min["awake"].to_numpy()
        # Place the minutes on the day's full grid so a rolling window never joins two
        # stretches separated by missing minutes.
        minute_of_day = ((day_min["timestamp"] - day).dt.total_seconds() // 60).to_numpy(dtype=np.int64)
        grid = np.full(1440, np.nan)
        grid[minute_of_day[rest]] = hr[rest]
        reasons = []
        n_worn, n_rest = int(worn.sum()), int(rest.sum())
        mean_bpm = float(hr[worn].mean()) if n_worn >= min_worn_minutes else math.nan
        if n_worn < min_worn_minutes:
            reasons.append(f"only {n_worn} worn minutes with heart rate (needs {min_worn_minutes})")
        resting = math.nan
        if n_rest < min_awake_minutes:
            reasons.append(f"only {n_rest} worn awake minutes with heart rate (needs {min_awake_minutes})")
        else:
            resting = resting_heart_rate_bpm(grid, rolling_minutes=rolling_minutes, lowest_fraction=lowest_fraction)
            if not np.isfinite(resting):
                reasons.append(f"no {rolling_minutes} consecutive worn awake minutes with heart rate")
        rows.append({
            "subject_id": subject_id,
            "event_timestamp": day + _DAY,
            "resting_heart_rate_1d_bpm": resting,
            "heart_rate_mean_1d_bpm": mean_bpm,
            "missing_reason": "; ".join(reasons) or None,
        })
    return _as_table(rows, HEART_RATE_DAILY_COLUMNS)
