"""The routes of a service that serves several studies, outside any one study's app.

Each study's app is mounted under ``/studies/{study_id}`` (``serving.app.create_studies_app``);
these routes list the studies and, when there are several, answer the process's probes and
point a caller of an un-prefixed ``/v1`` route at the prefixed one.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from serving.routers.health import readiness_checks, readiness_response
from serving.schemas import Health, Readiness, ServedStudies, ServedStudy

STUDIES_PREFIX = "/studies"

router = APIRouter(tags=["studies"])
several = APIRouter(tags=["studies"])  # only when several studies: with one, its own app answers these at the root


def study_path(study_id: str) -> str:
    """Where a study's app is mounted: ``/studies/demo``."""
    return f"{STUDIES_PREFIX}/{study_id}"


@router.get("/", response_model=ServedStudies, summary="The studies this service serves")
@router.get(STUDIES_PREFIX, response_model=ServedStudies, summary="The studies this service serves")
async def served_studies(request: Request) -> ServedStudies:
    root = request.scope.get("root_path", "")
    return ServedStudies(studies=[ServedStudy(study_id=study_id, url=f"{root}{study_path(study_id)}",
                                              docs=f"{root}{study_path(study_id)}/docs")
                                  for study_id in request.app.state.studies])


@several.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@several.get("/readyz", response_model=Readiness, summary="Every served study is ready (each study's checks)",
             responses={503: {"model": Readiness, "description": "a study is not ready; each failed check says why"}})
async def readyz(request: Request) -> JSONResponse:
    apps = request.app.state.studies
    found = await asyncio.gather(*(readiness_checks(app.state.store, app.state.registry, app.state.readiness)
                                   for app in apps.values()))
    return readiness_response({f"{study_id}/{check}": value for study_id, checks in zip(apps, found, strict=True)
                               for check, value in checks.items()})


@several.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unprefixed(path: str, request: Request) -> None:
    studies = ", ".join(request.app.state.studies)
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        detail=f"this service serves several studies ({studies}): the routes name the study, "
                               f"{STUDIES_PREFIX}/STUDY_ID/v1/{path}")
