"""Per-second aggregates of high-rate signals: exact counts, extremes and missing values per second."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validation.aggregates import NS_PER_S, per_second_aggregates

FS_HZ = 50
STEP_NS = NS_PER_S // FS_HZ
T0 = pd.Timestamp("2024-03-04T10:00:00Z")
T0_NS = T0.value
STANDARD_GRAVITY_M_S2 = 9.80665


def regular_times_ns(seconds: int, offset_s: float = 0.0) -> np.ndarray:
    """int64 ns of ``seconds`` seconds of 50 Hz samples, starting ``offset_s`` after 10:00:00 UTC."""
    return T0_NS + int(offset_s * NS_PER_S) + np.arange(seconds * FS_HZ, dtype=np.int64) * STEP_NS


def still_device_g(n_samples: int) -> list[np.ndarray]:
    """A device lying flat: 0 g on x and y, 1 g on z."""
    return [np.zeros(n_samples), np.zeros(n_samples), np.ones(n_samples)]


def seconds_after_t0(frame: pd.DataFrame) -> list[int]:
    return [int((second - T0).total_seconds()) for second in frame["second"]]


def test_counts_samples_per_second_and_masks_the_first_and_last_second():
    timestamp_ns = regular_times_ns(4, offset_s=0.5)  # 10:00:00.5 to 10:00:04.48

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 2, 3, 4]
    assert str(result["second"].dtype) == "datetime64[ns, UTC]"
    assert result["samples"].tolist() == [25, 50, 50, 50, 25]
    np.testing.assert_array_equal(result["samples_full_second"], [np.nan, 50, 50, 50, np.nan])
    assert result["non_increasing"].tolist() == [0, 0, 0, 0, 0]


def test_masks_the_edges_even_when_they_are_full():
    timestamp_ns = regular_times_ns(3)  # starts exactly on a second: every second holds 50 samples

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert result["samples"].tolist() == [50, 50, 50]
    np.testing.assert_array_equal(result["samples_full_second"], [np.nan, 50, np.nan])


def test_min_and_max_fold_the_three_axes():
    timestamp_ns = regular_times_ns(3)
    x, y, z = (np.full(len(timestamp_ns), 0.1), np.full(len(timestamp_ns), -0.2), np.full(len(timestamp_ns), 0.9))
    y[70] = -3.5  # second 1: the minimum of the second is on y
    z[80] = 2.25  # second 1: the maximum is on z
    x[120] = -1.5  # second 2: both extremes on x
    x[121] = 1.75

    result = per_second_aggregates(timestamp_ns, {"accel_g": [x, y, z]})

    assert result["accel_g_min"].tolist() == [-0.2, -3.5, -1.5]
    assert result["accel_g_max"].tolist() == [0.9, 2.25, 1.75]
    assert result["accel_g_min"].dtype == np.float64
    assert result["accel_g_max"].dtype == np.float64


def test_nan_count_sums_missing_values_over_the_axes():
    timestamp_ns = regular_times_ns(4)
    x, y, z = still_device_g(len(timestamp_ns))
    x[10] = np.nan  # second 0: one axis of one sample
    x[60] = np.nan  # second 1: two axes of two samples
    y[70] = np.nan
    x[120] = y[120] = z[120] = np.nan  # second 2: all three axes of one sample

    result = per_second_aggregates(timestamp_ns, {"accel_g": [x, y, z]})

    assert result["accel_g_nan"].tolist() == [1, 2, 3, 0]
    # Extremes ignore the missing values instead of turning NaN.
    assert result["accel_g_min"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert result["accel_g_max"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_a_single_out_of_range_sample_shows_in_exactly_its_second():
    timestamp_ns = regular_times_ns(5)
    x, y, z = still_device_g(len(timestamp_ns))
    x[2 * FS_HZ + 17] = 12.0  # one sample of second 2, beyond an 8 g full scale

    result = per_second_aggregates(timestamp_ns, {"accel_g": [x, y, z]})

    beyond = result.loc[result["accel_g_max"] > 8, "second"]
    assert list(beyond) == [T0 + pd.Timedelta(seconds=2)]
    assert result["accel_g_max"].tolist() == [1.0, 1.0, 12.0, 1.0, 1.0]


def test_a_missing_second_produces_no_row():
    timestamp_ns = regular_times_ns(5)
    kept = (timestamp_ns < T0_NS + 2 * NS_PER_S) | (timestamp_ns >= T0_NS + 3 * NS_PER_S)
    timestamp_ns = timestamp_ns[kept]

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 3, 4]
    assert result["samples"].tolist() == [50, 50, 50, 50]
    assert result["non_increasing"].tolist() == [0, 0, 0, 0]


def test_a_duplicated_timestamp_counts_in_its_second():
    timestamp_ns = regular_times_ns(4)
    timestamp_ns = np.insert(timestamp_ns, 76, timestamp_ns[75])  # sample 75 (second 1) sent twice

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 2, 3]
    assert result["samples"].tolist() == [50, 51, 50, 50]
    assert result["non_increasing"].tolist() == [0, 1, 0, 0]


def test_a_step_back_within_a_second_counts_in_that_second():
    timestamp_ns = regular_times_ns(4)
    timestamp_ns[[130, 131]] = timestamp_ns[[131, 130]]  # two samples of second 2 swapped

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 2, 3]
    assert result["non_increasing"].tolist() == [0, 0, 1, 0]
    assert not result["second"].duplicated().any()


def test_a_step_back_into_the_previous_second_repeats_that_second():
    timestamp_ns = regular_times_ns(4)
    # 10:00:02.00, 10:00:02.02, then 10:00:01.99 (back into second 1), then on from 10:00:02.04.
    late = T0_NS + 1 * NS_PER_S + 99 * STEP_NS // 2
    timestamp_ns = np.insert(timestamp_ns, 102, late)

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 2, 1, 2, 3]
    assert result["samples"].tolist() == [50, 50, 2, 1, 48, 50]
    assert result["non_increasing"].tolist() == [0, 0, 0, 1, 0, 0]
    assert result["second"].duplicated().any()


def test_two_recordings_joined_repeat_seconds_in_file_order():
    first, second = regular_times_ns(3), regular_times_ns(3, offset_s=1)  # 0-2 s, then 1-3 s again
    timestamp_ns = np.concatenate([first, second])

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))})

    assert seconds_after_t0(result) == [0, 1, 2, 1, 2, 3]
    assert result["non_increasing"].tolist() == [0, 0, 0, 1, 0, 0]
    assert result["second"].duplicated().sum() == 2
    assert not result["second"].is_unique


def test_gravity_estimate_is_one_for_a_still_device_in_g():
    timestamp_ns = regular_times_ns(3)
    n = len(timestamp_ns)
    tilted = [np.full(n, 0.6), np.zeros(n), np.full(n, 0.8)]  # |(0.6, 0, 0.8)| = 1 g

    result = per_second_aggregates(timestamp_ns, {"accel_g": tilted}, gravity_signal="accel_g")

    np.testing.assert_allclose(result["gravity_estimate_g"], [1.0, 1.0, 1.0], rtol=1e-12)


def test_gravity_estimate_is_about_9_8_for_the_same_data_in_m_s2():
    timestamp_ns = regular_times_ns(3)
    in_m_s2 = [axis * STANDARD_GRAVITY_M_S2 for axis in still_device_g(len(timestamp_ns))]

    result = per_second_aggregates(timestamp_ns, {"accel_g": in_m_s2}, gravity_signal="accel_g")

    np.testing.assert_allclose(result["gravity_estimate_g"], STANDARD_GRAVITY_M_S2, rtol=1e-12)


def test_gravity_estimate_is_nan_for_a_second_holding_a_nan():
    timestamp_ns = regular_times_ns(3)
    x, y, z = still_device_g(len(timestamp_ns))
    y[60] = np.nan

    result = per_second_aggregates(timestamp_ns, {"accel_g": [x, y, z]}, gravity_signal="accel_g")

    gravity = result["gravity_estimate_g"].to_numpy()
    assert np.isnan(gravity[1])
    np.testing.assert_allclose(gravity[[0, 2]], [1.0, 1.0], rtol=1e-12)


def test_gravity_estimate_only_for_the_gravity_signal():
    timestamp_ns = regular_times_ns(2)

    result = per_second_aggregates(timestamp_ns, {"ecg_mv": [np.full(len(timestamp_ns), 0.4)]})

    assert "gravity_estimate_g" not in result
    assert result["ecg_mv_min"].tolist() == [0.4, 0.4]
    assert result["ecg_mv_max"].tolist() == [0.4, 0.4]
    assert result["ecg_mv_nan"].tolist() == [0, 0]


def test_an_empty_recording_gives_no_seconds():
    result = per_second_aggregates(np.array([], dtype=np.int64), {"accel_g": [np.array([])] * 3})

    assert len(result) == 0
    assert str(result["second"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_a_naive_pandas_groupby_on_a_random_ten_minute_recording(dtype):
    rng = np.random.default_rng(20240304)
    timestamp_ns = regular_times_ns(600, offset_s=0.37)
    jitter_ns = rng.integers(-2_000_000, 2_000_000, len(timestamp_ns))  # +-2 ms keeps the order at 20 ms steps
    timestamp_ns = timestamp_ns + jitter_ns
    kept = rng.random(len(timestamp_ns)) > 0.01  # about 1 % of samples dropped
    kept &= (timestamp_ns < T0_NS + 100 * NS_PER_S) | (timestamp_ns >= T0_NS + 105 * NS_PER_S)  # a 5 s gap
    timestamp_ns = timestamp_ns[kept]
    n = len(timestamp_ns)
    axes = [rng.normal(0, 0.5, n).astype(dtype) for _ in range(3)]
    axes[2] += dtype(1.0)  # gravity on z
    for axis in axes:
        axis[rng.random(n) < 0.002] = np.nan
    axes[0][1000:1050] = np.nan  # a run where one axis is missing for a whole second or so

    result = per_second_aggregates(timestamp_ns, {"accel_g": axes}, gravity_signal="accel_g")

    samples = pd.DataFrame({"x": axes[0], "y": axes[1], "z": axes[2]})
    by_second = samples.groupby(timestamp_ns // NS_PER_S)
    expected_seconds = pd.to_datetime(by_second.size().index.to_numpy() * NS_PER_S, utc=True)
    np.testing.assert_array_equal(result["second"].to_numpy(), expected_seconds.to_numpy())
    np.testing.assert_array_equal(result["samples"].to_numpy(), by_second.size().to_numpy())
    np.testing.assert_array_equal(result["accel_g_min"].to_numpy(),
                                  by_second.min().min(axis=1).to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(result["accel_g_max"].to_numpy(),
                                  by_second.max().max(axis=1).to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(result["accel_g_nan"].to_numpy(),
                                  samples.isna().groupby(timestamp_ns // NS_PER_S).sum().sum(axis=1).to_numpy())
    assert result["accel_g_nan"].sum() == sum(int(np.isnan(axis).sum()) for axis in axes)
    assert result["non_increasing"].sum() == 0
    assert 600 - 5 <= len(result) <= 601

    complete = by_second.count().eq(by_second.size(), axis=0).all(axis=1).to_numpy()
    means = by_second.mean().to_numpy(dtype=np.float64)
    gravity = result["gravity_estimate_g"].to_numpy()
    assert np.isnan(gravity[~complete]).all()
    np.testing.assert_allclose(gravity[complete], np.sqrt((means[complete] ** 2).sum(axis=1)),
                               rtol=1e-5 if dtype is np.float32 else 1e-10)


def test_corrupt_blocks_count_their_samples_per_second_and_each_block_once():
    timestamp_ns = regular_times_ns(4)  # 50 samples per second
    # One block within second 0, one across seconds 1 and 2, none in second 3.
    blocks = [(10, 20), (90, 115)]

    result = per_second_aggregates(timestamp_ns, {"accel_g": still_device_g(len(timestamp_ns))},
                                   corrupt_blocks=blocks)

    assert result["corrupt_samples"].tolist() == [10, 10, 15, 0]
    assert result["corrupt_blocks"].tolist() == [1, 1, 0, 0]
    assert int(result["corrupt_blocks"].sum()) == len(blocks)


def test_no_corrupt_blocks_gives_zero_columns():
    result = per_second_aggregates(regular_times_ns(2), {"accel_g": still_device_g(100)})
    assert result["corrupt_samples"].tolist() == [0, 0] and result["corrupt_blocks"].tolist() == [0, 0]
