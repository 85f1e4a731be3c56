"""The online HTTP API: online features and scores of a study's subjects.

``serving.app.create_app(ServingSettings(...))`` builds the FastAPI app; the CLI builds the
settings from the study configuration. Endpoints: ``GET /v1/subjects/{subject_id}/features``,
``POST /v1/score/{model}``, ``GET /v1/models``, ``POST /v1/admin/reload`` (all with an API key),
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and the OpenAPI pages at ``/docs``.
"""
