"""Quality control of a raw accelerometry recording: autocalibration, calibration error, clipping.

What GGIR and biobankAccelerometerAnalysis report for every file before any activity measure:

* :func:`autocalibrate`: the sensor's offset and scale per axis, fitted so that the still
  periods of the recording read 1 g (van Hees et al. 2014: gravity as the reference; the fit is
  SKDH's ``CalibrateAccelerometer``), with the calibration error before and after;
* :func:`calibration_error_g`: the mean absolute deviation from 1 g of the still 10-s windows'
  mean acceleration vector, GGIR's ``cal.error.start`` / ``cal.error.end``;
* :func:`clipped_percent`: the share of samples at the device's full-scale range, where the
  true acceleration is unknown.

Still windows follow van Hees et al. (2014) and GGIR: non-overlapping 10-s windows whose
standard deviation is below 13 mg on every axis and whose mean stays within 2 g (a clipped
window is not still). The fit needs the still windows to cover the sphere: every axis must read
below -0.3 g and above +0.3 g in some of them, else the offsets and scales are not identifiable
and the recording is left as it is, saying why.

References
----------
van Hees VT, Fang Z, Langford J, et al. (2014). Autocalibration of accelerometer data for
free-living physical activity assessment using local gravity and temperature: an evaluation on
four continents. J Appl Physiol 117(7):738-744. doi:10.1152/japplphysiol.00421.2014
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

WINDOW_S = 10.0
STILL_SD_G = 0.013
STILL_MAX_ABS_G = 2.0
SPHERE_G = 0.3
MAX_ERROR_G = 0.01  # GGIR and SKDH accept a calibration whose error ends below 10 mg
MIN_HOURS = 12  # SKDH fits on whole 12-h blocks
# Below this error there is nothing to gain: fits on real sensors end at 3-4 mg (GGIR's published
# example: 3.9 mg), and SKDH's fit costs seconds per day of data.
ALREADY_CALIBRATED_G = 0.001
CLIP_FRACTION_OF_RANGE = 0.99


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`autocalibrate`.

    ``offset_g`` and ``scale`` apply as ``(accel + offset) * scale`` (GGIR's and SKDH's form),
    identity when not ``applied``; ``error_before_g`` / ``error_after_g``: the calibration error
    of the still windows before and after (``after`` equals ``before`` when not applied);
    ``still_windows``: how many were found; ``reason``: why not applied.
    """

    offset_g: np.ndarray
    scale: np.ndarray
    error_before_g: float
    error_after_g: float
    still_windows: int
    applied: bool
    reason: str | None = None

    def apply(self, accel_g: np.ndarray) -> np.ndarray:
        return (accel_g + self.offset_g) * self.scale if self.applied else accel_g


def still_window_means(accel_g: np.ndarray, fs_hz: float, *, window_s: float = WINDOW_S,
                       max_sd_g: float = STILL_SD_G, max_abs_g: float = STILL_MAX_ABS_G) -> np.ndarray:
    """Mean acceleration (g, shape (k, 3)) of the still non-overlapping windows of ``accel_g``
    ((n, 3), g): standard deviation below ``max_sd_g`` and |mean| below ``max_abs_g`` on every
    axis; windows holding a missing sample are left out."""
    width = int(round(window_s * fs_hz))
    count = accel_g.shape[0] // width if width > 0 else 0
    if count == 0:
        return np.empty((0, 3))
    windows = accel_g[:count * width].reshape(count, width, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: left out below
        means, sds = windows.mean(axis=1), windows.std(axis=1, ddof=1)  # GGIR: sample SD
    still = np.all(sds < max_sd_g, axis=1) & np.all(np.abs(means) < max_abs_g, axis=1)
    return means[still]


def calibration_error_g(means_g: np.ndarray, offset_g: np.ndarray | None = None,
                        scale: np.ndarray | None = None) -> float:
    """Mean |norm - 1 g| of still-window means after ``(means + offset) * scale``; NaN without windows."""
    if means_g.shape[0] == 0:
        return math.nan
    corrected = means_g if offset_g is None else (means_g + offset_g) * scale
    return float(np.mean(np.abs(np.linalg.norm(corrected, axis=1) - 1.0)))


def autocalibrate(time_s: np.ndarray, accel_g: np.ndarray, fs_hz: float, *, min_hours: int = MIN_HOURS,
                  max_sd_g: float = STILL_SD_G, sphere_g: float = SPHERE_G,
                  max_error_g: float = MAX_ERROR_G) -> Calibration:
    """Fit the recording's calibration from its still periods (van Hees et al. 2014).

    Parameters
    ----------
    time_s : (n,) unix seconds; accel_g : (n, 3) acceleration in g; fs_hz : sampling rate.
    min_hours : least hours of recording to fit on (12); SKDH fits the first whole 12-h blocks,
        up to 72 h, adding 12 h at a time until the fit succeeds.
    max_sd_g : standard deviation below which a 10-s window is still (13 mg).
    sphere_g : how far beyond 0 g every axis must read, both ways, in still windows (0.3 g).
    max_error_g : the calibration is applied only when its error ends below this (10 mg) and
        below where it started.

    Returns
    -------
    Calibration
        Errors over every still window of the recording; not ``applied`` (and why) when its
        error is already under 1 mg, the recording is shorter than ``min_hours``, its still
        windows do not cover the sphere, or the fit does not bring the error under ``max_error_g``.
    """
    means = still_window_means(accel_g, fs_hz, max_sd_g=max_sd_g)
    before = calibration_error_g(means)
    identity = np.zeros(3), np.ones(3)

    def not_applied(reason: str) -> Calibration:
        return Calibration(*identity, before, before, means.shape[0], False, reason)

    hours = accel_g.shape[0] / fs_hz / 3600.0
    if hours < min_hours:
        return not_applied(f"recording {hours:.1f} h < {min_hours} h needed for autocalibration")
    if before < ALREADY_CALIBRATED_G:
        return not_applied(f"calibration error {1000 * before:.2f} mg before: already calibrated")
    uncovered = [axis for axis, values in zip("xyz", means.T, strict=True)
                 if not (values.size and values.min() < -sphere_g and values.max() > sphere_g)]
    if uncovered:
        return not_applied(f"still periods do not turn axis {', '.join(uncovered)} beyond +/-{sphere_g:g} g: "
                           "offset and scale cannot be fitted")
    from skdh.preprocessing import CalibrateAccelerometer

    whole_blocks = int(min(72, hours) // 12) * 12  # SKDH takes whole 12-h blocks; more data, if needed, in 12 h
    fitter = CalibrateAccelerometer(sphere_crit=sphere_g, min_hours=whole_blocks, sd_criteria=max_sd_g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not done ... insufficient non-movement": judged below
        result = fitter.predict(time=time_s, accel=accel_g, fs=fs_hz, apply=False)
    if "offset" not in result:
        return not_applied("SKDH found too little still data to fit")
    offset, scale = np.asarray(result["offset"], dtype=float), np.asarray(result["scale"], dtype=float)
    after = calibration_error_g(means, offset, scale)
    if not (after < before and after < max_error_g):
        return not_applied(f"the fit leaves a calibration error of {1000 * after:.1f} mg (needs < "
                           f"{1000 * max_error_g:g} mg and less than the {1000 * before:.1f} mg before)")
    return Calibration(offset, scale, before, after, means.shape[0], True)


def clipped_samples(accel_g: np.ndarray, range_g: float, *,
                    fraction: float = CLIP_FRACTION_OF_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Per sample of ``accel_g`` ((n, 3), g): whether an axis is at or beyond ``fraction`` (99 %)
    of the device's range, and whether the sample has values at all (both (n,) booleans)."""
    magnitude = np.abs(accel_g).max(axis=1)  # NaN where a value is missing
    valid = ~np.isnan(magnitude)
    return np.where(valid, magnitude >= fraction * range_g, False), valid


def clipped_percent(accel_g: np.ndarray, range_g: float, *, fraction: float = CLIP_FRACTION_OF_RANGE) -> float:
    """Share of samples (%) with an axis at or beyond ``fraction`` (99 %) of the device's range;
    NaN without samples. Missing samples are left out."""
    clipped, valid = clipped_samples(accel_g, range_g, fraction=fraction)
    return float(100.0 * clipped.sum() / valid.sum()) if valid.any() else math.nan
