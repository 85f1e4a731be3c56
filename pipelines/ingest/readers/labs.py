"""Readers of laboratory results from three real interfaces into the canonical LABS frame.

* ``read_lims_csv``: a LIMS CSV export with header
  ``subject_id,specimen_id,collected_at,loinc_code,test_name,result,units,reference_range,flag``.
* ``read_hl7v2``: HL7 v2.5.1 ORU^R01 result messages, one or more per file.
* ``read_fhir``: a FHIR R4 Bundle (collection, searchset, transaction) of Observation resources.

All three turn a file into a list of results *as reported* and hand it to one mapping step,
``_canonical_frame``, so the three formats map analytes and convert units identically:

* the analyte is found by LOINC code, else by test name (``validation.analytes.analyte_for``);
* the value, unit and reference range are converted to the analyte's canonical unit and the
  LOINC code becomes the analyte's canonical code;
* a result whose analyte is unknown, or whose unit the analyte does not accept, is kept, not
  dropped: ``value``/``unit`` hold the reported value and unit unconverted, ``analyte`` the
  analyte's name (or the reported test name) and ``loinc_code`` the reported code, so the
  validation step's known-unit check fails on it and its report names the unit and analyte;
* naive times are local times of ``source.timezone``; every timestamp comes out UTC;
* ``abnormal_flag`` is the laboratory's flag when the file has one, else L/H/N computed
  against the reference range.

A file that cannot be parsed at all raises ``ReadError`` naming the file and the line,
message or entry. Anything less (a missing LIMS column, an unparseable time, a non-numeric
result) is left for validation to report, and is counted in ``RawRead.metadata``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FileFormat, SourceConfig
from pipelines.ingest.readers.base import RawRead, ReadError, check_signature, require_rows
from validation.analytes import Analyte, Conversion, abnormal_flag, analyte_for, conversion_for
from validation.schemas import SCHEMAS, SourceKind

__all__ = ["LIMS_COLUMNS", "READERS", "read_fhir", "read_hl7v2", "read_lims_csv"]

LIMS_COLUMNS = (
    "subject_id", "specimen_id", "collected_at", "loinc_code", "test_name", "result", "units", "reference_range",
    "flag",
)
"""The header of a LIMS CSV export."""

_LABS_COLUMNS = [c.name for c in SCHEMAS[SourceKind.LABS].columns]

# Generic names of the fields a reader uses, reported in RawRead.source_fields in this order
# (the LIMS header uses the same names), after any identifier fields found in the file.
_GENERIC_FIELDS = ("subject_id", "collected_at", "observation", "result", "units", "reference_range", "flag")


@dataclass
class _Result:
    """One result as reported, before the mapping to a canonical analyte and unit."""

    subject_id: str | None
    timestamp: pd.Timestamp  # UTC, or NaT
    loinc_code: str | None
    test_name: str | None
    value: float  # NaN when missing or not a number
    unit: str | None
    reference_low: float = math.nan
    reference_high: float = math.nan
    reference_unit: str | None = None  # None: the value's unit (only FHIR ranges carry their own)
    flag: str | None = None


# --- shared parsing helpers -------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A stripped string, or ``None`` for blank, NaN and ``None``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


def _number(value: Any) -> float:
    """A reported result as a float; NaN for blank or non-numeric text such as ``<0.5`` or ``see note``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = _text(value)
    if text is None:
        return math.nan
    if _DECIMAL_COMMA.match(text):  # European LIMS write 5,2
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


_NUMBER = r"([-+]?\d+(?:[.,]\d+)?)"
_BOUNDED = re.compile(rf"^{_NUMBER}\s*(?:-|\u2013|\u2014|to|\.\.)\s*{_NUMBER}")
_UPPER_ONLY = re.compile(rf"^(?:<=?|\u2264|up\s*to)\s*{_NUMBER}", re.IGNORECASE)
_LOWER_ONLY = re.compile(rf"^(?:>=?|\u2265)\s*{_NUMBER}")


def _reference_range(text: Any) -> tuple[float, float]:
    """Parse ``0.6-1.2``, ``-2.0-2.0``, ``<5``, ``>60`` into (low, high); NaN for an open or unparsed end."""
    text = _text(text)
    if text is None:
        return math.nan, math.nan
    if match := _BOUNDED.match(text):
        return _number(match.group(1)), _number(match.group(2))
    if match := _UPPER_ONLY.match(text):
        return math.nan, _number(match.group(1))
    if match := _LOWER_ONLY.match(text):
        return _number(match.group(1)), math.nan
    return math.nan, math.nan


# Laboratory and FHIR (v3 ObservationInterpretation) flags -> the schema's L, H, LL, HH, A, N.
_FLAGS = {
    "L": "L", "H": "H", "LL": "LL", "HH": "HH", "A": "A", "AA": "A", "N": "N",
    "LU": "LL", "HU": "HH",  # significantly low / high
    "<": "L", ">": "H",  # below / above the instrument's scale
    "LOW": "L", "HIGH": "H", "NORMAL": "N", "ABNORMAL": "A",
}


def _flag(value: Any) -> str | None:
    text = _text(value)
    return _FLAGS.get(text.upper()) if text else None


def _iso_utc(text: Any, timezone: str) -> pd.Timestamp:
    """An ISO-8601 time as UTC; a naive one is local time of ``timezone``; NaT if unparseable."""
    text = _text(text)
    if text is None:
        return pd.NaT
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if stamp is pd.NaT:
        return pd.NaT
    return _localised(stamp, timezone)


def _localised(stamp: pd.Timestamp, timezone: str) -> pd.Timestamp:
    if stamp.tzinfo is None:
        # In the repeated hour of autumn the earlier (summer-time) reading is taken; a time in
        # the skipped hour of spring is a clock that had not changed yet, so it moves forward.
        stamp = stamp.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
    return stamp.tz_convert("UTC")


def _lines(numbers: list[int]) -> str:
    """``line 7`` or ``lines 4, 9, 12`` (at most ten shown) for a report."""
    shown = ", ".join(str(n) for n in numbers[:10])
    more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


# --- the mapping shared by the three readers --------------------------------------------------


def _canonical_frame(results: list[_Result], leave_out: Iterable[str] = ()) -> tuple[pd.DataFrame, dict[str, str]]:
    """Map reported results to the canonical LABS frame; also return notes for ``RawRead.metadata``."""
    lookups: dict[tuple[str | None, str | None, str | None], tuple[Analyte | None, Conversion | None]] = {}
    unconverted: Counter[str] = Counter()
    columns: dict[str, list[Any]] = {name: [] for name in _LABS_COLUMNS}
    for r in results:
        key = (r.loinc_code, r.test_name, r.unit)
        if key not in lookups:
            analyte = analyte_for(r.loinc_code, r.test_name)
            lookups[key] = (analyte, conversion_for(analyte, r.unit) if analyte else None)
        analyte, conversion = lookups[key]
        has_reference = not (math.isnan(r.reference_low) and math.isnan(r.reference_high))
        loinc: str | None
        name: str | None
        unit: str | None
        if analyte is not None and conversion is not None:
            value, unit, loinc, name = conversion.apply(r.value), analyte.unit, analyte.loinc_code, analyte.name
            reference_conversion = conversion if r.reference_unit is None else conversion_for(analyte, r.reference_unit)
            if has_reference and reference_conversion is not None:
                low, high = reference_conversion.apply(r.reference_low), reference_conversion.apply(r.reference_high)
            else:
                low, high = (math.nan if bound is None else bound for bound in analyte.reference_range)
        else:
            # Kept unconverted so that validation's known-unit check reports the unit and analyte.
            value, unit, low, high = r.value, r.unit, r.reference_low, r.reference_high
            loinc = r.loinc_code or (analyte.loinc_code if analyte else None)
            name = analyte.name if analyte else (r.test_name or r.loinc_code)
            unconverted[f"{name} in {r.unit or 'no unit'}" if analyte else f"unknown analyte {name!r}"] += 1
        columns["subject_id"].append(r.subject_id)
        columns["timestamp"].append(r.timestamp)
        columns["loinc_code"].append(loinc)
        columns["analyte"].append(name)
        columns["value"].append(value)
        columns["unit"].append(unit)
        columns["reference_low"].append(low)
        columns["reference_high"].append(high)
        columns["abnormal_flag"].append(_flag(r.flag) or abnormal_flag(value, low, high))
        columns["original_value"].append(r.value)
        columns["original_unit"].append(r.unit)

    schema = SCHEMAS[SourceKind.LABS].by_name
    frame = pd.DataFrame(
        {
            name: (
                pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype("datetime64[ns, UTC]")
                if name == "timestamp"
                else pd.Series(values, dtype=np.float64 if schema[name].dtype == "float" else object)
            )
            for name, values in columns.items()
        }
    )
    frame = frame.drop(columns=[c for c in leave_out if c in frame.columns])
    # One order whatever the file's order: by subject, then collection time; stable, so the
    # analytes of one specimen keep the order the laboratory reported them in.
    by = [c for c in ("subject_id", "timestamp") if c in frame.columns]
    if by:
        frame = frame.sort_values(by, kind="stable", na_position="last").reset_index(drop=True)
    notes = {}
    if unconverted:
        notes["unconverted_results"] = "; ".join(f"{count} x {what}" for what, count in sorted(unconverted.items()))
    return frame, notes


# --- LIMS CSV ---------------------------------------------------------------------------------

# source.columns may name the file's column for a LIMS field or for the canonical column it feeds.
_LIMS_FIELD_OF_CANONICAL = {"timestamp": "collected_at", "value": "result", "unit": "units", "abnormal_flag": "flag",
                            "analyte": "test_name"}


def read_lims_csv(path: Path, source: SourceConfig) -> RawRead:
    """Read a LIMS CSV export into the canonical LABS frame.

    Parameters
    ----------
    path : the CSV file, header ``subject_id,specimen_id,collected_at,loinc_code,test_name,result,
        units,reference_range,flag`` (``source.columns`` may rename any of these). ``collected_at``
        is ISO-8601 with or without an offset, ``reference_range`` like ``0.6-1.2``, ``<5`` or
        empty, ``flag`` one of H, L, HH, LL, A, N or empty.
    source : the source's configuration; ``source.timezone`` is the zone of naive times.

    Returns
    -------
    RawRead whose ``frame`` is the LABS frame (values in canonical units, UTC timestamps) and whose
    ``source_fields`` is the file's header as written. A canonical column whose input column is
    missing is left out, so that validation reports it; the file is still read.

    Raises
    ------
    ReadError
        the file is empty or holds only its header, is not UTF-8, or cannot be tokenised as CSV
        (the message names the line).
    """
    check_signature(path, FileFormat.LIMS_CSV)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True,
                          encoding="utf-8-sig")
    except pd.errors.EmptyDataError as error:
        raise ReadError(f"{path.name}: the file is empty; expected a LIMS CSV export with header "
                        f"{','.join(LIMS_COLUMNS)}") from error
    except pd.errors.ParserError as error:
        raise ReadError(f"{path.name}: cannot tokenise the CSV ({error}); check for unbalanced quotes "
                        "or an unquoted comma on that line") from error
    except UnicodeDecodeError as error:
        raise ReadError(f"{path.name}: not UTF-8 text (byte {error.start}); export the LIMS file as UTF-8") from error

    source_fields = [str(c) for c in raw.columns]
    by_lower = {name.strip().lower(): name for name in source_fields}
    file_column = {field_name: by_lower.get(field_name) for field_name in LIMS_COLUMNS}
    for target, column in source.columns.items():
        file_column[_LIMS_FIELD_OF_CANONICAL.get(target, target)] = column if column in raw.columns else None

    def values(field_name: str) -> list[Any]:
        column = file_column.get(field_name)
        return raw[column].tolist() if column is not None else [None] * len(raw)

    missing = [f for f in ("subject_id", "collected_at", "loinc_code", "test_name", "result", "units")
               if file_column.get(f) is None]
    leave_out = set()
    if "subject_id" in missing:
        leave_out.add("subject_id")
    if "collected_at" in missing:
        leave_out.add("timestamp")
    if "loinc_code" in missing and "test_name" in missing:
        leave_out |= {"loinc_code", "analyte"}
    if "result" in missing:
        leave_out |= {"value", "original_value"}
    if "units" in missing:  # without a unit no value can be called canonical
        leave_out |= {"value", "unit", "original_unit"}

    times: dict[str | None, pd.Timestamp] = {}
    results, bad_times, non_numeric = [], [], []
    for row, (subject, collected, loinc, name, result, unit, reference, flag) in enumerate(zip(
        *(values(f) for f in ("subject_id", "collected_at", "loinc_code", "test_name", "result", "units",
                              "reference_range", "flag")),
        strict=True,
    )):
        line = row + 2  # the header is line 1
        collected = _text(collected)
        if collected not in times:
            times[collected] = _iso_utc(collected, source.timezone)
        if collected is not None and times[collected] is pd.NaT:
            bad_times.append(line)
        value = _number(result)
        if math.isnan(value) and _text(result) is not None:
            non_numeric.append(line)
        low, high = _reference_range(reference)
        results.append(_Result(_text(subject), times[collected], _text(loinc), _text(name), value, _text(unit),
                               low, high, None, _text(flag)))

    frame, notes = _canonical_frame(results, leave_out)
    if missing:
        notes["missing_columns"] = ", ".join(missing)
    if bad_times:
        notes["unparsed_times"] = f"{len(bad_times)} collected_at not ISO-8601, kept as NaT ({_lines(bad_times)})"
    if non_numeric:
        notes["non_numeric_results"] = f"{len(non_numeric)} result not a number, kept as NaN ({_lines(non_numeric)})"
    return require_rows(path, RawRead(frame=frame, source_fields=source_fields, metadata=notes),
                        f"result rows below the header ({','.join(source_fields)})")


# --- HL7 v2 -----------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-])?(\d{2})?(\d{2})?$")

# PID and NK1 fields that are direct identifiers, reported under names the identifier check
# knows (validation.schemas.DIRECT_IDENTIFIER_PATTERN) whenever the file populates them.
_IDENTIFIER_FIELDS = {
    "PID": {5: "patient_name", 7: "date_of_birth", 11: "address", 13: "phone", 14: "phone", 19: "ssn"},
    "NK1": {2: "name", 4: "address", 5: "phone"},  # next of kin: a relative's name is an identifier too
}
_IDENTIFIER_ORDER = ("patient_name", "name", "date_of_birth", "address", "phone", "ssn")
_SKIPPED_STATUSES = {"D": "deleted", "W": "wrong (replaced)", "X": "not obtained"}  # OBX-11


def _hl7_time(text: str | None, timezone: str) -> pd.Timestamp:
    """An HL7 DTM ``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]`` as UTC; NaT when malformed."""
    if not text:
        return pd.NaT
    match = _DTM.match(text.strip())
    if not match:
        return pd.NaT
    year, month, day, hour, minute, second, fraction, sign, offset_h, offset_m = match.groups()
    try:
        stamp = pd.Timestamp(
            year=int(year), month=int(month or 1), day=int(day or 1), hour=int(hour or 0),
            minute=int(minute or 0), second=int(second or 0), microsecond=int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return pd.NaT
    if sign:
        if offset_h is None:
            return pd.NaT
        offset = pd.Timedelta(hours=int(offset_h), minutes=int(offset_m or 0))
        return (stamp - offset if sign == "+" else stamp + offset).tz_localize("UTC")
    return _localised(stamp, timezone)


def _field(segment: Any, number: int, component: int = 1, repetition: int = 1) -> str | None:
    """One component of one field of a parsed segment, unescaped; ``None`` when empty or absent."""
    try:
        return _text(segment.extract_field(field_num=number, repeat_num=repetition, component_num=component))
    except IndexError:
        return None


def _populated(segment: Any, number: int, separators: str) -> bool:
    """Whether a field holds anything but separators (``^^^`` is empty)."""
    if number >= len(segment):
        return False
    return bool(str(segment[number]).strip(separators + " "))


def _split_messages(path: Path, text: str) -> list[tuple[int, str]]:
    """Split a file into messages: (line of the MSH segment, segments joined by CR)."""
    messages: list[tuple[int, list[str]]] = []
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        line = line.strip()
        if not line:
            continue
        tag = line[:3]
        if tag in ("FHS", "BHS", "FTS", "BTS"):  # file and batch envelopes carry no results
            continue
        if tag == "MSH":
            if len(line) < 8:
                raise ReadError(f"{path.name}: line {number}: truncated MSH segment {line!r}")
            messages.append((number, [line]))
            continue
        if not messages:
            raise ReadError(f"{path.name}: line {number}: not an HL7 v2 file: expected a message starting "
                            f"with 'MSH|^~\\&|', found {line[:40]!r}")
        separator = messages[-1][1][0][3]
        if not _SEGMENT.match(line.split(separator, 1)[0]):
            raise ReadError(f"{path.name}: line {number}: {line[:40]!r} is not an HL7 segment; the message "
                            f"starting on line {messages[-1][0]} is corrupt or truncated")
        messages[-1][1].append(line)
    if not messages:
        raise ReadError(f"{path.name}: not an HL7 v2 file: no message header (MSH) segment")
    return [(number, "\r".join(segments)) for number, segments in messages]


def read_hl7v2(path: Path, source: SourceConfig) -> RawRead:
    """Read HL7 v2.5.1 ORU^R01 result messages into the canonical LABS frame.

    Parameters
    ----------
    path : a file of one or more messages; segments end in CR, LF or CRLF, each message starts
        with MSH; MLLP framing bytes and FHS/BHS envelopes are tolerated.
    source : the source's configuration; ``source.timezone`` is the zone of times without offset.

    Returns
    -------
    RawRead with one row per numeric (``NM``) OBX. The subject is PID-3 (first component); the
    collection time OBR-7, else OBX-14; OBX-3 ``code^text^LN`` gives the LOINC code and test name,
    OBX-5 the value, OBX-6 the unit, OBX-7 the reference range, OBX-8 the flag.
    ``source_fields`` names each populated identifier field (PID-5 ``patient_name``, PID-7
    ``date_of_birth``, PID-11 ``address``, PID-13/14 ``phone``, PID-19 ``ssn``; NK1-2/4/5 ``name``,
    ``address``, ``phone``) and then the generic names of the fields used. ``metadata`` counts
    messages and what was skipped: non-ORU messages, OBX of other value types, deleted results.

    Raises
    ------
    ReadError
        the file is empty or not HL7 v2, a message is corrupt, or no message holds a result to
        read (an ORU cut before its OBX segments, or only non-numeric or deleted results); the
        message names the file and line.
    """
    import hl7  # python-hl7; only this reader needs it

    check_signature(path, FileFormat.HL7V2)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # HL7 v2 predates UTF-8; many feeds are ISO 8859-1
    text = text.replace("\x0b", "").replace("\x1c", "")  # MLLP start and end blocks

    results: list[_Result] = []
    found: set[str] = set()
    skipped: Counter[str] = Counter()
    facilities: list[str] = []
    messages = _split_messages(path, text)
    for index, (line, raw_message) in enumerate(messages, start=1):
        try:
            message = hl7.parse(raw_message)
        except Exception as error:  # python-hl7 raises assorted errors for malformed input
            raise ReadError(
                f"{path.name}: message {index} (line {line}) cannot be parsed as HL7 v2: {error}"
            ) from error
        separators = raw_message[3:8]
        msh = message[0]
        # Identifiers count in every message, read or not: the file as a whole is what is kept.
        for segment in message:
            for number, identifier in _IDENTIFIER_FIELDS.get(str(segment[0]), {}).items():
                if _populated(segment, number, separators):
                    found.add(identifier)
        message_type = _field(msh, 9)
        if message_type != "ORU":
            skipped[f"message of type {message_type or 'unknown'}"] += 1
            continue
        facility = _field(msh, 4)
        if facility and facility not in facilities:
            facilities.append(facility)
        subject: str | None = None
        collected = pd.NaT
        for segment in message:
            tag = str(segment[0])
            if tag == "PID":
                subject = _field(segment, 3)
                found.update(["subject_id"] if subject else [])
            elif tag == "OBR":
                collected = _hl7_time(_field(segment, 7), source.timezone)
            elif tag == "OBX":
                status = _field(segment, 11)
                if status in _SKIPPED_STATUSES:
                    skipped[f"OBX with result status {status} ({_SKIPPED_STATUSES[status]})"] += 1
                    continue
                value_type = _field(segment, 2)
                if value_type != "NM":
                    skipped[f"OBX with value type {value_type or 'missing'} (only NM is read)"] += 1
                    continue
                code: str | None
                name: str | None
                code, name, system = (_field(segment, 3, c) for c in (1, 2, 3))
                if (system or "").upper() != "LN" and (_field(segment, 3, 6) or "").upper() == "LN":
                    code, name = _field(segment, 3, 4), _field(segment, 3, 5) or name  # LOINC as the alternate code
                elif (system or "").upper() != "LN":
                    code, name = None, name or code  # a local code is no LOINC code
                unit = _field(segment, 6) or _field(segment, 6, 2)
                reference, flag = _field(segment, 7), _field(segment, 8)
                observed = _hl7_time(_field(segment, 14), source.timezone)
                low, high = _reference_range(reference)
                results.append(_Result(subject, collected if collected is not pd.NaT else observed, code, name,
                                       _number(_field(segment, 5)), unit, low, high, None, flag))
                found.update(["collected_at"] if results[-1].timestamp is not pd.NaT else [])
                found.update(f for f, present in (("observation", code or name), ("result", True), ("units", unit),
                                                   ("reference_range", reference), ("flag", flag)) if present)

    frame, notes = _canonical_frame(results)
    notes["messages"] = str(len(messages))
    if facilities:
        notes["sending_facilities"] = ", ".join(facilities)
    if skipped:
        notes["skipped"] = "; ".join(f"{count} {what}" for what, count in sorted(skipped.items()))
    fields = [f for f in _IDENTIFIER_ORDER if f in found] + [f for f in _GENERIC_FIELDS if f in found]
    if not results:
        # Zero rows would pass every row check: a message cut before its OBX segments must not.
        raise ReadError(f"{path.name}: no numeric OBX result in {len(messages)} message"
                        f"{'s' if len(messages) != 1 else ''} (line {messages[0][0]} on)"
                        f"{'; skipped: ' + notes['skipped'] if skipped else ''}; is the message cut before its "
                        "OBX segments?")
    return RawRead(frame=frame, source_fields=fields, metadata=notes)


# --- FHIR R4 ----------------------------------------------------------------------------------

_LOINC_SYSTEMS = {"http://loinc.org", "urn:oid:2.16.840.1.113883.6.1"}
_SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+)")
_SKIPPED_OBSERVATION_STATUSES = {"entered-in-error", "cancelled"}


def _patient_identifier_fields(patient: dict[str, Any]) -> set[str]:
    """Names of the direct identifiers a Patient resource carries."""
    found = set()
    if patient.get("name"):
        found.add("patient_name")
    if patient.get("birthDate"):
        found.add("date_of_birth")
    if patient.get("address"):
        found.add("address")
    for contact in patient.get("telecom") or []:
        if isinstance(contact, dict) and contact.get("value"):
            found.add("email" if contact.get("system") == "email" else "phone")
    for identifier in patient.get("identifier") or []:
        if not isinstance(identifier, dict):
            continue
        codes = {c.get("code") for c in (identifier.get("type") or {}).get("coding") or [] if isinstance(c, dict)}
        if identifier.get("system") == _SSN_SYSTEM or "SS" in codes:
            found.add("ssn")
        elif "MR" in codes:
            found.add("mrn")
    return found


def _subject(observation: dict[str, Any], patients: dict[str, dict[str, Any]]) -> str | None:
    """The study subject code of an Observation: ``Patient/S0001`` gives ``S0001``."""
    subject = observation.get("subject") or {}
    reference = _text(subject.get("reference"))
    if reference and (match := _PATIENT_REFERENCE.search(reference)):
        return match.group(1)
    identifier = subject.get("identifier") or {}
    if isinstance(identifier, dict) and _text(identifier.get("value")):
        return _text(identifier.get("value"))
    patient = patients.get(reference or "")
    if patient is None and reference and reference.startswith("#"):
        patient = next((r for r in observation.get("contained") or []
                        if isinstance(r, dict) and r.get("id") == reference[1:]), None)
    if patient is not None:  # a urn:uuid or contained reference: the Patient's own id or identifier
        identifiers = [i.get("value") for i in patient.get("identifier") or [] if isinstance(i, dict)]
        return _text(patient.get("id")) or next((_text(v) for v in identifiers if _text(v)), None)
    return None


def _quantity_unit(quantity: dict[str, Any]) -> str | None:
    """A Quantity's unit: the UCUM ``code`` when given (machine-readable), else the display ``unit``."""
    return _text(quantity.get("code")) or _text(quantity.get("unit"))


def read_fhir(path: Path, source: SourceConfig) -> RawRead:
    """Read a FHIR R4 Bundle of laboratory Observations into the canonical LABS frame.

    Parameters
    ----------
    path : a JSON Bundle (type collection, searchset, transaction, ...). Observation entries become
        rows; Patient entries and contained Patients are read only to detect identifiers; other
        resources are ignored.
    source : the source's configuration; ``source.timezone`` is the zone of times without offset.

    Returns
    -------
    RawRead with one row per Observation with a ``valueQuantity``: subject from
    ``subject.reference`` ``Patient/S0001`` (or ``subject.identifier.value``), time from
    ``effectiveDateTime`` (else ``effectivePeriod.start``, ``effectiveInstant``), LOINC code and
    test name from ``code.coding[system=http://loinc.org]``, value and unit from ``valueQuantity``
    (the UCUM ``code``, else ``unit``), range from ``referenceRange[0]``, flag from
    ``interpretation[0].coding[0].code``. ``source_fields`` names the identifiers present
    (``patient_name`` for ``subject.display`` or a Patient ``name``, ``date_of_birth``,
    ``address``, ``phone``, ``email``, ``ssn``, ``mrn``) and then the generic names of the fields used.

    A single Observation resource (not in a Bundle) is read as a Bundle of one entry.

    Raises
    ------
    ReadError
        the file is empty, larger than ``MAX_JSON_BYTES``, not JSON (truncated), nested deeper
        than ``MAX_JSON_DEPTH``, not a Bundle or Observation, an entry is malformed, or no
        Observation carries a ``valueQuantity``; the message names the file and the line or entry.
    """
    bundle = _load_json(path)
    if isinstance(bundle, dict) and bundle.get("resourceType") == "Observation":
        bundle = {"resourceType": "Bundle", "type": "single-resource", "entry": [{"resource": bundle}]}
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found_type = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise ReadError(f"{path.name}: expected a FHIR R4 Bundle, found {found_type!r}")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise ReadError(f"{path.name}: Bundle.entry must be a list, found {type(entries).__name__}")

    resources: list[tuple[int, dict[str, Any]]] = []
    patients: dict[str, dict[str, Any]] = {}
    found: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReadError(f"{path.name}: entry {index} is not a JSON object")
        resource = entry.get("resource")
        if resource is None:
            continue  # a transaction-response or searchset entry without a resource
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise ReadError(f"{path.name}: entry {index}: resource has no resourceType")
        resources.append((index, resource))
        for contained in [resource, *(resource.get("contained") or [])]:
            if isinstance(contained, dict) and contained.get("resourceType") == "Patient":
                found |= _patient_identifier_fields(contained)
        if resource["resourceType"] == "Patient":
            for key in (_text(entry.get("fullUrl")), f"Patient/{resource.get('id')}" if resource.get("id") else None):
                if key:
                    patients[key] = resource

    results: list[_Result] = []
    skipped: Counter[str] = Counter()
    for _index, observation in resources:
        if observation["resourceType"] != "Observation":
            continue
        if observation.get("status") in _SKIPPED_OBSERVATION_STATUSES:
            skipped[f"Observation with status {observation['status']}"] += 1
            continue
        if _text((observation.get("subject") or {}).get("display")):
            found.add("patient_name")
        quantity = observation.get("valueQuantity")
        if not isinstance(quantity, dict):
            kinds = [k for k in observation if k.startswith("value")] or ["no value"]
            skipped[f"Observation with {kinds[0]} (only valueQuantity is read)"] += 1
            continue
        code = observation.get("code") or {}
        codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
        loinc = next((c for c in codings if c.get("system") in _LOINC_SYSTEMS), None)
        name = _text((loinc or {}).get("display")) or _text(code.get("text")) or next(
            (_text(c.get("display")) for c in codings if _text(c.get("display"))), None)
        period = observation.get("effectivePeriod") or {}
        effective = observation.get("effectiveDateTime") or period.get("start") or observation.get("effectiveInstant")
        ranges = observation.get("referenceRange") or [{}]
        reference = ranges[0] if isinstance(ranges[0], dict) else {}
        low, high = reference.get("low") or {}, reference.get("high") or {}
        unit = _quantity_unit(quantity)
        reference_unit = _quantity_unit(low) or _quantity_unit(high)
        interpretation = (observation.get("interpretation") or [{}])[0] or {}
        flag = next((c.get("code") for c in interpretation.get("coding") or [] if isinstance(c, dict)), None)
        result = _Result(
            _subject(observation, patients), _iso_utc(effective, source.timezone),
            _text((loinc or {}).get("code")), name, _number(quantity.get("value")), unit,
            _number(low.get("value")), _number(high.get("value")),
            None if reference_unit in (None, unit) else reference_unit, flag,
        )
        results.append(result)
        found.update(f for f, present in (
            ("subject_id", result.subject_id), ("collected_at", effective), ("observation", loinc or name),
            ("result", True), ("units", unit), ("reference_range", reference), ("flag", flag)) if present)

    frame, notes = _canonical_frame(results)
    notes["bundle_type"] = str(bundle.get("type") or "unknown")
    if skipped:
        notes["skipped"] = "; ".join(f"{count} {what}" for what, count in sorted(skipped.items()))
    if not results:
        observations = sum(1 for _, resource in resources if resource["resourceType"] == "Observation")
        raise ReadError(f"{path.name}: no Observation with a value (valueQuantity) among {observations} "
                        f"Observation{'s' if observations != 1 else ''} in {len(entries)} entries"
                        f"{'; skipped: ' + notes['skipped'] if skipped else ''}")
    identifiers = sorted(found - set(_GENERIC_FIELDS))
    fields = identifiers + [f for f in _GENERIC_FIELDS if f in found]
    return RawRead(frame=frame, source_fields=fields, metadata=notes)


MAX_JSON_BYTES = 256 << 20
"""The largest FHIR JSON file read: ``json.loads`` holds several times the file's size in objects."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays read: FHIR R4 Bundles of Observations nest about 10
deep, and Python's parser would exhaust the interpreter's stack (``RecursionError``) near 1000."""
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_DEPTH_CHUNK = 16 << 20


def _load_json(path: Path) -> Any:
    """Parse a JSON file after bounding its size and nesting depth; ``ReadError`` naming the bound."""
    check_signature(path, FileFormat.FHIR)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ReadError(f"{path.name}: {size} bytes is more than the {MAX_JSON_BYTES} bytes a FHIR JSON file may "
                        "hold; split the export into several Bundles")
    data = path.read_bytes()
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise ReadError(f"{path.name}: JSON nested {depth} levels deep, more than the {MAX_JSON_DEPTH} a FHIR "
                        "resource needs; the file is corrupt or not a FHIR export")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ReadError(f"{path.name}: not UTF-8 text (byte {error.start}); FHIR JSON must be UTF-8") from error
    except json.JSONDecodeError as error:
        raise ReadError(f"{path.name}: not valid JSON at line {error.lineno}, column {error.colno} ({error.msg}); "
                        "the file may be truncated") from error


def _json_depth(data: bytes) -> int:
    """The deepest nesting of ``{`` and ``[`` in JSON text, brackets inside strings not counted.

    Vectorised (a running sum over bytes, a chunk at a time) so that a large Bundle costs little
    next to parsing it; malformed text gets some number and is refused by the parser afterwards.
    """
    text = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    deepest, level = 0, 0
    for start in range(0, len(text), _JSON_DEPTH_CHUNK):
        chunk = text[start : start + _JSON_DEPTH_CHUNK]
        steps = ((chunk == ord("{")) | (chunk == ord("["))).astype(np.int32)
        steps -= ((chunk == ord("}")) | (chunk == ord("]"))).astype(np.int32)
        levels = np.cumsum(steps, dtype=np.int64) + level
        if len(levels):
            deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


READERS: dict[FileFormat, Callable[[Path, SourceConfig], RawRead]] = {
    FileFormat.LIMS_CSV: read_lims_csv,
    FileFormat.HL7V2: read_hl7v2,
    FileFormat.FHIR: read_fhir,
}
"""The lab reader for each lab file format."""
