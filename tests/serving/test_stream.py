"""The Kafka stream consumer against a real Kafka-protocol broker (Tansu) on 127.0.0.1.

Each test has its own topics and consumer group; the Feast repo is the serving tests' one
(subjects S001-S004 known, S005 not), each test with its own hours of observation times, apart
from each other's and from the event tests' last two hours.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from serving.alerts import AlertStore
from serving.settings import StreamSettings
from tests.kafka_broker import create_topics, produce, read_topic, tansu_broker
from tests.serving.test_events import NORMAL, URGENT, expected_news2

pytestmark = pytest.mark.slow

KNOWN = ["S001", "S002", "S003", "S004"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    with tansu_broker(tmp_path_factory.mktemp("tansu") / "broker.log") as bootstrap:
        yield bootstrap


@pytest.fixture
def topics(broker) -> StreamSettings:
    suffix = uuid.uuid4().hex[:8]
    settings = StreamSettings(bootstrap_servers=broker, events_topic=f"events-{suffix}",
                              dead_letter_topic=f"dead-{suffix}", alerts_topic=f"alerts-{suffix}",
                              group_id=f"group-{suffix}", max_batch_events=50, session_timeout_ms=6000)
    create_topics(broker, settings.events_topic, partitions=2)
    create_topics(broker, settings.dead_letter_topic, settings.alerts_topic)
    return settings


def message(subject: str, when: datetime, **vitals) -> tuple[bytes, bytes]:
    return subject.encode(), json.dumps({"subject_id": subject, "timestamp": when.isoformat(), **vitals}).encode()


def observations(start: datetime, per_subject: int) -> list[tuple[bytes, bytes]]:
    """``per_subject`` observations a minute apart for each known subject; every 5th one urgent."""
    return [message(subject, start + timedelta(minutes=minute), **(URGENT if minute % 5 == 4 else NORMAL))
            for minute in range(per_subject) for subject in KNOWN]


def open_store(setup):
    from feast import FeatureStore

    return FeatureStore(repo_path=str(setup.root))


def consume_until(settings: StreamSettings, setup, done, consumer_class=None, timeout_s: float = 90.0,
                  anomaly_model=None):
    """Run a consumer in a thread until ``done(consumer)`` holds; return the consumer."""
    from serving.stream import EventStreamConsumer

    alerts = AlertStore(f"sqlite:///{setup.root / 'stream-alerts.db'}", "test")
    consumer = (consumer_class or EventStreamConsumer)(settings, "test", open_store(setup), alerts,
                                                       anomaly_model=anomaly_model)
    stop = threading.Event()
    errors = []

    def run():
        try:
            consumer.run(stop)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not done(consumer) and not errors and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(30)
    consumer.errors = errors
    return consumer


def logged(setup, start: datetime, end: datetime) -> pd.DataFrame:
    log = setup.live_log()
    return log[(log["event_timestamp"] >= pd.Timestamp(start)) & (log["event_timestamp"] <= pd.Timestamp(end))]


def stream_alerts(setup, start: datetime, end: datetime) -> list:
    store = AlertStore(f"sqlite:///{setup.root / 'stream-alerts.db'}", "test")
    try:
        return [alert for alert in store.list(limit=1000)
                if alert.source == "stream" and start <= alert.event_time <= end]
    finally:
        store.close()


def test_valid_events_are_pushed_invalid_ones_dead_lettered_and_alerts_produced(topics, setup):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)
    good = observations(start, per_subject=10)
    bad = [(b"S001", b"{not json"),
           (b"S001", b"[1, 2]"),
           message("S002", start, spo2_percent=150.0),
           message("S005", start, **NORMAL),
           (b"S003", json.dumps({"subject_id": "S003", "timestamp": "2026-01-01T08:00:00",
                                 "heart_rate_bpm": 80}).encode()),
           (b"S004", None),
           # The HTTP API's other refusals, as the stream applies them too: a time years ahead of the
           # clock (it would pin S001's live vitals), one outside the representable range, values JSON
           # does not allow (NaN; a lone surrogate, which no encoder downstream could write).
           message("S001", datetime.now(UTC) + timedelta(days=400), **NORMAL),
           message("S002", datetime(9999, 12, 31, tzinfo=UTC), **NORMAL),
           (b"S003", b'{"subject_id": "S003", "timestamp": "2026-01-01T08:00:00Z", "heart_rate_bpm": NaN}'),
           (b"S004", b'{"subject_id": "S\\ud800", "timestamp": "2026-01-01T08:00:00Z", "heart_rate_bpm": 80}')]
    produce(topics.bootstrap_servers, topics.events_topic, good[:20] + bad + good[20:])
    consumer = consume_until(topics, setup, lambda c: c.counts.events + c.counts.dead_letters >= len(good) + len(bad))
    assert not consumer.errors
    assert (consumer.counts.events, consumer.counts.dead_letters) == (len(good), len(bad))

    dead = read_topic(topics.bootstrap_servers, topics.dead_letter_topic, len(bad))
    assert len(dead) == len(bad)
    reasons = {message.value(): dict(message.headers())["error"].decode() for message in dead}
    assert "malformed JSON" in reasons[b"{not json"]
    assert "JSON object" in reasons[b"[1, 2]"]
    assert "spo2_percent" in reasons[bad[2][1]] and "plausible" in reasons[bad[2][1]]
    assert "unknown subject 'S005'" in reasons[bad[3][1]]
    assert "time zone" in reasons[bad[4][1]]
    assert "empty message" in reasons[None]
    assert "ahead of the server's clock" in reasons[bad[6][1]] and "max_event_clock_skew_seconds" in reasons[bad[6][1]]
    assert "outside [1970-01-01, 2200-01-01) UTC" in reasons[bad[7][1]]
    assert "heart_rate_bpm: NaN is not a number JSON allows" in reasons[bad[8][1]]
    assert "subject_id: the text holds a lone UTF-16 surrogate" in reasons[bad[9][1]]
    assert all(dict(message.headers())["source.topic"].decode() == topics.events_topic for message in dead)

    end = start + timedelta(minutes=9)
    log = logged(setup, start, end)
    assert len(log) == len(good) and not log.duplicated(["subject_id", "event_timestamp"]).any()
    urgent = log[log["heart_rate_last_bpm"] == URGENT["heart_rate_bpm"]]
    assert len(urgent) == 2 * len(KNOWN) and set(urgent["news2_score_last"]) == {expected_news2(URGENT)[0]}

    produced = read_topic(topics.bootstrap_servers, topics.alerts_topic, len(urgent))
    assert len(produced) == len(urgent)
    bodies = [json.loads(message.value()) for message in produced]
    assert {(body["subject_id"], pd.Timestamp(body["event_time"])) for body in bodies} == \
        set(zip(urgent["subject_id"], urgent["event_timestamp"], strict=True))
    assert len({body["alert_id"] for body in bodies}) == len(bodies)
    assert len(stream_alerts(setup, start, end)) == len(urgent)

    online = open_store(setup).get_online_features(
        features=["vital_signs_live:heart_rate_last_bpm"], entity_rows=[{"subject_id": s} for s in KNOWN],
    ).to_dict(include_event_timestamps=True)
    # The latest observation of each subject (minute 9: urgent) unless a newer one is online already.
    assert all(stamp >= int(end.timestamp()) for stamp in online["heart_rate_last_bpm__ts"])


def test_a_consumer_killed_after_the_push_loses_nothing_and_counts_nothing_twice(topics, setup):
    from serving.stream import EventStreamConsumer

    class Killed(BaseException):
        """Stands for SIGKILL: escapes every handler, nothing after it runs."""

    class DiesBeforeCommit(EventStreamConsumer):
        def _commit(self, messages):
            raise Killed

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    events = observations(start, per_subject=10)
    produce(topics.bootstrap_servers, topics.events_topic, events)
    first = consume_until(topics, setup, lambda c: False, consumer_class=DiesBeforeCommit, timeout_s=60)
    assert len(first.errors) == 1 and isinstance(first.errors[0], Killed)
    end = start + timedelta(minutes=9)
    pushed_before_death = len(logged(setup, start, end))
    assert pushed_before_death > 0  # the first batch was pushed, then the process died

    second = consume_until(topics, setup, lambda c: c.counts.events >= len(events))
    assert not second.errors and second.counts.events == len(events)  # the uncommitted batch was read again
    log = logged(setup, start, end)
    assert len(log) == len(events) and not log.duplicated(["subject_id", "event_timestamp"]).any()
    assert len(stream_alerts(setup, start, end)) == 2 * len(KNOWN)
    # The alerts topic is at least once: a repeated alert carries the same id.
    produced = [json.loads(message.value())
                for message in read_topic(topics.bootstrap_servers, topics.alerts_topic, 2 * len(KNOWN))]
    assert len({body["alert_id"] for body in produced}) == 2 * len(KNOWN) <= len(produced)


def test_a_failed_push_is_retried_from_the_batch_start_without_commit(topics, setup, monkeypatch):
    import serving.stream

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    events = observations(start, per_subject=5)
    produce(topics.bootstrap_servers, topics.events_topic, events)
    real_push, calls = serving.stream.push_online, []

    def unreachable_once(*args):
        calls.append(len(args[2]))
        if len(calls) == 1:
            raise ConnectionError("online store unreachable")
        return real_push(*args)

    monkeypatch.setattr(serving.stream, "push_online", unreachable_once)
    consumer = consume_until(topics, setup, lambda c: c.counts.events >= len(events))
    assert not consumer.errors
    assert consumer.counts.failed_batches == 1 and "online store unreachable" in consumer.counts.last_error
    assert consumer.counts.events == len(events)
    log = logged(setup, start, start + timedelta(minutes=4))
    assert len(log) == len(events) and not log.duplicated(["subject_id", "event_timestamp"]).any()


def test_the_vitals_anomaly_model_scores_each_subjects_hour_from_the_log_and_the_uncommitted_batches(topics, setup):
    from serving.models import ModelRegistry

    setup.register_vitals("test-vitals-stream", seed=5)
    models = ModelRegistry(setup.tracking_uri, {"vitals": "test-vitals-stream@champion"})
    assert models.load_all() == {}
    start = datetime(2025, 7, 1, tzinfo=UTC)  # hours no other test posts
    calm = [message("S003", start + timedelta(hours=hour), **NORMAL) for hour in range(6)]
    worse = {**URGENT, "spo2_percent": 82.0, "heart_rate_bpm": 145.0, "temperature_deg_c": 39.6,
             "systolic_bp_mmhg": 84.0}
    produce(topics.bootstrap_servers, topics.events_topic, [*calm, message("S003", start + timedelta(hours=5.5),
                                                                            **worse)])
    consumer = consume_until(topics, setup, lambda c: c.counts.events >= 7, anomaly_model=lambda: models.get("vitals"))
    assert not consumer.errors
    (alert,) = [alert for alert in stream_alerts(setup, start, start + timedelta(hours=6))
                if alert.subject_id == "S003"]
    assert alert.event_time == start + timedelta(hours=5.5)
    assert "vital-sign anomaly" in alert.reason and "test-vitals-stream" in alert.reason


def test_the_cli_consumer_killed_with_sigkill_and_restarted_keeps_every_event_once(topics, setup, tmp_path):
    """``biomarkers stream`` as a process: SIGKILL mid-stream, restart, every event exactly once."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=20)
    events = observations(start, per_subject=400)  # 1,600 events, batches of 20, each committed
    end = start + timedelta(minutes=399)
    produce(topics.bootstrap_servers, topics.events_topic, events)
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "raw").mkdir()
    for name in ("subjects.csv", "endpoints.csv"):  # the demo study's configuration names them; unread here
        (tmp_path / "raw" / name).touch()
    command = [sys.executable, "-m", "pipelines.cli", "stream", str(root / "studies" / "demo" / "study.yaml"),
               "--data-root", str(tmp_path), "--bootstrap", topics.bootstrap_servers, "--topic", topics.events_topic,
               "--dead-letter-topic", topics.dead_letter_topic, "--alerts-topic", topics.alerts_topic,
               "--group", topics.group_id, "--max-batch-events", "20", "--commit-interval-ms", "0",
               "--session-timeout-ms", "6000",
               "--feast-repo", str(setup.root)]

    def wait_for(condition, timeout_s=90):
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        return condition()

    first = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: len(logged(setup, start, end)) > 0 or first.poll() is not None)
    finally:
        first.kill()
        output = first.communicate()[0].decode(errors="replace")
    assert first.returncode == -9, output
    assert len(logged(setup, start, end)) < len(events), "the first consumer finished before it was killed"

    second = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: len(logged(setup, start, end)) >= len(events))
    finally:
        second.terminate()
        output = second.communicate(timeout=60)[0].decode(errors="replace")
    assert second.returncode == 0, output
    assert "stopped:" in output
    log = logged(setup, start, end)
    assert len(log) == len(events) and not log.duplicated(["subject_id", "event_timestamp"]).any()
    alerts = AlertStore(f"sqlite:///{tmp_path / '.platform' / 'alerts.db'}", "demo")
    try:
        assert len([alert for alert in alerts.list(limit=1000) if start <= alert.event_time <= end]) == \
            len(events) // 5
    finally:
        alerts.close()


class _Message:
    """What ``EventStreamConsumer.process`` reads of a Kafka message (no broker needed)."""

    def __init__(self, offset: int, key: bytes, value: bytes):
        self._offset, self._key, self._value = offset, key, value

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return "vital-signs"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_a_second_event_of_one_subject_and_time_with_other_values_is_dead_lettered_and_the_first_stands(
        topics, setup):
    """In one micro-batch, as the HTTP API refuses such a pair: what is pushed and the alert both hold
    the first event's values (without the rule, the alert kept the first's reason while the log and
    the online row took the second's values). Calls ``process`` with one batch, to hold the pair in it."""
    from serving.stream import EventStreamConsumer

    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=23)
    alerts = AlertStore(f"sqlite:///{setup.root / 'stream-alerts.db'}", "test")
    consumer = EventStreamConsumer(topics, "test", open_store(setup), alerts)
    try:
        first, second, again = (message("S004", when, **URGENT), message("S004", when, **NORMAL),
                                message("S004", when, **URGENT))  # `again`: a redelivery, identical
        outcome = consumer.process([_Message(7, *first), _Message(8, *second), _Message(9, *again)])
    finally:  # what run() does when it stops, minus the commit of these made-up offsets
        consumer._consumer.close()
        consumer._producer.flush(10)
        consumer._committer.shutdown()
        alerts.close()
    assert [event.heart_rate_bpm for event in outcome.events] == [URGENT["heart_rate_bpm"]] * 2
    (refused,) = outcome.refused
    assert refused.message.offset() == 8
    assert "vital-signs[0]@7" in refused.reason and "heart_rate_bpm 118.0 vs 72.0" in refused.reason
    assert {alert.reason for alert in outcome.alerts} == {f"NEWS2 {expected_news2(URGENT)[0]:g} >= 5 (high risk)"}
    dead = read_topic(topics.bootstrap_servers, topics.dead_letter_topic, 1)
    assert [message.value() for message in dead] == [second[1]]
    del consumer
    gc.collect()  # its producer (in a cycle with its delivery callback) would retry the broker after it stops
