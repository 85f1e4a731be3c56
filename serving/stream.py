"""The Kafka stream consumer of live vital-sign events (``biomarkers stream``).

Each micro-batch of the events topic goes the way of ``POST /v1/events`` (``serving.events``):
validated one event at a time, assessed with NEWS2, each subject's newest observation pushed
online to the Feast view ``vital_signs_live``, its alerts recorded in the alerts store and
produced to the alerts topic. An event that fails validation (not JSON or a value JSON does not
allow, as ``serving.strict_json`` parses it; not a ``VitalSignEvent``, implausible, dated more than
``max_event_clock_skew_seconds`` ahead of the consumer's clock, of a subject the online store
does not know, or a second event of one subject and time with other values in one micro-batch:
the HTTP API's checks) is produced, unchanged, to the dead-letter topic with the
reason in its ``error`` header; the rest of the batch goes on.

Each study has its own topics (``<study_id>.vital-signs``, ``.dead-letter``, ``.alerts``: see
``serving.settings.StreamSettings.for_study``) and its own consumer, store and alerts: the topic
says which study an event is for, and a broker's prefixed ACL on ``<study_id>.`` keeps each
study's producers and readers to its own topics. An event may name its study (``study_id``);
one that names another study than its topic's is dead-lettered, not stored. Several studies
are consumed side by side in one process by :func:`run_consumers`, one thread each.

Visibility and durability run at two paces. Every micro-batch is online as soon as it is
processed (the latency that matters to an early-warning score). Every ``commit_interval_s``
the events since the last commit are handed to a committer thread, which writes them to the
view's offline log in one push and awaits the broker's acknowledgement of every dead letter
and alert while the loop goes on consuming; only then does the loop commit their offsets. A push
costs one small part of the log whatever its size (``adapters.offline_store.PushLog``), and no
event waits for it.

Delivery is at least once, and nothing is counted twice:

* offsets are committed only after everything read before them is stored (online, offline,
  alerts) and every message produced for them is acknowledged;
* a batch that fails (store unreachable, broker error) is not committed: the consumer waits
  (doubling up to ``retry_backoff_max_s``), rewinds to the first uncommitted offsets and reads
  them again;
* a consumer killed at any point reads everything after its last commit again on restart, and
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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from serving.alerts import AlertStore, NewAlert
from serving.events import (
    assess_anomalies,
    assess_events,
    future_events,
    live_rows,
    live_view,
    new_alerts,
    push_offline,
    push_online,
    with_anomaly_alerts,
)
from serving.models import ModelNotLoadedError
from serving.online import KnownSubjects
from serving.schemas import VitalSignEvent, conflicting_events
from serving.settings import StreamSettings
from serving.strict_json import StrictJSONError, loads_strict

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
    """What one micro-batch did: its events online at ``online_at`` (UTC), ``online_rows`` rows written."""

    events: tuple[VitalSignEvent, ...]
    refused: tuple[Refused, ...]
    alerts: tuple[NewAlert, ...]
    online_rows: int
    online_at: datetime


@dataclass
class _Pending:
    """Micro-batches processed and not yet committed: their messages, live rows and counts."""

    messages: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    counts: StreamCounts = field(default_factory=lambda: StreamCounts())


@dataclass
class StreamCounts:
    """Running totals of a consumer, counted at each commit (``events``: accepted and stored)."""

    batches: int = 0
    commits: int = 0
    events: int = 0
    dead_letters: int = 0
    alerts: int = 0
    failed_batches: int = 0
    last_error: str | None = None


def describe_validation_error(error: ValidationError) -> str:
    """A pydantic error in one line: ``field: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'event'}: {problem['msg']}"
                     for problem in error.errors(include_url=False))


def parse_event(value: bytes | None, study_id: str | None = None) -> VitalSignEvent | str:
    """The event in a message value, or why it is not one.

    The message may name its study (``"study_id"``, besides the ``/v1/events`` fields); when
    ``study_id`` is given, an event naming another study is refused (a producer writing to the
    wrong study's topic).
    """
    if value is None:
        return "empty message: no event"
    try:
        payload = loads_strict(value)
    except StrictJSONError as error:
        return f"refused JSON: {error}"
    except ValueError as error:  # json.JSONDecodeError
        return f"malformed JSON: {error}"
    if not isinstance(payload, dict):
        return f"an event is a JSON object, got {type(payload).__name__}"
    if "study_id" in payload:
        named = payload["study_id"]
        if study_id is not None and named != study_id:
            return (f"event of study {named!r} on the events topic of study {study_id!r}: "
                    "produce it to its own study's topic")
        payload = {name: field_value for name, field_value in payload.items() if name != "study_id"}
    try:
        return VitalSignEvent.model_validate(payload)
    except ValidationError as error:
        return f"invalid event: {describe_validation_error(error)}"


def _where(message) -> str:
    """A message's place: ``topic[partition]@offset``."""
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


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
        Called with each micro-batch's ``BatchOutcome`` once it is online (benchmarks measure
        latency with it).
    anomaly_model : callable, optional
        Returns the vital-sign anomaly model (``ModelRegistry.get`` of the served name), which
        scores each subject's current hour; None: NEWS2 alerts only.
    """

    def __init__(self, settings: StreamSettings, study_id: str, store, alert_store: AlertStore,
                 on_batch: Callable[[BatchOutcome], None] | None = None, anomaly_model: Callable | None = None):
        from confluent_kafka import Consumer, Producer

        self.settings = settings
        self.study_id = study_id
        self.store = store
        self.alert_store = alert_store
        self.on_batch = on_batch
        self.anomaly_model = anomaly_model
        self.counts = StreamCounts()
        self._known = KnownSubjects()
        self._pending = _Pending()  # processed, not yet handed to the committer
        self._inflight: tuple[_Pending, Future] | None = None  # handed to the committer, not yet committed
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-commit")
        self._lock = threading.Lock()  # delivery failures, shared with the committer
        self._delivery_failures: list[str] = []
        self._last_commit = time.monotonic()
        self._consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers, "group.id": settings.group_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms, "enable.partition.eof": False,
            # The broker may hold a fetch this long waiting for data: it bounds the latency of an
            # event that arrives while a fetch is waiting (librdkafka's default is 500 ms).
            "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        })
        self._producer = Producer({
            "bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5,
        })

    def run(self, stop: threading.Event) -> StreamCounts:
        """Consume until ``stop`` is set, then commit what was processed and close."""
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
                try:
                    self._check_commit()
                    if records:
                        self.process(records)
                    if self._inflight is None and time.monotonic() - self._last_commit >= settings.commit_interval_s:
                        self._start_commit()
                    backoff = 0.1
                except Exception as error:  # noqa: BLE001 - any failure: not committed, read again
                    self._fail(error, records, backoff, stop)
                    backoff = min(backoff * 2, settings.retry_backoff_max_s)
            try:
                self._wait_commit()
                self._start_commit()
                self._wait_commit()
            except Exception as error:  # noqa: BLE001 - stopping: the next consumer reads it again
                logger.error("final commit failed, the uncommitted events will be read again: %s", error)
        finally:
            self._committer.shutdown(wait=True)
            self._consumer.close()
            self._producer.flush(10)
        return self.counts

    def process(self, messages: Sequence) -> BatchOutcome:
        """Validate one micro-batch, push it online, record and produce its alerts and dead letters.

        Its offsets are committed later, in the background (:meth:`_start_commit`).
        """
        candidates, refused = [], []
        for message in messages:
            parsed = parse_event(message.value(), self.study_id)
            if isinstance(parsed, str):
                refused.append(Refused(message, parsed))
            else:
                candidates.append((message, parsed))
        ahead = future_events([event for _, event in candidates], datetime.now(UTC),
                              self.settings.max_event_clock_skew_seconds)
        refused += [Refused(candidates[index][0], f"invalid event: {reason}") for index, reason in ahead.items()]
        candidates = [candidate for index, candidate in enumerate(candidates) if index not in ahead]
        # Within a micro-batch, a second event of one subject and time with other values is refused
        # and the first stands: the log, the online row and the alert then all hold the first's.
        conflicts = {later: (candidates[earlier][0], reason)
                     for earlier, later, reason in conflicting_events([event for _, event in candidates])}
        refused += [Refused(candidates[later][0], f"conflicting event: it and the message at {_where(first)} "
                                                  f"{reason}; the first stands")
                    for later, (first, reason) in conflicts.items()]
        candidates = [candidate for index, candidate in enumerate(candidates) if index not in conflicts]
        known = self._known(self.store, [event.subject_id for _, event in candidates]) if candidates else set()
        events = []
        for message, event in candidates:
            if event.subject_id in known:
                events.append(event)
            else:
                refused.append(Refused(message, f"unknown subject {event.subject_id!r}: no online features in "
                                                f"study {self.study_id!r}"))
        assessments = assess_events(events)
        rows = live_rows(events, assessments)
        view = live_view(self.store)
        online_rows = push_online(self.store, view, rows) if events else 0
        online_at = datetime.now(UTC)
        alerts = new_alerts(events, assessments)
        if self.anomaly_model is not None and events:
            try:
                model = self.anomaly_model()
            except ModelNotLoadedError as error:  # NEWS2 goes on
                logger.warning("events scored with NEWS2 only: %s", error)
            else:
                # The offline log lacks what was read since the last commit: those rows come along.
                inflight = self._inflight[0].rows if self._inflight else []
                found = assess_anomalies(self.store, view, model, events,
                                         extra=[*inflight, *self._pending.rows, rows])
                alerts = with_anomaly_alerts(alerts, found, model)
        self.alert_store.record_many(alerts, source=ALERT_SOURCE)
        self._produce(refused, alerts)
        self._pending.messages.extend(messages)
        self._pending.rows.append(rows)
        self._pending.counts.batches += 1
        self._pending.counts.events += len(events)
        self._pending.counts.dead_letters += len(refused)
        self._pending.counts.alerts += len(alerts)
        outcome = BatchOutcome(tuple(events), tuple(refused), tuple(alerts), online_rows, online_at)
        if self.on_batch is not None:
            self.on_batch(outcome)
        return outcome

    def _start_commit(self) -> None:
        """Hand what was processed since the last commit to the committer thread.

        The consume loop goes on meanwhile: no event should wait for the offline write (now and
        then a fold of the log's parts) or the broker's acknowledgements to be online.
        """
        self._last_commit = time.monotonic()
        snapshot, self._pending = self._pending, _Pending()
        if snapshot.messages:
            self._inflight = (snapshot, self._committer.submit(self._store, snapshot))

    def _store(self, snapshot: _Pending) -> None:
        """In the committer thread: the rows offline, then every produced message acknowledged."""
        import pandas as pd

        rows = [frame for frame in snapshot.rows if len(frame)]
        if rows:
            push_offline(self.store, live_view(self.store), pd.concat(rows, ignore_index=True))
        remaining = self._producer.flush(30)
        with self._lock:
            failures, self._delivery_failures = self._delivery_failures, []
        if remaining or failures:
            raise DeliveryError(f"{remaining} messages unacknowledged; failed: {'; '.join(failures) or 'none'}")

    def _check_commit(self) -> None:
        """Once the committer has stored a snapshot, commit its offsets (here: the consumer is not
        shared between threads, and a synchronous commit from another thread waits on this one's
        consume). Raise the committer's failure instead; the snapshot's events are then read again."""
        if self._inflight is None or not self._inflight[1].done():
            return
        snapshot, future = self._inflight
        self._inflight = None
        try:
            future.result()
            self._commit(snapshot.messages)
        except Exception:
            self._pending.messages[:0] = snapshot.messages  # uncommitted: rewound with the rest by _fail
            raise
        for name in ("batches", "events", "dead_letters", "alerts"):
            setattr(self.counts, name, getattr(self.counts, name) + getattr(snapshot.counts, name))
        self.counts.commits += 1

    def _wait_commit(self) -> None:
        """Wait for the commit in flight, if any, and finish it."""
        if self._inflight is not None:
            wait([self._inflight[1]])
            self._check_commit()

    def _fail(self, error: Exception, records: Sequence, backoff: float, stop: threading.Event) -> None:
        """Forget everything uncommitted, wait, and rewind to read it again."""
        uncommitted = [*self._pending.messages, *records]
        self._pending = _Pending()
        with self._lock:
            self._delivery_failures = []
        self.counts.failed_batches += 1
        self.counts.last_error = f"{type(error).__name__}: {error}"
        logger.error("%d events not committed, reading them again in %.1f s: %s", len(uncommitted), backoff,
                     self.counts.last_error)
        stop.wait(backoff)
        self._rewind(uncommitted)

    def _produce(self, refused: Sequence[Refused], alerts: Sequence[NewAlert]) -> None:
        """Produce dead letters and alerts; :meth:`commit` awaits their acknowledgement."""
        def delivered(error, message):
            if error is not None:
                with self._lock:
                    self._delivery_failures.append(f"{message.topic()}: {error}")

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
        self._producer.poll(0)

    def _commit(self, messages: Sequence) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.commit(offsets=[TopicPartition(topic, partition, offset + 1)
                                       for (topic, partition), offset in _offsets(messages, max).items()],
                              asynchronous=False)

    def _rewind(self, messages: Sequence) -> None:
        """Seek back to the first offset of each partition of ``messages``, to read them again."""
        from confluent_kafka import KafkaException, TopicPartition

        for (topic, partition), offset in _offsets(messages, min).items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:  # revoked meanwhile: its new owner reads from the commit
                logger.warning("could not rewind %s[%d]: %s", topic, partition, error)


def _offsets(messages: Sequence, pick: Callable[[int, int], int]) -> dict[tuple[str, int], int]:
    """Per topic and partition, the offset ``pick`` (min or max) chooses among ``messages``."""
    chosen: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic(), message.partition())
        chosen[key] = pick(chosen.get(key, message.offset()), message.offset())
    return chosen


def run_consumers(consumers: Sequence[EventStreamConsumer], stop: threading.Event,
                  log_every_s: float = 10.0) -> list[StreamCounts]:
    """Run consumers side by side, one thread each, until ``stop`` is set; their totals, in order.

    A consumer that fails (a fatal broker error: it retries every other failure itself) stops
    them all and its error is raised once every one has committed and closed: a process with one
    study's consumer dead would look alive while that study's events pile up.
    """
    counts: dict[int, StreamCounts] = {}
    failures: list[BaseException] = []

    def consume(index: int, consumer: EventStreamConsumer) -> None:
        try:
            counts[index] = consumer.run(stop)
        except BaseException as error:
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=consume, args=(index, consumer), name=f"stream-{consumer.study_id}")
               for index, consumer in enumerate(consumers)]
    for thread in threads:
        thread.start()
    next_log = time.monotonic() + log_every_s
    while not stop.is_set():
        # Polled, not stop.wait(): a signal handler setting ``stop`` while this (main) thread holds
        # the event's lock inside wait() would deadlock on it.
        time.sleep(0.1)
        if time.monotonic() >= next_log:
            next_log += log_every_s
            for consumer in consumers:
                totals = consumer.counts
                logger.info("%s: events %d, dead letters %d, alerts %d, batches %d, failed batches %d",
                            consumer.study_id, totals.events, totals.dead_letters, totals.alerts, totals.batches,
                            totals.failed_batches)
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [counts[index] for index in range(len(consumers))]


def run_until_signalled(consumers: Sequence[EventStreamConsumer], log_every_s: float = 10.0) -> list[StreamCounts]:
    """Run consumers (:func:`run_consumers`) until SIGINT or SIGTERM; their totals, in order."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    counts = run_consumers(consumers, stop, log_every_s)
    for consumer, totals in zip(consumers, counts, strict=True):
        logger.info("%s stopped after %.0f s: %d events, %d dead letters, %d alerts", consumer.study_id,
                    time.monotonic() - started, totals.events, totals.dead_letters, totals.alerts)
    return counts
