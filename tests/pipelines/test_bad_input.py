"""Bad input gets a clear, true reason and nothing of it is curated (issue 15).

Empty and header-only files of every tabular kind, files that are not of their declared format
(wrong magic) as distinct from truncated ones, device files with corrupted blocks, HL7 v2
messages without results, FHIR resources without a value and JSON nested past a bound: first
through the readers, then end to end through ``ingest_study``, where each such file is
quarantined with its report and a copy while the rest of the study is still curated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import FileFormat, SourceConfig, TableFile, load_study
from pipelines.ingest.readers import ReadError, read_raw
from pipelines.ingest.readers import labs as lab_readers
from pipelines.ingest.readers.devices import CWA_BLOCK_BYTES, cwa_corrupt_blocks
from pipelines.ingest.readers.labs import MAX_JSON_DEPTH, _json_depth
from pipelines.ingest.readers.tables import read_table
from tests.pipelines.conftest import make_study
from validation.report import ValidationReport
from validation.schemas import SourceKind

LAB_DATA = Path(__file__).resolve().parents[1] / "data" / "labs"
CWA_HEADER_BYTES = 1024  # the "MD" header block; data blocks ("AX", 512 bytes each) follow
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(range(256)) * 8
VITALS_HEADER = "charttime,hr,spo2,resp_rate,temp\n"


def vitals_source() -> SourceConfig:
    return SourceConfig(kind="vitals", pattern="raw/vitals/*.csv", format="csv",
                        subject_pattern=r"^(?P<subject_id>S\d{4})_",
                        columns={"timestamp": "charttime", "heart_rate_bpm": "hr", "spo2_percent": "spo2",
                                 "respiratory_rate_per_min": "resp_rate", "temperature_deg_c": "temp"})


def signal_source(file_format: str = "csv") -> SourceConfig:
    return SourceConfig(kind="accelerometry", pattern=f"raw/accel/*.{file_format}", format=file_format,
                        sampling_rate_hz=50, timestamp_encoding="unix_s",
                        columns={"timestamp": "time", "accel_x_g": "x", "accel_y_g": "y", "accel_z_g": "z"})


def lab_source(file_format: str) -> SourceConfig:
    return SourceConfig(kind="labs", pattern="raw/labs/*", format=file_format)


def device_source(file_format: str, rate_hz: float = 200) -> SourceConfig:
    return SourceConfig(kind="accelerometry", pattern=f"raw/device/*.{file_format}", format=file_format,
                        sampling_rate_hz=rate_hz)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def corrupt_cwa(original: Path, target: Path, blocks: list[int]) -> Path:
    """A copy of a real recording with a few payload bytes of each given data block flipped."""
    data = bytearray(original.read_bytes())
    for block in blocks:
        offset = CWA_HEADER_BYTES + block * CWA_BLOCK_BYTES + 100  # inside the samples, past the block header
        data[offset : offset + 8] = bytes(b ^ 0xFF for b in data[offset : offset + 8])
    return write(target, bytes(data))


# --- empty and header-only files of every kind -----------------------------------------------------

TABLES = {
    "subjects": (SourceKind.SUBJECTS, "subject_id,site_id,arm,sex,birth_year,enrollment_date\n"),
    "endpoints": (SourceKind.ENDPOINTS, "subject_id,index_time,endpoint,outcome\n"),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_header_only_table_is_refused_naming_the_file_and_header(tmp_path: Path, name: str) -> None:
    kind, header = TABLES[name]
    path = write(tmp_path / f"{name}.csv", header)
    with pytest.raises(ReadError, match=rf"{name}\.csv: no data rows below the header \(subject_id,"):
        read_table(path, TableFile(path=f"{name}.csv"), kind, FileFormat.CSV)


def test_header_only_vitals_csv_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_vitals.csv", VITALS_HEADER)
    with pytest.raises(ReadError, match=r"S0001_vitals\.csv: no data rows below the header \(charttime, hr, spo2"):
        read_raw(path, vitals_source())


def test_header_only_high_rate_csv_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_accel.csv", "time,x,y,z\n")
    with pytest.raises(ReadError, match=r"S0001_accel\.csv: no data rows"):
        read_raw(path, signal_source())


def test_header_only_lims_csv_is_refused(tmp_path: Path) -> None:
    header = (LAB_DATA / "lims_export.csv").read_text().splitlines()[0]
    path = write(tmp_path / "labs_2024-05.csv", header + "\n")
    with pytest.raises(ReadError, match=r"labs_2024-05\.csv: no result rows below the header \(subject_id,"):
        read_raw(path, lab_source("lims_csv"))


@pytest.mark.parametrize("source", ["table", "signal"])
def test_parquet_without_rows_is_refused(tmp_path: Path, source: str) -> None:
    path = tmp_path / "S0001_x.parquet"
    if source == "table":
        pq.write_table(pa.table({"charttime": pa.array([], pa.string()), "hr": pa.array([], pa.float64())}), path)
        with pytest.raises(ReadError, match=r"S0001_x\.parquet: no rows"):
            read_table(path, vitals_source(), SourceKind.VITALS, FileFormat.PARQUET)
    else:
        pq.write_table(pa.table({name: pa.array([], pa.float64()) for name in ("time", "x", "y", "z")}), path)
        with pytest.raises(ReadError, match=r"S0001_x\.parquet: no data rows"):
            read_raw(path, signal_source("parquet"))


EMPTY_FILES = {
    "vitals.csv": vitals_source(),
    "accel.csv": signal_source(),
    "accel.parquet": signal_source("parquet"),
    "labs.csv": lab_source("lims_csv"),
    "labs.hl7": lab_source("hl7v2"),
    "labs.json": lab_source("fhir"),
    "device.cwa": device_source("cwa"),
    "device.bin": device_source("bin", 100),
}


@pytest.mark.parametrize("name", sorted(EMPTY_FILES))
def test_zero_byte_file_of_every_format_is_refused_as_empty(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / f"S0001_{name}", b"")
    with pytest.raises(ReadError, match=rf"S0001_{name}: the file is empty \(0 bytes\)"):
        read_raw(path, EMPTY_FILES[name])


def test_zero_byte_enrollment_file_is_refused_as_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "subjects.csv", b"")
    with pytest.raises(ReadError, match=r"subjects\.csv: the file is empty"):
        read_table(path, TableFile(path="subjects.csv"), SourceKind.SUBJECTS, FileFormat.CSV)


# --- not of the declared format, as distinct from truncated ----------------------------------------

RANDOM = np.random.default_rng(15).bytes(4 * CWA_BLOCK_BYTES)


@pytest.mark.parametrize(("content", "looks_like"), [(RANDOM, ""), (PDF, "it looks like a PDF document")])
def test_cwa_that_is_not_an_axivity_file_says_so_not_truncated(tmp_path: Path, content: bytes, looks_like: str) -> None:
    path = write(tmp_path / "S0001_wrist.cwa", content)  # a whole number of blocks, or not: magic first
    with pytest.raises(ReadError) as excinfo:
        read_raw(path, device_source("cwa"))
    message = str(excinfo.value)
    assert message.startswith("S0001_wrist.cwa: not an Axivity .cwa file: it starts with ")
    assert message.endswith("not with the header block 'MD' (then data blocks 'AX'); check the file and the "
                            "source's format")
    assert "truncated" not in message and looks_like in message


def test_cwa_cut_short_is_still_truncated(devices_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_wrist.cwa", (devices_dir / "ax3_sample.cwa").read_bytes()[:70_000])
    with pytest.raises(ReadError, match=r"S0001_wrist\.cwa: truncated Axivity file"):
        read_raw(path, device_source("cwa"))


def test_bin_that_is_not_a_geneactiv_file_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_wrist.bin", PDF)
    with pytest.raises(ReadError, match=r"S0001_wrist\.bin: not a GENEActiv \.bin file: it starts with b'%PDF-1.7.*"
                                        r"\(it looks like a PDF document\), not with the text 'Device Identity'"):
        read_raw(path, device_source("bin", 100))


def test_parquet_that_is_not_parquet_differs_from_a_truncated_one(tmp_path: Path) -> None:
    text = write(tmp_path / "S0001_accel.parquet", "time,x,y,z\n1,0,0,1\n")
    with pytest.raises(ReadError, match=r"S0001_accel\.parquet: not a Parquet file: it starts with b'time', "
                                        r"not with 'PAR1' \(and ends with it\)"):
        read_raw(text, signal_source("parquet"))
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"time": [1.0, 2.0], "x": [0.0, 0.1], "y": [0.0, 0.0], "z": [1.0, 1.0]}), whole)
    cut = write(tmp_path / "S0002_accel.parquet", whole.read_bytes()[:-10])
    with pytest.raises(ReadError, match=r"S0002_accel\.parquet: truncated Parquet file"):
        read_raw(cut, signal_source("parquet"))


@pytest.mark.parametrize("source", [vitals_source(), lab_source("lims_csv"), lab_source("hl7v2")])
def test_binary_file_where_text_is_declared_is_refused_naming_what_it_looks_like(tmp_path: Path, source) -> None:
    path = write(tmp_path / "S0001_export.csv", PDF)
    with pytest.raises(ReadError, match=rf"S0001_export\.csv: not a {source.format.value} file: expected UTF-8 text, "
                                        r"found binary content \(it looks like a PDF document\)"):
        read_raw(path, source)


@pytest.mark.parametrize(("content", "cause"), [(RANDOM, "control bytes"), ("a,b\n1,2\n".encode("utf-16"), "UTF-16")])
def test_random_bytes_or_utf16_where_text_is_declared_are_refused(tmp_path: Path, content: bytes, cause: str) -> None:
    path = write(tmp_path / "S0001_vitals.csv", content)
    with pytest.raises(ReadError, match=rf"S0001_vitals\.csv: not a csv file: expected UTF-8 text, .*{cause}"):
        read_raw(path, vitals_source())


def test_a_stray_nul_byte_does_not_make_a_csv_binary(tmp_path: Path) -> None:
    rows = "".join(f"2024-03-04T{hour:02d}:00:00Z,{70 + hour},97,14,36.8\n" for hour in range(12))
    text = (VITALS_HEADER + rows).encode().replace(b"36.8\n", b"36.8\x00\n", 1)
    assert len(read_raw(write(tmp_path / "S0001_vitals.csv", text), vitals_source()).frame) == 12


# --- corrupted device blocks --------------------------------------------------------------------


def test_cwa_checksums_of_the_real_recordings_all_pass(devices_dir: Path) -> None:
    for name, blocks in (("ax3_sample.cwa", 490), ("ax6_sample.cwa", 259)):
        bad, total = cwa_corrupt_blocks(devices_dir / name)
        assert (bad.tolist(), total) == ([], blocks), name


def test_corrupt_cwa_blocks_are_missing_samples_never_zeros(devices_dir: Path, tmp_path: Path) -> None:
    original = read_raw(devices_dir / "ax3_sample.cwa", device_source("cwa")).frame
    path = corrupt_cwa(devices_dir / "ax3_sample.cwa", tmp_path / "S0001_wrist.cwa", [5, 9])

    raw = read_raw(path, device_source("cwa"))

    # 120 samples per AX3 block (packed): blocks 5 and 9 hold rows 600-719 and 1080-1199.
    assert raw.corrupt_blocks == [(600, 720), (1080, 1200)]
    assert raw.metadata["corrupt_blocks"] == "2"
    frame = raw.frame
    bad = np.zeros(len(frame), dtype=bool)
    bad[600:720] = bad[1080:1200] = True
    accel = frame[["accel_x_g", "accel_y_g", "accel_z_g"]].to_numpy()
    assert np.isnan(accel[bad]).all() and np.isnan(frame["temperature_deg_c"].to_numpy()[bad]).all()
    assert not (accel == 0).all(axis=1).any()  # SKDH gives zeros for a corrupt block
    np.testing.assert_array_equal(accel[~bad], original[["accel_x_g", "accel_y_g", "accel_z_g"]].to_numpy()[~bad])
    assert len(frame) == len(original) and frame["timestamp"].is_monotonic_increasing


def test_a_block_without_its_ax_mark_counts_as_corrupt(devices_dir: Path, tmp_path: Path) -> None:
    data = bytearray((devices_dir / "ax6_sample.cwa").read_bytes())
    data[CWA_HEADER_BYTES + 3 * CWA_BLOCK_BYTES] = ord("Z")
    bad, total = cwa_corrupt_blocks(write(tmp_path / "S0001.cwa", bytes(data)))
    assert bad.tolist() == [3] and total == 259


# --- lab messages without results, FHIR without a value, JSON past its bounds -----------------------


def test_hl7_message_cut_before_its_obx_segments_is_refused(tmp_path: Path) -> None:
    lines = (LAB_DATA / "oru_r01.hl7").read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    header = [line for line in lines if line[:3] in (b"MSH", b"PID", b"OBR")][:3]
    path = write(tmp_path / "results_cut.hl7", b"\r".join(header) + b"\r")
    with pytest.raises(ReadError, match=r"results_cut\.hl7: no numeric OBX result in 1 message \(line 1 on\); "
                                        r"is the message cut before its OBX segments\?"):
        read_raw(path, lab_source("hl7v2"))


def test_hl7_with_only_text_results_names_what_was_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "comments.hl7", "MSH|^~\\&|LAB|H|EHR|S|20240310103000||ORU^R01|1|P|2.5.1\r"
                                            "PID|1||S0001^^^STUDY\r"
                                            "OBX|1|ST|8251-1^Service comment^LN||haemolysed||||||F\r")
    with pytest.raises(ReadError, match=r"comments\.hl7: no numeric OBX result.*skipped: 1 OBX with value type ST"):
        read_raw(path, lab_source("hl7v2"))


OBSERVATION_WITHOUT_VALUE = {
    "resourceType": "Observation", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0", "display": "Creatinine"}]},
    "subject": {"reference": "Patient/S0001"}, "effectiveDateTime": "2024-04-02T09:00:00Z",
}


@pytest.mark.parametrize("wrapped", [False, True])
def test_fhir_observation_without_a_value_is_refused(tmp_path: Path, wrapped: bool) -> None:
    document = OBSERVATION_WITHOUT_VALUE
    if wrapped:
        document = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": document}]}
    path = write(tmp_path / "obs.json", json.dumps(document))
    with pytest.raises(ReadError, match=r"obs\.json: no Observation with a value \(valueQuantity\) among 1 "
                                        r"Observation in 1 entries; skipped: 1 Observation with no value"):
        read_raw(path, lab_source("fhir"))


def test_a_single_fhir_observation_with_a_value_is_read(tmp_path: Path) -> None:
    document = {**OBSERVATION_WITHOUT_VALUE, "valueQuantity": {"value": 0.9, "unit": "mg/dL", "code": "mg/dL"}}
    raw = read_raw(write(tmp_path / "obs.json", json.dumps(document)), lab_source("fhir"))
    assert raw.frame[["subject_id", "analyte", "value"]].values.tolist() == [["S0001", "creatinine", 0.9]]


def nested(depth: int) -> str:
    return '{"resourceType": "Bundle", "entry": [' + '{"a": [' * depth + "]}" * depth + "]}"


def test_json_nested_past_the_bound_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.json", nested(100_000))
    with pytest.raises(ReadError, match=rf"deep\.json: JSON nested 200002 levels deep, more than the {MAX_JSON_DEPTH}"):
        read_raw(path, lab_source("fhir"))


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert _json_depth(b'{"a": "[[[{{{\\"[[", "b": [1, {"c": []}]}') == 4
    assert _json_depth(nested(3).encode()) == 2 + 2 * 3


def test_json_larger_than_the_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_readers, "MAX_JSON_BYTES", 1000)
    path = write(tmp_path / "big.json", (LAB_DATA / "bundle.json").read_bytes())
    with pytest.raises(ReadError, match=r"big\.json: \d+ bytes is more than the 1000 bytes a FHIR JSON file may hold"):
        read_raw(path, lab_source("fhir"))


# --- end to end: quarantined with report and copy, the rest curated ---------------------------------

EXTRA_SOURCES = """
  vitals:
    kind: vitals
    pattern: raw/vitals/*.csv
    format: csv
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
    columns: {timestamp: charttime, heart_rate_bpm: hr, spo2_percent: spo2, respiratory_rate_per_min: resp_rate,
              temperature_deg_c: temp}
  labs_hl7:
    kind: labs
    pattern: raw/labs/*.hl7
    format: hl7v2
  labs_fhir:
    kind: labs
    pattern: raw/labs/*.json
    format: fhir
  axivity:
    kind: accelerometry
    pattern: raw/device/*.cwa
    format: cwa
    sampling_rate_hz: 200
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
  labs_lims:
    kind: labs
    pattern: raw/labs/*.csv
    format: lims_csv
  wrist:
    kind: accelerometry
    pattern: raw/accel/*
    format: parquet
    sampling_rate_hz: 50
    timestamp_encoding: unix_s
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
    columns: {timestamp: time, accel_x_g: x, accel_y_g: y, accel_z_g: z}
  lowback:
    kind: accelerometry
    pattern: raw/lowback/*.csv
    format: csv
    sampling_rate_hz: 50
    timestamp_encoding: unix_s
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
    columns: {timestamp: time, accel_x_g: x, accel_y_g: y, accel_z_g: z}
"""


def study_with_bad_files(root: Path, devices_dir: Path, corrupt_blocks: str) -> tuple[Path, dict[str, str]]:
    """The tiny study with one bad file of each kind beside its good minute files; bad file -> reason."""
    study = make_study(root)
    study.write_text(study.read_text() + EXTRA_SOURCES + f"checks: {{corrupt_blocks: {corrupt_blocks}}}\n")
    raw = root / "raw"
    write(raw / "vitals" / "S0001_vitals.csv", VITALS_HEADER)
    hl7 = (LAB_DATA / "oru_r01.hl7").read_bytes().replace(b"\n", b"\r").split(b"\r")
    write(raw / "labs" / "cut.hl7", b"\r".join(line for line in hl7[:3] if line) + b"\r")
    write(raw / "labs" / "no_value.json", json.dumps(OBSERVATION_WITHOUT_VALUE))
    write(raw / "labs" / "deep.json", nested(5_000))
    write(raw / "device" / "S0002_pdf.cwa", PDF)
    write(raw / "device" / "S0003_empty.cwa", b"")
    corrupt_cwa(devices_dir / "ax3_sample.cwa", raw / "device" / "S0001_wrist.cwa", [5, 9])
    write(raw / "labs" / "lims_2024-05.csv", (LAB_DATA / "lims_export.csv").read_text().splitlines()[0] + "\n")
    write(raw / "accel" / "S0002_wrist.parquet", "time,x,y,z\n1,0,0,1\n")
    write(raw / "lowback" / "S0003_lowback.csv", "time,x,y,z\n")
    reasons = {
        "raw/vitals/S0001_vitals.csv": "S0001_vitals.csv: no data rows below the header (charttime, hr",
        "raw/labs/cut.hl7": "cut.hl7: no numeric OBX result in 1 message",
        "raw/labs/no_value.json": "no_value.json: no Observation with a value (valueQuantity)",
        "raw/labs/deep.json": f"deep.json: JSON nested 10002 levels deep, more than the {MAX_JSON_DEPTH}",
        "raw/device/S0002_pdf.cwa": "S0002_pdf.cwa: not an Axivity .cwa file",
        "raw/device/S0003_empty.cwa": "S0003_empty.cwa: the file is empty (0 bytes)",
        "raw/labs/lims_2024-05.csv": "lims_2024-05.csv: no result rows below the header (subject_id,",
        "raw/accel/S0002_wrist.parquet": "S0002_wrist.parquet: not a Parquet file",
        "raw/lowback/S0003_lowback.csv": "S0003_lowback.csv: no data rows",
    }
    return study, reasons


def assert_quarantined(config, outcome, reason: str) -> ValidationReport:
    assert outcome.status == "quarantined", (outcome.path, outcome.reason)
    assert reason in outcome.reason
    report = ValidationReport.from_json((config.reports_root / f"{outcome.report_id}.json").read_text())
    assert report.rejected and report.file == outcome.path
    folder = config.quarantine_root / outcome.report_id
    assert (folder / Path(outcome.path).name).read_bytes() == (config.data_root / outcome.path).read_bytes()
    assert ValidationReport.from_json((folder / "report.json").read_text()).report_id == outcome.report_id
    assert outcome.path in (folder / "README.txt").read_text()
    return report


@pytest.fixture(scope="module")
def ingested_with_rejecting_blocks(tmp_path_factory, devices_dir: Path):
    from pipelines.ingest.run import ingest_study

    study, reasons = study_with_bad_files(tmp_path_factory.mktemp("bad"), devices_dir, "reject")
    config = load_study(study)
    summary = ingest_study(config, workers=1)
    return config, {o.path: o for o in summary.outcomes}, reasons


def test_every_bad_file_is_quarantined_with_its_reason_report_and_copy(ingested_with_rejecting_blocks) -> None:
    config, outcomes, reasons = ingested_with_rejecting_blocks
    for path, reason in reasons.items():
        report = assert_quarantined(config, outcomes[path], reason)
        assert report.outcome.value == "unreadable" and reason in report.read_error


def test_the_rest_of_the_study_is_still_curated(ingested_with_rejecting_blocks) -> None:
    config, outcomes, reasons = ingested_with_rejecting_blocks
    good = [o for p, o in outcomes.items() if p.startswith("raw/minute/") or p.endswith(("subjects.csv",
                                                                                          "endpoints.csv"))]
    assert len(good) == 6 and all(o.status == "curated" and o.rows > 0 for o in good), good
    quarantined = {p for p, o in outcomes.items() if o.status == "quarantined"}
    assert quarantined == set(reasons) | {"raw/device/S0001_wrist.cwa"}
    from pipelines.ingest.lake import read_subject

    assert read_subject(config.lake_root, "minute_wearable", "S0001") is not None
    for source in ("vitals", "axivity", "wrist", "lowback"):
        for subject in ("S0001", "S0002", "S0003"):
            assert read_subject(config.lake_root, source, subject) is None, (source, subject)


def test_corrupt_blocks_rejecting_names_blocks_and_seconds(ingested_with_rejecting_blocks) -> None:
    config, outcomes, _ = ingested_with_rejecting_blocks
    report = assert_quarantined(config, outcomes["raw/device/S0001_wrist.cwa"], "corrupt_blocks: ")
    failure = next(f for f in report.failures if f.check == "corrupt_blocks")
    assert failure.severity == "reject" and failure.unit_of_location == "seconds"
    assert failure.unexpected_count == len(failure.locations) >= 2  # 240 samples at 200 Hz touch 2 to 4 seconds
    assert failure.likely_cause.startswith("2 device data blocks failed the checksum; their 240 samples are missing")
    assert "corrupt_samples" in failure.expectation


def test_corrupt_blocks_set_to_warn_curate_the_file_with_its_samples_missing(tmp_path: Path, devices_dir: Path) -> None:
    from pipelines.ingest.lake import read_subject
    from pipelines.ingest.run import ingest_study

    study, _ = study_with_bad_files(tmp_path / "warn", devices_dir, "warn")
    config = load_study(study)
    outcomes = {o.path: o for o in ingest_study(config, workers=1).outcomes}
    outcome = outcomes["raw/device/S0001_wrist.cwa"]
    assert outcome.status == "curated" and outcome.rows == 58_800, outcome.reason
    report = ValidationReport.from_json((config.reports_root / f"{outcome.report_id}.json").read_text())
    assert report.outcome.value == "passed_with_warnings"
    assert [f.check for f in report.failures if f.severity == "warn"] == ["corrupt_blocks"]
    curated = read_subject(config.lake_root, "axivity", "S0001")
    assert len(curated) == 58_800
    accel = curated[["accel_x_g", "accel_y_g", "accel_z_g"]]
    assert accel.isna().all(axis=1).sum() == 240 and accel.iloc[600:720].isna().all().all()
    assert not (accel == 0).all(axis=1).any()  # SKDH's zeros never reach the lake


def test_a_bad_enrollment_file_is_a_configuration_error(tmp_path: Path) -> None:
    from pipelines.config import ConfigError
    from pipelines.ingest.run import ingest_study

    study = make_study(tmp_path / "tiny")
    write(tmp_path / "tiny" / "raw" / "subjects.csv", "subject_id,site,arm,sex,birth_year,enrolled_on\n")
    with pytest.raises(ConfigError, match=r"enrollment file cannot be read.*subjects\.csv: no data rows"):
        ingest_study(load_study(study), workers=1)
    assert pd.read_csv(tmp_path / "tiny" / "raw" / "endpoints.csv").shape[0] == 4  # nothing was touched


def test_a_header_only_endpoints_file_is_quarantined_and_the_rest_curated(tmp_path: Path) -> None:
    from pipelines.ingest.run import ingest_study

    study = make_study(tmp_path / "tiny", n_subjects=2)
    write(tmp_path / "tiny" / "raw" / "endpoints.csv", "subject_id,index_time,endpoint,outcome\n")
    config = load_study(study)
    outcomes = {o.path: o for o in ingest_study(config, workers=1).outcomes}
    assert_quarantined(config, outcomes["raw/endpoints.csv"],
                       "endpoints.csv: no data rows below the header (subject_id, index_time, endpoint, outcome)")
    assert [o.status for p, o in sorted(outcomes.items()) if p.startswith("raw/minute/")] == ["curated", "curated"]
    assert outcomes["raw/subjects.csv"].status == "curated"
