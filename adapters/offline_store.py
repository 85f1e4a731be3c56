"""Feast offline store: DuckDB with an ASOF join for point-in-time retrieval.

Feast's own DuckDB store builds its point-in-time join in ibis: per feature view, a range join of
every entity row with every feature row of its subject inside the TTL, then a window function
to keep the latest. Its cost grows with the rows inside each TTL, and ibis compiles the query on
every call. DuckDB's ``ASOF LEFT JOIN`` finds, for each entity row, the latest feature row at or
before its time in one merge of two sorted inputs: some 5x faster on the benchmark's 100,000
entity rows over eight views (``benchmarks/retrieval.py``), with the same semantics, checked
row by row against a brute-force reference in ``tests/features/test_point_in_time.py``:

* the latest row with ``event_timestamp <= t`` for each entity row at time ``t``; ties on
  ``event_timestamp`` broken by the latest ``created_timestamp`` (the feature rows are first
  reduced to one row per key and time);
* a row older than the view's TTL (``t - event_timestamp > ttl``) gives nulls, never a stale
  value; an entity row before any feature row gives nulls; no entity row is ever dropped, and
  rows come back in the entity frame's order;
* times are compared as integer nanoseconds since the epoch: no rounding of entity times.

Everything else is Feast's DuckDB store, to which this one hands over the cases it does not
cover: an entity frame given as SQL, a source other than local Parquet files, on-demand views in
substrait mode, and ``filter_by_created_timestamp`` (an extra predicate an ASOF join cannot take).

Select it in ``feature_store.yaml``::

    offline_store:
      type: adapters.offline_store.AsofDuckDBOfflineStore
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.data_format import DeltaFormat
from feast.errors import SavedDatasetLocationAlreadyExists
from feast.feature_view import FeatureView
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource, SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_pa
from pydantic import StrictStr

ROW = "__entity_row"
TIME_NS = "__entity_time_ns"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: StrictStr = "adapters.offline_store.AsofDuckDBOfflineStore"


@dataclass(frozen=True)
class ViewQuery:
    """What one feature view contributes: its Parquet file, keys, times, TTL and output columns."""

    path: str
    join_keys: dict[str, str]  # feature-table column -> entity-frame column
    timestamp: str
    created: str | None
    ttl_ns: int | None
    columns: dict[str, str]  # feature-table column -> output column
    types: dict[str, pa.DataType]  # feature-table column -> its Arrow type
    unwritten_log: bool = False  # a push log nothing was pushed to yet: no file, no rows


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store, its historical retrieval done with ``ASOF LEFT JOIN``."""

    @staticmethod
    def get_historical_features(config: RepoConfig, feature_views: list[FeatureView], feature_refs: list[str],
                                entity_df, registry, project: str, full_feature_names: bool = False,
                                filter_by_created_timestamp: bool = False) -> RetrievalJob:
        fold_push_logs(feature_views, config.repo_path)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        covered = (isinstance(entity_df, pd.DataFrame) and not filter_by_created_timestamp
                   and all(_local_parquet(view) for view in feature_views)
                   and not any(odfv.mode == "substrait" for odfv in odfvs))
        if not covered:
            return DuckDBOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names=full_feature_names, filter_by_created_timestamp=filter_by_created_timestamp)
        entity_schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        time_column = offline_utils.infer_event_timestamp_from_entity_df(entity_schema)
        entities = entity_df.reset_index(drop=True).copy()
        entities[time_column] = _utc(entities[time_column])
        queries = [_view_query(view, feature_refs, full_feature_names, config.repo_path) for view in feature_views]
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[column for column in entities.columns if column != time_column],
            min_event_timestamp=entities[time_column].min().to_pydatetime(),
            max_event_timestamp=entities[time_column].max().to_pydatetime(),
        )
        return AsofRetrievalJob(entities, time_column, queries,
                                [odfv for odfv in odfvs if odfv.mode != "substrait"], full_feature_names, metadata)

    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source, join_key_columns: list[str],
                                        feature_name_columns: list[str], timestamp_field: str,
                                        created_timestamp_column: str | None, start_date: datetime,
                                        end_date: datetime) -> RetrievalJob:
        """Feast's, except that a push log not yet written reads as empty (``feast materialize`` before any push)."""
        if unwritten_push_log(config, data_source, join_key_columns):
            return EmptyRetrievalJob.pulled(join_key_columns, feature_name_columns, timestamp_field,
                                            created_timestamp_column)
        return DuckDBOfflineStore.pull_latest_from_table_or_query(
            config, _resolved(data_source, config.repo_path), join_key_columns, feature_name_columns, timestamp_field,
            created_timestamp_column, start_date, end_date)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source, join_key_columns: list[str],
                                     feature_name_columns: list[str], timestamp_field: str,
                                     created_timestamp_column: str | None = None, start_date: datetime | None = None,
                                     end_date: datetime | None = None) -> RetrievalJob:
        """Feast's, except that a push log not yet written reads as empty."""
        if unwritten_push_log(config, data_source, join_key_columns):
            return EmptyRetrievalJob.pulled(join_key_columns, feature_name_columns, timestamp_field,
                                            created_timestamp_column)
        return DuckDBOfflineStore.pull_all_from_table_or_query(
            config, _resolved(data_source, config.repo_path), join_key_columns, feature_name_columns, timestamp_field,
            created_timestamp_column, start_date, end_date)

    @staticmethod
    def offline_write_batch(config: RepoConfig, feature_view: FeatureView, table: pa.Table, progress) -> None:
        """Append pushed rows to a view's push log (:func:`write_push`); Feast's DuckDB store otherwise."""
        if not _local_parquet(feature_view):
            DuckDBOfflineStore.offline_write_batch(config, feature_view, table, progress)
            return
        write_push(config, feature_view, table, progress)

    @staticmethod
    def read_push_log(config: RepoConfig, feature_view: FeatureView, columns: list[str] | None = None,
                      filters=None) -> pa.Table | None:
        """A push log's rows, pushes not yet folded included (:func:`read_push_log`)."""
        return read_push_log(config, feature_view, columns, filters)


def write_push(config: RepoConfig, feature_view: FeatureView, table: pa.Table, progress) -> None:
    """Append pushed rows to a view's push log, idempotently and atomically (see :class:`PushLog`).

    What ``FeatureStore.push(..., to=PushMode.OFFLINE)`` ends in, in this store and in the
    project's Spark store. Feast's stores append to the Parquet file itself: a rewrite of the
    whole log per push (DuckDB), so a stream consumer's cost per commit grows with the log, a
    redelivered event (a consumer restarted before it committed) is stored twice, and the file
    must exist already (Spark cannot append to a single file at all). Here a push costs one
    small part, a row replaces any stored row with the same join keys and event time when the
    parts are folded into the log, and the log is created by the first fold.
    """
    PushLog.of(feature_view, config.repo_path).append(table)
    if progress is not None:
        progress(table.num_rows)


def read_push_log(config: RepoConfig, feature_view: FeatureView, columns: list[str] | None = None,
                  filters=None) -> pa.Table | None:
    """A push log's rows, pushes not yet folded included, without folding (for live scoring, which
    must not wait on a fold); None before the first push. See :meth:`PushLog.read`."""
    return PushLog.of(feature_view, config.repo_path).read(columns, filters)


class PushLog:
    """The offline log of a push source: one Parquet file, plus the parts pushed since its last fold.

    A push writes one small part into a hidden folder beside the file (``.<file>.pending``): its
    cost does not grow with the log, which matters to a stream consumer that pushes every second.
    Parts are *folded* into the file (an upsert: the last pushed row of each join key and event
    time wins; the new file published by rename) when ``FOLD_PARTS`` have gathered or the oldest
    is ``FOLD_AGE_S`` old, and before any reader of the file: Feast's pulls and point-in-time
    retrieval through this store and the project's materialization fold first, so they see every
    push. :meth:`read` reads the file and the parts without folding, for the hot path.

    Writers (the HTTP API and a stream consumer, in other processes) take an exclusive ``flock``;
    readers take none: a part folded away while it was being read makes the read start again.

    The log's column types are the view's declared ones (``schema``, see :func:`push_log_schema`),
    never those a batch's values suggest: a batch in which a text column is all missing (an event
    with some vital signs only) would otherwise store it as Arrow ``null``, and the next part with
    a string there could not be folded into it. Every part is written in ``schema``, and a file or
    part stored in other types (by an older version) is cast to it when folded or read.
    """

    FOLD_PARTS = 32
    FOLD_AGE_S = 60.0

    def __init__(self, path: Path, key_columns: list[str], schema: pa.Schema | None = None):
        self.path = path
        self.key_columns = key_columns
        self.schema = schema
        self.pending = path.with_name(f".{path.name}.pending")

    @classmethod
    def of(cls, view: FeatureView, repo_path: Path | str | None) -> PushLog:
        """The push log of a registered view (its join keys known) over a local Parquet file."""
        if not view.join_keys:  # a view not read from the registry: rows of all subjects would merge
            raise ValueError(f"feature view {view.name} has no join keys: push through a registered view")
        source = view.batch_source
        return cls(source_path(source, repo_path), [*view.join_keys, source.timestamp_field], push_log_schema(view))

    def conform(self, table: pa.Table) -> pa.Table:
        """``table`` in the log's declared schema: its columns in order, each cast to its declared
        type, a declared feature it lacks as typed nulls. Nothing is written.

        Raises
        ------
        ValueError
            A column the view does not declare, a missing join key or event time, or a value that
            does not fit its column's type (the column named); nothing of the table should be stored.
        """
        if self.schema is None:
            return table
        unknown = [name for name in table.column_names if name not in self.schema.names]
        missing = [name for name in self.key_columns if name not in table.column_names]
        problems = ([f"columns not declared by the view: {', '.join(unknown)}"] if unknown else []) + \
                   ([f"missing {', '.join(missing)}"] if missing else [])
        if problems:
            raise ValueError(f"push log {self.path.name}: {'; '.join(problems)}")
        return _in_schema(table, self.schema, f"push log {self.path.name}")

    def parts(self) -> list[Path]:
        """The pending parts, oldest first."""
        return sorted(self.pending.glob("*.parquet"))

    def exists(self) -> bool:
        return self.path.is_file() or bool(self.parts())

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def append(self, table: pa.Table) -> None:
        """Write ``table`` (in the declared schema: :meth:`conform`) as the newest part; fold when
        enough parts have gathered or grown old."""
        table = self.conform(table)  # before the lock and any write: a refused table leaves no trace
        with self._locked():
            parts = self.parts()
            self.pending.mkdir(exist_ok=True)
            number = int(parts[-1].stem) + 1 if parts else 1  # under the lock: names order the pushes
            _write_atomically(table, self.pending / f"{number:012d}.parquet")
            parts = self.parts()
            if len(parts) >= self.FOLD_PARTS or time.time() - parts[0].stat().st_mtime >= self.FOLD_AGE_S:
                self._fold(parts)

    def fold(self) -> bool:
        """Fold every pending part into the file; whether the file exists afterwards."""
        if self.parts():
            with self._locked():
                self._fold(self.parts())
        return self.path.is_file()

    def _fold(self, parts: list[Path]) -> None:
        if not parts:
            return
        tables = [pq.read_table(self.path)] if self.path.is_file() else []
        tables += [pq.read_table(part) for part in parts]
        _write_atomically(_last_per_key(_concat(tables, self.schema), self.key_columns), self.path)
        for part in parts:  # a crash before this leaves parts that fold again to the same rows
            part.unlink()

    def read(self, columns: list[str] | None = None, filters=None) -> pa.Table | None:
        """The log's rows (file and pending parts, ``filters`` applied), one per key, the last pushed
        winning; None when nothing was ever pushed."""
        for _ in range(5):
            try:
                sources = ([self.path] if self.path.is_file() else []) + self.parts()
                tables = [read_parquet_whole(source, columns, filters) for source in sources]
            except FileNotFoundError:  # folded away meanwhile: the file holds it now
                continue
            if not tables:
                return None
            schema = self.schema
            if schema is not None and columns is not None:
                schema = pa.schema([schema.field(name) for name in columns])
            return _last_per_key(_concat(tables, schema), self.key_columns)
        raise RuntimeError(f"push log {self.path}: parts kept being folded away while it was read")


def _concat(tables: list[pa.Table], schema: pa.Schema | None = None) -> pa.Table:
    """Tables of one log, in push order, in ``schema`` (the declared one); without it, in the first
    table's columns and the types that hold every table's values (a column stored as Arrow ``null``
    takes the type of another table's values)."""
    if schema is None:
        schema = pa.unify_schemas([table.schema for table in tables], promote_options="permissive")
        schema = pa.schema([schema.field(name) for name in tables[0].column_names])
    return pa.concat_tables([_in_schema(table, schema, "push log") for table in tables])


def _in_schema(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """``table``'s columns in ``schema``'s order and types; a column it lacks as typed nulls.

    Raises ValueError naming the column whose values do not fit its type (``what`` names the table).
    """
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        try:
            columns.append(table.column(target.name).cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(f"{what}: column {target.name} of type {table.schema.field(target.name).type} does "
                             f"not fit its declared type {target.type}: {error}") from error
    return pa.Table.from_arrays(columns, schema=schema)


def push_log_schema(view: FeatureView) -> pa.Schema:
    """The Arrow schema of a pushed view's log, from the view's declared fields (its registered
    entity columns, event and created times as UTC microseconds, then its features): what every
    part and the folded file are written in, whatever a batch's values are."""
    source = view.batch_source
    stamp = pa.timestamp("us", tz="UTC")  # what pushes send (serving.events.live_rows) and Parquet keeps
    fields = [pa.field(column.name, feast_value_type_to_pa(column.dtype.to_value_type()))
              for column in view.entity_columns]
    fields.append(pa.field(source.timestamp_field, stamp))
    if source.created_timestamp_column:
        fields.append(pa.field(source.created_timestamp_column, stamp))
    fields += [pa.field(feature.name, feast_value_type_to_pa(feature.dtype.to_value_type()))
               for feature in view.features]
    return pa.schema(fields)


def _last_per_key(table: pa.Table, key_columns: list[str]) -> pa.Table:
    """The last row of each key, in the order of those last rows (row numbers are explicit
    because SQL gives a table scan no order)."""
    numbered = table.select(key_columns).append_column(ROW, pa.array(np.arange(table.num_rows)))
    connection = duckdb.connect()
    try:
        connection.register("numbered", numbered)
        last = connection.execute(
            f"SELECT max({ROW}) AS row FROM numbered GROUP BY {', '.join(map(_quote, key_columns))} "
            "ORDER BY row").fetchnumpy()["row"]
    finally:
        connection.close()
    return table.take(pa.array(last, type=pa.int64()))


def read_parquet_whole(path: Path, columns: list[str] | None, filters) -> pa.Table:
    """One Parquet file, opened once: Arrow opens a path again between its footer and its pages,
    and a fold renaming a new file over it in between would pair one file's footer with the
    other's pages. An open file stays the version it was when opened."""
    with path.open("rb") as handle:
        return pq.read_table(handle, columns=columns, filters=filters)


def _write_atomically(table: pa.Table, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, target)


class AsofRetrievalJob(RetrievalJob):
    """A point-in-time retrieval, run when its result is asked for (``to_df``, ``to_arrow``)."""

    def __init__(self, entities: pd.DataFrame, time_column: str, queries: list[ViewQuery],
                 on_demand_feature_views: list[OnDemandFeatureView], full_feature_names: bool,
                 metadata: RetrievalMetadata) -> None:
        super().__init__()
        self._entities = entities
        self._time_column = time_column
        self._queries = queries
        self._on_demand_feature_views = on_demand_feature_views
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def to_df(self, validation_reference=None, timeout: int | None = None) -> pd.DataFrame:
        """Feast's ``to_df`` (on-demand views applied, validation if asked) without its extra copy:
        Feast resets the index of a frame that already has a fresh one, copying every column."""
        arrow = self.to_arrow(validation_reference=validation_reference, timeout=timeout)
        return arrow.to_pandas(split_blocks=True)

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas(split_blocks=True)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        result = pa.Table.from_pandas(self._entities, preserve_index=False)
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone = 'UTC'")  # naive Parquet timestamps are UTC
            _load_entities(connection, self._entities, self._time_column, self._queries)

            def view_features(query: ViewQuery) -> pa.Table:
                if query.unwritten_log:  # every entity row gets nulls, as from a table without its key
                    return pa.table({output: pa.nulls(len(self._entities), query.types[column])
                                     for column, output in query.columns.items()})
                cursor = connection.cursor()  # one per thread, on the same in-memory database
                try:
                    cursor.execute("SET TimeZone = 'UTC'")
                    rows_in_file = cursor.sql(_asof_sql(query)).to_arrow_table().column("row_in_file")
                finally:
                    cursor.close()
                return _take_features(query, rows_in_file)

            # Views are independent; DuckDB and the Parquet reader release the GIL, so while one
            # view's join runs another's columns are read.
            with ThreadPoolExecutor(max_workers=min(4, len(self._queries) or 1)) as pool:
                for features in pool.map(view_features, self._queries):
                    for name in features.column_names:
                        result = result.append_column(name, features.column(name))
        finally:
            connection.close()
        return result

    def persist(self, storage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        """Write the result as one Parquet file (a saved dataset), published by rename."""
        if not isinstance(storage, SavedDatasetFileStorage):
            raise ValueError(f"{type(storage).__name__}: this offline store saves datasets to local files only")
        target = Path(storage.file_options.uri)
        if target.exists() and not allow_overwrite:
            raise SavedDatasetLocationAlreadyExists(location=str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        pq.write_table(self.to_arrow(), temporary)
        os.replace(temporary, target)


class EmptyRetrievalJob(RetrievalJob):
    """No rows, with the columns asked for (a push log before its first push)."""

    def __init__(self, columns: list[str]):
        self._columns = columns

    @classmethod
    def pulled(cls, join_key_columns: list[str], feature_name_columns: list[str], timestamp_field: str,
               created_timestamp_column: str | None) -> EmptyRetrievalJob:
        """The columns a ``pull_*_from_table_or_query`` returns, without rows."""
        created = [created_timestamp_column] if created_timestamp_column else []
        return cls([*join_key_columns, *feature_name_columns, timestamp_field, *created])

    @property
    def full_feature_names(self) -> bool:
        return False

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return None

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return pd.DataFrame(columns=self._columns)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return pa.table({column: pa.array([], type=pa.null()) for column in self._columns})

    def persist(self, storage, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        raise ValueError("nothing to persist: the push log has no rows yet")


def is_push_log(source) -> bool:
    """A push source's log (its batch source tagged ``pushed``) in a local Parquet file, read through
    a ``FileSource`` or, in a repo on Feast's Spark store, a ``SparkSource`` (which reads the file as
    it is: folding first matters there too)."""
    path = getattr(source, "path", None)
    return source.tags.get("pushed") == "true" and bool(path) and "://" not in path


def _resolved(source, repo_path: Path | str | None):
    """``source`` with its file's path resolved against the repo folder, for Feast's own readers,
    which read a relative path against the working directory (a study's views name their tables
    relative to its repo folder)."""
    path = getattr(source, "path", None)
    if not path or "://" in path or Path(path).is_absolute() or repo_path is None:
        return source
    resolved = copy.deepcopy(source)
    resolved.file_options.uri = str(source_path(source, repo_path))
    return resolved


def source_path(source: FileSource, repo_path: Path | str | None) -> Path:
    path = Path(source.path)
    return Path(repo_path) / path if not path.is_absolute() and repo_path is not None else path


def unwritten_push_log(config: RepoConfig, source, join_key_columns: list[str]) -> bool:
    """Fold a push log's pending parts into its file (see :class:`PushLog`), before the file is read;
    whether it still has no rows (nothing pushed yet). False for any other source."""
    if not is_push_log(source):
        return False
    log = PushLog(source_path(source, config.repo_path), [*join_key_columns, source.timestamp_field])
    return not log.fold()


def fold_push_logs(views, repo_path: Path | str | None) -> None:
    """Fold the pending parts of every pushed view among ``views`` into its file, before the file is read."""
    for view in views:
        if is_push_log(view.batch_source):
            PushLog.of(view, repo_path).fold()


def feature_event_times(views: list[FeatureView], entities: pd.DataFrame, repo_path: Path | None) -> pd.DataFrame:
    """When each view's value for each entity row was measured: the event time of the row that
    point-in-time retrieval picks (null when none, or past the TTL), one column per view.

    ``entities`` has ``subject_id`` (the join keys) and ``event_timestamp``; the result has the
    same rows in the same order, columns named after the views.
    """
    fold_push_logs(views, repo_path)
    frame = entities.reset_index(drop=True).copy()
    frame["event_timestamp"] = _utc(frame["event_timestamp"])
    queries = [_view_query(view, [], False, repo_path) for view in views]
    if not all(_local_parquet(view) for view in views):
        raise ValueError("feature times need feature views over local Parquet files")
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        _load_entities(connection, frame, "event_timestamp", queries)
        times = {}
        for view, query in zip(views, queries, strict=True):
            nanoseconds = connection.sql(_asof_sql(query)).to_arrow_table().column("event_time_ns")
            times[view.name] = pd.to_datetime(nanoseconds.to_pandas(), unit="ns", utc=True)
    finally:
        connection.close()
    return pd.DataFrame(times)


def latest_rows(view: FeatureView, start: datetime, end: datetime, repo_path: Path | None) -> pa.Table:
    """The latest row per entity of a view's Parquet table with ``start <= event_timestamp <= end``.

    What Feast's ``pull_latest_from_table_or_query`` selects for materialization (ties on the
    event time broken by the latest ``created_timestamp``): the join keys, every feature of the
    view under its feature name, and ``__time_ns``, the event time in nanoseconds since the epoch.
    """
    if not _local_parquet(view):
        raise ValueError(f"feature view {view.name}: its source is not a local Parquet file")
    fold_push_logs([view], repo_path)
    query = _view_query(view, [f"{view.projection.name_to_use()}:{f.name}" for f in view.features], False,
                        repo_path)
    keys = ", ".join(_quote(column) for column in query.join_keys)
    latest_first = f"{_quote(query.timestamp)} DESC" + (f", {_quote(query.created)} DESC NULLS LAST"
                                                        if query.created else "")
    # Keys and times only through the window; the feature columns are then taken by row number.
    sql = (f"SELECT {keys}, epoch_ns({_quote(query.timestamp)}::TIMESTAMPTZ) AS __time_ns, file_row_number"
           f" FROM read_parquet('{_literal(query.path)}', file_row_number = true)"
           f" WHERE {_quote(query.timestamp)}::TIMESTAMPTZ BETWEEN $start AND $end"
           f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {latest_first}) = 1"
           f" ORDER BY {keys}")
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        latest = connection.execute(sql, {"start": _aware(start), "end": _aware(end)}).to_arrow_table()
    finally:
        connection.close()
    features = _take_features(query, latest.column("file_row_number"))
    keys_and_time = latest.drop_columns(["file_row_number"])
    for name in features.column_names:
        keys_and_time = keys_and_time.append_column(name, features.column(name))
    return keys_and_time


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _local_parquet(view: FeatureView) -> bool:
    """The view reads one local Parquet file: through a ``FileSource`` (not Delta) or Feast's
    ``SparkSource`` with ``file_format="parquet"`` (a repo on Spark reads the same tables)."""
    source = view.batch_source
    path = getattr(source, "path", None)
    if not path or "://" in path or not path.endswith(".parquet"):
        return False
    if isinstance(source, FileSource):
        return not isinstance(source.file_format, DeltaFormat)
    return getattr(source, "file_format", None) == "parquet"


def _utc(stamps: pd.Series) -> pd.Series:
    """Entity times as UTC; naive times are taken as UTC, as Feast does."""
    stamps = stamps.infer_objects()
    if not pd.api.types.is_datetime64_any_dtype(stamps):
        return pd.to_datetime(stamps, utc=True)
    return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def _view_query(view: FeatureView, feature_refs: list[str], full_feature_names: bool,
                repo_path: Path | None) -> ViewQuery:
    source = view.batch_source
    raw = {mapped: original for original, mapped in source.field_mapping.items()}  # name -> file column
    prefix = view.projection.name_to_use()
    features = [ref.split(":", 1)[1] for ref in feature_refs if ref.split(":", 1)[0] == prefix]
    base = view.projection.name_alias or view.name
    join_keys = view.projection.join_key_map or {column.name: column.name for column in view.entity_columns}
    path = source_path(source, repo_path)
    ttl = view.ttl if isinstance(view.ttl, timedelta) and view.ttl else None
    return ViewQuery(
        path=str(path),
        join_keys={raw.get(key, key): entity_column for key, entity_column in join_keys.items()},
        timestamp=raw.get(source.timestamp_field, source.timestamp_field),
        created=raw.get(source.created_timestamp_column, source.created_timestamp_column) or None,
        ttl_ns=None if ttl is None else int(ttl / timedelta(microseconds=1)) * 1000,
        columns={raw.get(name, name): f"{base}__{name}" if full_feature_names else name for name in features},
        types={raw.get(field.name, field.name): feast_value_type_to_pa(field.dtype.to_value_type())
               for field in view.features if field.name in features},
        unwritten_log=is_push_log(source) and not path.exists(),  # folded already: parts would be in the file
    )


def _load_entities(connection, entities: pd.DataFrame, time_column: str, queries: list[ViewQuery]) -> None:
    """Copy the entity keys into a DuckDB table: an ASOF join scanning an Arrow view directly is
    some 200x slower than one on a table (DuckDB 1.5)."""
    keys = sorted({column for query in queries for column in query.join_keys.values()})
    missing = [key for key in keys if key not in entities.columns]
    if missing:
        raise ValueError(f"the entity frame has no column {missing}: add the join keys of the feature views asked for")
    stamps = entities[time_column]
    columns = {ROW: pa.array(np.arange(len(entities), dtype=np.int64)),
               TIME_NS: pa.array(stamps.dt.as_unit("ns").array.asi8, mask=stamps.isna().to_numpy())}
    columns.update({key: pa.Array.from_pandas(entities[key]) for key in keys})
    arrow = pa.table(columns)
    connection.register("entity_arrow", arrow)
    connection.execute(f"CREATE TABLE entities AS SELECT * FROM entity_arrow ORDER BY {ROW}")
    connection.unregister("entity_arrow")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _asof_sql(query: ViewQuery) -> str:
    """Per entity row, in order: the row number in the view's file of its latest row at or before
    it and that row's event time (ns), both null when there is none or it is older than the TTL.

    Only keys and times go through the join; the feature columns are then taken by row number
    (:func:`_take_features`), which keeps wide views (44 vital-sign columns) cheap.
    """
    keys = ", ".join(_quote(column) for column in query.join_keys)
    latest_first = f"{_quote(query.created)} DESC NULLS LAST" if query.created else "1"
    table = (
        f"SELECT {keys}, epoch_ns({_quote(query.timestamp)}::TIMESTAMPTZ) AS __time_ns, file_row_number"
        f" FROM read_parquet('{_literal(query.path)}', file_row_number = true)"
        f" WHERE {_quote(query.timestamp)} IS NOT NULL"
        f" QUALIFY row_number() OVER (PARTITION BY {keys}, {_quote(query.timestamp)} ORDER BY {latest_first}) = 1"
    )
    on = " AND ".join(f"e.{_quote(entity)} = f.{_quote(column)}" for column, entity in query.join_keys.items())
    fresh = "TRUE" if query.ttl_ns is None else f"e.{TIME_NS} - f.__time_ns <= {query.ttl_ns}"
    return (f"SELECT CASE WHEN {fresh} THEN f.file_row_number END AS row_in_file,"
            f" CASE WHEN {fresh} THEN f.__time_ns END AS event_time_ns"
            f" FROM entities e ASOF LEFT JOIN ({table}) f ON {on} AND e.{TIME_NS} >= f.__time_ns"
            f" ORDER BY e.{ROW}")


def _take_features(query: ViewQuery, rows_in_file: pa.ChunkedArray) -> pa.Table:
    """The view's feature columns at the given row numbers of its file (null row number: nulls)."""
    table = pq.read_table(query.path, columns=list(query.columns))
    picked = table.take(rows_in_file.combine_chunks())
    return picked.rename_columns([query.columns[column] for column in picked.column_names])
