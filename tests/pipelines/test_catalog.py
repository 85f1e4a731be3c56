"""The file catalog on SQLite and on a real PostgreSQL server.

PostgreSQL tests run in a database created for this test session (dropped at the end), one
schema per test, and skip only when the server at 127.0.0.1:5432 cannot be reached.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
import traceback
from collections.abc import Iterator
from datetime import UTC

import pytest

from pipelines.ingest.catalog import Catalog, ClaimLostError, FileRecord, FileStatus

STUDY = "demo"


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    with Catalog(url) as cat:
        yield cat


def claim(catalog: Catalog, run_id: str, path: str, content: str) -> FileRecord | None:
    return catalog.claim(path=path, sha256=sha(content), size_bytes=len(content), source="wearable", run_id=run_id)


def curate(catalog: Catalog, record: FileRecord, *parts: str) -> FileRecord:
    return catalog.finish(
        record.id, status=FileStatus.CURATED, subject_id="S01", report_id="rep-1", rows=10, message=None,
        curated_paths=parts,
    )


def test_claim_then_finish_is_processed_and_not_claimed_again(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    record = claim(catalog, run_id, "wearables/S01.csv", "v1")
    assert record is not None
    assert (record.status, record.version, record.run_id) == (FileStatus.PROCESSING, 1, run_id)
    assert not catalog.is_processed("wearables/S01.csv", sha("v1"))
    assert claim(catalog, run_id, "wearables/S01.csv", "v1") is None  # held by a live lease

    done = curate(catalog, record, "curated/wearable/S01/part-0.parquet")

    assert done.status is FileStatus.CURATED
    assert (done.subject_id, done.report_id, done.rows) == ("S01", "rep-1", 10)
    assert done.curated_paths == ("curated/wearable/S01/part-0.parquet",)
    assert done.discovered_at.tzinfo is UTC and done.processed_at.tzinfo is UTC
    assert done.discovered_at <= done.processed_at
    assert catalog.is_processed("wearables/S01.csv", sha("v1"))
    second_run = catalog.start_run(STUDY)
    assert claim(catalog, second_run, "wearables/S01.csv", "v1") is None
    assert catalog.files(run_id=second_run) == []
    assert catalog.files(status=FileStatus.CURATED) == [done]
    assert catalog.files(source="labs") == []
    catalog.finish_run(run_id, {"curated": 1})


@pytest.mark.parametrize("status", [FileStatus.QUARANTINED, FileStatus.FAILED])
def test_every_final_status_counts_as_processed(catalog: Catalog, status: FileStatus) -> None:
    run_id = catalog.start_run(STUDY)
    record = claim(catalog, run_id, "labs/2024-05.csv", "bad")
    catalog.finish(
        record.id, status=status, subject_id=None, report_id="rep-9", rows=None, message="3 rows out of range"
    )

    assert catalog.is_processed("labs/2024-05.csv", sha("bad"))
    assert claim(catalog, run_id, "labs/2024-05.csv", "bad") is None


def test_changed_content_is_a_new_version_that_supersedes_the_old(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    v1 = curate(catalog, claim(catalog, run_id, "wearables/S01.csv", "old"), "p/old-0.parquet", "p/shared.parquet")

    v2 = claim(catalog, run_id, "wearables/S01.csv", "new")
    assert v2.version == 2
    # The old version stays current until the new one has an outcome.
    assert [r.status for r in catalog.files()] == [FileStatus.CURATED, FileStatus.PROCESSING]

    v2 = curate(catalog, v2, "p/new-0.parquet", "p/shared.parquet")

    assert catalog.files()[0].status is FileStatus.SUPERSEDED
    # A part the new version rewrote in place must not be handed out for deletion.
    assert catalog.superseded_parts("wearables/S01.csv", v2.version) == ["p/old-0.parquet"]
    assert catalog.latest() == [v2]
    assert not catalog.is_processed("wearables/S01.csv", sha("old"))
    assert catalog.is_processed("wearables/S01.csv", sha("new"))
    assert v1.id != v2.id


def test_content_reverted_to_an_earlier_version_is_processed_again(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    curate(catalog, claim(catalog, run_id, "a.csv", "A"), "p/a1")
    curate(catalog, claim(catalog, run_id, "a.csv", "B"), "p/b2")

    v3 = claim(catalog, run_id, "a.csv", "A")

    assert v3 is not None and v3.version == 3
    curate(catalog, v3, "p/a3")
    assert [(r.version, r.status) for r in catalog.files()] == [
        (1, FileStatus.SUPERSEDED), (2, FileStatus.SUPERSEDED), (3, FileStatus.CURATED)
    ]
    assert catalog.superseded_parts("a.csv", 3) == ["p/a1", "p/b2"]


def test_older_version_finishing_after_a_newer_one_ends_superseded(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    slow = claim(catalog, run_id, "a.csv", "old")
    fast = claim(catalog, run_id, "a.csv", "new")
    curate(catalog, fast, "p/new")

    late = curate(catalog, slow, "p/old")

    assert late.status is FileStatus.SUPERSEDED  # the caller removes late.curated_paths
    assert [r.version for r in catalog.latest()] == [2]
    assert catalog.latest()[0].status is FileStatus.CURATED


def test_expired_lease_is_taken_over_and_unexpired_is_not(url: str) -> None:
    with Catalog(url, lease_seconds=0.01) as crashed, Catalog(url) as healthy, Catalog(url) as other:
        crashed_run = crashed.start_run(STUDY)
        abandoned = claim(crashed, crashed_run, "a.csv", "A")
        healthy_run = healthy.start_run(STUDY)
        held = claim(healthy, healthy_run, "b.csv", "B")
        time.sleep(0.05)

        other_run = other.start_run(STUDY)
        taken = claim(other, other_run, "a.csv", "A")
        assert taken is not None
        assert (taken.id, taken.version, taken.run_id) == (abandoned.id, 1, other_run)
        assert claim(other, other_run, "b.csv", "B") is None

        # The run that outlived its lease cannot record an outcome over the new holder's.
        with pytest.raises(ClaimLostError, match="a.csv"):
            crashed.finish(abandoned.id, status=FileStatus.CURATED, subject_id="S01", report_id=None, rows=1,
                           message=None, run_id=crashed_run)
        assert curate(other, taken).status is FileStatus.CURATED
        with pytest.raises(ClaimLostError):
            curate(crashed, abandoned)
        assert curate(healthy, held).run_id == healthy_run


def test_release_lets_another_run_claim_at_once(catalog: Catalog) -> None:
    first, second = catalog.start_run(STUDY), catalog.start_run(STUDY)
    record = claim(catalog, first, "a.csv", "A")
    assert claim(catalog, second, "a.csv", "A") is None

    catalog.release(record.id)

    taken = claim(catalog, second, "a.csv", "A")
    assert (taken.id, taken.run_id) == (record.id, second)
    catalog.release(record.id, run_id=first)  # no longer first's claim: nothing happens
    assert claim(catalog, first, "a.csv", "A") is None


def test_invalid_arguments_are_rejected_with_clear_errors(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    for bad in ("/abs/a.csv", "../escape.csv", "a\\b.csv", ""):
        with pytest.raises(ValueError, match="path"):
            catalog.claim(path=bad, sha256=sha("x"), size_bytes=1, source="s", run_id=run_id)
    with pytest.raises(ValueError, match="sha256"):
        catalog.claim(path="a.csv", sha256="abc", size_bytes=1, source="s", run_id=run_id)
    with pytest.raises(KeyError, match="start_run"):
        catalog.claim(path="a.csv", sha256=sha("x"), size_bytes=1, source="s", run_id="nope")
    record = catalog.claim(path="./dir//a.csv", sha256=sha("x").upper(), size_bytes=1, source="s", run_id=run_id)
    assert (record.path, record.sha256) == ("dir/a.csv", sha("x"))
    with pytest.raises(ValueError, match="finish takes"):
        catalog.finish(
            record.id, status=FileStatus.SUPERSEDED, subject_id=None, report_id=None, rows=None, message=None
        )
    with pytest.raises(KeyError):
        catalog.finish(10_000, status=FileStatus.FAILED, subject_id=None, report_id=None, rows=None, message=None)
    with pytest.raises(KeyError):
        catalog.finish_run("nope", {})
    with pytest.raises(ValueError, match="belongs to study 'demo'"):
        catalog.start_run("another-study")


def _claim_worker(url: str, shared: list[tuple[str, str]], own: list[tuple[str, str]], barrier, results) -> None:
    """Runs in a spawned process: claim every pair at the same moment as the other process."""
    try:
        # Both processes also create the tables at the same time.
        with Catalog(url) as catalog:
            run_id = catalog.start_run(STUDY)
            kwargs = {"size_bytes": 1, "source": "wearable", "run_id": run_id}
            claimed, versions = [], []
            # A barrier before every claim, so that the two processes really ask for the same
            # pair at the same moment instead of one running ahead and the other finding
            # everything taken.
            for path, sha256 in shared:
                barrier.wait(timeout=60)
                if catalog.claim(path=path, sha256=sha256, **kwargs):
                    claimed.append((path, sha256))
            for path, sha256 in own:
                barrier.wait(timeout=60)
                if record := catalog.claim(path=path, sha256=sha256, **kwargs):
                    versions.append((record.path, record.version))
        results.put(("ok", claimed, versions))
    except BaseException:
        barrier.abort()
        results.put(("error", traceback.format_exc(), None))


def test_two_processes_never_claim_the_same_content_twice(url: str) -> None:
    shared = [(f"wearables/S{i:02d}.csv", sha(f"content {i}")) for i in range(50)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = []
    for name in ("left", "right"):
        # Different contents of the same paths: the two processes race for version numbers.
        own = [(f"labs/L{i:02d}.csv", sha(f"{name} {i}")) for i in range(20)]
        workers.append(context.Process(target=_claim_worker, args=(url, shared, own, barrier, results)))
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    errors = [detail for state, detail, _ in outcomes if state == "error"]
    assert not errors, "\n".join(errors)
    (_, left, left_versions), (_, right, right_versions) = outcomes
    assert not set(left) & set(right)
    assert sorted(left + right) == sorted(shared)
    assert len(left_versions) == len(right_versions) == 20
    versions_by_path: dict[str, list[int]] = {}
    for path, version in left_versions + right_versions:
        versions_by_path.setdefault(path, []).append(version)
    assert all(sorted(v) == [1, 2] for v in versions_by_path.values())
    with Catalog(url) as catalog:
        assert len(catalog.files(status=FileStatus.PROCESSING)) == 50 + 40


def test_a_catalog_of_an_earlier_release_gets_the_new_columns(url: str) -> None:
    with Catalog(url) as catalog:
        run_id = catalog.start_run(STUDY)
        curate(catalog, claim(catalog, run_id, "a.csv", "A"))
        with catalog._engine.begin() as conn:  # the tables as the first release created them
            for table, column in [("catalog_runs", "host"), ("catalog_runs", "pid"), ("catalog_runs", "pid_started"),
                                  ("catalog_files", "code_version"), ("catalog_files", "lake_version")]:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")

    with Catalog(url) as catalog:
        assert catalog.is_processed("a.csv", sha("A"))
        run_id = catalog.start_run(STUDY)
        record = claim(catalog, run_id, "b.csv", "B")
        done = catalog.finish(record.id, status=FileStatus.FAILED, subject_id=None, report_id=None, rows=None,
                              message="boom", code_version="v1", lake_version=None)
        assert done.code_version == "v1"
        assert not catalog.is_processed("b.csv", sha("B"), code_version="v2")  # retried under new code


def test_a_dead_owner_is_taken_over_at_once_and_a_remote_one_when_its_heartbeat_stops(url: str) -> None:
    import subprocess

    import sqlalchemy as sa

    with Catalog(url, lease_seconds=2.0) as catalog:
        def set_owner(run_id: str, **values) -> None:
            with catalog._engine.begin() as conn:
                conn.execute(sa.text("UPDATE catalog_runs SET " + ", ".join(f"{k} = :{k}" for k in values)
                                     + " WHERE run_id = :run_id"), {**values, "run_id": run_id})

        crashed = catalog.start_run(STUDY)
        held = claim(catalog, crashed, "a.csv", "A")
        finished = subprocess.Popen(["true"])
        finished.wait()
        set_owner(crashed, pid=finished.pid)  # its process is gone (SIGKILL, power cut)
        other = catalog.start_run(STUDY)
        assert not catalog.run_is_live(crashed)
        taken = claim(catalog, other, "a.csv", "A")  # at once: its lease has not expired yet
        assert (taken.id, taken.run_id) == (held.id, other)

        reused = catalog.start_run(STUDY)
        claim(catalog, reused, "c.csv", "C")
        set_owner(reused, pid_started="1")  # our pid, but another process's start time: a reused pid
        assert claim(catalog, other, "c.csv", "C").run_id == other

        remote = catalog.start_run(STUDY)
        claim(catalog, remote, "b.csv", "B")
        set_owner(remote, host="another-host")  # liveness cannot be seen from here: the lease decides
        for _ in range(3):
            assert catalog.heartbeat(remote) == 1
            assert catalog.run_is_live(remote) and claim(catalog, other, "b.csv", "B") is None
            time.sleep(1.0)  # half a lease: the heartbeat keeps it
        time.sleep(2.1)  # the heartbeat stopped for longer than the lease
        assert not catalog.run_is_live(remote)
        assert claim(catalog, other, "b.csv", "B").run_id == other


def wait(catalog: Catalog, record: FileRecord, run_id: str | None = None) -> FileRecord:
    return catalog.finish(
        record.id, status=FileStatus.PENDING, subject_id="S99", report_id="rep-p", rows=10,
        message="waiting: subject S99 is not in the enrollment file yet", run_id=run_id,
    )


def test_pending_is_not_final_and_a_run_started_after_it_claims_it_again(catalog: Catalog) -> None:
    first = catalog.start_run(STUDY)
    record = wait(catalog, claim(catalog, first, "wearables/S99.csv", "A"), run_id=first)

    assert record.status is FileStatus.PENDING and record.message.startswith("waiting: subject S99")
    assert not catalog.is_processed("wearables/S99.csv", sha("A"))
    assert claim(catalog, first, "wearables/S99.csv", "A") is None  # a run checks a file once
    assert catalog.current("wearables/S99.csv", sha("A")) == record

    later = catalog.start_run(STUDY)
    again = claim(catalog, later, "wearables/S99.csv", "A")

    # The same record (same version), claimed like any take-over; no new version, no duplicate.
    assert (again.id, again.version, again.status, again.run_id) == (record.id, 1, FileStatus.PROCESSING, later)
    assert claim(catalog, catalog.start_run(STUDY), "wearables/S99.csv", "A") is None  # held by `later`
    done = curate(catalog, again)
    assert done.status is FileStatus.CURATED and catalog.is_processed("wearables/S99.csv", sha("A"))
    assert [r.id for r in catalog.files()] == [record.id]


def test_a_pending_outcome_recorded_during_a_run_is_left_to_later_runs(catalog: Catalog) -> None:
    early, late = catalog.start_run(STUDY), catalog.start_run(STUDY)
    recorded = wait(catalog, claim(catalog, late, "wearables/S99.csv", "A"), run_id=late)

    # `early` was already going when `late` checked the file: it does not check it a second time.
    assert claim(catalog, early, "wearables/S99.csv", "A") is None
    assert catalog.current("wearables/S99.csv", sha("A")) == recorded
    assert claim(catalog, catalog.start_run(STUDY), "wearables/S99.csv", "A") is not None


def test_pending_supersedes_older_versions_and_is_superseded_by_newer_ones(catalog: Catalog) -> None:
    run_id = catalog.start_run(STUDY)
    curate(catalog, claim(catalog, run_id, "a.csv", "A"), "p/a1")
    pending = wait(catalog, claim(catalog, run_id, "a.csv", "B"))

    assert [(r.version, r.status) for r in catalog.files()] == [(1, FileStatus.SUPERSEDED), (2, FileStatus.PENDING)]
    assert catalog.newer_version_finished("a.csv", 1)
    assert catalog.superseded_parts("a.csv", pending.version) == ["p/a1"]

    curate(catalog, claim(catalog, run_id, "a.csv", "C"), "p/c3")
    assert [(r.version, r.status) for r in catalog.files()] == [
        (1, FileStatus.SUPERSEDED), (2, FileStatus.SUPERSEDED), (3, FileStatus.CURATED)
    ]
    assert claim(catalog, catalog.start_run(STUDY), "a.csv", "B").version == 4  # pending content, as new


def test_two_processes_never_claim_the_same_pending_file_twice(url: str) -> None:
    shared = [(f"wearables/S{i:02d}.csv", sha(f"waiting {i}")) for i in range(30)]
    with Catalog(url) as catalog:
        recorder = catalog.start_run(STUDY)
        for path, sha256 in shared:
            record = catalog.claim(path=path, sha256=sha256, size_bytes=1, source="wearable", run_id=recorder)
            wait(catalog, record, run_id=recorder)
        catalog.finish_run(recorder, {"pending": len(shared)})
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_claim_worker, args=(url, shared, [], barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    errors = [detail for state, detail, _ in outcomes if state == "error"]
    assert not errors, "\n".join(errors)
    (_, left, _), (_, right, _) = outcomes
    assert not set(left) & set(right)
    assert sorted(left + right) == sorted(shared)
    with Catalog(url) as catalog:
        assert len(catalog.files()) == 30
        assert len(catalog.files(status=FileStatus.PROCESSING)) == 30
