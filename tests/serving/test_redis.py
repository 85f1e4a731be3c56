"""The online API on a real Redis online store, and what it does while Redis is down.

A private ``redis-server`` on a free loopback port (in memory, nothing saved) so that it can
be stopped and started again without touching the machine's shared Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.kafka_broker import free_port
from tests.serving.conftest import SUBJECTS, feast_repo

pytestmark = pytest.mark.slow


class PrivateRedis:
    """A redis-server process that can be stopped and started again on the same port."""

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed on this machine")
    server = PrivateRedis(free_port())
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_scoring_on_redis_answers_503_while_redis_is_down_and_recovers_by_itself(setup, auth, private_redis, tmp_path):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    online = f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{private_redis.port}\n"
    store = feast_repo(tmp_path / "repo", setup.root, "serving_redis", online, now)
    settings = setup.settings.model_copy(update={"feast_repo_path": tmp_path / "repo"})
    score = {"subject_ids": SUBJECTS[:2]}
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        served = client.post("/v1/score/risk", json=score, headers=auth)
        assert served.status_code == 200, served.text
        expected = [row["score"] for row in served.json()["scores"]]
        assert all(value is not None for value in expected)

        private_redis.stop()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "Connection" in ready.json()["checks"]["online_store"]
        assert ready.json()["checks"]["model:risk"] == "ok"
        for response in (client.post("/v1/score/risk", json=score, headers=auth),
                         client.get("/v1/subjects/S001/features", params={"service": "daily_v1"}, headers=auth),
                         client.post("/v1/events", headers=auth, json={"events": [
                             {"subject_id": "S001", "timestamp": now.isoformat(), "heart_rate_bpm": 70}]})):
            assert response.status_code == 503, response.text
            assert response.json()["detail"].startswith("online store unavailable while")
            assert response.headers["retry-after"] == "5"
        assert client.get("/healthz").status_code == 200  # the process itself is fine

        private_redis.start()  # back, empty (nothing was saved): ready again without a restart
        assert client.get("/readyz").status_code == 200
        empty = client.post("/v1/score/risk", json=score, headers=auth).json()["scores"]
        assert [row["detail"] for row in empty] == ["no online features for this subject"] * 2
        store.materialize(start_date=now - timedelta(days=10), end_date=now + timedelta(minutes=1),
                          feature_views=["daily", "sleep"])
        again = client.post("/v1/score/risk", json=score, headers=auth)
        assert [row["score"] for row in again.json()["scores"]] == expected
