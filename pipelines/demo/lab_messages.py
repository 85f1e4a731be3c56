"""Writers of laboratory results in the three formats the lab readers take, for the demo study.

Each writer takes a long frame of results *as reported* (one row per subject, analyte and
collection time) with columns ``subject_id``, ``timestamp`` (UTC), ``loinc_code``, ``analyte``,
``value``, ``unit`` and optionally ``reference_low``, ``reference_high``, ``abnormal_flag``,
and writes the values and units exactly as given (creatinine 88.4 umol/L under LOINC 14682-9
stays so), so the readers' unit conversion is exercised on real message layouts.

Files are written atomically (a temporary file in the same folder, then ``os.replace``) and
deterministically: no wall-clock time, random id or host name enters the content, so the same
frame always gives the same bytes and the same SHA-256 in the catalog.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from validation.analytes import analyte_for

__all__ = ["write_fhir_bundle", "write_hl7v2", "write_lims_csv"]

_OPTIONAL = ("reference_low", "reference_high", "abnormal_flag")
_UCUM = "http://unitsofmeasure.org"
_LOINC = "http://loinc.org"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with the optional columns present, UTC timestamps and rows in (subject, time) order."""
    required = {"subject_id", "timestamp", "loinc_code", "analyte", "value", "unit"}
    if missing := sorted(required - set(frame.columns)):
        raise ValueError(f"the results frame lacks columns {missing}; it needs {sorted(required)}")
    out = frame.copy()
    for column in _OPTIONAL:
        if column not in out.columns:
            out[column] = np.nan
    stamps = pd.to_datetime(out["timestamp"])
    out["timestamp"] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return out.sort_values(["subject_id", "timestamp"], kind="stable").reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def _number(value: Any) -> str:
    """A number as the shortest decimal that reads back to the same float, never in exponent form."""
    if _missing(value):
        return ""
    return np.format_float_positional(float(value), trim="-")


def _string(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _reference_range(low: Any, high: Any) -> str:
    """``0.6-1.2``, ``<5``, ``>60`` or empty."""
    if not _missing(low) and not _missing(high):
        return f"{_number(low)}-{_number(high)}"
    if not _missing(high):
        return f"<{_number(high)}"
    if not _missing(low):
        return f">{_number(low)}"
    return ""


def _label(loinc_code: Any, analyte: Any) -> str:
    """The test name a laboratory would print: the analyte's label, else the name given."""
    known = analyte_for(_string(loinc_code) or None, _string(analyte) or None)
    return known.label if known else _string(analyte)


def _groups(frame: pd.DataFrame) -> Iterator[tuple[int, pd.DataFrame]]:
    """Specimens: the rows of one subject and collection time, numbered from 1 in (subject, time) order."""
    for number, (_, group) in enumerate(frame.groupby(["subject_id", "timestamp"], sort=True, dropna=False), start=1):
        yield number, group


# --- LIMS CSV -------------------------------------------------------------------------------------


def write_lims_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write results as a LIMS CSV export.

    Parameters
    ----------
    frame : the long results frame (see the module docstring), values in their reported units.
    path : the CSV file to write; header ``subject_id,specimen_id,collected_at,loinc_code,
        test_name,result,units,reference_range,flag``. ``specimen_id`` is ``SP`` and a counter
        over (subject, collection time); ``collected_at`` is ISO-8601 with a ``+00:00`` offset.
    """
    rows = []
    for number, group in _groups(_prepared(frame)):
        for row in group.itertuples(index=False):
            rows.append({
                "subject_id": row.subject_id,
                "specimen_id": f"SP{number:06d}",
                "collected_at": row.timestamp.isoformat(),
                "loinc_code": _string(row.loinc_code),
                "test_name": _label(row.loinc_code, row.analyte),
                "result": _number(row.value),
                "units": _string(row.unit),
                "reference_range": _reference_range(row.reference_low, row.reference_high),
                "flag": _string(row.abnormal_flag),
            })
    columns = ["subject_id", "specimen_id", "collected_at", "loinc_code", "test_name", "result", "units",
               "reference_range", "flag"]
    text = pd.DataFrame(rows, columns=columns).to_csv(index=False, lineterminator="\n")
    _write_atomic(Path(path), text.encode("utf-8"))


# --- HL7 v2 ---------------------------------------------------------------------------------------

_HL7_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "~": "\\R\\", "&": "\\T\\"}


def _hl7(value: Any) -> str:
    """Text escaped for an HL7 v2 field (``10^9/L`` becomes ``10\\S\\9/L``)."""
    return "".join(_HL7_ESCAPES.get(ch, ch) for ch in _string(value))


def _hl7_time(stamp: pd.Timestamp) -> str:
    """An HL7 DTM with explicit UTC offset: ``YYYYMMDDHHMMSS+0000``."""
    return stamp.tz_convert("UTC").strftime("%Y%m%d%H%M%S") + "+0000"


def write_hl7v2(frame: pd.DataFrame, path: Path, *, sending_facility: str) -> None:
    """Write results as HL7 v2.5.1 ORU^R01 messages, one per subject and collection time.

    Parameters
    ----------
    frame : the long results frame (see the module docstring), values in their reported units.
    path : the file to write: messages one after another, segments ended by CR.
    sending_facility : MSH-4, the laboratory that sends the results.

    Notes
    -----
    MSH-7 (message time) is the specimen's collection time and MSH-10 (control id) is ``MSG`` and
    a counter, so the file does not depend on when it was written. PID-3 carries the study
    subject code only; no name, birth date or other identifier is written. OBR-7 and OBX-14 hold
    the collection time; OBX-3 is ``code^test name^LN``, OBX-5 the value (type NM), OBX-6 the
    unit, OBX-7 the reference range, OBX-8 the flag, OBX-11 ``F`` (final).
    """
    messages = []
    facility = _hl7(sending_facility)
    for number, group in _groups(_prepared(frame)):
        first = group.iloc[0]
        when = _hl7_time(first.timestamp)
        subject = _hl7(first.subject_id)
        segments = [
            f"MSH|^~\\&|LIS|{facility}|BIOMARKERS|STUDY|{when}||ORU^R01^ORU_R01|MSG{number:06d}|P|2.5.1|||AL|NE",
            f"PID|1||{subject}^^^STUDY^RI",
            f"ORC|RE|ORD{number:06d}|SP{number:06d}",
            f"OBR|1|ORD{number:06d}|SP{number:06d}|LAB^Laboratory results^L|||{when}|||||||||||||||{when}||LAB|F",
        ]
        for index, row in enumerate(group.itertuples(index=False), start=1):
            observation = f"{_hl7(row.loinc_code)}^{_hl7(_label(row.loinc_code, row.analyte))}^LN"
            reference = _hl7(_reference_range(row.reference_low, row.reference_high))
            segments.append(
                f"OBX|{index}|NM|{observation}||{_number(row.value)}|{_hl7(row.unit)}|{reference}|"
                f"{_hl7(row.abnormal_flag)}|||F|||{when}"
            )
        messages.append("\r".join(segments) + "\r")
    _write_atomic(Path(path), "".join(messages).encode("utf-8"))


# --- FHIR R4 --------------------------------------------------------------------------------------


def _quantity(value: Any, unit: Any) -> dict[str, Any]:
    quantity: dict[str, Any] = {} if _missing(value) else {"value": float(value)}
    if not _missing(unit):
        quantity |= {"unit": str(unit), "system": _UCUM, "code": str(unit)}
    return quantity


def write_fhir_bundle(frame: pd.DataFrame, path: Path) -> None:
    """Write results as a FHIR R4 Bundle (type ``collection``) of laboratory Observations.

    Parameters
    ----------
    frame : the long results frame (see the module docstring), values in their reported units.
    path : the JSON file to write.

    Notes
    -----
    Observation ids are ``lab-`` and a counter; the subject is ``Patient/<subject_id>`` with no
    display name; ``effectiveDateTime`` is the collection time with a ``+00:00`` offset; the unit
    goes in ``valueQuantity.unit`` and, as UCUM, in ``valueQuantity.code``.
    """
    entries = []
    prepared = _prepared(frame)
    for number, row in enumerate(prepared.itertuples(index=False), start=1):
        identifier = f"lab-{number:06d}"
        label = _label(row.loinc_code, row.analyte)
        code: dict[str, Any] = {"text": label}
        if not _missing(row.loinc_code):  # an empty LOINC coding is invalid FHIR; the text alone names the test
            code = {"coding": [{"system": _LOINC, "code": str(row.loinc_code), "display": label}], "text": label}
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": identifier,
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory",
                "display": "Laboratory",
            }]}],
            "code": code,
            "subject": {"reference": f"Patient/{row.subject_id}"},
            "effectiveDateTime": row.timestamp.isoformat(),
            "valueQuantity": _quantity(row.value, row.unit),
        }
        reference = {}
        for bound in ("low", "high"):
            value = getattr(row, f"reference_{bound}")
            if not _missing(value):
                reference[bound] = _quantity(value, row.unit)
        if reference:
            observation["referenceRange"] = [reference]
        if not _missing(row.abnormal_flag):
            observation["interpretation"] = [{"coding": [{"system": _INTERPRETATION, "code": str(row.abnormal_flag)}]}]
        entries.append({"fullUrl": f"Observation/{identifier}", "resource": observation})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    _write_atomic(Path(path), text.encode("utf-8"))
