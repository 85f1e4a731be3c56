"""The Kafka stream consumer into Redis: events per second, and event-to-online latency.

Sets up what ``biomarkers stream`` runs against in production, on this machine: the project's
feature definitions (``features.definitions``) over synthetic tables of ``--subjects`` subjects
(``benchmarks.retrieval.build_tables``), registered in a temporary Feast repo whose online store
is the Redis server at 127.0.0.1:6379 (a project of its own, torn down at the end) and
materialized with the bulk loader; a Tansu Kafka-protocol broker on a free loopback port
(``tests.kafka_broker``); one ``serving.stream.EventStreamConsumer`` in this process, with
the alerts store in a temporary SQLite file.

1. Throughput: ``--events`` vital-sign events (JSON, keyed by subject, all seven NEWS2
   parameters, a share urgent) are produced first; the consumer then reads them all. Figure:
   events / (end of the last batch's commit - start of the first batch's processing), so the
   consumer group's join (about half of ``session.timeout.ms`` on Tansu) is not counted. Every
   event goes through validation, the known-subject check, NEWS2, the offline push, the
   online push, the alerts and the commit.
2. Latency: events are produced at a steady ``--rate`` per second for ``--seconds``, each stamped
   with the time it was produced; an event's latency is from that stamp to the moment the
   consumer's online push returned (Redis acknowledged the write: any read after it sees the
   event). Figure: p50, p99 and max over the events produced after the first ``--warmup``
   seconds (a fresh consumer first checks each subject against the online store once, which
   a long-running one has done long before), and the same over all events for comparison.

Targets: >= 5,000 events/s on one consumer; event-to-online p99 <= 250 ms.

Usage: .venv/bin/python benchmarks/stream.py [--subjects 1000] [--events 50000] [--rate 1000]
                                              [--seconds 15] [--warmup 5] [--batch 2000] [--wait-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchmarks.retrieval import REDIS, build_tables, redis_reason, write_repo  # noqa: E402

VITALS = {"heart_rate_bpm": 72.0, "respiratory_rate_per_min": 16.0, "spo2_percent": 97.0, "temperature_deg_c": 36.8,
          "systolic_bp_mmhg": 124.0, "consciousness_avpu": "A", "supplemental_oxygen": False}
URGENT = {**VITALS, "heart_rate_bpm": 131.0, "respiratory_rate_per_min": 26.0}


def event_message(subject: str, moment: datetime, urgent: bool) -> bytes:
    return json.dumps({"subject_id": subject, "timestamp": moment.isoformat(),
                       **(URGENT if urgent else VITALS)}).encode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Timed:
    """Batch timings of a consumer: when processing began and ended, and each event's latency."""

    def __init__(self):
        self.first_start: float | None = None
        self.last_end: float | None = None
        self.latencies_ms: list[tuple[float, datetime]] = []  # (latency, produced at)
        self.events = 0


def run_consumer(settings, store, alerts, timed: Timed, measure_latency: bool):
    """Start a consumer in a thread that fills ``timed``; return it, its stop event and the thread."""
    from serving.stream import EventStreamConsumer

    class TimedConsumer(EventStreamConsumer):
        def process(self, messages):
            started = time.perf_counter()
            outcome = super().process(messages)
            timed.first_start = timed.first_start or started
            timed.last_end = time.perf_counter()
            timed.events += len(outcome.events)
            if measure_latency:
                timed.latencies_ms.extend(((outcome.online_at - event.timestamp).total_seconds() * 1000,
                                           event.timestamp) for event in outcome.events)
            return outcome

    consumer = TimedConsumer(settings, "bench", store, alerts)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    return consumer, stop, thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50_000, help="events of the throughput phase")
    parser.add_argument("--rate", type=int, default=1000, help="events per second of the latency phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the latency phase not counted")
    parser.add_argument("--batch", type=int, default=2000, help="events per micro-batch at most")
    parser.add_argument("--wait-ms", type=int, default=50, help="a micro-batch closes after this long")
    args = parser.parse_args()

    reason = redis_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    import numpy as np
    from confluent_kafka import Producer

    from adapters.feast_repo import apply_repo, materialize, open_store
    from serving.alerts import AlertStore
    from serving.settings import StreamSettings
    from tests.kafka_broker import create_topics, tansu_broker

    print(f"machine: {os.cpu_count()} cores; subjects {args.subjects}; batch <= {args.batch} events or "
          f"{args.wait_ms} ms")
    with tempfile.TemporaryDirectory() as folder, tansu_broker(Path(folder) / "broker.log") as bootstrap:
        folder = Path(folder)
        tables = folder / "tables"
        tables.mkdir()
        build_tables(tables, args.subjects, days=3, vitals_share=0.1)
        repo = write_repo(folder / f"stream_{uuid.uuid4().hex[:8]}", "adapters.offline_store.AsofDuckDBOfflineStore",
                          f"{{type: redis, connection_string: '{REDIS[0]}:{REDIS[1]}'}}")
        apply_repo(repo, tables)
        materialize(repo, end=datetime(2024, 4, 1, tzinfo=UTC))
        store = open_store(repo)
        alerts = AlertStore(f"sqlite:///{folder / 'alerts.db'}", "bench")
        subjects = [f"S{k:05d}" for k in range(args.subjects)]
        rng = np.random.default_rng(11)
        try:
            for phase in ("throughput", "latency"):
                settings = StreamSettings(
                    bootstrap_servers=bootstrap, events_topic=f"events-{phase}", dead_letter_topic=f"dead-{phase}",
                    alerts_topic=f"alerts-{phase}", group_id=f"bench-{phase}", max_batch_events=args.batch,
                    max_batch_wait_s=args.wait_ms / 1000, session_timeout_ms=6000)
                create_topics(bootstrap, settings.events_topic, settings.dead_letter_topic, settings.alerts_topic)
                producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
                timed = Timed()
                if phase == "throughput":
                    base = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
                    for k in range(args.events):
                        subject = subjects[k % len(subjects)]
                        moment = datetime.fromtimestamp(base + k, UTC)
                        producer.produce(settings.events_topic, key=subject.encode(),
                                         value=event_message(subject, moment, urgent=rng.random() < 0.02))
                        producer.poll(0)
                    producer.flush(60)
                    consumer, stop, thread = run_consumer(settings, store, alerts, timed, False)
                    deadline = time.monotonic() + 600
                    while timed.events < args.events and time.monotonic() < deadline:
                        time.sleep(0.05)
                    stop.set()
                    thread.join(60)
                    elapsed = timed.last_end - timed.first_start
                    rate = timed.events / elapsed
                    print(f"throughput: {timed.events} events in {elapsed:.2f} s = {rate:,.0f} events/s over "
                          f"{consumer.counts.batches} batches ({consumer.counts.alerts} alerts, "
                          f"{consumer.counts.dead_letters} dead letters, {consumer.counts.failed_batches} retried); "
                          f"target >= 5,000: {'met' if rate >= 5000 else 'MISSED'}")
                else:
                    consumer, stop, thread = run_consumer(settings, store, alerts, timed, True)
                    time.sleep(settings.session_timeout_ms / 1000)  # let the group join before the clock starts
                    total = int(args.rate * args.seconds)
                    started, counted_from = time.perf_counter(), datetime.now(UTC).timestamp() + args.warmup
                    for k in range(total):
                        # Pace: event k is due at k / rate seconds.
                        delay = started + k / args.rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        subject = subjects[int(rng.integers(len(subjects)))]
                        producer.produce(settings.events_topic, key=subject.encode(),
                                         value=event_message(subject, datetime.now(UTC), urgent=False))
                        producer.poll(0)
                    producer.flush(60)
                    deadline = time.monotonic() + 120
                    while timed.events < total and time.monotonic() < deadline:
                        time.sleep(0.05)
                    stop.set()
                    thread.join(60)
                    every = [latency for latency, _ in timed.latencies_ms]
                    steady = [latency for latency, produced in timed.latencies_ms
                              if produced.timestamp() >= counted_from]
                    p99 = percentile(steady, 0.99)
                    verdict = "met" if p99 <= 250 else "MISSED"
                    print(f"latency at {args.rate} events/s for {args.seconds:g} s "
                          f"({consumer.counts.batches} batches): "
                          f"produce-to-online after {args.warmup:g} s warm-up ({len(steady)} events) p50 "
                          f"{statistics.median(steady):.0f} ms, p99 {p99:.0f} ms, max {max(steady):.0f} ms; "
                          f"all {len(every)} events p50 {statistics.median(every):.0f} ms, p99 "
                          f"{percentile(every, 0.99):.0f} ms; target p99 <= 250 ms: {verdict}")
        finally:
            alerts.close()
            store.teardown()


if __name__ == "__main__":
    main()
