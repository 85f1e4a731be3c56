"""Actiwatch ``.AWD`` files (CamNtech / Philips Respironics Actiware exports): epoch activity counts.

Layout (text, CRLF): seven header lines, then one epoch per line.

1. the identity the watch was set up with (a name or a study code), 2. start date
   (``23-Jan-2018``), 3. start time (``13:58``, ``13:58:00`` or ``09:38:00 AM``), 4. the epoch
   code, 5. age, 6. the watch's serial number, its first letter the model, 7. sex;
then per epoch the activity count, for models with a second sensor a comma and its reading
(light for the L, L-Plus and 7; pressure, sound or temperature for the Insomnia, S and T
models), and an ``M`` where the wearer pressed the event marker.

Epoch codes: ``1`` 15 s, ``2`` 30 s, ``4`` 60 s, ``8`` 2 min, ``20`` 5 min, ``81`` 2 s, ``C1`` 5 s,
``C2`` 10 s (the codes pyActigraphy's reader documents; its example files use them).

Kept: the counts per epoch, with the epoch length, in UTC. Not kept: the identity, age and sex
lines (direct and quasi-identifiers; the subject code comes from the file name, by the source's
``subject_pattern``, as for every per-file device format), the second sensor's readings and the
markers. The watch keeps the local time of the computer that set it up and does not follow
daylight saving: one UTC offset, the source zone's at the first epoch, converts the whole file.

A count line that does not parse (text, a negative or fractional count, an empty line inside the
data) keeps its epoch with no count and is counted in ``RawRead.unparsable_cells``, so the
column-types check names its line and the epochs after it keep their times.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError
from pipelines.ingest.readers.signals import device_clock_offset, local_to_utc_ns
from pipelines.ingest.readers.tables import subject_from_name

HEADER_LINES = 7
EPOCH_SECONDS = {"1": 15, "2": 30, "4": 60, "8": 120, "20": 300, "81": 2, "C1": 5, "C2": 10}
MODELS = {
    "D": "Actiwatch-7", "I": "Actiwatch-Insomnia", "L": "Actiwatch-L", "M": "Actiwatch-Mini",
    "P": "Actiwatch-L-Plus", "S": "Actiwatch-S", "T": "Actiwatch-T", "V": "Actiwatch-4",
}
_START_FORMATS = ("%d-%b-%Y %H:%M", "%d-%b-%Y %H:%M:%S", "%d-%b-%Y %I:%M:%S %p", "%d-%b-%Y %I:%M %p")
# A count, optionally ", <second sensor>" and a marker; anything else is an unparsable line.
_EPOCH_LINE = re.compile(r"\s*(\d+)\s*(?:,\s*-?\d+(?:\.\d*)?\s*)?(?:M\s*)?")


def read_awd(path: Path, source: SourceConfig) -> RawRead:
    """Read an Actiwatch ``.AWD`` file into the canonical ACTIVITY_COUNTS frame.

    Raises
    ------
    ReadError
        the header is shorter than seven lines, its start date or time or its epoch code is not
        one the format knows (naming the line and the value), or the file name holds no subject code.
    """
    try:
        text = path.read_bytes().decode("latin-1")  # header names may hold accents; counts are ASCII
    except OSError as error:
        raise ReadError(f"{path.name}: cannot read: {error.strerror}") from error
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # the export ends with a line break or two, not with empty epochs
    if len(lines) < HEADER_LINES:
        raise ReadError(f"{path.name}: truncated Actiwatch AWD file: {len(lines)} lines, the header alone has "
                        f"{HEADER_LINES} (identity, start date, start time, epoch code, age, serial number, sex)")
    header = [line.strip() for line in lines[:HEADER_LINES]]
    epoch_s = EPOCH_SECONDS.get(header[3])
    if epoch_s is None:
        raise ReadError(f"{path.name}: line 4 holds the epoch code {header[3]!r}, not one of the AWD codes "
                        f"({', '.join(f'{code} = {seconds} s' for code, seconds in EPOCH_SECONDS.items())}): "
                        "not an Actiwatch AWD file, or a damaged header")
    start = _start(path, header[1], header[2])
    subject_id = subject_from_name(path, source)
    if subject_id is None:
        raise ReadError(f"{path.name}: no subject code in the file name by the source's subject_pattern "
                        f"{source.subject_pattern!r}; the AWD header's identity line is not used (it may hold a name)")

    counts, unparsable = _counts(lines[HEADER_LINES:])
    local_ns = start.value + np.arange(len(counts), dtype=np.int64) * np.int64(epoch_s * 1_000_000_000)
    offset = device_clock_offset(path, start.value, source.timezone)
    frame = pd.DataFrame({
        "subject_id": subject_id,
        "timestamp": pd.to_datetime(local_to_utc_ns(local_ns, offset), utc=True),
        "activity_count": counts,
        "epoch_s": float(epoch_s),
    })
    model = MODELS.get(header[5][:1].upper(), "unknown model")
    return RawRead(
        frame=frame,
        source_fields=["activity_count", "epoch_s"],
        subject_id=subject_id,
        metadata={"reader": "pipelines.ingest.readers.actiwatch", "device_format": "awd", "device_model": model,
                  "device_serial": header[5], "epoch_s": str(epoch_s)},
        unparsable_cells=unparsable,
    )


def _start(path: Path, date: str, time: str) -> pd.Timestamp:
    for time_format in _START_FORMATS:
        try:
            return pd.Timestamp(pd.to_datetime(f"{date} {time}", format=time_format))
        except ValueError:
            continue
    raise ReadError(f"{path.name}: lines 2 and 3 should hold the start date and time (e.g. '23-Jan-2018' and "
                    f"'13:58'), they hold {date!r} and {time!r}")


def _counts(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Counts per epoch line (NaN where a line does not parse) and the unparsable cells per line."""
    counts = np.full(len(lines), np.nan)
    for index, line in enumerate(lines):
        match = _EPOCH_LINE.fullmatch(line)
        if match is not None:
            counts[index] = float(match.group(1))
    return counts, np.isnan(counts).astype(np.int64)
