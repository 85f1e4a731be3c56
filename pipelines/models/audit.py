"""The append-only audit log of model alias moves (promotions to ``champion`` and refusals).

Every time the promotion gate decides on moving a registered model's alias, one entry records
who decided what, when, on which evidence (the acceptance criteria results) and in which MLflow
run. Entries are never edited or removed:

- the class offers no way to change or delete an entry;
- the database refuses ``UPDATE`` and ``DELETE`` (and, on PostgreSQL, ``TRUNCATE``) on the
  table with triggers, created with the table;
- entries form a hash chain: each entry stores the previous entry's hash and
  ``entry_hash = sha256(prev_hash + canonical JSON of its fields)``, so an edit or deletion
  made around the triggers (by someone who dropped them, or a database owner) is found by
  `AuditLog.verify`.

Appends are serialised so that the chain stays linear when several processes record at once
(a transaction-level advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), and a unique
``prev_hash`` makes the database refuse a fork should an append ever skip that.
SQLite (a file, the default) and PostgreSQL (production) are supported, with the same URL
forms as `pipelines.ingest.catalog.Catalog`; the log can share the catalog's database.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from adapters.sql import DDL_LOCK_KEY, UTCDateTime, sql_engine
from training.acceptance import CriterionResult, results_as_dicts

logger = logging.getLogger(__name__)

TABLE = "model_alias_moves"
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry."""

APPEND_ONLY_MESSAGE = f"{TABLE} is append-only"
# First key of the two-integer advisory locks serialising appends (the second is the table's
# oid); the two-integer key space never meets the catalog's one-bigint DDL lock.
_APPEND_LOCK_SPACE = 0x61756474  # "audt"


class Decision(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class AuditEntry:
    """One alias move decision. ``moved_at`` is timezone-aware UTC.

    Attributes
    ----------
    id : int
        Position in the log (increasing; not necessarily consecutive on PostgreSQL).
    moved_at : datetime
        When the decision was recorded.
    study_id, model_name, alias : str
        The study, the registered model's name and the alias (e.g. ``champion``).
    from_version : str or None
        The version the alias pointed at before (None if it pointed nowhere).
    to_version : str
        The version the alias was requested to point at (moved there only if accepted).
    decision : Decision
    approver : str
        Who (or which automated gate) decided.
    reason : str
        Why, in words.
    criteria : tuple of dict
        The acceptance criteria results (``training.acceptance.results_as_dicts``).
    run_id : str or None
        The MLflow run of the evaluation.
    prev_hash, entry_hash : str
        The chain: the previous entry's ``entry_hash`` (``GENESIS_HASH`` for the first) and
        this entry's own, hexadecimal SHA-256.
    """

    id: int
    moved_at: datetime
    study_id: str
    model_name: str
    alias: str
    from_version: str | None
    to_version: str
    decision: Decision
    approver: str
    reason: str
    criteria: tuple[dict[str, Any], ...]
    run_id: str | None
    prev_hash: str
    entry_hash: str


_metadata = sa.MetaData()

_moves = sa.Table(
    TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("moved_at", UTCDateTime, nullable=False),
    sa.Column("study_id", sa.String, nullable=False),
    sa.Column("model_name", sa.String, nullable=False),
    sa.Column("alias", sa.String, nullable=False),
    sa.Column("from_version", sa.String),
    sa.Column("to_version", sa.String, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("approver", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("criteria", sa.Text, nullable=False),  # canonical JSON array of criterion results
    sa.Column("run_id", sa.String),
    # Unique: the database itself refuses a fork (two entries after the same one), should an
    # append ever skip the lock.
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    sa.CheckConstraint("decision IN ('accepted', 'refused')", name="ck_model_alias_moves_decision"),
)
sa.Index("ix_model_alias_moves_model", _moves.c.model_name, _moves.c.alias)

# The hashed fields, in no particular order (the canonical JSON sorts keys). Not the id: it is
# assigned by the database, and the chain's order already pins each entry's place.
_HASHED = (
    "moved_at", "study_id", "model_name", "alias", "from_version", "to_version",
    "decision", "approver", "reason", "criteria", "run_id",
)

_SQLITE_TRIGGERS = {
    f"{TABLE}_no_{action.lower()}": (
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    )
    for action in ("UPDATE", "DELETE")
}

_PG_FUNCTION_NAME = f"{TABLE}_append_only"
_PG_FUNCTION_BODY = f"""
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege',
        HINT = 'record a new entry instead; verify() detects edits made around this trigger';
END
"""
_PG_FUNCTION = (
    f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION_NAME}() RETURNS trigger LANGUAGE plpgsql AS $${_PG_FUNCTION_BODY}$$"
)
# Statement-level: refused even when no row matches, and TRUNCATE has no row triggers.
_PG_TRIGGERS = {
    f"{TABLE}_no_{action.lower()}": (
        f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION_NAME}()"
    )
    for action in ("UPDATE", "DELETE", "TRUNCATE")
}


def _now() -> datetime:
    return datetime.now(UTC)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _moved_at_text(moved_at: datetime) -> str:
    return moved_at.astimezone(UTC).isoformat(timespec="microseconds")


def compute_entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical JSON of the hashed fields)``, hexadecimal.

    ``fields`` holds the stored values: ``moved_at`` as a datetime, ``criteria`` as its JSON
    text, the rest as strings or None. Canonical JSON: sorted keys, no spaces, UTF-8.
    """
    document = {name: fields[name] for name in _HASHED}
    document["moved_at"] = _moved_at_text(document["moved_at"])
    return hashlib.sha256((prev_hash + _canonical_json(document)).encode("utf-8")).hexdigest()


def _required_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _version(name: str, value: Any, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"{name} must be a model version (a non-empty string or an int), got {value!r}")
    return str(value)


def _decision(value: Any) -> str:
    try:
        return Decision(value).value
    except ValueError:
        raise ValueError(f"decision must be 'accepted' or 'refused', got {value!r}") from None


def _criteria_json(criteria: Sequence[CriterionResult | Mapping[str, Any]]) -> str:
    if isinstance(criteria, str | bytes | Mapping):
        raise TypeError("criteria must be a sequence of criterion results (or their dicts), not one string or dict")
    rows = []
    for item in criteria:
        if isinstance(item, CriterionResult):
            rows.extend(results_as_dicts([item]))
        elif isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            raise TypeError(f"criteria items must be CriterionResult or dicts, got {type(item).__name__}")
    try:
        return _canonical_json(rows)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"criteria cannot be stored as JSON ({error}); pass CriterionResult objects or "
            "training.acceptance.results_as_dicts(...), which turn NaN into null"
        ) from error


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        moved_at=row.moved_at,
        study_id=row.study_id,
        model_name=row.model_name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        decision=Decision(row.decision),
        approver=row.approver,
        reason=row.reason,
        criteria=tuple(json.loads(row.criteria)),
        run_id=row.run_id,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )


class AuditLog:
    """The append-only log of model alias moves, in SQLite or PostgreSQL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/to/audit.db`` (the parent folder is created) or
        ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` means psycopg too).

    Notes
    -----
    The table, its triggers and (on PostgreSQL) the trigger function are created if missing;
    two processes doing so at once is safe. Triggers found missing on a log that already
    holds entries are recreated with a warning: run `verify`. The triggers stop the platform
    and careless hands; they do not stop a database owner, who can drop them. For that the
    hash chain makes every edit detectable, and in production the platform's database role
    should hold only ``SELECT`` and ``INSERT`` on the table and ``USAGE`` on its id sequence,
    which is all that opening an intact log and recording need. Timestamps come from this host's
    clock (``datetime.now(UTC)``).
    """

    def __init__(self, url: str) -> None:
        # On SQLite, BEGIN IMMEDIATE takes the write lock before the last hash is read: appends are serial.
        self._engine = sql_engine(url, "audit log", serialize_writers=True)
        self._create_tables()

    def _create_tables(self) -> None:
        with self._engine.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                # Without the lock, two processes starting at once both see no table (or no
                # trigger) and one fails on the duplicate; CREATE OR REPLACE FUNCTION races too.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
            _metadata.create_all(conn)
            present = self._trigger_states(conn)
            wanted = _PG_TRIGGERS if postgres else _SQLITE_TRIGGERS
            missing = [name for name in wanted if name not in present]
            disabled = [name for name in wanted if present.get(name) == "D"]
            function_changed = postgres and self._pg_function_source(conn) != _PG_FUNCTION_BODY
            restored = [*missing, *disabled, *([_PG_FUNCTION_NAME] if function_changed else [])]
            if restored and conn.execute(sa.select(_moves.c.id).limit(1)).first() is not None:
                logger.warning(
                    "%s: append-only trigger(s) or function %s were missing, disabled or changed and are restored; "
                    "entries may have been edited meanwhile: run AuditLog.verify()", TABLE, ", ".join(restored),
                )
            # Only what is missing or changed: an intact log opens with no DDL, so a role that
            # may only SELECT and INSERT can use it.
            if function_changed:
                conn.exec_driver_sql(_PG_FUNCTION)
            for name in missing:
                conn.exec_driver_sql(wanted[name])
            if postgres:
                # ALWAYS: the triggers fire under session_replication_role = replica too, which
                # otherwise silences them.
                for name in wanted:
                    if present.get(name) != "A":
                        conn.exec_driver_sql(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {name}")

    @staticmethod
    def _pg_function_source(conn: Connection) -> str | None:
        query = sa.text("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(:signature)")
        return conn.execute(query, {"signature": f"{_PG_FUNCTION_NAME}()"}).scalar_one_or_none()

    @staticmethod
    def _trigger_states(conn: Connection) -> dict[str, str]:
        """Trigger name -> state on the table: PostgreSQL's ``tgenabled`` ("A" always, "O" origin
        only, "D" disabled...); "A" for every SQLite trigger, which cannot be disabled."""
        if conn.dialect.name == "postgresql":
            query = sa.text(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal"
            )
            return {name: str(state) for name, state in conn.execute(query, {"table": TABLE})}
        query = sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table")
        return dict.fromkeys(conn.execute(query, {"table": TABLE}).scalars(), "A")

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
        return f"AuditLog({self._engine.url.render_as_string(hide_password=True)!r})"

    def record(
        self,
        *,
        study_id: str,
        model_name: str,
        alias: str,
        from_version: str | int | None,
        to_version: str | int,
        decision: Decision | str,
        approver: str,
        reason: str,
        criteria: Sequence[CriterionResult | Mapping[str, Any]],
        run_id: str | None = None,
    ) -> AuditEntry:
        """Append one alias move decision and return it.

        Parameters
        ----------
        study_id, model_name, alias : str
            Non-empty.
        from_version : str, int or None
            The version the alias points at now; None if it points nowhere. Stored as text.
        to_version : str or int
            The version requested, whether the move was accepted or refused. Stored as text.
        decision : Decision or {"accepted", "refused"}
        approver : str
            Who decided (a person, or the name of the automated gate). Non-empty.
        reason : str
            Why, in words. Non-empty.
        criteria : sequence of CriterionResult or dict
            The acceptance criteria results behind the decision (may be empty for a manual
            decision); dicts must be JSON-safe, as ``results_as_dicts`` returns them.
        run_id : str, optional
            The MLflow run of the evaluation.

        Returns
        -------
        AuditEntry
            The stored entry, with its id and place in the hash chain.
        """
        values: dict[str, Any] = {
            "study_id": _required_text("study_id", study_id),
            "model_name": _required_text("model_name", model_name),
            "alias": _required_text("alias", alias),
            "from_version": _version("from_version", from_version, optional=True),
            "to_version": _version("to_version", to_version, optional=False),
            "decision": _decision(decision),
            "approver": _required_text("approver", approver),
            "reason": _required_text("reason", reason),
            "criteria": _criteria_json(criteria),
            "run_id": None if run_id is None else _required_text("run_id", run_id),
        }
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # One append at a time per log (keyed by the table's oid, so logs in other schemas
                # do not wait), held until commit: no two entries read the same last hash.
                # Not LOCK TABLE: that needs UPDATE or DELETE rights, which the platform's role
                # should not have. Readers are never blocked.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:space, to_regclass(:table)::oid::integer)"),
                    {"space": _APPEND_LOCK_SPACE, "table": TABLE},
                )
            last = conn.execute(sa.select(_moves.c.entry_hash).order_by(_moves.c.id.desc()).limit(1)).first()
            values["prev_hash"] = GENESIS_HASH if last is None else last.entry_hash
            # Taken under the lock, so moved_at follows the chain order (on one host's clock).
            values["moved_at"] = _now()
            values["entry_hash"] = compute_entry_hash(values["prev_hash"], values)
            new_id = conn.execute(sa.insert(_moves).values(**values).returning(_moves.c.id)).scalar_one()
            row = conn.execute(sa.select(_moves).where(_moves.c.id == new_id)).one()
        entry = _entry(row)
        logger.info(
            "audit %d: %s %s -> %s of %s (%s) by %s",
            entry.id, entry.decision.value, entry.alias, entry.to_version, entry.model_name, entry.study_id,
            entry.approver,
        )
        return entry

    def entries(self, model_name: str | None = None) -> list[AuditEntry]:
        """Every entry (of one registered model, if given), in the order recorded."""
        query = sa.select(_moves).order_by(_moves.c.id)
        if model_name is not None:
            query = query.where(_moves.c.model_name == model_name)
        with self._engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def verify(self, *, anchor: str | None = None) -> list[str]:
        """Walk the hash chain and return its problems, one sentence each; empty when intact.

        Parameters
        ----------
        anchor : str, optional
            An ``entry_hash`` kept elsewhere (an MLflow tag, a signed report). Deleting the
            newest entries leaves a shorter chain that is still valid in itself; an anchor
            that is no longer in the chain reveals it.

        Returns
        -------
        list of str
            Each names the entry id: an entry whose content no longer matches its hash
            (edited), or whose ``prev_hash`` does not match the entry before it (an entry
            before it was deleted, or its hash rewritten).
        """
        problems: list[str] = []
        expected_prev, prev_id = GENESIS_HASH, None
        hashes: set[str] = set()
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(_moves).order_by(_moves.c.id)).all()
        for row in rows:
            fields = dict(row._mapping)
            if row.prev_hash != expected_prev:
                after = "the start of the log" if prev_id is None else f"entry {prev_id}"
                problems.append(
                    f"entry {row.id}: prev_hash does not match the hash of {after}: an entry between them was "
                    "deleted, or the one before was rewritten"
                )
            try:
                recomputed = compute_entry_hash(row.prev_hash, fields)
            except (TypeError, ValueError, AttributeError) as error:
                recomputed = f"unhashable: {error}"
            if recomputed != row.entry_hash:
                problems.append(f"entry {row.id}: its content does not match its entry_hash: it was edited")
            expected_prev, prev_id = row.entry_hash, row.id
            hashes.add(row.entry_hash)
        if anchor is not None and anchor not in hashes:
            problems.append(
                f"anchor {anchor[:12]}... is not in the log: the entry with that hash was deleted (with any after it)"
                if rows else f"anchor {anchor[:12]}... is not in the log: the log is empty"
            )
        return problems

