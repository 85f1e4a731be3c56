"""Liveness, readiness and Prometheus metrics (no API key: probes and scrapers call these)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.dependencies import ReadinessDep, RegistryDep, StoreDep
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:  # async: answers even while every request thread is busy
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            summary="The online store answers and holds the served views' rows, and every model is loaded",
            responses={503: {"model": Readiness, "description": "not ready; each failed check says why"}})
async def readyz(store: StoreDep, registry: RegistryDep, readiness: ReadinessDep):
    return readiness_response(await readiness_checks(store, registry, readiness))


async def readiness_checks(store, registry, readiness) -> dict[str, str]:
    """Each readiness check of one study's service, ``ok`` or why not."""
    # async, its store probe in asyncio's thread pool: it answers while every request thread is busy.
    loaded = registry.models
    checks = await readiness(store, [model.feature_service for model in loaded.values()])
    errors = registry.errors
    for name, reference in registry.references.items():
        if name in loaded:
            checks[f"model:{name}"] = "ok"
        else:
            checks[f"model:{name}"] = f"{reference} not loaded: {errors.get(name, 'not loaded yet')}"
    return checks


def readiness_response(checks: dict[str, str]) -> JSONResponse:
    """200 when every check is ``ok``, else 503; the checks in the body."""
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics: requests, latency, loaded model versions",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:  # async too: a scrape does not wait behind scoring
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
