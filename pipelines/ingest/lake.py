"""The curated lake: one Delta Lake table per source, partitioned by subject and date.

Layout (hive style inside each table, so DuckDB, Spark and pyarrow datasets read the partition
columns back from the file lists that a table snapshot gives)::

    <lake>/source=<name>/_delta_log/...                                  (the table's commits)
    <lake>/source=<name>/subject_id=<id>/date=<YYYY-MM-DD>/<part>.parquet
    <lake>/source=subjects/<part>.parquet              (study-level tables: no subject, no date)

A file version is one Delta transaction: its parts are first written under names no other
version or run uses (``part-<path key>-<sha256>-<run id>.parquet``), invisible to every reader
because no commit lists them; then one commit adds them and removes the parts of the path's
previous version, with the raw file's path, SHA-256 and validation report id in the commit's
metadata. A reader sees a file version whole or not at all, and never both versions. Readers
take a snapshot (a table version) and read the Parquet files it lists: no DuckDB Delta
extension is needed, and a recorded version reads the same rows later (time travel), as long
as its files were not vacuumed.

The parts are written by pyarrow (the writer tuned for sensor data below), not by delta-rs's
own writer, which is about four times slower on one core for a week of accelerometry; delta-rs
commits them (`DeltaTable.create_write_transaction`). Commits to one table are serialised by a
lock file on this host (commits take milliseconds); delta-rs's own conflict check stays behind
it. A writer that dies before its commit leaves only unlisted parts: `sweep_orphans` removes
those of dead runs. Timestamps are stored in microseconds (what Spark and Delta read) and every
column's unit is in the Parquet schema metadata.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from validation.schemas import SCHEMAS, SourceKind

NS_PER_DAY = 86_400_000_000_000
PARTITION_COLUMNS = ("subject_id", "date")
# Parts written before the lake had tables carry no run id (`adopt_parts` commits them).
_PART_NAME = re.compile(r"part-(?P<path_key>[0-9a-f]{12})-(?P<sha>[0-9a-f]{12})(?:-(?P<run_id>[0-9a-f]+))?\.parquet")


@dataclass(frozen=True)
class Part:
    """A written (not yet committed) Parquet part of one file version."""

    path: str  # relative to the table's root
    size_bytes: int
    rows: int
    partition: dict[str, str]


@dataclass(frozen=True)
class StagedVersion:
    """One raw file version's parts, written and waiting for their commit."""

    source: str
    raw_path: str
    schema: pa.Schema  # of the files, without the partition columns
    partitioned: bool
    parts: tuple[Part, ...]

    def lake_paths(self) -> list[str]:
        """The parts' paths relative to the lake root (what the catalog records)."""
        return [f"{table_folder(self.source)}/{part.path}" for part in self.parts]


def table_folder(source: str) -> str:
    """A source's table folder, relative to the lake root."""
    return f"source={source}"


def _path_key(raw_path: str) -> str:
    return hashlib.sha256(raw_path.encode()).hexdigest()[:12]


def part_name(raw_path: str, sha256: str, run_id: str) -> str:
    """The name of the parts of one version of one raw file written by one run.

    The run id makes a retried version's parts distinct from a crashed attempt's, and tells
    `sweep_orphans` whose part an unlisted file is.
    """
    return f"part-{_path_key(raw_path)}-{sha256[:12]}-{run_id}.parquet"


def write_parts(
    frame: pd.DataFrame,
    *,
    lake_root: Path,
    source: str,
    kind: SourceKind,
    subject_id: str | None,
    raw_path: str,
    sha256: str,
    report_id: str,
    run_id: str,
    after_part: Callable[[Part], None] | None = None,
) -> StagedVersion:
    """Write a validated canonical frame's parts, invisible until `commit_version`.

    Parameters
    ----------
    frame : canonical frame of ``kind``; per-subject kinds carry ``subject_id`` per row, the
        high-rate kinds get ``subject_id`` (the file's subject) from the caller.
    raw_path, sha256, report_id : lineage of the raw file, kept in the Parquet metadata.
    run_id : the ingest run writing them (in the part names).
    after_part : called after each part is written (the crash tests stop the writer there).
    """
    schema = SCHEMAS[kind]
    metadata = {
        "units": json.dumps(schema.units),
        "source": source,
        "kind": kind.value,
        "raw_path": raw_path,
        "raw_sha256": sha256,
        "validation_report_id": report_id,
    }
    name = part_name(raw_path, sha256, run_id)
    table_root = lake_root / table_folder(source)
    if kind in (SourceKind.SUBJECTS, SourceKind.ENDPOINTS):
        part, file_schema = _write_part(frame, table_root, name, {}, metadata)
        return StagedVersion(source, raw_path, file_schema, False, (part,))
    written, file_schema = [], None
    for (subject, day), rows in _partitions(frame, subject_id):
        part, file_schema = _write_part(rows, table_root, name, {"subject_id": subject, "date": day}, metadata)
        written.append(part)
        if after_part is not None:
            after_part(part)
    if file_schema is None:  # no rows: nothing to add, the previous version still goes
        file_schema = _to_arrow(frame.drop(columns=[c for c in PARTITION_COLUMNS if c in frame])).schema
    return StagedVersion(source, raw_path, file_schema, True, tuple(written))


def _partitions(frame: pd.DataFrame, subject_id: str | None):
    """Yield ((subject, YYYY-MM-DD), rows) without the partition columns."""
    if frame.empty:  # no partition at all (an empty file is quarantined before; this is a guard)
        return
    if "subject_id" in frame:
        # Integer days, formatted once per partition: strftime per row costs more than the write.
        days = frame["timestamp"].array.asi8 // NS_PER_DAY
        rows = frame.drop(columns=["subject_id"])
        for (subject, day), index in rows.groupby([frame["subject_id"], days], sort=True).groups.items():
            yield (subject, _day_label(day)), rows.loc[index]
        return
    # A high-rate file: one subject, sorted in time, tens of millions of rows. Binary search for
    # day boundaries and slice (views), instead of formatting a date string per sample.
    nanoseconds = frame["timestamp"].array.asi8
    first_day, last_day = nanoseconds[0] // NS_PER_DAY, nanoseconds[-1] // NS_PER_DAY
    cuts = np.searchsorted(nanoseconds, np.arange(first_day, last_day + 2) * NS_PER_DAY, side="left")
    for day, start, stop in zip(range(first_day, last_day + 1), cuts[:-1], cuts[1:], strict=True):
        if stop > start:
            yield (subject_id, _day_label(day)), frame.iloc[start:stop]


def _day_label(day: int) -> str:
    """Days since the epoch -> ``YYYY-MM-DD`` (UTC)."""
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


def _write_part(frame: pd.DataFrame, table_root: Path, name: str, partition: dict[str, str],
                metadata: dict[str, str]) -> tuple[Part, pa.Schema]:
    """Write one part straight to its final name: until a commit lists it, no reader sees it, and
    the name is this run's alone, so no temporary name and rename are needed."""
    table = _to_arrow(frame)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    relative = "/".join([*(f"{key}={value}" for key, value in partition.items()), name])
    target = table_root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, coerce_timestamps="us", allow_truncated_timestamps=True,
                   compression="zstd", compression_level=1, **_encodings(table.schema))
    return Part(relative, target.stat().st_size, table.num_rows, partition), _file_schema(table.schema)


def _file_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as stored: timestamps in microseconds (what the write coerces them to)."""
    return pa.schema([pa.field(f.name, pa.timestamp("us", tz=f.type.tz)) if pa.types.is_timestamp(f.type) else f
                      for f in schema])


def _encodings(schema: pa.Schema) -> dict:
    """Dictionary-encode text only. Sensor floats and timestamps rarely repeat, so trying a
    dictionary first wastes most of the write; byte-stream-split floats and delta-coded times
    compress better and faster (DuckDB, Spark and pyarrow all read both)."""
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    encoding = {}
    for f in schema:
        if pa.types.is_floating(f.type):
            encoding[f.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_timestamp(f.type) or pa.types.is_int64(f.type):
            encoding[f.name] = "DELTA_BINARY_PACKED"
    return {"use_dictionary": text, "column_encoding": encoding}


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Column by column from numpy, which shares memory where Arrow can (floats without nulls)."""
    arrays, names = [], []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            array = pa.array(series.array.asi8, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
            if series.isna().any():
                array = pa.array(series, type=pa.timestamp("ns", tz="UTC"))
        elif series.dtype.kind == "f":
            array = pa.array(series.to_numpy(), from_pandas=True)
        else:
            array = pa.array(series, from_pandas=True)
        if pa.types.is_null(array.type):  # a column with no value in this file: typed as text, as in others
            array = array.cast(pa.string())
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def commit_version(lake_root: Path, staged: StagedVersion | None, *, source: str, raw_path: str, sha256: str,
                   report_id: str | None) -> int | None:
    """Make one raw file version the only one visible, in one transaction; return the table version.

    Call it under `table_lock`.

    Adds `staged`'s parts (none for a quarantined or failed version: its rows are not curated)
    and removes every other part of `raw_path` that the table lists: the previous version's,
    or those an interrupted attempt at this version committed. Returns None when there was
    nothing to commit (no table yet and nothing to add, or nothing to change).
    """
    from deltalake import DeltaTable, Schema
    from deltalake._internal import RemoveAction
    from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

    table_root = lake_root / table_folder(source)
    adds = [] if staged is None else staged.parts
    now_ms = int(time.time() * 1000)
    add_actions = [AddAction(part.path, part.size_bytes, part.partition, now_ms, True,
                             json.dumps({"numRecords": part.rows})) for part in adds]
    properties = CommitProperties(custom_metadata={"raw_path": raw_path, "raw_sha256": sha256,
                                                   "validation_report_id": report_id or ""})
    if not _is_table(table_root):
        if staged is None or not adds:
            return None
        partition_by = list(PARTITION_COLUMNS) if staged.partitioned else []
        create_table_with_add_actions(str(table_root), Schema.from_arrow(_table_schema(staged)), add_actions,
                                      mode="error", partition_by=partition_by, commit_properties=properties)
        return DeltaTable(str(table_root)).version()
    table = DeltaTable(str(table_root))
    keep = {part.path for part in adds}
    key = _path_key(raw_path)
    partition_names = table.metadata().partition_columns
    removes = []
    for row in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        match = _PART_NAME.fullmatch(row["path"].rsplit("/", 1)[-1])
        if match and match["path_key"] == key and row["path"] not in keep:
            values = {name: row.get(f"partition.{name}") for name in partition_names}
            removes.append(RemoveAction(row["path"], True, now_ms, row["size_bytes"], values or None))
    if not add_actions and not removes:
        return None
    schema = pa.schema(table.schema().to_arrow())
    if staged is not None and adds:
        schema = pa.unify_schemas([schema, _table_schema(staged)], promote_options="permissive")
    table.create_write_transaction([*add_actions, *removes], mode="append", schema=schema,
                                   partition_by=partition_names, commit_properties=properties)
    return DeltaTable(str(table_root)).version()


def adopt_parts(lake_root: Path, source: str, parts: list[str]) -> int | None:
    """Make a source folder written before the lake had tables (plain Parquet parts) a table.

    Only `parts` (relative to the lake root: the catalog's current outcomes) are committed, in
    one commit; any other part in the folder, such as one an interrupted write left behind,
    is listed by no snapshot and removed by `sweep_orphans`. Call it under `table_lock`;
    returns the table version, or None when the folder is a table already or `parts` is empty.
    """
    from deltalake import Schema
    from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

    table_root = lake_root / table_folder(source)
    if _is_table(table_root) or not parts:
        return None
    prefix = f"{table_folder(source)}/"
    relative = sorted(part.removeprefix(prefix) for part in parts)
    now_ms = int(time.time() * 1000)
    actions, schemas = [], []
    for path in relative:
        partition = dict(segment.split("=", 1) for segment in path.split("/")[:-1])
        metadata = pq.read_metadata(table_root / path)
        schemas.append(_file_schema(metadata.schema.to_arrow_schema().remove_metadata()))
        actions.append(AddAction(path, (table_root / path).stat().st_size, partition, now_ms, True,
                                 json.dumps({"numRecords": metadata.num_rows})))
    partitioned = bool(actions[0].partition_values)
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    if partitioned:
        schema = schema.append(pa.field("subject_id", pa.string())).append(pa.field("date", pa.string()))
    create_table_with_add_actions(str(table_root), Schema.from_arrow(schema), actions, mode="error",
                                  partition_by=list(PARTITION_COLUMNS) if partitioned else [],
                                  commit_properties=CommitProperties(custom_metadata={"adopted_parts": len(actions)}))
    return 0


def is_legacy_folder(lake_root: Path, source: str) -> bool:
    """Whether a source folder holds parts but no table (a lake written by an earlier release)."""
    table_root = lake_root / table_folder(source)
    return table_root.is_dir() and not _is_table(table_root) and any(table_root.rglob("part-*.parquet"))


def discard(lake_root: Path, staged: StagedVersion) -> None:
    """Delete staged parts that will not be committed (their version was superseded first)."""
    for part in staged.parts:
        (lake_root / table_folder(staged.source) / part.path).unlink(missing_ok=True)


def _table_schema(staged: StagedVersion) -> pa.Schema:
    schema = staged.schema.remove_metadata()
    if staged.partitioned:
        schema = schema.append(pa.field("subject_id", pa.string())).append(pa.field("date", pa.string()))
    return schema


def _is_table(table_root: Path) -> bool:
    return (table_root / "_delta_log").is_dir() and any((table_root / "_delta_log").glob("*.json"))


@contextmanager
def table_lock(lake_root: Path, source: str) -> Iterator[None]:
    """One committer per table at a time on this host (held for the milliseconds of a commit).

    Not re-entrant: `commit_version` runs under it, and the caller takes it once around the
    commit and whatever must happen in the same order (the catalog's outcome).
    """
    folder = lake_root / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{source}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def lake_versions(lake_root: Path, sources: list[str] | None = None) -> dict[str, int]:
    """The current version of each source's table (all tables when `sources` is None): a snapshot
    to read with, and to record with what was built from it."""
    from deltalake import DeltaTable

    if sources is None:
        sources = sorted(p.name.removeprefix("source=") for p in lake_root.glob("source=*") if _is_table(p))
    return {source: DeltaTable(str(lake_root / table_folder(source))).version()
            for source in sources if _is_table(lake_root / table_folder(source))}


def _snapshot_files(lake_root: Path, source: str, version: int | None,
                    subject_id: str | None = None) -> tuple[list[str], pa.Schema] | None:
    """Files (relative to the table) and schema of a table version; None if there is no table."""
    from deltalake import DeltaTable

    table_root = lake_root / table_folder(source)
    if not _is_table(table_root):
        return None
    table = DeltaTable(str(table_root), version=version)
    actions = pa.table(table.get_add_actions(flatten=True))
    if subject_id is not None:
        if "partition.subject_id" not in actions.column_names:
            return [], pa.schema([])
        actions = actions.filter(pc.equal(actions["partition.subject_id"], subject_id))
    partitions = set(table.metadata().partition_columns)  # not stored in the files: from the paths
    schema = pa.schema([f for f in pa.schema(table.schema().to_arrow()) if f.name not in partitions])
    return sorted(actions["path"].to_pylist()), schema


def _read_files(table_root: Path, files: list[str], schema: pa.Schema) -> pa.Table:
    import pyarrow.dataset as ds

    return ds.dataset([str(table_root / f) for f in files], schema=schema, format="parquet").to_table()


def read_subject(lake_root: Path, source: str, subject_id: str, version: int | None = None) -> pd.DataFrame | None:
    """All curated rows of one subject from one source, in time order (``None`` if there are none).

    Reads the files that the table's snapshot (`version`, default the latest) lists in the
    subject's partitions.
    """
    snapshot = _snapshot_files(lake_root, source, version, subject_id)
    if snapshot is None or not snapshot[0]:
        return None
    frame = _read_files(lake_root / table_folder(source), *snapshot).to_pandas()
    frame.insert(0, "subject_id", subject_id)
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)


def read_table(lake_root: Path, source: str, version: int | None = None) -> pd.DataFrame | None:
    """A study-level curated table (subjects, endpoints), as of `version` (default the latest)."""
    snapshot = _snapshot_files(lake_root, source, version)
    if snapshot is None or not snapshot[0]:
        return None
    return _read_files(lake_root / table_folder(source), *snapshot).to_pandas()


def subject_parts(lake_root: Path, sources: list[str], subject_id: str,
                  versions: dict[str, int] | None = None) -> list[str]:
    """Paths of a subject's curated parts across ``sources`` (relative to the lake root) in a
    snapshot (`versions`, default the latest): they change exactly when its data does."""
    names = []
    for source in sources:
        snapshot = _snapshot_files(lake_root, source, (versions or {}).get(source), subject_id)
        if snapshot is not None:
            names += [f"{table_folder(source)}/{path}" for path in snapshot[0]]
    return names


def table_parts(lake_root: Path, source: str, version: int | None = None) -> list[str]:
    """Paths of every part of a table's snapshot, relative to the lake root."""
    snapshot = _snapshot_files(lake_root, source, version)
    return [] if snapshot is None else [f"{table_folder(source)}/{path}" for path in snapshot[0]]


def sweep_orphans(lake_root: Path, run_is_live: Callable[[str], bool], recorded: set[str]) -> list[str]:
    """Delete parts no commit will ever list: written by a run that is dead, listed by no table's
    current snapshot and recorded by no catalog outcome (`recorded`, paths relative to the lake
    root; superseded versions' parts stay for time travel). Returns what was deleted.

    A live run's parts are never touched, whatever their age: they may be about to be committed.
    Unlisted parts without a run id were left by an earlier release's interrupted writes (its
    runs are all over once its lake has been adopted) and are removed too.
    """
    removed: list[str] = []
    if not lake_root.is_dir():
        return removed
    liveness: dict[str, bool] = {}
    for table_root in sorted(lake_root.glob("source=*")):
        if not _is_table(table_root):  # an earlier release's folder, not adopted yet: nothing is listed
            continue
        listed = set(table_parts(lake_root, table_root.name.removeprefix("source=")))
        for path in table_root.rglob("part-*.parquet"):
            relative = path.relative_to(lake_root).as_posix()
            match = _PART_NAME.fullmatch(path.name)
            if match is None or relative in listed or relative in recorded:
                continue
            run_id = match["run_id"]
            if run_id is not None and run_id not in liveness:
                liveness[run_id] = run_is_live(run_id)
            if run_id is None or not liveness[run_id]:
                path.unlink(missing_ok=True)
                removed.append(relative)
    return removed
