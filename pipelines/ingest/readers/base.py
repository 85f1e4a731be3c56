"""What every reader returns, and the error it raises for a file it cannot read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class ReadError(ValueError):
    """A file cannot be parsed at all (truncated, corrupt, wrong format).

    The message names the file and, where known, the line, block or field, and a likely cause.
    """


@dataclass
class RawRead:
    """A raw file turned into its canonical frame.

    Attributes
    ----------
    frame : the canonical frame of the source kind (see ``validation.schemas.SCHEMAS``), with
        UTC timestamps and canonical units.
    source_fields : the file's own field names (a CSV header, the populated PID fields of an
        HL7 message, ...), checked for direct identifiers before anything is kept.
    subject_id : the subject of a per-subject file (from its name or header), else ``None``.
    sampling_rate_hz : the rate the device reports, for high-rate signals.
    metadata : anything else worth keeping with the curated data (device serial, firmware).
    unparsable_cells : per row of ``frame``, how many cells could not be parsed as their type
        (they are NaN in the frame); ``None`` when the format is typed (Parquet, binary).
    corrupt_blocks : for device files made of checksummed blocks, ``(first row, end row)`` of the
        samples of each block that failed its checksum; those samples are NaN in ``frame``.
    """

    frame: pd.DataFrame
    source_fields: list[str]
    subject_id: str | None = None
    sampling_rate_hz: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    unparsable_cells: np.ndarray | None = None
    corrupt_blocks: list[tuple[int, int]] = field(default_factory=list)


# The first bytes of each binary format (its "magic"): a file without them is another kind of
# file that was named or routed wrongly, which is a different fault, with a different fix, from
# a truncated copy of the right kind.
_MAGIC: dict[str, tuple[bytes, str, str]] = {
    "cwa": (b"MD", "an Axivity .cwa file", "the header block 'MD' (then data blocks 'AX')"),
    "bin": (b"Device Identity", "a GENEActiv .bin file", "the text 'Device Identity'"),
    "parquet": (b"PAR1", "a Parquet file", "'PAR1' (and ends with it)"),
    "agd": (b"SQLite format 3\x00", "an ActiLife .agd file", "the SQLite header 'SQLite format 3'"),
}
# Text formats: a NUL byte never occurs in them, and a known binary magic names what came instead.
_TEXT_FORMATS = {"csv", "lims_csv", "hl7v2", "fhir", "actilife_csv", "geneactiv_csv", "awd"}
_KNOWN_MAGIC: dict[bytes, str] = {
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (xlsx, docx, gt3x, ...)",
    b"PAR1": "a Parquet file",
    b"\x89HDF": "an HDF5 file",
    b"\xd0\xcf\x11\xe0": "an old Microsoft Office document (xls, doc)",
    b"\x1f\x8b": "a gzip archive",
    b"MD": "an Axivity .cwa file",
    b"SQLite format 3": "a SQLite database (ActiLife .agd, ...)",
}
_SNIFF_BYTES = 8192
# Random bytes are ~10 % control bytes and UTF-16 text ~50 % NUL; a stray NUL in a real export is
# far below 1 % and is left to the reader.
_MAX_CONTROL_SHARE = 0.01
_TEXT_CONTROLS = np.frombuffer(b"\t\n\x0b\x0c\r\x1a\x1c", dtype=np.uint8)  # \x0b \x1c: MLLP; \x1a: DOS end


def check_signature(path: Path, file_format: str) -> None:
    """Refuse an empty file, or one that is not of ``file_format`` by its first (and last) bytes.

    Parameters
    ----------
    path : the raw file.
    file_format : the declared format (a ``pipelines.config.FileFormat`` value).

    Raises
    ------
    ReadError
        ``empty``: the file has 0 bytes; ``not an Axivity .cwa file`` (``not a csv file``, ...):
        the magic bytes are wrong (or a text format holds binary content), naming what the file
        looks like instead when known; ``truncated``: a Parquet file whose footer magic is missing.
    """
    file_format = str(file_format)
    size = path.stat().st_size
    if size == 0:
        raise ReadError(f"{path.name}: the file is empty (0 bytes); nothing to read as {file_format}")
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
        if file_format == "parquet" and size >= 8:
            stream.seek(size - 4)
            tail = stream.read(4)
    if file_format in _MAGIC:
        magic, name, expected = _MAGIC[file_format]
        if not head.startswith(magic):
            raise ReadError(f"{path.name}: not {name}: it starts with {head[:len(magic)]!r}{_looks_like(head)}, "
                            f"not with {expected}; check the file and the source's format")
        if file_format == "parquet" and (size < 8 or tail != magic):
            raise ReadError(f"{path.name}: truncated Parquet file: it starts with 'PAR1' but does not end with it "
                            f"({size} bytes); copy or export the file again")
    elif file_format in _TEXT_FORMATS:
        looks_like = _looks_like(head)
        if looks_like or _control_share(head) > _MAX_CONTROL_SHARE:
            raise ReadError(f"{path.name}: not a {file_format} file: expected UTF-8 text, found binary content"
                            f"{looks_like or ' (control bytes: a binary file, or text saved as UTF-16)'}")


def _control_share(head: bytes) -> float:
    """The share of control bytes that text never holds (all but tab, line ends, HL7's MLLP frame)."""
    values = np.frombuffer(head, dtype=np.uint8)
    controls = (values < 0x20) & ~np.isin(values, _TEXT_CONTROLS)
    return float(controls.mean()) if len(values) else 0.0


def _looks_like(head: bytes) -> str:
    for magic, name in _KNOWN_MAGIC.items():
        if head.startswith(magic):
            return f" (it looks like {name})"
    return ""


def require_rows(path: Path, raw: RawRead, what: str = "data rows") -> RawRead:
    """``raw`` itself, or ``ReadError`` when it holds no rows: an empty file is not a passing one.

    ``what`` names what is missing in the reason (``"data rows below the header"``, ``"OBX results"``).
    """
    if raw.frame.empty:
        raise ReadError(f"{path.name}: no {what}: the file holds nothing to curate")
    return raw
