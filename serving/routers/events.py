"""Live vital-sign events: NEWS2 per observation, and an alert for each urgent-response trigger.

A batch is all-or-nothing: one invalid event (422 naming its index, field and the violated
plausibility range) or one subject the online store does not know (422 naming it) refuses the
whole batch, and nothing of it is recorded.

Events are not written to the Feast online store: the study's only vital-sign view,
``hourly_vitals``, holds 24-h window aggregates keyed by window end, which raw observations do
not fit. Pushing them needs a push source and a stream view of raw events (a later increment);
until then the batch pipeline builds the aggregates from the monitor exports.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from features.biomarkers.vitals import news2_parameter_points, news2_risk_band
from serving.alerts import NewAlert
from serving.dependencies import AlertsDep, MetricsDep, StoreDep, require_api_key
from serving.online import known_subjects
from serving.schemas import EventResult, EventsRequest, EventsResponse, VitalSignEvent

# NEWS2 parameter (column of news2_parameter_points) -> the event fields it needs.
_PARAMETER_INPUTS = {
    "respiration_rate": ("respiratory_rate_per_min",),
    "spo2": ("spo2_percent",),
    "air_or_oxygen": ("supplemental_oxygen",),
    "systolic_bp": ("systolic_bp_mmhg",),
    "pulse": ("heart_rate_bpm",),
    "consciousness": ("consciousness_avpu",),
    "temperature": ("temperature_deg_c",),
}
URGENT_SCORE = 5
"""NEWS2 aggregate from which an urgent response is due (RCP 2017, Chart 2)."""
RED_PARAMETER_POINTS = 3
"""Points of a single parameter that call for an urgent ward-based response (RCP 2017, Chart 2)."""


class _CountRefusedEvents(APIRoute):
    """Counts the events of a batch that the request validation refused (before the handler runs)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def counting_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                request.app.state.metrics.events.labels("refused_invalid").inc(await _posted_count(request))
                raise

        return counting_handler


async def _posted_count(request: Request) -> int:
    try:
        events = json.loads(await request.body()).get("events")
    except (ValueError, AttributeError):
        return 1
    return len(events) if isinstance(events, list) and events else 1


router = APIRouter(prefix="/v1", tags=["events"], dependencies=[Depends(require_api_key)],
                   route_class=_CountRefusedEvents)


def assess_events(events: list[VitalSignEvent]) -> list[tuple[EventResult, NewAlert | None]]:
    """NEWS2, risk band and alert of each event, with the published NEWS2 functions.

    A missing parameter is never invented: its points are NaN, the score is null and the detail
    names what is missing. A parameter that is present and scores 3 still triggers an alert.
    """
    def column(name):
        return np.array([getattr(event, name) for event in events], dtype=object)

    points = news2_parameter_points(
        column("respiratory_rate_per_min"), column("spo2_percent"), column("supplemental_oxygen"),
        column("systolic_bp_mmhg"), column("heart_rate_bpm"), column("consciousness_avpu"),
        column("temperature_deg_c"), spo2_scale=np.array([event.spo2_scale for event in events]))
    scores = points.sum(axis=1, skipna=False).to_numpy(dtype=float)
    highest = points.max(axis=1, skipna=True).to_numpy(dtype=float)
    bands = news2_risk_band(scores, highest)
    assessed = []
    for position, event in enumerate(events):
        row = points.iloc[position]
        missing = sorted({field for parameter, fields in _PARAMETER_INPUTS.items() if np.isnan(row[parameter])
                          for field in fields if getattr(event, field) is None})
        score = None if np.isnan(scores[position]) else float(scores[position])
        band = bands[position]
        reasons = []
        if score is not None and score >= URGENT_SCORE:
            reasons.append(f"NEWS2 {score:g} >= {URGENT_SCORE} ({band} risk)")
        red = [parameter for parameter in _PARAMETER_INPUTS if row[parameter] >= RED_PARAMETER_POINTS]
        if red:
            reasons.append(f"single parameter scored {RED_PARAMETER_POINTS}: {', '.join(red)}")
        reason = "; ".join(reasons)
        details = [reason] if reason else []
        if missing:
            details.append(f"news2 not computed: missing {', '.join(missing)}")
        result = EventResult(subject_id=event.subject_id, timestamp=event.timestamp, news2=score, risk_band=band,
                             alert=bool(reasons), detail="; ".join(details) or None)
        alert = NewAlert(event.subject_id, event.timestamp, score, band, reason) if reasons else None
        assessed.append((result, alert))
    return assessed


@router.post("/events", response_model=EventsResponse,
             summary="Post vital-sign observations: NEWS2 per observation, alerts on urgent-response triggers",
             responses={422: {"description": "an invalid event or an unknown subject; nothing of the batch is kept"}})
async def post_events(request: EventsRequest, store: StoreDep, alerts: AlertsDep,
                      metrics: MetricsDep) -> EventsResponse:
    events = request.events
    subjects = list(dict.fromkeys(event.subject_id for event in events))
    known = await run_in_threadpool(known_subjects, store, subjects)
    unknown = [subject for subject in subjects if subject not in known]
    if unknown:
        metrics.events.labels("refused_unknown_subject").inc(len(events))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"unknown subject(s) {', '.join(map(repr, unknown))}: no online features in "
                                   "this study; the batch was refused and nothing of it was recorded")
    assessed = assess_events(events)
    raised = [alert for _, alert in assessed if alert is not None]
    await run_in_threadpool(alerts.record_many, raised)
    metrics.events.labels("accepted").inc(len(events))
    for alert in raised:
        metrics.alerts.labels(alert.risk_band or "none").inc()
    return EventsResponse(accepted=len(events), results=[result for result, _ in assessed])
