"""Binary wearable formats through SKDH's readers: Axivity ``.cwa`` and GENEActiv ``.bin``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import FileFormat, SourceConfig
from pipelines.readers.base import RawRead, ReadError
from pipelines.readers.tables import subject_from_name

CWA_BLOCK_BYTES = 512  # an Axivity file is a header and data blocks of exactly 512 bytes each


def read_device_file(path: Path, source: SourceConfig) -> RawRead:
    """Read an Axivity AX3/AX6 ``.cwa`` or GENEActiv ``.bin`` file into a canonical accelerometry frame.

    Acceleration comes out in g and angular velocity in deg/s (SKDH's units). Device clocks
    keep local time without a zone; the source's ``timezone`` says which, and SKDH converts
    to UTC epoch seconds with it.

    Raises
    ------
    ReadError
        for a truncated or corrupt file, naming the file and the structural problem.
    """
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
    # Microsecond precision: float epoch seconds carry sub-microsecond noise, and the lake keeps us.
    nanoseconds = np.round(np.asarray(data["time"], dtype=np.float64) * 1e6).astype(np.int64) * 1000
    columns = {"timestamp": pd.DatetimeIndex(nanoseconds.view("datetime64[ns]"), tz="UTC")}
    for i, axis in enumerate("xyz"):
        columns[f"accel_{axis}_g"] = accel[:, i]
    if "gyro" in data:
        for i, axis in enumerate("xyz"):
            columns[f"gyro_{axis}_deg_s"] = np.asarray(data["gyro"])[:, i]
    if "temperature" in data:
        columns["temperature_deg_c"] = np.asarray(data["temperature"], dtype=np.float64)
    return RawRead(
        frame=pd.DataFrame(columns),
        source_fields=["timestamp", "accel", *(k for k in ("gyro", "temperature", "light") if k in data)],
        subject_id=subject_from_name(path, source),
        sampling_rate_hz=float(data.get("fs", source.sampling_rate_hz or 0)),
        metadata={"reader": f"skdh.io.{Reader.__name__}", "device_format": source.format.value},
    )
