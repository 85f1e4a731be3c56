"""Crash recovery and concurrency of ingestion, with real processes killed by SIGKILL.

An ingest run is started as its own process group (``python -m pipelines.cli ingest``) and made
to stop at a named point (``BIOMARKERS_INGEST_PAUSE_AT``: after a claim, after one part of a
multi-part file is written, after the lake commit and before the catalog outcome); the test then
kills the whole group with SIGKILL and checks that the next run, at once, ends exactly where an
uninterrupted run would: every file curated once, the lake's rows those of the raw files, no
duplicate timestamps, no part left that no commit lists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import INGEST_UNPROCESSED_EXIT, app
from pipelines.config import load_study
from pipelines.ingest.catalog import Catalog, FileStatus
from pipelines.ingest.lake import lake_versions, read_subject, sweep_orphans, table_parts
from pipelines.ingest.run import PAUSE_AT_ENV, PAUSE_FILE_ENV, ingest_study
from tests.pipelines.conftest import make_study, write_minute_file

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = "minute_wearable"
MULTI_DAY = "raw/minute/S0001_minute.csv"
MINUTES = 3 * 1440  # three days: three parts, one per subject-day


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Three subjects; the first one's file spans three days (a multi-part write)."""
    study = make_study(tmp_path / "crash", n_subjects=3)
    write_minute_file(study.parent / MULTI_DAY, 1, minutes=MINUTES)
    return study


def start_paused(study: Path, point: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """Start an ingest run in its own process group; return once it has stopped at `point`."""
    marker = tmp_path / f"paused-{time.monotonic_ns()}"
    env = {**os.environ, PAUSE_AT_ENV: point, PAUSE_FILE_ENV: str(marker)}
    process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ingest", str(study), "--workers", "1"],
                               cwd=REPOSITORY, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {point}: {process.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.05)
    return process, marker


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()


def raw_minutes(config, path: str) -> int:
    return len(pd.read_csv(config.data_root / path))


def assert_as_if_uninterrupted(config) -> None:
    """Every file curated once; the lake holds exactly the raw rows; nothing unlisted on disk."""
    with Catalog(config.catalog) as catalog:
        latest = catalog.latest()
        assert {r.status for r in latest} == {FileStatus.CURATED}, [(r.path, r.status, r.message) for r in latest]
        listed = sorted(part for r in latest if r.source == SOURCE for part in r.curated_paths)
        # What the next run's sweep removes: parts that a dead run committed, and that the redo's
        # commit then replaced, are listed by no snapshot and no outcome any more.
        sweep_orphans(config.lake_root, catalog.run_is_live, {p for r in catalog.files() for p in r.curated_paths})
    assert sorted(table_parts(config.lake_root, SOURCE)) == listed
    for record in latest:
        if record.source != SOURCE:
            continue
        frame = read_subject(config.lake_root, SOURCE, record.subject_id)
        assert len(frame) == raw_minutes(config, record.path) == record.rows, record.path
        assert not frame["timestamp"].duplicated().any(), record.path
    on_disk = sorted(p.relative_to(config.lake_root).as_posix()
                     for p in (config.lake_root / f"source={SOURCE}").rglob("*.parquet"))
    superseded = {p for r in Catalog(config.catalog).files(status=FileStatus.SUPERSEDED) for p in r.curated_paths}
    assert sorted(set(on_disk) - superseded) == listed  # no orphan: only listed parts (and old versions')


@pytest.mark.parametrize("point", ["claimed", "part-written", "committed"])
def test_a_run_killed_at_any_point_is_finished_by_the_next_run_at_once(study: Path, tmp_path: Path,
                                                                        point: str) -> None:
    config = load_study(study)
    process, _ = start_paused(study, f"{point}@{MULTI_DAY}", tmp_path)
    with Catalog(config.catalog) as catalog:
        held = next(r for r in catalog.latest() if r.path == MULTI_DAY)
    assert held.status is FileStatus.PROCESSING
    parts_on_disk = list((config.lake_root / f"source={SOURCE}").rglob("*.parquet"))
    visible = read_subject(config.lake_root, SOURCE, "S0001")
    if point == "committed":  # committed whole, the catalog outcome not yet recorded
        assert len(visible) == MINUTES
    else:  # nothing of the file is visible, though one of its three parts may be on disk
        assert visible is None
        assert len(parts_on_disk) == (1 if point == "part-written" else 0)
    kill_group(process)

    started = time.monotonic()
    summary = ingest_study(config)

    outcomes = {o.path: o.status for o in summary.outcomes}
    assert outcomes[MULTI_DAY] == "curated"  # taken over at once: not busy, not "unchanged"
    assert not summary.unprocessed()
    assert time.monotonic() - started < 60  # the dead run's one-hour lease is not waited for
    assert_as_if_uninterrupted(config)


def test_a_file_re_exported_after_a_crash_replaces_its_old_version_exactly(study: Path, tmp_path: Path) -> None:
    config = load_study(study)
    ingest_study(config)
    write_minute_file(study.parent / MULTI_DAY, 1, minutes=MINUTES, heart_rate_offset=1.0)  # re-exported
    process, _ = start_paused(study, f"part-written@{MULTI_DAY}", tmp_path)
    # Mid-write of version 2: readers still see version 1 whole, and only it.
    assert len(read_subject(config.lake_root, SOURCE, "S0001")) == MINUTES
    kill_group(process)

    write_minute_file(study.parent / MULTI_DAY, 1, minutes=MINUTES - 60, heart_rate_offset=2.0)  # and again
    summary = ingest_study(config)

    assert {o.path: o.status for o in summary.outcomes}[MULTI_DAY] == "curated"
    with Catalog(config.catalog) as catalog:
        versions = sorted((r.version, r.status) for r in catalog.files() if r.path == MULTI_DAY)
    assert versions == [(1, FileStatus.SUPERSEDED), (2, FileStatus.SUPERSEDED), (3, FileStatus.CURATED)]
    frame = read_subject(config.lake_root, SOURCE, "S0001")
    expected = pd.read_csv(config.data_root / MULTI_DAY)
    assert len(frame) == MINUTES - 60 and not frame["timestamp"].duplicated().any()
    assert frame["heart_rate_bpm"].tolist() == pytest.approx(expected["heart_rate"].tolist())
    assert_as_if_uninterrupted(config)


def test_a_file_held_by_a_live_run_is_busy_and_its_parts_are_left_alone(study: Path, tmp_path: Path) -> None:
    config = load_study(study)
    process, _ = start_paused(study, f"part-written@{MULTI_DAY}", tmp_path)
    try:
        written = list((config.lake_root / f"source={SOURCE}").rglob("*.parquet"))
        assert written  # the live run's first part, not yet committed

        result = CliRunner().invoke(app, ["ingest", str(study), "--workers", "1"])

        assert result.exit_code == INGEST_UNPROCESSED_EXIT, result.output
        assert "1 files are busy" in " ".join(result.output.split())
        assert all(path.exists() for path in written)  # another live run's parts are not swept
        summary = ingest_study(config)
        busy = [o for o in summary.outcomes if o.status == "busy"]
        assert [(o.path, o.reason) for o in busy] == [(MULTI_DAY, "held by another live ingest run")]
    finally:
        kill_group(process)

    again = ingest_study(config)  # the owner is dead now: its claim is taken over at once
    assert {o.path: o.status for o in again.outcomes}[MULTI_DAY] == "curated"
    assert not any(path.exists() for path in written)  # the dead run's unlisted part was swept
    assert_as_if_uninterrupted(config)


def test_failed_is_retried_on_request_and_under_a_new_code_version(study: Path, monkeypatch) -> None:
    config = load_study(study)
    broken = "raw/minute/S0002_minute.csv"
    real_read = __import__("pipelines.ingest.run", fromlist=["_read"])._read

    def read_breaking_one(path, spec, kind):
        if path.name == Path(broken).name:
            raise MemoryError("simulated fault of the platform")
        return real_read(path, spec, kind)

    monkeypatch.setattr("pipelines.ingest.run._read", read_breaking_one)
    first = {o.path: o for o in ingest_study(config).outcomes}
    assert first[broken].status == "failed" and "MemoryError: simulated fault" in first[broken].reason
    assert broken in first[broken].reason and "--retry-failed" in first[broken].reason
    quarantined = config.quarantine_root / first[broken].report_id
    assert (quarantined / Path(broken).name).read_bytes() == (config.data_root / broken).read_bytes()
    assert json.loads((quarantined / "report.json").read_text())["file"] == broken
    assert first["raw/minute/S0001_minute.csv"].status == "curated"  # nothing else was lost
    monkeypatch.setattr("pipelines.ingest.run._read", real_read)

    same_code = {o.path: o.status for o in ingest_study(config).outcomes}
    assert same_code[broken] == "skipped"  # the same code would fail again: not retried on its own

    result = CliRunner().invoke(app, ["ingest", str(study), "--workers", "1", "--retry-failed"])
    assert result.exit_code == 0, result.output
    with Catalog(config.catalog) as catalog:
        record = next(r for r in catalog.latest() if r.path == broken)
    assert (record.status, record.version) == (FileStatus.CURATED, 1)
    assert_as_if_uninterrupted(config)


def test_a_failure_is_retried_when_the_code_version_changes(study: Path, monkeypatch) -> None:
    config = load_study(study)
    monkeypatch.setattr("pipelines.ingest.run._read", lambda *args: (_ for _ in ()).throw(RuntimeError("bug")))
    assert {o.status for o in ingest_study(config).outcomes} == {"failed"}
    monkeypatch.undo()
    monkeypatch.setattr("pipelines.ingest.run.code_version", lambda: "fixed")

    retried = ingest_study(config)

    assert {o.status for o in retried.outcomes} == {"curated"}
    with Catalog(config.catalog) as catalog:
        assert {r.code_version for r in catalog.latest()} == {"fixed"}


def test_status_lists_every_file_with_its_lake_version(study: Path) -> None:
    config = load_study(study)
    ingest_study(config)

    result = CliRunner().invoke(app, ["status", str(study), "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    versions = lake_versions(config.lake_root)
    assert document["lake_versions"] == versions
    by_path = {entry["path"]: entry for entry in document["files"]}
    assert set(by_path) == {"raw/subjects.csv", "raw/endpoints.csv", MULTI_DAY, "raw/minute/S0002_minute.csv",
                            "raw/minute/S0003_minute.csv"}
    entry = by_path[MULTI_DAY]
    assert (entry["status"], entry["version"], entry["rows"]) == ("curated", 1, MINUTES)
    assert len(entry["sha256"]) == 64 and entry["report_id"] and entry["reason"] is None
    assert 0 <= entry["lake_version"] <= versions[SOURCE]
    table = CliRunner().invoke(app, ["status", str(study)])
    assert table.exit_code == 0 and f"{SOURCE} {versions[SOURCE]}" in table.output


def test_two_runs_at_once_give_the_single_run_result(study: Path) -> None:
    config = load_study(study)
    runs = [subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ingest", str(study), "--workers", "1"],
                             cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0].decode() for run in runs]

    # Each run exits 0, or 3 when it met a file the other held (busy): never an error.
    assert {run.returncode for run in runs} <= {0, INGEST_UNPROCESSED_EXIT}, outputs
    with Catalog(config.catalog) as catalog:
        assert len(catalog.files()) == 5  # every file claimed and processed once, by one run or the other
        assert {r.version for r in catalog.files()} == {1}
    assert_as_if_uninterrupted(config)
