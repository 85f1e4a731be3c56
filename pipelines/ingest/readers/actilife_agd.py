"""ActiLife ``.agd`` files (ActiGraph epoch data): activity counts per epoch, in a SQLite database.

ActiLife writes one ``.agd`` per device download (or per raw file it converted to counts): a
``settings`` table of ``settingName`` / ``settingValue`` pairs and a ``data`` table with one
row per epoch: ``dataTimestamp`` (the epoch's start, .NET ticks of 100 ns since 0001-01-01 in the
device's local time), ``axis1`` (vertical for a hip-worn device: the device's y axis),
``axis2`` (x) and ``axis3`` (z) counts, and steps, lux and inclinometer columns.

Kept: the vector magnitude of the three axes' counts (``sqrt(axis1^2 + axis2^2 + axis3^2)``,
ActiLife's ``Vector Magnitude``) per epoch as ``activity_count``, with ``epoch_s`` from the
``epochlength`` setting, in UTC. A file whose ``data`` table has ``axis1`` only (single-axis
devices) gives ``axis1``. Never read: the settings that describe the wearer (``subjectname``,
``dateOfBirth``, ``sex``, ``height``, ``mass``, ``age``, ``race``, ``limb``): the subject code
comes from the file name, by the source's ``subject_pattern``, as for every per-file device
format. The device clock keeps local time without daylight saving: one UTC offset, the source
zone's at the first epoch, converts the whole file.

The database is opened read-only and immutable: reading never writes a journal beside the raw
file. An epoch with no count in an axis keeps its time with no value and is counted in
``RawRead.unparsable_cells``, so the column-types check names its row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from pipelines.config import SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError
from pipelines.ingest.readers.signals import device_clock_offset, local_to_utc_ns
from pipelines.ingest.readers.tables import subject_from_name

_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000  # .NET ticks (100 ns) from 0001-01-01 to 1970-01-01
_NS_PER_TICK = 100
_TICKS_PER_S = 10_000_000
_CHUNK_ROWS = 100_000
# Times a device's clock can hold, in .NET seconds: 1980-01-01 to 2200-01-01 (beyond that, nanoseconds overflow).
_FIRST_SECOND = _TICKS_AT_UNIX_EPOCH // _TICKS_PER_S + 315_532_800
_LAST_SECOND = _TICKS_AT_UNIX_EPOCH // _TICKS_PER_S + 7_258_118_400
_AXES = ("axis1", "axis2", "axis3")
# The only settings read: nothing that describes the wearer.
_DEVICE_SETTINGS = ("epochlength", "deviceserial", "devicename", "softwarename", "softwareversion")


def read_agd(path: Path, source: SourceConfig) -> RawRead:
    """Read an ActiLife ``.agd`` file into the canonical ACTIVITY_COUNTS frame.

    Raises
    ------
    ReadError
        the file is not a readable SQLite database (truncated, damaged), it lacks the
        ``settings`` or ``data`` table, the ``axis1`` or ``dataTimestamp`` column or the
        ``epochlength`` setting, the epoch length is not a whole number of seconds from 1 to
        3600, two epochs share a start, or the file name holds no subject code.
    """
    subject_id = subject_from_name(path, source)
    if subject_id is None:
        raise ReadError(f"{path.name}: no subject code in the file name by the source's subject_pattern "
                        f"{source.subject_pattern!r}; the AGD settings' subject name is not used (it may hold a name)")
    settings, ticks, axes = _query(path)
    if ticks.size == 0:
        raise ReadError(f"{path.name}: the 'data' table holds no epochs: nothing to read")
    epoch_s = _epoch_s(path, settings.get("epochlength"))
    order = np.argsort(ticks, kind="stable")
    ticks = ticks[order]
    axes = {name: values[order] for name, values in axes.items()}
    repeated = np.flatnonzero(np.diff(ticks) == 0)
    if repeated.size:
        raise ReadError(f"{path.name}: data rows {_rows(repeated + 1)} repeat the epoch start of the row before: "
                        "an AGD file has one row per epoch; export it again from ActiLife")
    local_ns = (ticks - _TICKS_AT_UNIX_EPOCH) * _NS_PER_TICK
    offset = device_clock_offset(path, int(local_ns[0]), source.timezone)
    counts = np.stack(list(axes.values()), axis=1)
    unknown = np.isnan(counts).any(axis=1)
    frame = pd.DataFrame({
        "subject_id": subject_id,
        "timestamp": pd.to_datetime(local_to_utc_ns(local_ns, offset), utc=True),
        "activity_count": np.where(unknown, np.nan, np.sqrt(np.square(counts).sum(axis=1))),
        "epoch_s": float(epoch_s),
    })
    return RawRead(
        frame=frame,
        source_fields=["activity_count", "epoch_s"],
        subject_id=subject_id,
        metadata={"reader": "pipelines.ingest.readers.actilife_agd", "device_format": "agd",
                  "device_model": settings.get("devicename", "unknown model"),
                  "device_serial": settings.get("deviceserial", ""), "epoch_s": str(epoch_s),
                  "activity_count": "vector magnitude" if len(axes) == 3 else "axis1",
                  "software": f"{settings.get('softwarename', '')} {settings.get('softwareversion', '')}".strip()},
        unparsable_cells=unknown.astype(np.int64),
    )


def _query(path: Path) -> tuple[dict[str, str], np.ndarray, dict[str, np.ndarray]]:
    """The device settings, the epochs' ticks and each axis's counts (NaN where NULL or not a number)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        with sqlite3.connect(uri, uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in ("settings", "data"):
                if table not in tables:
                    raise ReadError(f"{path.name}: no '{table}' table: not an ActiLife AGD file (it has "
                                    f"{', '.join(sorted(tables)) or 'no tables'})")
            columns = {row[1] for row in connection.execute("PRAGMA table_info(data)")}
            missing = [column for column in ("dataTimestamp", "axis1") if column not in columns]
            if missing:
                raise ReadError(f"{path.name}: the 'data' table has no {' or '.join(missing)} column: "
                                "not an ActiLife AGD epoch file")
            axes = [axis for axis in _AXES if axis in columns]
            axes = axes if len(axes) == 3 else ["axis1"]
            marks = ", ".join("?" * len(_DEVICE_SETTINGS))
            settings = dict(connection.execute(
                f"SELECT settingName, settingValue FROM settings WHERE settingName IN ({marks})", _DEVICE_SETTINGS))
            # A cell that is not a number (text in a damaged file) reads as NULL, not as SQLite's cast of it.
            selected = ", ".join(f"CASE WHEN typeof({axis}) IN ('integer', 'real') THEN {axis} END" for axis in axes)
            # Ticks (~6e17) as whole seconds and the rest, each exact in float64 (a chunk's array type).
            timestamp = "CASE WHEN typeof(dataTimestamp) = 'integer' THEN dataTimestamp END"
            cursor = connection.execute(f"SELECT {timestamp} / {_TICKS_PER_S}, {timestamp} % {_TICKS_PER_S}, "
                                        f"{selected} FROM data")
            chunks = []
            while rows := cursor.fetchmany(_CHUNK_ROWS):  # arrays chunk by chunk: a month of 1-s epochs is 2.6M rows
                chunks.append(np.array(rows, dtype=np.float64))  # NULL -> NaN
    except sqlite3.DatabaseError as error:
        raise ReadError(f"{path.name}: not a readable ActiLife AGD (SQLite) database: {error}; the file may be "
                        "truncated or damaged, copy or export it again") from error
    settings = {str(name): str(value) for name, value in settings.items()}
    values = np.concatenate(chunks) if chunks else np.zeros((0, 2 + len(axes)))
    bad_time = np.flatnonzero(np.isnan(values[:, 0]))
    if bad_time.size:
        raise ReadError(f"{path.name}: data rows {_rows(bad_time)} have no integer dataTimestamp (.NET ticks): the "
                        "epochs' times are unknown")
    seconds = values[:, 0]
    absurd = np.flatnonzero((seconds < _FIRST_SECOND) | (seconds >= _LAST_SECOND))
    if absurd.size:
        raise ReadError(f"{path.name}: data rows {_rows(absurd)} have a dataTimestamp before 1980 or after 2199: not "
                        "a device's clock (the .NET ticks are damaged)")
    ticks = seconds.astype(np.int64) * _TICKS_PER_S + values[:, 1].astype(np.int64)
    return settings, ticks, {axis: values[:, 2 + k] for k, axis in enumerate(axes)}


def _epoch_s(path: Path, value: str | None) -> int:
    try:
        epoch_s = float(value) if value is not None else float("nan")
    except ValueError:
        epoch_s = float("nan")
    if not (np.isfinite(epoch_s) and epoch_s == int(epoch_s) and 1 <= epoch_s <= 3600):
        raise ReadError(f"{path.name}: the settings' epochlength is {value!r}, not a whole number of seconds from "
                        "1 to 3600: the epochs' length is unknown")
    return int(epoch_s)


def _rows(indices: np.ndarray) -> str:
    """1-based row numbers, the first ten and how many more."""
    shown = ", ".join(str(int(i) + 1) for i in indices[:10])
    return shown + (f" and {len(indices) - 10} more" if len(indices) > 10 else "")
