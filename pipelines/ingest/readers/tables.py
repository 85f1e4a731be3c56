"""CSV and Parquet files of any tabular kind, through a column mapping, into canonical frames."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipelines.config import FileFormat, TableSpec
from pipelines.ingest.readers.base import RawRead, ReadError, check_signature, require_rows
from pipelines.ingest.units import QUANTITY_OF_COLUMN, to_canonical
from validation.schemas import SCHEMAS, CanonicalSchema, Column, SourceKind

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}
_SEX = {"f": "F", "female": "F", "w": "F", "m": "M", "male": "M", "x": "X", "other": "X", "unknown": "X"}


def read_table(path: Path, spec: TableSpec, kind: SourceKind, file_format: FileFormat) -> RawRead:
    """Read one CSV or Parquet file into the canonical frame of ``kind``.

    Parameters
    ----------
    path : the file.
    spec : the source (or enrollment / endpoints file) configuration: column mapping, header,
        timestamp encoding and time zone, units.
    kind : the canonical schema to produce.
    file_format : ``csv`` or ``parquet``.

    Cells that do not parse as their column's type become missing and are counted per row in
    ``RawRead.unparsable_cells``; columns the schema does not know are dropped (the raw field
    names stay in ``RawRead.source_fields`` for the direct-identifier check).

    Raises
    ------
    ReadError
        the file is empty, not of its format, cannot be parsed, or holds a header but no data rows.
    """
    check_signature(path, file_format)
    table = _read_arrow(path, spec, file_format)
    source_fields = list(table.column_names)
    schema = SCHEMAS[kind]
    renamed = _rename(table, spec.columns, schema)
    frame = renamed.to_pandas(split_blocks=True, self_destruct=True, types_mapper=None)
    del renamed, table

    subject_id = None
    if not schema.per_subject_column or "subject_id" not in frame:
        subject_id = subject_from_name(path, spec)
        if schema.per_subject_column and subject_id is not None:
            frame["subject_id"] = subject_id
    if kind is SourceKind.SUBJECTS:
        frame = _derive_enrollment_columns(frame)
    if "epoch_s" not in frame and getattr(spec, "epoch_s", None) is not None:
        frame["epoch_s"] = spec.epoch_s  # one epoch length per file, declared by the source

    unparsable = np.zeros(len(frame), dtype=np.int64) if file_format is FileFormat.CSV else None
    columns = {}
    for column in schema.columns:
        if column.name not in frame:
            continue
        values, failed = _coerce(frame[column.name], column, spec)
        if failed is not None and unparsable is not None:
            unparsable += failed
        columns[column.name] = values
    canonical = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)  # no copy of big signals
    _convert_units(canonical, getattr(spec, "units", {}))
    rate = getattr(spec, "sampling_rate_hz", None)
    raw = RawRead(
        frame=canonical,
        source_fields=source_fields,
        subject_id=subject_id,
        sampling_rate_hz=rate,
        unparsable_cells=unparsable,
    )
    header = f"the header ({', '.join(source_fields[:6])}{', ...' if len(source_fields) > 6 else ''})"
    return require_rows(path, raw, f"data rows below {header}" if file_format is FileFormat.CSV else "rows")


def subject_from_name(path: Path, spec: TableSpec) -> str | None:
    """The subject code in the file name, by the source's ``subject_pattern``."""
    pattern = getattr(spec, "subject_pattern", None)
    if not pattern:
        return None
    match = re.search(pattern, path.name)
    return match.group("subject_id") if match else None


def _read_arrow(path: Path, spec: TableSpec, file_format: FileFormat) -> pa.Table:
    try:
        if file_format is FileFormat.PARQUET:
            return pq.read_table(path)
        read_options = pa_csv.ReadOptions(autogenerate_column_names=not spec.header)
        # Timestamps stay text: the configured encoding and zone decide how they parse.
        convert = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in _timestamp_sources(spec)},
            strings_can_be_null=True,
        )
        return pa_csv.read_csv(path, read_options=read_options, convert_options=convert)
    except (pa.ArrowInvalid, OSError) as error:
        raise ReadError(f"{path.name}: cannot read as {file_format.value}: {error}") from error


def _timestamp_sources(spec: TableSpec) -> list[str]:
    names = {"timestamp", "index_time", "enrollment_date"}
    mapped = {spec.columns[name] for name in names if name in spec.columns}
    if spec.timestamp_encoding != "iso8601":
        return sorted(names - {"timestamp"} | mapped - {spec.columns.get("timestamp")})
    return sorted(names | mapped)


def _rename(table: pa.Table, mapping: dict[str, str], schema: CanonicalSchema) -> pa.Table:
    """Keep the schema's columns, named canonically; a header without a mapping is taken as is."""
    file_columns = set(table.column_names)
    selected, names = [], []
    for column in schema.columns:
        name = mapping.get(column.name, column.name)
        if name in file_columns:
            selected.append(name)
            names.append(column.name)
    for extra in ("birth_year", "age", "height_cm"):  # enrollment files may give these; age_years, height_m derived
        name = mapping.get(extra, extra)
        if schema.kind is SourceKind.SUBJECTS and name in file_columns and extra not in names:
            selected.append(name)
            names.append(extra)
    return table.select(selected).rename_columns(names)


def _derive_enrollment_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Age at enrollment from ``age`` or ``birth_year`` (the birth year itself is not kept), and
    height in metres from ``height_cm``."""
    if "height_m" not in frame and "height_cm" in frame:
        numeric = pd.to_numeric(frame["height_cm"], errors="coerce")
        # A cell that is not a number stays as it was, so the column-types check names it.
        frame = frame.assign(height_m=(numeric / 100.0).astype(object).where(numeric.notna(), frame["height_cm"]))
    if "age_years" not in frame and "age" in frame:
        frame = frame.rename(columns={"age": "age_years"})
    if "age_years" not in frame and "birth_year" in frame and "enrollment_date" in frame:
        enrolled = pd.to_datetime(frame["enrollment_date"], errors="coerce", utc=True)
        birth = pd.to_numeric(frame["birth_year"], errors="coerce")
        frame = frame.assign(age_years=enrolled.dt.year - birth)
    return frame.drop(columns=[c for c in ("birth_year", "age", "height_cm") if c in frame])


def _coerce(series: pd.Series, column: Column, spec: TableSpec) -> tuple[pd.Series, np.ndarray | None]:
    """The series in the column's canonical type, and 1 per row where a present cell failed to parse.

    A column that arrives typed (Parquet, or CSV numbers Arrow already parsed) cannot hold an
    unparsable cell, so no mask is computed for it: 30 million rows make every pass count.
    """
    typed_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if column.dtype in ("float", "int") and typed_number and column.dtype == "float":
        # float32 stays float32 (device axes); integers become float so missing values fit.
        return (series if series.dtype.kind == "f" else series.astype(np.float64)), None
    present = series.notna().to_numpy()
    if column.dtype == "datetime":
        is_event_time = column.name == "timestamp"
        values = parse_times(series, spec.timestamp_encoding if is_event_time else "iso8601", spec.timezone)
        if typed_number or pd.api.types.is_datetime64_any_dtype(series.dtype):
            return values, None
    elif column.dtype in ("float", "int"):
        if typed_number:
            values = series
        else:
            # Through object, not "string": to_numeric on a string column returns nullable Int64 or
            # Float64 depending on the file's contents, and a column's type must not.
            values = pd.to_numeric(series.astype(object).map(_stripped), errors="coerce").astype(np.float64)
        if column.dtype == "int":
            values = values.astype("Int64") if values.isna().any() or not _integral(values) else values.astype(np.int64)
    elif column.dtype == "bool":
        values = _parse_bool(series)
    else:
        values = series.astype("string").str.strip()
        if column.name == "sex":
            values = values.str.lower().map(_SEX).fillna(values).astype("string")
        if column.name == "consciousness_avpu":
            values = values.str.upper()
    failed = (present & values.isna().to_numpy()).astype(np.int64)
    return values, failed


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


def _integral(values: pd.Series) -> bool:
    as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return bool(np.all(np.isnan(as_float) | (as_float == np.round(as_float))))


def _parse_bool(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")
    text = series.astype("string").str.strip().str.lower()
    values = pd.Series(pd.NA, index=series.index, dtype="boolean")
    values[text.isin(_TRUE)] = True
    values[text.isin(_FALSE)] = False
    return values


def parse_times(series: pd.Series, encoding: str, timezone: str) -> pd.Series:
    """Timestamps to ``datetime64[ns, UTC]``; unparsable cells become NaT.

    ``iso8601`` text keeps its own offset; naive text is taken in ``timezone`` (a device clock
    keeps local time). ``unix_s`` and ``unix_ms`` are numbers since the epoch, UTC.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(series.dtype):  # a typed Parquet column without a zone
        return series.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    if encoding in ("unix_s", "unix_ms"):
        # In place where possible: a week at 50 Hz is 30 million timestamps (240 MB per copy).
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        # Rounded to microseconds: float epoch seconds carry sub-microsecond noise, the lake keeps us.
        np.multiply(numbers, 1e6 if encoding == "unix_s" else 1e3, out=numbers)
        np.round(numbers, out=numbers)
        invalid = np.isnan(numbers)
        has_invalid = bool(invalid.any())
        if has_invalid:
            numbers[invalid] = 0
        nanoseconds = numbers.astype(np.int64)
        del numbers
        nanoseconds *= 1000
        times = utc_times(nanoseconds, series.index)
        return times.where(~invalid) if has_invalid else times
    if timezone == "UTC":  # naive text is UTC too, so one vectorised parse covers every row
        return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    text = series.astype("string").str.strip()
    has_zone = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    result = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    if has_zone.any():
        result[has_zone] = pd.to_datetime(text[has_zone], utc=True, errors="coerce", format="ISO8601")
    naive = ~has_zone & text.notna()
    if naive.any():
        local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
        result[naive] = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return result


def utc_times(nanoseconds: np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """``datetime64[ns, UTC]`` series over int64 epoch nanoseconds, in one fast copy (not three)."""
    times = pd.DatetimeIndex(nanoseconds.view("datetime64[ns]"), copy=False).tz_localize("UTC")
    return pd.Series(times.array, index=index, copy=False)


def _convert_units(frame: pd.DataFrame, units: dict[str, str]) -> None:
    """Convert measured columns in place (the frame is this reader's own) to canonical units."""
    for column in frame.columns:
        quantity = QUANTITY_OF_COLUMN.get(column)
        if quantity in units:
            frame[column] = to_canonical(frame[column].to_numpy(), quantity, units[quantity])
