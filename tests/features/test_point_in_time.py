"""Feast point-in-time retrieval against a brute-force reference, on randomized data.

Each test builds a Feast repo of its own in ``tmp_path`` (two feature views with different TTLs
over Parquet files) and compares ``FeatureStore.get_historical_features`` with a reference
computed row by row in Python.

TTL semantics (Feast 0.67, read from the implementations, the same in the stores tested here):
for an entity row at time ``t`` a feature row qualifies when

    t - ttl <= event_timestamp <= t            (both bounds inclusive)

- DuckDB (ibis ``point_in_time_join``): ``feature_ts <= entity_ts`` and
  ``feature_ts + ttl >= entity_ts``;
- the project's ``adapters.offline_store.AsofDuckDBOfflineStore`` (ASOF join):
  ``feature_ts <= entity_ts`` and ``entity_ts - feature_ts <= ttl``, in integer nanoseconds;
- file / Dask (``_filter_ttl``): ``feature_ts >= entity_ts - ttl`` and ``feature_ts <= entity_ts``;
- Spark (its ``MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN`` template): ``feature_ts <= entity_ts`` and
  ``feature_ts >= entity_ts - ttl * interval '1' second`` (the TTL in whole seconds).

(The BigQuery/Snowflake SQL templates use the same ``>= entity_ts - ttl``.) Among qualifying rows
the one with the latest ``event_timestamp`` wins, ties broken by the latest ``created_timestamp``;
no qualifying row gives nulls, and the entity row is kept. ``created_timestamp`` is not compared
with the entity time unless ``filter_by_created_timestamp=True`` (default False, not used here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

SEED = 20240611
N_SUBJECTS = 30
BASE = pd.Timestamp("2024-03-01T00:00:00Z")
SPAN = pd.Timedelta(days=10)
VIEWS = {"fast": pd.Timedelta(hours=12), "slow": pd.Timedelta(days=2)}
ROWS = {"fast": 400, "slow": 250}
FEATURES = ("value", "t_offset_s", "created_offset_s")
US = pd.Timedelta(microseconds=1)


def _subjects(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def _random_times(rng: np.random.Generator, n: int, start: pd.Timestamp, span: pd.Timedelta) -> pd.Series:
    offsets = rng.integers(0, span // US, size=n)
    return pd.Series(start + pd.to_timedelta(offsets, unit="us"))


def _feature_rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame({
        "subject_id": rng.choice(_subjects(N_SUBJECTS), size=n),
        "event_timestamp": _random_times(rng, n, BASE, SPAN),
    })
    frame["created_timestamp"] = frame["event_timestamp"] + pd.to_timedelta(
        rng.integers(0, pd.Timedelta(days=3) // US, size=n), unit="us")
    # Duplicated (subject, event_timestamp) pairs: same key, another created_timestamp (earlier or
    # later than the original) and another value, so the tie-break decides what comes back.
    dupes = frame.sample(n=n // 8, random_state=rng).copy()
    dupes["created_timestamp"] = dupes["event_timestamp"] + pd.to_timedelta(
        rng.integers(0, pd.Timedelta(days=3) // US, size=len(dupes)), unit="us")
    triples = dupes.sample(n=max(1, len(dupes) // 4), random_state=rng).copy()
    triples["created_timestamp"] = triples["event_timestamp"] + pd.to_timedelta(
        rng.integers(0, pd.Timedelta(days=3) // US, size=len(triples)), unit="us")
    frame = pd.concat([frame, dupes, triples], ignore_index=True)
    frame["value"] = rng.normal(size=len(frame))
    # A few null values: a newer row with a null value still wins over an older non-null one.
    frame.loc[rng.random(len(frame)) < 0.05, "value"] = np.nan
    # Self-describing columns: the row's own timestamps, so the output can be checked by itself.
    frame["t_offset_s"] = (frame["event_timestamp"] - BASE).dt.total_seconds()
    frame["created_offset_s"] = (frame["created_timestamp"] - BASE).dt.total_seconds()
    assert not frame.duplicated(["subject_id", "event_timestamp", "created_timestamp"]).any()
    assert frame.duplicated(["subject_id", "event_timestamp"]).sum() >= n // 8
    return frame.sample(frac=1, random_state=rng).reset_index(drop=True)


def _entity_rows(rng: np.random.Generator, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    subjects = _subjects(N_SUBJECTS + 3)  # three subjects with no feature rows at all
    parts = [pd.DataFrame({  # anywhere from a day before the data to three days after
        "subject_id": rng.choice(subjects, size=200),
        "event_timestamp": _random_times(rng, 200, BASE - pd.Timedelta(days=1), SPAN + pd.Timedelta(days=4)),
    })]
    parts.append(pd.DataFrame({  # before any feature row of any subject
        "subject_id": rng.choice(subjects, size=20),
        "event_timestamp": _random_times(rng, 20, BASE - pd.Timedelta(days=5), pd.Timedelta(days=4)),
    }))
    parts.append(pd.DataFrame({  # long after the last row (TTLs expired everywhere)
        "subject_id": rng.choice(subjects, size=20),
        "event_timestamp": _random_times(rng, 20, BASE + SPAN + pd.Timedelta(days=5), pd.Timedelta(days=5)),
    }))
    for name, ttl in VIEWS.items():
        rows = tables[name].sample(n=25, random_state=rng)[["subject_id", "event_timestamp"]]
        parts.append(rows)  # exactly at a feature row's event_timestamp
        parts.append(rows.assign(event_timestamp=rows["event_timestamp"] - US))  # just before it
        parts.append(rows.assign(event_timestamp=rows["event_timestamp"] + ttl))  # TTL boundary, inclusive
        parts.append(rows.assign(event_timestamp=rows["event_timestamp"] + ttl + US))  # just past it
    entities = pd.concat(parts, ignore_index=True).drop_duplicates(["subject_id", "event_timestamp"])
    entities = entities.sample(frac=1, random_state=rng).reset_index(drop=True)
    entities["row_id"] = np.arange(len(entities), dtype="int64")
    return entities


def _reference(entities: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Brute force: per entity row and view, the latest row in [t - ttl, t], ties by latest created."""
    out = entities[["row_id"]].copy()
    for name, ttl in VIEWS.items():
        table = tables[name]
        by_subject = {subject: rows for subject, rows in table.groupby("subject_id")}
        columns: dict[str, list[float]] = {f"{name}__{feature}": [] for feature in FEATURES}
        for subject, when in zip(entities["subject_id"], entities["event_timestamp"], strict=True):
            rows = by_subject.get(subject)
            best = None
            if rows is not None:
                candidates = rows[(rows["event_timestamp"] <= when) & (rows["event_timestamp"] >= when - ttl)]
                if len(candidates):
                    best = candidates.sort_values(["event_timestamp", "created_timestamp"]).iloc[-1]
            for feature in FEATURES:
                columns[f"{name}__{feature}"].append(np.nan if best is None else float(best[feature]))
        for column, values in columns.items():
            out[column] = values
    return out


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.copy()
    for column in ("event_timestamp", "created_timestamp"):
        frame[column] = frame[column].astype("datetime64[us, UTC]")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, coerce_timestamps="us")


def _source(offline_store: str, **options):
    """The data source the store reads: Feast's Spark store takes only a ``SparkSource`` (of the same file)."""
    if offline_store == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(file_format="parquet", **options)
    return FileSource(**options)


def _build_repo(repo: Path, offline_store: str, tables: dict[str, pd.DataFrame]) -> tuple[FeatureStore, list[str]]:
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(f"""
project: pit_{offline_store.rsplit(".", 1)[-1].lower()}
provider: local
registry: {repo / 'registry.db'}
offline_store: {{type: {offline_store}}}
online_store: {{type: sqlite, path: {repo / 'online.db'}}}
entity_key_serialization_version: 3
""")
    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    views = []
    for name, ttl in VIEWS.items():
        path = repo / f"{name}.parquet"
        _write_parquet(tables[name], path)
        source = _source(offline_store, name=f"{name}_source", path=str(path), timestamp_field="event_timestamp",
                         created_timestamp_column="created_timestamp")
        views.append(FeatureView(name=name, entities=[subject], ttl=ttl.to_pytimedelta(),
                                 schema=[Field(name=feature, dtype=Float64) for feature in FEATURES],
                                 source=source, online=True))
    store = FeatureStore(repo_path=str(repo))
    store.apply([subject, *views])
    refs = [f"{name}:{feature}" for name in VIEWS for feature in FEATURES]
    return store, refs


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(SEED)
    tables = {name: _feature_rows(rng, ROWS[name]) for name in VIEWS}
    entities = _entity_rows(rng, tables)
    return tables, entities, _reference(entities, tables)


def _retrieve(tmp_path: Path, offline_store: str, data) -> pd.DataFrame:
    tables, entities, _ = data
    store, refs = _build_repo(tmp_path / "repo", offline_store, tables)
    got = store.get_historical_features(entity_df=entities.copy(), features=refs,
                                        full_feature_names=True).to_df()
    return got


def _mismatch(got: pd.Series, expected: pd.Series) -> pd.Series:
    """Rows where got differs from expected, a null equal to a null."""
    return ~((got == expected) | (got.isna() & expected.isna()))


def _assert_columns_equal(got: pd.DataFrame, expected: pd.DataFrame, want: pd.DataFrame, columns) -> None:
    for column in columns:
        mismatch = _mismatch(got[column], expected[column])
        assert not mismatch.any(), (
            f"{column}: {int(mismatch.sum())} of {len(got)} rows differ from the reference, e.g.\n"
            + pd.concat([want[["subject_id", "event_timestamp"]], got[column].rename("feast"),
                         expected[column].rename("reference")], axis=1)[mismatch].head(10).to_string())


def _assert_keys_kept(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert (got["subject_id"] == want["subject_id"]).all()
    assert (pd.to_datetime(got["event_timestamp"], utc=True) == want["event_timestamp"]).all()


def _assert_point_in_time(got: pd.DataFrame, want: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> None:
    """Independent of the reference: the chosen row is never in the future nor older than the TTL,
    and an entity time before a subject's first row (or a subject without rows) gets nulls."""
    entity_offset = (want["event_timestamp"] - BASE).dt.total_seconds()
    for name, ttl in VIEWS.items():
        picked = got[f"{name}__t_offset_s"]
        found = picked.notna()
        assert (picked[found] <= entity_offset[found] + 1e-6).all(), f"{name}: a value from the future"
        assert (picked[found] >= entity_offset[found] - ttl.total_seconds() - 1e-6).all(), f"{name}: stale value"
        first = want["subject_id"].map(tables[name].groupby("subject_id")["t_offset_s"].min())
        before_first = ~(entity_offset >= first)  # NaN first (no rows at all) counts as before
        assert before_first.sum() >= 20
        assert got.loc[before_first, [f"{name}__{f}" for f in FEATURES]].isna().all().all()


def _assert_fixture_covers_the_edges(data) -> None:
    tables, entities, reference = data
    expected = reference.set_index("row_id").sort_index()
    entity_offset = (entities.set_index("row_id").sort_index()["event_timestamp"] - BASE).dt.total_seconds()
    assert expected.filter(like="__value").isna().all(axis=1).sum() >= 20  # entity rows with no feature at all
    for name, ttl in VIEWS.items():
        picked = expected[f"{name}__t_offset_s"]
        assert picked.notna().sum() >= 50
        assert (np.isclose(picked, entity_offset, rtol=0, atol=1e-7)).sum() >= 10  # picked row at t exactly
        # picked row at t - ttl exactly: the inclusive lower bound decides these rows
        assert (np.isclose(entity_offset - picked, ttl.total_seconds(), rtol=0, atol=1e-7)).sum() >= 3
        assert expected[f"{name}__value"].isna().sum() > expected[f"{name}__t_offset_s"].isna().sum()  # null values
        assert _lands_on_a_tie(entities.set_index("row_id").sort_index(), expected, tables[name], name).sum() >= 10


def _lands_on_a_tie(want: pd.DataFrame, expected: pd.DataFrame, table: pd.DataFrame, name: str) -> pd.Series:
    """Entity rows whose reference row shares its (subject, event_timestamp) with another version."""
    tied = table[table.duplicated(["subject_id", "event_timestamp"], keep=False)]
    keys = set(zip(tied["subject_id"], tied["t_offset_s"], strict=True))
    return pd.Series([(subject, offset) in keys for subject, offset in
                      zip(want["subject_id"], expected[f"{name}__t_offset_s"], strict=True)], index=want.index)


def test_randomized_fixture_covers_the_edge_cases(data) -> None:
    _assert_fixture_covers_the_edges(data)


ASOF_STORE = "adapters.offline_store.AsofDuckDBOfflineStore"


@pytest.mark.parametrize("offline_store", [ASOF_STORE, "duckdb"], ids=["asof_duckdb", "feast_duckdb"])
def test_duckdb_historical_retrieval_matches_brute_force(tmp_path, data, offline_store) -> None:
    """The project's store (``feature_store.yaml``) and Feast's own DuckDB store both match."""
    _assert_matches_the_reference(_retrieve(tmp_path, offline_store, data), data)


def test_spark_historical_retrieval_matches_brute_force(tmp_path, data, spark) -> None:
    """Feast's Spark offline store (``deploy/feature_store.spark.yaml``), over the same Parquet files
    through ``SparkSource``s, matches on every row and value: the inclusive TTL bounds
    (``event_timestamp >= entity_timestamp - ttl * interval '1' second``), ties broken by the latest
    created_timestamp (a ``MAX(created_timestamp)`` per key and time), nulls, and every entity row kept.

    It differs in form only: rows come back in no set order (a SQL join), and ``event_timestamp``
    comes back naive, at nanosecond resolution, as wall-clock times in the Spark session's time
    zone: UTC here (``adapters.spark.DEFAULT_CONF``), so the same instants.
    ``adapters.feast_repo.historical_features`` restores the order and UTC microseconds.
    """
    got = _retrieve(tmp_path, "spark", data)
    assert str(got["event_timestamp"].dtype) == "datetime64[ns]"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    _assert_matches_the_reference(got, data)


def _assert_matches_the_reference(got: pd.DataFrame, data) -> None:
    tables, entities, reference = data
    # every entity row comes back exactly once, all-null ones included
    assert len(got) == len(entities)
    assert sorted(got["row_id"]) == list(entities["row_id"])
    got = got.set_index("row_id").sort_index()
    want = entities.set_index("row_id").sort_index()
    _assert_keys_kept(got, want)
    _assert_columns_equal(got, reference.set_index("row_id").sort_index(), want, reference.columns.drop("row_id"))
    _assert_point_in_time(got, want, tables)


def test_file_offline_store_historical_retrieval(tmp_path, data) -> None:
    """Feast's default ``file`` (Dask) offline store differs from the reference in two ways (Feast 0.67).

    1. It drops entity rows. ``_merge`` left-joins each entity row to all rows of its subject, and
       ``_filter_ttl`` then keeps only candidates inside [t - ttl, t] *or with a null timestamp*.
       A subject without any row in the view keeps its entity row (null timestamp from the left
       join), but a subject that has rows, none of them inside the window (entity time before the
       first row, or every row older than the TTL), loses the entity row altogether: in effect an
       inner join. That holds for each view in turn, so one view with nothing in its window
       removes the row for all views.
    2. Ties on event_timestamp are not reliably broken by the latest created_timestamp:
       ``_drop_duplicates`` sorts by created_timestamp, then sorts again by event_timestamp with a
       sort that is not stable (Dask's partitioned sort_values), so the surviving version among
       rows that share (subject, event_timestamp) is arbitrary; it often is an older version.

    What is right on the rows it keeps: the chosen event_timestamp (inclusive TTL bounds, as in
    DuckDB), nulls, and every value that is not a tie.
    """
    tables, entities, reference = data
    got = _retrieve(tmp_path, "file", data)
    want = entities.set_index("row_id").sort_index()
    expected = reference.set_index("row_id").sort_index()

    # 1. kept: exactly the entity rows where every view either has no row for the subject at all
    #    or has one inside the window
    kept = pd.Series(True, index=want.index)
    for name in VIEWS:
        kept &= ~want["subject_id"].isin(set(tables[name]["subject_id"])) | expected[f"{name}__t_offset_s"].notna()
    assert len(got) < len(entities)  # rows really are dropped (440 entity rows, 174 returned with SEED)
    assert len(got) == kept.sum()
    assert sorted(got["row_id"]) == list(kept[kept].index)
    got = got.set_index("row_id").sort_index()
    want, expected = want.loc[got.index], expected.loc[got.index]
    _assert_keys_kept(got, want)
    _assert_point_in_time(got, want, tables)

    for name in VIEWS:
        # the right event_timestamp everywhere, and all of the values where there is no tie
        _assert_columns_equal(got, expected, want, [f"{name}__t_offset_s"])
        tie = _lands_on_a_tie(want, expected, tables[name], name)
        columns = [f"{name}__value", f"{name}__created_offset_s"]
        _assert_columns_equal(got[~tie], expected[~tie], want[~tie], columns)
        # 2. on a tie: one of the tied versions, whole (value and created_timestamp of the same row)...
        chosen = got.loc[tie, ["subject_id", f"{name}__t_offset_s", f"{name}__created_offset_s", f"{name}__value"]]
        chosen.columns = ["subject_id", "t_offset_s", "created_offset_s", "chosen_value"]
        versions = chosen.merge(tables[name], on=["subject_id", "t_offset_s", "created_offset_s"], how="left",
                                validate="many_to_one", indicator=True)
        assert (versions["_merge"] == "both").all()
        assert not _mismatch(versions["chosen_value"], versions["value"]).any()
        # ...but not always the latest one (a tripwire: when Feast fixes this, tighten to equality)
        older = got.loc[tie, f"{name}__created_offset_s"] < expected.loc[tie, f"{name}__created_offset_s"]
        assert older.any()
        assert not (got.loc[tie, f"{name}__created_offset_s"] > expected.loc[tie, f"{name}__created_offset_s"]).any()
