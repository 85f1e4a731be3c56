"""The curated lake: validated canonical frames as Parquet, partitioned by source, subject and date.

Layout (hive style, so DuckDB, Spark and pyarrow datasets read the partition columns back)::

    <lake>/source=<name>/subject_id=<id>/date=<YYYY-MM-DD>/<part>.parquet
    <lake>/source=subjects/<part>.parquet              (study-level tables: no subject, no date)

Each part is written to a hidden temporary file in its final folder and renamed into place,
so a reader never sees a partial file. Part names are derived from the raw file's path and
content, so processing the same file again (after a crash) replaces its parts instead of
adding copies. Timestamps are stored in microseconds (what Spark reads) and every column's
unit is in the schema metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from validation.schemas import SCHEMAS, SourceKind

TEMP_MARKER = ".tmp-"
NS_PER_DAY = 86_400_000_000_000


def part_name(raw_path: str, sha256: str) -> str:
    """A stable name for the parts of one version of one raw file."""
    path_key = hashlib.sha256(raw_path.encode()).hexdigest()[:12]
    return f"part-{path_key}-{sha256[:12]}.parquet"


def write_curated(
    frame: pd.DataFrame,
    *,
    lake_root: Path,
    source: str,
    kind: SourceKind,
    subject_id: str | None,
    raw_path: str,
    sha256: str,
    report_id: str,
) -> list[str]:
    """Write a validated canonical frame; return the parts written, relative to ``lake_root``.

    Parameters
    ----------
    frame : canonical frame of ``kind``; per-subject kinds carry ``subject_id`` per row, the
        high-rate kinds get ``subject_id`` (the file's subject) from the caller.
    raw_path, sha256, report_id : lineage of the raw file, kept in the Parquet metadata.
    """
    schema = SCHEMAS[kind]
    metadata = {
        "units": json.dumps(schema.units),
        "source": source,
        "kind": kind.value,
        "raw_path": raw_path,
        "raw_sha256": sha256,
        "validation_report_id": report_id,
    }
    name = part_name(raw_path, sha256)
    base = lake_root / f"source={source}"
    if kind in (SourceKind.SUBJECTS, SourceKind.ENDPOINTS):
        return [_write_part(frame, base / name, metadata, lake_root)]

    written = []
    for (subject, day), part in _partitions(frame, subject_id):
        folder = base / f"subject_id={subject}" / f"date={day}"
        written.append(_write_part(part, folder / name, metadata, lake_root))
    return written


def remove_parts(lake_root: Path, parts: list[str]) -> None:
    """Delete curated parts (of a superseded version); already-missing parts are fine."""
    for part in parts:
        (lake_root / part).unlink(missing_ok=True)


def sweep_temporary(lake_root: Path) -> int:
    """Delete temporary files left by a crashed writer; return how many there were."""
    if not lake_root.exists():
        return 0
    stale = [p for p in lake_root.rglob(f".*{TEMP_MARKER}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _partitions(frame: pd.DataFrame, subject_id: str | None):
    """Yield ((subject, YYYY-MM-DD), rows) without the partition columns."""
    if "subject_id" in frame:
        # Integer days, formatted once per partition: strftime per row costs more than the write.
        days = frame["timestamp"].array.asi8 // NS_PER_DAY
        rows = frame.drop(columns=["subject_id"])
        for (subject, day), index in rows.groupby([frame["subject_id"], days], sort=True).groups.items():
            yield (subject, _day_label(day)), rows.loc[index]
        return
    # A high-rate file: one subject, sorted in time, tens of millions of rows. Binary search for
    # day boundaries and slice (views), instead of formatting a date string per sample.
    nanoseconds = frame["timestamp"].array.asi8
    first_day, last_day = nanoseconds[0] // NS_PER_DAY, nanoseconds[-1] // NS_PER_DAY
    cuts = np.searchsorted(nanoseconds, np.arange(first_day, last_day + 2) * NS_PER_DAY, side="left")
    for day, start, stop in zip(range(first_day, last_day + 1), cuts[:-1], cuts[1:], strict=True):
        if stop > start:
            yield (subject_id, _day_label(day)), frame.iloc[start:stop]


def _day_label(day: int) -> str:
    """Days since the epoch -> ``YYYY-MM-DD`` (UTC)."""
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


def _write_part(frame: pd.DataFrame, target: Path, metadata: dict[str, str], lake_root: Path) -> str:
    table = _to_arrow(frame)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}{TEMP_MARKER}{uuid.uuid4().hex}")
    try:
        pq.write_table(table, temporary, coerce_timestamps="us", allow_truncated_timestamps=True,
                       compression="zstd", compression_level=1, **_encodings(table.schema))
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target.relative_to(lake_root).as_posix()


def _encodings(schema: pa.Schema) -> dict:
    """Dictionary-encode text only. Sensor floats and timestamps rarely repeat, so trying a
    dictionary first wastes most of the write; byte-stream-split floats and delta-coded times
    compress better and faster (DuckDB, Spark and pyarrow all read both)."""
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    encoding = {}
    for f in schema:
        if pa.types.is_floating(f.type):
            encoding[f.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_timestamp(f.type) or pa.types.is_int64(f.type):
            encoding[f.name] = "DELTA_BINARY_PACKED"
    return {"use_dictionary": text, "column_encoding": encoding}


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Column by column from numpy, which shares memory where Arrow can (floats without nulls)."""
    arrays, names = [], []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            array = pa.array(series.array.asi8, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
            if series.isna().any():
                array = pa.array(series, type=pa.timestamp("ns", tz="UTC"))
        elif series.dtype.kind == "f":
            array = pa.array(series.to_numpy(), from_pandas=True)
        else:
            array = pa.array(series, from_pandas=True)
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def read_subject(lake_root: Path, source: str, subject_id: str) -> pd.DataFrame | None:
    """All curated rows of one subject from one source, in time order (``None`` if there are none).

    Reads the subject's partition folder directly: with one folder per subject, a subject's
    data is found without listing the whole source.
    """
    folder = lake_root / f"source={source}" / f"subject_id={subject_id}"
    if not folder.is_dir():
        return None
    import pyarrow.dataset as ds

    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    frame = table.drop_columns([c for c in ("date",) if c in table.column_names]).to_pandas()
    frame.insert(0, "subject_id", subject_id)
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)


def read_table(lake_root: Path, source: str) -> pd.DataFrame | None:
    """A study-level curated table (subjects, endpoints), every part of it."""
    folder = lake_root / f"source={source}"
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(part) for part in parts]).to_pandas()


def subject_parts(lake_root: Path, sources: list[str], subject_id: str) -> list[str]:
    """Names of a subject's curated parts across ``sources``: they change exactly when its data does."""
    names = []
    for source in sources:
        folder = lake_root / f"source={source}" / f"subject_id={subject_id}"
        if folder.is_dir():
            names += sorted(p.relative_to(lake_root).as_posix() for p in folder.rglob("*.parquet"))
    return names
