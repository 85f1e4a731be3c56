"""The alerts store: every NEWS2 urgent-response trigger the online API raised, in one SQL table.

SQLAlchemy Core over SQLite (a file, the default deployment: ``sqlite:///path/alerts.db``) or
PostgreSQL (``postgresql+psycopg://``), from ``ServingSettings.alerts_url``. Without a URL the
store is an in-memory SQLite database private to the app: alerts vanish on restart and are not
shared between workers, so that fallback is for tests and demos only, never production.

Times are timezone-aware UTC in and out on every backend (SQLite keeps them as naive UTC text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from adapters.sql import UTCDateTime, sql_engine

MAX_ALERTS_PER_LIST = 1000


_metadata = sa.MetaData()

_alerts = sa.Table(
    "alerts",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.String, nullable=False),
    sa.Column("subject_id", sa.String, nullable=False),
    sa.Column("event_time", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("news2", sa.Float),  # null when a parameter was missing and a single parameter scored 3
    sa.Column("risk_band", sa.String(16)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
)
sa.Index("ix_alerts_study_recorded", _alerts.c.study_id, _alerts.c.recorded_at)
sa.Index("ix_alerts_study_subject", _alerts.c.study_id, _alerts.c.subject_id)
# One alert per observation and source: a retried request or a redelivered stream event
# (at-least-once) records nothing twice.
sa.Index("ux_alerts_observation", _alerts.c.study_id, _alerts.c.subject_id, _alerts.c.event_time,
         _alerts.c.source, unique=True)


@dataclass(frozen=True)
class Alert:
    """One recorded alert; times in UTC, ``news2`` in points (0-20)."""

    id: int
    study_id: str
    subject_id: str
    event_time: datetime
    recorded_at: datetime
    news2: float | None
    risk_band: str | None
    reason: str
    source: str


@dataclass(frozen=True)
class NewAlert:
    """An alert to record (see :meth:`AlertStore.record_many`)."""

    subject_id: str
    event_time: datetime
    news2: float | None
    risk_band: str | None
    reason: str


def _dialect_insert(backend: str):
    """The backend's INSERT with ``on_conflict_do_nothing`` (SQLite and PostgreSQL)."""
    if backend == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


class AlertStore:
    """The alerts of one study.

    Parameters
    ----------
    url : str or None
        SQLAlchemy URL of the alerts database; ``None`` for a private in-memory SQLite database
        (not for production: lost on restart, not shared between workers).
    study_id : str
        The study every alert of this store belongs to.
    """

    def __init__(self, url: str | None, study_id: str):
        self.url = url
        self.study_id = study_id
        self._engine = sql_engine(url, "alerts")
        _metadata.create_all(self._engine)

    def record(self, subject_id: str, event_time: datetime, news2: float | None, risk_band: str | None,
               reason: str, source: str = "api") -> None:
        """Record one alert (``event_time`` timezone-aware; stored in UTC)."""
        self.record_many([NewAlert(subject_id, event_time, news2, risk_band, reason)], source=source)

    def record_many(self, alerts: Sequence[NewAlert], source: str = "api") -> int:
        """Record alerts in one transaction, all or none; return how many were new.

        An alert of an observation already recorded from the same source (same subject and
        event time) is skipped: the first record stands.
        """
        if not alerts:
            return 0
        naive = [alert.subject_id for alert in alerts if alert.event_time.utcoffset() is None]
        if naive:
            raise ValueError(f"naive event_time for {', '.join(naive)}: the alerts store keeps timezone-aware "
                             "times only")
        now = datetime.now(UTC)
        rows = [{"study_id": self.study_id, "subject_id": alert.subject_id, "event_time": alert.event_time,
                 "recorded_at": now, "news2": alert.news2, "risk_band": alert.risk_band, "reason": alert.reason,
                 "source": source} for alert in alerts]
        insert = _dialect_insert(self._engine.dialect.name)(_alerts).on_conflict_do_nothing()
        with self._engine.begin() as conn:
            return sum(conn.execute(insert, row).rowcount for row in rows)

    def list(self, since: datetime | None = None, subject_id: str | None = None, limit: int = 100) -> list[Alert]:
        """Alerts of the study, newest recorded first.

        Parameters
        ----------
        since : datetime, optional
            Only alerts recorded at or after this timezone-aware time.
        subject_id : str, optional
            Only this subject's alerts.
        limit : int
            At most this many (1 to ``MAX_ALERTS_PER_LIST``).
        """
        if not 1 <= limit <= MAX_ALERTS_PER_LIST:
            raise ValueError(f"limit must be between 1 and {MAX_ALERTS_PER_LIST}, got {limit}")
        query = sa.select(_alerts).where(_alerts.c.study_id == self.study_id)
        if since is not None:
            query = query.where(_alerts.c.recorded_at >= since)
        if subject_id is not None:
            query = query.where(_alerts.c.subject_id == subject_id)
        query = query.order_by(_alerts.c.recorded_at.desc(), _alerts.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [Alert(**row._mapping) for row in conn.execute(query)]

    def close(self) -> None:
        self._engine.dispose()
