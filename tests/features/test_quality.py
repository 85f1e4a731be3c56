"""Recording quality control: autocalibration against GGIR's published result on a real
recording, recovery of a known calibration, the cases it must refuse, and clipping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.biomarkers import quality

CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "calibration"


def test_a_real_wrist_recording_calibrates_as_ggir_published():
    """Reference: the R package agcounts (B. Helsel et al., MIT; tests/data/calibration/README.md),
    ``inst/extdata/calibration{X,Y,Z}axis.RData``: 20.7 h of an ActiGraph GT9X Link on the wrist
    at 30 Hz, and ``ggirCalibrate.RData``, GGIR's ``g.calibrate`` result on it: scale
    [0.98795, 0.99190, 0.98241], offset [-0.01961, 0.05069, -0.00163] g, calibration error
    0.02291 g before and 0.00394 g after.

    SKDH's fit (which we use) takes the first 12 h block, GGIR all 20 h, and GGIR stops its
    iteration before it has settled (run on, its own scale moves by 0.01): offsets and scales
    agree to 4 mg and 0.4 %, and the errors to 0.2 mg.
    """
    samples = np.load(CALIBRATION / "agcounts_calibration_30hz.npz")
    accel = np.column_stack([samples["x"], samples["y"], samples["z"]]) / 1000.0  # stored in milli-g, losslessly
    fs = float(samples["fs"])
    published = json.loads((CALIBRATION / "reference.json").read_text())

    calibration = quality.autocalibrate(np.arange(len(accel)) / fs, accel, fs)

    assert calibration.applied and calibration.reason is None
    assert calibration.error_before_g == pytest.approx(published["cal_error_start"], abs=2e-4)
    assert calibration.error_after_g == pytest.approx(published["cal_error_end"], abs=2e-4)
    np.testing.assert_allclose(calibration.scale, published["scale"], atol=4e-3)
    np.testing.assert_allclose(calibration.offset_g, published["offset"], atol=4e-3)
    assert calibration.still_windows == pytest.approx(published["npoints"], rel=0.05)
    # GGIR's own coefficients on our still windows give its published error after, to 0.2 mg.
    ggir_after = quality.calibration_error_g(quality.still_window_means(accel, fs), np.array(published["offset"]),
                                             np.array(published["scale"]))
    assert ggir_after == pytest.approx(published["cal_error_end"], abs=2e-4)


def still_orientations(hours: float, fs: float = 10.0, seed: int = 0) -> np.ndarray:
    """A device lying still in a new orientation every 5 minutes (unit gravity vectors spread
    over the sphere) with 5 mg of sensor noise: (n, 3) in g."""
    rng = np.random.default_rng(seed)
    segments = int(hours * 12)
    directions = rng.normal(size=(segments, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    per_segment = int(300 * fs)
    gravity = np.repeat(directions, per_segment, axis=0)
    return gravity + rng.normal(0, 0.005, gravity.shape)


def test_a_known_miscalibration_is_recovered():
    fs = 10.0
    true = still_orientations(24, fs)
    offset, scale = np.array([0.03, -0.02, 0.05]), np.array([1.02, 0.97, 1.01])
    measured = true / scale - offset  # so that (measured + offset) * scale is the truth

    calibration = quality.autocalibrate(np.arange(len(measured)) / fs, measured, fs)

    assert calibration.applied
    np.testing.assert_allclose(calibration.offset_g, offset, atol=2e-3)
    np.testing.assert_allclose(calibration.scale, scale, atol=2e-3)
    assert calibration.error_before_g > 0.02 and calibration.error_after_g < 0.002
    np.testing.assert_allclose(calibration.apply(measured)[:1000], true[:1000], atol=0.02)


def test_calibration_is_not_applied_without_enough_data_or_orientations_and_says_why():
    fs = 10.0
    short = still_orientations(6, fs)
    result = quality.autocalibrate(np.arange(len(short)) / fs, short, fs)
    assert not result.applied and result.reason == "recording 6.0 h < 12 h needed for autocalibration"
    assert np.isfinite(result.error_before_g) and result.error_after_g == result.error_before_g

    flat = np.tile([0.0, 0.0, 1.02], (int(24 * 3600 * fs), 1))  # on a table all day: z only, one way
    result = quality.autocalibrate(np.arange(len(flat)) / fs, flat, fs)
    assert not result.applied
    assert result.reason.startswith("still periods do not turn axis x, y, z beyond +/-0.3 g")
    assert result.error_before_g == pytest.approx(0.02)
    np.testing.assert_array_equal(result.apply(flat), flat)  # identity when not applied

    moving = np.random.default_rng(3).normal(0, 0.5, (int(13 * 3600 * fs), 3))  # never still
    result = quality.autocalibrate(np.arange(len(moving)) / fs, moving, fs)
    assert (result.applied, result.still_windows) == (False, 0) and np.isnan(result.error_before_g)


def test_clipped_share_counts_samples_at_the_range_and_skips_missing_ones():
    accel = np.zeros((1000, 3))
    accel[:10, 0] = 8.0
    accel[10:15, 2] = -7.95  # within 1 % of the 8 g range
    accel[15:20, 1] = 7.5  # not clipped
    accel[20:520] = np.nan
    assert quality.clipped_percent(accel, 8.0) == pytest.approx(100 * 15 / 500)
    assert np.isnan(quality.clipped_percent(np.full((5, 3), np.nan), 8.0))


def test_a_recording_already_within_a_milligram_is_left_as_it_is():
    fs = 10.0
    true = still_orientations(24, fs)
    exact = true / np.linalg.norm(true, axis=1, keepdims=True)  # still windows on the unit sphere
    result = quality.autocalibrate(np.arange(len(exact)) / fs, exact, fs)
    assert not result.applied and result.reason.endswith(" mg before: already calibrated")
    assert result.error_before_g < 0.001


def test_the_calibration_error_is_ggirs_on_ggirs_own_still_windows():
    """GGIR's 3000 still windows of the same recording (``C$spheredata`` of agcounts'
    ``ggirCalibrate.RData``: Euclidean norm, mean x, y, z, ...) give its published errors, to the
    5 decimals GGIR rounds them to, before and after its coefficients."""
    windows = np.load(CALIBRATION / "ggir_spheredata.npz")
    published = json.loads((CALIBRATION / "reference.json").read_text())
    means = windows["spheredata"][:, 1:4]
    assert means.shape == (published["npoints"], 3)
    assert round(quality.calibration_error_g(means), 5) == published["cal_error_start"]
    after = quality.calibration_error_g(means, np.array(published["offset"]), np.array(published["scale"]))
    assert round(after, 5) == published["cal_error_end"]
