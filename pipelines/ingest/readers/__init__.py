"""Readers: one per file format, each returning the canonical frame of its source kind."""

from __future__ import annotations

import importlib
from pathlib import Path

from pipelines.config import FileFormat, SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError, check_signature, require_rows
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


# One entry per format: "module:function", imported on first use so that reading a CSV never
# pays for SKDH's import. A new format is one reader module plus one line here.
READERS: dict[FileFormat, str] = {
    FileFormat.CWA: "pipelines.ingest.readers.devices:read_device_file",
    FileFormat.BIN: "pipelines.ingest.readers.devices:read_device_file",
    FileFormat.GT3X: "pipelines.ingest.readers.actigraph:read_gt3x",
    FileFormat.ACTILIFE_CSV: "pipelines.ingest.readers.vendor_csv:read_vendor_csv",
    FileFormat.GENEACTIV_CSV: "pipelines.ingest.readers.vendor_csv:read_vendor_csv",
    FileFormat.AWD: "pipelines.ingest.readers.actiwatch:read_awd",
    FileFormat.AGD: "pipelines.ingest.readers.actilife_agd:read_agd",
    FileFormat.LIMS_CSV: "pipelines.ingest.readers.labs:read_lims_csv",
    FileFormat.HL7V2: "pipelines.ingest.readers.labs:read_hl7v2",
    FileFormat.FHIR: "pipelines.ingest.readers.labs:read_fhir",
}


def _read_format(path: Path, source: SourceConfig) -> RawRead:
    if source.format in (FileFormat.CSV, FileFormat.PARQUET):
        # Plain tables serve every kind; high-rate signals stream into preallocated arrays instead.
        if SCHEMAS[source.kind].high_rate:
            from pipelines.ingest.readers.signals import read_signal_file

            return read_signal_file(path, source)
        from pipelines.ingest.readers.tables import read_table

        return read_table(path, source, source.kind, source.format)
    module, function = READERS[source.format].split(":")
    return getattr(importlib.import_module(module), function)(path, source)
