"""ActiGraph ``.gt3x`` files, read with numpy from ActiGraph's published format description.

Why our own reader: ``pygt3x``, ActiGraph's Python reader, is GPL-3.0 and cannot be a dependency
of this Apache-2.0 project; ``actipy`` reads ``.gt3x`` through Java code compiled at run time (a
JDK on every ingest machine); the R package ``read.gt3x`` is R. The format itself is documented
by ActiGraph ("GT3X File Format", github.com/actigraph/GT3X-File-Format, and the older
"NHANES GT3X File Format", github.com/actigraph/NHANES-GT3X-File-Format), and this module
follows those documents; it copies no reader's code.

The file
--------
A ``.gt3x`` file is a zip archive holding ``info.txt`` (``Key: value`` lines: ``Serial Number``,
``Sample Rate`` in Hz, ``Start Date`` in .NET ticks of the device's local clock, ``TimeZone``,
``Acceleration Scale``, ``Subject Name``, ...) and the samples, in one of two layouts:

- ``log.bin`` (firmware from 2014 on: GT3X+ and ActiSleep+ with firmware 3.0 or later,
  wGT3X+, wGT3X-BT, GT9X Link): a sequence of log records, each ``0x1E`` (separator), a type
  byte, a 4-byte little-endian timestamp (seconds since 1970 *on the device's local clock*), a
  2-byte payload size, the payload and a checksum byte (the one's complement of the XOR of
  header and payload, so the XOR of a whole record is ``0xFF``). ACTIVITY (``0x00``) records
  hold one second of samples as 12-bit two's complement values packed in Y, X, Z order;
  ACTIVITY2 (``0x1A``) records one second as little-endian int16 in X, Y, Z order (a 1-byte
  ACTIVITY2 record marks a USB connection, not data). PARAMETERS (``0x15``) holds
  8-byte key/value pairs, among them ACCEL_SCALE (address 0, key 55) in counts per g, encoded
  as a 24-bit two's complement fraction and an 8-bit exponent. METADATA (``0x06``) records
  hold JSON, the first one the subject's details (``SubjectName``, ``DOB``, ...). Zero bytes
  between records may occur and are skipped.
- ``activity.bin`` (GT3X+ "NEO" and ActiSleep+ "MRA" devices with firmware 2.5.0 or earlier,
  as used by NHANES): the samples only, 12-bit packed in Y, X, Z order, continuous from the
  start date at the sample rate, 341 counts per g. Its ``lux.bin`` (ambient light) is not part
  of the canonical accelerometry frame and is not read, nor are LUX, battery or epoch records.

Counts are divided by the scale (``ACCEL_SCALE``, else info.txt's ``Acceleration Scale``,
else 341 for NEO/CLE/MRA serials and 256 for MOS/TAS) and rounded to three decimals, as the
format description prescribes and as ActiLife's CSV export prints them.

Idle sleep mode and gaps
------------------------
With idle sleep mode enabled, a device that lies still stops sampling and writes no ACTIVITY
record (or one with an empty payload) for those seconds; ActiGraph's description of the mode
says ActiLife fills such seconds with the last sample before the sleep, and that is what this
reader does, so its frame equals ActiLife's export. Before the first sample there is nothing
to repeat, so a recording starts at its first record; after the last record nothing is added.
The number of seconds filled is kept in the metadata (``idle_sleep_seconds_filled``).

A record whose checksum fails is not trusted: its second of samples is NaN (never zeros) and
listed in ``RawRead.corrupt_blocks``; the corrupt-blocks check decides whether the file is
curated. Bytes that cannot be framed as records are skipped to the next record whose checksum
holds, and counted (``log_bytes_skipped``).

Time
----
The device clock is the local time of the computer that initialised it and does not follow
daylight saving, so one UTC offset converts the whole file: the one ``info.txt`` records
(``TimeZone``), provided the source's ``timezone`` uses it in some season (a device set up in
winter and worn in summer keeps its winter offset), else the zone's offset at the start of the
recording. A ``TimeZone`` that the source's zone never uses is refused, since the UTC times
would be off by hours (``pipelines.ingest.readers.signals.device_clock_offset``).
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError
from pipelines.ingest.readers.signals import device_clock_offset, local_to_utc_ns, parse_offset, sample_offsets_ns
from pipelines.ingest.readers.tables import subject_from_name, utc_times

_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01T00:00
_NS_PER_TICK = 100
_NS_PER_S = 1_000_000_000

RECORD_SEPARATOR = 0x1E
_HEADER_BYTES = 8  # separator, type, 4-byte timestamp, 2-byte payload size; the checksum byte follows the payload
ACTIVITY, METADATA, PARAMETERS, ACTIVITY2 = 0x00, 0x06, 0x15, 0x1A
_ACCEL_SCALE_KEY = (0, 55)  # PARAMETERS: address space 0, identifier 55
_SCALE_BY_SERIAL_PREFIX = {"NEO": 341.0, "CLE": 341.0, "MRA": 341.0, "MOS": 256.0, "TAS": 256.0}
NHANES_SCALE = 341.0  # counts per g of every activity.bin device
_AXES_FROM_YXZ = [1, 0, 2]  # ACTIVITY and activity.bin store Y, X, Z


def read_gt3x(path: Path, source: SourceConfig) -> RawRead:
    """Read an ActiGraph ``.gt3x`` file into the canonical accelerometry frame (g, UTC).

    Raises
    ------
    ReadError
        ``not a .gt3x file`` (not a zip archive, or no ``info.txt``), ``truncated .gt3x file``
        (a zip archive cut short, or a log record that runs past the end), ``corrupt``
        (a member that fails its CRC), or a ``TimeZone`` that the source's zone never uses.
    """
    info, members = _open_archive(path)
    try:
        rate = float(info["Sample Rate"])
        start_local_ns = (int(info["Start Date"]) - _TICKS_AT_UNIX_EPOCH) * _NS_PER_TICK
    except (KeyError, ValueError) as error:
        raise ReadError(f"{path.name}: info.txt lacks a valid 'Sample Rate' or 'Start Date' ({error})") from None
    serial = info.get("Serial Number", "")
    metadata = {"reader": "pipelines.ingest.readers.actigraph", "device_format": "gt3x", "device_serial": serial,
                "device_type": info.get("Device Type", ""), "firmware": info.get("Firmware", "")}
    identifier_fields = []
    if info.get("Subject Name") and info["Subject Name"] != serial:  # the serial is no person's name
        identifier_fields.append("Subject Name")

    if "log.bin" in members:
        log = _LogReader(path, members["log.bin"], rate, _info_scale(info, serial))
        local_ns, xyz, corrupt_blocks = log.samples()
        identifier_fields += log.metadata_fields
        metadata |= {"layout": "log.bin", "idle_sleep_seconds_filled": str(log.idle_seconds_filled),
                     "log_bytes_skipped": str(log.bytes_skipped), "accel_scale_counts_per_g": str(log.scale)}
    elif "activity.bin" in members:
        xyz = _scaled(_unpack_12bit(np.frombuffer(members["activity.bin"], np.uint8)[None, :])[0], NHANES_SCALE)
        local_ns = start_local_ns + sample_offsets_ns(len(xyz), rate)
        corrupt_blocks = []
        metadata |= {"layout": "activity.bin (NHANES)", "accel_scale_counts_per_g": str(NHANES_SCALE)}
    else:
        raise ReadError(f"{path.name}: not a .gt3x file with samples: the archive holds neither log.bin nor "
                        f"activity.bin (members: {', '.join(sorted(members)) or 'none'})")

    offset = device_clock_offset(path, start_local_ns, source.timezone, parse_offset(info.get("TimeZone", "")),
                                 f"info.txt TimeZone {info.get('TimeZone')}")
    columns = {"timestamp": utc_times(local_to_utc_ns(local_ns, offset))}
    for i, axis in enumerate("xyz"):
        columns[f"accel_{axis}_g"] = xyz[:, i]
    return RawRead(
        frame=pd.DataFrame(columns, copy=False),
        source_fields=["timestamp", "accel", *identifier_fields],
        subject_id=subject_from_name(path, source),
        sampling_rate_hz=rate,
        metadata=metadata,
        corrupt_blocks=corrupt_blocks,
    )


def _open_archive(path: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """``info.txt`` as a dict, and the bytes of the sample members, refusing what is not a .gt3x file."""
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic != b"PK\x03\x04":
        raise ReadError(f"{path.name}: not a .gt3x file: a .gt3x file is a zip archive (starting 'PK\\x03\\x04') "
                        f"holding info.txt and log.bin, this one starts with {magic!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "info.txt" not in names:
                raise ReadError(f"{path.name}: not a .gt3x file: the zip archive holds no info.txt "
                                f"(members: {', '.join(sorted(names)[:8])})")
            info_text = archive.read("info.txt").decode("utf-8-sig", errors="replace")
            members = {name: archive.read(name) for name in ("log.bin", "activity.bin") if name in names}
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise ReadError(f"{path.name}: corrupt .gt3x file: {error}; copy the file from the device again") from None
        raise ReadError(f"{path.name}: truncated .gt3x file: the zip archive ends before its directory "
                        f"({error}); copy the file from the device again") from None
    except (EOFError, zlib.error) as error:
        raise ReadError(f"{path.name}: truncated .gt3x file: a zip member ends early ({error}); copy the file "
                        "from the device again") from None
    info = {}
    for line in info_text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            info[key.strip()] = value.strip()
    return info, members


def _info_scale(info: dict[str, str], serial: str) -> float:
    """Counts per g when the log has no ACCEL_SCALE parameter: info.txt, else the serial's device family."""
    if info.get("Acceleration Scale"):
        return float(info["Acceleration Scale"])
    return _SCALE_BY_SERIAL_PREFIX.get(serial[:3], 341.0)


def _unpack_12bit(packed: np.ndarray) -> np.ndarray:
    """Counts of rows of 12-bit packed samples: ``(n, bytes)`` uint8 to ``(n, samples, 3)`` int16, X Y Z.

    Each sample is three 12-bit two's complement values (Y, X, Z), most significant nibble first;
    an odd number of samples leaves the last nibble unused.
    """
    rows, size = packed.shape
    samples = size * 2 // 9
    nibbles = np.empty((rows, size * 2), dtype=np.int16)
    nibbles[:, 0::2] = packed >> 4
    nibbles[:, 1::2] = packed & 0x0F
    triples = nibbles[:, : samples * 9].reshape(rows, samples * 3, 3)
    values = (triples[..., 0] << 8) | (triples[..., 1] << 4) | triples[..., 2]
    values -= (values & 0x800) << 1  # sign extension of 12-bit two's complement
    return values.reshape(rows, samples, 3)[..., _AXES_FROM_YXZ]


def _scaled(counts: np.ndarray, scale: float) -> np.ndarray:
    """g, rounded to three decimals as the format description (and ActiLife's export) does."""
    return np.round(counts / scale, 3).astype(np.float32)


class _LogReader:
    """The records of one ``log.bin``: framing, checksums, parameters, metadata and samples.

    The walk from one record to the next is sequential by nature (each header gives the next
    one's offset), but it only follows precomputed integer links: headers, sizes and checksums
    of every candidate record are computed with numpy over the whole buffer, and payloads are
    decoded in bulk, one array operation per record type and size.
    """

    def __init__(self, path: Path, data: bytes, rate_hz: float, default_scale: float) -> None:
        self.path, self.rate, self.scale = path, rate_hz, default_scale
        self.data, self.buffer = memoryview(data), np.frombuffer(data, dtype=np.uint8)
        self.bytes_skipped = 0
        self.idle_seconds_filled = 0
        self.metadata_fields: list[str] = []
        self.starts = self._frame()

    def _frame(self) -> np.ndarray:
        """Byte offsets of the records, in file order."""
        buffer, length = self.buffer, len(self.buffer)
        if length == 0:
            raise ReadError(f"{self.path.name}: log.bin is empty: the device recorded nothing")
        candidates = np.flatnonzero(buffer == RECORD_SEPARATOR)
        candidates = candidates[candidates + _HEADER_BYTES <= length]
        sizes = buffer[candidates + 6].astype(np.int64) | (buffer[candidates + 7].astype(np.int64) << 8)
        ends = candidates + _HEADER_BYTES + sizes + 1
        fits = ends <= length
        # XOR of a whole record is 0xFF; a running XOR over the buffer gives every candidate's at once.
        running = np.bitwise_xor.accumulate(buffer)
        before = np.where(candidates > 0, running[np.maximum(candidates - 1, 0)], 0)
        valid = fits & ((running[np.minimum(ends, length) - 1] ^ before) == 0xFF)
        # Links to the record that starts exactly where each one ends (zero padding is handled in the walk).
        following = np.minimum(np.searchsorted(candidates, ends), len(candidates) - 1)
        links = np.where(fits & (candidates[following] == ends), following, -1).tolist()

        valid_positions = candidates[valid]
        if buffer[0] != RECORD_SEPARATOR:
            raise ReadError(f"{self.path.name}: not a .gt3x log: log.bin does not start with a record separator "
                            f"(0x1E), it starts with {bytes(buffer[:8])!r}")
        order, index = [], 0
        while index >= 0:
            following = links[index]
            if valid[index] or (following >= 0 and valid[following]):
                # A record whose checksum fails is kept (as a corrupt second) only when the next
                # record starts where its size says, so its header, at least, is sound.
                order.append(index)
                index = following if following >= 0 else self._resume(int(ends[index]), candidates, valid_positions)
                continue
            resumed = self._resume(int(candidates[index]), candidates, valid_positions)
            if resumed < 0 and not fits[index]:
                raise ReadError(f"{self.path.name}: truncated .gt3x file: the last record of log.bin (at byte "
                                f"{candidates[index]}) declares {sizes[index]} payload bytes and a checksum, "
                                f"{length - candidates[index] - _HEADER_BYTES} bytes follow its header; copy the "
                                "file from the device again")
            index = resumed

        order = np.asarray(order, dtype=np.int64)
        self.sizes, self.valid = sizes[order], valid[order]
        starts = candidates[order]
        self.types = buffer[starts + 1]
        self.stamps = self._stamps(starts)
        return starts

    def _resume(self, position: int, candidates: np.ndarray, valid_positions: np.ndarray) -> int:
        """Where the walk goes on from byte ``position`` when no record follows there: the next
        record whose checksum holds, past zero padding (which the format allows) or damaged bytes
        (skipped and counted). ``-1`` at the end of the log."""
        resume = int(np.searchsorted(valid_positions, position))
        stop = int(valid_positions[resume]) if resume < len(valid_positions) else len(self.buffer)
        if self.buffer[position:stop].any():
            self.bytes_skipped += stop - position
        return int(np.searchsorted(candidates, stop)) if resume < len(valid_positions) else -1

    def _stamps(self, starts: np.ndarray) -> np.ndarray:
        """Each record's 4-byte little-endian timestamp (seconds on the device's local clock)."""
        stamp_bytes = self.buffer[starts[:, None] + 2 + np.arange(4)].astype(np.int64)
        return stamp_bytes[:, 0] | stamp_bytes[:, 1] << 8 | stamp_bytes[:, 2] << 16 | stamp_bytes[:, 3] << 24

    def _payloads(self, records: np.ndarray, size: int) -> np.ndarray:
        """``(len(records), size)`` uint8: the payloads of records of one size.

        Joining slices of the buffer copies each payload once; a fancy index would first build an
        int64 index per byte (8 times the payloads' size) and gather through it, 20 times slower.
        """
        offsets = (self.starts[records] + _HEADER_BYTES).tolist()
        joined = b"".join([self.data[offset:offset + size] for offset in offsets])
        return np.frombuffer(joined, dtype=np.uint8).reshape(len(offsets), size)

    def _read_parameters_and_metadata(self) -> None:
        for record in np.flatnonzero(self.valid & (self.types == PARAMETERS)):
            pairs = self._payloads(np.array([record]), int(self.sizes[record]) // 8 * 8)[0].view("<u4").reshape(-1, 2)
            for key, value in zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True):
                if (key & 0xFFFF, key >> 16) == _ACCEL_SCALE_KEY and value:
                    self.scale = _decode_parameter_float(value)
        for record in np.flatnonzero(self.valid & (self.types == METADATA)):
            text = bytes(self._payloads(np.array([record]), int(self.sizes[record]))[0]).decode("utf-8", "replace")
            try:
                content = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(content, dict):
                # "SubjectName" -> "Subject Name", "DOB" stays: the identifier check reads field names.
                self.metadata_fields += [re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key) for key, value in content.items()
                                         if value not in (None, "", 0) and key != "MetadataType"]

    def samples(self) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """Local-clock ns per sample, ``(n, 3)`` float32 g, and the row ranges of corrupt records."""
        self._read_parameters_and_metadata()
        types, sizes = self.types, self.sizes
        activity = np.flatnonzero((types == ACTIVITY) | ((types == ACTIVITY2) & (sizes != 1)))
        packed = types[activity] == ACTIVITY
        valid = self.valid[activity]
        per_second = int(round(self.rate))
        counts = np.where(packed, sizes[activity] * 2 // 9, sizes[activity] // 6)
        counts = np.where(valid, np.minimum(counts, per_second), per_second)  # a corrupt second: NaN rows
        stamps = self.stamps[activity]
        sampled = valid & (counts > 0)
        # Idle sleep: the seconds up to the next record repeat the last sample (an empty record's own too).
        fill_start = np.where(counts > 0, stamps + 1, stamps)
        gaps = np.zeros(len(stamps), dtype=np.int64)  # nothing after the last record
        gaps[:-1] = np.maximum(stamps[1:] - fill_start[:-1], 0)
        gaps[~np.logical_or.accumulate(sampled)] = 0  # no sample yet to repeat
        fills = gaps * per_second
        self.idle_seconds_filled = int(gaps.sum())

        # Rows: per record, its samples, then its fill.
        lengths = np.stack([counts, fills], axis=1).ravel()
        bases = np.stack([stamps, fill_start], axis=1).ravel() * _NS_PER_S
        firsts = np.cumsum(lengths) - lengths
        total = int(lengths.sum())
        within = np.arange(total) - np.repeat(firsts, lengths)
        local_ns = np.repeat(bases, lengths) + sample_offsets_ns(within, self.rate)
        xyz = np.full((total, 3), np.nan, dtype=np.float32)
        sample_rows = firsts[0::2]
        for is_packed, size in {(bool(p), int(s)) for p, s in zip(packed[sampled], sizes[activity][sampled],
                                                                 strict=True)}:
            group = np.flatnonzero(sampled & (packed == is_packed) & (sizes[activity] == size))
            take = int(counts[group[0]])
            payloads = self._payloads(activity[group], size if is_packed else take * 6)  # whole samples only
            counts_in_group = (_unpack_12bit(payloads) if is_packed
                               else payloads.view("<i2").reshape(len(group), take, 3))
            rows = sample_rows[group][:, None] + np.arange(take)
            xyz[rows] = _scaled(counts_in_group[:, :take], self.scale)
        last_sample_row = np.maximum.accumulate(np.where(sampled, sample_rows + counts - 1, -1))
        fill_within = np.arange(fills.sum()) - np.repeat(np.cumsum(fills) - fills, fills)
        fill_rows = np.repeat(firsts[1::2], fills) + fill_within
        xyz[fill_rows] = xyz[np.repeat(last_sample_row, fills)]
        corrupt = [(int(sample_rows[i]), int(sample_rows[i] + counts[i])) for i in np.flatnonzero(~valid)]
        return local_ns, xyz, corrupt


def _decode_parameter_float(value: int) -> float:
    """A PARAMETERS float: 24-bit two's complement fraction of 2^23 and an 8-bit two's complement exponent."""
    exponent = (value >> 24) & 0xFF
    exponent -= (exponent & 0x80) << 1
    fraction = value & 0xFFFFFF
    fraction -= (fraction & 0x800000) << 1
    return fraction / float(1 << 23) * 2.0 ** exponent
