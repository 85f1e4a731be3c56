"""High-rate signals (accelerometry, ECG, PPG) in CSV or Parquet, streamed into preallocated arrays.

A week of 50 Hz accelerometry is 30 million samples. Reading the whole file into Arrow, then
into pandas, then converting timestamps would hold three or four copies at once; streaming
record batches into one preallocated array per column holds the result plus one batch.

Timestamps may be numeric epoch time, ISO-8601 text (with or without a UTC offset) or vendor
text in a strptime format. Text is parsed by Arrow's compute kernels one record batch at a
time, never string by string in Python; naive times are the device's local time in the
source's ``timezone``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipelines.config import FileFormat, SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError
from pipelines.ingest.readers.tables import subject_from_name, utc_times
from pipelines.ingest.units import QUANTITY_OF_COLUMN, to_canonical
from validation.schemas import SCHEMAS

_SIGNAL_DTYPE = np.float32  # device resolution is 12-16 bits: float32 loses nothing and halves memory
# Arrow's strptime has no fraction-of-second directive: a trailing "%f" after its separator is
# split off with a regular expression and added as nanoseconds, still column-wise.
_TRAILING_FRACTION = re.compile(r"([.,:])%f$")
_NS_PER_S = 1_000_000_000
_ISO_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True)
class CsvLayout:
    """Where the samples of a vendor CSV sit, for files whose layout a format preset knows.

    Attributes
    ----------
    skip_rows : lines before the data (a vendor's header block), and before the column names
        when ``column_names`` is ``None``.
    column_names : names of the columns of a file without a header row.
    first_sample_local_ns : for a file without a time column, the device clock's reading at the
        first sample (naive local time, ns since 1970); sample ``i`` is then at
        ``first_sample_local_ns + i / sampling_rate_hz``.
    device_clock : ``True`` when the times are a device clock set once at initialisation: it keeps
        one UTC offset through a daylight-saving change, so one offset converts the whole file
        (see ``device_clock_offset``). ``False`` for software exports, localised time by time.
    declared_offset, declared_where : the clock's UTC offset as the file's header states it, and
        where it states it (for the reason when it disagrees with the source's zone).
    """

    skip_rows: int = 0
    column_names: tuple[str, ...] | None = None
    first_sample_local_ns: int | None = None
    device_clock: bool = False
    declared_offset: timedelta | None = None
    declared_where: str = ""


def read_signal_file(path: Path, source: SourceConfig, layout: CsvLayout | None = None) -> RawRead:
    """Read a high-rate CSV or Parquet file into its canonical frame (float32 signals, UTC times).

    Parameters
    ----------
    path : the file.
    source : the source: column mapping, timestamp encoding (``unix_s``, ``unix_ms``,
        ``iso8601`` or ``text`` with ``timestamp_format``), time zone of naive times, units.
    layout : for vendor presets (``pipelines.ingest.readers.vendor_csv``): header block, column
        names, implicit clock.

    A cell that does not parse makes the whole file a ``ReadError`` naming the file and the row
    (a corrupt export is not worth curating sample by sample).
    """
    layout = layout or CsvLayout()
    schema = SCHEMAS[source.kind]
    mapping = {c.name: source.columns.get(c.name, c.name) for c in schema.columns}
    try:
        try:
            arrays, file_columns = _read(path, source, mapping, layout, iso_in_reader=True)
        except pa.ArrowInvalid as error:
            if "to timestamp" not in str(error):
                raise
            # Arrow's CSV reader names the bad time but not its row; reading the times as text finds it.
            arrays, file_columns = _read(path, source, mapping, layout, iso_in_reader=False)
    except _BadTimestamp as error:
        raise ReadError(f"{path.name}: data row {error.row + 1} (line {error.row + 1 + _lines_before(layout, source)}):"
                        f" {error.reason}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        raise ReadError(f"{path.name}: cannot read as {source.format.value}: {error}") from error

    if "timestamp" in arrays:
        nanoseconds = arrays.pop("timestamp")
    else:
        rows = len(next(iter(arrays.values()))) if arrays else 0
        local = layout.first_sample_local_ns + sample_offsets_ns(rows, source.sampling_rate_hz)
        offset = device_clock_offset(path, layout.first_sample_local_ns, source.timezone, layout.declared_offset,
                                     layout.declared_where)
        nanoseconds = local_to_utc_ns(local, offset)
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


def sample_offsets_ns(count: int | np.ndarray, rate_hz: float) -> np.ndarray:
    """Nanoseconds from a block's first sample to each of ``count`` samples (or to sample indexes
    ``count``) at ``rate_hz``, rounded to the microsecond the lake keeps."""
    indexes = np.arange(count) if np.ndim(count) == 0 else count
    return np.round(indexes * (1e6 / rate_hz)).astype(np.int64) * 1000


def device_clock_offset(path: Path, first_local_ns: int, zone: str, declared: timedelta | None = None,
                        where: str = "") -> timedelta:
    """The UTC offset of a device clock: the one its file declares, else the zone's at the first reading.

    A wearable's clock is set once, when it is initialised, and does not follow daylight-saving
    changes; converting reading by reading would shift every sample after a change by an hour
    and make an hour of the night ambiguous, so one offset converts the whole file. A file that
    states the offset its clock was set with (``.gt3x`` info.txt ``TimeZone``, GENEActiv's
    ``Time Zone``) is believed, if the source's zone uses that offset in some season: a device
    initialised in winter and worn in summer keeps its winter offset.

    Raises
    ------
    ReadError
        when the declared offset is not one the source's zone uses: the times would be off by
        hours, and the source's ``timezone`` (or the device's set-up) is wrong.
    """
    if declared is None:
        return _zone_offset(first_local_ns, zone)
    half_year = 183 * 86_400 * _NS_PER_S
    seasons = sorted({_zone_offset(first_local_ns + shift, zone) for shift in (-half_year, 0, half_year)})
    if declared not in seasons:
        raise ReadError(f"{path.name}: the device clock was set to UTC{format_offset(declared)} ({where}), but the "
                        f"source's timezone {zone} is UTC{' or UTC'.join(map(format_offset, seasons))} around the "
                        "recording: set the source's timezone to the zone where the device was initialised")
    return declared


def local_to_utc_ns(local_ns: np.ndarray, offset: timedelta) -> np.ndarray:
    """UTC ns of a device clock's naive local readings at a fixed UTC ``offset``."""
    return local_ns - np.int64(offset // timedelta(microseconds=1)) * 1000


def parse_offset(text: str) -> timedelta | None:
    """A UTC offset as device headers write it (``-05:00:00``, ``GMT +01:00``); ``None`` if none."""
    match = re.fullmatch(r"(?:GMT|UTC)?\s*([+-]?)(\d{1,2}):(\d{2})(?::\d{2})?", text.strip())
    if match is None:
        return None
    return (-1 if match.group(1) == "-" else 1) * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def format_offset(offset: timedelta) -> str:
    """``+02:00``, ``-05:00``."""
    minutes = int(offset // timedelta(minutes=1))
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone_offset(local_ns: int, zone: str) -> timedelta:
    return pd.Timestamp(int(local_ns)).tz_localize(zone, ambiguous=True, nonexistent="shift_forward").utcoffset()


def _read(path: Path, source: SourceConfig, mapping: dict[str, str], layout: CsvLayout,
          iso_in_reader: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    """One array per canonical column found in the file, and the file's column names."""
    batches, total, file_columns = _open(path, source, mapping, layout, iso_in_reader)
    wanted = {name: file_name for name, file_name in mapping.items() if file_name in file_columns}
    if "timestamp" not in wanted and layout.first_sample_local_ns is None:
        raise ReadError(f"{path.name}: no timestamp column {mapping['timestamp']!r} "
                        "(check the source's columns mapping)")
    return _fill(batches, total, wanted, _Clock(path, source, layout)), list(file_columns)


def _lines_before(layout: CsvLayout, source: SourceConfig) -> int:
    """Lines of the file before its first data row (header block and column names)."""
    return layout.skip_rows + (1 if source.header and layout.column_names is None else 0)


def _open(path: Path, source: SourceConfig, mapping: dict[str, str], layout: CsvLayout, iso_in_reader: bool):
    """Record batches of the file, its row count if known up front, and its column names.

    ISO-8601 times are parsed by the CSV reader itself when ``iso_in_reader`` (twice as fast as
    strings parsed afterwards); the first time of the file says whether they carry an offset.
    """
    # The system allocator hands each freed batch back at once; Arrow's default pool would keep
    # the high-water mark of all batches for the life of the process.
    pool = pa.system_memory_pool()
    if source.format is FileFormat.PARQUET:
        parquet = pq.ParquetFile(path, pre_buffer=False, memory_map=False)
        names = parquet.schema_arrow.names
        selected = [name for name in dict.fromkeys(mapping.values()) if name in names]
        groups = (parquet.read_row_group(i, columns=selected) for i in range(parquet.num_row_groups))
        return groups, parquet.metadata.num_rows, names
    read_options = pa_csv.ReadOptions(
        skip_rows=layout.skip_rows,
        column_names=list(layout.column_names) if layout.column_names else None,
        autogenerate_column_names=not source.header and layout.column_names is None,
        block_size=16 << 20,
    )
    # Other times stay strings for the clock, which knows the zone and the format.
    time_type = pa.float64() if source.timestamp_encoding in ("unix_s", "unix_ms") else pa.string()
    if source.timestamp_encoding == "iso8601" and iso_in_reader:
        time_type = _iso_type(path, read_options, mapping["timestamp"]) or time_type
    types = {mapping[c]: time_type for c in mapping if c == "timestamp"}
    types |= {mapping[c]: pa.float32() for c in mapping if c != "timestamp"}
    convert = pa_csv.ConvertOptions(column_types=types)
    reader = pa_csv.open_csv(path, read_options=read_options, convert_options=convert, memory_pool=pool)
    return reader, None, reader.schema.names


def _iso_type(path: Path, read_options: pa_csv.ReadOptions, column: str) -> pa.DataType | None:
    """``timestamp[ns, UTC]`` when the file's first time has a UTC offset, naive ``timestamp[ns]``
    when not, ``None`` when the file has no such column or no rows."""
    sniff = pa_csv.ReadOptions(skip_rows=read_options.skip_rows, column_names=read_options.column_names,
                               autogenerate_column_names=read_options.autogenerate_column_names, block_size=1 << 16)
    reader = pa_csv.open_csv(path, read_options=sniff, convert_options=pa_csv.ConvertOptions(
        column_types={column: pa.string()}, include_columns=[column], include_missing_columns=True))
    try:
        first = reader.read_next_batch().column(0)[0].as_py()
    except StopIteration:
        return None
    finally:
        reader.close()
    if first is None:
        return None
    return pa.timestamp("ns", tz="UTC") if _ISO_OFFSET.search(first.strip()) else pa.timestamp("ns")


def _fill(batches, total: int | None, wanted: dict[str, str], clock: _Clock) -> dict[str, np.ndarray]:
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
            values = clock.epoch_ns(column, offset) if name == "timestamp" else _signal(column)
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


def _split_fraction(strings: pa.Array, separator: str) -> tuple[pa.Array, pa.Array]:
    """Each time's text before its last ``separator``, and the fraction digits after it.

    Vendor times are usually of one width: then one cut position serves every cell (a slice, no
    search). Otherwise each cell is split at its last separator; a cell without a fraction gets
    an empty one. A wrong split cannot pass: the part before must still match the whole format.
    """
    lengths = pc.min_max(pc.utf8_length(strings))
    cut = strings[0].as_py().rfind(separator)
    if lengths["min"].as_py() == lengths["max"].as_py() and cut >= 0:
        return pc.utf8_slice_codeunits(strings, 0, cut), pc.utf8_slice_codeunits(strings, cut + 1)
    with_fraction = pc.if_else(pc.match_substring(strings, separator), strings,
                               pc.binary_join_element_wise(strings, "", separator))
    parts = pc.split_pattern(with_fraction, pattern=separator, max_splits=1, reverse=True)
    return pc.list_element(parts, 0), pc.list_element(parts, 1)


class _BadTimestamp(Exception):
    """A time cell that does not parse: its data row (0-based) and why."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row, self.reason = row, reason


class _Clock:
    """Turns each batch's time column into epoch nanoseconds (UTC), batch after batch."""

    def __init__(self, path: Path, source: SourceConfig, layout: CsvLayout) -> None:
        self.path, self.source, self.layout = path, source, layout
        self.device_offset: timedelta | None = None

    def epoch_ns(self, column: pa.ChunkedArray | pa.Array, first_row: int) -> np.ndarray:
        """Epoch nanoseconds, rounded to the microsecond (float epoch seconds carry sub-us noise)."""
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if column.null_count:  # a missing time would become the year 1677 and break every per-second count
            row = first_row + pc.index(pc.is_null(column), True).as_py()
            raise _BadTimestamp(row, f"empty timestamp ({column.null_count} in this part of the file); "
                                     "every sample of a high-rate signal needs its time")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = self._parse_text(column, first_row)
        if pa.types.is_timestamp(column.type):
            if column.type.tz is None:
                local = column.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False).view(np.int64)
                return self._localise(local, first_row)
            return column.cast(pa.timestamp("ns", tz=column.type.tz)).to_numpy(zero_copy_only=False).view(np.int64)
        numbers = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        numbers *= 1e6 if self.source.timestamp_encoding == "unix_s" else 1e3
        np.round(numbers, out=numbers)
        nanoseconds = numbers.astype(np.int64)
        nanoseconds *= 1000
        return nanoseconds

    def _parse_text(self, strings: pa.Array, first_row: int) -> pa.Array:
        """ISO-8601 (offset or naive) or the source's strptime format, parsed by Arrow kernels."""
        if self.source.timestamp_encoding == "text":
            return self._strptime(strings, self.source.timestamp_format, first_row)
        # Arrow parses ISO-8601 with an offset into UTC, and without one into naive time, but
        # refuses a column that mixes both: the first cell says which the file holds.
        has_offset = _ISO_OFFSET.search(strings[0].as_py().strip()) is not None
        target = pa.timestamp("ns", tz="UTC") if has_offset else pa.timestamp("ns")
        try:
            return pc.cast(strings, target)
        except pa.ArrowInvalid:
            bad = self._first_unparsable(strings, target)
            expected = "an ISO-8601 time with a UTC offset like the first row's" if has_offset else \
                "an ISO-8601 time without offset like the first row's"
            raise _BadTimestamp(first_row + bad, f"timestamp {strings[bad].as_py()!r} is not {expected}") from None

    @staticmethod
    def _first_unparsable(strings: pa.Array, target: pa.DataType) -> int:
        """Index of the first cell that does not cast, found by halving (each half cast in bulk)."""
        low, high = 0, len(strings)
        while high - low > 1:
            middle = (low + high) // 2
            try:
                pc.cast(strings.slice(low, middle - low), target)
                low = middle
            except pa.ArrowInvalid:
                high = middle
        return low

    def _strptime(self, strings: pa.Array, time_format: str, first_row: int) -> pa.Array:
        fraction = _TRAILING_FRACTION.search(time_format)
        base, nanoseconds = strings, None
        if fraction:
            base, digits = _split_fraction(strings, fraction.group(1))
            digits = pc.utf8_rpad(digits, width=9, padding="0")
            time_format = time_format[: fraction.start()]
            numbers = pc.cast(digits, pa.int64(), safe=False) if pc.all(pc.utf8_is_digit(digits)).as_py() else None
            if numbers is None:
                bad = pc.index(pc.utf8_is_digit(digits), False).as_py()
                raise self._mismatch(strings, first_row, bad)
            nanoseconds = pc.cast(numbers, pa.duration("ns"))
        parsed = pc.strptime(base, format=time_format, unit="ns", error_is_null=True)
        if parsed.null_count:
            raise self._mismatch(strings, first_row, pc.index(pc.is_null(parsed), True).as_py())
        return parsed if nanoseconds is None else pc.add(parsed, nanoseconds)

    def _mismatch(self, strings: pa.Array, first_row: int, bad: int) -> _BadTimestamp:
        return _BadTimestamp(first_row + bad, f"timestamp {strings[bad].as_py()!r} does not match the source's "
                                              f"timestamp_format {self.source.timestamp_format!r}")

    def _localise(self, local_ns: np.ndarray, first_row: int) -> np.ndarray:
        """UTC ns of naive local times in the source's zone; a time the zone skips or repeats is refused."""
        if self.layout.device_clock:
            if self.device_offset is None:  # fixed by the file's first time, for every batch
                self.device_offset = device_clock_offset(self.path, int(local_ns[0]), self.source.timezone,
                                                         self.layout.declared_offset, self.layout.declared_where)
            return local_to_utc_ns(local_ns, self.device_offset)
        if self.source.timezone == "UTC":
            return local_ns
        local = pd.DatetimeIndex(local_ns.view("datetime64[ns]")).tz_localize(
            self.source.timezone, ambiguous="NaT", nonexistent="NaT")
        if local.hasnans:
            bad = int(np.flatnonzero(local.isna())[0])
            raise _BadTimestamp(first_row + bad, f"naive time {pd.Timestamp(int(local_ns[bad]))} is skipped or "
                                                 f"repeated by a daylight-saving change in {self.source.timezone}; "
                                                 "export with UTC offsets or in UTC")
        return local.asi8
