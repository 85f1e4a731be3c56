"""Live vital-sign events, one path for the HTTP API and the Kafka stream consumer.

An accepted batch of events is assessed (NEWS2 and an urgent-response alert per observation,
with the published NEWS2 functions of ``features.biomarkers.vitals``) and pushed to the Feast
feature view ``vital_signs_live``:

* online, each subject's latest observation, and only when it is at least as new as the one
  already stored: events that arrive out of order never roll a subject back;
* offline, every observation: the view's log, where a redelivered observation (same subject
  and time) replaces itself, so a retry or a restarted consumer never stores one twice.

Both writes are idempotent, which is what lets the stream consumer deliver at least once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from features.biomarkers.vitals import news2_parameter_points, news2_risk_band
from features.tables import LIVE_VITALS
from serving.alerts import NewAlert
from serving.online import online_store_call, registry_snapshot
from serving.schemas import VitalSignEvent

# NEWS2 parameter (column of news2_parameter_points) -> the event field it needs.
_PARAMETER_INPUTS = {
    "respiration_rate": "respiratory_rate_per_min",
    "spo2": "spo2_percent",
    "air_or_oxygen": "supplemental_oxygen",
    "systolic_bp": "systolic_bp_mmhg",
    "pulse": "heart_rate_bpm",
    "consciousness": "consciousness_avpu",
    "temperature": "temperature_deg_c",
}
URGENT_SCORE = 5
"""NEWS2 aggregate from which an urgent response is due (RCP 2017, Chart 2)."""
RED_PARAMETER_POINTS = 3
"""Points of a single parameter that call for an urgent ward-based response (RCP 2017, Chart 2)."""

# Event field -> live feature (numbers; the two text features are set apart below).
_LIVE_NUMBERS = {
    "heart_rate_bpm": "heart_rate_last_bpm",
    "respiratory_rate_per_min": "respiratory_rate_last_per_min",
    "spo2_percent": "spo2_last_percent",
    "temperature_deg_c": "temperature_last_deg_c",
    "systolic_bp_mmhg": "systolic_bp_last_mmhg",
}


@dataclass(frozen=True)
class Assessment:
    """NEWS2 of one observation and whether it triggers an urgent response.

    ``news2`` in points (None unless all seven parameters were observed), ``risk_band`` per RCP
    2017 Chart 2, ``reason`` the trigger ("" when none), ``missing`` the event fields NEWS2 lacked.
    """

    news2: float | None
    risk_band: str | None
    reason: str
    missing: tuple[str, ...]

    @property
    def alert(self) -> bool:
        return bool(self.reason)

    @property
    def detail(self) -> str | None:
        """The trigger and the missing parameters, for people."""
        details = [self.reason] if self.reason else []
        if self.missing:
            details.append(f"news2 not computed: missing {', '.join(self.missing)}")
        return "; ".join(details) or None


def assess_events(events: Sequence[VitalSignEvent]) -> list[Assessment]:
    """NEWS2, risk band and alert of each event, with the published NEWS2 functions.

    A missing parameter is never invented: its points are NaN, the score is None and
    ``missing`` names it. A parameter that is present and scores 3 still triggers an alert.
    """
    if not events:
        return []

    def column(name):
        return np.array([getattr(event, name) for event in events], dtype=object)

    points = news2_parameter_points(
        column("respiratory_rate_per_min"), column("spo2_percent"), column("supplemental_oxygen"),
        column("systolic_bp_mmhg"), column("heart_rate_bpm"), column("consciousness_avpu"),
        column("temperature_deg_c"), spo2_scale=np.array([event.spo2_scale for event in events]))
    names = list(_PARAMETER_INPUTS)
    matrix = points[names].to_numpy(dtype=float)
    scores = matrix.sum(axis=1)  # NaN when any parameter is missing: never a partial sum
    highest = np.fmax.reduce(matrix, axis=1)
    bands = news2_risk_band(scores, highest)
    red = matrix >= RED_PARAMETER_POINTS
    absent = np.isnan(matrix)
    assessed = []
    for position, event in enumerate(events):
        missing = tuple(sorted(_PARAMETER_INPUTS[name] for name in np.compress(absent[position], names)
                               if getattr(event, _PARAMETER_INPUTS[name]) is None)) if absent[position].any() else ()
        score = None if np.isnan(scores[position]) else float(scores[position])
        reasons = []
        if score is not None and score >= URGENT_SCORE:
            reasons.append(f"NEWS2 {score:g} >= {URGENT_SCORE} ({bands[position]} risk)")
        if red[position].any():
            reasons.append(f"single parameter scored {RED_PARAMETER_POINTS}: "
                           f"{', '.join(np.compress(red[position], names))}")
        assessed.append(Assessment(score, bands[position], "; ".join(reasons), missing))
    return assessed


def new_alerts(events: Sequence[VitalSignEvent], assessments: Sequence[Assessment]) -> list[NewAlert]:
    """The alerts to record: one per observation that triggers."""
    return [NewAlert(event.subject_id, event.timestamp, assessment.news2, assessment.risk_band, assessment.reason)
            for event, assessment in zip(events, assessments, strict=True) if assessment.alert]


def live_rows(events: Sequence[VitalSignEvent], assessments: Sequence[Assessment],
              created_at: datetime | None = None) -> pd.DataFrame:
    """One ``vital_signs_live`` row per event: the push frame (times UTC, microseconds)."""
    created_at = created_at or datetime.now(UTC)
    frame = pd.DataFrame({
        "subject_id": [event.subject_id for event in events],
        "event_timestamp": pd.to_datetime([event.timestamp for event in events], utc=True).as_unit("us"),
        "created_timestamp": pd.Series(pd.Timestamp(created_at), index=range(len(events))).dt.as_unit("us"),
    })
    for field, feature in _LIVE_NUMBERS.items():
        frame[feature] = np.array([getattr(event, field) for event in events], dtype=float)
    frame["supplemental_oxygen_last_flag"] = np.array(
        [np.nan if event.supplemental_oxygen is None else float(event.supplemental_oxygen) for event in events])
    frame["news2_score_last"] = np.array([np.nan if assessment.news2 is None else assessment.news2
                                          for assessment in assessments], dtype=float)
    frame["consciousness_last_avpu"] = pd.Series([event.consciousness_avpu for event in events], dtype=object)
    frame["news2_risk_band_last"] = pd.Series([assessment.risk_band for assessment in assessments], dtype=object)
    return frame[["subject_id", "event_timestamp", "created_timestamp",
                  *LIVE_VITALS.columns, *LIVE_VITALS.text_columns]]


def stored_event_times(store, subject_ids: Sequence[str]) -> dict[str, pd.Timestamp]:
    """The event time of each subject's ``vital_signs_live`` row online (absent: no row), to the second."""
    feature = next(iter(LIVE_VITALS.columns))
    with online_store_call("reading live vital signs"):
        response = store.get_online_features(
            features=[f"{LIVE_VITALS.name}:{feature}"],
            entity_rows=[{"subject_id": subject} for subject in subject_ids],
        ).to_dict(include_event_timestamps=True)
    return {subject: pd.Timestamp(seconds, unit="s", tz=UTC)
            for subject, seconds in zip(subject_ids, response[f"{feature}__ts"], strict=True) if seconds}


def live_view(store):
    """The registered ``vital_signs_live`` view (its join keys known), from the registry snapshot."""
    views = registry_snapshot(store).views
    if LIVE_VITALS.name not in views:
        views = registry_snapshot(store, refresh=True).views
    if LIVE_VITALS.name not in views:
        raise LookupError(f"the feature view {LIVE_VITALS.name} is not registered: run `biomarkers materialize` "
                          "(or `feast apply`) with this repo's definitions")
    return views[LIVE_VITALS.name]


def push_online(store, view, rows: pd.DataFrame) -> int:
    """Write each subject's newest row of ``rows`` (:func:`live_rows`) online; return the rows written.

    Through the provider, as ``FeatureStore.push(..., to=PushMode.ONLINE)`` does minus its
    lookup of every view of the registry on each call (no feature service here precomputes
    vectors, which ``push`` would also refresh). An observation older than the stored one is
    not written: Redis's store itself keeps a stored row whose event time is not older; SQLite
    writes whatever it is given, so its stored times are read first (to the second: a stored
    time equal to the new one's second is replaced, a corrected or redelivered observation).
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    latest = rows.sort_values("event_timestamp", kind="stable").drop_duplicates("subject_id", keep="last")
    if not isinstance(store.config.online_store, RedisOnlineStoreConfig):
        stored = stored_event_times(store, latest["subject_id"].tolist())
        floor = latest["event_timestamp"].dt.floor("s")
        latest = latest[[subject not in stored or moment >= stored[subject]
                         for subject, moment in zip(latest["subject_id"], floor, strict=True)]]
    if len(latest):
        with online_store_call("pushing live vital signs"):
            store._get_provider().ingest_df(view, latest.reset_index(drop=True))
    return len(latest)


def push_offline(store, view, rows: pd.DataFrame) -> None:
    """Upsert every row of ``rows`` into the view's offline log.

    Through the offline store's ``offline_write_batch`` (ours upserts: one row per subject and
    observation time; see ``pipelines.offline_store``), as ``FeatureStore.write_to_offline_store``
    does minus its check of the columns against the log file, which does not exist before the
    first event.
    """
    import pyarrow as pa

    store._get_provider().ingest_df_to_offline_store(view, pa.Table.from_pandas(rows, preserve_index=False))


def push_live(store, events: Sequence[VitalSignEvent], assessments: Sequence[Assessment]) -> None:
    """Push assessed events to ``vital_signs_live``: each subject's newest online, then all offline.

    Online first, as ``FeatureStore.push(..., to=PushMode.ONLINE_AND_OFFLINE)`` does: the events
    are visible as early as possible. Both writes are idempotent, so a failure between them is
    repaired by pushing the batch again.
    """
    if not events:
        return
    rows = live_rows(events, assessments)
    view = live_view(store)
    push_online(store, view, rows)
    push_offline(store, view, rows)
