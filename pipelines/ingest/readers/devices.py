"""Binary wearable formats through SKDH's readers: Axivity ``.cwa`` and GENEActiv ``.bin``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import FileFormat, SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError, check_signature
from pipelines.ingest.readers.tables import subject_from_name, utc_times

CWA_BLOCK_BYTES = 512  # an Axivity file is a header and data blocks of exactly 512 bytes each
_CWA_DATA_BLOCK = b"AX"
_CWA_CHUNK_BLOCKS = 1 << 15  # 16 MB of blocks per checksum pass: a week-long file is ~300 MB


def read_device_file(path: Path, source: SourceConfig) -> RawRead:
    """Read an Axivity AX3/AX6 ``.cwa`` or GENEActiv ``.bin`` file into a canonical accelerometry frame.

    Acceleration comes out in g and angular velocity in deg/s (SKDH's units). Device clocks
    keep local time without a zone; the source's ``timezone`` says which, and SKDH converts
    to UTC epoch seconds with it.

    A CWA data block that fails its checksum is read by SKDH as zeros (it only prints "bad
    blocks" on stderr). Its samples are set missing (NaN) instead, never zeros, and
    ``RawRead.corrupt_blocks`` lists the rows of each such block so that validation reports the
    number of corrupt blocks and the seconds they cover (check ``corrupt_blocks``); the
    missingness check counts the same samples as missing. Rows are kept, not dropped, because
    the time axis stays regular and the report can name the seconds affected.

    Raises
    ------
    ReadError
        for an empty file, a file that is not of its format (wrong magic), a truncated file or a
        corrupt one, naming the file and the structural problem.
    """
    identifier_fields: list[str] = []
    check_signature(path, source.format)
    if source.format is FileFormat.CWA:
        size = path.stat().st_size
        # SKDH silently reads the whole blocks of a truncated file; the size gives it away.
        if size % CWA_BLOCK_BYTES:
            raise ReadError(
                f"{path.name}: truncated Axivity file: {size} bytes is not a whole number of "
                f"{CWA_BLOCK_BYTES}-byte blocks (the last {size % CWA_BLOCK_BYTES} bytes are a partial block); "
                "copy the file from the device again"
            )
        from skdh.io import ReadCwa as Reader
    elif source.format is FileFormat.BIN:
        identifier_fields = _check_geneactiv_structure(path)
        from skdh.io import ReadBin as Reader
    else:
        raise ValueError(f"{source.format} is not a device binary format")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SKDH warns about naive time; the zone is ours to give
        try:
            data = Reader().predict(file=str(path), tz_name=source.timezone)
        except Exception as error:  # SKDH raises bare RuntimeError/ValueError/IndexError on corrupt input
            raise ReadError(f"{path.name}: cannot read as {source.format.value}: {error}") from error

    accel = np.asarray(data["accel"])
    if accel.ndim != 2 or accel.shape[1] != 3 or len(accel) == 0:
        raise ReadError(f"{path.name}: the file holds no tri-axial acceleration samples")
    corrupt: list[tuple[int, int]] = []
    if source.format is FileFormat.CWA:
        corrupt = _corrupt_block_rows(path, len(accel))
        if corrupt:
            data = _missing_where_corrupt(data, corrupt)
            accel = data["accel"]
    # Microsecond precision: float epoch seconds carry sub-microsecond noise, and the lake keeps us.
    nanoseconds = np.round(np.asarray(data["time"], dtype=np.float64) * 1e6).astype(np.int64) * 1000
    columns = {"timestamp": utc_times(nanoseconds)}
    for i, axis in enumerate("xyz"):
        columns[f"accel_{axis}_g"] = accel[:, i]
    if "gyro" in data:
        for i, axis in enumerate("xyz"):
            columns[f"gyro_{axis}_deg_s"] = np.asarray(data["gyro"])[:, i]
    if "temperature" in data:
        columns["temperature_deg_c"] = np.asarray(data["temperature"], dtype=np.float64)
    return RawRead(
        frame=pd.DataFrame(columns, copy=False),
        source_fields=["timestamp", "accel", *(k for k in ("gyro", "temperature", "light") if k in data),
                       *identifier_fields],
        subject_id=subject_from_name(path, source),
        sampling_rate_hz=float(data.get("fs", source.sampling_rate_hz or 0)),
        metadata={"reader": f"skdh.io.{Reader.__name__}", "device_format": source.format.value,
                  **({"corrupt_blocks": str(len(corrupt))} if corrupt else {})},
        corrupt_blocks=corrupt,
    )


def cwa_corrupt_blocks(path: Path) -> tuple[np.ndarray, int]:
    """Indices of the data blocks of a ``.cwa`` file that fail their checksum, and the number of data blocks.

    Every data block is 512 bytes, starts with "AX" and carries a 16-bit checksum chosen so that
    the 256 little-endian 16-bit words of the block sum to 0 modulo 2**16 (OpenMovement's AX3
    data format, ``cwa-data-format.md``). A block without the "AX" mark counts as corrupt too.
    Blocks are numbered from 0 after the header block, whose size the header itself gives
    (its packet length + 4 bytes: 1024).
    """
    with path.open("rb") as stream:
        header = stream.read(4)
        header_bytes = int.from_bytes(header[2:4], "little") + 4
        stream.seek(header_bytes)
        bad: list[np.ndarray] = []
        first = 0
        while chunk := stream.read(_CWA_CHUNK_BLOCKS * CWA_BLOCK_BYTES):
            blocks = np.frombuffer(chunk, dtype=np.uint8)[: len(chunk) // CWA_BLOCK_BYTES * CWA_BLOCK_BYTES]
            blocks = blocks.reshape(-1, CWA_BLOCK_BYTES)
            sums = blocks.view("<u2").sum(axis=1, dtype=np.uint64) % 65536
            marked = (blocks[:, 0] == _CWA_DATA_BLOCK[0]) & (blocks[:, 1] == _CWA_DATA_BLOCK[1])
            bad.append(np.flatnonzero((sums != 0) | ~marked) + first)
            first += len(blocks)
    return (np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)), first


def _corrupt_block_rows(path: Path, samples: int) -> list[tuple[int, int]]:
    """``(first row, end row)`` of the samples each corrupt data block held, in SKDH's output.

    SKDH lays the samples out block by block, the same number per block, a corrupt block's
    included (as zeros); so block ``k`` holds rows ``k * n`` to ``(k + 1) * n``.
    """
    bad, blocks = cwa_corrupt_blocks(path)
    if not len(bad):
        return []
    if not blocks or samples % blocks:
        raise ReadError(f"{path.name}: {len(bad)} of {blocks} data blocks are corrupt (checksum mismatch) and the "
                        f"{samples} samples read do not divide into blocks, so the corrupt samples cannot be "
                        "told apart; copy the file from the device again")
    per_block = samples // blocks
    return [(int(k) * per_block, (int(k) + 1) * per_block) for k in bad]


def _missing_where_corrupt(data: dict, corrupt: list[tuple[int, int]]) -> dict:
    """SKDH's arrays with the samples of corrupt blocks set to NaN (SKDH gives zeros)."""
    rows = np.concatenate([np.arange(start, end) for start, end in corrupt])
    result = dict(data)
    for key in ("accel", "gyro", "temperature"):
        if key in data:
            values = np.array(data[key], dtype=np.float64)  # a copy: SKDH's arrays stay untouched
            values[rows] = np.nan
            result[key] = values
    return result


_GENEACTIV_PAGE_MARKER = b"Recorded Data"
_GENEACTIV_UNSET_BIRTH_DATES = {"", "1900-1-1", "1900-01-01"}  # what the device writes when none is set


def _check_geneactiv_structure(path: Path) -> list[str]:
    """Refuse a GENEActiv file that is shorter than its header says; return identifier fields set.

    SKDH's compiled reader loops forever, crashes or returns zeros dated 1970 on a file cut
    inside its header, so the page count is checked before SKDH sees the file. The header's
    "Subject Info" may hold a date of birth: when one is set, the direct-identifier check hears of it.
    """
    pages_declared = None
    pages_found = 0
    header = b""
    with path.open("rb") as stream:
        tail = b""
        while chunk := stream.read(8 << 20):
            if pages_declared is None:
                header += chunk
            window = tail + chunk
            pages_found += window.count(_GENEACTIV_PAGE_MARKER) - tail.count(_GENEACTIV_PAGE_MARKER)
            tail = window[-len(_GENEACTIV_PAGE_MARKER) + 1 :]
            if pages_declared is None and _GENEACTIV_PAGE_MARKER in header:
                text = header.split(_GENEACTIV_PAGE_MARKER, 1)[0].decode("latin-1")
                pages_declared = _header_value(text, "Number of Pages")
                birth_date = _header_value(text, "Date of Birth")
    if pages_declared is None or not str(pages_declared).isdigit():
        # The magic ("Device Identity") was checked before: this is a GENEActiv file cut in its header.
        raise ReadError(f"{path.name}: truncated GENEActiv file: no complete header with 'Number of Pages'; "
                        "copy the file from the device again")
    if pages_found < int(pages_declared):
        raise ReadError(f"{path.name}: truncated GENEActiv file: the header declares {pages_declared} pages, "
                        f"the file holds {pages_found}; copy the file from the device again")
    return [] if (birth_date or "") in _GENEACTIV_UNSET_BIRTH_DATES else ["date_of_birth"]


def _header_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    return None
