"""The online API end to end on a tiny real Feast repo and MLflow registry."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.serving.conftest import FEATURES, KEY, OTHER_STUDY_KEY, SERVICE


def latest_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("event_timestamp").groupby("subject_id").tail(1).set_index("subject_id")


def test_features_are_the_latest_rows_with_their_event_times(client, setup, auth):
    response = client.get("/v1/subjects/S001/features", params={"service": SERVICE}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject_id"] == "S001" and body["service"] == SERVICE
    for view in ("daily", "sleep"):
        latest = latest_rows(setup.tables[view]).loc["S001"]
        for name in [c for c in setup.tables[view].columns if c.endswith(("_count", "_bpm", "_min", "_percent"))]:
            assert body["features"][name] == pytest.approx(latest[name])
        assert pd.Timestamp(body["event_timestamps"][view]) == latest["event_timestamp"]
        assert body["feature_ages_h"][view] == pytest.approx(24.0, abs=2.0)
    assert set(body["features"]) == set(FEATURES)


def test_a_view_without_a_row_has_null_values_and_age(client, auth):
    body = client.get("/v1/subjects/S004/features", params={"service": SERVICE}, headers=auth).json()
    assert body["features"]["total_sleep_time_night_min"] is None
    assert body["event_timestamps"]["sleep"] is None and body["feature_ages_h"]["sleep"] is None
    assert body["feature_ages_h"]["daily"] is not None


def online_frame(setup, subjects: list[str]) -> pd.DataFrame:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(setup.root))
    return store.get_online_features(features=store.get_feature_service(SERVICE),
                                     entity_rows=[{"subject_id": s} for s in subjects]).to_df()


def expected_scores(setup, name: str, version: str, subjects: list[str]) -> list[float]:
    import mlflow.sklearn

    from training.scoring import score

    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return score(model, online_frame(setup, subjects), FEATURES, "endpoint")["score"].tolist()


def test_scores_are_the_shared_scoring_function_on_online_features(client, setup, auth):
    subjects = ["S001", "S002", "S004"]
    response = client.post("/v1/score/risk", json={"subject_ids": [*subjects, "S005"]}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["registered_model"], body["version"], body["task"]) == \
        ("risk", "test-risk", "1", "endpoint")
    scores = body["scores"]
    assert [row["subject_id"] for row in scores] == [*subjects, "S005"]
    got = [row["score"] for row in scores[:3]]
    assert got == pytest.approx(expected_scores(setup, "test-risk", "1", subjects))
    assert all(0.0 <= value <= 1.0 for value in got)
    assert scores[0]["feature_ages_h"]["daily"] == pytest.approx(24.0, abs=2.0)
    assert scores[2]["feature_ages_h"]["sleep"] is None  # S004 has no sleep row: imputed, and said so
    unknown = scores[3]
    assert unknown["score"] is None and "no online features" in unknown["detail"]
    assert unknown["feature_ages_h"] == {"daily": None, "sleep": None}
    twice = client.post("/v1/score/risk", json={"subject_ids": ["S005", "S002", "S002"]}, headers=auth).json()
    assert [row["score"] for row in twice["scores"]] == [None, got[1], got[1]]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Bearer not-a-key"}, 401),
    ({"Authorization": f"Bearer {OTHER_STUDY_KEY}"}, 403),
])
def test_v1_needs_a_key_scoped_to_the_study(client, headers, status):
    for response in (client.get("/v1/subjects/S001/features", params={"service": SERVICE}, headers=headers),
                     client.post("/v1/score/risk", json={"subject_ids": ["S001"]}, headers=headers),
                     client.post("/v1/admin/reload", headers=headers)):
        assert response.status_code == status, response.text
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_oversize_bodies_are_refused(client, auth):
    big = {"subject_ids": [f"S{i:07d}" for i in range(600)]}  # about 7 KB, over the 4 KB limit
    assert client.post("/v1/score/risk", json=big, headers=auth).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"subject_ids": ['
        for i in range(600):
            yield f'"S{i:07d}", '.encode()
        yield b'"S001"]}'

    response = client.post("/v1/score/risk", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/score/risk", json={"subject_ids": ["S001"]}, headers=auth).status_code == 200


@pytest.mark.parametrize("body", [
    b'{"subject_ids": ["S001"',
    b'{"subject_ids": []}',
    b'{"subject_ids": [""]}',
    b'{"subject_ids": "S001"}',
    b'{"subject_ids": ["S001"], "as_of": "now"}',
    b'[]',
])
def test_malformed_requests_get_422_with_the_reason(client, auth, body):
    response = client.post("/v1/score/risk", content=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_more_than_1000_subjects_is_422(setup, auth):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    app = create_app(setup.settings.model_copy(update={"max_body_bytes": 64 * 1024}), registry=_NoModels())
    with TestClient(app) as client:
        response = client.post("/v1/score/risk", json={"subject_ids": [f"S{i}" for i in range(1001)]}, headers=auth)
    assert response.status_code == 422


class _NoModels:
    """A registry serving nothing (for tests that need no model)."""

    references: dict = {}
    models: dict = {}
    errors: dict = {}

    def load_all(self):
        return {}


def test_unknown_model_service_and_subject_are_404(client, auth):
    response = client.post("/v1/score/nope", json={"subject_ids": ["S001"]}, headers=auth)
    assert response.status_code == 404 and "risk" in response.json()["detail"]
    response = client.get("/v1/subjects/S001/features", params={"service": "nope_v9"}, headers=auth)
    assert response.status_code == 404
    assert "daily_v1" in response.json()["detail"] and SERVICE in response.json()["detail"]
    response = client.get("/v1/subjects/S999/features", params={"service": SERVICE}, headers=auth)
    assert response.status_code == 404 and "S999" in response.json()["detail"]
    assert client.get("/healthz").status_code == 200


class _BrokenStore:
    def list_feature_services(self):
        raise ConnectionError("online store unreachable")

    get_online_features = list_feature_views = list_feature_services


def test_readiness_follows_the_online_store(client):
    from serving.dependencies import get_store

    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"online_store": "ok", "materialized:daily": "ok",
                                         "materialized:sleep": "ok", "model:risk": "ok"}
    client.app.dependency_overrides[get_store] = _BrokenStore
    try:
        response = client.get("/readyz")
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 503
    assert "online store unreachable" in response.json()["checks"]["online_store"]
    assert client.get("/readyz").status_code == 200


def test_a_model_that_does_not_load_is_not_ready_and_not_served(setup, auth):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = setup.settings.model_copy(update={"models": {"ghost": "no-such-model@champion"}})
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "no-such-model@champion not loaded" in response.json()["checks"]["model:ghost"]
        response = client.post("/v1/score/ghost", json={"subject_ids": ["S001"]}, headers=auth)
        assert response.status_code == 503 and "not loaded" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_by_route_and_show_model_versions(client, auth):
    client.post("/v1/score/risk", json={"subject_ids": ["S001"]}, headers=auth)
    client.get("/v1/subjects/S002/features", params={"service": SERVICE}, headers=auth)
    client.get("/v1/subjects/S001/features", params={"service": SERVICE})
    text = client.get("/metrics").text
    assert 'biomarkers_http_requests_total{method="POST",route="/v1/score/{model}",status="200"}' in text
    assert 'biomarkers_http_requests_total{method="GET",route="/v1/subjects/{subject_id}/features",status="200"}' \
        in text
    assert 'biomarkers_http_requests_total{method="GET",route="/v1/subjects/{subject_id}/features",status="401"}' \
        in text
    assert 'biomarkers_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/score/{model}"' in text
    assert "S002" not in text  # route templates, never raw paths
    line = next(line for line in text.splitlines() if line.startswith("biomarkers_model_version{"))
    assert 'model="risk"' in line and 'registered_model="test-risk"' in line and line.endswith(" 1.0")


def test_openapi_documents_the_routes_and_the_bearer_scheme(client):
    schema = client.get("/openapi.json").json()
    score = schema["paths"]["/v1/score/{model}"]["post"]
    assert score["summary"] and score["security"] == [{"HTTPBearer": []}]
    assert "ScoreResponse" in schema["components"]["schemas"]
    everything = {"401", "403", "404", "413", "422", "503"}
    for path, method, codes in (("/v1/score/{model}", "post", everything),
                                ("/v1/subjects/{subject_id}/features", "get", everything),
                                ("/v1/events", "post", {"401", "403", "413", "422", "503"}),
                                ("/v1/models", "get", {"401", "403", "413"}),
                                ("/readyz", "get", {"503"})):
        responses = schema["paths"][path][method]["responses"]
        assert codes <= set(responses), (path, sorted(responses))
        for code in codes:  # every error documents its body
            assert responses[code]["content"]["application/json"]["schema"]["$ref"], (path, code)
    assert "Retry-After" in schema["paths"]["/v1/score/{model}"]["post"]["responses"]["503"]["headers"]


def test_the_docs_pages_load_their_scripts_from_the_service_itself(client):
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(source.endswith(script) for source in sources), sources
        assert all(source.startswith("/") for source in sources), sources  # nothing from the internet
        for source in sources:
            assert client.get(source).status_code == 200, source


def test_reload_serves_the_version_the_alias_moved_to(setup, auth):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    assert setup.register("test-reload", seed=2) == "1"
    settings = setup.settings.model_copy(update={"models": {"reload": "test-reload@champion"}})
    subjects = {"subject_ids": ["S001", "S002"]}
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/score/reload", json=subjects, headers=auth).json()["version"] == "1"
        assert setup.register("test-reload", seed=3) == "2"
        assert client.post("/v1/score/reload", json=subjects, headers=auth).json()["version"] == "1"
        assert client.post("/v1/admin/reload").status_code == 401
        response = client.post("/v1/admin/reload", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["changed"] == [{"name": "reload", "old_version": "1", "new_version": "2"}]
        body = client.post("/v1/score/reload", json=subjects, headers=auth).json()
        assert body["version"] == "2"
        assert [row["score"] for row in body["scores"]] == \
            pytest.approx(expected_scores(setup, "test-reload", "2", ["S001", "S002"]))
        assert client.post("/v1/admin/reload", headers=auth).json()["changed"] == []
        assert 'version="2"' not in client.get("/metrics").text  # the version is the gauge's value
        assert any(line.startswith("biomarkers_model_version{") and line.endswith(" 2.0")
                   for line in client.get("/metrics").text.splitlines())


def test_settings_keep_only_hashes_and_check_references(setup):
    from pydantic import ValidationError

    from serving.settings import hash_api_key

    assert hash_api_key(KEY) == setup.settings.api_keys[0].sha256 and KEY not in setup.settings.model_dump_json()
    with pytest.raises(ValidationError, match="NAME@ALIAS"):
        setup.settings.model_validate({**setup.settings.model_dump(), "models": {"risk": "test-risk"}})
    with pytest.raises(ValidationError):
        setup.settings.model_validate({**setup.settings.model_dump(), "max_body_bytes": 0})


def readiness_on_online_db(setup, folder: str):
    """``/readyz`` of the app on the setup's repo with its SQLite online store at ``folder/online.db``."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    yaml = (setup.root / "feature_store.yaml").read_text().replace("path: online.db", f"path: {folder}/online.db")
    (setup.root / f"{folder}_online.yaml").write_text(yaml)
    settings = setup.settings.model_copy(update={"feast_yaml_file": setup.root / f"{folder}_online.yaml"})
    with TestClient(create_app(settings)) as client:
        return client.get("/readyz")


def test_readiness_fails_on_a_real_online_store_without_the_tables(setup):
    response = readiness_on_online_db(setup, "empty")
    assert response.status_code == 503
    assert response.json()["checks"]["model:risk"] == "ok"
    assert "no online store file" in response.json()["checks"]["online_store"]


def test_readiness_fails_while_a_served_view_has_no_online_row(setup):
    """An online store that the views were applied to but never materialized into (or emptied)
    is not ready, and says which view and what to do."""
    import shutil
    import sqlite3

    (setup.root / "emptied").mkdir(exist_ok=True)
    shutil.copy(setup.root / "online.db", setup.root / "emptied" / "online.db")
    with sqlite3.connect(setup.root / "emptied" / "online.db") as db:
        db.execute("DELETE FROM serving_test_sleep")
    response = readiness_on_online_db(setup, "emptied")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["online_store"] == "ok" and checks["materialized:daily"] == "ok"
    assert "no row of this view" in checks["materialized:sleep"] and "materialize" in checks["materialized:sleep"]


def test_polling_follows_an_alias_without_a_call(setup, auth):
    import time

    from fastapi.testclient import TestClient

    from serving.app import create_app

    assert setup.register("test-poll", seed=4) == "1"
    settings = setup.settings.model_copy(update={"models": {"poll": "test-poll@champion"}, "reload_seconds": 0.2})
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models", headers=auth).json()[0]["version"] == "1"
        assert setup.register("test-poll", seed=5) == "2"
        deadline = time.monotonic() + 20
        while client.get("/v1/models", headers=auth).json()[0]["version"] != "2":
            assert time.monotonic() < deadline, "the poller did not load version 2"
            time.sleep(0.1)
        assert client.post("/v1/score/poll", json={"subject_ids": ["S001"]}, headers=auth).json()["version"] == "2"


def test_an_anomaly_model_scores_and_flags(setup, auth):
    import mlflow.sklearn
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from training.scoring import score

    version = setup.register("test-anomaly", seed=6, task="anomaly")
    settings = setup.settings.model_copy(update={"models": {"anomaly": "test-anomaly@champion"}})
    with TestClient(create_app(settings)) as client:
        body = client.post("/v1/score/anomaly", json={"subject_ids": ["S001", "S003"]}, headers=auth).json()
    assert body["task"] == "anomaly"
    expected = score(mlflow.sklearn.load_model(f"models:/test-anomaly/{version}"),
                     online_frame(setup, ["S001", "S003"]), FEATURES, "anomaly")
    assert [row["score"] for row in body["scores"]] == pytest.approx(expected["score"].tolist())
    assert [row["anomaly"] for row in body["scores"]] == expected["anomaly"].tolist()


def test_the_registry_snapshot_is_rebuilt_when_an_apply_changed_the_registry_and_only_then(setup, monkeypatch):
    """Requests read a snapshot of the Feast registry (rebuilding it costs some 70 ms). Once it is
    older than REGISTRY_REFRESH_S the registry is re-read: unchanged, the snapshot is kept; after
    another process's `feast apply`, it is rebuilt with the new objects."""
    from feast import FeatureService

    from serving import online
    from serving.app import open_store

    store, other = open_store(setup.settings), open_store(setup.settings)  # ``other``: another process
    first = online.registry_snapshot(store, refresh=True)
    assert online.registry_snapshot(store) is first  # fresh: not even re-read
    monkeypatch.setattr(online, "REGISTRY_REFRESH_S", 0.0)
    kept = online.registry_snapshot(store)
    assert kept.services is first.services and kept.version == first.version  # re-read, unchanged: kept
    other.apply([FeatureService(name="added_v1", features=[other.get_feature_view("daily")])])
    try:
        changed = online.registry_snapshot(store)
        assert "added_v1" in changed.services and changed.version != first.version
    finally:
        other.delete_feature_service("added_v1")
