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
    signals: dict[str, np.ndarray],
    gravity_axes: tuple[str, str, str] | None = None,
) -> pd.DataFrame:
    """Summarise a high-rate recording per second, in file order.

    Parameters
    ----------
    timestamp_ns : array of shape (n_samples,), int64 nanoseconds since the Unix epoch (UTC).
    signals : column name -> array of shape (n_samples,), in canonical units.
    gravity_axes : names of the three acceleration axes (in g), to add ``gravity_estimate_g``,
        the magnitude of the per-second mean acceleration vector. At rest it is 1 g; about 9.8
        means the file was in m/s^2, about 1000 means mg.

    Returns
    -------
    DataFrame with one row per run of samples that share a second, in file order:
    ``second`` (datetime64[ns, UTC]), ``samples`` (count), ``samples_full_second`` (the count,
    or NaN for the recording's first and last second, which are usually partial),
    ``non_increasing`` (samples whose timestamp is not after the previous sample's),
    and per signal ``<name>_min``, ``<name>_max`` (NaN-ignoring) and ``<name>_nan``.
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
    means = {}
    for name, values in signals.items():
        columns[f"{name}_min"] = np.fmin.reduceat(values, starts)
        columns[f"{name}_max"] = np.fmax.reduceat(values, starts)
        sums = np.add.reduceat(values, starts)  # float32 is exact enough for a mean of ~100 samples
        columns[f"{name}_nan"] = _nan_counts(values, starts, sums)
        if gravity_axes and name in gravity_axes:
            # A second holding a NaN gets a NaN mean; the median over seconds skips it.
            means[name] = sums / samples
    if gravity_axes:
        columns["gravity_estimate_g"] = np.sqrt(sum(means[axis] ** 2 for axis in gravity_axes))
    return pd.DataFrame(columns)


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
