"""Likely causes of failed checks, so a report says what probably went wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from validation.report import ValidationReport
from validation.suites import Check

# Checks whose failure means a file waits for the study's metadata to catch up (its subject is
# not enrolled yet), not that the file is bad: ingestion leaves it pending instead of quarantined.
WAITING_CHECKS = frozenset({"known_subject"})


def likely_cause(check: Check, batch: pd.DataFrame, index: list[Any], observed: Any) -> str | None:
    """Guess why ``check`` failed on ``batch`` at ``index`` (row labels); ``None`` if no good guess."""
    column = check.column
    values = _values(check, batch, index)
    if check.check == "plausible_range":
        return _range_cause(check, column, values, observed)
    if check.check == "timestamps_ordered":
        if column == "seconds_since_latest_earlier" and "timestamp" in batch:
            keys = [c for c in ("subject_id", "timestamp") if c in batch]
            repeats = int(batch.duplicated(subset=keys).sum())
            if repeats:
                return f"{repeats} rows repeat an earlier timestamp: duplicate rows (exported or sent twice?)"
        if column == "non_increasing" or column == "second":
            return "samples out of time order or repeated: the file may be two recordings joined together"
        return "timestamps repeat or go backwards within a subject"
    if check.check == "sampling_rate" and column in batch:
        rate = float(np.nanmedian(batch[column])) if batch[column].notna().any() else float("nan")
        return f"the device recorded at about {rate:.0f} Hz; check the device set-up or the source's sampling_rate_hz"
    if check.check == "known_subject":
        subjects = sorted({str(v) for v in values})[:5]
        return f"subject {', '.join(subjects)} is not in the enrollment file: enroll it or fix the file name"
    if check.check == "no_direct_identifiers":
        return "the file holds direct identifiers: remove these fields at export; the platform keeps study codes only"
    if check.check == "known_unit":
        pairs = sorted({f"{unit} for {analyte}" for analyte, unit in values})[:5]
        return f"unit {'; '.join(pairs)} is not accepted: add a conversion in validation/analytes.py or fix the export"
    if check.check == "corrupt_blocks" and "corrupt_blocks" in batch:
        blocks, samples = int(batch["corrupt_blocks"].sum()), int(batch["corrupt_samples"].sum())
        return (f"{blocks} device data block{'s' if blocks != 1 else ''} failed the checksum; their {samples} "
                "samples are missing: copy the file from the device again (or set corrupt_blocks: warn)")
    if check.check == "device_range":
        return "values beyond the device's full-scale range: wrong units, wrong device_range_g or a corrupt file"
    if check.check == "missingness":
        return "values missing: the device was not worn, lost signal or the column mapping is wrong"
    if check.check == "required_columns":
        return "check the source's column mapping in study.yaml against the file's header"
    if check.check == "column_types":
        return "cells that do not parse as numbers or times: check the export's decimal and date formats"
    if check.check == "unique_keys":
        return "the same key appears more than once"
    return None


def waiting_reason(report: ValidationReport, unknown_subjects: Collection[str]) -> str | None:
    """Why a rejected file waits for the study's metadata; ``None`` if it is bad in itself.

    A file waits when it was read and every check that rejects it is one of `WAITING_CHECKS`
    (warnings do not matter). Bad in itself wins: a read error or any other rejecting check
    means ``None`` (quarantine), even when its subject is also unknown.

    Parameters
    ----------
    report : the file's validation report.
    unknown_subjects : the file's subjects that the enrollment file does not name.

    Returns
    -------
    str or None
        ``"waiting: subject S0099 is not in the enrollment file yet; ..."``.
    """
    rejecting = {failure.check for failure in report.failures if failure.severity == "reject"}
    if report.read_error or not rejecting or not rejecting <= WAITING_CHECKS:
        return None
    subjects = sorted(unknown_subjects) or sorted({str(v) for f in report.failures
                                                   if f.check in WAITING_CHECKS for v in f.examples})
    shown = ", ".join(subjects[:5]) + (f" and {len(subjects) - 5} more" if len(subjects) > 5 else "")
    if len(subjects) > 1:
        named, them = f"subjects {shown} are", "them"
    else:
        named, them = (f"subject {shown}" if subjects else "its subject") + " is", "it"
    return (f"waiting: {named} not in the enrollment file yet; the file is ingested by the first run "
            f"after the enrollment file names {them} (or fix the subject code if it is wrong)")


def _values(check: Check, batch: pd.DataFrame, index: list[Any]) -> np.ndarray | list:
    """The unexpected values at ``index``; pairs for a column-pair check."""
    column = check.column
    if column is None or not index or column not in batch:
        return []
    if "column_B" in check.kwargs:
        return list(zip(batch.loc[index, column], batch.loc[index, check.kwargs["column_B"]], strict=False))
    return batch.loc[index, column].to_numpy()


def _range_cause(check: Check, column: str | None, values: Any, observed: Any) -> str | None:
    analyte = check.meta.get("analyte")
    if analyte:
        from validation.analytes import analyte_for, guess_reported_unit

        found = analyte_for(None, analyte)
        unit = guess_reported_unit(found, np.asarray(values, dtype=float)) if found is not None else None
        return f"values look like {unit}" if unit else None
    if column == "gravity_estimate_g" and observed is not None:
        if 7 < float(observed) < 12:
            return "values look like m/s^2: set units: {acceleration: m/s^2} for this source"
        if 500 < float(observed) < 1500:
            return "values look like mg: set units: {acceleration: mg} for this source"
        return None
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if numbers.empty:
        return None
    if column == "temperature_deg_c" and numbers.between(86, 113).mean() > 0.8:
        return "values look like degF: set units: {temperature: degF} for this source"
    if column == "spo2_percent" and numbers.between(0.5, 1.0).mean() > 0.8:
        return "values look like a fraction: set units: {spo2: fraction} for this source"
    if column == "rr_interval_ms" and numbers.between(0.2, 3.0).mean() > 0.8:
        return "values look like seconds: set units: {rr_interval: s} for this source"
    return "values outside the physiologically plausible range: a sensor artefact or a wrong column mapping"
