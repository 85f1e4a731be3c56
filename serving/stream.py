"""The Kafka stream consumer of live vital-sign events (``biomarkers stream``).

Each micro-batch of the events topic goes the way of ``POST /v1/events`` (``serving.events``):
validated one event at a time, assessed with NEWS2, pushed to the Feast view
``vital_signs_live`` (offline every observation, online each subject's latest), its alerts
recorded in the alerts store and produced to the alerts topic. An event that fails validation
(not JSON, not a ``VitalSignEvent``, implausible, or of a subject the online store does not
know) is produced, unchanged, to the dead-letter topic with the reason in its ``error``
header; the rest of the batch goes on.

Delivery is at least once, and nothing is counted twice:

* the batch's offsets are committed only after the push, the alerts and the dead letters are
  all stored and acknowledged by the broker;
* a batch that fails (store unreachable, broker error) is not committed: the consumer waits
  (doubling up to ``retry_backoff_max_s``), rewinds to the batch's first offsets and tries again;
* a consumer killed between the push and the commit reads the batch again after restart, and
  every write is idempotent: the offline log keeps one row per subject and observation time,
  the online store keeps a subject's newest observation, the alerts store one alert per
  observation and source, and an alert produced twice carries the same ``alert_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC

from pydantic import ValidationError

from serving.alerts import AlertStore, NewAlert
from serving.events import PushResult, assess_events, new_alerts, push_live
from serving.online import KnownSubjects
from serving.schemas import VitalSignEvent
from serving.settings import StreamSettings

logger = logging.getLogger(__name__)

ALERT_SOURCE = "stream"


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a dead letter or an alert: the batch is not committed."""


@dataclass(frozen=True)
class Refused:
    """An event that failed validation: where it came from and why."""

    message: object  # confluent_kafka.Message
    reason: str


@dataclass(frozen=True)
class BatchOutcome:
    """What one micro-batch did (``push.online_at``: when its events were online, UTC)."""

    events: tuple[VitalSignEvent, ...]
    refused: tuple[Refused, ...]
    alerts: tuple[NewAlert, ...]
    push: PushResult


@dataclass
class StreamCounts:
    """Running totals of a consumer, counted at each commit (``events``: accepted and pushed)."""

    batches: int = 0
    events: int = 0
    dead_letters: int = 0
    alerts: int = 0
    failed_batches: int = 0
    last_error: str | None = None


def describe_validation_error(error: ValidationError) -> str:
    """A pydantic error in one line: ``field: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'event'}: {problem['msg']}"
                     for problem in error.errors(include_url=False))


def parse_event(value: bytes | None) -> VitalSignEvent | str:
    """The event in a message value, or why it is not one."""
    if value is None:
        return "empty message: no event"
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, ValueError) as error:
        return f"malformed JSON: {error}"
    if not isinstance(payload, dict):
        return f"an event is a JSON object, got {type(payload).__name__}"
    try:
        return VitalSignEvent.model_validate(payload)
    except ValidationError as error:
        return f"invalid event: {describe_validation_error(error)}"


def alert_id(study_id: str, alert: NewAlert) -> str:
    """A stable id of an alert: the same observation always gives the same id (for consumers to dedupe)."""
    text = f"{study_id}|{alert.subject_id}|{alert.event_time.astimezone(UTC).isoformat()}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def alert_message(study_id: str, alert: NewAlert) -> bytes:
    """The alerts topic's JSON for one alert."""
    return json.dumps({
        "alert_id": alert_id(study_id, alert), "study_id": study_id, "subject_id": alert.subject_id,
        "event_time": alert.event_time.astimezone(UTC).isoformat(), "news2": alert.news2,
        "risk_band": alert.risk_band, "reason": alert.reason, "source": ALERT_SOURCE,
    }).encode("utf-8")


class EventStreamConsumer:
    """Consumes the events topic in micro-batches until stopped.

    Parameters
    ----------
    settings : StreamSettings
    study_id : str
    store : feast.FeatureStore
        The study's feature store (``vital_signs_live`` must be registered).
    alert_store : AlertStore
    on_batch : callable, optional
        Called with each committed ``BatchOutcome`` (benchmarks measure latency with it).
    """

    def __init__(self, settings: StreamSettings, study_id: str, store, alert_store: AlertStore,
                 on_batch: Callable[[BatchOutcome], None] | None = None):
        from confluent_kafka import Consumer, Producer

        self.settings = settings
        self.study_id = study_id
        self.store = store
        self.alert_store = alert_store
        self.on_batch = on_batch
        self.counts = StreamCounts()
        self._known = KnownSubjects()
        self._consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers, "group.id": settings.group_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms, "enable.partition.eof": False,
        })
        self._producer = Producer({
            "bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5,
        })

    def run(self, stop: threading.Event) -> StreamCounts:
        """Consume until ``stop`` is set; the batch in hand is finished (or left uncommitted) first."""
        from confluent_kafka import KafkaException

        settings = self.settings
        self._consumer.subscribe([settings.events_topic])
        backoff = 0.1
        try:
            while not stop.is_set():
                messages = self._consumer.consume(settings.max_batch_events, settings.max_batch_wait_s)
                records = []
                for message in messages:
                    if message.error() is None:
                        records.append(message)
                    elif message.error().fatal():
                        raise KafkaException(message.error())
                    else:  # transient (a partition moving, a broker restarting): librdkafka retries
                        logger.warning("consumer: %s", message.error())
                if not records:
                    continue
                try:
                    self.process(records)
                    backoff = 0.1
                except Exception as error:  # noqa: BLE001 - any failure: not committed, retried
                    self.counts.failed_batches += 1
                    self.counts.last_error = f"{type(error).__name__}: {error}"
                    logger.error("batch of %d events not committed, retrying in %.1f s: %s",
                                 len(records), backoff, self.counts.last_error)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, settings.retry_backoff_max_s)
                    self._rewind(records)
        finally:
            self._consumer.close()
            self._producer.flush(10)
        return self.counts

    def process(self, messages: Sequence) -> BatchOutcome:
        """Validate, push, record and produce one micro-batch, then commit its offsets."""
        candidates, refused = [], []
        for message in messages:
            parsed = parse_event(message.value())
            if isinstance(parsed, str):
                refused.append(Refused(message, parsed))
            else:
                candidates.append((message, parsed))
        known = self._known(self.store, [event.subject_id for _, event in candidates]) if candidates else set()
        events = []
        for message, event in candidates:
            if event.subject_id in known:
                events.append(event)
            else:
                refused.append(Refused(message, f"unknown subject {event.subject_id!r}: no online features in "
                                                f"study {self.study_id!r}"))
        assessments = assess_events(events)
        push = push_live(self.store, events, assessments)
        alerts = new_alerts(events, assessments)
        self.alert_store.record_many(alerts, source=ALERT_SOURCE)
        self._deliver(refused, alerts)
        self._commit(messages)
        outcome = BatchOutcome(tuple(events), tuple(refused), tuple(alerts), push)
        self.counts.batches += 1
        self.counts.events += len(events)
        self.counts.dead_letters += len(refused)
        self.counts.alerts += len(alerts)
        if self.on_batch is not None:
            self.on_batch(outcome)
        return outcome

    def _deliver(self, refused: Sequence[Refused], alerts: Sequence[NewAlert]) -> None:
        """Produce dead letters and alerts and wait for the broker's acknowledgement of each."""
        if not refused and not alerts:
            return
        failures = []

        def delivered(error, message):
            if error is not None:
                failures.append(f"{message.topic()}: {error}")

        for item in refused:
            source = item.message
            self._producer.produce(
                self.settings.dead_letter_topic, key=source.key(), value=source.value(), on_delivery=delivered,
                headers=[("error", item.reason.encode("utf-8")), ("source.topic", source.topic().encode()),
                         ("source.partition", str(source.partition()).encode()),
                         ("source.offset", str(source.offset()).encode())])
        for alert in alerts:
            self._producer.produce(self.settings.alerts_topic, key=alert.subject_id.encode("utf-8"),
                                   value=alert_message(self.study_id, alert), on_delivery=delivered)
        remaining = self._producer.flush(30)
        if remaining or failures:
            raise DeliveryError(f"{remaining} messages unacknowledged; failed: {'; '.join(failures) or 'none'}")

    def _commit(self, messages: Sequence) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.commit(offsets=[TopicPartition(topic, partition, offset + 1)
                                       for (topic, partition), offset in _last_offsets(messages).items()],
                              asynchronous=False)

    def _rewind(self, messages: Sequence) -> None:
        """Seek back to the first offset of each partition of a failed batch, to read it again."""
        from confluent_kafka import KafkaException, TopicPartition

        for (topic, partition), offset in _first_offsets(messages).items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:  # revoked meanwhile: its new owner reads from the commit
                logger.warning("could not rewind %s[%d]: %s", topic, partition, error)


def _first_offsets(messages: Sequence) -> dict[tuple[str, int], int]:
    first: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        first[key] = min(first.get(key, message.offset()), message.offset())
    return first


def _last_offsets(messages: Sequence) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        last[key] = max(last.get(key, message.offset()), message.offset())
    return last


def run_until_signalled(consumer: EventStreamConsumer, log_every_s: float = 10.0) -> StreamCounts:
    """Run a consumer until SIGINT or SIGTERM, logging its totals every ``log_every_s`` seconds."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def report():
        while not stop.wait(log_every_s):
            counts = consumer.counts
            logger.info("events %d, dead letters %d, alerts %d, batches %d, failed batches %d",
                        counts.events, counts.dead_letters, counts.alerts, counts.batches, counts.failed_batches)

    threading.Thread(target=report, daemon=True).start()
    started = time.monotonic()
    counts = consumer.run(stop)
    logger.info("stopped after %.0f s: %d events, %d dead letters, %d alerts", time.monotonic() - started,
                counts.events, counts.dead_letters, counts.alerts)
    return counts
