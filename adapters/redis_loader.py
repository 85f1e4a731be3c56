"""Bulk load of a feature view's latest rows into Feast's Redis online store.

Feast materializes row by row in Python: each value goes through its generic type conversion
before it is written, about 4,000 online rows/s into Redis on the benchmark's eight views
(``benchmarks/retrieval.py``). This loader writes exactly what Feast writes, in Feast's layout,
so Feast reads it back (``get_online_features``, ``feast serve``) as if it had written it:

* one Redis hash per entity, keyed by Feast's own ``_redis_key(project, entity key)``;
* per feature a field ``mmh3("<view>:<feature>")`` holding the serialized ``ValueProto`` (an empty
  one for a null or NaN), and ``_ts:<view>`` holding the event time as a protobuf ``Timestamp``;
* a stored row whose event time is not older than the new one is kept (Feast's rule), so a
  load never overwrites a newer value pushed by a stream;
* ``key_ttl_seconds`` of the store configuration sets the hashes' expiry, as Feast does.

The latest row per entity in ``[start, end]`` (ties by the latest ``created_timestamp``) comes
from DuckDB (:func:`adapters.offline_store.latest_rows`), values are serialized a column at a
time with the protobuf classes' C implementation, and the writes go out in pipelined batches.
The materialized interval is then recorded in the registry as ``feast materialize`` records it,
so `feast materialize-incremental` continues from there. The equivalence with Feast's own
materialization, hash for hash and byte for byte, is a test (``tests/pipelines/test_redis_loader.py``).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from feast.feature_view import FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from adapters.offline_store import latest_rows

BATCH_ROWS = 2000
EMPTY = Value().SerializeToString()  # what Feast stores for a null


def load_latest(store, view: FeatureView, start: datetime, end: datetime, *, emptied: bool = False) -> int:
    """Write the latest row per entity of ``view`` in ``[start, end]`` to the Redis online store.

    ``emptied``: the view's online rows were just removed (a full reload), so there is no stored
    row to compare with and the read of stored event times is skipped.
    Returns the entity rows written (rows older than what is stored are counted as not written).
    """
    config = store.config
    client = store._get_provider().online_store._get_client(config.online_store)
    rows = latest_rows(view, start, end, config.repo_path)
    if rows.num_rows == 0:
        store.registry.apply_materialization(view, store.project, start, end)
        return 0
    view_name = _versioned_fv_name(view, config)
    time_field = f"_ts:{view_name}"
    keys = _entity_keys(store, view, rows)
    fields = [_mmh3(f"{view_name}:{feature.name}") for feature in view.features]
    columns = [_serialized(rows.column(feature.name), feature.dtype.to_value_type()) for feature in view.features]
    times_ns = rows.column("__time_ns").to_numpy()
    stamps = [_timestamp(int(ns)) for ns in times_ns]
    ttl_s = getattr(config.online_store, "key_ttl_seconds", None)
    written = 0
    for begin in range(0, len(keys), BATCH_ROWS):
        batch = range(begin, min(begin + BATCH_ROWS, len(keys)))
        if emptied:
            stored = [None] * len(batch)
        else:
            with client.pipeline(transaction=False) as pipe:
                for i in batch:
                    pipe.hget(keys[i], time_field)
                stored = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for i, previous in zip(batch, stored, strict=True):
                if previous is not None and _nanoseconds(previous) >= times_ns[i]:
                    continue  # a newer (or the same) row is stored already: Feast's rule
                mapping = {time_field: stamps[i].SerializeToString()}
                mapping.update(zip(fields, (column[i] for column in columns), strict=True))
                pipe.hset(keys[i], mapping=mapping)
                if ttl_s:
                    pipe.expire(name=keys[i], time=ttl_s)
                written += 1
            pipe.execute()
    store.registry.apply_materialization(view, store.project, start, end)
    return written


def _entity_keys(store, view: FeatureView, rows: pa.Table) -> list[bytes]:
    """Feast's Redis key of each row's entity (join keys in the view's order, sorted as Feast does)."""
    join_keys = [column.name for column in view.entity_columns]
    value_types = {column.name: column.dtype.to_value_type() for column in view.entity_columns}
    values = {key: python_values_to_proto_values(rows.column(key).to_pylist(), value_types[key]) for key in join_keys}
    version = store.config.entity_key_serialization_version
    return [
        _redis_key(store.project, EntityKey(join_keys=join_keys, entity_values=[values[key][i] for key in join_keys]),
                   entity_key_serialization_version=version)
        for i in range(rows.num_rows)
    ]


def _serialized(column: pa.ChunkedArray, value_type: ValueType) -> list[bytes]:
    """Each value of a column as Feast serializes it: a ``ValueProto``, empty for a null or NaN."""
    fast = {ValueType.DOUBLE: "double_val", ValueType.FLOAT: "float_val", ValueType.INT64: "int64_val",
            ValueType.INT32: "int32_val", ValueType.STRING: "string_val", ValueType.BOOL: "bool_val"}
    field = fast.get(value_type)
    values = column.to_pylist()
    if field is None:  # every other type through Feast's own conversion
        return [value.SerializeToString() for value in python_values_to_proto_values(values, value_type)]
    convert = {ValueType.STRING: str, ValueType.BOOL: bool}.get(value_type, lambda value: value)
    return [EMPTY if value is None or value != value else Value(**{field: convert(value)}).SerializeToString()
            for value in values]


def _timestamp(nanoseconds: int) -> Timestamp:
    stamp = Timestamp()
    # Feast takes the time through a Python datetime: whole microseconds
    stamp.seconds, stamp.nanos = divmod(nanoseconds // 1000 * 1000, 1_000_000_000)
    return stamp


def _nanoseconds(serialized: bytes) -> int:
    stamp = Timestamp()
    stamp.ParseFromString(serialized)
    return stamp.seconds * 1_000_000_000 + stamp.nanos

