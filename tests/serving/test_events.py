"""Vital-sign events, NEWS2 alerts and the alerts store, end to end on the tiny real setup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.biomarkers.vitals import news2_parameter_points, news2_risk_band, news2_score
from serving.alerts import AlertStore

NORMAL = {"heart_rate_bpm": 72, "respiratory_rate_per_min": 16, "spo2_percent": 97, "temperature_deg_c": 36.8,
          "systolic_bp_mmhg": 124, "consciousness_avpu": "A", "supplemental_oxygen": False}
URGENT = {"heart_rate_bpm": 118, "respiratory_rate_per_min": 23, "spo2_percent": 93, "temperature_deg_c": 38.4,
          "systolic_bp_mmhg": 104, "consciousness_avpu": "A", "supplemental_oxygen": True}
ORDER = ("respiratory_rate_per_min", "spo2_percent", "supplemental_oxygen", "systolic_bp_mmhg", "heart_rate_bpm",
         "consciousness_avpu", "temperature_deg_c")


def expected_news2(vitals: dict) -> tuple[float, str]:
    args = [vitals[name] for name in ORDER]
    score = news2_score(*args)
    band = news2_risk_band(score, news2_parameter_points(*args).max(axis=1))
    return float(score[0]), band[0]


def event(subject: str, when: datetime, **vitals) -> dict:
    return {"subject_id": subject, "timestamp": when.isoformat(), **vitals}


def alerts_of(client, auth, subject: str) -> list[dict]:
    response = client.get("/v1/alerts", params={"subject_id": subject}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_batch_scores_news2_with_the_vitals_functions_and_alerts_only_the_urgent_event(client, auth):
    before = datetime.now(UTC)
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    local = when.astimezone(pd.Timestamp(0, tz="Europe/Paris").tz)  # an offset is accepted and returned in UTC
    body = {"events": [event("S001", local, **NORMAL), event("S002", when + timedelta(minutes=5), **URGENT)]}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    normal, urgent = answer["results"]
    assert (normal["news2"], normal["risk_band"]) == expected_news2(NORMAL)
    assert (urgent["news2"], urgent["risk_band"]) == expected_news2(URGENT)
    assert urgent["news2"] >= 5 and not np.isnan(urgent["news2"])
    assert normal["alert"] is False and normal["detail"] is None
    assert urgent["alert"] is True and "NEWS2" in urgent["detail"]
    assert pd.Timestamp(normal["timestamp"]) == pd.Timestamp(when)
    assert alerts_of(client, auth, "S001") == []
    (alert,) = alerts_of(client, auth, "S002")
    assert (alert["subject_id"], alert["news2"], alert["risk_band"], alert["source"]) == \
        ("S002", urgent["news2"], urgent["risk_band"], "api")
    assert pd.Timestamp(alert["event_time"]) == pd.Timestamp(when + timedelta(minutes=5))
    assert pd.Timestamp(alert["recorded_at"]) >= pd.Timestamp(before)
    listed = client.get("/v1/alerts", params={"since": before.isoformat()}, headers=auth).json()
    assert alert in listed
    assert client.get("/v1/alerts", params={"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                      headers=auth).json() == []


def test_a_single_red_parameter_alerts_and_alerts_list_newest_first(client, auth):
    when = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    red = {**NORMAL, "consciousness_avpu": "V"}  # 3 points alone: NEWS2 3, low_medium
    first = client.post("/v1/events", json={"events": [event("S003", when, **red)]}, headers=auth).json()
    second = client.post("/v1/events", json={"events": [event("S003", when + timedelta(hours=1), **URGENT)]},
                         headers=auth).json()
    assert first["results"][0]["risk_band"] == "low_medium" and first["results"][0]["alert"] is True
    assert "consciousness" in first["results"][0]["detail"]
    assert second["results"][0]["alert"] is True
    listed = alerts_of(client, auth, "S003")
    assert [pd.Timestamp(row["event_time"]) for row in listed[:2]] == \
        [pd.Timestamp(when + timedelta(hours=1)), pd.Timestamp(when)]
    assert len(client.get("/v1/alerts", params={"subject_id": "S003", "limit": 1}, headers=auth).json()) == 1


def test_a_missing_parameter_is_not_invented(client, auth):
    partial = {key: value for key, value in NORMAL.items() if key not in ("temperature_deg_c", "consciousness_avpu")}
    response = client.post("/v1/events", json={"events": [event("S004", datetime(2026, 3, 3, tzinfo=UTC),
                                                                 **partial)]}, headers=auth)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["news2"] is None and result["risk_band"] is None and result["alert"] is False
    assert "consciousness_avpu" in result["detail"] and "temperature_deg_c" in result["detail"]


def test_an_implausible_value_refuses_the_whole_batch(client, auth):
    alerts_before = alerts_of(client, auth, "S001")
    body = {"events": [event("S001", datetime(2026, 3, 4, tzinfo=UTC), **URGENT),
                       event("S002", datetime(2026, 3, 4, tzinfo=UTC), **{**NORMAL, "heart_rate_bpm": 350})]}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events", 1, "heart_rate_bpm"]
    assert "[20, 300]" in error["msg"] and "350" in error["msg"]
    assert alerts_of(client, auth, "S001") == alerts_before


@pytest.mark.parametrize(("bad", "words"), [
    ({"timestamp": "2026-03-05T08:00:00"}, "no time zone"),
    ({"spo2_percent": 40}, "[50, 100]"),
    ({"consciousness_avpu": "X"}, "'A'"),
    ({"spo2_scale": 3}, "1 or 2"),
    ({"blood_glucose_mmol_l": 5.0}, "Extra inputs"),
])
def test_invalid_events_are_422_with_the_reason(client, auth, bad, words):
    body = {"events": [{**event("S001", datetime(2026, 3, 5, tzinfo=UTC), **NORMAL), **bad}]}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422
    assert words in response.text and '"events",0' in response.text.replace(" ", "")


@pytest.mark.parametrize("body", [{"events": []}, {"events": [{"subject_id": "S001",
                                                               "timestamp": "2026-03-05T08:00:00Z"}]}])
def test_empty_batches_and_events_without_a_measurement_are_422(client, auth, body):
    assert client.post("/v1/events", json=body, headers=auth).status_code == 422


def test_an_unknown_subject_refuses_the_batch(client, auth):
    alerts_before = alerts_of(client, auth, "S002")
    body = {"events": [event("S002", datetime(2026, 3, 6, tzinfo=UTC), **URGENT),
                       event("S999", datetime(2026, 3, 6, tzinfo=UTC), **NORMAL)]}
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422
    assert "'S999'" in response.json()["detail"] and "'S002'" not in response.json()["detail"]
    assert alerts_of(client, auth, "S002") == alerts_before
    # S005 is in no feature table: not a subject of the online store either.
    lone = {"events": [event("S005", datetime(2026, 3, 6, tzinfo=UTC), **NORMAL)]}
    assert "'S005'" in client.post("/v1/events", json=lone, headers=auth).json()["detail"]


def test_events_and_alerts_need_a_key(client):
    body = {"events": [event("S001", datetime(2026, 3, 7, tzinfo=UTC), **NORMAL)]}
    assert client.post("/v1/events", json=body).status_code == 401
    assert client.get("/v1/alerts").status_code == 401
    assert client.get("/healthz").status_code == 200


def test_alerts_refuse_a_naive_since(client, auth):
    response = client.get("/v1/alerts", params={"since": "2026-03-01T00:00:00"}, headers=auth)
    assert response.status_code == 422 and "time zone" in response.text


def test_metrics_count_events_and_alerts(client, auth):
    client.post("/v1/events", json={"events": [event("S001", datetime(2026, 3, 8, tzinfo=UTC), **URGENT)]},
                headers=auth)
    client.post("/v1/events", json={"events": [event("S001", datetime(2026, 3, 8, tzinfo=UTC),
                                                      **{**NORMAL, "spo2_percent": 20})]}, headers=auth)
    client.post("/v1/events", json={"events": [event("S999", datetime(2026, 3, 8, tzinfo=UTC), **NORMAL)]},
                headers=auth)
    text = client.get("/metrics").text

    def value(sample: str) -> float:
        (line,) = [line for line in text.splitlines() if line.startswith(sample + " ")]
        return float(line.split()[-1])

    assert value('biomarkers_vital_sign_events_total{outcome="accepted"}') >= 1
    assert value('biomarkers_vital_sign_events_total{outcome="refused_invalid"}') >= 1
    assert value('biomarkers_vital_sign_events_total{outcome="refused_unknown_subject"}') >= 1
    raised = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("biomarkers_alerts_total{")]
    assert sum(raised) >= 1
    assert client.get("/healthz").status_code == 200


def test_the_alert_store_keeps_utc_and_filters(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts' / 'alerts.db'}", "study-a")
    other = AlertStore(f"sqlite:///{tmp_path / 'alerts' / 'alerts.db'}", "study-b")
    when = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    store.record("S1", when.astimezone(pd.Timestamp(0, tz="America/New_York").tz), 6.0, "medium", "NEWS2 6 >= 5")
    other.record("S1", when, 7.0, "high", "NEWS2 7 >= 5")
    (alert,) = store.list()
    assert alert.event_time == when and alert.event_time.tzinfo is not None and alert.study_id == "study-a"
    assert store.list(subject_id="S2") == [] and store.list(since=alert.recorded_at + timedelta(seconds=1)) == []
    with pytest.raises(ValueError, match="naive"):
        store.record("S1", datetime(2026, 1, 1), 6.0, "medium", "x")
    with pytest.raises(ValueError, match="limit"):
        store.list(limit=0)
    store.close()
    other.close()


def live_features(client, auth, subject: str) -> dict:
    response = client.get(f"/v1/subjects/{subject}/features", params={"service": "vitals_live_v1"}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_events_reach_the_live_view_online_latest_and_offline_each_once(client, auth, setup):
    now = datetime.now(UTC).replace(microsecond=0)
    older, newer = now - timedelta(minutes=30), now - timedelta(minutes=10)
    body = {"events": [event("S001", newer, **URGENT), event("S001", older, **NORMAL),
                       event("S002", older, heart_rate_bpm=61.0)]}
    for _ in range(2):  # a client retrying the same batch stores nothing twice
        response = client.post("/v1/events", json=body, headers=auth)
        assert response.status_code == 200, response.text
    live = live_features(client, auth, "S001")
    assert live["features"]["heart_rate_last_bpm"] == URGENT["heart_rate_bpm"]
    assert live["features"]["news2_score_last"] == expected_news2(URGENT)[0]
    assert live["features"]["news2_risk_band_last"] == expected_news2(URGENT)[1]
    assert live["features"]["consciousness_last_avpu"] == "A"
    assert live["features"]["supplemental_oxygen_last_flag"] == 1.0
    assert pd.Timestamp(live["event_timestamps"]["vital_signs_live"]) == pd.Timestamp(newer)
    partial = live_features(client, auth, "S002")["features"]
    assert partial["heart_rate_last_bpm"] == 61.0 and partial["spo2_last_percent"] is None
    assert partial["news2_score_last"] is None

    # An observation arriving late does not roll the subject back online, but is kept offline.
    late = client.post("/v1/events", json={"events": [event("S001", now - timedelta(hours=2), **NORMAL)]},
                       headers=auth)
    assert late.status_code == 200, late.text
    assert live_features(client, auth, "S001")["features"]["heart_rate_last_bpm"] == URGENT["heart_rate_bpm"]

    log = setup.live_log()
    mine = log[log["event_timestamp"] >= pd.Timestamp(now - timedelta(hours=3))]
    assert len(mine) == 4 and not mine.duplicated(["subject_id", "event_timestamp"]).any()
    assert str(log["event_timestamp"].dtype) == "datetime64[us, UTC]"
    late_row = mine[mine["event_timestamp"] == pd.Timestamp(now - timedelta(hours=2))]
    assert late_row["heart_rate_last_bpm"].tolist() == [NORMAL["heart_rate_bpm"]]
    assert len([alert for alert in alerts_of(client, auth, "S001")
                if pd.Timestamp(alert["event_time"]) == pd.Timestamp(newer)]) == 1


def test_the_vitals_anomaly_model_scores_the_subjects_current_hour_and_alerts(setup, auth):
    """With ``events_anomaly_model``, each subject's hour (its last 24 h of observations, as
    ``hourly_vitals`` computes them) is scored with the served anomaly model."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    setup.register_vitals("test-vitals", seed=3)
    settings = setup.settings.model_copy(update={"models": {**setup.settings.models, "vitals": "test-vitals@champion"},
                                                 "events_anomaly_model": "vitals"})
    start = datetime(2025, 6, 1, tzinfo=UTC)  # hours no other test posts for S004
    with TestClient(create_app(settings)) as client:
        calm = client.post("/v1/events", headers=auth, json={"events": [
            event("S004", start + timedelta(hours=hour), **NORMAL) for hour in range(6)]})
        assert calm.status_code == 200, calm.text
        results = calm.json()["results"]
        assert [row["anomaly"] for row in results] == [None] * 5 + [False]  # scored once: the latest event
        assert results[-1]["alert"] is False and results[-1]["anomaly_score"] is not None

        worse = {**URGENT, "spo2_percent": 82.0, "heart_rate_bpm": 145.0, "temperature_deg_c": 39.6,
                 "systolic_bp_mmhg": 84.0}
        alarm = client.post("/v1/events", headers=auth, json={"events": [
            event("S004", start + timedelta(hours=5, minutes=30), **worse)]})
        assert alarm.status_code == 200, alarm.text
        (row,) = alarm.json()["results"]
        assert row["anomaly"] is True and row["anomaly_score"] > results[-1]["anomaly_score"]
        assert row["alert"] is True and "NEWS2" in row["detail"] and "vital-sign anomaly" in row["detail"]
        (alert,) = [found for found in alerts_of(client, auth, "S004")
                    if pd.Timestamp(found["event_time"]) == pd.Timestamp(start + timedelta(hours=5, minutes=30))]
        assert "test-vitals v1" in alert["reason"] and "NEWS2" in alert["reason"]  # one alert, both reasons


# --- bad bodies and all-or-nothing: each refused with the field named, nothing of it stored ---------------------

LIVE_SUBJECTS = ("S001", "S002", "S003", "S004")


def stored(client, auth, setup) -> tuple:
    """Everything an events request can write: the push log, each subject's online live row, the alerts."""
    log = setup.live_log().sort_values(["subject_id", "event_timestamp"]).reset_index(drop=True)
    online = {subject: {key: value for key, value in live_features(client, auth, subject).items()
                        if key != "feature_ages_h"} for subject in LIVE_SUBJECTS}  # ages grow by themselves
    alerts = client.get("/v1/alerts", params={"limit": 1000}, headers=auth).json()
    return log.astype(object).where(log.notna(), None).to_dict("records"), online, alerts  # NaN != NaN


def raw_events(*texts: str) -> bytes:
    """An events body from hand-written JSON event objects (what ``json=`` cannot send: NaN, 1e400, raw bytes)."""
    return ('{"events": [' + ", ".join(texts) + "]}").encode("utf-8", "surrogatepass")


GOOD = '{"subject_id": "S001", "timestamp": "2026-03-09T08:00:00Z", "heart_rate_bpm": 130, "spo2_percent": 91}'


@pytest.mark.parametrize(("bad", "loc", "words"), [
    ('"heart_rate_bpm": NaN', ["heart_rate_bpm"], "NaN is not a number JSON allows"),
    ('"heart_rate_bpm": Infinity', ["heart_rate_bpm"], "Infinity is not a number"),
    ('"temperature_deg_c": -Infinity', ["temperature_deg_c"], "-Infinity is not a number"),
    ('"spo2_percent": 1e400', ["spo2_percent"], "1e400 is outside the range of a 64-bit float"),
    ('"spo2_scale": 1' + "0" * 30, ["spo2_scale"], "exceeded maximum size"),  # JSON: the field refuses it
    ('"subject_id": "S00\\ud800"', ["subject_id"], "lone UTF-16 surrogate (\\\\ud800 at character 3)"),
    ('"consciousness_avpu": "\ud800"', ["consciousness_avpu"], "lone UTF-16 surrogate"),  # the raw UTF-8 bytes
    ('"\\udfff": 1', ["\\udfff"], "the key holds a lone UTF-16 surrogate"),
    ('"timestamp": "9999-12-31T23:59:59Z"', ["timestamp"], "outside [1970-01-01, 2200-01-01) UTC"),
    ('"timestamp": "9999-12-31T23:00:00-05:00"', ["timestamp"], "outside [1970-01-01, 2200-01-01) UTC"),
    ('"timestamp": "1969-12-31T23:59:59Z"', ["timestamp"], "outside [1970-01-01, 2200-01-01) UTC"),
])
def test_a_value_the_service_cannot_store_is_422_naming_its_field_and_nothing_of_the_batch_is_kept(
        client, auth, setup, bad, loc, words):
    before = stored(client, auth, setup)
    second = ('{"subject_id": "S002", "timestamp": "2026-03-09T08:00:00Z", "heart_rate_bpm": 70, '
              f'"respiratory_rate_per_min": 15, {bad}}}')
    response = client.post("/v1/events", content=raw_events(GOOD, second),
                           headers={**auth, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    if "9999" in bad or "1969" in bad:  # a valid JSON value, refused by the event's own validation
        errors = [error for error in errors if error["loc"][-1] == "timestamp"]
    assert [error["loc"] for error in errors] == [["body", "events", 1, *loc]]
    assert words in response.text
    assert stored(client, auth, setup) == before


def test_raw_bytes_that_are_not_utf8_are_422_for_the_body(client, auth, setup):
    before = stored(client, auth, setup)
    body = raw_events(GOOD).replace(b'"S001"', b'"S0\xff1"')
    response = client.post("/v1/events", content=body, headers={**auth, "content-type": "application/json"})
    assert response.status_code == 422
    ((error),) = response.json()["detail"]
    assert error["loc"] == ["body"] and "not valid utf-8" in error["msg"] and "byte" in error["msg"]
    assert stored(client, auth, setup) == before


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"subject_ids": ["S001"], "threshold": NaN}', ["body", "threshold"]),
    (b'{"subject_ids": ["S001", 1e999]}', ["body", "subject_ids", 1]),
    (b'{"subject_ids": ["S\\udc00"]}', ["body", "subject_ids", 0]),
])
def test_scoring_bodies_are_parsed_as_strictly(client, auth, body, loc):
    response = client.post("/v1/score/risk", content=body, headers={**auth, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


def test_an_event_dated_ahead_of_the_server_clock_is_422_naming_it_and_the_tolerance_is_a_setting(
        client, auth, setup):
    from serving.dependencies import get_settings

    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(seconds=400)  # past the default 300 s; accepted below, it pins S003 that long only
    body = {"events": [event("S003", now - timedelta(minutes=1), **NORMAL), event("S003", ahead, **URGENT)]}
    before = stored(client, auth, setup)
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events", 1, "timestamp"]
    assert "ahead of the server's clock" in error["msg"] and "300 s allowed" in error["msg"]
    assert stored(client, auth, setup) == before

    # Within the default tolerance (a device clock a little ahead), and within a wider configured one.
    slightly = {"events": [event("S003", now + timedelta(seconds=60), **NORMAL)]}
    assert client.post("/v1/events", json=slightly, headers=auth).status_code == 200
    client.app.dependency_overrides[get_settings] = lambda: setup.settings.model_copy(
        update={"max_event_clock_skew_seconds": 3600})
    try:
        assert client.post("/v1/events", json=body, headers=auth).status_code == 200
    finally:
        client.app.dependency_overrides.pop(get_settings)
    assert pd.Timestamp(live_features(client, auth, "S003")["event_timestamps"]["vital_signs_live"]) == \
        pd.Timestamp(ahead)


def test_two_different_events_of_one_subject_and_time_are_refused_naming_both_and_identical_ones_stored_once(
        client, auth, setup):
    when = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    other = {**NORMAL, "heart_rate_bpm": 131.0}  # scores 3 alone: it would alert with the other's reason
    body = {"events": [event("S002", when, **NORMAL), event("S001", when, **NORMAL),
                       event("S002", when.astimezone(pd.Timestamp(0, tz="Asia/Tokyo").tz), **other)]}
    before = stored(client, auth, setup)
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events"]
    assert "events 0 and 2 are both subject 'S002'" in error["msg"] and "heart_rate_bpm 72.0 vs 131.0" in error["msg"]
    assert stored(client, auth, setup) == before

    same = {"events": [event("S002", when, **other), event("S002", when, **other)]}
    response = client.post("/v1/events", json=same, headers=auth)
    assert response.status_code == 200, response.text
    assert [row["alert"] for row in response.json()["results"]] == [True, True]
    log = setup.live_log()
    assert len(log[(log["subject_id"] == "S002") & (log["event_timestamp"] == pd.Timestamp(when))]) == 1
    assert len([alert for alert in alerts_of(client, auth, "S002")
                if pd.Timestamp(alert["event_time"]) == pd.Timestamp(when)]) == 1


def test_a_failed_offline_write_leaves_the_online_store_untouched_and_a_retry_stores_the_batch(client, auth, setup):
    """The log is written first: when it cannot be (here its pending folder is blocked by a file),
    the request fails before the online store is written, and the same batch retried stores it."""
    from adapters.offline_store import PushLog

    now = datetime.now(UTC).replace(microsecond=0)
    body = {"events": [event("S004", now - timedelta(seconds=30), **URGENT)]}
    before = stored(client, auth, setup)
    log = PushLog(setup.root / "vital_signs_live.parquet", ["subject_id", "event_timestamp"])
    log.fold()
    log.pending.rmdir()  # empty after the fold
    log.pending.write_text("not a folder")
    try:
        with pytest.raises(OSError):
            client.post("/v1/events", json=body, headers=auth)
        assert stored(client, auth, setup) == before
    finally:
        log.pending.unlink()
    response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert live_features(client, auth, "S004")["features"]["heart_rate_last_bpm"] == URGENT["heart_rate_bpm"]
    assert len(setup.live_log()) == len(before[0]) + 1


@pytest.fixture
def fresh_study(tmp_path, setup):
    """A study whose live view was never pushed to: the serving tables, a new Feast repo and an app
    (no models) on it."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.serving.conftest import _tables, feast_repo

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for name, frame in _tables(now).items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    feast_repo(tmp_path, tmp_path, "fresh_events_test", "online_store:\n  type: sqlite\n  path: online.db\n", now)
    settings = setup.settings.model_copy(update={"feast_repo_path": tmp_path, "models": {},
                                                 "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    with TestClient(create_app(settings)) as client:
        yield tmp_path, client


def test_a_first_push_with_one_vital_sign_then_a_fold_then_full_events_and_a_materialization_succeed(
        fresh_study, auth):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from adapters.feast_repo import materialize, open_store
    from adapters.offline_store import PushLog
    from features.tables import LIVE_VITALS

    root, client = fresh_study
    now = datetime.now(UTC).replace(microsecond=0)
    first = client.post("/v1/events", json={"events": [event("S001", now - timedelta(hours=2), heart_rate_bpm=88)]},
                        headers=auth)
    assert first.status_code == 200, first.text
    log = PushLog.of(open_store(root).get_feature_view(LIVE_VITALS.name), root)
    assert log.fold()
    assert {pq.read_schema(log.path).field(name).type for name in LIVE_VITALS.text_columns} == {pa.string()}

    for minutes in (60, 30):
        full = client.post("/v1/events", headers=auth, json={"events": [
            event(subject, now - timedelta(minutes=minutes), **(URGENT if subject == "S001" else NORMAL))
            for subject in ("S001", "S002", "S003")]})
        assert full.status_code == 200, full.text
    done = materialize(root)
    assert "full load" in done[LIVE_VITALS.name]
    assert log.path.is_file() and not log.parts()
    live = live_features(client, auth, "S001")["features"]
    assert live["heart_rate_last_bpm"] == URGENT["heart_rate_bpm"]
    assert live["news2_risk_band_last"] == expected_news2(URGENT)[1] and live["consciousness_last_avpu"] == "A"
    logged = pq.read_table(log.path).to_pandas()
    assert len(logged) == 7 and logged["consciousness_last_avpu"].isna().sum() == 1


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_alerts_refuse_a_since_outside_utcs_range(client, auth, since):
    response = client.get("/v1/alerts", params={"since": since}, headers=auth)
    assert response.status_code == 422 and "UTC's range" in response.text
    assert response.json()["detail"][0]["loc"] == ["query", "since"]


def test_an_online_write_that_fails_after_the_log_is_completed_by_the_retry_storing_nothing_twice(
        client, auth, setup, monkeypatch):
    import serving.events
    from serving.online import OnlineStoreUnavailableError

    now = datetime.now(UTC).replace(microsecond=0)
    when = now - timedelta(seconds=5)
    body = {"events": [event("S002", when, **URGENT)]}

    def unreachable(*args):
        raise OnlineStoreUnavailableError("online store unavailable while pushing live vital signs: test")

    with monkeypatch.context() as patched:
        patched.setattr(serving.events, "push_online", unreachable)
        response = client.post("/v1/events", json=body, headers=auth)
    assert response.status_code == 503 and response.headers["retry-after"]
    online_time = live_features(client, auth, "S002")["event_timestamps"]["vital_signs_live"]
    assert online_time is None or pd.Timestamp(online_time) < pd.Timestamp(when)
    log = setup.live_log()
    assert len(log[(log["subject_id"] == "S002") & (log["event_timestamp"] == pd.Timestamp(when))]) == 1  # the record
    retried = client.post("/v1/events", json=body, headers=auth)
    assert retried.status_code == 200, retried.text
    assert pd.Timestamp(live_features(client, auth, "S002")["event_timestamps"]["vital_signs_live"]) == \
        pd.Timestamp(when)
    log = setup.live_log()
    assert len(log[(log["subject_id"] == "S002") & (log["event_timestamp"] == pd.Timestamp(when))]) == 1
    assert len([alert for alert in alerts_of(client, auth, "S002")
                if pd.Timestamp(alert["event_time"]) == pd.Timestamp(when)]) == 1
