"""Several studies served by one process (``biomarkers serve A B``, ``biomarkers stream A B``), each apart.

Two tiny real studies, ``alpha`` and ``beta``, each with its own Feast repo and online store, its
own MLflow store (both holding a ``risk`` model) and other subjects (A001-A005, B001-B005), share
one alerts database, as studies on one PostgreSQL do: what one study holds must not show through
the other's routes.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from serving.settings import ApiKey, hash_api_key
from tests.serving.conftest import SERVICE, build_setup
from tests.serving.test_events import NORMAL, URGENT

pytestmark = pytest.mark.slow

ALPHA_KEY, BETA_KEY, BOTH_KEY = "key-of-alpha", "key-of-beta", "key-of-both-studies"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The two studies' setups, by study id, with their keys and one shared alerts database."""
    import mlflow

    previous = mlflow.get_tracking_uri()  # build_setup sets the process-wide URI; later modules expect theirs
    alerts_url = f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'alerts.db'}"
    both = ApiKey(name="ward dashboard", sha256=hash_api_key(BOTH_KEY), studies=("alpha", "beta"))
    setups = {}
    for study, prefix, seed, key in (("alpha", "A", 11, ALPHA_KEY), ("beta", "B", 12, BETA_KEY)):
        setup = build_setup(tmp_path_factory.mktemp(study), study=study,
                            subjects=[f"{prefix}{number:03d}" for number in range(1, 6)], seed=seed)
        setup.settings = setup.settings.model_copy(update={
            "alerts_url": alerts_url,
            "api_keys": (ApiKey(name=f"{study} app", sha256=hash_api_key(key), studies=(study,)), both)})
        setups[study] = setup
    yield setups
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def served(studies):
    """A client of both studies served together (the parent's lifespan run: every study started)."""
    from fastapi.testclient import TestClient

    from serving.app import create_studies_app

    app = create_studies_app([setup.settings for setup in studies.values()])
    with TestClient(app) as client:
        yield client


def latest(setup, view: str, subject: str) -> pd.Series:
    frame = setup.tables[view]
    return frame[frame["subject_id"] == subject].sort_values("event_timestamp").iloc[-1]


@pytest.mark.parametrize(("study", "key", "subject"), [("alpha", ALPHA_KEY, "A001"), ("beta", BETA_KEY, "B002")])
def test_each_study_answers_with_its_own_features_and_model(served, studies, study, key, subject):
    from mlflow import MlflowClient

    setup = studies[study]
    response = served.get(f"/studies/{study}/v1/subjects/{subject}/features", params={"service": SERVICE},
                          headers=_auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["features"]["steps_sum_1d_count"] == \
        pytest.approx(latest(setup, "daily", subject)["steps_sum_1d_count"])

    scored = served.post(f"/studies/{study}/v1/score/risk", json={"subject_ids": [subject]}, headers=_auth(key))
    assert scored.status_code == 200, scored.text
    body = scored.json()
    assert body["registered_model"] == f"{study}-risk" and body["scores"][0]["score"] is not None
    models = served.get(f"/studies/{study}/v1/models", headers=_auth(key)).json()
    own_run = MlflowClient(tracking_uri=setup.tracking_uri).get_model_version(f"{study}-risk", "1").run_id
    assert [(model["registered_model"], model["run_id"]) for model in models] == [(f"{study}-risk", own_run)]


def test_a_subject_of_one_study_is_unknown_to_the_other(served):
    for study, key, stranger in (("beta", BETA_KEY, "A001"), ("alpha", ALPHA_KEY, "B001")):
        response = served.get(f"/studies/{study}/v1/subjects/{stranger}/features", params={"service": SERVICE},
                              headers=_auth(key))
        assert response.status_code == 404, response.text
        assert f"no online features for subject {stranger!r}" in response.json()["detail"]
        scores = served.post(f"/studies/{study}/v1/score/risk", json={"subject_ids": [stranger]},
                             headers=_auth(key)).json()["scores"]
        assert scores[0]["score"] is None
        events = served.post(f"/studies/{study}/v1/events", headers=_auth(key), json={"events": [
            {"subject_id": stranger, "timestamp": datetime.now(UTC).isoformat(), **NORMAL}]})
        assert events.status_code == 422 and stranger in events.text


def test_a_key_of_one_study_gets_403_on_the_other_with_the_reason(served):
    for study, foreign in (("beta", ALPHA_KEY), ("alpha", BETA_KEY)):
        for response in (served.get(f"/studies/{study}/v1/models", headers=_auth(foreign)),
                         served.post(f"/studies/{study}/v1/score/risk", json={"subject_ids": ["A001"]},
                                     headers=_auth(foreign)),
                         served.get(f"/studies/{study}/v1/alerts", headers=_auth(foreign))):
            assert response.status_code == 403, response.text
            detail = response.json()["detail"]
            assert f"not allowed to read study {study!r}" in detail and "a key of another study" in detail
        assert served.get(f"/studies/{study}/v1/models", headers=_auth("no-such-key")).status_code == 401
        assert served.get(f"/studies/{study}/v1/models", headers=_auth(BOTH_KEY)).status_code == 200


def test_alerts_of_one_study_stay_in_it_though_both_share_a_database(served):
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    posted = served.post("/studies/alpha/v1/events", headers=_auth(ALPHA_KEY),
                         json={"events": [{"subject_id": "A002", "timestamp": when.isoformat(), **URGENT}]})
    assert posted.status_code == 200, posted.text
    alpha = served.get("/studies/alpha/v1/alerts", params={"subject_id": "A002"}, headers=_auth(BOTH_KEY)).json()
    assert [pd.Timestamp(alert["event_time"]) for alert in alpha] == [pd.Timestamp(when)]
    assert served.get("/studies/beta/v1/alerts", headers=_auth(BOTH_KEY)).json() == []


def test_every_study_was_started_by_the_parents_lifespan_each_with_its_own_state(studies):
    """Starlette runs no mounted app's lifespan: the parent's enters each one, and exits them at shutdown."""
    from fastapi.testclient import TestClient

    from serving.app import create_studies_app

    app = create_studies_app([setup.settings for setup in studies.values()])
    apps = app.state.studies
    assert list(apps) == ["alpha", "beta"] and all(study.state.store is None for study in apps.values())
    with TestClient(app) as client:
        for study_id, study in apps.items():
            assert study.state.store is not None and study.state.alerts is not None
            assert study.state.store.project == f"serving_{study_id}"
            assert study.state.registry.models["risk"].registered_model == f"{study_id}-risk"
            ready = client.get(f"/studies/{study_id}/readyz")
            assert ready.status_code == 200 and ready.json()["checks"]["model:risk"] == "ok", ready.text
        for name in ("store", "registry", "alerts", "known_subjects", "readiness", "metrics"):
            assert getattr(apps["alpha"].state, name) is not getattr(apps["beta"].state, name), name
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert {"alpha/model:risk", "beta/model:risk", "alpha/online_store", "beta/online_store"} <= \
            set(ready.json()["checks"])
        assert client.get("/healthz").json() == {"status": "ok"}
    assert all(study.state.alerts is None for study in apps.values())  # closed at shutdown


def test_a_study_that_fails_to_start_stops_the_others_cleanly(studies, tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_studies_app

    broken = studies["beta"].settings.model_copy(update={"feast_repo_path": tmp_path})  # no feature_store.yaml
    app = create_studies_app([studies["alpha"].settings, broken])
    with pytest.raises(FileNotFoundError, match="feature_store.yaml"), TestClient(app):
        pass
    assert app.state.studies["alpha"].state.alerts is None  # alpha started, then was shut down


def test_the_studies_are_listed_without_secrets(served):
    for path in ("/studies", "/"):
        response = served.get(path)
        assert response.status_code == 200
        assert response.json() == {"studies": [
            {"study_id": "alpha", "url": "/studies/alpha", "docs": "/studies/alpha/docs"},
            {"study_id": "beta", "url": "/studies/beta", "docs": "/studies/beta/docs"}]}


def test_each_study_documents_itself_offline_under_its_prefix(served):
    for study in ("alpha", "beta"):
        page = served.get(f"/studies/{study}/docs")
        assert page.status_code == 200
        assert f"/studies/{study}/openapi.json" in page.text
        for asset in re.findall(rf"/studies/{study}/docs-static/[\w.-]+", page.text):
            assert served.get(asset).status_code == 200, asset
        assert f"/studies/{study}/docs-static/swagger-ui-bundle.js" in page.text
        assert served.get(f"/studies/{study}/redoc").status_code == 200
        document = served.get(f"/studies/{study}/openapi.json").json()
        assert document["servers"] == [{"url": f"/studies/{study}"}]  # Swagger's "try it out" calls the study
        assert study in document["info"]["summary"] and "/v1/score/{model}" in document["paths"]


def test_unprefixed_routes_with_several_studies_say_where_to_go(served):
    response = served.get("/v1/models", headers=_auth(ALPHA_KEY))
    assert response.status_code == 404
    assert "/studies/STUDY_ID/v1/models" in response.json()["detail"] and "alpha, beta" in response.json()["detail"]
    assert served.get("/docs").status_code == 404


def test_one_study_keeps_its_unprefixed_routes(studies):
    from fastapi.testclient import TestClient

    from serving.app import create_studies_app

    app = create_studies_app([studies["alpha"].settings])
    with TestClient(app) as client:
        for root in ("", "/studies/alpha"):
            response = client.get(f"{root}/v1/subjects/A001/features", params={"service": SERVICE},
                                  headers=_auth(ALPHA_KEY))
            assert response.status_code == 200, response.text
            assert client.get(f"{root}/healthz").json() == {"status": "ok"}
            assert client.get(f"{root}/readyz").status_code == 200
            assert client.get(f"{root}/openapi.json").status_code == 200
            page = client.get(f"{root}/docs")
            assert page.status_code == 200 and f"{root}/docs-static/swagger-ui-bundle.js" in page.text
            assert client.get(f"{root}/docs-static/swagger-ui-bundle.js").status_code == 200
        assert client.get("/studies").json()["studies"] == [
            {"study_id": "alpha", "url": "/studies/alpha", "docs": "/studies/alpha/docs"}]
        assert client.get("/studies/beta/healthz").status_code == 404
    assert app.state.studies["alpha"].state.alerts is None


def test_a_study_given_twice_or_two_studies_on_one_feast_repo_are_refused(studies):
    from serving.app import create_studies_app

    alpha, beta = studies["alpha"].settings, studies["beta"].settings
    with pytest.raises(ValueError, match=r"study 'alpha' is given 2 times"):
        create_studies_app([alpha, beta, alpha])
    with pytest.raises(ValueError, match=r"studies 'alpha', 'beta' would share the Feast repo"):
        create_studies_app([alpha, beta.model_copy(update={"feast_repo_path": alpha.feast_repo_path})])
    with pytest.raises(ValueError, match="no study to serve"):
        create_studies_app([])


def test_two_studies_loading_models_at_once_each_load_their_own(studies, monkeypatch):
    """MLflow resolves runs:/ and models:/ through one process-wide tracking URI: two studies' registries
    loading at once (alias polling) must not read each other's store."""
    import time

    import mlflow.artifacts

    from serving.models import ModelRegistry

    real_load_dict = mlflow.artifacts.load_dict

    def slow_load_dict(uri):
        time.sleep(0.2)  # room for the other thread to move the process-wide URI, without the lock
        return real_load_dict(uri)

    monkeypatch.setattr(mlflow.artifacts, "load_dict", slow_load_dict)
    registries = {study: ModelRegistry(setup.tracking_uri, {"risk": f"{study}-risk@champion"})
                  for study, setup in studies.items()}
    errors = {}

    def load(study):
        for _ in range(3):
            errors.setdefault(study, []).append(registries[study].load_all(names=["risk"]))

    threads = [threading.Thread(target=load, args=(study,)) for study in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == {"alpha": [{}] * 3, "beta": [{}] * 3}
    for study, registry in registries.items():
        assert registry.models["risk"].registered_model == f"{study}-risk"


# --- the CLI -----------------------------------------------------------------------------------------


def _study_yaml(folder, study_id: str):
    folder.mkdir()
    (folder / "subjects.csv").write_text("subject_id\nS0001\n")
    (folder / "endpoints.csv").write_text("subject_id,index_time,endpoint,outcome\n")
    study = folder / "study.yaml"
    study.write_text(f"study_id: {study_id}\ndata_root: .\nsubjects: {{path: subjects.csv}}\n"
                     "endpoints: {path: endpoints.csv}\nsources: {}\n")
    return study


def test_the_cli_builds_one_app_of_the_studies_each_with_its_own_feast_repo(tmp_path):
    from starlette.routing import Mount

    from pipelines.cli import serving_settings
    from pipelines.config import load_study
    from serving.app import create_studies_app

    settings = [serving_settings(load_study(_study_yaml(tmp_path / name, name)), None, None)
                for name in ("one", "two")]
    assert [study.study_id for study in settings] == ["one", "two"]
    assert settings[0].feast_repo_path != settings[1].feast_repo_path
    assert settings[0].alerts_url != settings[1].alerts_url and settings[0].tracking_uri != settings[1].tracking_uri
    app = create_studies_app(settings)
    assert [route.path for route in app.routes if isinstance(route, Mount)] == ["/studies/one", "/studies/two"]


def test_the_cli_refuses_a_study_given_twice_and_one_study_options_with_several(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    one, two = _study_yaml(tmp_path / "one", "one"), _study_yaml(tmp_path / "two", "two")
    runner = CliRunner()
    twice = runner.invoke(app, ["serve", str(one), str(one)])
    assert twice.exit_code == 2 and "study 'one' is given 2 times" in twice.output
    shared = runner.invoke(app, ["serve", str(one), str(two), "--data-root", str(tmp_path)])
    assert shared.exit_code == 2 and "--data-root" in shared.output
    topic = runner.invoke(app, ["stream", str(one), str(two), "--bootstrap", "127.0.0.1:9", "--topic", "events"])
    assert topic.exit_code == 2 and "--topic must contain {study_id}" in topic.output.replace("\n", " ")
    again = runner.invoke(app, ["stream", str(one), str(one), "--bootstrap", "127.0.0.1:9"])
    assert again.exit_code == 2 and "given more than once" in again.output


# --- the stream --------------------------------------------------------------------------------------


def test_the_stream_names_are_per_study():
    from serving.settings import StreamSettings

    settings = StreamSettings.for_study("demo", "127.0.0.1:9092")
    assert (settings.events_topic, settings.dead_letter_topic, settings.alerts_topic, settings.group_id) == \
        ("demo.vital-signs", "demo.vital-signs.dead-letter", "demo.vital-signs.alerts", "biomarkers-demo")
    with pytest.raises(ValueError, match="events_topic"):
        StreamSettings.for_study("demo", "127.0.0.1:9092", events_topic="{study}.events")


def test_an_event_naming_another_study_is_refused():
    from serving.stream import parse_event

    body = b'{"study_id": "%s", "subject_id": "A001", "timestamp": "2026-01-01T08:00:00Z", "heart_rate_bpm": 80}'
    assert parse_event(body % b"alpha", "alpha").subject_id == "A001"
    assert parse_event(body.replace(b'"study_id": "%s", ', b""), "alpha").subject_id == "A001"
    refused = parse_event(body % b"beta", "alpha")
    assert refused == ("event of study 'beta' on the events topic of study 'alpha': produce it to its own "
                       "study's topic")


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    from tests.kafka_broker import tansu_broker

    with tansu_broker(tmp_path_factory.mktemp("tansu") / "broker.log") as bootstrap:
        yield bootstrap


def test_two_studies_streamed_side_by_side_each_keep_their_events(studies, broker):
    """One consumer per study in one process (``run_consumers``): each pushes its topic's events to its own
    store and alerts; a subject of the other study and an event naming it go to the study's dead letters."""
    import json

    from feast import FeatureStore

    from serving.alerts import AlertStore
    from serving.settings import StreamSettings
    from serving.stream import EventStreamConsumer, run_consumers
    from tests.kafka_broker import create_topics, produce, read_topic

    suffix = uuid.uuid4().hex[:8]
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=40)

    def event(subject, **extra):
        return subject.encode(), json.dumps({"subject_id": subject, "timestamp": when.isoformat(), **URGENT,
                                             **extra}).encode()

    consumers, closing = [], []
    for study, setup in studies.items():
        stream = StreamSettings.for_study(study, broker, events_topic=f"{{study_id}}.vital-signs-{suffix}",
                                          dead_letter_topic=f"{{study_id}}.dead-{suffix}",
                                          alerts_topic=f"{{study_id}}.alerts-{suffix}", max_batch_events=50,
                                          session_timeout_ms=6000, group_id=f"{{study_id}}-{suffix}")
        create_topics(broker, stream.events_topic, stream.dead_letter_topic, stream.alerts_topic)
        alerts = AlertStore(setup.settings.alerts_url, study)
        closing.append(alerts)
        consumers.append(EventStreamConsumer(stream, study, FeatureStore(repo_path=str(setup.root)), alerts))
    alpha, beta = consumers
    produce(broker, alpha.settings.events_topic, [event("A003"), event("B003"), event("A004", study_id="beta")])
    produce(broker, beta.settings.events_topic, [event("B003", study_id="beta")])

    stop = threading.Event()
    runner = threading.Thread(target=lambda: run_consumers(consumers, stop, log_every_s=0.2))
    runner.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=90)
        while (alpha.counts.events + alpha.counts.dead_letters < 3 or beta.counts.events < 1) and \
                datetime.now(UTC) < deadline:
            stop.wait(0.1)
    finally:
        stop.set()
        runner.join(60)
        for alerts in closing:
            alerts.close()
    assert (alpha.counts.events, alpha.counts.dead_letters, beta.counts.events, beta.counts.dead_letters) == \
        (1, 2, 1, 0)
    reasons = sorted(dict(message.headers())["error"].decode()
                     for message in read_topic(broker, alpha.settings.dead_letter_topic, 2))
    assert reasons[0].startswith("event of study 'beta' on the events topic of study 'alpha'")
    assert reasons[1].startswith("unknown subject 'B003'") and "study 'alpha'" in reasons[1]
    produced = {consumer.study_id: [json.loads(message.value())
                                    for message in read_topic(broker, consumer.settings.alerts_topic, 1)]
                for consumer in consumers}
    assert [(alert["study_id"], alert["subject_id"]) for alert in produced["alpha"]] == [("alpha", "A003")]
    assert [(alert["study_id"], alert["subject_id"]) for alert in produced["beta"]] == [("beta", "B003")]
    for study, subject in (("alpha", "A003"), ("beta", "B003")):
        store = AlertStore(studies[study].settings.alerts_url, study)
        try:
            assert [alert.subject_id for alert in store.list(since=None, limit=1000)
                    if alert.source == "stream" and alert.event_time == when] == [subject]
        finally:
            store.close()
