"""Readers: one per file format, each returning the canonical frame of its source kind."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import FileFormat, SourceConfig
from pipelines.readers.base import RawRead, ReadError, check_signature, require_rows
from validation.schemas import SCHEMAS

__all__ = ["RawRead", "ReadError", "read_raw"]


def read_raw(path: Path, source: SourceConfig) -> RawRead:
    """Read ``path`` as ``source`` says; ``ReadError`` if it cannot be parsed at all.

    Every format gets the same two guards, so no reader can curate nothing as "passed": an
    empty file or one that is not of its declared format (wrong magic) is refused before its
    reader runs, and a file that parses into no data rows is refused after it.
    """
    check_signature(path, source.format)
    return require_rows(path, _read_format(path, source))


def _read_format(path: Path, source: SourceConfig) -> RawRead:
    if source.format in (FileFormat.CSV, FileFormat.PARQUET) and SCHEMAS[source.kind].high_rate:
        from pipelines.readers.signals import read_signal_file

        return read_signal_file(path, source)
    if source.format in (FileFormat.CSV, FileFormat.PARQUET):
        from pipelines.readers.tables import read_table

        return read_table(path, source, source.kind, source.format)
    if source.format in (FileFormat.CWA, FileFormat.BIN):
        from pipelines.readers.devices import read_device_file

        return read_device_file(path, source)
    from pipelines.readers import labs

    readers = {
        FileFormat.LIMS_CSV: labs.read_lims_csv,
        FileFormat.HL7V2: labs.read_hl7v2,
        FileFormat.FHIR: labs.read_fhir,
    }
    return readers[source.format](path, source)
