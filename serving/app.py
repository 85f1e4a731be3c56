"""The online API: ``create_app(settings)`` assembles the routers, middleware and lifespan.

The lifespan opens the feature store and loads the models once (not at import), and, when
``settings.reload_seconds`` is set, polls the registry so a moved alias is served without a
restart. Tests pass a ready ``registry`` or ``store`` and swap dependencies with
``app.dependency_overrides``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from serving.alerts import AlertStore
from serving.middleware import BodySizeLimitMiddleware, MetricsMiddleware, RequestMetrics
from serving.models import ModelRegistry
from serving.online import KnownSubjects, OnlineStoreUnavailableError, StoreReadiness, fail_fast, registry_snapshot
from serving.routers import alerts, docs, events, features, health, models, scoring
from serving.settings import ServingSettings

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
               alert_store: AlertStore | None = None) -> FastAPI:
    """The FastAPI app of the online API.

    Parameters
    ----------
    settings : ServingSettings
    registry : ModelRegistry, optional
        Models to serve; by default one built from ``settings.models`` and loaded at start.
    store : feast.FeatureStore, optional
        By default the store of ``settings.feast_repo_path``, opened at start.
    alert_store : AlertStore, optional
        By default one on ``settings.alerts_url``, opened at start and closed at shutdown.
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
