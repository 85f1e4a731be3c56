"""Recorded NEWS2 alerts of the study, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from serving.alerts import MAX_ALERTS_PER_LIST
from serving.dependencies import AlertsDep, require_api_key
from serving.responses import AUTHENTICATED, error_responses
from serving.schemas import AlertInfo

router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=[Depends(require_api_key)], responses=AUTHENTICATED)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("since has no time zone: send ISO 8601 with Z or an offset, e.g. 2026-01-01T08:00:00Z")
    try:
        return value.astimezone(UTC)  # here, not in the database driver: a 422 rather than a 500
    except OverflowError:  # year 9999 with a negative offset, year 1 with a positive one
        raise ValueError(f"since {value.isoformat()} is not a time in UTC's range (years 1 to 9999)") from None


@router.get("/alerts", response_model=list[AlertInfo], summary="Recorded alerts, newest first",
            responses=error_responses(422))
async def list_alerts(
    alerts: AlertsDep,
    since: Annotated[datetime | None, AfterValidator(_aware),
                     Query(description="only alerts recorded at or after this time (timezone-aware)")] = None,
    subject_id: Annotated[str | None, Query(min_length=1, max_length=128, description="only this subject")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERTS_PER_LIST)] = 100,
) -> list[AlertInfo]:
    found = await run_in_threadpool(alerts.list, since, subject_id, limit)
    return [AlertInfo(id=alert.id, subject_id=alert.subject_id, event_time=alert.event_time,
                      recorded_at=alert.recorded_at, news2=alert.news2, risk_band=alert.risk_band,
                      reason=alert.reason, source=alert.source) for alert in found]
