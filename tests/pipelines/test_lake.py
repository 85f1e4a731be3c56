"""The transactional lake: parts invisible until their commit, versions replaced in one step,
snapshots read again later (time travel), and a sweep that never touches a live run's parts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipelines.build.local import MANIFEST, build_features
from pipelines.config import load_study
from pipelines.ingest.lake import (
    commit_version,
    lake_versions,
    read_subject,
    sweep_orphans,
    table_lock,
    table_parts,
    write_parts,
)
from pipelines.ingest.run import ingest_study
from tests.pipelines.conftest import write_minute_file
from validation.schemas import SourceKind

RAW = "raw/rr/S0001_rr.csv"


def rr_frame(days: int, value: float) -> pd.DataFrame:
    times = pd.date_range("2024-03-04", periods=days * 24, freq="h", tz="UTC")
    return pd.DataFrame({"subject_id": "S0001", "timestamp": times, "rr_interval_ms": value})


def stage(lake: Path, frame: pd.DataFrame, sha: str, run_id: str):
    return write_parts(frame, lake_root=lake, source="rr", kind=SourceKind.RR_INTERVALS, subject_id=None,
                       raw_path=RAW, sha256=sha * 64, report_id=f"report-{sha}", run_id=run_id)


def commit(lake: Path, staged, sha: str) -> int | None:
    with table_lock(lake, "rr"):
        return commit_version(lake, staged, source="rr", raw_path=RAW, sha256=sha * 64, report_id=f"report-{sha}")


def test_a_version_is_invisible_until_committed_and_replaces_the_old_one_in_one_step(tmp_path: Path) -> None:
    first = stage(tmp_path, rr_frame(3, 800.0), "a", "1" * 32)
    assert len(first.parts) == 3 and read_subject(tmp_path, "rr", "S0001") is None  # written, not visible
    assert commit(tmp_path, first, "a") == 0
    assert len(read_subject(tmp_path, "rr", "S0001")) == 72

    second = stage(tmp_path, rr_frame(2, 900.0), "b", "2" * 32)
    assert read_subject(tmp_path, "rr", "S0001")["rr_interval_ms"].eq(800.0).all()  # still the old one only
    assert commit(tmp_path, second, "b") == 1

    now = read_subject(tmp_path, "rr", "S0001")
    assert len(now) == 48 and now["rr_interval_ms"].eq(900.0).all()  # the new one only, nothing of the old
    before = read_subject(tmp_path, "rr", "S0001", version=0)  # time travel
    assert len(before) == 72 and before["rr_interval_ms"].eq(800.0).all()
    from deltalake import DeltaTable

    history = DeltaTable(str(tmp_path / "source=rr")).history(1)[0]
    assert (history["raw_path"], history["raw_sha256"], history["validation_report_id"]) == (
        RAW, "b" * 64, "report-b")
    part = pq.read_schema(tmp_path / table_parts(tmp_path, "rr")[0]).metadata
    assert json.loads(part[b"units"])["rr_interval_ms"] == "ms"

    # A quarantined later version commits no rows and removes the curated ones.
    assert commit(tmp_path, None, "c") == 2
    assert read_subject(tmp_path, "rr", "S0001") is None
    assert commit(tmp_path, None, "c") is None  # nothing left to change


def test_the_sweep_removes_only_dead_runs_unlisted_parts(tmp_path: Path) -> None:
    live, dead, done = "1" * 32, "2" * 32, "3" * 32
    commit(tmp_path, stage(tmp_path, rr_frame(1, 800.0), "a", done), "a")
    live_parts = stage(tmp_path, rr_frame(2, 810.0), "b", live).lake_paths()
    dead_parts = stage(tmp_path, rr_frame(2, 820.0), "c", dead).lake_paths()

    removed = sweep_orphans(tmp_path, lambda run_id: run_id == live, recorded=set())

    assert sorted(removed) == sorted(dead_parts)
    assert all((tmp_path / part).exists() for part in live_parts + table_parts(tmp_path, "rr"))
    assert len(read_subject(tmp_path, "rr", "S0001")) == 24


def test_a_build_records_its_lake_snapshot_and_rebuilds_it_after_the_lake_moved_on(tiny_study: Path,
                                                                                   tmp_path: Path) -> None:
    config = load_study(tiny_study)
    ingest_study(config)
    first = build_features(config, tmp_path / "first", workers=1)
    recorded = json.loads((tmp_path / "first" / MANIFEST).read_text())["lake_versions"]
    assert recorded == lake_versions(config.lake_root, sorted(recorded))

    write_minute_file(config.data_root / "raw" / "minute" / "S0002_minute.csv", 2, heart_rate_offset=20)
    ingest_study(config)
    assert lake_versions(config.lake_root)["minute_wearable"] > recorded["minute_wearable"]

    again = build_features(config, tmp_path / "again", workers=1, lake_versions=recorded)

    assert again.tables == first.tables
    for name in first.tables:
        rebuilt = pd.read_parquet(tmp_path / "again" / f"{name}.parquet").drop(columns="created_timestamp")
        original = pd.read_parquet(tmp_path / "first" / f"{name}.parquet").drop(columns="created_timestamp")
        pd.testing.assert_frame_equal(rebuilt, original, obj=name)


def test_a_lake_of_an_earlier_release_is_adopted_without_its_orphans(tiny_study: Path) -> None:
    import shutil

    import sqlalchemy as sa

    from pipelines.ingest.catalog import Catalog

    config = load_study(tiny_study)
    ingest_study(config)
    # Rewrite the lake as the earlier release left it: plain parts named without a run id, no
    # tables, and an orphan part of S0002 that an interrupted write left behind.
    engine = sa.create_engine(config.catalog)
    with Catalog(config.catalog) as catalog, engine.begin() as conn:
        for record in catalog.files():
            legacy = [part.replace(f"-{record.run_id}.parquet", ".parquet") for part in record.curated_paths]
            for old, new in zip(record.curated_paths, legacy, strict=True):
                (config.lake_root / old).rename(config.lake_root / new)
            conn.execute(sa.text("UPDATE catalog_files SET curated_paths = :paths WHERE id = :id"),
                         {"paths": json.dumps(legacy), "id": record.id})
    engine.dispose()
    for log in config.lake_root.glob("source=*/_delta_log"):
        shutil.rmtree(log)
    s0002 = next((config.lake_root / "source=minute_wearable" / "subject_id=S0002").rglob("part-*.parquet"))
    orphan = s0002.with_name(s0002.name[:18] + "0" * 12 + ".parquet")
    shutil.copyfile(s0002, orphan)

    again = ingest_study(config)

    assert {o.status for o in again.outcomes} == {"skipped"}  # nothing to process again
    assert not orphan.exists()
    assert len(read_subject(config.lake_root, "minute_wearable", "S0002")) == 180  # once, not twice
    write_minute_file(config.data_root / "raw" / "minute" / "S0002_minute.csv", 2, minutes=120)
    ingest_study(config)
    frame = read_subject(config.lake_root, "minute_wearable", "S0002")
    assert len(frame) == 120 and not frame["timestamp"].duplicated().any()  # the adopted version replaced
