"""The online API's settings: one validated, frozen object built at the entry point and passed down.

The CLI builds it from the study configuration and hands it to :func:`serving.app.create_app`;
nothing here reads the environment. API keys are stored only as the SHA-256 of the key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.tracking import ModelReference

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_MAX_EVENT_CLOCK_SKEW_S = 300.0

# The stream's names per study: ``{study_id}`` is replaced by the study id. Study ids hold no dot
# (``[a-z][a-z0-9_-]*``), so a study's topics are exactly those under the prefix ``<study_id>.``:
# one prefixed Kafka ACL per study grants its producers and consumers its topics and no other.
STUDY_PLACEHOLDER = "{study_id}"
EVENTS_TOPIC = "{study_id}.vital-signs"
DEAD_LETTER_TOPIC = "{study_id}.vital-signs.dead-letter"
ALERTS_TOPIC = "{study_id}.vital-signs.alerts"
CONSUMER_GROUP = "biomarkers-{study_id}"
# What Kafka accepts as a topic name: a template left unfilled ("{study}") is refused here.
_KAFKA_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"


def study_name(template: str, study_id: str) -> str:
    """A stream name of one study: ``{study_id}`` in ``template`` replaced (``demo.vital-signs``)."""
    return template.replace(STUDY_PLACEHOLDER, study_id)


def hash_api_key(key: str) -> str:
    """The lowercase hex SHA-256 of an API key: what the settings store instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKey(BaseModel):
    """One client's key, by the hash of the key, with the studies it may read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="who holds the key (for logs and audit), never the key itself")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the key (see hash_api_key)")
    studies: tuple[str, ...] = Field(description="study ids the key may read")

    @field_validator("sha256")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        return value.lower()


class ServingSettings(BaseModel):
    """Everything the HTTP service needs, validated once.

    Parameters
    ----------
    study_id : str
        The study this service answers for; a key must be scoped to it.
    feast_repo_path : Path
        The Feast repository (its ``feature_store.yaml`` unless ``feast_yaml_file`` is given).
    feast_yaml_file : Path, optional
        Other Feast infrastructure (production: Redis, SQL registry).
    tracking_uri : str
        The MLflow tracking (and registry) URI.
    models : dict of str to str
        Served name to registry reference, ``NAME@ALIAS`` or ``NAME/VERSION``,
        e.g. ``{"hospitalization_risk": "demo-hospitalization_risk@champion"}``.
    api_keys : tuple of ApiKey
        The keys accepted on ``/v1``, hashed.
    max_body_bytes : int
        Request bodies larger than this are refused with 413 (bytes; default 64 KiB).
    reload_seconds : float
        How often the service checks whether an alias moved to another version (seconds; 0: never,
        ``POST /v1/admin/reload`` still works).
    events_anomaly_model : str, optional
        The served model (a key of ``models``) that scores each subject's current hour of vital
        signs when events arrive (the vital-sign anomaly model, task anomaly, trained on
        ``hourly_vitals``); an anomalous hour raises an alert. None: NEWS2 only.
    max_event_clock_skew_seconds : float
        How far ahead of the server's clock an event's timestamp may be (seconds; default 300):
        a later one is refused with 422, since as a subject's newest observation it would hide
        every real one until they caught up with its time.
    request_threads : int
        Requests the worker process works on at once (its thread pool's size; default 1). Scoring
        is Python on the CPU: threads of one process take turns on the GIL, and on the online
        benchmark (4 clients, 2 cores) one thread answered 100 single-subject requests/s where
        anyio's default of 40 answered 54. Scale with processes; raise this only for a slow store.
    online_store_timeout_s : float
        Connect and read timeout of every online store call (seconds; default 0.5), with no
        retries: while the store is down a request gets its 503 and ``Retry-After`` within about
        this long instead of holding a request thread through the Redis client's backoff.
    alerts_url : str, optional
        SQLAlchemy URL of the alerts database (``sqlite:///path/alerts.db`` or
        ``postgresql+psycopg://...``). Default ``None``: an in-memory SQLite database private to
        the app, lost on restart and not shared between workers (tests and demos only; set it in
        production).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_id: str = Field(min_length=1)
    feast_repo_path: Path
    feast_yaml_file: Path | None = None
    tracking_uri: str = Field(min_length=1)
    models: dict[str, str] = Field(default_factory=dict)
    api_keys: tuple[ApiKey, ...] = ()
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    reload_seconds: float = Field(default=0.0, ge=0)
    request_threads: int = Field(default=1, ge=1)
    online_store_timeout_s: float = Field(default=0.5, gt=0, le=30)
    alerts_url: str | None = Field(default=None, min_length=1)
    events_anomaly_model: str | None = None
    max_event_clock_skew_seconds: float = Field(default=DEFAULT_MAX_EVENT_CLOCK_SKEW_S, ge=0)

    @field_validator("models")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [f"{name}: {reference!r}" for name, reference in value.items()
               if not ModelReference.is_reference(reference)]
        if bad:
            raise ValueError(f"model references must be NAME@ALIAS or NAME/VERSION: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _events_model_is_served(self) -> ServingSettings:
        if self.events_anomaly_model is not None and self.events_anomaly_model not in self.models:
            raise ValueError(f"events_anomaly_model {self.events_anomaly_model!r} is not a served model "
                             f"({', '.join(sorted(self.models)) or 'none'})")
        return self


class StreamSettings(BaseModel):
    """The Kafka stream consumer of live vital-sign events (``biomarkers stream``).

    Parameters
    ----------
    bootstrap_servers : str
        Kafka bootstrap servers, ``HOST:PORT[,HOST:PORT...]``.
    events_topic : str
        The topic of one study's device events (JSON, one ``VitalSignEvent`` per message, keyed by
        subject); by default ``<study_id>.vital-signs`` (:meth:`for_study`).
    dead_letter_topic : str
        Where events that fail validation go, unchanged, with the reason in the ``error`` header
        (``<study_id>.vital-signs.dead-letter``).
    alerts_topic : str
        Where urgent-response alerts go (JSON, keyed by subject, with a stable ``alert_id``;
        ``<study_id>.vital-signs.alerts``).
    group_id : str
        The consumer group: one committed position per group and partition (``biomarkers-<study_id>``).
    max_batch_events : int
        At most this many events per micro-batch.
    max_batch_wait_s : float
        A micro-batch closes after this long even if not full (seconds): the latency floor.
    fetch_wait_max_ms : int
        The longest the broker may hold a fetch waiting for data (ms): a latency floor too.
    commit_interval_s : float
        How often the events processed since the last commit are written to the offline log and
        their offsets committed (seconds): what a restart reads again at most.
    session_timeout_ms : int
        Kafka consumer session timeout (ms); a group join takes about half of it on Tansu.
    retry_backoff_max_s : float
        The longest wait before a failed batch is retried (seconds; the wait doubles from 0.1 s).
    max_event_clock_skew_seconds : float
        How far ahead of the consumer's clock an event's timestamp may be (seconds; default
        300); a later one goes to the dead-letter topic, as the HTTP API refuses it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(min_length=1)
    events_topic: str = Field(pattern=_KAFKA_TOPIC)
    dead_letter_topic: str = Field(pattern=_KAFKA_TOPIC)
    alerts_topic: str = Field(pattern=_KAFKA_TOPIC)
    group_id: str = Field(min_length=1)
    max_batch_events: int = Field(default=2000, gt=0)
    max_batch_wait_s: float = Field(default=0.05, gt=0)
    commit_interval_s: float = Field(default=1.0, ge=0)
    fetch_wait_max_ms: int = Field(default=20, ge=0)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    max_event_clock_skew_seconds: float = Field(default=DEFAULT_MAX_EVENT_CLOCK_SKEW_S, ge=0)

    @classmethod
    def for_study(cls, study_id: str, bootstrap_servers: str, *, events_topic: str = EVENTS_TOPIC,
                  dead_letter_topic: str = DEAD_LETTER_TOPIC, alerts_topic: str = ALERTS_TOPIC,
                  group_id: str = CONSUMER_GROUP, **settings) -> StreamSettings:
        """The settings of one study's consumer: each name a template in which ``{study_id}`` is replaced."""
        return cls(bootstrap_servers=bootstrap_servers, events_topic=study_name(events_topic, study_id),
                   dead_letter_topic=study_name(dead_letter_topic, study_id),
                   alerts_topic=study_name(alerts_topic, study_id), group_id=study_name(group_id, study_id),
                   **settings)
