"""Live vital-sign events: NEWS2 per observation, and an alert for each urgent-response trigger.

A batch is all-or-nothing: one invalid event (422 naming its index, field and the violated
plausibility range, a body value JSON does not allow, a time outside 1970-2200 or more than
``max_event_clock_skew_seconds`` ahead of the server's clock, two different events of one
subject at one time) or one subject the online store does not know (422 naming it) refuses the
whole batch, and nothing of it is recorded: every check runs before the first write.

An accepted batch is pushed to the Feast view ``vital_signs_live`` (every observation offline,
each subject's latest online; see ``serving.events``). With ``events_anomaly_model`` set, each
subject's current hour of vital signs (its last 24 h of observations, the batch included) is
then scored with that model, as it was trained on ``hourly_vitals``; an anomalous hour alerts
on the subject's latest event. The alerts are recorded last. Everything is idempotent: a
client that retries a batch after a timeout stores nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from serving.dependencies import (
    AlertsDep,
    KnownSubjectsDep,
    MetricsDep,
    RegistryDep,
    SettingsDep,
    StoreDep,
    require_api_key,
)
from serving.events import (
    assess_anomalies,
    assess_events,
    future_events,
    live_view,
    new_alerts,
    push_live,
    with_anomaly_alerts,
)
from serving.models import ModelNotLoadedError
from serving.responses import error_responses
from serving.schemas import EventResult, EventsRequest, EventsResponse
from serving.strict_json import StrictJSONRoute


class _CountRefusedEvents(StrictJSONRoute):
    """A strictly parsed body (see ``serving.strict_json``); counts the events of a batch that the
    request validation refused."""

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


logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[Depends(require_api_key)],
                   route_class=_CountRefusedEvents)


@router.post("/events", response_model=EventsResponse,
             summary="Post vital-sign observations: NEWS2 per observation, alerts on urgent-response triggers",
             responses=error_responses(401, 403, 413, 422, 503, e422="an invalid event or an unknown subject; "
                                                                      "nothing of the batch is kept"))
async def post_events(request: EventsRequest, store: StoreDep, alerts: AlertsDep, metrics: MetricsDep,
                      known_subjects: KnownSubjectsDep, settings: SettingsDep, registry: RegistryDep) -> EventsResponse:
    events = request.events
    ahead = future_events(events, datetime.now(UTC), settings.max_event_clock_skew_seconds)
    if ahead:  # counted as refused_invalid by the route class, like the body's own validation
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "events", index, "timestamp"),
                                       "msg": reason} for index, reason in ahead.items()])
    subjects = list(dict.fromkeys(event.subject_id for event in events))
    known = await run_in_threadpool(known_subjects, store, subjects)
    unknown = [subject for subject in subjects if subject not in known]
    if unknown:
        metrics.events.labels("refused_unknown_subject").inc(len(events))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"unknown subject(s) {', '.join(map(repr, unknown))}: no online features in "
                                   "this study; the batch was refused and nothing of it was recorded")
    assessed = assess_events(events)
    await run_in_threadpool(push_live, store, events, assessed)
    raised = new_alerts(events, assessed)
    anomalies = {}
    if settings.events_anomaly_model is not None:
        try:
            model = registry.get(settings.events_anomaly_model)
        except ModelNotLoadedError as error:  # NEWS2 goes on; /readyz reports the model
            logger.warning("events scored with NEWS2 only: %s", error)
        else:
            found = await run_in_threadpool(assess_anomalies, store, live_view(store), model, events)
            raised = with_anomaly_alerts(raised, found, model)
            anomalies = {(item.subject_id, item.event_time): item for item in found}
    await run_in_threadpool(alerts.record_many, raised)
    metrics.events.labels("accepted").inc(len(events))
    for alert in raised:
        metrics.alerts.labels(alert.risk_band or "none").inc()
    alerted = {(alert.subject_id, alert.event_time): alert.reason for alert in raised}
    results = []
    for event, assessment in zip(events, assessed, strict=True):
        anomaly = anomalies.get((event.subject_id, event.timestamp))
        reason = alerted.get((event.subject_id, event.timestamp))
        details = [reason] if reason else []
        if assessment.missing:
            details.append(f"news2 not computed: missing {', '.join(assessment.missing)}")
        results.append(EventResult(
            subject_id=event.subject_id, timestamp=event.timestamp, news2=assessment.news2,
            risk_band=assessment.risk_band, alert=reason is not None, detail="; ".join(details) or None,
            anomaly_score=None if anomaly is None else anomaly.score,
            anomaly=None if anomaly is None else anomaly.anomaly))
    return EventsResponse(accepted=len(events), results=results)
