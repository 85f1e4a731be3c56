"""Online feature reads through Feast: values, the event time of each view's row, and its age.

The only module of the service that calls Feast's read API; routers call these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

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
