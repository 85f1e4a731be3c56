"""High-rate signals (accelerometry, ECG, PPG) in CSV or Parquet, streamed into preallocated arrays.

A week of 50 Hz accelerometry is 30 million samples. Reading the whole file into Arrow, then
into pandas, then converting timestamps would hold three or four copies at once; streaming
record batches into one preallocated array per column holds the result plus one batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipelines.config import FileFormat, SourceConfig
from pipelines.readers.base import RawRead, ReadError
from pipelines.readers.tables import subject_from_name, utc_times
from pipelines.units import QUANTITY_OF_COLUMN, to_canonical
from validation.schemas import SCHEMAS

_SIGNAL_DTYPE = np.float32  # device resolution is 12-16 bits: float32 loses nothing and halves memory


def read_signal_file(path: Path, source: SourceConfig) -> RawRead:
    """Read a high-rate CSV or Parquet file into its canonical frame (float32 signals, UTC times).

    The timestamp column must be numeric epoch time (``timestamp_encoding: unix_s`` or
    ``unix_ms``) or a typed Parquet timestamp; a cell that does not parse makes the whole file
    a ``ReadError`` naming the file (a corrupt export is not worth curating sample by sample).
    """
    schema = SCHEMAS[source.kind]
    mapping = {c.name: source.columns.get(c.name, c.name) for c in schema.columns}
    try:
        batches, total, file_columns = _open(path, source, mapping)
        wanted = {name: file_name for name, file_name in mapping.items() if file_name in file_columns}
        if "timestamp" not in wanted:
            raise ReadError(f"{path.name}: no timestamp column {mapping['timestamp']!r} "
                            "(check the source's columns mapping)")
        arrays = _fill(batches, total, wanted, source)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        raise ReadError(f"{path.name}: cannot read as {source.format.value}: {error}") from error

    nanoseconds = arrays.pop("timestamp")
    columns = {"timestamp": utc_times(nanoseconds)}
    del nanoseconds
    for name, values in arrays.items():
        quantity = QUANTITY_OF_COLUMN.get(name)
        columns[name] = to_canonical(values, quantity, source.units[quantity]) if quantity in source.units else values
    return RawRead(
        frame=pd.DataFrame(columns, copy=False),
        source_fields=list(file_columns),
        subject_id=subject_from_name(path, source),
        sampling_rate_hz=source.sampling_rate_hz,
    )


def _open(path: Path, source: SourceConfig, mapping: dict[str, str]):
    """Record batches of the file, its row count if known up front, and its column names."""
    # The system allocator hands each freed batch back at once; Arrow's default pool would keep
    # the high-water mark of all batches for the life of the process.
    pool = pa.system_memory_pool()
    if source.format is FileFormat.PARQUET:
        parquet = pq.ParquetFile(path, pre_buffer=False, memory_map=False)
        names = parquet.schema_arrow.names
        selected = [name for name in dict.fromkeys(mapping.values()) if name in names]
        groups = (parquet.read_row_group(i, columns=selected) for i in range(parquet.num_row_groups))
        return groups, parquet.metadata.num_rows, names
    read_options = pa_csv.ReadOptions(autogenerate_column_names=not source.header, block_size=16 << 20)
    types = {mapping[c]: pa.float64() for c in mapping if c == "timestamp"}
    types |= {mapping[c]: pa.float32() for c in mapping if c != "timestamp"}
    convert = pa_csv.ConvertOptions(column_types=types)
    reader = pa_csv.open_csv(path, read_options=read_options, convert_options=convert, memory_pool=pool)
    return reader, None, reader.schema.names


def _fill(batches, total: int | None, wanted: dict[str, str], source: SourceConfig) -> dict[str, np.ndarray]:
    """Copy every batch into one array per canonical column (int64 ns for the timestamp)."""
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    arrays = None if total is None else {
        name: np.empty(total, dtype=np.int64 if name == "timestamp" else _SIGNAL_DTYPE) for name in wanted
    }
    offset = 0
    for batch in batches:
        size = batch.num_rows
        for name, file_name in wanted.items():
            column = batch.column(file_name)
            values = _epoch_ns(column, source) if name == "timestamp" else _signal(column)
            if arrays is None:
                chunks[name].append(values)
            else:
                arrays[name][offset : offset + size] = values
        offset += size
    if arrays is None:
        arrays = {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in chunks.items()}
    return arrays


def _signal(column: pa.Array) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False).astype(_SIGNAL_DTYPE, copy=False)


def _epoch_ns(column: pa.Array, source: SourceConfig) -> np.ndarray:
    """Epoch nanoseconds, rounded to the microsecond (float epoch seconds carry sub-us noise)."""
    if column.null_count:  # a missing time would become the year 1677 and break every per-second count
        raise pa.ArrowInvalid(f"{column.null_count} empty timestamps in a high-rate signal")
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None and source.timezone != "UTC":
            local = pd.Series(column.to_numpy(zero_copy_only=False)).dt.tz_localize(source.timezone)
            return local.array.asi8
        return column.cast(pa.timestamp("ns", tz=column.type.tz)).to_numpy(zero_copy_only=False).view(np.int64)
    numbers = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    numbers *= 1e6 if source.timestamp_encoding == "unix_s" else 1e3
    np.round(numbers, out=numbers)
    nanoseconds = numbers.astype(np.int64)
    nanoseconds *= 1000
    return nanoseconds
