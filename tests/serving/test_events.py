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
