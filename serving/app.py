"""The online API: ``create_app(settings)`` assembles one study's routers, middleware and lifespan;
``create_studies_app(settings, ...)`` serves several studies side by side in one process.

The lifespan opens the feature store and loads the models once (not at import), and, when
``settings.reload_seconds`` is set, polls the registry so a moved alias is served without a
restart. Tests pass a ready ``registry`` or ``store`` and swap dependencies with
``app.dependency_overrides``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from serving.alerts import AlertStore
from serving.middleware import BodySizeLimitMiddleware, MetricsMiddleware, RequestMetrics
from serving.models import ModelRegistry
from serving.online import KnownSubjects, OnlineStoreUnavailableError, StoreReadiness, fail_fast, registry_snapshot
from serving.routers import alerts, docs, events, features, health, models, scoring, studies
from serving.settings import ApiKey, ServingSettings

logger = logging.getLogger(__name__)


def open_store(settings: ServingSettings):
    """The Feast feature store the settings name."""
    from feast import FeatureStore

    if settings.feast_yaml_file is None:
        return FeatureStore(repo_path=str(settings.feast_repo_path))
    return FeatureStore(repo_path=str(settings.feast_repo_path), fs_yaml_file=settings.feast_yaml_file)


async def _poll_aliases(registry: ModelRegistry, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(registry.refresh)
        except Exception:  # keep polling: a registry outage must not stop the service
            logger.exception("alias polling failed")


def create_app(settings: ServingSettings, *, registry: ModelRegistry | None = None, store=None,
               alert_store: AlertStore | None = None, other_studies_keys: Sequence[ApiKey] = ()) -> FastAPI:
    """The FastAPI app of the online API of one study.

    Parameters
    ----------
    settings : ServingSettings
    registry : ModelRegistry, optional
        Models to serve; by default one built from ``settings.models`` and loaded at start.
    store : feast.FeatureStore, optional
        By default the store of ``settings.feast_repo_path``, opened at start.
    alert_store : AlertStore, optional
        By default one on ``settings.alerts_url``, opened at start and closed at shutdown.
    other_studies_keys : sequence of ApiKey
        The keys of the other studies served by the same process: such a key gets 403 (a key of
        another study) rather than 401 (unknown). They grant nothing here.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        opened_alerts = app.state.alerts is None
        if opened_alerts:
            app.state.alerts = await asyncio.to_thread(AlertStore, settings.alerts_url, settings.study_id)
        if app.state.store is None:
            app.state.store = await asyncio.to_thread(open_store, settings)
        await asyncio.to_thread(fail_fast, app.state.store, settings.online_store_timeout_s)
        errors = await asyncio.to_thread(app.state.registry.load_all)
        for name, reason in errors.items():
            logger.error("serving without model %s: %s", name, reason)
        # Read before the first request: no request pays it (some 70 ms in Feast 0.67).
        await asyncio.to_thread(registry_snapshot, app.state.store, refresh=True)
        # The pool that runs sync endpoints (and run_in_threadpool): see ServingSettings.request_threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        poller = None
        if settings.reload_seconds > 0:
            poller = asyncio.create_task(_poll_aliases(app.state.registry, settings.reload_seconds))
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            if opened_alerts:
                await asyncio.to_thread(app.state.alerts.close)
                app.state.alerts = None

    # docs_url and redoc_url off: serving.routers.docs serves both pages from local files instead of a CDN.
    app = FastAPI(title="Digital biomarkers online API", version="1",
                  summary=f"Online features and scores of study {settings.study_id}", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.registry = registry or ModelRegistry(settings.tracking_uri, settings.models)
    app.state.metrics = RequestMetrics(lambda: app.state.registry)
    app.state.alerts = alert_store
    app.state.known_subjects = KnownSubjects()
    app.state.other_studies_keys = tuple(other_studies_keys)
    # The probe may take a connect and a read timeout, then some scans: four timeouts at least.
    app.state.readiness = StoreReadiness(settings.online_store_timeout_s,
                                         deadline_s=max(2.0, 4 * settings.online_store_timeout_s))
    @app.exception_handler(OnlineStoreUnavailableError)
    async def _store_unavailable(request: Request, error: OnlineStoreUnavailableError) -> JSONResponse:
        # 503 and Retry-After: the store comes back by itself (the client reconnects on the next call).
        logger.warning("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": "5"})

    for router in (health.router, features.router, scoring.router, models.router, events.router, alerts.router,
                   docs.router):
        app.include_router(router)
    app.mount(docs.STATIC_URL, docs.static_files(), name="docs-static")
    # Added last = outermost: metrics also count the requests the size limit refuses.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def create_studies_app(settings: Sequence[ServingSettings]) -> FastAPI:
    """The online API of several studies in one process, each apart from the others.

    Each study gets its own app (:func:`create_app`: its Feast store, model registry, alerts store
    and known-subject cache), mounted under ``/studies/{study_id}`` with its OpenAPI pages
    (``/studies/demo/docs``). ``GET /studies`` lists the studies. With one study its routes are
    also at the root, as :func:`create_app` serves them (``/v1/...``, ``/docs``, ``/healthz``);
    with several, ``/healthz`` and ``/readyz`` answer for the whole process (ready when every
    study is; each study's checks named ``study_id/check``).

    Parameters
    ----------
    settings : sequence of ServingSettings
        One per study; the study ids must differ, and so must their Feast repos.

    Raises
    ------
    ValueError
        No study, two with one study id, or two reading one Feast repo.
    """
    _check_apart(settings)
    apps = {study.study_id: create_app(study, other_studies_keys=[key for other in settings
                                                                  if other.study_id != study.study_id
                                                                  for key in other.api_keys])
            for study in settings}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # Starlette runs the lifespan of the app it serves, never of a mounted one: each study's
        # store, alerts and models open here, and close in reverse order (also when one fails to start).
        async with contextlib.AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            # One thread pool per process, which each study's lifespan sized for itself: every study
            # brings its own threads, so a slow study does not hold the others' requests.
            anyio.to_thread.current_default_thread_limiter().total_tokens = sum(study.request_threads
                                                                                for study in settings)
            yield

    # No OpenAPI page of its own (each study has one): it would also hide the single study's /openapi.json.
    parent = FastAPI(title="Digital biomarkers online API", version="1", lifespan=lifespan,
                     openapi_url=None, docs_url=None, redoc_url=None)
    parent.state.studies = apps
    parent.include_router(studies.router)
    if len(apps) > 1:
        parent.include_router(studies.several)
    for study_id, app in apps.items():
        parent.mount(studies.study_path(study_id), app, name=f"study:{study_id}")
    if len(apps) == 1:
        (app,) = apps.values()
        parent.mount("", app, name="study")  # last: the routes of one study as create_app serves them
    return parent


def _check_apart(settings: Sequence[ServingSettings]) -> None:
    """Refuse what would let one study see another's state: one study id twice, one Feast repo for two."""
    if not settings:
        raise ValueError("no study to serve: give at least one study")
    problems = []
    by_id: dict[str, int] = {}
    for study in settings:
        by_id[study.study_id] = by_id.get(study.study_id, 0) + 1
    problems += [f"study {study_id!r} is given {count} times: each study is served once, under "
                 f"{studies.study_path(study_id)}" for study_id, count in by_id.items() if count > 1]
    by_repo: dict[Path, list[str]] = {}
    for study in settings:
        by_repo.setdefault(study.feast_repo_path.resolve(), []).append(study.study_id)
    problems += [f"studies {', '.join(map(repr, ids))} would share the Feast repo {repo}: give each study its own "
                 "data_root" for repo, ids in by_repo.items() if len(set(ids)) > 1]
    if problems:
        raise ValueError("; ".join(problems))
