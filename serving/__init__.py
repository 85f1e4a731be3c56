"""The online HTTP API: online features and scores of a study's subjects.

``serving.app.create_app(ServingSettings(...))`` builds the FastAPI app of one study;
``serving.app.create_studies_app([...])`` serves several studies in one process, each under
``/studies/{study_id}`` with its own store, models, alerts and keys. The CLI builds the settings
from each study's configuration. Endpoints: ``GET /v1/subjects/{subject_id}/features``,
``POST /v1/score/{model}``, ``GET /v1/models``, ``POST /v1/admin/reload`` (all with an API key),
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and the OpenAPI pages at ``/docs``.
"""
