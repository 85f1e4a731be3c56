"""Exact per-second aggregates of high-rate signals, the batch their expectation suites run on.

A week of 50 Hz accelerometry is 30 million samples. Running expectations row by row over it
would dominate ingestion, so the suites run on one row per second instead. The aggregates are
exact (every sample counts in the count, min, max and NaN count of its second), so a single
out-of-range or missing sample still fails its check, and the failure names the second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NS_PER_S = 1_000_000_000


def per_second_aggregates(
    timestamp_ns: np.ndarray,
    signals: dict[str, list[np.ndarray]],
    gravity_signal: str | None = None,
    axis_names: dict[str, tuple[str, ...]] | None = None,
    corrupt_blocks: list[tuple[int, int]] = (),
) -> pd.DataFrame:
    """Summarise a high-rate recording per second, in file order.

    Parameters
    ----------
    timestamp_ns : array of shape (n_samples,), int64 nanoseconds since the Unix epoch (UTC).
    signals : signal name (with its unit, e.g. ``accel_g``) -> its axes, each an array of shape
        (n_samples,) in canonical units; a single-channel signal has one axis.
    gravity_signal : the tri-axial acceleration signal (in g), to add ``gravity_estimate_g``, the
        magnitude of the per-second mean acceleration vector. At rest it is 1 g; about 9.8 means
        the file was in m/s^2, about 1000 means mg.
    axis_names : signal -> the canonical column of each axis, to add ``<column>_nan`` per axis.
    corrupt_blocks : ``(first, end)`` sample index of each device block that failed its checksum.

    Returns
    -------
    DataFrame with one row per run of samples that share a second, in file order:
    ``second`` (datetime64[ns, UTC]), ``samples`` (count), ``samples_full_second`` (the count,
    or NaN for the recording's first and last second, which are usually partial),
    ``non_increasing`` (samples whose timestamp is not after the previous sample's), and per
    signal ``<name>_min`` and ``<name>_max`` (over all its axes, NaN ignored) and ``<name>_nan``
    (missing values over all its axes), and ``<axis>_nan`` per axis when ``axis_names`` names
    them; ``corrupt_samples`` (samples of corrupt blocks) and ``corrupt_blocks`` (corrupt blocks
    whose first sample falls in the second, so that the column sums to the number of blocks).
    Min, max and NaN count are computed per axis and then folded, so they are exact; folding
    keeps the batch narrow, which is what Great Expectations' cost grows with (it copies the
    batch for every expectation).
    A second that appears in two runs means the file is out of order.
    """
    n = len(timestamp_ns)
    if n == 0:
        return pd.DataFrame({"second": pd.Series([], dtype="datetime64[ns, UTC]"), "samples": []})
    # Indices i (>= 1) where sample i is not after sample i - 1; almost always none.
    bad_steps = np.flatnonzero(timestamp_ns[1:] <= timestamp_ns[:-1]) + 1
    starts, seconds = _second_runs(timestamp_ns, ordered=len(bad_steps) == 0)
    samples = np.diff(np.r_[starts, n])
    run_of = np.searchsorted(starts, bad_steps, side="right") - 1
    non_increasing = np.bincount(run_of, minlength=len(starts))

    columns: dict[str, np.ndarray] = {
        "second": pd.DatetimeIndex((seconds * NS_PER_S).view("datetime64[ns]"), tz="UTC"),
        "samples": samples,
        "samples_full_second": _mask_edges(samples),
        "non_increasing": non_increasing,
    }
    for name, axes in signals.items():
        minima = [np.fmin.reduceat(values, starts) for values in axes]
        maxima = [np.fmax.reduceat(values, starts) for values in axes]
        sums = [np.add.reduceat(values, starts) for values in axes]  # float32 suffices for ~100 samples
        # float64: Great Expectations vectorises its range checks only for int64 and float64 columns.
        columns[f"{name}_min"] = np.fmin.reduce(minima).astype(np.float64)
        columns[f"{name}_max"] = np.fmax.reduce(maxima).astype(np.float64)
        counts = [_nan_counts(values, starts, total) for values, total in zip(axes, sums, strict=True)]
        columns[f"{name}_nan"] = sum(counts)
        if axis_names and name in axis_names:
            for axis, count in zip(axis_names[name], counts, strict=True):
                columns[f"{axis}_nan"] = count
        if name == gravity_signal:
            # A second holding a NaN gets a NaN mean; the median over seconds skips it.
            columns["gravity_estimate_g"] = np.sqrt(sum((total / samples) ** 2 for total in sums))
    columns |= _corrupt_counts(corrupt_blocks, starts, n)
    return pd.DataFrame(columns)


def _corrupt_counts(corrupt_blocks: list[tuple[int, int]], starts: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Samples of corrupt blocks per run, and corrupt blocks starting per run (zeros when none)."""
    samples = np.zeros(len(starts), dtype=np.int64)
    blocks = np.zeros(len(starts), dtype=np.int64)
    if len(corrupt_blocks):
        bounds = np.asarray(corrupt_blocks, dtype=np.int64)
        # +1 at each block's first sample, -1 after its last: the running sum marks corrupt samples.
        steps = np.zeros(n + 1, dtype=np.int64)
        np.add.at(steps, bounds[:, 0], 1)
        np.add.at(steps, np.minimum(bounds[:, 1], n), -1)
        samples = np.add.reduceat((np.cumsum(steps[:n]) > 0).astype(np.int64), starts)
        blocks = np.bincount(np.searchsorted(starts, bounds[:, 0], side="right") - 1, minlength=len(starts))
    return {"corrupt_samples": samples, "corrupt_blocks": blocks}


def _second_runs(timestamp_ns: np.ndarray, ordered: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start index and second (s since epoch) of every run of samples sharing a second."""
    if ordered:
        # Binary search per second instead of dividing every sample: ~10x faster on 30M samples.
        first, last = timestamp_ns[0] // NS_PER_S, timestamp_ns[-1] // NS_PER_S
        seconds = np.arange(first, last + 1, dtype=np.int64)
        starts = np.searchsorted(timestamp_ns, seconds * NS_PER_S, side="left")
        occupied = np.r_[starts[1:], len(timestamp_ns)] > starts  # gaps leave seconds empty
        return starts[occupied], seconds[occupied]
    second = timestamp_ns // NS_PER_S
    starts = np.flatnonzero(np.r_[True, second[1:] != second[:-1]])
    return starts, second[starts]


def _nan_counts(values: np.ndarray, starts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """NaN samples per run, counted only in the runs whose sum is NaN (the rare ones)."""
    counts = np.zeros(len(starts), dtype=np.int64)
    flagged = np.flatnonzero(np.isnan(sums))
    if len(flagged):
        ends = np.r_[starts[1:], len(values)]
        for run in flagged:
            counts[run] = np.count_nonzero(np.isnan(values[starts[run] : ends[run]]))
    return counts


def _mask_edges(samples: np.ndarray) -> np.ndarray:
    """The per-second counts with the first and last second set to NaN (usually partial)."""
    full = samples.astype(np.float64)
    full[0] = np.nan
    full[-1] = np.nan
    return full
