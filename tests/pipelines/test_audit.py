"""The append-only audit log of model alias moves, on SQLite and on a real PostgreSQL server.

PostgreSQL tests use the session database of ``conftest.py`` (one schema per test) and skip
only when the server at 127.0.0.1:5432 cannot be reached.
"""

from __future__ import annotations

import logging
import multiprocessing
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from pipelines.models.audit import GENESIS_HASH, AuditEntry, AuditLog, Decision
from training.acceptance import AcceptanceCriteria, evaluate_criteria, results_as_dicts

STUDY = "demo"
MODEL = "hospitalization_90d"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit' / 'audit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def log(url: str) -> Iterator[AuditLog]:
    with AuditLog(url) as audit:
        yield audit


@pytest.fixture
def raw(url: str) -> Iterator[sa.Engine]:
    """A plain engine, as someone working around the platform would use."""
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def criterion_results(auroc: float) -> list:
    criteria = AcceptanceCriteria(min_auroc=0.7)
    return evaluate_criteria(
        criteria,
        metrics={"auroc": auroc},
        subgroups=None,
        validation_outcomes={"rep-1": "passed"},
        train_subjects={"S1", "S2"},
        test_subjects={"S3"},
    )


def move(log: AuditLog, to_version: str, *, decision: str = "accepted", model: str = MODEL, **extra) -> AuditEntry:
    arguments = {
        "study_id": STUDY, "model_name": model, "alias": "champion", "from_version": None,
        "to_version": to_version, "decision": decision, "approver": "gate", "reason": "criteria passed",
        "criteria": [],
    }
    arguments.update(extra)
    return log.record(**arguments)


def test_accepted_and_refused_entries_are_appended_and_read_back(log: AuditLog, url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    accepted = log.record(
        study_id=STUDY, model_name=MODEL, alias="champion", from_version=None, to_version=3,
        decision=Decision.ACCEPTED, approver="j.doe", reason="all criteria passed",
        criteria=criterion_results(0.81), run_id="a1b2c3",
    )
    refused = log.record(
        study_id=STUDY, model_name=MODEL, alias="champion", from_version="3", to_version="4",
        decision="refused", approver="promotion-gate", reason="AUROC below 0.7",
        criteria=results_as_dicts(criterion_results(0.62)),
    )
    other = move(log, "1", model="other_model")

    assert accepted.decision is Decision.ACCEPTED and refused.decision is Decision.REFUSED
    assert (accepted.from_version, accepted.to_version, accepted.run_id) == (None, "3", "a1b2c3")
    assert (refused.from_version, refused.to_version, refused.run_id) == ("3", "4", None)
    assert accepted.criteria[0]["name"] == "auroc" and accepted.criteria[0]["passed"] is True
    assert refused.criteria[0] == {
        "name": "auroc", "passed": False, "observed": 0.62, "required": 0.7,
        "detail": "AUROC 0.62 < required 0.7",
    }
    assert accepted.moved_at.tzinfo is UTC and before <= accepted.moved_at <= refused.moved_at
    # The chain links each entry to the one before.
    assert accepted.prev_hash == GENESIS_HASH
    assert refused.prev_hash == accepted.entry_hash and other.prev_hash == refused.entry_hash
    assert len({accepted.entry_hash, refused.entry_hash, other.entry_hash}) == 3
    assert log.entries() == [accepted, refused, other]
    assert log.entries(MODEL) == [accepted, refused]
    assert log.entries("unknown") == []
    assert log.verify() == []
    # Reopening (creating tables and triggers again) keeps everything.
    with AuditLog(url) as reopened:
        assert reopened.entries() == [accepted, refused, other]
        assert reopened.verify(anchor=other.entry_hash) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"approver": " "}, "approver must be a non-empty string"),
        ({"reason": ""}, "reason must be a non-empty string"),
        ({"decision": "approved"}, "decision must be 'accepted' or 'refused'"),
        ({"to_version": None}, "to_version must be a model version"),
        ({"criteria": [{"name": "auroc", "observed": float("nan")}]}, "criteria cannot be stored as JSON"),
    ],
)
def test_bad_entries_are_refused_and_nothing_is_written(log: AuditLog, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        move(log, **{"to_version": "1", **change})
    assert log.entries() == []


def test_criteria_must_be_a_sequence(tmp_path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'audit.db'}") as log, pytest.raises(TypeError, match="sequence"):
        move(log, "1", criteria={"name": "auroc"})


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="only sqlite:/// and postgresql"):
        AuditLog("mysql://root@localhost/audit")


@pytest.mark.parametrize(
    "statement",
    ["UPDATE model_alias_moves SET reason = 'nothing to see' WHERE id > 1", "DELETE FROM model_alias_moves"],
)
def test_the_database_refuses_update_and_delete(log: AuditLog, raw: sa.Engine, statement: str) -> None:
    entries = [move(log, "1"), move(log, "2")]

    with pytest.raises(sa.exc.DBAPIError, match="model_alias_moves is append-only"), raw.begin() as conn:
        conn.exec_driver_sql(statement)

    assert log.entries() == entries
    assert log.verify() == []


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE model_alias_moves",
        # Statement triggers: refused even when no row matches (SQLite's row triggers cannot).
        "UPDATE model_alias_moves SET to_version = '9' WHERE id = -1",
        "DELETE FROM model_alias_moves WHERE id = -1",
    ],
)
def test_postgres_refuses_truncate_and_any_update_statement(postgres_url: str, statement: str) -> None:
    with AuditLog(postgres_url) as log:
        move(log, "1")
        engine = sa.create_engine(postgres_url)
        try:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()
        assert len(log.entries()) == 1


def test_a_fork_in_the_chain_is_refused_by_the_database(log: AuditLog, raw: sa.Engine) -> None:
    first = move(log, "1")
    second = move(log, "2")
    copy = {k: v for k, v in raw_row(raw, second.id).items() if k != "id"}
    copy["entry_hash"] = "e" * 64  # a second entry after `first`, as an append that skipped the lock would write

    with pytest.raises(sa.exc.IntegrityError), raw.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO model_alias_moves ({', '.join(copy)}) VALUES (:{', :'.join(copy)})"), copy)
    assert copy["prev_hash"] == first.entry_hash
    assert log.verify() == []


def raw_row(raw: sa.Engine, entry_id: int) -> dict:
    with raw.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT * FROM model_alias_moves WHERE id = {entry_id}").one()._mapping)


@pytest.mark.postgres
def test_postgres_triggers_fire_in_replica_mode(postgres_url: str) -> None:
    with AuditLog(postgres_url) as log:
        move(log, "1")
        engine = sa.create_engine(postgres_url)
        try:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                # Replica mode silences ordinary triggers; these are ENABLE ALWAYS.
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                conn.exec_driver_sql("DELETE FROM model_alias_moves")
        finally:
            engine.dispose()
        assert len(log.entries()) == 1


@pytest.mark.postgres
def test_postgres_restores_a_changed_trigger_function(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with AuditLog(postgres_url) as log:
        entry = move(log, "1")
        engine = sa.create_engine(postgres_url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION model_alias_moves_append_only() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
                )
                conn.exec_driver_sql("UPDATE model_alias_moves SET reason = 'edited'")
            with caplog.at_level(logging.WARNING, logger="pipelines.models.audit"), AuditLog(postgres_url):
                pass
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql("UPDATE model_alias_moves SET reason = 'edited again'")
        finally:
            engine.dispose()
        assert "function model_alias_moves_append_only were missing, disabled or changed" in caplog.text
        assert log.verify() == [f"entry {entry.id}: its content does not match its entry_hash: it was edited"]


@pytest.mark.postgres
def test_postgres_role_with_only_select_and_insert_can_record(postgres_url: str, postgres_database: str) -> None:
    """Production runs the platform as a role that cannot change the table: opening an intact log needs no DDL."""
    with AuditLog(postgres_url) as log:
        move(log, "1")
    role = f"audit_app_{uuid.uuid4().hex[:12]}"
    schema = postgres_url.rsplit("%3D", 1)[1]
    admin_dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={postgres_database}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            admin.execute(f'GRANT SELECT, INSERT ON "{schema}".model_alias_moves TO "{role}"')
            admin.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
            with AuditLog(postgres_url.replace("postgres@", f"{role}@", 1)) as app_log:
                second = move(app_log, "2", approver=role)
                assert [e.to_version for e in app_log.entries()] == ["1", "2"] and second.approver == role
                assert app_log.verify() == []
        finally:
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


def drop_triggers(raw: sa.Engine) -> None:
    """What someone with the database owner's rights could do before editing the log."""
    with raw.begin() as conn:
        if raw.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER model_alias_moves_no_update")
            conn.exec_driver_sql("DROP TRIGGER model_alias_moves_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE model_alias_moves DISABLE TRIGGER USER")


def test_an_edit_made_around_the_triggers_is_detected(
    log: AuditLog, raw: sa.Engine, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = (move(log, str(v)) for v in (1, 2, 3))
    drop_triggers(raw)

    with raw.begin() as conn:
        conn.exec_driver_sql(f"UPDATE model_alias_moves SET decision = 'refused', approver = 'x' WHERE id={second.id}")

    problems = log.verify()
    assert problems == [f"entry {second.id}: its content does not match its entry_hash: it was edited"]

    # Rewriting the edited entry's hash too moves the mismatch to the next link.
    with raw.begin() as conn:
        conn.exec_driver_sql(f"UPDATE model_alias_moves SET entry_hash = '{'f' * 64}' WHERE id = {second.id}")
    problems = log.verify()
    assert len(problems) == 2
    assert problems[0].startswith(f"entry {second.id}: its content does not match")
    assert problems[1].startswith(f"entry {third.id}: prev_hash does not match the hash of entry {second.id}")

    # Opening the log puts the triggers back, and says they were missing.
    with caplog.at_level(logging.WARNING, logger="pipelines.models.audit"), AuditLog(url):
        pass
    assert "or function model_alias_moves_no_update, model_alias_moves_no_delete" in caplog.text
    assert "were missing, disabled or changed and are restored" in caplog.text
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), raw.begin() as conn:
        conn.exec_driver_sql("DELETE FROM model_alias_moves")
    assert first.prev_hash == GENESIS_HASH


def test_deleted_entries_are_detected(log: AuditLog, raw: sa.Engine) -> None:
    first, second, third, fourth = (move(log, str(v)) for v in (1, 2, 3, 4))
    anchor = fourth.entry_hash
    drop_triggers(raw)

    with raw.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM model_alias_moves WHERE id = {second.id}")
    assert log.verify() == [
        f"entry {third.id}: prev_hash does not match the hash of entry {first.id}: an entry between them was "
        "deleted, or the one before was rewritten"
    ]

    # Deleting the first entry breaks the link to the start of the log.
    with raw.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM model_alias_moves WHERE id = {first.id}")
    assert log.verify()[0].startswith(f"entry {third.id}: prev_hash does not match the hash of the start of the log")

    # Deleting the newest entry leaves a chain valid in itself: only an anchor kept elsewhere shows it.
    with raw.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM model_alias_moves WHERE id = {fourth.id}")
    problems = log.verify(anchor=anchor)
    assert problems[-1] == (
        f"anchor {anchor[:12]}... is not in the log: the entry with that hash was deleted (with any after it)"
    )


def _record_worker(url: str, name: str, count: int, barrier, results) -> None:
    """Runs in a spawned process: open the log and append `count` entries alongside the other process."""
    try:
        barrier.wait(timeout=60)  # both processes also create the tables and triggers at the same time
        with AuditLog(url) as log:
            ids = []
            for i in range(count):
                # A barrier before every append, so that both really read the last hash at the
                # same moment instead of one process running ahead of the other.
                barrier.wait(timeout=60)
                ids.append(move(log, str(i), approver=name, reason=f"{name} {i}").id)
        results.put(("ok", name, ids))
    except BaseException:
        barrier.abort()
        results.put(("error", name, traceback.format_exc()))


def test_concurrent_appends_from_two_processes_keep_one_chain(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_record_worker, args=(url, name, 20, barrier, results)) for name in ("left", "right")
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    errors = [detail for state, _, detail in outcomes if state == "error"]
    assert not errors, "\n".join(errors)
    with AuditLog(url) as log:
        entries = log.entries()
        assert log.verify() == []
    assert len(entries) == 40
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.entry_hash for earlier, later in zip(entries, entries[1:], strict=False))
    by_approver = {name: [e.reason for e in entries if e.approver == name] for name in ("left", "right")}
    assert by_approver == {name: [f"{name} {i}" for i in range(20)] for name in ("left", "right")}
