"""FastAPI dependencies: the settings, the feature store, the model registry and the API key check.

Everything comes from the app's state, set once by ``create_app`` and its lifespan; tests swap
any of these with ``app.dependency_overrides``. They are ``async`` because none blocks: FastAPI
runs a sync dependency in its thread pool, a trip per dependency per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.alerts import AlertStore
from serving.middleware import RequestMetrics
from serving.models import ModelRegistry
from serving.online import KnownSubjects, StoreReadiness
from serving.settings import ApiKey, ServingSettings, hash_api_key

_bearer = HTTPBearer(auto_error=False, description="An API key scoped to this study: `Authorization: Bearer <key>`")


async def get_settings(request: Request) -> ServingSettings:
    """The one settings object of the app."""
    return request.app.state.settings


async def get_store(request: Request):
    """The Feast feature store, opened once at start."""
    return request.app.state.store


async def get_registry(request: Request) -> ModelRegistry:
    """The loaded models."""
    return request.app.state.registry


async def get_alerts(request: Request) -> AlertStore:
    """The alerts store of the study."""
    return request.app.state.alerts


async def get_known_subjects(request: Request) -> KnownSubjects:
    """The app's cache of subjects the online store knows."""
    return request.app.state.known_subjects


async def get_readiness(request: Request) -> StoreReadiness:
    """The app's online store readiness probe."""
    return request.app.state.readiness


async def get_metrics(request: Request) -> RequestMetrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(request: Request, settings: Annotated[ServingSettings, Depends(get_settings)],
                          credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
    """The caller's key: 401 when missing, malformed or unknown, 403 when not scoped to this study.

    A key that only another study served by this process lists (``app.state.other_studies_keys``)
    gets 403 too: it is a real key, of another study.
    """
    if credentials is None or not credentials.credentials.strip():
        raise _unauthorized("missing or malformed Authorization header: send `Authorization: Bearer <key>`")
    presented = hash_api_key(credentials.credentials.strip())
    found = _match(presented, settings.api_keys)
    if found is None:
        elsewhere = _match(presented, getattr(request.app.state, "other_studies_keys", ()))
        if elsewhere is None:
            raise _unauthorized("unknown API key")
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"the key {elsewhere.name!r} is not allowed to read study {settings.study_id!r}: "
                                   f"it is a key of another study; study {settings.study_id!r} does not list it "
                                   "under serving.api_keys")
    if settings.study_id not in found.studies:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"the key {found.name!r} is not allowed to read study {settings.study_id!r}")
    return found


def _match(presented: str, keys) -> ApiKey | None:
    """The key of ``keys`` whose hash is ``presented``; every key is compared, so timing does not tell which."""
    found = None
    for key in keys:
        if hmac.compare_digest(presented, key.sha256):
            found = key
    return found


# Annotated parameter types for the routers (FastAPI's recommended form).
SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
StoreDep = Annotated[Any, Depends(get_store)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
AlertsDep = Annotated[AlertStore, Depends(get_alerts)]
MetricsDep = Annotated[RequestMetrics, Depends(get_metrics)]
KnownSubjectsDep = Annotated[KnownSubjects, Depends(get_known_subjects)]
ReadinessDep = Annotated[StoreReadiness, Depends(get_readiness)]
