"""ActiGraph counts from raw accelerometry, against the vendor: ActiLife 6.13.4's counts of two real
wrist recordings (tests/data/actigraph_counts, agcounts R package, MIT), and against ActiGraph's
own Python description of the method (agcounts 0.2.6, GPL-3, imported from its pinned wheel)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from features.biomarkers.activity import wrist_minutes
from features.biomarkers.counts import ACTIGRAPH_RATES_HZ, actigraph_counts, vector_magnitude
from pipelines.config import SourceConfig
from pipelines.ingest.readers import read_raw
from tests.reference_data import AGCOUNTS_WHEEL, reference_module

DATA = Path(__file__).resolve().parents[1] / "data"
COUNTS = DATA / "actigraph_counts"


def calibration_recording_g() -> np.ndarray:
    """The 20.7-h 30 Hz wrist recording of tests/data/calibration, (n, 3) x, y, z in g."""
    raw = np.load(DATA / "calibration" / "agcounts_calibration_30hz.npz")
    return np.stack([raw["x"], raw["y"], raw["z"]], axis=1) / 1000.0


def example_recording_g(tmp_path: Path) -> np.ndarray:
    """``example.gt3x`` (100 Hz, 3 min) read by the platform's own gt3x reader, (n, 3) in g."""
    path = tmp_path / "S0001_example.gt3x"
    path.write_bytes((COUNTS / "example.gt3x").read_bytes())
    source = SourceConfig(kind="accelerometry", pattern="*.gt3x", format="gt3x", sampling_rate_hz=100,
                          placement="wrist", timezone="America/Chicago")
    raw = read_raw(path, source)
    assert raw.sampling_rate_hz == 100
    return raw.frame[["accel_x_g", "accel_y_g", "accel_z_g"]].to_numpy()


def actilife_counts_xyz(axes: dict) -> np.ndarray:
    """ActiLife's axis1 (the device's y), axis2 (x) and axis3 (z) as columns x, y, z."""
    return np.stack([axes["axis2"], axes["axis1"], axes["axis3"]], axis=1).astype(np.int64)


def test_counts_equal_actilifes_on_every_second_of_a_real_30_hz_recording() -> None:
    """74654 1-s epochs, three axes: every count equals ActiLife 6.13.4's (the .agd of the same
    download has 25 epochs more at the end, which the raw export in the R package stops before)."""
    ours = actigraph_counts(calibration_recording_g(), 30, epoch_s=1)
    actilife = actilife_counts_xyz(np.load(COUNTS / "actilife_calibration1sec_counts.npz"))
    assert ours.shape == (74_654, 3)
    np.testing.assert_array_equal(ours, actilife[: len(ours)])
    assert ours.sum() > 1_000_000  # a day of wear, not a still device


def test_counts_at_100_hz_match_actigraphs_method_and_come_within_3_counts_of_actilife(tmp_path: Path) -> None:
    """A 100 Hz recording goes through the 3/10 resampling stage. Our counts equal agcounts' (the
    vendor's published description of the method) exactly. ActiLife's own 5-s counts of the file
    differ from both by at most 3 counts in an epoch (21 of the 36 epochs equal on every axis):
    ActiLife's resampling runs in fixed-point arithmetic, which its open description does not
    reproduce; the totals agree to 0.1 %."""
    accel = example_recording_g(tmp_path)
    ours = actigraph_counts(accel, 100, epoch_s=5)
    agcounts = reference_module(AGCOUNTS_WHEEL, "agcounts.extract")
    np.testing.assert_array_equal(ours, agcounts.get_counts(accel, freq=100, epoch=5))

    with sqlite3.connect(COUNTS / "example5sec.agd") as agd:
        rows = agd.execute("SELECT axis1, axis2, axis3 FROM data ORDER BY dataTimestamp").fetchall()
    actilife = actilife_counts_xyz(dict(zip(("axis1", "axis2", "axis3"), np.array(rows).T, strict=True)))
    assert ours.shape == actilife.shape == (36, 3)
    assert np.abs(ours - actilife).max() <= 3
    assert (ours == actilife).all(axis=1).sum() == 21
    assert vector_magnitude(ours).sum() == pytest.approx(vector_magnitude(actilife).sum(), rel=1e-3)


@pytest.mark.parametrize("rate_hz", [rate for rate in ACTIGRAPH_RATES_HZ if rate not in (30, 100)])
def test_counts_at_each_actigraph_rate_equal_actigraphs_method(tmp_path: Path, rate_hz: int) -> None:
    """The real 100 Hz recording resampled to each of ActiGraph's other rates: every stage
    (upsampling, the low-pass filter, skipped at 60 and 90 Hz, decimation) as agcounts does it."""
    accel = signal.resample_poly(example_recording_g(tmp_path), rate_hz // 10, 10, axis=0)
    agcounts = reference_module(AGCOUNTS_WHEEL, "agcounts.extract")
    for epoch_s in (1, 10):
        np.testing.assert_array_equal(actigraph_counts(accel, rate_hz, epoch_s=epoch_s),
                                      agcounts.get_counts(accel, freq=rate_hz, epoch=epoch_s))


def test_a_longer_epoch_is_the_sum_of_its_seconds() -> None:
    accel = calibration_recording_g()[: 30 * 3600]
    per_second = actigraph_counts(accel, 30, epoch_s=1)
    per_minute = actigraph_counts(accel, 30, epoch_s=60)
    assert per_minute.shape == (60, 3)
    np.testing.assert_array_equal(per_minute, per_second.reshape(60, 60, 3).sum(axis=1))


@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 4), (17, 20), (1, 8)])
def test_another_rate_is_resampled_to_30_hz_and_stays_close(tmp_path: Path, up: int, down: int) -> None:
    """The real 100 Hz recording at 200, 25, 85 and 12.5 Hz (an AX3's and a GENEActiv's rates):
    the counts of the 3 minutes stay within 5 % of those at ActiGraph's own 100 Hz."""
    accel = example_recording_g(tmp_path)
    resampled = signal.resample_poly(accel, up, down, axis=0)
    at_100_hz = vector_magnitude(actigraph_counts(accel, 100, epoch_s=60))
    other = vector_magnitude(actigraph_counts(resampled, 100 * up / down, epoch_s=60))
    assert other.shape == at_100_hz.shape == (3,)
    np.testing.assert_allclose(other, at_100_hz, rtol=0.05)


def test_a_still_device_counts_nothing() -> None:
    still = np.tile([0.0, 0.0, 1.0], (30 * 120, 1))
    np.testing.assert_array_equal(actigraph_counts(still, 30, epoch_s=60), np.zeros((2, 3)))
    assert actigraph_counts(still[:0], 30).shape == (0, 3)


@pytest.mark.parametrize(("accel", "rate_hz", "epoch_s", "message"), [
    (np.zeros((300, 3)), 8, 60, r"need a rate of 10 Hz or more \(30 to 100 Hz in steps of 10: ActiGraph's own\), "
                                r"not 8 Hz"),
    (np.zeros((300, 3)), float("nan"), 60, r"not nan Hz"),
    (np.zeros((300, 3)), 30, 0, r"epoch_s=0: pass a whole number of seconds from 1 to 3600"),
    (np.zeros((300, 3)), 30, 2.5, r"epoch_s=2.5"),
    (np.zeros(300), 30, 60, r"accel_g has shape \(300,\): pass \(n_samples, n_axes\)"),
    (np.r_[np.zeros((299, 3)), [[np.nan, 0, 1]]], 30, 60, r"NaN or infinite samples"),
])
def test_input_the_method_cannot_take_is_refused(accel: np.ndarray, rate_hz: float, epoch_s, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        actigraph_counts(accel, rate_hz, epoch_s=epoch_s)


def test_minute_counts_of_a_real_recording_equal_actilifes_summed_into_utc_minutes() -> None:
    """The activity table's per-minute counts (:func:`wrist_minutes`) of the 30 Hz recording, its
    samples timed from the ActiLife file's first epoch: each whole UTC minute's vector magnitude
    equals that of ActiLife's 1-s axis counts summed into the same minute."""
    actilife = np.load(COUNTS / "actilife_calibration1sec_counts.npz")
    accel = calibration_recording_g()
    start_s = (int(actilife["first_tick"]) - 621_355_968_000_000_000) / 1e7
    time_s = start_s + np.arange(accel.shape[0]) / 30.0
    minutes = wrist_minutes(time_s, accel, 30.0, np.array([[0, accel.shape[0]]]))

    seconds = actilife_counts_xyz(actilife)[:74_654]
    minute_of_second = np.floor((start_s + np.arange(len(seconds))) / 60).astype(np.int64)
    expected = {}
    for minute in np.unique(minute_of_second):
        in_minute = minute_of_second == minute
        if in_minute.sum() == 60:
            expected[minute] = vector_magnitude(seconds[in_minute].sum(axis=0, keepdims=True))[0]
    ours = minutes.dropna(subset=["counts_vm_per_min"])
    assert len(ours) == len(expected) > 1200 and minutes["worn"].all()
    np.testing.assert_array_equal(ours["timestamp"].to_numpy().astype("datetime64[m]").astype(np.int64),
                                  sorted(expected))
    np.testing.assert_allclose(ours["counts_vm_per_min"], [expected[m] for m in sorted(expected)], rtol=1e-12)
    # ENMO per minute is the mean of max(|a| - 1 g, 0), in mg.
    first = ours.index[0]
    in_first = np.floor(time_s / 60) == ours["timestamp"].iloc[0].value // 60_000_000_000
    enmo = np.maximum(np.linalg.norm(accel[in_first], axis=1) - 1, 0).mean() * 1000
    assert minutes.loc[first, "enmo_mg"] == pytest.approx(enmo)
