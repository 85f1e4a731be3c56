"""Formats real studies bring: high-rate CSV with text timestamps, vendor CSV exports with a
header block (ActiLife, GENEActiv), and ActiGraph ``.gt3x`` (both layouts), end to end.

The ActiGraph recordings and ActiLife's CSV export of one of them are real files from
``../shared/data/devices`` (see tests/conftest.py). GENEActiv CSV files and the damaged or
idle-sleep ``.gt3x`` files are written here, following the vendors' published layouts.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ConfigError, FileFormat, SourceConfig, load_study
from pipelines.ingest.readers import READERS, ReadError, read_raw
from pipelines.ingest.readers.actigraph import ACTIVITY, ACTIVITY2, PARAMETERS, _decode_parameter_float, _unpack_12bit
from validation.batches import normalise_field
from validation.schemas import DIRECT_IDENTIFIER_PATTERN

ACCEL = ["accel_x_g", "accel_y_g", "accel_z_g"]
# The recording's info.txt: TimeZone -06:00:00 on 2021-12-20, Central Standard Time.
NEO_ZONE = "America/Chicago"
TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000


def accel_source(file_format: str, rate_hz: float = 30, timezone: str = NEO_ZONE, **extra) -> SourceConfig:
    return SourceConfig(kind="accelerometry", pattern=f"raw/accel/*.{file_format}", format=file_format,
                        sampling_rate_hz=rate_hz, timezone=timezone, **extra)


def identifier_fields(source_fields: list[str]) -> list[str]:
    """The fields the direct-identifier check refuses (the suite's own pattern and normalisation)."""
    import re

    return [name for name in source_fields if re.match(DIRECT_IDENTIFIER_PATTERN, normalise_field(name))]


# --- high-rate CSV with text timestamps ----------------------------------------------------------------


def write_signal_csv(path: Path, times: list[str]) -> Path:
    frame = pd.DataFrame({"time": times, "x": 0.01, "y": -0.02, "z": 0.98})
    frame.to_csv(path, index=False)
    return path


def csv_source(**extra) -> SourceConfig:
    return SourceConfig(kind="accelerometry", pattern="raw/accel/*.csv", format="csv", sampling_rate_hz=50,
                        columns={"timestamp": "time", "accel_x_g": "x", "accel_y_g": "y", "accel_z_g": "z"}, **extra)


def test_iso_times_with_offsets_come_out_in_utc(tmp_path: Path) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", ["2024-03-04T10:00:00.000+01:00", "2024-03-04T10:00:00.020+01:00",
                                                     "2024-03-04T09:00:00.040Z"])
    frame = read_raw(path, csv_source(timezone="Asia/Tokyo")).frame  # the zone is for naive times only

    expected = pd.Timestamp("2024-03-04T09:00:00Z") + pd.to_timedelta([0, 20, 40], unit="ms")
    assert list(frame["timestamp"]) == list(expected)


def test_naive_iso_times_are_in_the_source_zone(tmp_path: Path) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", ["2024-07-01 12:00:00.000", "2024-07-01 12:00:00.020"])
    frame = read_raw(path, csv_source(timezone="Europe/Berlin")).frame  # UTC+2 in summer

    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-07-01T10:00:00Z")
    assert frame["timestamp"].iloc[1] - frame["timestamp"].iloc[0] == pd.Timedelta(milliseconds=20)


@pytest.mark.parametrize(("time_format", "cells"), [
    ("%d.%m.%Y %H:%M:%S.%f", ["01.07.2024 12:00:00.000", "01.07.2024 12:00:00.02", "01.07.2024 12:00:00.040"]),
    ("%m/%d/%Y %H:%M:%S:%f", ["7/1/2024 12:00:00:000", "7/1/2024 12:00:00:020", "7/1/2024 12:00:00:040"]),
    ("%Y-%m-%d %H:%M:%S,%f", ["2024-07-01 12:00:00,000000", "2024-07-01 12:00:00,020000", "2024-07-01 12:00:00,04"]),
])
def test_vendor_text_times_parse_with_their_format(tmp_path: Path, time_format: str, cells: list[str]) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", cells)
    frame = read_raw(path, csv_source(timezone="Europe/London", timestamp_encoding="text",
                                      timestamp_format=time_format)).frame

    expected = pd.Timestamp("2024-07-01T11:00:00Z") + pd.to_timedelta([0, 20, 40], unit="ms")
    assert list(frame["timestamp"]) == list(expected)


def test_vendor_text_times_with_an_offset_ignore_the_source_zone(tmp_path: Path) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", ["2024-07-01 12:00:00+0100", "2024-07-01 12:00:01+0100"])
    frame = read_raw(path, csv_source(timezone="Asia/Tokyo", timestamp_encoding="text",
                                      timestamp_format="%Y-%m-%d %H:%M:%S%z")).frame
    assert list(frame["timestamp"]) == [pd.Timestamp("2024-07-01T11:00:00Z"), pd.Timestamp("2024-07-01T11:00:01Z")]


def test_a_time_that_does_not_match_the_format_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", ["01.07.2024 12:00:00.000", "2024-07-01 12:00:00.020",
                                                     "01.07.2024 12:00:00.040"])
    with pytest.raises(ReadError) as excinfo:
        read_raw(path, csv_source(timestamp_encoding="text", timestamp_format="%d.%m.%Y %H:%M:%S.%f"))

    message = str(excinfo.value)
    assert message.startswith("S0001.csv: data row 2 (line 3)")
    assert "'2024-07-01 12:00:00.020' does not match" in message and "%d.%m.%Y %H:%M:%S.%f" in message


def test_an_iso_time_that_does_not_parse_names_its_line(tmp_path: Path) -> None:
    path = write_signal_csv(tmp_path / "S0001.csv", ["2024-07-01T12:00:00Z", "2024-07-01T12:00:00.02Z", "soon",
                                                     "2024-07-01T12:00:00.06Z"])
    with pytest.raises(ReadError, match=r"S0001.csv: data row 3 \(line 4\): timestamp 'soon' is not an ISO-8601"):
        read_raw(path, csv_source())


def test_a_naive_time_skipped_by_daylight_saving_is_refused_with_its_line(tmp_path: Path) -> None:
    # Clocks in Berlin went from 02:00 to 03:00 on 2024-03-31: 02:30 never happened there.
    path = write_signal_csv(tmp_path / "S0001.csv", ["2024-03-31 01:59:59.980", "2024-03-31 02:30:00.000"])
    with pytest.raises(ReadError, match=r"S0001.csv: data row 2 \(line 3\): naive time 2024-03-31 02:30:00 is skipped"):
        read_raw(path, csv_source(timezone="Europe/Berlin"))


def test_text_encoding_and_its_format_go_together() -> None:
    with pytest.raises(ValueError, match="timestamp_encoding text and timestamp_format go together"):
        csv_source(timestamp_encoding="text")
    with pytest.raises(ValueError, match="timestamp_encoding text and timestamp_format go together"):
        csv_source(timestamp_format="%Y")
    with pytest.raises(ValueError, match="timestamp_encoding text is for high-rate signals"):
        SourceConfig(kind="vitals", pattern="raw/v/*.csv", format="csv", timestamp_encoding="text",
                     timestamp_format="%Y-%m-%d %H:%M")


def test_a_vendor_preset_refuses_hand_written_column_options() -> None:
    with pytest.raises(ValueError, match="format 'actilife_csv' reads its own columns, units and timestamps; "
                                         "remove columns, units"):
        accel_source("actilife_csv", columns={"accel_x_g": "X"}, units={"acceleration": "m/s^2"})


def test_every_file_format_has_a_reader() -> None:
    tables = {FileFormat.CSV, FileFormat.PARQUET}
    assert set(FileFormat) - tables == set(READERS)


# --- ActiLife raw CSV and .gt3x on the same recording -------------------------------------------------


@pytest.fixture(scope="module")
def neo(devices_dir: Path):
    """The real NEO recording read as .gt3x and as ActiLife's CSV export of it."""
    gt3x = read_raw(devices_dir / "actigraph_neo.gt3x", accel_source("gt3x"))
    actilife = read_raw(devices_dir / "actigraph_neo_actilife_export.csv", accel_source("actilife_csv"))
    return gt3x, actilife


def test_gt3x_and_its_actilife_export_give_the_same_samples_and_times(neo) -> None:
    gt3x, actilife = neo
    assert len(gt3x.frame) == len(actilife.frame) == 18_004  # activity.bin: 81,018 bytes * 8 / 36 bits
    # ActiLife prints three decimals; the reader rounds counts / 341 to three decimals too: equal, sample by sample.
    np.testing.assert_array_equal(gt3x.frame[ACCEL].to_numpy(), actilife.frame[ACCEL].to_numpy())
    assert (gt3x.frame["timestamp"] == actilife.frame["timestamp"]).all()


def test_the_recording_starts_at_its_local_start_time_converted_to_utc(neo) -> None:
    gt3x, actilife = neo
    # info.txt: Start Date 637755981000000000 ticks = 2021-12-20 11:55:00 on a clock at UTC-06:00.
    for raw in (gt3x, actilife):
        assert raw.frame["timestamp"].iloc[0] == pd.Timestamp("2021-12-20T17:55:00Z")
        assert raw.frame["timestamp"].iloc[30] == pd.Timestamp("2021-12-20T17:55:01Z")
        assert raw.sampling_rate_hz == 30
        assert raw.metadata["device_serial"] == "NEO1C04110003"
    assert gt3x.metadata["layout"] == "activity.bin (NHANES)"
    assert gt3x.frame[ACCEL].iloc[0].tolist() == pytest.approx([-0.015, 0.029, -1.006])


def test_a_subject_name_that_is_the_device_serial_is_no_identifier(neo) -> None:
    gt3x, actilife = neo
    assert identifier_fields(gt3x.source_fields) == []
    assert identifier_fields(actilife.source_fields) == []


def test_actilife_export_with_a_timestamp_column_reads_the_same(devices_dir: Path, tmp_path: Path, neo) -> None:
    lines = (devices_dir / "actigraph_neo_actilife_export.csv").read_text().splitlines()
    _, actilife = neo
    stamps = (actilife.frame["timestamp"].iloc[:300].dt.tz_convert(NEO_ZONE).dt.tz_localize(None)
              .dt.strftime("%-m/%d/%Y %H:%M:%S.%f").str[:-3])
    rows = [f"{stamp},{row}" for stamp, row in zip(stamps, lines[11:311], strict=True)]
    path = tmp_path / "S0001_timestamped.csv"
    path.write_text("\n".join([*lines[:10], "Timestamp," + lines[10], *rows]) + "\n")

    frame = read_raw(path, accel_source("actilife_csv")).frame

    # ActiLife prints times to the millisecond: 1/30 s comes out as .033, .067, ...
    pd.testing.assert_frame_equal(frame[ACCEL], actilife.frame[ACCEL].iloc[:300])
    assert (frame["timestamp"] - actilife.frame["timestamp"].iloc[:300]).abs().max() < pd.Timedelta(milliseconds=1)
    assert frame["timestamp"].iloc[1] == pd.Timestamp("2021-12-20T17:55:00.033Z")


def test_actilife_export_without_column_names_reads_the_same(devices_dir: Path, tmp_path: Path, neo) -> None:
    lines = (devices_dir / "actigraph_neo_actilife_export.csv").read_text().splitlines()
    path = tmp_path / "S0001_bare.csv"
    path.write_text("\n".join(lines[:10] + lines[11:111]) + "\n")

    frame = read_raw(path, accel_source("actilife_csv")).frame

    pd.testing.assert_frame_equal(frame, neo[1].frame.iloc[:100])


def test_actilife_date_format_of_the_header_is_followed(devices_dir: Path, tmp_path: Path, neo) -> None:
    lines = (devices_dir / "actigraph_neo_actilife_export.csv").read_text().splitlines()[:111]
    lines[0] = lines[0].replace("date format M/d/yyyy", "date format dd.MM.yyyy")
    lines[3] = "Start Date 20.12.2021"
    path = tmp_path / "S0001_european.csv"
    path.write_text("\n".join(lines) + "\n")

    frame = read_raw(path, accel_source("actilife_csv")).frame

    pd.testing.assert_frame_equal(frame, neo[1].frame.iloc[:100])


@pytest.mark.parametrize(("change", "reason"), [
    (lambda lines: ["Some other export", *lines[1:]], "not an ActiLife CSV export: the first line should read"),
    (lambda lines: [lines[0], lines[1], *lines[3:]], "truncated ActiLife CSV header: missing Start Time"),
    (lambda lines: [line.replace("Epoch Period (hh:mm:ss) 00:00:00", "Epoch Period (hh:mm:ss) 00:01:00")
                    for line in lines], "an ActiLife epoch export (epoch 00:01:00) holds activity counts"),
])
def test_a_damaged_actilife_header_is_refused_with_its_reason(devices_dir: Path, tmp_path: Path, change,
                                                             reason) -> None:
    lines = (devices_dir / "actigraph_neo_actilife_export.csv").read_text().splitlines()[:40]
    path = tmp_path / "S0001_export.csv"
    path.write_text("\n".join(change(lines)) + "\n")
    with pytest.raises(ReadError) as excinfo:
        read_raw(path, accel_source("actilife_csv"))
    assert str(excinfo.value).startswith("S0001_export.csv: ")
    assert reason in str(excinfo.value)


# --- GENEActiv CSV --------------------------------------------------------------------------------------


def write_geneactiv_csv(path: Path, date_of_birth: str = "", subject_code: str = "S0001", seconds: int = 4,
                        rate_hz: int = 50, start: str = "2024-07-01 09:00:00", time_zone: str = "GMT +02:00") -> Path:
    """A GENEActiv PC software raw-data CSV: key,value header lines (padded to 100), then rows."""
    header = [
        "Device Identity", "Device Unique Serial Code,034512", "Device Type,GENEActiv", "Device Model,1.2",
        "Device Firmware Version,GENEActiv 1.2 Firmware Version rel 3.2", "Calibration Date,2023-02-01 10:00:00:000",
        "Device Location Code,left wrist", f"Time Zone,{time_zone}", "Configuration Info",
        f"Measurement Frequency,{rate_hz} Hz", "Measurement Period,168 Hours", f"Start Time,{start}:000",
        "Study Centre,Site A", "Study Code,TRIAL-7", "Investigator ID,", "Exercise Type,", "Config Operator ID,",
        "Config Time,2024-07-01 08:50:00:000", "Config Notes,", "Extract Operator ID,", "Extract Time,",
        "Extract Notes,", "Subject Info", f"Subject Code,{subject_code}", f"Date of Birth,{date_of_birth}",
        "Sex,female", "Height,", "Weight,", "Handedness Code,", "Subject Notes,", "Calibration Data",
        "x gain,25548", "x offset,-2505", "y gain,25798", "y offset,-1261", "z gain,25457", "z offset,-2565",
        "Volts,300", "Lux,800", "Memory Status", "Number of Pages,120",
    ]
    header += [""] * (100 - len(header))
    times = pd.Timestamp(start) + pd.to_timedelta(np.arange(seconds * rate_hz) * 1000 // rate_hz, unit="ms")
    rng = np.random.default_rng(3)
    rows = [f"{t:%Y-%m-%d %H:%M:%S}:{t.microsecond // 1000:03d},{x:.4f},{y:.4f},{z:.4f},12,0,24.5"
            for t, x, y, z in zip(times, rng.normal(0, 0.02, len(times)), rng.normal(0, 0.02, len(times)),
                                  rng.normal(1, 0.02, len(times)), strict=True)]
    path.write_text("\n".join(header + rows) + "\n")
    return path


GENEACTIV_PARIS = accel_source("geneactiv_csv", rate_hz=50, timezone="Europe/Paris")


def test_geneactiv_csv_reads_samples_temperature_and_device_local_time(tmp_path: Path) -> None:
    path = write_geneactiv_csv(tmp_path / "S0001_wrist.csv")
    raw = read_raw(path, GENEACTIV_PARIS)

    assert len(raw.frame) == 200
    assert raw.frame["timestamp"].iloc[0] == pd.Timestamp("2024-07-01T07:00:00Z")  # Paris is UTC+2 in July
    assert raw.frame["timestamp"].iloc[1] - raw.frame["timestamp"].iloc[0] == pd.Timedelta(milliseconds=20)
    assert raw.frame["temperature_deg_c"].eq(24.5).all()
    assert raw.frame["accel_z_g"].mean() == pytest.approx(1, abs=0.01)
    assert raw.sampling_rate_hz == 50 and raw.metadata["device_serial"] == "034512"
    assert raw.subject_id == "S0001"


def test_geneactiv_date_of_birth_is_caught_as_an_identifier_when_set(tmp_path: Path) -> None:
    unset = read_raw(write_geneactiv_csv(tmp_path / "S0001_a.csv", date_of_birth="1900-01-01"),
                     GENEACTIV_PARIS)
    empty = read_raw(write_geneactiv_csv(tmp_path / "S0001_b.csv"), GENEACTIV_PARIS)
    born = read_raw(write_geneactiv_csv(tmp_path / "S0001_c.csv", date_of_birth="1957-03-14"),
                    GENEACTIV_PARIS)

    assert identifier_fields(unset.source_fields) == identifier_fields(empty.source_fields) == []
    assert identifier_fields(born.source_fields) == ["Date of Birth"]
    assert len(born.frame) == 200  # the reader reads; the check refuses the file


def test_geneactiv_csv_without_its_header_block_is_refused(tmp_path: Path) -> None:
    good = write_geneactiv_csv(tmp_path / "S0001_good.csv")
    lines = good.read_text().splitlines()
    no_rate = tmp_path / "S0001_no_rate.csv"
    no_rate.write_text("\n".join(line for line in lines if not line.startswith("Measurement Frequency")) + "\n")
    not_geneactiv = tmp_path / "S0001_plain.csv"
    not_geneactiv.write_text("\n".join(lines[100:]) + "\n")
    header_only = tmp_path / "S0001_header.csv"
    header_only.write_text("\n".join(lines[:100]) + "\n")
    epochs = tmp_path / "S0001_epochs.csv"
    epochs.write_text("\n".join(lines[:100] + [row + ",1.02,0.01,0.01,0.01,800" for row in lines[100:]]) + "\n")

    source = GENEACTIV_PARIS
    with pytest.raises(ReadError, match="S0001_no_rate.csv: the GENEActiv header has no 'Measurement Frequency'"):
        read_raw(no_rate, source)
    with pytest.raises(ReadError, match="S0001_plain.csv: not a GENEActiv CSV export"):
        read_raw(not_geneactiv, source)
    with pytest.raises(ReadError, match="S0001_header.csv: no GENEActiv data rows"):
        read_raw(header_only, source)
    with pytest.raises(ReadError, match="S0001_epochs.csv: GENEActiv raw-data rows have 7 columns .* line 101 has 12: "
                                        "an epoch summary export"):
        read_raw(epochs, source)


# --- .gt3x: log.bin layout --------------------------------------------------------------------------------


def test_the_gt9x_link_recording_reads_with_idle_sleep_filled(devices_dir: Path) -> None:
    raw = read_raw(devices_dir / "actigraph_small.gt3x", accel_source("gt3x", timezone="America/Chicago"))
    frame = raw.frame

    assert raw.metadata["layout"] == "log.bin" and raw.metadata["accel_scale_counts_per_g"] == "256.0"
    # 27,009 one-second ACTIVITY2 records of 30 samples, and 21,918 idle seconds repeated by ActiLife's rule.
    assert len(frame) == (27_009 + 21_918) * 30
    assert raw.metadata["idle_sleep_seconds_filled"] == "21918"
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].diff().max() <= pd.Timedelta(milliseconds=34)
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2019-05-06T16:38:38Z")  # 11:38:38 at UTC-05:00
    assert not frame[ACCEL].isna().any().any()
    magnitude = np.sqrt((frame[ACCEL].to_numpy(np.float64) ** 2).sum(axis=1))
    assert np.median(magnitude) == pytest.approx(1, abs=0.05)


def test_the_gt9x_subject_name_and_birth_date_are_caught_as_identifiers(devices_dir: Path) -> None:
    raw = read_raw(devices_dir / "actigraph_small.gt3x", accel_source("gt3x", timezone="America/Chicago"))
    # info.txt "Subject Name: PULSE-PHPF-001"; the first METADATA record holds SubjectName and DOB.
    assert set(identifier_fields(raw.source_fields)) == {"Subject Name", "DOB"}


def test_packed_12_bit_samples_decode_as_the_format_description_shows() -> None:
    # ActiGraph's worked example (GT3X-File-Format, LogRecords/Activity.md), counts before scaling.
    packed = np.frombuffer(bytes.fromhex("00 60 08 EB D0 07 00 9E BF 00 70 08 EB F0"), dtype=np.uint8)
    counts = _unpack_12bit(packed[None, :])[0]
    assert counts.tolist() == [[8, 6, -323], [9, 7, -321], [8, 7, -321]]  # X, Y, Z (stored Y, X, Z)


def test_parameter_floats_decode_as_the_format_description_shows() -> None:
    assert _decode_parameter_float(0x09400000) == 256.0  # ACCEL_SCALE 256 LSB/g (LogRecords/Parameters.md)
    assert _decode_parameter_float(0x0C400000) == 2048.0  # IMU_ACCEL_SCALE
    assert _decode_parameter_float(0) == 0.0


def log_record(record_type: int, stamp: int, payload: bytes, damage: bool = False) -> bytes:
    header = struct.pack("<BBIH", 0x1E, record_type, stamp, len(payload))
    checksum = 0
    for byte in header + payload:
        checksum ^= byte
    return header + payload + bytes([(~checksum & 0xFF) ^ (1 if damage else 0)])


def second_of_samples(value_counts: tuple[int, int, int], rate_hz: int = 4) -> bytes:
    return np.tile(np.array(value_counts, dtype="<i2"), rate_hz).tobytes()


def write_gt3x(path: Path, records: bytes, info: dict[str, str] | None = None) -> Path:
    start = 1_719_824_400  # 2024-07-01 09:00:00 on the device clock
    fields = {"Serial Number": "MOS2E27180012", "Device Type": "wGT3XBT", "Sample Rate": "4",
              "Start Date": str(TICKS_AT_UNIX_EPOCH + start * 10_000_000), "TimeZone": "02:00:00",
              "Subject Name": "", **(info or {})}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("info.txt", "\n".join(f"{key}: {value}" for key, value in fields.items()))
        archive.writestr("log.bin", records)
    return path


START = 1_719_824_400
PARAMETERS_256 = log_record(PARAMETERS, START, struct.pack("<HHI", 0, 55, 0x09400000))


def test_idle_sleep_seconds_repeat_the_last_sample(tmp_path: Path) -> None:
    records = PARAMETERS_256 + b"".join([
        log_record(ACTIVITY2, START, second_of_samples((256, 0, 0))),
        log_record(ACTIVITY2, START + 1, second_of_samples((0, 256, 0))),
        b"\x00\x00\x00",  # zero bytes between records occur and mean nothing
        log_record(ACTIVITY2, START + 4, second_of_samples((0, 0, 256))),  # seconds 2 and 3: idle sleep
        log_record(ACTIVITY2, START + 5, b""),  # an empty record: an idle second too
        log_record(ACTIVITY2, START + 6, second_of_samples((0, 0, -256))),
        log_record(ACTIVITY2, START + 6, b"\x01"),  # a USB connection event, not samples
    ])
    raw = read_raw(write_gt3x(tmp_path / "S0001.gt3x", records), accel_source("gt3x", 4, timezone="Europe/Paris"))
    frame = raw.frame

    assert len(frame) == 7 * 4
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-07-01T07:00:00Z")
    assert (frame["timestamp"].diff().iloc[1:] == pd.Timedelta(milliseconds=250)).all()
    seconds = frame[ACCEL].to_numpy().reshape(7, 4, 3)[:, 0, :]
    assert seconds.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, -1]]
    assert raw.metadata["idle_sleep_seconds_filled"] == "3"
    assert raw.metadata["log_bytes_skipped"] == "0"


def test_packed_activity_records_read_in_g_at_the_serials_scale(tmp_path: Path) -> None:
    # The worked example's three samples as one second at 3 Hz, from a NEO device: 341 counts per g.
    example = bytes.fromhex("00 60 08 EB D0 07 00 9E BF 00 70 08 EB F0")
    records = log_record(ACTIVITY, START, example) + log_record(ACTIVITY, START + 1, example)
    path = write_gt3x(tmp_path / "S0001.gt3x", records, {"Serial Number": "NEO1F16120039", "Sample Rate": "3"})
    raw = read_raw(path, accel_source("gt3x", 3, timezone="Europe/Paris"))

    assert raw.metadata["accel_scale_counts_per_g"] == "341.0"
    np.testing.assert_allclose(raw.frame[ACCEL].iloc[:3].to_numpy(),
                               [[0.023, 0.018, -0.947], [0.026, 0.021, -0.941], [0.023, 0.021, -0.941]], atol=1e-6)
    assert len(raw.frame) == 6


def test_a_record_with_a_bad_checksum_is_missing_not_zero(tmp_path: Path) -> None:
    records = PARAMETERS_256 + b"".join([
        log_record(ACTIVITY2, START, second_of_samples((256, 0, 0))),
        log_record(ACTIVITY2, START + 1, second_of_samples((0, 256, 0)), damage=True),
        log_record(ACTIVITY2, START + 2, second_of_samples((0, 0, 256))),
    ])
    raw = read_raw(write_gt3x(tmp_path / "S0001.gt3x", records), accel_source("gt3x", 4, timezone="Europe/Paris"))

    assert len(raw.frame) == 12
    assert raw.corrupt_blocks == [(4, 8)]
    assert raw.frame[ACCEL].iloc[4:8].isna().all().all()
    assert raw.frame[ACCEL].iloc[[0, 8]].to_numpy().tolist() == [[1, 0, 0], [0, 0, 1]]


def test_bytes_that_frame_no_record_are_skipped_and_counted(tmp_path: Path) -> None:
    records = PARAMETERS_256 + b"".join([
        log_record(ACTIVITY2, START, second_of_samples((256, 0, 0))),
        b"\x1e\x07garbage",
        log_record(ACTIVITY2, START + 1, second_of_samples((0, 0, 256))),
    ])
    raw = read_raw(write_gt3x(tmp_path / "S0001.gt3x", records), accel_source("gt3x", 4, timezone="Europe/Paris"))
    assert len(raw.frame) == 8 and raw.metadata["log_bytes_skipped"] == "9"


def test_a_subject_name_in_info_txt_is_caught_as_an_identifier(tmp_path: Path) -> None:
    records = PARAMETERS_256 + log_record(ACTIVITY2, START, second_of_samples((256, 0, 0)))
    path = write_gt3x(tmp_path / "S0001.gt3x", records, {"Subject Name": "Jane Roe"})
    raw = read_raw(path, accel_source("gt3x", 4, timezone="Europe/Paris"))
    assert identifier_fields(raw.source_fields) == ["Subject Name"]


@pytest.mark.parametrize(("content", "reason"), [
    (b"%PDF-1.7 not a recording", r"not a \.gt3x file: a \.gt3x file is a zip archive"),
    ("zip without info", r"not a \.gt3x file: the zip archive holds no info\.txt"),
    ("cut zip", r"truncated \.gt3x file: the zip archive ends before its directory"),
    ("cut log", r"truncated \.gt3x file: the last record of log\.bin \(at byte 17\) declares 24 payload bytes "
                r"and a checksum, 10 bytes follow its header"),
    ("no samples", r"not a \.gt3x file with samples: the archive holds neither log\.bin nor activity\.bin"),
])
def test_a_file_that_is_not_a_whole_gt3x_is_refused_with_a_true_reason(tmp_path: Path, content, reason) -> None:
    path = tmp_path / "S0001.gt3x"
    records = PARAMETERS_256 + log_record(ACTIVITY2, START, second_of_samples((256, 0, 0)))
    if content == "zip without info":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("log.bin", records)
    elif content == "cut zip":
        whole = write_gt3x(tmp_path / "whole.gt3x", records).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif content == "cut log":
        write_gt3x(path, records[:-15])
    elif content == "no samples":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("info.txt", "Sample Rate: 4\nStart Date: 638554212000000000\n")
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(content)
    with pytest.raises(ReadError, match=rf"^S0001\.gt3x: {reason}"):
        read_raw(path, accel_source("gt3x", 4, timezone="Europe/Paris"))


def test_a_device_clock_in_another_zone_than_the_source_is_refused(tmp_path: Path) -> None:
    records = PARAMETERS_256 + log_record(ACTIVITY2, START, second_of_samples((256, 0, 0)))
    path = write_gt3x(tmp_path / "S0001.gt3x", records)  # TimeZone 02:00:00
    with pytest.raises(ReadError, match=r"S0001.gt3x: the device clock was set to UTC\+02:00 \(info.txt TimeZone "
                                        r"02:00:00\), but the source's timezone America/New_York is UTC-05:00 or "
                                        r"UTC-04:00 around the recording"):
        read_raw(path, accel_source("gt3x", 4, timezone="America/New_York"))


def test_a_device_set_up_in_winter_keeps_its_winter_offset_in_summer(tmp_path: Path) -> None:
    records = PARAMETERS_256 + log_record(ACTIVITY2, START, second_of_samples((256, 0, 0)))
    path = write_gt3x(tmp_path / "S0001.gt3x", records, {"TimeZone": "01:00:00"})  # CET, worn in July
    frame = read_raw(path, accel_source("gt3x", 4, timezone="Europe/Paris")).frame
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-07-01T08:00:00Z")  # 09:00 on a clock at UTC+01:00


def test_a_geneactiv_time_zone_that_the_source_zone_never_uses_is_refused(tmp_path: Path) -> None:
    path = write_geneactiv_csv(tmp_path / "S0001_wrist.csv", time_zone="GMT +05:30")
    with pytest.raises(ReadError, match=r"S0001_wrist.csv: the device clock was set to UTC\+05:30 \(header Time Zone "
                                        r"GMT \+05:30\), but the source's timezone Europe/Paris is UTC\+01:00 or "
                                        r"UTC\+02:00"):
        read_raw(path, GENEACTIV_PARIS)


# --- a study declares them and ingests them ------------------------------------------------------------------


def source_yaml(name: str, pattern: str, file_format: str, extra: str = "timezone: America/Chicago") -> str:
    """One accelerometry source at 30 Hz, as a study team appends it to study.yaml's sources."""
    return f"""
  {name}:
    kind: accelerometry
    pattern: {pattern}
    format: {file_format}
    sampling_rate_hz: 30
    {extra}
"""


def test_a_study_with_vendor_formats_curates_them_and_quarantines_identifiers(tmp_path: Path,
                                                                             devices_dir: Path) -> None:
    from pipelines.ingest.lake import read_subject
    from pipelines.ingest.run import ingest_study
    from tests.pipelines.conftest import make_study

    study = make_study(tmp_path / "study", n_subjects=4)
    root = tmp_path / "study" / "raw"
    for folder in ("gt3x", "actilife", "geneactiv"):
        (root / folder).mkdir()
    (root / "gt3x" / "S0001_neo.gt3x").write_bytes((devices_dir / "actigraph_neo.gt3x").read_bytes())
    records = PARAMETERS_256 + b"".join(log_record(ACTIVITY2, START + i, second_of_samples((0, 0, 256), 30))
                                        for i in range(20))
    write_gt3x(root / "gt3x" / "S0004_named.gt3x", records, {"Subject Name": "Jane Roe", "Sample Rate": "30",
                                                              "TimeZone": "-05:00:00"})  # July: CDT
    (root / "actilife" / "S0002_neo.csv").write_bytes(
        (devices_dir / "actigraph_neo_actilife_export.csv").read_bytes())
    write_geneactiv_csv(root / "geneactiv" / "S0003_wrist.csv", subject_code="S0003", seconds=20, rate_hz=30,
                        start="2021-12-20 11:55:00", time_zone="GMT -06:00")
    study.write_text(study.read_text() + source_yaml("wrist_gt3x", "raw/gt3x/*.gt3x", "gt3x")
                     + source_yaml("wrist_actilife", "raw/actilife/*.csv", "actilife_csv")
                     + source_yaml("wrist_geneactiv", "raw/geneactiv/*.csv", "geneactiv_csv"))
    config = load_study(study)

    outcomes = {o.path: o for o in ingest_study(config, workers=1).outcomes}

    curated = {path: o.rows for path, o in outcomes.items() if o.status == "curated"}
    assert curated["raw/gt3x/S0001_neo.gt3x"] == curated["raw/actilife/S0002_neo.csv"] == 18_004
    assert curated["raw/geneactiv/S0003_wrist.csv"] == 600
    named = outcomes["raw/gt3x/S0004_named.gt3x"]
    assert named.status == "quarantined"
    assert "no_direct_identifiers" in named.reason and "(subject_name)" in named.reason
    from_gt3x = read_subject(config.lake_root, "wrist_gt3x", "S0001")
    from_csv = read_subject(config.lake_root, "wrist_actilife", "S0002")
    assert from_gt3x["timestamp"].equals(from_csv["timestamp"])
    assert from_gt3x["timestamp"].iloc[0] == pd.Timestamp("2021-12-20T17:55:00Z")
    assert read_subject(config.lake_root, "wrist_gt3x", "S0004") is None


def test_a_preset_with_column_options_is_a_configuration_error_naming_the_key(tmp_path: Path) -> None:
    from tests.pipelines.conftest import make_study

    study = make_study(tmp_path / "study", n_subjects=2)
    study.write_text(study.read_text() + source_yaml("wrist_actilife", "raw/actilife/*.csv", "actilife_csv",
                                                     "columns: {accel_x_g: X}"))
    with pytest.raises(ConfigError, match="sources.wrist_actilife: .*format 'actilife_csv' reads its own columns"):
        load_study(study)


def test_a_gt3x_with_a_corrupt_record_is_quarantined_by_the_corrupt_blocks_check(tmp_path: Path) -> None:
    from pipelines.ingest.run import ingest_study
    from tests.pipelines.conftest import make_study

    study = make_study(tmp_path / "study", n_subjects=2)
    (tmp_path / "study" / "raw" / "gt3x").mkdir()
    records = PARAMETERS_256 + b"".join(log_record(ACTIVITY2, START + i, second_of_samples((0, 0, 256), 30),
                                                   damage=i == 7) for i in range(20))
    write_gt3x(tmp_path / "study" / "raw" / "gt3x" / "S0001_wrist.gt3x", records,
               {"Sample Rate": "30", "TimeZone": "-05:00:00"})
    study.write_text(study.read_text() + source_yaml("wrist_gt3x", "raw/gt3x/*.gt3x", "gt3x"))

    outcome = {o.path: o for o in ingest_study(load_study(study), workers=1).outcomes}["raw/gt3x/S0001_wrist.gt3x"]

    assert outcome.status == "quarantined"
    assert "corrupt_blocks" in outcome.reason
    assert "1 device data block failed the checksum; their 30 samples are missing" in outcome.reason


def test_an_activity2_payload_with_a_partial_sample_keeps_its_whole_samples(tmp_path: Path) -> None:
    records = PARAMETERS_256 + log_record(ACTIVITY2, START, second_of_samples((256, 0, 0), 3) + b"\x01\x02\x03")
    raw = read_raw(write_gt3x(tmp_path / "S0001.gt3x", records, {"Sample Rate": "3"}),
                   accel_source("gt3x", 3, timezone="Europe/Paris"))
    assert raw.frame[ACCEL].to_numpy().tolist() == [[1, 0, 0]] * 3
