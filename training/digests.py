"""Content digests of training frames: the full SHA-256 that lineage records and reproduction checks.

MLflow's own dataset digest hashes a sample of the rows (the first 10,000); a regulated setting
needs every value. :func:`frame_sha256` hashes a frame's full content in a canonical form, so the
same values give the same digest whatever the row order, column order or pandas dtype details:

* rows sorted by the given key columns (all columns by default), columns by name;
* each column as its name, a type family (``float``, ``int``, ``bool``, ``time``, ``text``) and
  its values: numbers as little-endian float64 (integers as int64), every NaN or null as one
  marker, times as int64 nanoseconds since the epoch in UTC, text as UTF-8 with its length.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
import pandas as pd

_NULL = b"\xff\xfe null \xfe\xff"


def frame_sha256(frame: pd.DataFrame, *, sort_by: Sequence[str] | None = None) -> str:
    """SHA-256 (hex) of a frame's full content in canonical form (see the module docstring).

    Parameters
    ----------
    frame : DataFrame
        Any frame of numbers, booleans, times and text. Not modified.
    sort_by : sequence of str, optional
        Key columns that order the rows (default: every column, by name).

    Raises
    ------
    ValueError
        If a ``sort_by`` column is missing or a column holds values of no supported family.
    """
    keys = list(sort_by) if sort_by is not None else sorted(frame.columns)
    missing = [key for key in keys if key not in frame.columns]
    if missing:
        raise ValueError(f"frame_sha256: no column {missing} to sort the rows by")
    ordered = frame.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)
    digest = hashlib.sha256()
    digest.update(struct.pack("<q", len(ordered)))
    for name in sorted(ordered.columns, key=str):
        family, payload = _column_bytes(ordered[name])
        label = f"{name}\x00{family}".encode()
        digest.update(struct.pack("<q", len(label)) + label)
        digest.update(payload)
    return digest.hexdigest()


def _column_bytes(column: pd.Series) -> tuple[str, bytes]:
    null = column.isna().to_numpy()
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype):
        stamps = pd.to_datetime(column, utc=True).dt.as_unit("ns").array.asi8.astype("<i8")
        return "time", _with_nulls(stamps, null)
    if pd.api.types.is_bool_dtype(column.dtype):
        return "bool", _with_nulls(column.fillna(False).to_numpy(dtype=np.uint8), null)
    if pd.api.types.is_integer_dtype(column.dtype):
        return "int", _with_nulls(column.fillna(0).to_numpy(dtype="<i8"), null)
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy(dtype="<f8", na_value=np.nan)
        return "float", _with_nulls(np.where(null, 0.0, values).astype("<f8"), null)
    if pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype):
        parts = []
        for value, is_null in zip(column.tolist(), null, strict=True):
            if is_null:
                parts.append(_NULL)
            elif isinstance(value, str):
                encoded = value.encode()
                parts.append(struct.pack("<q", len(encoded)) + encoded)
            else:
                raise ValueError(f"frame_sha256: column {column.name!r} holds {type(value).__name__} values; "
                                 "only numbers, booleans, times and text are hashed")
        return "text", b"".join(parts)
    raise ValueError(f"frame_sha256: column {column.name!r} has dtype {column.dtype}, which is not hashed")


def _with_nulls(values: np.ndarray, null: np.ndarray) -> bytes:
    """Values and the null mask, so a null never equals a value (0, False or the epoch)."""
    return np.packbits(null).tobytes() + np.ascontiguousarray(values).tobytes()
