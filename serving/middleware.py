"""ASGI middleware of the service: request size limit, and request metrics for Prometheus."""

from __future__ import annotations

import json
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

# Requests refused before routing (size limit) or matching no route share one label, so a
# scan of random paths cannot grow the metrics without bound.
UNROUTED = "unrouted"


async def _send_json(send, status: int, payload: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with 413, by the Content-Length header and by
    the bytes actually received (a chunked body or a lying header is counted as it arrives).

    The body is read before the application sees it (it is small by construction) and replayed.
    """

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"detail": f"request body larger than {self.max_body_bytes} bytes"}
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, 400, {"detail": "Content-Length is not an integer"})
                return
            if length > self.max_body_bytes:
                await _send_json(send, 413, too_large, [(b"connection", b"close")])
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away: let the app see it
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send_json(send, 413, too_large, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, model_registry_getter=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("biomarkers_http_requests", "HTTP requests by method, route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("biomarkers_http_request_duration_seconds",
                                 "HTTP request latency by method, route template and status (seconds)",
                                 ["method", "route", "status"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.events = Counter("biomarkers_vital_sign_events", "Vital-sign events posted to /v1/events, by outcome "
                              "(accepted; refused_invalid: a validation failure; refused_unknown_subject)",
                              ["outcome"], registry=self.registry)
        self.alerts = Counter("biomarkers_alerts", "NEWS2 urgent-response alerts raised, by risk band "
                              "(none: a single parameter scored 3 while another parameter was missing)",
                              ["risk_band"], registry=self.registry)
        if model_registry_getter is not None:
            self.registry.register(_ModelVersionCollector(model_registry_getter))


class _ModelVersionCollector:
    """``biomarkers_model_version``: the version each served model runs, read at scrape time."""

    def __init__(self, model_registry_getter):
        self._get = model_registry_getter

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily("biomarkers_model_version", "Registry version of each loaded model",
                                   labels=["model", "registered_model", "reference", "task", "run_id"])
        registry = self._get()
        for model in (registry.models.values() if registry is not None else ()):
            try:
                value = float(model.version)
            except ValueError:
                value = float("nan")
            family.add_metric([model.name, model.registered_model, model.reference, model.task, model.run_id], value)
        yield family


class MetricsMiddleware:
    """Count and time every HTTP request by method, route template (not the raw path) and status."""

    def __init__(self, app, metrics: RequestMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNROUTED
            labels = (scope["method"], template, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
