"""Vendor CSV exports with a metadata header block: ActiLife raw CSV and GENEActiv PC software CSV.

A study names the format (``format: actilife_csv`` or ``format: geneactiv_csv``); the header
block gives the sampling rate, the start of the recording and the date format, and this module
turns it into the column layout that ``pipelines.ingest.readers.signals`` streams. Both vendors write
the device clock's local time without a zone, and a device clock does not follow daylight
saving: one UTC offset converts the whole file, GENEActiv's header ``Time Zone`` when the
source's ``timezone`` uses it, else the zone's offset at the start of the recording.

Header fields that a study team may have filled with a person's details (a subject name, a
date of birth) are passed on as field names in ``RawRead.source_fields`` whenever they hold a
value, so the direct-identifier check refuses the file as it would a ``date_of_birth`` column.

Layouts
-------
ActiLife raw CSV (ActiLife 6): ten header lines, the first naming the date format and rate
(``... ActiLife v6.13.4 Firmware v2.5.0 date format M/d/yyyy at 30 Hz  Filter Normal ...``),
then ``Start Time``, ``Start Date``, ``Epoch Period (hh:mm:ss)`` (``00:00:00`` for raw data),
download time and memory lines and a dashed line; then, optionally, a line of column names
(``Timestamp,Accelerometer X,Accelerometer Y,Accelerometer Z``; the ``Timestamp`` column is
itself optional) and one row per sample in g.

GENEActiv CSV (GENEActiv PC software, "raw data" export; Activinsights' GENEActiv instruction
manual, "Understanding .csv files"): the first 100 rows hold the device, its firmware and the
trial set-up as ``key,value`` lines in sections (``Device Identity``, ``Configuration Info`` with
``Measurement Frequency,100 Hz``, ``Start Time`` and ``Time Zone``, ``Subject Info`` with
``Subject Code``, ``Date of Birth``, ``Sex``, ...); the data starts on line 101, without column
names: ``YYYY-MM-DD hh:mm:ss:mmm,x,y,z,lux,button,temperature`` with acceleration in g and
temperature in degC. The "epoch compressed" export has the same header and 12 columns (means,
SVMg, standard deviations) and is refused: it holds no raw samples. The reader looks for the
first data row rather than trusting the line count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipelines.config import FileFormat, SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError
from pipelines.ingest.readers.signals import CsvLayout, parse_offset, read_signal_file

_HEADER_LINES_SCANNED = 200  # a GENEActiv header is ~100 lines; a file without data in 200 is not one
_ACTILIFE_HEADER_LINES = 10
_ACTILIFE_TITLE = re.compile(r"ActiLife.*?date format (?P<date_format>\S+) at (?P<rate>\d+(?:\.\d+)?) Hz")
_ACTILIFE_COLUMNS = {
    "timestamp": "Timestamp",
    "accel_x_g": "Accelerometer X",
    "accel_y_g": "Accelerometer Y",
    "accel_z_g": "Accelerometer Z",
}
# .NET custom date format tokens ActiLife writes in its title line, longest first.
_DOTNET_DATE_TOKENS = (("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("M", "%m"), ("dd", "%d"), ("d", "%d"))

_GENEACTIV_DATA_ROW = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}:\d{3},")
_GENEACTIV_COLUMNS = ("timestamp", "x", "y", "z", "lux", "button", "temperature")
_GENEACTIV_MAPPING = {
    "timestamp": "timestamp",
    "accel_x_g": "x",
    "accel_y_g": "y",
    "accel_z_g": "z",
    "temperature_deg_c": "temperature",
}
_GENEACTIV_TIME_FORMAT = "%Y-%m-%d %H:%M:%S:%f"
# What the GENEActiv software writes when nobody entered a value.
_UNSET_VALUES = {"", "1900-1-1", "1900-01-01", "1900-01-01 00:00:00:000"}


def read_vendor_csv(path: Path, source: SourceConfig) -> RawRead:
    """Read an ActiLife or GENEActiv CSV export into the canonical accelerometry frame.

    Raises
    ------
    ReadError
        when the header block is not the vendor's (naming what is missing), the export holds
        epoch counts rather than raw samples, or a data row does not parse (naming the line).
    """
    header = _header_lines(path)
    reader: Callable[[Path, SourceConfig, list[str]], RawRead] = _PRESETS[source.format]
    return reader(path, source, header)


def _read_actilife(path: Path, source: SourceConfig, header: list[str]) -> RawRead:
    title = _ACTILIFE_TITLE.search(header[0]) if header else None
    if title is None:
        raise ReadError(f"{path.name}: not an ActiLife CSV export: the first line should read '... ActiLife ... "
                        f"date format M/d/yyyy at 30 Hz ...', it reads {(header or [''])[0][:80]!r}")
    fields = _colon_fields(header[1:_ACTILIFE_HEADER_LINES])
    start = {key: _header_text(header, key) for key in ("Start Time", "Start Date", "Epoch Period (hh:mm:ss)")}
    missing = [key for key, value in start.items() if value is None]
    if missing or len(header) <= _ACTILIFE_HEADER_LINES:
        raise ReadError(f"{path.name}: truncated ActiLife CSV header: missing {', '.join(missing) or 'the data'}; "
                        "export the file again from ActiLife")
    if start["Epoch Period (hh:mm:ss)"] != "00:00:00":
        raise ReadError(f"{path.name}: an ActiLife epoch export (epoch {start['Epoch Period (hh:mm:ss)']}) holds "
                        "activity counts, not raw acceleration; export raw data (Export > Raw data to CSV)")
    date_format = _strptime_date(title.group("date_format"))
    rate = float(title.group("rate"))
    try:
        first_local = datetime.strptime(f"{start['Start Date']} {start['Start Time']}", f"{date_format} %H:%M:%S")
    except ValueError as error:
        raise ReadError(f"{path.name}: Start Date {start['Start Date']!r} does not match the header's date format "
                        f"{title.group('date_format')!r} ({error})") from None

    first_row = header[_ACTILIFE_HEADER_LINES].split(",")
    has_names = "Accelerometer X" in first_row
    names = first_row if has_names else _unnamed_actilife_columns(first_row)
    layout = CsvLayout(
        skip_rows=_ACTILIFE_HEADER_LINES + (1 if has_names else 0),
        column_names=tuple(name.strip() for name in names),
        first_sample_local_ns=None if "Timestamp" in names else pd.Timestamp(first_local).value,
        device_clock=True,
    )
    preset = _preset_source(source, _ACTILIFE_COLUMNS, f"{date_format} %H:%M:%S.%f", rate)
    raw = read_signal_file(path, preset, layout)
    raw.source_fields = [*raw.source_fields, *fields]
    raw.sampling_rate_hz = rate
    raw.metadata.update({"reader": "pipelines.ingest.readers.vendor_csv", "device_format": "actilife_csv",
                         "device_serial": _header_text(header, "Serial Number") or "",
                         "exported_by": header[0].strip("- ").split(" date format")[0]})
    return raw


def _unnamed_actilife_columns(first_row: list[str]) -> list[str]:
    """Column names of an ActiLife export written without its header row: a leading time cell gives it away."""
    leading_time = bool(re.search(r"[/:]", first_row[0]))
    known = (["Timestamp"] if leading_time else []) + ["Accelerometer X", "Accelerometer Y", "Accelerometer Z"]
    return known + [f"extra_{i}" for i in range(len(first_row) - len(known))]


def _read_geneactiv(path: Path, source: SourceConfig, header: list[str]) -> RawRead:
    if not header or header[0].strip(" ,") != "Device Identity":
        raise ReadError(f"{path.name}: not a GENEActiv CSV export: the first line should read 'Device Identity', "
                        f"it reads {(header or [''])[0][:80]!r}")
    data_line = next((i for i, line in enumerate(header) if _GENEACTIV_DATA_ROW.match(line)), None)
    if data_line is None:
        raise ReadError(f"{path.name}: no GENEActiv data rows ('YYYY-MM-DD hh:mm:ss:mmm,x,y,z,...') within the first "
                        f"{_HEADER_LINES_SCANNED} lines: truncated, or not a GENEActiv raw-data CSV export")
    fields = dict(_comma_field(line) for line in header[:data_line] if "," in line)
    frequency = re.match(r"\s*(\d+(?:\.\d+)?)", fields.get("Measurement Frequency", ""))
    if frequency is None:
        raise ReadError(f"{path.name}: the GENEActiv header has no 'Measurement Frequency' (e.g. '100 Hz')")
    columns = len(header[data_line].split(","))
    if columns != len(_GENEACTIV_COLUMNS):
        # The software's epoch export (x mean, ..., SVMg, x sd, ...) has the same header and 12 columns.
        raise ReadError(f"{path.name}: GENEActiv raw-data rows have {len(_GENEACTIV_COLUMNS)} columns "
                        f"({','.join(_GENEACTIV_COLUMNS)}), line {data_line + 1} has {columns}: an epoch summary "
                        "export? export raw data from GENEActiv PC software")
    preset = _preset_source(source, _GENEACTIV_MAPPING, _GENEACTIV_TIME_FORMAT, float(frequency.group(1)))
    layout = CsvLayout(skip_rows=data_line, column_names=_GENEACTIV_COLUMNS, device_clock=True,
                       declared_offset=parse_offset(fields.get("Time Zone", "")),
                       declared_where=f"header Time Zone {fields.get('Time Zone')}")
    raw = read_signal_file(path, preset, layout)
    raw.source_fields = [*raw.source_fields, *(key for key, value in fields.items() if value not in _UNSET_VALUES)]
    raw.sampling_rate_hz = float(frequency.group(1))
    raw.metadata.update({"reader": "pipelines.ingest.readers.vendor_csv", "device_format": "geneactiv_csv",
                         "device_serial": fields.get("Device Unique Serial Code", ""),
                         "device_time_zone": fields.get("Time Zone", "")})
    return raw


_PRESETS: dict[FileFormat, Callable[[Path, SourceConfig, list[str]], RawRead]] = {
    FileFormat.ACTILIFE_CSV: _read_actilife,
    FileFormat.GENEACTIV_CSV: _read_geneactiv,
}


def _preset_source(source: SourceConfig, columns: dict[str, str], time_format: str, rate_hz: float) -> SourceConfig:
    """The source as a plain high-rate CSV source with the vendor's columns, units (g, degC) and clock."""
    return source.model_copy(update={
        "format": FileFormat.CSV, "columns": columns, "header": False, "units": {},
        "timestamp_encoding": "text", "timestamp_format": time_format,
        "sampling_rate_hz": rate_hz,  # the file's own rate spaces samples without a time column
    })


def _header_lines(path: Path) -> list[str]:
    """The first lines of the file (text; a vendor header is ASCII, latin-1 never fails on it)."""
    lines = []
    try:
        with path.open("r", encoding="latin-1", newline="") as stream:
            for line in stream:
                lines.append(line.rstrip("\r\n"))
                if len(lines) >= _HEADER_LINES_SCANNED:
                    break
    except OSError as error:
        raise ReadError(f"{path.name}: cannot read: {error.strerror}") from error
    return lines


def _header_text(header: list[str], key: str) -> str | None:
    """The value after ``key`` on its header line (``Key: value`` or ``Key value``)."""
    for line in header[:_ACTILIFE_HEADER_LINES]:
        if line.startswith(key):
            return line[len(key):].lstrip(": ").split("  ")[0].strip()
    return None


def _colon_fields(lines: list[str]) -> list[str]:
    """Keys of ``Key: value`` header lines that hold a value (``Start Time 11:55:00`` is not one)."""
    pairs = (line.partition(": ") for line in lines)
    return [key.strip() for key, separator, value in pairs if separator and value.strip()]


def _comma_field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(",")
    return key.strip(), value.strip()


def _strptime_date(dotnet_format: str) -> str:
    """A .NET date format (``M/d/yyyy``, ``dd.MM.yyyy``) as a strptime format."""
    tokens = "|".join(token for token, _ in _DOTNET_DATE_TOKENS)
    replacements = dict(_DOTNET_DATE_TOKENS)
    return re.sub(tokens, lambda match: replacements[match.group(0)], dotnet_format)
