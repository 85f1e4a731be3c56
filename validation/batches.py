"""Turn a canonical frame into the batches its suite runs on (see ``validation.suites``)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from validation.aggregates import per_second_aggregates
from validation.schemas import SIGNALS, SourceKind


def normalise_field(name: str) -> str:
    """``"Patient Name"`` -> ``"patient_name"``: lower case, every run of other characters to ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def file_batch(source_fields: list[str], subject_id: str | None) -> pd.DataFrame:
    """One row per field of the raw file; the file's subject (if it has one) on the first row only,
    so an unknown subject counts once, not once per field."""
    fields = [normalise_field(name) for name in source_fields] or [""]
    subjects = [subject_id] + [None] * (len(fields) - 1)
    return pd.DataFrame({"field": fields, "subject_id": subjects}, index=pd.RangeIndex(len(fields)))


def rows_batch(frame: pd.DataFrame, unparsable_cells: np.ndarray | None = None) -> pd.DataFrame:
    """The canonical frame plus the derived columns its structural checks need.

    ``seconds_since_latest_earlier`` is the step from the latest time among the subject's
    earlier rows, in file order (NaN on a subject's first row): zero or negative means the row
    repeats or goes back in time, so every row of a file sent twice is caught, not just the first.
    ``unparsable_cells`` counts the cells per row that the reader could not parse as their type.
    The frame is not modified; a shallow copy gets the extra columns.
    """
    batch = frame.copy(deep=False)
    time_column = "timestamp" if "timestamp" in frame else None
    if time_column:
        times = frame[time_column]
        # A row without a time must not hide a step back on the next one: carry the running
        # maximum over it (cummax leaves NaT where the time is missing).
        if "subject_id" in frame:
            subjects = frame["subject_id"].fillna("")
            running = times.groupby(subjects, sort=False).cummax().groupby(subjects, sort=False).ffill()
            latest_earlier = running.groupby(subjects, sort=False).shift(1)
        else:
            latest_earlier = times.cummax().ffill().shift(1)
        batch["seconds_since_latest_earlier"] = (times - latest_earlier).dt.total_seconds()
    batch["unparsable_cells"] = 0 if unparsable_cells is None else unparsable_cells
    return batch


def seconds_batch(kind: SourceKind, frame: pd.DataFrame, corrupt_blocks: list[tuple[int, int]] = ()) -> pd.DataFrame:
    """Exact per-second aggregates of a high-rate canonical frame, one signal per measured quantity.

    A signal missing an axis is left out; its axis's ``<column>_nan`` column is then absent too,
    which the required-columns check reports. ``corrupt_blocks`` are the ``(first, end)`` rows of
    device blocks that failed their checksum (``RawRead.corrupt_blocks``), counted per second.
    """
    timestamp_ns = frame["timestamp"].array.asi8  # a view, not a copy of 30 million timestamps
    signals = {name: [frame[axis].to_numpy() for axis in axes]
               for name, axes in SIGNALS[kind].items() if all(axis in frame for axis in axes)}
    gravity = "accel_g" if "accel_g" in signals else None
    return per_second_aggregates(timestamp_ns, signals, gravity,
                                 axis_names={name: SIGNALS[kind][name] for name in signals},
                                 corrupt_blocks=corrupt_blocks)
