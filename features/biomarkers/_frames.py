"""Frame helpers shared by the biomarker modules: input checks and the shape of their tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} frame lacks column(s) {missing}; it has {list(frame.columns)}: pass the canonical "
            f"{what} frame (validation.schemas)"
        )


def _utc(timestamps: pd.Series, what: str) -> pd.Series:
    stamps = pd.to_datetime(timestamps)
    if stamps.dt.tz is None:
        raise ValueError(
            f"{what}.timestamp is timezone-naive; canonical frames carry UTC timestamps (use tz_localize('UTC'))"
        )
    return stamps.dt.tz_convert("UTC")


def _utc_days(time_s: np.ndarray) -> list[pd.Timestamp]:
    """UTC midnights of the calendar days a recording touches, from its first and last sample."""
    first = pd.Timestamp(float(time_s[0]), unit="s", tz="UTC").floor("D")
    last = pd.Timestamp(float(time_s[-1]), unit="s", tz="UTC").floor("D")
    return list(pd.date_range(first, last, freq="D"))


def local_instant(wall: pd.Timestamp, timezone: str) -> pd.Timestamp:
    """The UTC instant of a wall-clock time in ``timezone``: of an hour that repeats (autumn), the
    first; of an hour that does not exist (spring), the moment the clocks jump to."""
    return pd.Timestamp(wall).tz_localize(timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def _nan_row(subject_id: str, event_timestamp: pd.Timestamp, columns: tuple[str, ...], reason: str) -> dict:
    row: dict[str, Any] = dict.fromkeys(columns, math.nan)
    row.update(subject_id=subject_id, event_timestamp=event_timestamp, missing_reason=reason)
    return row


def _table(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    if not rows:
        return _empty_frame(columns)
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["subject_id"] = frame["subject_id"].astype(object)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    frame["missing_reason"] = frame["missing_reason"].astype(object).where(frame["missing_reason"].notna(), None)
    for column in columns:
        if column not in ("subject_id", "event_timestamp", "missing_reason"):
            frame[column] = frame[column].astype(float)
    return frame


def _empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    frame["subject_id"] = frame["subject_id"].astype(object)
    frame["event_timestamp"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["missing_reason"] = frame["missing_reason"].astype(object)
    return frame
