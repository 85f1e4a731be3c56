"""What every reader returns, and the error it raises for a file it cannot read."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """

    frame: pd.DataFrame
    source_fields: list[str]
    subject_id: str | None = None
    sampling_rate_hz: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    unparsable_cells: np.ndarray | None = None
