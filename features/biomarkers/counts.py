"""ActiGraph activity counts from raw accelerometry (Brønd, Andersen & Arvidsson 2017).

ActiGraph's counts are what most published cut-points, sleep scorers (Cole-Kripke, Sadeh) and
decades of cohort data are expressed in. The method ActiGraph published (and its open-source
Python description, the ``agcounts`` package, which this module is checked against in the
tests; it is GPL-3, so it is not a dependency) is, per axis:

1. bring the signal to 30 Hz: rates of 40 to 100 Hz are upsampled by an integer L, passed
   through a first-order low-pass filter (bilinear transform, skipped for 60 and 90 Hz, where
   plain decimation is exact) and decimated by an integer M (40 Hz: 3/4, 50 Hz: 3/5 ...);
   the 30 Hz samples are rounded to 1 mg, as the devices store them;
2. band-pass filter the 30 Hz signal with ActiGraph's 8th-order IIR filter (0.29 to 1.63 Hz,
   the coefficients below, published in the paper's appendix), started in steady state on the
   first sample;
3. scale to count units (3/4096 / (2.6/256) * 237.5, ActiLife's constant), rectify, set
   values below 4 to 0 (the dead band), cap at 128 and truncate to integers;
4. average to 10 Hz (three samples, truncated) and sum the 10 Hz values over each epoch.

Counts of an epoch are integers; the vector magnitude of three axes is
``sqrt(axis1^2 + axis2^2 + axis3^2)``. ActiLife calls the vertical axis of a hip-worn
device (the device's y axis) ``axis1``, then x (``axis2``) and z (``axis3``).

Rates other than 30 to 100 Hz in steps of 10 are not ActiGraph's (an AX3 at 25 or 200 Hz, a
GENEActiv at 85 Hz): the signal is first resampled to 30 Hz with an anti-aliasing polyphase
filter (:func:`scipy.signal.resample_poly`), as Brønd et al. did for other monitors; the counts
band (0.29-1.63 Hz) lies well inside every rate from 10 Hz, so such counts are close to, not
equal to, an ActiGraph's. Rates below 10 Hz are refused.

References
----------
Brønd JC, Andersen LB, Arvidsson D (2017). Generating ActiGraph counts from raw acceleration
recorded by an alternative monitor. Med Sci Sports Exerc 49(11):2351-2360.
doi:10.1249/MSS.0000000000001344

Neishabouri A, Nguyen J, Samuelsson J, et al. (2022). Quantification of acceleration as activity
counts in ActiGraph wearable. Sci Rep 12:11958. doi:10.1038/s41598-022-16003-x
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy import signal

ACTIGRAPH_RATES_HZ = (30, 40, 50, 60, 70, 80, 90, 100)
"""Sampling rates ActiGraph's method takes directly (Hz)."""
MIN_RATE_HZ = 10.0
"""The lowest rate resampled to 30 Hz (Hz)."""

# ActiGraph's band-pass filter (numerator, denominator), as published (Brønd et al. 2017).
_BAND_PASS_B = np.array([-0.009341062898525, -0.025470289659360, -0.004235264826105, 0.044152415456420,
                         0.036493718347760, -0.011893961934740, -0.022917390623150, -0.006788163862310])
_BAND_PASS_A = np.array([1.0, -3.63367395910957, 5.03689812757486, -3.09612247819666, 0.50620507633883,
                         0.32421701566682, -0.15685485875559, 0.01949130205890])
_COUNTS_PER_G = (3.0 / 4096.0) / (2.6 / 256.0) * 237.5  # 17.127404 counts per filtered g
_DEAD_BAND = 4
_CAP = 128
_BASE_HZ = 30
_OUTPUT_HZ = 10


def actigraph_counts(accel_g: np.ndarray, fs_hz: float, epoch_s: int = 60) -> np.ndarray:
    """ActiGraph counts per epoch and axis, from raw acceleration.

    Parameters
    ----------
    accel_g : ndarray of shape (n_samples, n_axes)
        Acceleration, g, evenly sampled at ``fs_hz``, columns in any axis order (the counts
        keep it). No NaN. Not modified.
    fs_hz : float
        Sampling rate, Hz: 30 to 100 in steps of 10 (ActiGraph's rates, counts equal to
        ActiLife's), or any other rate from 10 Hz (resampled to 30 Hz first).
    epoch_s : int
        Epoch length, s (1 to 3600). A last, incomplete epoch is left out.

    Returns
    -------
    ndarray of shape (n_samples * 30 // fs_hz // (3 * 10 * epoch_s) ..., n_axes), int64
        Counts of each complete epoch, per axis.

    Raises
    ------
    ValueError
        A rate below 10 Hz, an epoch outside 1 to 3600 s, a sample that is NaN, or an array that
        is not two-dimensional.
    """
    accel = np.asarray(accel_g, dtype=np.float64)
    if accel.ndim != 2:
        raise ValueError(f"accel_g has shape {accel.shape}: pass (n_samples, n_axes)")
    if not (isinstance(epoch_s, int | np.integer) and 1 <= epoch_s <= 3600):
        raise ValueError(f"epoch_s={epoch_s!r}: pass a whole number of seconds from 1 to 3600")
    if accel.size and not np.isfinite(accel).all():
        raise ValueError("accel_g holds NaN or infinite samples: ActiGraph counts need every sample")
    at_30_hz = _to_30_hz(accel, fs_hz)
    if at_30_hz.shape[0] == 0:
        return np.zeros((0, accel.shape[1]), dtype=np.int64)
    filtered = _band_pass(np.round(at_30_hz, 3))
    counts = np.floor(np.minimum(np.abs(filtered) * _COUNTS_PER_G, _CAP))
    counts[counts < _DEAD_BAND] = 0
    per_tenth = _BASE_HZ // _OUTPUT_HZ
    n_tenths = counts.shape[0] // per_tenth
    tenths = np.floor(counts[: n_tenths * per_tenth].reshape(n_tenths, per_tenth, -1).sum(axis=1) / per_tenth)
    per_epoch = epoch_s * _OUTPUT_HZ
    n_epochs = n_tenths // per_epoch
    return tenths[: n_epochs * per_epoch].reshape(n_epochs, per_epoch, -1).sum(axis=1).astype(np.int64)


def vector_magnitude(counts: np.ndarray) -> np.ndarray:
    """The vector magnitude of per-axis counts, shape (n_epochs, n_axes) -> (n_epochs,)."""
    return np.sqrt(np.square(np.asarray(counts, dtype=np.float64)).sum(axis=1))


def _to_30_hz(accel: np.ndarray, fs_hz: float) -> np.ndarray:
    if not (np.isfinite(fs_hz) and fs_hz >= MIN_RATE_HZ):
        raise ValueError(f"ActiGraph counts need a rate of {MIN_RATE_HZ:g} Hz or more (30 to 100 Hz in steps of 10: "
                         f"ActiGraph's own), not {fs_hz:g} Hz")
    rate = int(round(fs_hz))
    if abs(fs_hz - rate) > 1e-6 or rate not in ACTIGRAPH_RATES_HZ:
        ratio = Fraction(_BASE_HZ / fs_hz).limit_denominator(1000)
        return signal.resample_poly(accel, ratio.numerator, ratio.denominator, axis=0)
    divisor = math.gcd(rate, _BASE_HZ)
    up, down = _BASE_HZ // divisor, rate // divisor
    if up == 1:  # 30, 60, 90 Hz: every down-th sample
        return accel[::down]
    upsampled = np.zeros((accel.shape[0] * up, accel.shape[1]))
    upsampled[::up] = accel
    # First-order low-pass by the bilinear transform, gain ``up`` to keep the level:
    # y[k] = a*up*(x[k] + x[k-1]) - b*y[k-1].
    a = math.pi / (math.pi + 2 * up)
    b = (math.pi - 2 * up) / (math.pi + 2 * up)
    smoothed = signal.lfilter([a * up, a * up], [1.0, b], upsampled, axis=0)
    return smoothed[::down]


def _band_pass(at_30_hz: np.ndarray) -> np.ndarray:
    """ActiGraph's band-pass filter, started in steady state on each axis's first sample."""
    initial = signal.lfilter_zi(_BAND_PASS_B, _BAND_PASS_A)[:, None] * at_30_hz[0][None, :]
    filtered, _ = signal.lfilter(_BAND_PASS_B, _BAND_PASS_A, at_30_hz, axis=0, zi=initial)
    return filtered
