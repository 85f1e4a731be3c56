"""The online API on a real Redis online store, and what it does while Redis is down.

A private ``redis-server`` on a free loopback port (in memory, nothing saved) so that it can
be stopped and started again without touching the machine's shared Redis.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
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

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-connection, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
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


def timed(call):
    """The response of ``call()`` and the seconds it took."""
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def test_scoring_on_redis_fails_fast_while_redis_is_down_and_is_not_ready_until_materialized_again(
        setup, auth, private_redis, tmp_path):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    online = f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{private_redis.port}\n"
    store = feast_repo(tmp_path / "repo", setup.root, "serving_redis", online, now)
    settings = setup.settings.model_copy(update={"feast_repo_path": tmp_path / "repo"})
    score = {"subject_ids": SUBJECTS[:2]}
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["materialized:daily"] == "ok"
        served = client.post("/v1/score/risk", json=score, headers=auth)
        assert served.status_code == 200, served.text
        expected = [row["score"] for row in served.json()["scores"]]
        assert all(value is not None for value in expected)

        private_redis.process.send_signal(signal.SIGSTOP)  # hung: connections open, no answer
        try:
            response, seconds = timed(lambda: client.post("/v1/score/risk", json=score, headers=auth))
            assert response.status_code == 503 and seconds < 2.0, (response.text, seconds)
            assert "Timeout" in response.json()["detail"] and response.headers["retry-after"]
            ready, seconds = timed(lambda: client.get("/readyz"))
            assert ready.status_code == 503 and seconds < 2.0, (ready.text, seconds)
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        assert client.get("/readyz").status_code == 200  # answering again, with its data
        assert [row["score"] for row in client.post("/v1/score/risk", json=score, headers=auth).json()["scores"]] \
            == expected

        private_redis.kill()
        # A generous bound for "fails fast" (Redis's client retried for 5-11 s before): not a benchmark.
        ready, seconds = timed(lambda: client.get("/readyz"))
        assert ready.status_code == 503 and seconds < 2.0
        assert "Connection" in ready.json()["checks"]["online_store"]
        assert ready.json()["checks"]["model:risk"] == "ok"
        for call in (lambda: client.post("/v1/score/risk", json=score, headers=auth),
                     lambda: client.get("/v1/subjects/S001/features", params={"service": "daily_v1"}, headers=auth),
                     lambda: client.post("/v1/events", headers=auth, json={"events": [
                         {"subject_id": "S001", "timestamp": now.isoformat(), "heart_rate_bpm": 70}]})):
            response, seconds = timed(call)
            assert response.status_code == 503, response.text
            assert seconds < 2.0, f"{response.request.url.path} took {seconds:.1f} s to answer 503"
            assert response.json()["detail"].startswith("online store unavailable while")
            assert response.headers["retry-after"] == "5"
        assert client.get("/healthz").status_code == 200  # the process itself is fine

        private_redis.start()  # back, empty (nothing was saved): answers, but holds none of the views
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        checks = ready.json()["checks"]
        assert checks["online_store"] == "ok"
        assert "no row of this view" in checks["materialized:daily"] and "restarted" in checks["materialized:daily"]
        assert "no row of this view" in checks["materialized:sleep"]
        empty = client.post("/v1/score/risk", json=score, headers=auth).json()["scores"]
        assert [row["detail"] for row in empty] == ["no online features for this subject"] * 2
        store.materialize(start_date=now - timedelta(days=10), end_date=now + timedelta(minutes=1),
                          feature_views=["daily", "sleep"])
        assert client.get("/readyz").status_code == 200  # without a restart of the API
        again = client.post("/v1/score/risk", json=score, headers=auth)
        assert [row["score"] for row in again.json()["scores"]] == expected


def test_health_and_readiness_answer_while_the_one_request_thread_is_busy(setup, auth, private_redis, tmp_path):
    """With ``request_threads`` 1, a request holding the thread must not hold the probes too."""
    from serving.dependencies import require_api_key

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    online = f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{private_redis.port}\n"
    feast_repo(tmp_path / "repo", setup.root, "serving_busy", online, now)
    settings = setup.settings.model_copy(update={"feast_repo_path": tmp_path / "repo", "request_threads": 1})
    entered, release = threading.Event(), threading.Event()

    def slow_key_check():  # sync: FastAPI runs it on the one request thread, which it then holds
        entered.set()
        release.wait(30)

    with TestClient(create_app(settings)) as client:
        client.app.dependency_overrides[require_api_key] = slow_key_check
        slow: list = []
        worker = threading.Thread(target=lambda: slow.append(client.post("/v1/score/risk", headers=auth,
                                                                          json={"subject_ids": ["S001"]})))
        worker.start()
        try:
            assert entered.wait(30), "the slow request never started"
            assert client.get("/healthz").status_code == 200
            assert client.get("/metrics").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert worker.is_alive() and not slow  # both answered while the request still held the thread
        finally:
            release.set()
            worker.join(30)
        assert slow[0].status_code == 200, slow[0].text
