"""The validation report of one file: JSON for machines, one paragraph for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASSED = "passed"
    WARNED = "passed_with_warnings"
    REJECTED = "rejected"
    UNREADABLE = "unreadable"


MAX_LOCATIONS = 20  # rows or seconds kept per failure in the JSON report; the count is always exact
SHOWN_LOCATIONS = 8  # of which a sentence shows this many, consecutive ones folded into ranges


@dataclass
class Failure:
    """One failed expectation.

    Attributes
    ----------
    check : the named check (its severity comes from the study configuration).
    severity : ``reject`` or ``warn``.
    expectation : the expectation in Great Expectations' snake-case form with its arguments,
        e.g. ``expect_column_values_to_be_between(value, 0.1, 20) where analyte == creatinine``.
    column : the column checked, if any.
    unit_of_location : ``rows`` (1-based data rows of the file), ``seconds`` (UTC seconds of a
        high-rate signal) or ``fields`` (field names of the file).
    unexpected_count, element_count : exact counts.
    locations : the first rows, seconds or fields affected (at most ``MAX_LOCATIONS``).
    examples : the first unexpected values.
    observed_value : for aggregate expectations (a median), what was observed.
    likely_cause : a guess at the cause and the fix, when one can be made.
    """

    check: str
    severity: str
    expectation: str
    column: str | None
    unit_of_location: str
    unexpected_count: int | None = None
    element_count: int | None = None
    locations: list[Any] = field(default_factory=list)
    examples: list[Any] = field(default_factory=list)
    observed_value: Any = None
    likely_cause: str | None = None

    def sentence(self) -> str:
        """``expect_...(...) failed for 3 rows (17, 240, 981); values look like umol/L``."""
        if self.unexpected_count:
            where = _runs(self.locations[:SHOWN_LOCATIONS])
            more = ", ..." if self.unexpected_count > min(len(self.locations), SHOWN_LOCATIONS) else ""
            text = f"{self.expectation} failed for {self.unexpected_count} {self.unit_of_location} ({where}{more})"
        elif self.observed_value is not None:
            text = f"{self.expectation} failed (observed {_short(self.observed_value)})"
        else:
            text = f"{self.expectation} failed"
        return f"{text}; {self.likely_cause}" if self.likely_cause else text


@dataclass
class ValidationReport:
    """Everything known about one file's validation; ``report_id`` is its lineage id."""

    report_id: str
    file: str
    source: str
    kind: str
    sha256: str
    checked_at: str
    outcome: Outcome
    rows: int | None = None
    seconds: int | None = None
    failures: list[Failure] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    read_error: str | None = None

    @property
    def rejected(self) -> bool:
        return self.outcome in (Outcome.REJECTED, Outcome.UNREADABLE)

    def reason(self) -> str | None:
        """Why the file was rejected, in one line (the first rejecting failure, or the read error)."""
        if self.read_error:
            return self.read_error
        rejecting = [f for f in self.failures if f.severity == "reject"]
        if not rejecting:
            return None
        more = f" (and {len(rejecting) - 1} more failed checks)" if len(rejecting) > 1 else ""
        return f"{rejecting[0].check}: {rejecting[0].sentence()}{more}"

    def messages(self) -> list[str]:
        """One line per failure: ``<file>: <sentence>`` (the style of the house)."""
        if self.read_error:
            return [f"{self.file}: {self.read_error}"]
        return [f"{self.file}: [{f.severity}] {f.sentence()}" for f in self.failures]

    def paragraph(self) -> str:
        """The report in one readable paragraph."""
        if self.outcome is Outcome.UNREADABLE:
            return f"{self.file} ({self.source}) could not be read and was quarantined: {self.read_error}"
        size = f"{self.rows} rows" if self.seconds is None else f"{self.rows} samples over {self.seconds} seconds"
        if self.outcome is Outcome.PASSED:
            return f"{self.file} ({self.source}, {size}) passed all {self.kind} checks."
        rejecting = [f for f in self.failures if f.severity == "reject"]
        warning = [f for f in self.failures if f.severity != "reject"]
        parts = []
        if rejecting:
            parts.append(
                f"{self.file} ({self.source}, {size}) was quarantined: "
                + " ".join(f"{f.check}: {f.sentence()}." for f in rejecting)
            )
        else:
            parts.append(f"{self.file} ({self.source}, {size}) was curated with warnings.")
        if warning:
            parts.append("Warnings: " + " ".join(f"{f.check}: {f.sentence()}." for f in warning))
        return " ".join(parts)

    def to_json(self) -> str:
        document = asdict(self)
        document["paragraph"] = self.paragraph()
        return json.dumps(document, indent=2, default=str, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        document = json.loads(text)
        document.pop("paragraph", None)
        document["outcome"] = Outcome(document["outcome"])
        document["failures"] = [Failure(**failure) for failure in document["failures"]]
        return cls(**document)


def _runs(locations: list[Any]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``; seconds fold the same way; anything else is listed."""
    if not locations:
        return ""
    steps = [_step(a, b) for a, b in zip(locations, locations[1:], strict=False)]
    groups, start = [], 0
    for i, consecutive in enumerate(steps + [False]):
        if not consecutive:
            first, last = locations[start], locations[i]
            groups.append(str(first) if i == start else f"{first} to {last}" if i - start > 1 else f"{first}, {last}")
            start = i + 1
    return ", ".join(groups)


def _step(a: Any, b: Any) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return b == a + 1
    if isinstance(a, str) and isinstance(b, str) and a.endswith("Z") and b.endswith("Z"):
        from datetime import datetime

        try:
            return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() == 1
        except ValueError:
            return False
    return False


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
