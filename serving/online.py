"""Online feature reads through Feast: values, the event time of each view's row, and its age.

The only module of the service that calls Feast's read API; routers call these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

# Feast's suffix for a feature's event time in ``to_dict(include_event_timestamps=True)``.
_TIMESTAMP_SUFFIX = "__ts"


class UnknownFeatureServiceError(LookupError):
    """No feature service of that name; the message names the known ones."""


class OnlineStoreUnavailableError(RuntimeError):
    """The online store did not answer (down, unreachable, timed out): the API answers 503."""


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """What a store that does not answer raises: sockets, Redis's client, SQLite's locked or missing file."""
    import sqlite3

    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, sqlite3.OperationalError]
    try:
        import redis.exceptions
    except ImportError:  # no Redis client installed: no Redis store either
        pass
    else:
        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError]
    return tuple(errors)


_UNAVAILABLE = _unavailable_errors()


@contextlib.contextmanager
def online_store_call(what: str):
    """Turn the store's "did not answer" errors into OnlineStoreUnavailableError naming ``what`` failed."""
    try:
        yield
    except _UNAVAILABLE as error:
        raise OnlineStoreUnavailableError(f"online store unavailable while {what}: {type(error).__name__}: "
                                          f"{error}") from error


@dataclass(frozen=True)
class OnlineFeatures:
    """Online features of some subjects, in the order asked.

    ``values``: one row per subject (index ``subject_id``), one column per feature, NaN or None
    where the online store has nothing. ``event_times``: one row per subject, one column per
    batch feature view, the UTC end of the window its values summarize (NaT when none).
    """

    values: pd.DataFrame
    event_times: pd.DataFrame
    read_at: datetime

    def ages_h(self) -> pd.DataFrame:
        """Hours from each view's event time to the read, per subject (NaN when no row)."""
        # In integer nanoseconds (NaT is the smallest int64): one numpy step for all views.
        stamps = self.event_times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        hours = (pd.Timestamp(self.read_at).value - stamps) / 3.6e12
        return pd.DataFrame(np.where(stamps == np.iinfo(np.int64).min, np.nan, hours),
                            index=self.event_times.index, columns=self.event_times.columns)

    def known(self) -> pd.Series:
        """Per subject, whether the online store has any value for it."""
        return self.values.notna().any(axis=1)


REGISTRY_REFRESH_S = 30.0
"""How long the service trusts what it read from the Feast registry (seconds): a `feast apply`
reaches a running service within this time."""


@dataclass(frozen=True)
class RegistrySnapshot:
    """What requests need from the Feast registry, read again only when the registry changed.

    Feast 0.67 rebuilds every feature view from the registry's protobuf, type checks included,
    on each ``list_feature_views`` or ``get_feature_service``: some 70 ms, more than the online
    read itself. A request reads this snapshot instead.
    """

    read_at: float
    version: int | None  # the registry's last update (ns) when read
    services: dict[str, object]  # feature services by name
    views: dict[str, object]  # feature views with stored rows (not on-demand) by name
    probes: tuple[str, ...]  # one feature reference per batch view


_snapshots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_snapshots_lock = threading.Lock()


def _registry_version(store) -> int | None:
    """When Feast's cached registry was last updated (ns): it changes with every ``feast apply``."""
    proto = getattr(store.registry, "cached_registry_proto", None)
    return None if proto is None or not proto.HasField("last_updated") else proto.last_updated.ToNanoseconds()


def registry_snapshot(store, *, refresh: bool = False) -> RegistrySnapshot:
    """The store's registry snapshot, rebuilt when the registry changed or ``refresh``.

    Every ``REGISTRY_REFRESH_S`` Feast's registry is re-read (a file read, or a few SQL queries)
    and its last update compared: the snapshot is rebuilt only when an apply changed it, so no
    request pays the rebuild on a schedule.
    """
    now = time.monotonic()
    with _snapshots_lock:
        snapshot = _snapshots.get(store)
    if snapshot is not None and not refresh:
        if now - snapshot.read_at > REGISTRY_REFRESH_S:
            store.registry.refresh(store.project)
            # A registry without a cached proto (no version to compare) is rebuilt on this schedule.
            if snapshot.version is not None and _registry_version(store) == snapshot.version:
                snapshot = dataclasses.replace(snapshot, read_at=now)
                with _snapshots_lock:
                    _snapshots[store] = snapshot
        if snapshot.read_at == now or _registry_version(store) == snapshot.version:
            return snapshot
    views = store.list_feature_views()
    snapshot = RegistrySnapshot(
        read_at=now, version=_registry_version(store),
        services={service.name: service for service in store.list_feature_services()},
        views={view.name: view for view in views},
        probes=tuple(f"{view.name}:{view.features[0].name}" for view in views if view.features))
    with _snapshots_lock:
        _snapshots[store] = snapshot
    return snapshot


def feature_service(store, name: str):
    """The feature service ``name``; UnknownFeatureServiceError naming the known ones otherwise.

    A name not in the snapshot is looked up again at once: a service applied a moment ago is found.
    """
    services = registered(store, "services", name)
    if name not in services:
        raise UnknownFeatureServiceError(f"no feature service {name!r}; known: {', '.join(sorted(services)) or 'none'}")
    return services[name]


def registered(store, kind: str, name: str) -> dict:
    """The snapshot's ``kind`` (``services`` or ``views``) by name, read again at once if ``name`` is
    not among them (an object applied a moment ago is found)."""
    entries = getattr(registry_snapshot(store), kind)
    return entries if name in entries else getattr(registry_snapshot(store, refresh=True), kind)


def read_online(store, service, subject_ids: Sequence[str]) -> OnlineFeatures:
    """Read a feature service's online values for subjects (``subject_id`` entity key).

    Parameters
    ----------
    store : feast.FeatureStore
    service : feast.FeatureService
    subject_ids : sequence of str
    """
    with online_store_call("reading features"):
        response = store.get_online_features(
            features=service, entity_rows=[{"subject_id": subject} for subject in subject_ids],
        ).to_dict(include_event_timestamps=True)
    batch_views = registry_snapshot(store).views
    read_at = datetime.now(UTC)
    index = pd.Index(list(subject_ids), name="subject_id")
    values, times = {}, {}
    for projection in service.feature_view_projections:
        view = projection.name_to_use()
        seconds = []
        for feature in projection.features:
            values[feature.name] = response[feature.name]
            stamps = response.get(feature.name + _TIMESTAMP_SUFFIX)
            if stamps is not None:
                seconds.append(stamps)
        if projection.name not in batch_views:
            continue  # an on-demand view is computed at request time: no stored row, no age
        # Every feature of a view comes from the same row; 0 (or None) is Feast's "no row" timestamp.
        latest = np.fmax.reduce(np.array(seconds, dtype=float), axis=0) if seconds else np.zeros(len(index))
        times[view] = pd.to_datetime(np.where(latest > 0, latest, np.nan), unit="s", utc=True)
    values_frame = pd.DataFrame(values, index=index)
    times_frame = pd.DataFrame(times, index=index)
    return OnlineFeatures(values_frame, times_frame, read_at)


def known_subjects(store, subject_ids: Sequence[str]) -> set[str]:
    """The subjects the online store holds a row for in any batch feature view (``subject_id`` entity key).

    One read of one feature per view: a subject enrolled in the study but not yet materialized
    is not known until the next materialization.
    """
    references = list(registry_snapshot(store).probes)
    unique = list(dict.fromkeys(subject_ids))
    if not references or not unique:
        return set()
    with online_store_call("checking subjects"):
        response = store.get_online_features(
            features=references, entity_rows=[{"subject_id": subject} for subject in unique],
            full_feature_names=True).to_dict()
    columns = [response[reference.replace(":", "__", 1)] for reference in references]
    return {subject for subject, *values in zip(unique, *columns, strict=True)
            if any(json_value(value) is not None for value in values)}


class KnownSubjects:
    """:func:`known_subjects`, remembering for ``ttl_s`` seconds the subjects found known.

    Events arrive for the same subjects over and over; asking the online store each time costs
    a read of every view per batch. A subject not found is asked again on its next event (it
    may have been materialized meanwhile); one found is trusted for ``ttl_s``, so a subject
    withdrawn from the study stops being accepted within that time.
    """

    def __init__(self, ttl_s: float = 300.0, clock=None):
        self.ttl_s = ttl_s
        self._clock = clock or time.monotonic
        self._found_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, store, subject_ids: Sequence[str]) -> set[str]:
        now = self._clock()
        unique = list(dict.fromkeys(subject_ids))
        with self._lock:
            remembered = {subject for subject in unique if now - self._found_at.get(subject, -math.inf) < self.ttl_s}
        found = known_subjects(store, [subject for subject in unique if subject not in remembered])
        with self._lock:
            self._found_at.update(dict.fromkeys(found, now))
        return remembered | found


def fail_fast(store, timeout_s: float) -> None:
    """Make the store's own Redis client give up after ``timeout_s`` without retrying.

    redis-py 7 retries a failed command three times with a backoff of 1 to 10 s, and waits for
    a connection as long as the operating system lets it: a request to a Redis that is down
    waited 5 to 11 s for its 503, holding the one request thread. On the request path a
    fast "unavailable" is worth more than a retry: the client is told to come back
    (``Retry-After``). A timeout already set lower in the connection string is kept. Other
    online stores are left as they are (SQLite is a local file). Feast 0.67's
    ``RedisOnlineStore._get_client`` (private) is the client every read goes through.
    """
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    config = store.config.online_store
    if not isinstance(config, RedisOnlineStoreConfig):
        return
    client = store._get_provider().online_store._get_client(config)
    if not isinstance(client, redis.Redis):  # a cluster keeps the timeouts its connection string sets
        return
    pool = client.connection_pool
    for name in ("socket_timeout", "socket_connect_timeout"):
        pool.connection_kwargs[name] = min(pool.connection_kwargs.get(name) or timeout_s, timeout_s)
    client.set_retry(Retry(NoBackoff(), 0))
    pool.disconnect()  # connections made before keep their old timeouts: the next ones get these


MATERIALIZED_PREFIX = "materialized:"
"""Readiness checks named ``materialized:<view>``: the online store holds rows of that view."""

MAX_SCANNED_KEYS = 20_000
"""Redis keys looked at, at most, for a row of a view whose remembered key is gone."""


class OnlineStoreProbe:
    """Whether the online store answers and holds rows of given feature views: readiness.

    A Redis restarted without persistence (``--save ""``) comes back empty while Feast's
    registry still lists the views' materialized intervals, so the registry cannot tell: the
    probe looks in the store itself. It uses a connection of its own with ``timeout_s``
    timeouts and no retries, so it answers while requests wait on the store's client.

    * SQLite: one ``SELECT 1 ... LIMIT 1`` per view table, on a read-only connection.
    * Redis: a key found holding the view's ``_ts:<view>`` field is remembered and asked again
      (one pipelined round trip for all views); when it is gone, keys of the project are scanned
      (at most ``MAX_SCANNED_KEYS``) for another.
    * Any other store: a read of one feature for a made-up subject (it answers); rows unchecked.

    Parameters
    ----------
    store : feast.FeatureStore
    timeout_s : float
        Connect and read timeout of the probe's own connection (seconds).
    """

    def __init__(self, store, timeout_s: float):
        self.store = store
        self.timeout_s = timeout_s
        self._client = None
        self._remembered: dict[str, bytes] = {}  # view -> a Redis key that held a row of it

    def check(self, services: Sequence[str]) -> dict[str, str]:
        """``{"online_store": ..., "materialized:<view>": ...}``: ``"ok"`` or the reason it is not.

        The views are the materialized ones (not fed by pushes) of the feature ``services``, or
        of every service when none is given.
        """
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
        from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

        config = getattr(getattr(self.store, "config", None), "online_store", None)
        try:
            views = materialized_views(self.store, services)
            if isinstance(config, SqliteOnlineStoreConfig):
                empty = self._empty_sqlite_views(views)
            elif isinstance(config, RedisOnlineStoreConfig) and config.redis_type == RedisType.redis:
                empty = self._empty_redis_views(config, views)
            else:
                check_online_store(self.store)
                return {"online_store": "ok"} | {
                    MATERIALIZED_PREFIX + view: f"not checked on a {type(config).__name__}" for view in views}
        except Exception as error:  # any failure of the store means not ready; the reason is reported
            return {"online_store": f"{type(error).__name__}: {error}"}
        hint = ("the online store holds no row of this view: never materialized, or the store restarted "
                "empty; run `biomarkers materialize`")
        return {"online_store": "ok"} | {MATERIALIZED_PREFIX + view: hint if view in empty else "ok" for view in views}

    def _empty_sqlite_views(self, views: Sequence[str]) -> set[str]:
        import sqlite3

        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

        config = self.store.config
        path = Path(SqliteOnlineStore._get_db_path(config))
        if not path.is_file():
            raise FileNotFoundError(f"no online store file {path}: nothing was materialized into it; "
                                    "run `biomarkers materialize`")
        # Read-only: a missing file is an error here, not a new empty database.
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=self.timeout_s)) as db:
            empty = set()
            for view in views:
                table = _table_id(config.project, registry_snapshot(self.store).views[view])
                try:
                    if db.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is None:
                        empty.add(view)
                except sqlite3.OperationalError as error:
                    if "no such table" not in str(error):
                        raise
                    empty.add(view)
        return empty

    def _empty_redis_views(self, config, views: Sequence[str]) -> set[str]:
        import redis
        from feast.infra.online_stores.redis import RedisOnlineStore
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if self._client is None:
            nodes, params = RedisOnlineStore._parse_connection_string(config.connection_string)
            params.update(socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
                          retry=Retry(NoBackoff(), 0))
            self._client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)
        client = self._client
        client.ping()
        remembered = [view for view in views if view in self._remembered]
        if remembered:
            with client.pipeline(transaction=False) as pipe:
                for view in remembered:
                    pipe.hexists(self._remembered[view], f"_ts:{view}")
                for view, held in zip(remembered, pipe.execute(), strict=True):
                    if not held:  # deleted, expired, or the store restarted: look again
                        del self._remembered[view]
        missing = [view for view in views if view not in self._remembered]
        # Feast's key is the serialized entity key followed by the project's name.
        pattern = b"*" + re.sub(rb"([*?\[\]\\])", rb"\\\1", self.store.project.encode("utf-8"))
        cursor, scanned = 0, 0
        while missing and scanned < MAX_SCANNED_KEYS:
            cursor, keys = client.scan(cursor, match=pattern, count=1000)
            scanned += len(keys)
            if keys:
                with client.pipeline(transaction=False) as pipe:
                    for view in missing:
                        for key in keys:
                            pipe.hexists(key, f"_ts:{view}")
                    held = pipe.execute()
                for position, view in enumerate(missing):
                    hits = held[position * len(keys):(position + 1) * len(keys)]
                    if any(hits):
                        self._remembered[view] = keys[hits.index(True)]
                missing = [view for view in missing if view not in self._remembered]
            if cursor == 0:
                break
        return set(missing)


def materialized_views(store, services: Sequence[str]) -> list[str]:
    """The views of the feature ``services`` (every service when empty) that materialization fills.

    A view fed by a push source (live vital signs) holds rows only once events arrive: it is not
    one of them, and neither is an on-demand view (computed at request time).
    """
    snapshot = registry_snapshot(store)
    chosen = [snapshot.services[name] for name in services if name in snapshot.services] or \
        list(snapshot.services.values())
    names = dict.fromkeys(projection.name for service in chosen for projection in service.feature_view_projections)
    return [name for name in names
            if name in snapshot.views and getattr(snapshot.views[name], "stream_source", None) is None]


class StoreReadiness:
    """:meth:`OnlineStoreProbe.check` for the app: off the request threads, one at a time, within a deadline.

    The probe runs in asyncio's own thread pool, so ``/readyz`` answers while every request
    thread waits on the store. A probe still running when the next call comes is awaited, not
    doubled, so a hung store cannot pile up threads.

    Parameters
    ----------
    timeout_s : float
        The probes' connect and read timeout (seconds).
    deadline_s : float
        The longest a call waits for a probe's answer (seconds).
    """

    def __init__(self, timeout_s: float, deadline_s: float):
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self._probes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._running: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def __call__(self, store, services: Sequence[str]) -> dict[str, str]:
        import asyncio

        probe = self._probes.get(store)
        if probe is None:
            probe = self._probes[store] = OnlineStoreProbe(store, self.timeout_s)
        running = self._running.get(probe)
        if running is None or running.done():
            running = self._running[probe] = asyncio.ensure_future(asyncio.to_thread(probe.check, list(services)))
        try:
            return await asyncio.wait_for(asyncio.shield(running), self.deadline_s)
        except TimeoutError:
            return {"online_store": f"no answer within {self.deadline_s:g} s"}


def check_online_store(store) -> None:
    """Read one feature of one service for a made-up subject: raises if the online store is unreachable."""
    services = list(registry_snapshot(store).services.values())
    if not services:
        raise RuntimeError("the feature store has no feature service")
    projection = services[0].feature_view_projections[0]
    reference = f"{projection.name}:{projection.features[0].name}"
    store.get_online_features(features=[reference], entity_rows=[{"subject_id": "__readiness_probe__"}]).to_dict()


def json_value(value):
    """A feature value JSON can carry: NaN becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
