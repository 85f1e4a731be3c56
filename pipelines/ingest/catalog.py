"""The file catalog: every raw file of a study, its content hash, outcome and lineage ids.

One row per (path, content). A path whose content changes gets a new row with the next
``version``; when that version reaches a final status the older ones are marked
``superseded`` (the lake commit of the new version removed their parts from the lake's
current snapshot, in the same step as it added the new ones). Ingestion is idempotent and safe
across processes because the database itself enforces the race rules:

- at most one live (not superseded) row per ``(path, sha256)``: two runs that claim the same
  content at once race on a unique index, and the loser reads the winner's row;
- at most one row per ``(path, version)``: two different contents of one path that race
  for the same version number retry with the next one;
- a claim belongs to a run, and a run records its owner (host, process id and the process's
  start time). A claim is taken over, with a compare-and-set ``UPDATE``, as soon as its owner
  is seen dead: at once on the same host (the process is gone, or its id was reused by
  another process), else when its lease expires. Leases are short and renewed by the run's
  heartbeat (`Catalog.heartbeat`), so a crash on another host costs at most one lease;
- ``failed`` is not final: a failed file is claimed again when the caller asks for retries or
  when the code version recorded with the failure differs from the caller's;
- ``pending`` is not final either: a file waiting for the study's metadata (its subject not yet
  in the enrollment file) is claimed again, with the same compare-and-set as any take-over, by
  every run that started after the outcome was recorded (such a run read the enrollment file
  since). A run that was already going when the outcome was recorded leaves it alone, so two
  runs at once never both check one pending file, and no run checks its own outcome twice.

SQLite (a file under the study's data root, the default) and PostgreSQL (production) are
supported. A catalog belongs to one study: paths are relative to that study's data root, so
studies sharing a PostgreSQL database use one schema each (``?options=-csearch_path%3D<schema>``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from adapters.sql import DDL_LOCK_KEY, UTCDateTime, sql_engine

logger = logging.getLogger(__name__)


class FileStatus(StrEnum):
    """The state of one file version.

    ``processing`` is claimed by a run; ``curated``, ``quarantined`` and ``failed`` are outcomes
    (a failure is retried under another code version); ``pending`` waits for the study's
    metadata (its subject is not in the enrollment file yet) and is retried by later runs;
    ``superseded`` was replaced by a newer version of the path.
    """

    PROCESSING = "processing"
    CURATED = "curated"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    PENDING = "pending"
    SUPERSEDED = "superseded"


# Outcomes a run may record with `Catalog.finish`; SUPERSEDED is only ever set by the catalog. Like
# any outcome, a pending one makes its version the path's current one (older versions end
# superseded, and the lake holds no row of the path until a later run curates it).
_OUTCOMES = frozenset({FileStatus.CURATED, FileStatus.QUARANTINED, FileStatus.FAILED, FileStatus.PENDING})
# Outcomes that no run claims again for the same content (a failure may be, see `is_processed`).
_FINAL = frozenset({FileStatus.CURATED, FileStatus.QUARANTINED})
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Two different contents of one path racing for a version number need one retry each; more
# than a handful of lost races in a row means something other than a race is wrong.
_MAX_CLAIM_ATTEMPTS = 10
# Any fixed number: PostgreSQL advisory locks are keyed by a bigint chosen by the application.


class ClaimLostError(RuntimeError):
    """The record is no longer held by the caller: its lease expired (its heartbeat stopped) and
    another run took it over, or already finished it. Its recorded outcome stands."""


@dataclass(frozen=True)
class FileRecord:
    """One version of one raw file. Timestamps are timezone-aware UTC."""

    id: int
    path: str
    sha256: str
    size_bytes: int
    source: str
    version: int
    status: FileStatus
    subject_id: str | None
    report_id: str | None
    rows: int | None
    message: str | None
    curated_paths: tuple[str, ...]
    run_id: str
    discovered_at: datetime
    processed_at: datetime | None
    code_version: str | None = None
    lake_version: int | None = None


_metadata = sa.MetaData()

_runs = sa.Table(
    "catalog_runs",
    _metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("study_id", sa.String, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("counts", sa.Text),  # JSON object, e.g. {"curated": 12, "quarantined": 1}
    # The owner, so that another run can tell at once whether it is still alive.
    sa.Column("host", sa.String),
    sa.Column("pid", sa.Integer),
    sa.Column("pid_started", sa.String),  # start time of the process, so a reused pid is not mistaken
)

_files = sa.Table(
    "catalog_files",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.String),
    sa.Column("report_id", sa.String),
    sa.Column("row_count", sa.BigInteger),
    sa.Column("message", sa.Text),
    sa.Column("curated_paths", sa.Text, nullable=False),  # JSON array of strings
    sa.Column("run_id", sa.String(32), sa.ForeignKey("catalog_runs.run_id"), nullable=False),
    sa.Column("discovered_at", UTCDateTime, nullable=False),
    sa.Column("processed_at", UTCDateTime),
    sa.Column("lease_expires_at", UTCDateTime),  # set while processing, cleared by finish
    sa.Column("code_version", sa.String),  # of the platform that recorded the outcome
    sa.Column("lake_version", sa.BigInteger),  # the lake table version that made the outcome visible
    sa.UniqueConstraint("path", "version", name="uq_catalog_files_path_version"),
)

_live = _files.c.status != FileStatus.SUPERSEDED.value
# Partial rather than plain unique on (path, sha256): a file that reverts to content it held
# before must be processed again (its old version's parts were removed when it was
# superseded), while two runs still can never both hold the same live content.
sa.Index(
    "uq_catalog_files_live_content",
    _files.c.path,
    _files.c.sha256,
    unique=True,
    sqlite_where=_live,
    postgresql_where=_live,
)
sa.Index("ix_catalog_files_run_id", _files.c.run_id)


# Columns added after the first release: `Catalog` adds them to an older catalog's tables.
_ADDED_COLUMNS = {
    _runs: ("host", "pid", "pid_started"),
    _files: ("code_version", "lake_version"),
}


def _now() -> datetime:
    return datetime.now(UTC)


def process_started(pid: int) -> str | None:
    """The start time of a process on this host (clock ticks since boot), ``None`` if it is gone.

    A process id alone is not an identity: ids are reused, so a dead run's id may belong to
    another process by now. Id and start time together are.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            stat = stream.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not collected it yet
        return None
    return fields[19]


def _owner_alive(host: str | None, pid: int | None, pid_started: str | None) -> bool | None:
    """True or False when the owner runs on this host, ``None`` when that cannot be told here."""
    if host != socket.gethostname() or pid is None:
        return None
    return pid_started is not None and process_started(pid) == pid_started


def _relative_posix(path: str) -> str:
    """Normalise a catalog path; it must be relative to the study's data root, POSIX form."""
    if not path or "\\" in path:
        raise ValueError(f"catalog path {path!r} must be a non-empty POSIX path (forward slashes)")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or pure.as_posix() == ".":
        raise ValueError(f"catalog path {path!r} must be relative to the study's data root and stay inside it")
    return pure.as_posix()


def _sha256_hex(sha256: str) -> str:
    digest = sha256.lower()
    if not _SHA256.fullmatch(digest):
        raise ValueError(f"sha256 {sha256!r} is not 64 hexadecimal characters")
    return digest


def _record(row: Row[Any]) -> FileRecord:
    return FileRecord(
        id=row.id,
        path=row.path,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        source=row.source,
        version=row.version,
        status=FileStatus(row.status),
        subject_id=row.subject_id,
        report_id=row.report_id,
        rows=row.row_count,
        message=row.message,
        curated_paths=tuple(json.loads(row.curated_paths)),
        run_id=row.run_id,
        discovered_at=row.discovered_at,
        processed_at=row.processed_at,
        code_version=row.code_version,
        lake_version=row.lake_version,
    )


class Catalog:
    """The catalog of a study's raw files, in SQLite or PostgreSQL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/to/catalog.db`` (the parent folder is created) or
        ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` means psycopg too).
    lease_seconds : float, default 60
        How long a claim is held without a heartbeat before another run may take it over, in
        seconds. A run renews its claims with `heartbeat` (``biomarkers ingest`` does so every
        ``lease_seconds / 4``); an owner seen dead on the same host is taken over at once.

    Notes
    -----
    Tables are created if missing; two processes doing so at once is safe. The engine (and
    its connection pool) belongs to this instance: call `close` or use ``with Catalog(...)``.
    All timestamps come from this host's clock (``datetime.now(UTC)``); hosts sharing a
    PostgreSQL catalog need synchronised clocks for leases to mean the same to all of them.
    """

    def __init__(self, url: str, *, lease_seconds: float = 60.0) -> None:
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        self.lease_seconds = float(lease_seconds)
        # the race rules rely on partial unique indexes: SQLite and PostgreSQL have them
        self._engine = sql_engine(url, "catalog", serialize_writers=True)
        self._create_tables()

    def _create_tables(self) -> None:
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # create_all checks, then creates: without the lock, two processes starting at
                # once both see no table and one fails on the duplicate.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
            _metadata.create_all(conn)
            inspector = sa.inspect(conn)
            for table, names in _ADDED_COLUMNS.items():
                present = {column["name"] for column in inspector.get_columns(table.name)}
                for name in names:
                    if name not in present:
                        column = table.c[name]
                        type_ = column.type.compile(conn.dialect)
                        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {type_}"))

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self._engine.url.render_as_string(hide_password=True)!r}, lease_seconds={self.lease_seconds})"

    # Runs ---------------------------------------------------------------------------------

    def start_run(self, study_id: str) -> str:
        """Record the start of an ingestion run and return its id (uuid4 hex).

        Raises
        ------
        ValueError
            If the catalog already holds runs of another study: paths are relative to one
            study's data root, so sharing a catalog would mix up (and supersede) other files.
        """
        if not study_id:
            raise ValueError("study_id must be non-empty")
        run_id = uuid.uuid4().hex
        with self._engine.begin() as conn:
            other = conn.execute(
                sa.select(_runs.c.study_id).where(_runs.c.study_id != study_id).limit(1)
            ).scalar_one_or_none()
            if other is not None:
                raise ValueError(
                    f"this catalog belongs to study {other!r}, not {study_id!r}: give each study its own "
                    "SQLite file or PostgreSQL schema"
                )
            pid = os.getpid()
            conn.execute(sa.insert(_runs).values(run_id=run_id, study_id=study_id, started_at=_now(),
                                                 host=socket.gethostname(), pid=pid, pid_started=process_started(pid)))
        return run_id

    def heartbeat(self, run_id: str) -> int:
        """Renew the lease of every claim `run_id` holds; return how many there are."""
        with self._engine.begin() as conn:
            return conn.execute(
                sa.update(_files)
                .where(_files.c.run_id == run_id, _files.c.status == FileStatus.PROCESSING.value)
                .values(lease_expires_at=_now() + timedelta(seconds=self.lease_seconds))
            ).rowcount

    def run_is_live(self, run_id: str) -> bool:
        """Whether a run may still be working: not finished, and its owner alive (or, on another
        host, its claims not yet expired)."""
        with self._engine.connect() as conn:
            return self._run_is_live(conn, run_id, _now())

    def _run_is_live(self, conn: Connection, run_id: str, now: datetime) -> bool:
        run = conn.execute(sa.select(_runs).where(_runs.c.run_id == run_id)).first()
        if run is None or run.finished_at is not None:
            return False
        alive = _owner_alive(run.host, run.pid, run.pid_started)
        if alive is not None:
            return alive
        # On another host: alive while it holds an unexpired claim or started within a lease.
        expiry = conn.execute(
            sa.select(sa.func.max(_files.c.lease_expires_at)).where(
                _files.c.run_id == run_id, _files.c.status == FileStatus.PROCESSING.value)
        ).scalar_one()
        if expiry is not None:
            return expiry > now
        return run.started_at > now - timedelta(seconds=self.lease_seconds)

    def finish_run(self, run_id: str, counts: dict[str, int]) -> None:
        """Record the end of a run with its counts (e.g. files per status)."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                sa.update(_runs)
                .where(_runs.c.run_id == run_id)
                .values(finished_at=_now(), counts=json.dumps({str(k): int(v) for k, v in counts.items()}))
            ).rowcount
        if updated != 1:
            raise KeyError(f"no run {run_id!r} in the catalog; start it with start_run")

    # Files --------------------------------------------------------------------------------

    def is_processed(self, path: str, sha256: str, *, retry_failed: bool = False,
                     code_version: str | None = None) -> bool:
        """Whether this exact content of `path` has a final outcome (a cheap pre-check; claims nothing).

        Content whose version was superseded by other content counts as not processed, so a
        file that reverts to an earlier content is processed again. A ``pending`` outcome never
        counts as processed (`claim` decides whether this run checks it again). A ``failed``
        outcome counts as not processed when `retry_failed` is set, or when `code_version` is
        given and differs from the version that failed (the code that failed may have been fixed).
        """
        final = [_files.c.status.in_([s.value for s in _FINAL])]
        if not retry_failed:
            failed = _files.c.status == FileStatus.FAILED.value
            if code_version is not None:
                failed = sa.and_(failed, _files.c.code_version == code_version)
            final.append(failed)
        query = sa.select(
            sa.exists().where(
                _files.c.path == _relative_posix(path),
                _files.c.sha256 == _sha256_hex(sha256),
                sa.or_(*final),
            )
        )
        with self._engine.connect() as conn:
            return bool(conn.execute(query).scalar_one())

    def current(self, path: str, sha256: str) -> FileRecord | None:
        """The live (not superseded) record of this exact content of `path`, if any."""
        query = sa.select(_files).where(
            _files.c.path == _relative_posix(path), _files.c.sha256 == _sha256_hex(sha256), _live)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def newer_version_finished(self, path: str, version: int) -> bool:
        """Whether a version of `path` newer than `version` already has an outcome."""
        query = sa.select(sa.exists().where(
            _files.c.path == _relative_posix(path), _files.c.version > version,
            _files.c.status != FileStatus.PROCESSING.value))
        with self._engine.connect() as conn:
            return bool(conn.execute(query).scalar_one())

    def claim(self, *, path: str, sha256: str, size_bytes: int, source: str, run_id: str,
              retry_failed: bool = False, code_version: str | None = None) -> FileRecord | None:
        """Atomically claim this exact content for processing.

        Parameters
        ----------
        path : str
            Path relative to the study's data root, POSIX form.
        sha256 : str
            SHA-256 of the whole file, hexadecimal.
        size_bytes : int
            File size in bytes.
        source : str
            Name of the study source the file belongs to.
        run_id : str
            A run id from `start_run`.
        retry_failed, code_version : optional
            Claim a ``failed`` outcome of this content again: always with `retry_failed`, else
            when `code_version` differs from the code version that failed.

        Returns
        -------
        FileRecord or None
            The ``processing`` record, holding a lease of ``lease_seconds``. Its version is 1
            for a new path, else one more than the path's latest version. None when this
            content already has a final outcome, a live run holds it, or it is ``pending`` as
            recorded after `run_id` started (tell these apart with `current`). A claim of a dead
            run (its owner process is gone, or its lease expired) is taken over, and so is a
            ``pending`` outcome recorded before `run_id` started: this run read the enrollment
            file since, and may find the subject enrolled.
        """
        path, sha256 = _relative_posix(path), _sha256_hex(sha256)
        if size_bytes < 0:
            raise ValueError(f"{path}: size_bytes must be >= 0, got {size_bytes}")
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            now = _now()
            lease_expires_at = now + timedelta(seconds=self.lease_seconds)
            try:
                with self._engine.begin() as conn:
                    self._require_run(conn, run_id)
                    live = conn.execute(
                        sa.select(_files).where(_files.c.path == path, _files.c.sha256 == sha256, _live)
                    ).first()
                    if live is not None:
                        if live.status == FileStatus.PENDING:
                            retry = live.processed_at is not None and live.processed_at < self._started_at(conn, run_id)
                        else:
                            retry = live.status == FileStatus.FAILED and (
                                retry_failed or (code_version is not None and live.code_version != code_version))
                        return self._take_over(conn, live, run_id, size_bytes, source, now, lease_expires_at,
                                               retry=retry)
                    latest_version = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(_files.c.version), 0)).where(_files.c.path == path)
                    ).scalar_one()
                    record_id = conn.execute(
                        sa.insert(_files)
                        .returning(_files.c.id)
                        .values(
                            path=path,
                            sha256=sha256,
                            size_bytes=size_bytes,
                            source=source,
                            version=latest_version + 1,
                            status=FileStatus.PROCESSING.value,
                            curated_paths="[]",
                            run_id=run_id,
                            discovered_at=now,
                            lease_expires_at=lease_expires_at,
                        )
                    ).scalar_one()
                    return self._get(conn, record_id)
            except sa.exc.IntegrityError:
                # Lost a race: another run inserted this content (the re-read returns None) or
                # another content of this path took our version number (the retry takes the next).
                continue
        raise RuntimeError(
            f"{path}: could not claim sha256 {sha256[:12]}... after {_MAX_CLAIM_ATTEMPTS} attempts; "
            "many runs are racing on this path"
        )

    def _take_over(
        self,
        conn: Connection,
        live: Row[Any],
        run_id: str,
        size_bytes: int,
        source: str,
        now: datetime,
        lease_expires_at: datetime,
        *,
        retry: bool = False,
    ) -> FileRecord | None:
        if retry:
            why = "checking it again" if live.status == FileStatus.PENDING else "retrying its failure"
        elif live.status != FileStatus.PROCESSING:
            return None
        elif live.lease_expires_at is not None and live.lease_expires_at <= now:
            why = "its lease expired"
        elif live.run_id != run_id and not self._run_is_live(conn, live.run_id, now):
            why = "its run is dead"
        else:
            return None
        # Compare-and-set on the status and holder read above: of two runs taking over at once,
        # the second matches no row.
        taken = conn.execute(
            sa.update(_files)
            .where(_files.c.id == live.id, _files.c.status == live.status, _files.c.run_id == live.run_id)
            .values(run_id=run_id, size_bytes=size_bytes, source=source, lease_expires_at=lease_expires_at,
                    status=FileStatus.PROCESSING.value, processed_at=None)
        ).rowcount
        if taken != 1:
            return None
        logger.info("%s v%d: took over from run %s (%s)", live.path, live.version, live.run_id, why)
        return self._get(conn, live.id)

    @staticmethod
    def _started_at(conn: Connection, run_id: str) -> datetime:
        return conn.execute(sa.select(_runs.c.started_at).where(_runs.c.run_id == run_id)).scalar_one()

    def finish(
        self,
        record_id: int,
        *,
        status: FileStatus,
        subject_id: str | None,
        report_id: str | None,
        rows: int | None,
        message: str | None,
        curated_paths: Sequence[str] = (),
        run_id: str | None = None,
        code_version: str | None = None,
        lake_version: int | None = None,
    ) -> FileRecord:
        """Record the outcome of a claimed file.

        Parameters
        ----------
        record_id : int
            ``FileRecord.id`` from `claim`.
        status : FileStatus
            CURATED, QUARANTINED, FAILED or PENDING (waiting for the study's metadata; claimed
            again by later runs).
        subject_id : str or None
            The study subject code the file belongs to (never a direct identifier).
        report_id : str or None
            Id of the validation report.
        rows : int or None
            Number of rows read.
        message : str or None
            Short human-readable outcome.
        curated_paths : sequence of str
            Curated Parquet parts written from this file.
        run_id : str, optional
            The claiming run. When given, the outcome is recorded only if that run still holds
            the claim, which guards against a run that outlived its lease.
        code_version : str, optional
            Version of the code that produced the outcome (a failure is retried under another).
        lake_version : int, optional
            Version of the lake table whose commit made this outcome visible.

        Returns
        -------
        FileRecord
            The finished record. Older versions of the path that were CURATED, QUARANTINED,
            FAILED, PENDING (or abandoned ``processing`` by a dead run) are now SUPERSEDED; their
            parts, listed by `superseded_parts`, are out of the lake's current snapshot and stay
            on disk for time travel. If a newer version of the path finished first, this record
            itself is returned SUPERSEDED (ingestion checks `newer_version_finished` first, under
            the table's lock, so as never to commit such a version to the lake).

        Raises
        ------
        KeyError
            If there is no such record.
        ClaimLostError
            If the record is not ``processing`` (or not held by `run_id`) any more.
        """
        status = FileStatus(status)
        if status not in _OUTCOMES:
            raise ValueError(f"finish takes one of {sorted(_OUTCOMES)}, got {status!r}")
        if isinstance(curated_paths, str):
            raise TypeError("curated_paths must be a sequence of paths, not one string")
        now = _now()
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(_files.c.path, _files.c.version).where(_files.c.id == record_id)).first()
            if row is None:
                raise KeyError(f"no file record {record_id} in the catalog")
            # Lock every version of the path, in id order (so no deadlock), before reading any
            # of them: two versions finishing at once then see each other's outcome, and
            # exactly one of them ends superseded. SQLite is already serialised (no-op there).
            conn.execute(
                sa.select(_files.c.id).where(_files.c.path == row.path).order_by(_files.c.id).with_for_update()
            ).all()
            held = [_files.c.id == record_id, _files.c.status == FileStatus.PROCESSING.value]
            if run_id is not None:
                held.append(_files.c.run_id == run_id)
            updated = conn.execute(
                sa.update(_files)
                .where(*held)
                .values(
                    status=status.value,
                    subject_id=subject_id,
                    report_id=report_id,
                    row_count=rows,
                    message=message,
                    curated_paths=json.dumps([str(p) for p in curated_paths]),
                    processed_at=now,
                    lease_expires_at=None,
                    code_version=code_version,
                    lake_version=lake_version,
                )
            ).rowcount
            if updated != 1:
                current = self._get(conn, record_id)
                raise ClaimLostError(
                    f"{current.path} v{current.version} (record {record_id}) is {current.status} and held by "
                    f"run {current.run_id}: this run's claim was taken over (its lease of {self.lease_seconds:g} s "
                    "expired without a heartbeat, or the run was seen dead)"
                )
            newer_finished = conn.execute(
                sa.select(_files.c.id)
                .where(
                    _files.c.path == row.path,
                    _files.c.version > row.version,
                    _files.c.status != FileStatus.PROCESSING.value,
                )
                .limit(1)
            ).first()
            if newer_finished is not None:
                # A newer content of this path finished first: this outcome is already stale.
                conn.execute(
                    sa.update(_files).where(_files.c.id == record_id).values(status=FileStatus.SUPERSEDED.value)
                )
            else:
                superseded = conn.execute(
                    sa.update(_files)
                    .where(
                        _files.c.path == row.path,
                        _files.c.version < row.version,
                        sa.or_(
                            _files.c.status.in_([s.value for s in _OUTCOMES]),
                            # A claim abandoned on content the file no longer holds: nobody
                            # will ever finish it.
                            sa.and_(
                                _files.c.status == FileStatus.PROCESSING.value,
                                sa.or_(_files.c.lease_expires_at <= now,
                                       _files.c.run_id.in_(self._dead_runs(conn, row.path, now))),
                            ),
                        ),
                    )
                    .values(status=FileStatus.SUPERSEDED.value, lease_expires_at=None)
                ).rowcount
                if superseded:
                    logger.info("%s v%d: superseded %d older version(s)", row.path, row.version, superseded)
            return self._get(conn, record_id)

    def _dead_runs(self, conn: Connection, path: str, now: datetime) -> list[str]:
        """Runs holding a ``processing`` version of `path` that are dead."""
        holders = conn.execute(sa.select(_files.c.run_id).distinct().where(
            _files.c.path == path, _files.c.status == FileStatus.PROCESSING.value)).scalars().all()
        return [holder for holder in holders if not self._run_is_live(conn, holder, now)]

    def release(self, record_id: int, *, run_id: str | None = None) -> None:
        """Give up a claim (e.g. on KeyboardInterrupt) so that another run may take it at once.

        The lease is expired, not the row deleted, so the version number stays taken. A record
        that is not ``processing`` (or, when `run_id` is given, not held by it) is left alone.
        """
        held = [_files.c.id == record_id, _files.c.status == FileStatus.PROCESSING.value]
        if run_id is not None:
            held.append(_files.c.run_id == run_id)
        with self._engine.begin() as conn:
            released = conn.execute(sa.update(_files).where(*held).values(lease_expires_at=_now())).rowcount
            if not released:
                self._get(conn, record_id)  # KeyError for an unknown id; otherwise nothing to release

    def superseded_parts(self, path: str, version: int) -> list[str]:
        """Curated parts of the superseded versions of `path` older than `version`.

        Parts that a live version of the path still lists are left out, so removing the
        result never deletes current data. The list may repeat parts removed after an
        earlier call: remove them tolerating missing files.
        """
        path = _relative_posix(path)
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(_files.c.version, _files.c.status, _files.c.curated_paths)
                .where(_files.c.path == path)
                .order_by(_files.c.version)
            ).all()
        keep = {
            part for row in rows if row.status != FileStatus.SUPERSEDED for part in json.loads(row.curated_paths)
        }
        parts: dict[str, None] = {}  # ordered and de-duplicated
        for row in rows:
            if row.version < version and row.status == FileStatus.SUPERSEDED:
                parts.update((part, None) for part in json.loads(row.curated_paths) if part not in keep)
        return list(parts)

    def files(
        self, *, source: str | None = None, status: FileStatus | None = None, run_id: str | None = None
    ) -> list[FileRecord]:
        """Every file record matching all the given filters, in the order they were first claimed."""
        query = sa.select(_files).order_by(_files.c.id)
        if source is not None:
            query = query.where(_files.c.source == source)
        if status is not None:
            query = query.where(_files.c.status == FileStatus(status).value)
        if run_id is not None:
            query = query.where(_files.c.run_id == run_id)
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def latest(self) -> list[FileRecord]:
        """The latest version of every path, sorted by path."""
        newest = (
            sa.select(_files.c.path, sa.func.max(_files.c.version).label("version"))
            .group_by(_files.c.path)
            .subquery()
        )
        query = (
            sa.select(_files)
            .join(newest, sa.and_(_files.c.path == newest.c.path, _files.c.version == newest.c.version))
            .order_by(_files.c.path)
        )
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def _get(self, conn: Connection, record_id: int) -> FileRecord:
        row = conn.execute(sa.select(_files).where(_files.c.id == record_id)).first()
        if row is None:
            raise KeyError(f"no file record {record_id} in the catalog")
        return _record(row)

    @staticmethod
    def _require_run(conn: Connection, run_id: str) -> None:
        # Checked here rather than left to the foreign key so the error is the same, and clear,
        # on every backend (and is not mistaken for a lost race).
        if conn.execute(sa.select(_runs.c.run_id).where(_runs.c.run_id == run_id)).first() is None:
            raise KeyError(f"no run {run_id!r} in the catalog; start it with start_run")
