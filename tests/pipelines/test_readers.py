"""Readers on real device recordings (Axivity AX3/AX6, GENEActiv, an AX6 CSV export) and on small tables.

The recordings are SKDH's test data (MIT), read from ``../shared/data/devices`` (see tests/conftest.py).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FileFormat, SourceConfig, TableFile
from pipelines.ingest.readers import RawRead, ReadError, read_raw
from pipelines.ingest.readers.tables import read_table
from pipelines.ingest.units import STANDARD_GRAVITY_M_S2
from validation.schemas import SourceKind

ACCEL = ["accel_x_g", "accel_y_g", "accel_z_g"]
GYRO = ["gyro_x_deg_s", "gyro_y_deg_s", "gyro_z_deg_s"]
# pyarrow names the columns of a headerless CSV f0, f1, ... (ReadOptions(autogenerate_column_names=True)).
AX6_CSV_COLUMNS = {
    "timestamp": "f0",
    "accel_x_g": "f1",
    "accel_y_g": "f2",
    "accel_z_g": "f3",
    "gyro_x_deg_s": "f4",
    "gyro_y_deg_s": "f5",
    "gyro_z_deg_s": "f6",
}


def device_source(file_format: str, rate_hz: float, timezone: str = "UTC", **extra) -> SourceConfig:
    return SourceConfig(
        kind="accelerometry",
        pattern=f"raw/device/*.{file_format}",
        format=file_format,
        sampling_rate_hz=rate_hz,
        timezone=timezone,
        **extra,
    )


def ax6_csv_source(**extra) -> SourceConfig:
    return SourceConfig(
        kind="accelerometry",
        pattern="raw/accel/*.csv",
        format="csv",
        sampling_rate_hz=100,
        header=False,
        timestamp_encoding="unix_s",
        columns=AX6_CSV_COLUMNS,
        **extra,
    )


@dataclass(frozen=True)
class Recording:
    file: str
    file_format: str
    rate_hz: float
    samples: int
    duration_s: float
    gyro: bool
    temperature: bool


RECORDINGS = {
    "ax3": Recording("ax3_sample.cwa", "cwa", 200, 58_800, 298, gyro=False, temperature=True),
    "ax6": Recording("ax6_sample.cwa", "cwa", 100, 10_360, 105, gyro=True, temperature=True),
    "geneactiv": Recording("gnactv_sample.bin", "bin", 50, 900, 18, gyro=False, temperature=True),
    "ax6_csv": Recording("example_data_2min.csv", "csv", 100, 10_360, 104, gyro=True, temperature=False),
}


@pytest.fixture(scope="module")
def read_recording(devices_dir: Path):
    """Read each recording once per module, through ``read_raw`` as ingestion does."""
    cache: dict[str, RawRead] = {}

    def read(name: str) -> RawRead:
        if name not in cache:
            spec = RECORDINGS[name]
            source = ax6_csv_source() if spec.file_format == "csv" else device_source(spec.file_format, spec.rate_hz)
            cache[name] = read_raw(devices_dir / spec.file, source)
        return cache[name]

    return read


# --- real recordings -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_sample_count_and_reported_rate(read_recording, name: str) -> None:
    spec = RECORDINGS[name]
    raw = read_recording(name)
    assert len(raw.frame) == spec.samples
    assert raw.sampling_rate_hz == spec.rate_hz
    # The median step is the nominal period within the default sampling_rate_tolerance (5%).
    step_s = np.median(np.diff(raw.frame["timestamp"].array.asi8)) / 1e9
    assert step_s == pytest.approx(1 / spec.rate_hz, rel=0.05)  # the source default tolerance; the AX6 runs at ~98 Hz


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_timestamps_are_utc_and_strictly_increasing(read_recording, name: str) -> None:
    times = read_recording(name).frame["timestamp"]
    assert isinstance(times.dtype, pd.DatetimeTZDtype)
    assert str(times.dt.tz) == "UTC"
    assert not times.isna().any()
    assert (np.diff(times.array.asi8) > 0).all()
    assert times.iloc[0] > pd.Timestamp("2015-01-01", tz="UTC")  # not the 1970 of a zeroed clock


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_duration(read_recording, name: str) -> None:
    times = read_recording(name).frame["timestamp"]
    duration_s = (times.iloc[-1] - times.iloc[0]).total_seconds()
    assert duration_s == pytest.approx(RECORDINGS[name].duration_s, abs=1.5)


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_acceleration_magnitude_is_about_one_g(read_recording, name: str) -> None:
    frame = read_recording(name).frame
    magnitude = np.sqrt((frame[ACCEL].to_numpy(dtype=np.float64) ** 2).sum(axis=1))
    assert 0.5 < np.median(magnitude) < 1.5
    assert np.isfinite(magnitude).all()


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_gyroscope_only_where_the_device_has_one(read_recording, name: str) -> None:
    frame = read_recording(name).frame
    if RECORDINGS[name].gyro:
        assert set(GYRO) <= set(frame.columns)
        assert frame[GYRO].abs().to_numpy().max() > 1  # deg/s, not rad/s: real wrist motion exceeds 1 deg/s
    else:
        assert not set(GYRO) & set(frame.columns)


@pytest.mark.parametrize("name", [n for n, r in RECORDINGS.items() if r.temperature])
def test_temperature_is_plausible(read_recording, name: str) -> None:
    temperature = read_recording(name).frame["temperature_deg_c"]
    assert temperature.between(0, 50).all()


@pytest.mark.parametrize("name", ["ax3", "ax6", "geneactiv"])
def test_device_metadata_and_subject_from_the_file_name(read_recording, name: str) -> None:
    raw = read_recording(name)
    assert raw.subject_id == RECORDINGS[name].file.split("_")[0]  # default pattern: leading code
    assert raw.metadata["reader"] in ("skdh.io.ReadCwa", "skdh.io.ReadBin")
    assert "accel" in raw.source_fields


def test_headerless_csv_columns_are_named_f0_to_f6(read_recording) -> None:
    assert read_recording("ax6_csv").source_fields == [f"f{i}" for i in range(7)]


def test_cwa_and_its_csv_export_agree(devices_dir: Path, read_recording) -> None:
    # The AX6 clock keeps local time without a zone; the recording was made on 2019-10-29, two days
    # after British Summer Time ended (2019-10-27), so Europe/London was UTC+0 and local time equals
    # UTC. The CSV export holds UTC unix seconds, so the two agree when the CWA is read in London.
    cwa = read_raw(devices_dir / "ax6_sample.cwa", device_source("cwa", 100, timezone="Europe/London")).frame
    csv = read_recording("ax6_csv").frame

    assert len(cwa) == len(csv)
    assert cwa["timestamp"].iloc[0] == pd.Timestamp("2019-10-29T09:03:06.300Z")
    assert abs(cwa["timestamp"].iloc[0] - csv["timestamp"].iloc[0]) <= pd.Timedelta(milliseconds=1)
    assert (cwa["timestamp"] - csv["timestamp"]).abs().max() <= pd.Timedelta(milliseconds=1)
    np.testing.assert_allclose(csv[ACCEL].to_numpy(np.float64), cwa[ACCEL].to_numpy(np.float64), rtol=0, atol=1e-3)
    np.testing.assert_allclose(csv[GYRO].to_numpy(np.float64), cwa[GYRO].to_numpy(np.float64), rtol=0, atol=1e-2)


def test_device_timezone_moves_the_utc_times(devices_dir: Path) -> None:
    # Paris was UTC+1 on 2019-10-29: the same local clock reading is one hour earlier in UTC.
    london = read_raw(devices_dir / "ax6_sample.cwa", device_source("cwa", 100, timezone="Europe/London"))
    paris = read_raw(devices_dir / "ax6_sample.cwa", device_source("cwa", 100, timezone="Europe/Paris"))
    assert london.frame["timestamp"].iloc[0] - paris.frame["timestamp"].iloc[0] == pd.Timedelta(hours=1)


# --- truncated device files --------------------------------------------------------------------------


def test_truncated_cwa_names_the_file(devices_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "S0001_ax6.cwa"
    cut.write_bytes((devices_dir / "ax6_sample.cwa").read_bytes()[:80_000])
    with pytest.raises(ReadError, match="truncated") as excinfo:
        read_raw(cut, device_source("cwa", 100))
    assert "S0001_ax6.cwa" in str(excinfo.value)


@pytest.mark.parametrize("keep", ["half", "one byte short", "within the last page"])
def test_geneactiv_cut_inside_its_data_names_the_file(devices_dir: Path, tmp_path: Path, keep: str) -> None:
    data = (devices_dir / "gnactv_sample.bin").read_bytes()
    size = {"half": len(data) // 2, "one byte short": len(data) - 1, "within the last page": len(data) - 2000}[keep]
    cut = tmp_path / "S0001_wrist.bin"
    cut.write_bytes(data[:size])
    with pytest.raises(ReadError) as excinfo:
        read_raw(cut, device_source("bin", 50))
    assert "S0001_wrist.bin" in str(excinfo.value)


def _read_in_child(path: Path, source: SourceConfig, connection) -> None:
    try:
        raw = read_raw(path, source)
        first = raw.frame["timestamp"].iloc[0] if len(raw.frame) else None
        connection.send(("read", f"{len(raw.frame)} samples from {first}"))
    except ReadError as error:
        connection.send(("ReadError", str(error)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which fails the test
        connection.send(("other", f"{type(error).__name__}: {error}"))


def read_guarded(path: Path, source: SourceConfig, timeout_s: float = 2.0) -> tuple[str, str]:
    """``read_raw`` in a forked child, so a reader that hangs or crashes fails the test instead of the run."""
    parent, child = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=_read_in_child, args=(path, source, child))
    process.start()
    child.close()
    process.join(timeout_s)
    if process.is_alive():
        process.kill()
        process.join()
        return "hung", f"no answer after {timeout_s} s"
    if process.exitcode != 0:
        return "crashed", f"child process died with exit code {process.exitcode}"
    return parent.recv()


# Cut points inside the 1,375-byte text header of gnactv_sample.bin (its "Recorded Data" pages follow).
GENEACTIV_HEADER_CUTS = {
    "inside the calibration section": 1_100,
    "just before the memory status": 1_300,
    "after the header, before any page": 1_375,
}


@pytest.mark.parametrize("where", list(GENEACTIV_HEADER_CUTS))
def test_geneactiv_cut_inside_its_header_is_a_read_error(devices_dir: Path, tmp_path: Path, where: str) -> None:
    data = (devices_dir / "gnactv_sample.bin").read_bytes()
    assert data.index(b"Recorded Data") == 1_375  # the cut points above assume this header length
    cut = tmp_path / "S0002_wrist.bin"
    cut.write_bytes(data[: GENEACTIV_HEADER_CUTS[where]])

    outcome, detail = read_guarded(cut, device_source("bin", 50))

    assert outcome == "ReadError", f"a GENEActiv file cut {where} ({cut.stat().st_size} bytes): {outcome}, {detail}"
    assert "S0002_wrist.bin" in detail


# --- unit conversion ----------------------------------------------------------------------------------


def accel_csv(path: Path, x: list[float], temperature: list[float] | None = None) -> Path:
    frame = pd.DataFrame({"time": 1_700_000_000 + np.arange(len(x)) / 100, "ax": x, "ay": 0.0, "az": 0.0})
    if temperature is not None:
        frame["temp"] = temperature
    frame.to_csv(path, index=False)
    return path


def accel_source(units: dict[str, str]) -> SourceConfig:
    return SourceConfig(
        kind="accelerometry",
        pattern="raw/accel/*.csv",
        format="csv",
        sampling_rate_hz=100,
        timestamp_encoding="unix_s",
        units=units,
        columns={"timestamp": "time", "accel_x_g": "ax", "accel_y_g": "ay", "accel_z_g": "az",
                 "temperature_deg_c": "temp"},
    )


def test_acceleration_in_metres_per_second_squared_comes_out_in_g(tmp_path: Path) -> None:
    path = accel_csv(tmp_path / "S0001_accel.csv", [STANDARD_GRAVITY_M_S2, -2 * STANDARD_GRAVITY_M_S2, 0.0])
    frame = read_raw(path, accel_source({"acceleration": "m/s^2"})).frame
    np.testing.assert_allclose(frame["accel_x_g"], [1.0, -2.0, 0.0], rtol=1e-6, atol=1e-7)  # float32 signals


def test_acceleration_in_milli_g_comes_out_in_g(tmp_path: Path) -> None:
    path = accel_csv(tmp_path / "S0001_accel.csv", [1000.0, -250.0])
    frame = read_raw(path, accel_source({"acceleration": "mg"})).frame
    np.testing.assert_allclose(frame["accel_x_g"], [1.0, -0.25], rtol=1e-6)


def test_temperature_in_fahrenheit_comes_out_in_celsius(tmp_path: Path) -> None:
    path = accel_csv(tmp_path / "S0001_accel.csv", [1.0, 1.0], temperature=[86.0, 98.6])
    frame = read_raw(path, accel_source({"temperature": "degF"})).frame
    np.testing.assert_allclose(frame["temperature_deg_c"], [30.0, 37.0], rtol=1e-5)
    np.testing.assert_allclose(frame["accel_x_g"], [1.0, 1.0])  # acceleration untouched: already g


def test_vitals_temperature_in_fahrenheit_comes_out_in_celsius(tmp_path: Path) -> None:
    path = tmp_path / "S0001_vitals.csv"
    path.write_text("time,temp\n2024-01-01T00:00:00Z,98.6\n2024-01-01T01:00:00Z,100.4\n")
    source = SourceConfig(
        kind="vitals", pattern="raw/*.csv", format="csv", units={"temperature": "degF"},
        columns={"timestamp": "time", "temperature_deg_c": "temp"},
    )
    np.testing.assert_allclose(read_raw(path, source).frame["temperature_deg_c"], [37.0, 38.0], atol=1e-9)


def test_rr_intervals_in_seconds_come_out_in_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "S0001_rr.csv"
    path.write_text("time,rr\n2024-01-01T00:00:00.800Z,0.8\n2024-01-01T00:00:01.650Z,0.85\n")
    source = SourceConfig(
        kind="rr_intervals", pattern="raw/*.csv", format="csv", units={"rr_interval": "s"},
        columns={"timestamp": "time", "rr_interval_ms": "rr"},
    )
    np.testing.assert_allclose(read_raw(path, source).frame["rr_interval_ms"], [800.0, 850.0], atol=1e-9)


def test_unknown_unit_is_refused_with_the_accepted_ones_when_the_source_is_configured() -> None:
    # Refused at configuration time, before any file is read: a study with a unit the platform
    # cannot convert never starts ingesting.
    with pytest.raises(ValueError, match="accepted: g, mg, m/s\\^2, m/s2"):
        accel_source({"acceleration": "ft/s^2"})


# --- tabular reader -----------------------------------------------------------------------------------

VITALS_COLUMNS = {
    "timestamp": "charttime",
    "heart_rate_bpm": "hr",
    "spo2_percent": "spo2",
    "supplemental_oxygen": "on_oxygen",
    "consciousness_avpu": "avpu",
}


def vitals_source(timezone: str = "UTC", **extra) -> SourceConfig:
    return SourceConfig(
        kind="vitals",
        pattern="raw/vitals/*.csv",
        format="csv",
        timezone=timezone,
        subject_pattern=r"^(?P<subject_id>S\d{4})_",
        columns=VITALS_COLUMNS,
        **extra,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def test_column_mapping_and_subject_from_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "S0042_vitals.csv", """
charttime,hr,spo2,on_oxygen,avpu,ward_bed,notes
2024-01-01T08:00:00Z,72,98,0,a,12B,stable
2024-01-01T09:00:00Z,75,97,1,V,12B,
""")
    raw = read_raw(path, vitals_source())

    assert raw.subject_id == "S0042"
    assert list(raw.frame.columns) == [
        "subject_id", "timestamp", "heart_rate_bpm", "spo2_percent", "consciousness_avpu", "supplemental_oxygen",
    ]
    assert (raw.frame["subject_id"] == "S0042").all()
    assert raw.frame["heart_rate_bpm"].tolist() == [72.0, 75.0]
    assert raw.frame["consciousness_avpu"].tolist() == ["A", "V"]
    # Unknown columns are dropped from the frame but kept as source fields for the identifier check.
    assert "ward_bed" not in raw.frame and "notes" not in raw.frame
    assert raw.source_fields == ["charttime", "hr", "spo2", "on_oxygen", "avpu", "ward_bed", "notes"]
    assert raw.unparsable_cells.tolist() == [0, 0]


def test_iso_times_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", """
charttime,hr
2024-01-01T12:00:00+01:00,70
2024-01-01T12:00:00-0500,71
2024-01-01T12:00:00.250Z,72
2024-07-01T12:00:00+05:30,73
""")
    # The source zone applies only to naive times; these carry their own offsets.
    times = read_raw(path, vitals_source(timezone="America/New_York")).frame["timestamp"]
    assert str(times.dt.tz) == "UTC"
    assert times.tolist() == [
        pd.Timestamp("2024-01-01T11:00:00Z"),
        pd.Timestamp("2024-01-01T17:00:00Z"),
        pd.Timestamp("2024-01-01T12:00:00.250Z"),
        pd.Timestamp("2024-07-01T06:30:00Z"),
    ]


def test_naive_times_are_localised_in_the_source_zone(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", """
charttime,hr
2024-01-15 12:00:00,70
2024-07-15 12:00:00,71
""")
    times = read_raw(path, vitals_source(timezone="Europe/London")).frame["timestamp"]
    # GMT in January, BST (UTC+1) in July.
    assert times.tolist() == [pd.Timestamp("2024-01-15T12:00:00Z"), pd.Timestamp("2024-07-15T11:00:00Z")]


def test_naive_time_that_does_not_exist_in_the_zone_is_unparsable(tmp_path: Path) -> None:
    # British clocks jumped from 01:00 to 02:00 on 2024-03-31: 01:30 never happened in London.
    path = write(tmp_path / "S0001_vitals.csv", """
charttime,hr
2024-03-31 00:30:00,70
2024-03-31 01:30:00,71
2024-03-31 02:30:00,72
""")
    raw = read_raw(path, vitals_source(timezone="Europe/London"))
    times = raw.frame["timestamp"]
    assert times.iloc[0] == pd.Timestamp("2024-03-31T00:30:00Z")
    assert pd.isna(times.iloc[1])
    assert times.iloc[2] == pd.Timestamp("2024-03-31T01:30:00Z")
    assert raw.unparsable_cells.tolist() == [0, 1, 0]


def test_naive_time_that_is_ambiguous_in_the_zone_is_unparsable(tmp_path: Path) -> None:
    # British clocks went back from 02:00 to 01:00 on 2024-10-27: 01:30 happened twice.
    path = write(tmp_path / "S0001_vitals.csv", "charttime,hr\n2024-10-27 01:30:00,70\n2024-10-27 02:30:00,71\n")
    raw = read_raw(path, vitals_source(timezone="Europe/London"))
    assert pd.isna(raw.frame["timestamp"].iloc[0])
    assert raw.frame["timestamp"].iloc[1] == pd.Timestamp("2024-10-27T02:30:00Z")
    assert raw.unparsable_cells.tolist() == [1, 0]


def test_unix_ms_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_rr.csv", "time,rr_ms\n1709510400000,800\n1709510400800,810.5\nnot-a-time,820\n")
    source = SourceConfig(
        kind="rr_intervals", pattern="raw/rr/*.csv", format="csv", timestamp_encoding="unix_ms",
        columns={"timestamp": "time", "rr_interval_ms": "rr_ms"},
    )
    raw = read_raw(path, source)
    times = raw.frame["timestamp"]
    assert times.iloc[0] == pd.Timestamp("2024-03-04T00:00:00Z")
    assert times.iloc[1] == pd.Timestamp("2024-03-04T00:00:00.800Z")
    assert pd.isna(times.iloc[2])
    assert raw.unparsable_cells.tolist() == [0, 0, 1]


def test_unparsable_numeric_cells_are_missing_and_counted_per_row(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", """
charttime,hr,spo2,on_oxygen
2024-01-01T08:00:00Z,72,98,0
2024-01-01T09:00:00Z,abc,97,1
garbage,7O,ninety,maybe
2024-01-01T11:00:00Z,,,
""")
    raw = read_raw(path, vitals_source())
    assert raw.frame["heart_rate_bpm"].isna().tolist() == [False, True, True, True]
    assert raw.frame["spo2_percent"].isna().tolist() == [False, False, True, True]
    # Empty cells are missing, not unparsable; row 3 fails in four cells.
    assert raw.unparsable_cells.tolist() == [0, 1, 4, 0]


@pytest.mark.parametrize("hr_cells", [["72", "75"], ["72", "abc"], ["72.5", "abc"], ["72", ""]])
def test_canonical_float_columns_are_numpy_float_with_nan_for_bad_cells(tmp_path: Path, hr_cells: list[str]) -> None:
    # The schema types heart_rate_bpm as float; RawRead promises NaN for unparsable cells. The lake
    # writes whatever dtype arrives, so an Int64 here and a float64 in the next file would give
    # the same column two Parquet types.
    rows = "".join(f"2024-01-01T0{i}:00:00Z,{cell}\n" for i, cell in enumerate(hr_cells))
    path = write(tmp_path / "S0001_vitals.csv", "charttime,hr\n" + rows)
    values = read_raw(path, vitals_source()).frame["heart_rate_bpm"]
    assert values.dtype == np.float64, f"heart_rate_bpm from {hr_cells} is {values.dtype}"
    assert np.isnan(values.iloc[1]) == (hr_cells[1] in ("abc", ""))


def test_bool_cells_parse_from_0_1_yes_no(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", """
charttime,on_oxygen
2024-01-01T00:00:00Z,1
2024-01-01T01:00:00Z,0
2024-01-01T02:00:00Z,yes
2024-01-01T03:00:00Z,No
2024-01-01T04:00:00Z,TRUE
2024-01-01T05:00:00Z,n
2024-01-01T06:00:00Z,maybe
2024-01-01T07:00:00Z,
""")
    raw = read_raw(path, vitals_source())
    values = raw.frame["supplemental_oxygen"]
    assert str(values.dtype) == "boolean"
    assert values.iloc[:6].tolist() == [True, False, True, False, True, False]
    assert pd.isna(values.iloc[6]) and pd.isna(values.iloc[7])
    assert raw.unparsable_cells.tolist() == [0, 0, 0, 0, 0, 0, 1, 0]


def test_numeric_0_1_column_parses_as_bool(tmp_path: Path) -> None:
    # Arrow reads an all-digit column as int64; it must still become a boolean.
    path = write(tmp_path / "S0001_vitals.csv", "charttime,on_oxygen\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,0\n")
    values = read_raw(path, vitals_source()).frame["supplemental_oxygen"]
    assert values.tolist() == [True, False]


def test_subject_column_in_the_file_wins_over_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", "subject_id,charttime,hr\nS0007,2024-01-01T00:00:00Z,70\n")
    raw = read_raw(path, vitals_source())
    assert raw.frame["subject_id"].tolist() == ["S0007"]


def test_file_name_without_a_subject_gives_none(tmp_path: Path) -> None:
    path = write(tmp_path / "vitals_export.csv", "charttime,hr\n2024-01-01T00:00:00Z,70\n")
    raw = read_raw(path, vitals_source())
    assert raw.subject_id is None
    assert "subject_id" not in raw.frame


def test_subjects_derive_age_from_birth_year_and_drop_it(tmp_path: Path) -> None:
    path = write(tmp_path / "subjects.csv", """
subject_id,site,arm,sex,birth_year,enrolled_on,email
S0001,A,placebo,female,1960,2024-03-01,a@example.org
S0002,B,active,M,1985,2024-06-15,b@example.org
S0003,B,active,m,,2024-06-15,
""")
    spec = TableFile(path="raw/subjects.csv", columns={"site_id": "site", "enrollment_date": "enrolled_on"})
    raw = read_table(path, spec, SourceKind.SUBJECTS, FileFormat.CSV)
    frame = raw.frame

    assert "birth_year" not in frame
    assert "email" not in frame
    assert {"birth_year", "email"} <= set(raw.source_fields)
    assert frame["age_years"].iloc[:2].tolist() == [64.0, 39.0]
    assert np.isnan(frame["age_years"].iloc[2])
    assert frame["sex"].tolist() == ["F", "M", "M"]
    assert frame["site_id"].tolist() == ["A", "B", "B"]
    assert frame["enrollment_date"].iloc[0] == pd.Timestamp("2024-03-01T00:00:00Z")
    assert raw.unparsable_cells.tolist() == [0, 0, 0]


def test_subjects_height_in_centimetres_becomes_metres_and_a_bad_one_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "subjects.csv", """
subject_id,site,arm,sex,age,height_cm,enrolled_on
S0001,A,placebo,F,64,171.5,2024-03-01
S0002,B,active,M,39,tall,2024-06-15
S0003,B,active,M,40,,2024-06-15
""")
    spec = TableFile(path="raw/subjects.csv", columns={"site_id": "site", "enrollment_date": "enrolled_on"})
    raw = read_table(path, spec, SourceKind.SUBJECTS, FileFormat.CSV)
    assert "height_cm" not in raw.frame
    np.testing.assert_allclose(raw.frame["height_m"], [1.715, np.nan, np.nan])
    assert raw.unparsable_cells.tolist() == [0, 1, 0]  # "tall" is named by the column-types check; empty is missing


def test_malformed_csv_is_a_read_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", "charttime,hr\n2024-01-01T00:00:00Z,70,extra,cells\n")
    with pytest.raises(ReadError, match="S0001_vitals.csv"):
        read_raw(path, vitals_source())
