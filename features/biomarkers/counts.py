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
from collections.abc import Iterator
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
_CHUNK_S = 3600  # seconds of signal per pass through the filters


def actigraph_counts(accel_g: np.ndarray, fs_hz: float, epoch_s: int = 60) -> np.ndarray:
    """ActiGraph counts per epoch and axis, from raw acceleration.

    The signal goes through the method an hour at a time, the filters' states carried from one
    hour to the next, so a week at 100 Hz needs the memory of an hour (upsampled 3-fold), not
    of the week; the counts are the same as in one pass.

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
    ndarray of shape (n_epochs, n_axes), int64
        Counts of each complete epoch, per axis.

    Raises
    ------
    ValueError
        A rate below 10 Hz, an epoch outside 1 to 3600 s, a sample that is NaN, or an array that
        is not two-dimensional.
    """
    accel = np.asarray(accel_g)
    if accel.ndim != 2:
        raise ValueError(f"accel_g has shape {accel.shape}: pass (n_samples, n_axes)")
    if not (isinstance(epoch_s, int | np.integer) and 1 <= epoch_s <= 3600):
        raise ValueError(f"epoch_s={epoch_s!r}: pass a whole number of seconds from 1 to 3600")
    if not (np.isfinite(fs_hz) and fs_hz >= MIN_RATE_HZ):
        raise ValueError(f"ActiGraph counts need a rate of {MIN_RATE_HZ:g} Hz or more (30 to 100 Hz in steps of 10: "
                         f"ActiGraph's own), not {fs_hz:g} Hz")
    tenths = np.concatenate([np.zeros((0, accel.shape[1]), dtype=np.int16),
                             *(_tenth_second_counts(chunk) for chunk in _chunks_at_30_hz(accel, fs_hz))])
    per_epoch = epoch_s * _OUTPUT_HZ
    n_epochs = tenths.shape[0] // per_epoch
    return tenths[: n_epochs * per_epoch].reshape(n_epochs, per_epoch, tenths.shape[1]).sum(axis=1, dtype=np.int64)


def vector_magnitude(counts: np.ndarray) -> np.ndarray:
    """The vector magnitude of per-axis counts, shape (n_epochs, n_axes) -> (n_epochs,)."""
    return np.sqrt(np.square(np.asarray(counts, dtype=np.float64)).sum(axis=1))


def _chunks_at_30_hz(accel: np.ndarray, fs_hz: float) -> Iterator[np.ndarray]:
    """The signal at 30 Hz, rounded to 1 mg and band-pass filtered, an hour at a time.

    At ActiGraph's rates an hour of input is a whole number of the resampling's periods and
    gives exactly 108000 samples at 30 Hz (a multiple of the 3 samples of a tenth of a second),
    so the hours join without a seam; other rates are resampled in one pass first.
    """
    rate = int(round(fs_hz))
    actigraph_rate = abs(fs_hz - rate) <= 1e-6 and rate in ACTIGRAPH_RATES_HZ
    if actigraph_rate:
        divisor = math.gcd(rate, _BASE_HZ)
        up, down = _BASE_HZ // divisor, rate // divisor
        source, hour = accel, rate * _CHUNK_S
    else:
        ratio = Fraction(_BASE_HZ / fs_hz).limit_denominator(1000)
        source = signal.resample_poly(np.asarray(accel, dtype=np.float64), ratio.numerator, ratio.denominator, axis=0)
        up, down, hour = 1, 1, _BASE_HZ * _CHUNK_S
    low_pass = band_pass = None
    for start in range(0, source.shape[0], hour):
        chunk = np.asarray(source[start:start + hour], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError("accel_g holds NaN or infinite samples: ActiGraph counts need every sample")
        if actigraph_rate and up > 1:
            chunk, low_pass = _upsampled_low_passed(chunk, up, down, low_pass)
        elif actigraph_rate:  # 30, 60, 90 Hz: every down-th sample
            chunk = chunk[::down]
        chunk = np.round(chunk, 3)
        if band_pass is None:  # started in steady state on each axis's first sample
            band_pass = signal.lfilter_zi(_BAND_PASS_B, _BAND_PASS_A)[:, None] * chunk[0][None, :]
        filtered, band_pass = signal.lfilter(_BAND_PASS_B, _BAND_PASS_A, chunk, axis=0, zi=band_pass)
        yield filtered


def _upsampled_low_passed(chunk: np.ndarray, up: int, down: int, state: np.ndarray | None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """ActiGraph's resampling stage: ``up`` - 1 zeros after each sample, the first-order low-pass
    ``y[k] = c*(x[k] + x[k-1]) + B*y[k-1]`` (bilinear transform, ``c = up*pi/(pi + 2 up)``,
    ``B = -(pi - 2 up)/(pi + 2 up)``, at rest before the first sample), then every ``down``-th
    output; returns those outputs and the filter's state after the chunk.

    Computed at the input rate, not the upsampled one (3 to 7 times fewer operations, and no
    upsampled copy): between two input samples the input is zero, so with ``Y[m] = y[m*up]``
    and ``Z[m] = y[m*up + 1] = c*u[m] + B*Y[m]``, ``y[m*up + r] = B^(r-1)*Z[m]`` for r >= 1 and
    ``Y[m+1] = c*u[m+1] + B^(up-1)*c*u[m] + B^up*Y[m]``, a first-order filter of the input.
    The result equals the upsampled filter's to rounding (1e-16 relative).
    """
    c = up * math.pi / (math.pi + 2 * up)
    b = -(math.pi - 2 * up) / (math.pi + 2 * up)
    if state is None:  # at rest: Y[-1] = u[-1] = 0
        state = np.zeros((1, chunk.shape[1]))
    at_samples, state = signal.lfilter([c, c * b ** (up - 1)], [1.0, -(b ** up)], chunk, axis=0, zi=state)
    after = c * chunk + b * at_samples  # Z[m]
    n_out = -(-chunk.shape[0] * up // down)  # outputs k = 0, down, 2*down, ... < len * up
    out = np.empty((n_out, chunk.shape[1]))
    # Output j = q*up + p is y at k = q*up*down + p*down: sample m = q*down + p*down // up, phase
    # r = p*down % up, the same for every q: a strided slice of the input-rate arrays per p.
    for p in range(up):
        m0, r = divmod(p * down, up)
        rows = out[p::up]
        source = at_samples[m0::down] if r == 0 else after[m0::down]
        rows[:] = source[: rows.shape[0]] if r == 0 else b ** (r - 1) * source[: rows.shape[0]]
    return out, state


def _tenth_second_counts(filtered: np.ndarray) -> np.ndarray:
    """Counts per tenth of a second (int16, at most 128) of band-passed 30 Hz samples: scaled,
    rectified, capped, truncated, the dead band set to 0, then three samples averaged (truncated)."""
    counts = np.floor(np.minimum(np.abs(filtered) * _COUNTS_PER_G, _CAP))
    counts[counts < _DEAD_BAND] = 0
    per_tenth = _BASE_HZ // _OUTPUT_HZ
    n_tenths = counts.shape[0] // per_tenth
    return np.floor(counts[: n_tenths * per_tenth].reshape(n_tenths, per_tenth, -1).sum(axis=1)
                    / per_tenth).astype(np.int16)
