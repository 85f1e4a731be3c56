"""Lab readers (LIMS CSV, HL7 v2, FHIR) and the demo's lab writers, on small hand-written golden files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import FileFormat, SourceConfig
from pipelines.demo.lab_messages import write_fhir_bundle, write_hl7v2, write_lims_csv
from pipelines.ingest.readers.base import ReadError
from pipelines.ingest.readers.labs import READERS, read_fhir, read_hl7v2, read_lims_csv
from validation.analytes import ANALYTES, CANONICAL_UNIT_BY_ANALYTE, to_canonical
from validation.schemas import DIRECT_IDENTIFIER_PATTERN, SCHEMAS, SourceKind

DATA = Path(__file__).resolve().parents[1] / "data" / "labs"
LABS_COLUMNS = [c.name for c in SCHEMAS[SourceKind.LABS].columns]


def source(file_format: str, timezone: str = "UTC") -> SourceConfig:
    return SourceConfig(kind="labs", pattern="raw/labs/*", format=file_format, timezone=timezone)


def row(frame: pd.DataFrame, subject: str, analyte: str) -> pd.Series:
    match = frame[(frame["subject_id"] == subject) & (frame["analyte"] == analyte)]
    assert len(match) == 1, f"expected one {analyte} row for {subject}, found {len(match)}"
    return match.iloc[0]


def identifiers(fields: list[str]) -> set[str]:
    """The fields the ingest identifier check would reject."""
    import re

    def folded(name: str) -> str:
        return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")

    return {f for f in fields if re.match(DIRECT_IDENTIFIER_PATTERN, folded(f))}


def assert_canonical_types(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == LABS_COLUMNS
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    for column in ("value", "reference_low", "reference_high", "original_value"):
        assert frame[column].dtype == np.float64, column


# --- LIMS CSV -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lims():
    return read_lims_csv(DATA / "lims_export.csv", source("lims_csv", "Europe/London"))


def test_lims_converts_to_canonical_units_and_loinc(lims):
    frame = lims.frame
    assert_canonical_types(frame)
    creatinine = row(frame, "S0002", "creatinine")
    assert creatinine["value"] == pytest.approx(1.0)
    assert creatinine["unit"] == "mg/dL"
    assert creatinine["loinc_code"] == "2160-0"  # reported as 14682-9 in umol/L
    assert (creatinine["original_value"], creatinine["original_unit"]) == (88.42, "µmol/L")
    assert creatinine["reference_low"] == pytest.approx(62 / 88.42)
    glucose = row(frame, "S0001", "glucose")
    assert glucose["value"] == pytest.approx(100, abs=0.05)
    assert (glucose["unit"], glucose["loinc_code"]) == ("mg/dL", "2345-7")
    assert glucose["abnormal_flag"] == "H"  # the laboratory's flag is kept
    hemoglobin = row(frame, "S0001", "hemoglobin")
    assert (hemoglobin["value"], hemoglobin["unit"]) == (pytest.approx(13.5), "g/dL")
    assert (hemoglobin["reference_low"], hemoglobin["reference_high"]) == (pytest.approx(12.0), pytest.approx(16.0))
    assert hemoglobin["abnormal_flag"] == "N"  # computed: no flag in the file
    crp = row(frame, "S0001", "c_reactive_protein")
    assert np.isnan(crp["reference_low"]) and crp["reference_high"] == 5.0  # "<5"
    wbc = row(frame, "S0002", "white_blood_cells")
    assert (wbc["value"], wbc["unit"], wbc["original_unit"]) == (7.2, "10*3/uL", "x10E9/L")


def test_lims_timestamps_are_utc(lims):
    times = lims.frame.groupby("subject_id")["timestamp"].first()
    assert times["S0001"] == pd.Timestamp("2024-05-01T06:30:00Z")  # +02:00 in the file
    assert times["S0002"] == pd.Timestamp("2024-05-02T06:45:00Z")  # naive, Europe/London summer time


def test_lims_keeps_unaccepted_units_and_unknown_analytes_unconverted(lims):
    frame = lims.frame
    hemoglobin_mmol = frame[(frame["subject_id"] == "S0002") & (frame["analyte"] == "hemoglobin")].iloc[0]
    assert (hemoglobin_mmol["value"], hemoglobin_mmol["unit"]) == (8.4, "mmol/L")
    assert hemoglobin_mmol["unit"] != CANONICAL_UNIT_BY_ANALYTE["hemoglobin"]  # so the known-unit check fails
    ferritin = row(frame, "S0002", "Ferritin")
    assert (ferritin["value"], ferritin["unit"]) == (85.0, "ng/mL")
    assert "Ferritin" not in CANONICAL_UNIT_BY_ANALYTE
    assert len(frame) == 10  # nothing dropped
    assert "hemoglobin in mmol/L" in lims.metadata["unconverted_results"]


def test_lims_non_numeric_result_is_nan_and_counted(lims):
    assert np.isnan(row(lims.frame, "S0002", "alt")["value"])
    assert "line 11" in lims.metadata["non_numeric_results"]


def test_lims_source_fields_are_the_header(lims):
    assert lims.source_fields == ["subject_id", "specimen_id", "collected_at", "loinc_code", "test_name", "result",
                                  "units", "reference_range", "flag"]
    assert identifiers(lims.source_fields) == set()


def test_lims_missing_columns_are_left_out_not_an_error(tmp_path):
    path = tmp_path / "no_units.csv"
    path.write_text("subject_id,collected_at,loinc_code,test_name,result\n"
                    "S0001,2024-05-01T08:30:00Z,2160-0,Creatinine,1.1\n")
    read = read_lims_csv(path, source("lims_csv"))
    assert {"value", "unit", "original_unit"}.isdisjoint(read.frame.columns)
    assert read.frame["original_value"].tolist() == [1.1]
    assert read.metadata["missing_columns"] == "units"


def test_lims_identifier_header_is_reported(tmp_path):
    path = tmp_path / "leaky.csv"
    path.write_text("subject_id,Patient Name,collected_at,loinc_code,result,units\n"
                    "S0001,Jane Doe,2024-05-01,2160-0,1,mg/dL\n")
    assert identifiers(read_lims_csv(path, source("lims_csv")).source_fields) == {"Patient Name"}


def test_lims_untokenisable_csv_raises_read_error_naming_file_and_line(tmp_path):
    path = tmp_path / "labs_2024-05.csv"
    path.write_text(
        "subject_id,specimen_id,collected_at,loinc_code,test_name,result,units,reference_range,flag\n"
        "S0001,SP1,2024-05-01T08:30:00Z,2160-0,Creatinine,1.1,mg/dL,0.6-1.2,\n"
        "S0001,SP1,2024-05-01T08:30:00Z,2160-0,Creatinine,1,1,mg/dL,0.6-1.2,,\n"
    )
    with pytest.raises(ReadError, match=r"labs_2024-05\.csv.*line 3"):
        read_lims_csv(path, source("lims_csv"))


# --- HL7 v2 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hl7_read():
    return read_hl7v2(DATA / "oru_r01.hl7", source("hl7v2", "Europe/Berlin"))


def test_hl7_converts_umol_creatinine_and_mmol_glucose(hl7_read):
    frame = hl7_read.frame
    assert_canonical_types(frame)
    creatinine = row(frame, "S0003", "creatinine")
    assert (creatinine["value"], creatinine["unit"], creatinine["loinc_code"]) == (
        pytest.approx(97.3 / 88.42), "mg/dL", "2160-0")
    assert creatinine["abnormal_flag"] == "H"
    glucose = row(frame, "S0003", "glucose")
    assert glucose["value"] == pytest.approx(6.2 * 18.016)
    assert (glucose["unit"], glucose["loinc_code"]) == ("mg/dL", "2345-7")
    wbc = row(frame, "S0004", "white_blood_cells")
    assert (wbc["value"], wbc["original_unit"]) == (6.5, "10^9/L")  # OBX-6 written 10\S\9/L
    troponin = row(frame, "S0004", "troponin_t")
    assert np.isnan(troponin["reference_low"]) and troponin["reference_high"] == 14.0


def test_hl7_times_are_utc(hl7_read):
    times = hl7_read.frame.groupby("subject_id")["timestamp"].first()
    assert times["S0003"] == pd.Timestamp("2024-03-10T09:15:00Z")  # OBR-7 202403101015+0100
    assert times["S0004"] == pd.Timestamp("2024-03-11T07:30:00Z")  # naive OBR-7, Europe/Berlin winter time


def test_hl7_skips_non_numeric_observations_and_says_so(hl7_read):
    assert "1 OBX with value type ST" in hl7_read.metadata["skipped"]
    assert hl7_read.metadata["messages"] == "2"
    assert len(hl7_read.frame) == 7


def test_hl7_unknown_local_code_is_kept_unconverted(hl7_read):
    ferritin = row(hl7_read.frame, "S0004", "Ferritin")
    assert (ferritin["value"], ferritin["unit"]) == (85.0, "ng/mL")


def test_hl7_populated_pid_identifiers_are_reported(hl7_read):
    assert {"patient_name", "date_of_birth", "address"} <= identifiers(hl7_read.source_fields)
    assert "ssn" not in hl7_read.source_fields and "phone" not in hl7_read.source_fields  # PID-13, PID-19 empty
    assert {"subject_id", "observation", "result", "units"} <= set(hl7_read.source_fields)


def test_hl7_without_names_reports_no_identifier(tmp_path):
    lines = (DATA / "oru_r01.hl7").read_bytes().decode().replace("\r", "\n").splitlines()
    second = lines[lines.index(next(x for x in lines if "CH000872" in x)):]
    path = tmp_path / "clean.hl7"
    path.write_bytes("\r\n".join(second).encode())  # CRLF segments are tolerated too
    read = read_hl7v2(path, source("hl7v2"))
    assert identifiers(read.source_fields) == set()
    assert len(read.frame) == 4


def test_hl7_rejects_a_file_that_is_not_hl7(tmp_path):
    path = tmp_path / "results.hl7"
    path.write_text("subject_id,result\nS0001,1.0\n")
    with pytest.raises(ReadError, match=r"results\.hl7.*line 1.*not an HL7"):
        read_hl7v2(path, source("hl7v2"))


def test_hl7_rejects_a_corrupt_segment(tmp_path):
    path = tmp_path / "broken.hl7"
    path.write_bytes(b"MSH|^~\\&|LAB|X|||20240101||ORU^R01|1|P|2.5.1\rPID|1||S0001\rthis is not a segment\r")
    with pytest.raises(ReadError, match=r"broken\.hl7: line 3"):
        read_hl7v2(path, source("hl7v2"))


# --- FHIR -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_read():
    return read_fhir(DATA / "bundle.json", source("fhir", "Europe/Paris"))


def test_fhir_converts_to_canonical_units(fhir_read):
    frame = fhir_read.frame
    assert_canonical_types(frame)
    hemoglobin = row(frame, "S0005", "hemoglobin")
    assert (hemoglobin["value"], hemoglobin["unit"], hemoglobin["reference_high"]) == (
        pytest.approx(13.5), "g/dL", pytest.approx(15.5))
    crp = row(frame, "S0005", "c_reactive_protein")
    assert (crp["value"], crp["unit"], crp["reference_high"], crp["abnormal_flag"]) == (
        pytest.approx(12.0), "mg/L", pytest.approx(5.0), "H")
    creatinine = row(frame, "S0006", "creatinine")  # subject from subject.identifier, unit display "µmol/L"
    assert (creatinine["value"], creatinine["loinc_code"]) == (pytest.approx(1.0), "2160-0")
    glucose = row(frame, "S0007", "glucose")  # subject from a urn:uuid reference to an included Patient
    assert glucose["value"] == pytest.approx(100, abs=0.05)


def test_fhir_times_are_utc(fhir_read):
    frame = fhir_read.frame
    assert row(frame, "S0005", "creatinine")["timestamp"] == pd.Timestamp("2024-04-02T14:00:00Z")  # -05:00
    assert row(frame, "S0006", "creatinine")["timestamp"] == pd.Timestamp("2024-04-03T05:15:00Z")  # naive, Paris


def test_fhir_skips_other_values_and_errors(fhir_read):
    assert len(fhir_read.frame) == 5
    assert "valueString" in fhir_read.metadata["skipped"]
    assert "entered-in-error" in fhir_read.metadata["skipped"]


def test_fhir_subject_display_and_patient_are_identifiers(fhir_read):
    assert {"patient_name", "date_of_birth"} <= identifiers(fhir_read.source_fields)


def test_fhir_subject_display_alone_is_an_identifier(tmp_path):
    bundle = (
        '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Observation",'
        ' "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},'
        ' "subject": {"reference": "Patient/S0001", "display": "Jane Doe"},'
        ' "effectiveDateTime": "2024-01-01T00:00:00Z", "valueQuantity": {"value": 1.0, "unit": "mg/dL"}}}]}'
    )
    path = tmp_path / "one.json"
    path.write_text(bundle)
    assert identifiers(read_fhir(path, source("fhir")).source_fields) == {"patient_name"}
    path.write_text(bundle.replace(', "display": "Jane Doe"', ""))
    assert identifiers(read_fhir(path, source("fhir")).source_fields) == set()


def test_fhir_truncated_json_raises_read_error_naming_file_and_line(tmp_path):
    path = tmp_path / "bundle_2024-04.json"
    text = (DATA / "bundle.json").read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ReadError, match=r"bundle_2024-04\.json: not valid JSON at line \d+"):
        read_fhir(path, source("fhir"))


def test_fhir_rejects_a_resource_that_is_not_a_bundle(tmp_path):
    path = tmp_path / "patient.json"
    path.write_text('{"resourceType": "Patient", "id": "S0001"}')
    with pytest.raises(ReadError, match=r"patient\.json: expected a FHIR R4 Bundle, found 'Patient'"):
        read_fhir(path, source("fhir"))


# --- writers and round trips ----------------------------------------------------------------------


@pytest.fixture
def reported() -> pd.DataFrame:
    """Results as a laboratory reports them, in mixed units."""
    t = pd.Timestamp("2024-05-01T08:30:00Z")
    return pd.DataFrame({
        "subject_id": ["S0002", "S0001", "S0001", "S0001", "S0002", "S0002"],
        "timestamp": [t + pd.Timedelta(days=1), t, t, t, t + pd.Timedelta(days=1), t + pd.Timedelta(days=1)],
        "loinc_code": ["718-7", "14682-9", "15074-8", "6690-2", "1988-5", "59260-0"],
        "analyte": ["hemoglobin", "creatinine", "glucose", "white_blood_cells", "c_reactive_protein", "hemoglobin"],
        "value": [135.0, 88.4, 5.55, 7.1, 12.0, 8.4],
        "unit": ["g/L", "umol/L", "mmol/L", "10^9/L", "mg/L", "mmol/L"],
        "reference_low": [120.0, 62.0, 3.9, 4.0, np.nan, 7.5],
        "reference_high": [160.0, 106.0, 5.5, 11.0, 5.0, 10.0],
        "abnormal_flag": [None, None, "H", "N", "H", None],
    })


@pytest.mark.parametrize(
    ("write", "read", "file_format", "name"),
    [
        (write_lims_csv, read_lims_csv, "lims_csv", "labs.csv"),
        (lambda frame, path: write_hl7v2(frame, path, sending_facility="CITY|HOSP"), read_hl7v2, "hl7v2", "labs.hl7"),
        (write_fhir_bundle, read_fhir, "fhir", "labs.json"),
    ],
)
def test_round_trip_gives_the_canonical_values(tmp_path, reported, write, read, file_format, name):
    path = tmp_path / name
    write(reported, path)
    first = path.read_bytes()
    write(reported, path)
    assert path.read_bytes() == first, "writers must be deterministic"
    assert [p.name for p in tmp_path.iterdir()] == [name], "no temporary file may be left behind"

    frame = read(path, source(file_format)).frame
    assert_canonical_types(frame)
    expected = reported.sort_values(["subject_id", "timestamp"], kind="stable").reset_index(drop=True)
    assert frame["subject_id"].tolist() == expected["subject_id"].tolist()
    assert (frame["timestamp"] == expected["timestamp"]).all()
    for got, (_, want) in zip(frame.itertuples(index=False), expected.iterrows(), strict=True):
        analyte = ANALYTES[want["analyte"]]
        canonical = to_canonical(analyte, want["value"], want["unit"])
        if canonical is None:  # hemoglobin in mmol/L: kept unconverted
            assert (got.analyte, got.value, got.unit, got.loinc_code) == ("hemoglobin", 8.4, "mmol/L", "59260-0")
            continue
        assert (got.analyte, got.unit, got.loinc_code) == (analyte.name, analyte.unit, analyte.loinc_code)
        assert got.value == pytest.approx(canonical)
        assert (got.original_value, got.original_unit) == (want["value"], want["unit"])
        want_high = to_canonical(analyte, want["reference_high"], want["unit"])
        assert got.reference_high == pytest.approx(want_high)
        if pd.isna(want["reference_low"]):
            assert np.isnan(got.reference_low)
        else:
            assert got.reference_low == pytest.approx(to_canonical(analyte, want["reference_low"], want["unit"]))
        assert got.abnormal_flag == (want["abnormal_flag"] or "N")


def test_writers_accept_a_frame_without_optional_columns(tmp_path, reported):
    bare = reported.drop(columns=["reference_low", "reference_high", "abnormal_flag"])
    write_hl7v2(bare, tmp_path / "bare.hl7", sending_facility="LAB")
    frame = read_hl7v2(tmp_path / "bare.hl7", source("hl7v2")).frame
    creatinine = row(frame, "S0001", "creatinine")
    assert (creatinine["reference_low"], creatinine["reference_high"]) == ANALYTES["creatinine"].reference_range


def test_hl7_message_header_is_deterministic(tmp_path, reported):
    write_hl7v2(reported, tmp_path / "labs.hl7", sending_facility="CITYHOSP")
    headers = [s for s in (tmp_path / "labs.hl7").read_bytes().decode().split("\r") if s.startswith("MSH")]
    assert headers[0].split("|")[6] == "20240501083000+0000"  # MSH-7: the collection time, not the clock
    assert [h.split("|")[9] for h in headers] == ["MSG000001", "MSG000002"]


def test_readers_registry_covers_the_lab_formats():
    assert READERS == {FileFormat.LIMS_CSV: read_lims_csv, FileFormat.HL7V2: read_hl7v2, FileFormat.FHIR: read_fhir}
