"""Live vital-sign events: NEWS2 per observation, and an alert for each urgent-response trigger.

A batch is all-or-nothing: one invalid event (422 naming its index, field and the violated
plausibility range) or one subject the online store does not know (422 naming it) refuses the
whole batch, and nothing of it is recorded.

An accepted batch is pushed to the Feast view ``vital_signs_live`` (every observation offline,
each subject's latest online; see ``serving.events``), then its alerts are recorded. Both are
idempotent: a client that retries a batch after a timeout stores nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from serving.dependencies import AlertsDep, KnownSubjectsDep, MetricsDep, StoreDep, require_api_key
from serving.events import assess_events, new_alerts, push_live
from serving.schemas import EventResult, EventsRequest, EventsResponse


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


@router.post("/events", response_model=EventsResponse,
             summary="Post vital-sign observations: NEWS2 per observation, alerts on urgent-response triggers",
             responses={422: {"description": "an invalid event or an unknown subject; nothing of the batch is kept"}})
async def post_events(request: EventsRequest, store: StoreDep, alerts: AlertsDep, metrics: MetricsDep,
                      known_subjects: KnownSubjectsDep) -> EventsResponse:
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
    raised = new_alerts(events, assessed)
    await run_in_threadpool(push_live, store, events, assessed)
    await run_in_threadpool(alerts.record_many, raised)
    metrics.events.labels("accepted").inc(len(events))
    for alert in raised:
        metrics.alerts.labels(alert.risk_band or "none").inc()
    return EventsResponse(accepted=len(events), results=[
        EventResult(subject_id=event.subject_id, timestamp=event.timestamp, news2=assessment.news2,
                    risk_band=assessment.risk_band, alert=assessment.alert, detail=assessment.detail)
        for event, assessment in zip(events, assessed, strict=True)])
