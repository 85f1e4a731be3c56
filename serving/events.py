"""Live vital-sign events, one path for the HTTP API and the Kafka stream consumer.

An accepted batch of events is assessed (NEWS2 and an urgent-response alert per observation,
with the published NEWS2 functions of ``features.biomarkers.vitals``) and pushed to the Feast
feature view ``vital_signs_live``:

* online, each subject's latest observation, and only when it is at least as new as the one
  already stored: events that arrive out of order never roll a subject back;
* offline, every observation: the view's log, where a redelivered observation (same subject
  and time) replaces itself, so a retry or a restarted consumer never stores one twice.

Both writes are idempotent, which is what lets the stream consumer deliver at least once.

Before anything is written, both entry points refuse events dated more than the configured
clock skew ahead of the server's clock (:func:`future_events`): a subject's online row is its
newest observation, so one dated years ahead would hide every real one after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from features.biomarkers.vitals import news2_parameter_points, news2_risk_band
from features.tables import LIVE_VITALS
from serving.alerts import NewAlert
from serving.online import online_store_call, registered
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


def future_events(events: Sequence[VitalSignEvent], now: datetime, max_skew_s: float) -> dict[int, str]:
    """The events dated more than ``max_skew_s`` seconds after ``now`` (the server's clock), by index, with why.

    The validation the HTTP API and the stream consumer share: such an event is refused (422,
    dead letter), since as a subject's newest observation it would stay online until a real
    observation caught up with its time. ``max_skew_s`` tolerates device clocks a little ahead.
    """
    latest = now + timedelta(seconds=max_skew_s)
    return {index: (f"timestamp {event.timestamp.isoformat()} is {(event.timestamp - now).total_seconds():.0f} s "
                    f"ahead of the server's clock ({now.isoformat(timespec='seconds')}), more than the "
                    f"{max_skew_s:g} s allowed (max_event_clock_skew_seconds): check the device's clock")
            for index, event in enumerate(events) if event.timestamp > latest}


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
    views = registered(store, "views", LIVE_VITALS.name)
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

    Through the offline store's ``offline_write_batch`` (ours appends a part to the log, which
    keeps one row per subject and observation time; see ``adapters.offline_store.PushLog``), as
    ``FeatureStore.write_to_offline_store`` does minus its check of the columns against the log
    file, which does not exist before the first event.
    """
    import pyarrow as pa

    store._get_provider().ingest_df_to_offline_store(view, pa.Table.from_pandas(rows, preserve_index=False))


def push_live(store, events: Sequence[VitalSignEvent], assessments: Sequence[Assessment]) -> None:
    """Push assessed events to ``vital_signs_live``: all offline, then each subject's newest online.

    Everything that can be refused is settled before the first write: the rows are built, the
    view is looked up, and the offline log casts the rows to the view's declared types (refusing
    a misfit) before it writes its one part, atomically. The log is the record of every
    observation (training sets, anomaly scoring and audit read it) and the online row is derived
    from it, so the log is written first, unlike Feast's ``PushMode.ONLINE_AND_OFFLINE``: when the
    offline write fails, nothing is visible anywhere; when the online write fails after it, the
    request fails and its retry (or the subject's next event) completes it. Both writes are
    idempotent (one row per subject and observation time), so a retry stores nothing twice.
    """
    if not events:
        return
    rows = live_rows(events, assessments)
    view = live_view(store)
    push_offline(store, view, rows)
    push_online(store, view, rows)


# Live feature -> canonical VITALS column (features.biomarkers.vitals), to rebuild observations from the log.
_LOG_TO_VITALS = {feature: field for field, feature in _LIVE_NUMBERS.items()} | {
    "consciousness_last_avpu": "consciousness_avpu"}
WINDOW = timedelta(hours=24)
"""The longest window of the hourly vital-sign features (``*_24h``): how much history scoring an event needs."""


@dataclass(frozen=True)
class AnomalyAssessment:
    """The vital-sign anomaly model on a subject's hour: its latest event, the window's end, the score."""

    subject_id: str
    event_time: datetime
    window_end: datetime
    score: float
    anomaly: bool


def _read_log(store, view, columns: list[str], filters):
    """The view's offline log rows (an Arrow table), or None before the first push.

    The project's offline store reads pushes not yet folded into the log file too
    (``read_push_log``); with any other store, the file is read as it is.
    """
    from adapters.offline_store import read_parquet_whole, source_path

    config = store.config
    read = getattr(store._get_provider().offline_store, "read_push_log", None)
    if read is not None:
        return read(config, view, columns, filters)
    path = source_path(view.batch_source, store.repo_path)
    try:
        return read_parquet_whole(path, columns, filters)
    except FileNotFoundError:
        return None


def recent_observations(store, view, subject_ids: Sequence[str], since: datetime,
                        extra: Sequence[pd.DataFrame] = ()) -> pd.DataFrame:
    """The subjects' observations at or after ``since`` as a canonical VITALS frame.

    From the view's offline log, plus ``extra`` live rows not yet in it (the stream's batches
    since its last commit); one row per subject and time, the latest pushed winning.
    """
    columns = ["subject_id", "event_timestamp", *_LOG_TO_VITALS, "supplemental_oxygen_last_flag"]
    logged = _read_log(store, view, columns, filters=[
        ("subject_id", "in", list(subject_ids)), ("event_timestamp", ">=", pd.Timestamp(since))])
    frames = [] if logged is None else [logged.to_pandas()]
    frames += [frame[columns] for frame in extra if len(frame)]
    if not frames:
        return pd.DataFrame(columns=["subject_id", "timestamp", *_LOG_TO_VITALS.values(), "supplemental_oxygen"])
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["subject_id"].isin(subject_ids) & (rows["event_timestamp"] >= pd.Timestamp(since))]
    rows = rows.drop_duplicates(["subject_id", "event_timestamp"], keep="last")
    vitals = rows.rename(columns={"event_timestamp": "timestamp", **_LOG_TO_VITALS})
    flag = vitals.pop("supplemental_oxygen_last_flag")
    vitals["supplemental_oxygen"] = pd.Series(np.where(flag.isna(), None, flag == 1), index=vitals.index,
                                              dtype=object)
    return vitals.reset_index(drop=True)


def assess_anomalies(store, view, model, events: Sequence[VitalSignEvent],
                     extra: Sequence[pd.DataFrame] = ()) -> list[AnomalyAssessment]:
    """Score each subject's current hour with the vital-sign anomaly model, as it was trained.

    The model was trained on hourly windows (``hourly_vitals``: 1 h and 24 h statistics, NEWS2
    and desaturations, computed by ``features.biomarkers.vitals.vitals_hourly_features``). For each
    subject of ``events``, the same function runs on the subject's last 24 h of observations
    (the offline log and ``extra``), and the row of the hour holding its latest event is scored
    with the shared scoring function. ``model`` is a ``serving.models.LoadedModel`` of task anomaly.
    """
    from features.biomarkers.vitals import vitals_hourly_features
    from training.scoring import score

    if not events:
        return []
    latest: dict[str, datetime] = {}
    for event in events:
        latest[event.subject_id] = max(latest.get(event.subject_id, event.timestamp), event.timestamp)
    observations = recent_observations(store, view, list(latest), min(latest.values()) - WINDOW, extra)
    hourly = vitals_hourly_features(observations)
    ends = {subject: pd.Timestamp(moment).floor("h") + pd.Timedelta(hours=1) for subject, moment in latest.items()}
    wanted = hourly[[ends.get(subject) == end for subject, end in
                     zip(hourly["subject_id"], hourly["event_timestamp"], strict=True)]].reset_index(drop=True)
    if wanted.empty:
        return []
    scored = score(model.estimator, wanted, model.features, model.task)
    return [AnomalyAssessment(subject, latest[subject], end.to_pydatetime(), float(value), bool(flag))
            for subject, end, value, flag in zip(wanted["subject_id"], wanted["event_timestamp"], scored["score"],
                                                 scored["anomaly"], strict=True)]


def with_anomaly_alerts(alerts: Sequence[NewAlert], anomalies: Sequence[AnomalyAssessment], model) -> list[NewAlert]:
    """``alerts`` plus one per anomalous subject hour, merged into a NEWS2 alert of the same event."""
    merged = {(alert.subject_id, alert.event_time): alert for alert in alerts}
    for found in anomalies:
        if not found.anomaly:
            continue
        reason = (f"vital-sign anomaly: score {found.score:.3f} above the threshold of {model.registered_model} "
                  f"v{model.version} (hour ending {found.window_end.isoformat()})")
        key = (found.subject_id, found.event_time)
        if key in merged:
            previous = merged[key]
            merged[key] = NewAlert(previous.subject_id, previous.event_time, previous.news2, previous.risk_band,
                                   f"{previous.reason}; {reason}")
        else:
            merged[key] = NewAlert(found.subject_id, found.event_time, None, None, reason)
    return list(merged.values())
