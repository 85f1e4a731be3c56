"""Request and response bodies of the HTTP API (what ``/docs`` shows)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

MAX_SUBJECTS_PER_REQUEST = 1000

SubjectId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


def json_response(body: BaseModel) -> Response:
    """``body`` serialized once, as the hot endpoints answer (the route still declares the model for
    ``/docs``). A sync endpoint that returns the model has FastAPI validate it again and serialize
    it in a second trip to the thread pool: some milliseconds of a single-subject score."""
    return Response(body.model_dump_json(), media_type="application/json")


class SubjectFeatures(BaseModel):
    subject_id: str
    service: str = Field(description="the feature service read")
    features: dict[str, float | str | None] = Field(
        description="feature name to online value (canonical unit in the name); null when the store has none")
    event_timestamps: dict[str, datetime | None] = Field(
        description="feature view to the UTC end of the window its values summarize; null when no row")
    feature_ages_h: dict[str, float | None] = Field(
        description="feature view to the hours from that window's end to this read; null when no row")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_ids: list[SubjectId] = Field(min_length=1, max_length=MAX_SUBJECTS_PER_REQUEST,
                                         description=f"1 to {MAX_SUBJECTS_PER_REQUEST} study subject codes")


class SubjectScore(BaseModel):
    subject_id: str
    score: float | None = Field(description="endpoint model: probability of the outcome in [0, 1]; anomaly model: "
                                            "anomaly score (higher = more anomalous); null when not scored")
    anomaly: bool | None = Field(default=None, description="anomaly models only: above the training threshold")
    feature_ages_h: dict[str, float | None] = Field(
        description="feature view to the hours since the end of the window used; null when no row")
    detail: str | None = Field(default=None, description="why the subject was not scored, if it was not")


class ScoreResponse(BaseModel):
    model: str = Field(description="the served model name")
    registered_model: str
    version: str = Field(description="the registry version that scored")
    task: str
    scores: list[SubjectScore]


class ModelInfo(BaseModel):
    name: str
    reference: str
    registered_model: str
    version: str
    run_id: str
    task: str
    feature_service: str
    features: list[str]
    loaded_at: datetime


class ModelChangeInfo(BaseModel):
    name: str
    old_version: str | None
    new_version: str


class ReloadResponse(BaseModel):
    changed: list[ModelChangeInfo]
    models: list[ModelInfo]
    errors: dict[str, str] = Field(description="served model to why it did not (re)load")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str] = Field(description="check to 'ok' or the reason it failed")


class ServedStudy(BaseModel):
    study_id: str
    url: str = Field(description="the study's routes: its /v1 API, probes and metrics are under this path")
    docs: str = Field(description="the study's OpenAPI page (Swagger UI)")


class ServedStudies(BaseModel):
    studies: list[ServedStudy] = Field(description="the studies this service serves, in the order given")


# --- vital-sign events and alerts -------------------------------------------------------------

# A full event is about 200 bytes of JSON: 250 of them stay inside the default 64 KiB body limit.
MAX_EVENTS_PER_REQUEST = 250

PLAUSIBLE_RANGES: dict[str, tuple[float, float, str]] = {
    "heart_rate_bpm": (20.0, 300.0, "bpm"),
    "respiratory_rate_per_min": (2.0, 80.0, "/min"),
    "spo2_percent": (50.0, 100.0, "%"),
    "temperature_deg_c": (25.0, 45.0, "degC"),
    "systolic_bp_mmhg": (40.0, 300.0, "mmHg"),
}
"""Physiologically possible values (inclusive), not normal ranges: a value outside is a device or
entry fault (a unit mix-up, a disconnected probe), never a patient state to score. Wide on
purpose: a heart rate of 25 bpm or a temperature of 26 degC is alarming but possible, and must be
scored (it scores 3), not refused."""

MEASUREMENTS = (*PLAUSIBLE_RANGES, "consciousness_avpu", "supplemental_oxygen")

EVENT_TIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
"""Observation times an event may carry, [start, end) UTC: the times every store and frame
represents (pandas' nanoseconds end in 2262; Unix times start in 1970). How far ahead of the
server's clock an event may be is a setting (``max_event_clock_skew_seconds``), checked when it
arrives (``serving.events.future_events``)."""

AvpuLevel = Literal["A", "C", "V", "P", "U"]


class VitalSignEvent(BaseModel):
    """One bedside observation of a subject: any subset of the NEWS2 parameters, units in the names."""

    model_config = ConfigDict(extra="forbid")

    subject_id: SubjectId
    timestamp: datetime = Field(description="when the observation was taken; timezone-aware (ISO 8601 with Z or "
                                            "an offset), returned in UTC")
    heart_rate_bpm: float | None = Field(default=None, description="pulse, beats per minute; plausible 20-300")
    respiratory_rate_per_min: float | None = Field(default=None, description="breaths per minute; plausible 2-80")
    spo2_percent: float | None = Field(default=None, description="peripheral oxygen saturation, %; plausible 50-100")
    temperature_deg_c: float | None = Field(default=None, description="degrees Celsius; plausible 25-45")
    systolic_bp_mmhg: float | None = Field(default=None, description="systolic blood pressure, mmHg; plausible 40-300")
    consciousness_avpu: AvpuLevel | None = Field(
        default=None, description="ACVPU: Alert, new Confusion, Voice, Pain, Unresponsive")
    supplemental_oxygen: bool | None = Field(default=None, description="true when on supplemental oxygen")
    spo2_scale: Literal[1, 2] = Field(default=1, description="NEWS2 SpO2 scale: 2 only for a clinician-chosen "
                                                             "88-92 % target (hypercapnic respiratory failure)")

    @field_validator("timestamp")
    @classmethod
    def _timezone_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp has no time zone: send ISO 8601 with Z or an offset, "
                             "e.g. 2026-01-01T08:00:00Z (a naive time is ambiguous)")
        start, end = EVENT_TIME_RANGE
        try:
            utc = value.astimezone(UTC)
        except OverflowError:  # year 9999 with a negative offset, or year 1 with a positive one
            utc = None
        if utc is None or not start <= utc < end:
            raise ValueError(f"timestamp {value.isoformat()} is outside [{start:%Y-%m-%d}, {end:%Y-%m-%d}) UTC: "
                             "not the time of an observation (a device clock or a unit fault)")
        return utc

    @field_validator(*PLAUSIBLE_RANGES)
    @classmethod
    def _plausible(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        low, high, unit = PLAUSIBLE_RANGES[info.field_name]
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{info.field_name}={value:g} is outside the physiologically plausible range "
                             f"[{low:g}, {high:g}] {unit}")
        return value

    @model_validator(mode="after")
    def _some_measurement(self) -> VitalSignEvent:
        if all(getattr(self, name) is None for name in MEASUREMENTS):
            raise ValueError(f"an event needs at least one measurement of: {', '.join(MEASUREMENTS)}")
        return self


class EventsRequest(BaseModel):
    """A batch of observations, accepted whole or refused whole.

    Two events of one subject at one time are one observation: identical ones are accepted (a
    client's duplicate; it is stored once), but different values are refused with both indexes
    named. Keeping either would be a guess at which is right, and both cannot be kept: the log,
    the online store and the alerts each hold one record per subject and observation time, so
    one event's values would be stored under, and alert with, the other's reason.
    """

    model_config = ConfigDict(extra="forbid")

    events: list[VitalSignEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST,
                                         description=f"1 to {MAX_EVENTS_PER_REQUEST} observations; "
                                                     "all are accepted or none; one subject's events at one time "
                                                     "must be identical")

    @field_validator("events")
    @classmethod
    def _one_observation_per_subject_and_time(cls, events: list[VitalSignEvent]) -> list[VitalSignEvent]:
        conflicts = [f"events {earlier} and {later} {reason}" for earlier, later, reason in conflicting_events(events)]
        if conflicts:
            raise ValueError("; ".join(conflicts) + ": one observation has one set of values; send one of them, "
                                                    "or correct the timestamp")
        return events


def conflicting_events(events: Sequence[VitalSignEvent]) -> list[tuple[int, int, str]]:
    """Pairs of events of one subject at one time with different values: ``(earlier, later, why)``
    by index, ``why`` naming the subject, the time and the values that differ. Identical events
    are no conflict. The HTTP API refuses a batch with any; the stream consumer dead-letters the
    later message of each pair (the earlier one stands, as its alert does)."""
    first: dict[tuple[str, datetime], int] = {}
    conflicts = []
    for index, event in enumerate(events):
        earlier = first.setdefault((event.subject_id, event.timestamp), index)
        if earlier == index or events[earlier] == event:
            continue
        differ = ", ".join(f"{name} {getattr(events[earlier], name)!r} vs {getattr(event, name)!r}"
                           for name in VitalSignEvent.model_fields
                           if getattr(events[earlier], name) != getattr(event, name))
        conflicts.append((earlier, index, f"are both subject {event.subject_id!r} at {event.timestamp.isoformat()} "
                                          f"with different values ({differ})"))
    return conflicts


class EventResult(BaseModel):
    subject_id: str
    timestamp: datetime = Field(description="the observation time, UTC")
    news2: float | None = Field(description="NEWS2 aggregate (0-20, RCP 2017); null unless all seven parameters "
                                            "were given")
    risk_band: str | None = Field(description="low, low_medium, medium or high (RCP 2017 Chart 2); null with news2")
    alert: bool = Field(description="an urgent-response trigger (NEWS2 >= 5 or any single parameter scoring 3) or, "
                                    "on a subject's latest event, an anomalous hour of vital signs")
    detail: str | None = Field(default=None, description="the alert's reason, and the missing parameters if any")
    anomaly_score: float | None = Field(default=None, description="the vital-sign anomaly model's score of the "
                                                                  "subject's current hour (higher = more anomalous); "
                                                                  "on each subject's latest event of the batch only")
    anomaly: bool | None = Field(default=None, description="that score is above the model's training threshold")


class EventsResponse(BaseModel):
    accepted: int
    results: list[EventResult]


class AlertInfo(BaseModel):
    id: int
    subject_id: str
    event_time: datetime = Field(description="the observation that triggered, UTC")
    recorded_at: datetime = Field(description="when the service recorded the alert, UTC")
    news2: float | None
    risk_band: str | None
    reason: str
    source: str
