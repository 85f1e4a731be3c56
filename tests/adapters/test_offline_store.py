"""The project's offline store (DuckDB, ASOF join): what Feast callers rely on beyond the values,
which the brute-force comparison in tests/features/test_point_in_time.py checks."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
from feast.types import Float64, String

from adapters.offline_store import AsofDuckDBOfflineStore, PushLog

STORE = "adapters.offline_store.AsofDuckDBOfflineStore"


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    rows = pd.DataFrame({
        "subject_id": ["S1", "S1", "S2", "S2"],
        "event_timestamp": pd.to_datetime(["2024-03-01 10:00", "2024-03-02 10:00", "2024-03-01 12:00",
                                           "2024-03-01 12:00"], utc=True),
        "created_timestamp": pd.to_datetime(["2024-03-03", "2024-03-03", "2024-03-03", "2024-03-04"], utc=True),
        "heart_rate_mean_1d_bpm": [60.0, 62.0, 70.0, 71.0],
        "note": ["a", "b", "old", "new"],
    })
    rows.to_parquet(tmp_path / "daily.parquet", index=False)
    (tmp_path / "feature_store.yaml").write_text(f"""
project: offline_store_test
provider: local
registry: {tmp_path / 'registry.db'}
offline_store: {{type: {STORE}}}
online_store: {{type: sqlite, path: {tmp_path / 'online.db'}}}
entity_key_serialization_version: 3
""")
    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    source = FileSource(name="daily_source", path=str(tmp_path / "daily.parquet"), timestamp_field="event_timestamp",
                        created_timestamp_column="created_timestamp")
    view = FeatureView(name="daily", entities=[subject], ttl=timedelta(days=1), source=source,
                       schema=[Field(name="heart_rate_mean_1d_bpm", dtype=Float64), Field(name="note", dtype=String)])
    feature_store = FeatureStore(repo_path=str(tmp_path))
    feature_store.apply([subject, view])
    return feature_store


def test_the_configured_store_is_ours(store) -> None:
    assert type(store._get_provider().offline_store) is AsofDuckDBOfflineStore


def test_rows_come_back_in_the_entity_frame_order_with_its_other_columns(store) -> None:
    entities = pd.DataFrame({
        "subject_id": ["S2", "S1", "S3", "S1", "S1"],
        # naive times are UTC, as in Feast
        "event_timestamp": pd.to_datetime(["2024-03-01 13:00", "2024-03-02 11:00", "2024-03-02 00:00",
                                           "2024-03-01 09:00", "2024-03-04 10:00"]),
        "label": [1, 0, 1, 0, 1],
    })
    got = store.get_historical_features(entity_df=entities, features=["daily:heart_rate_mean_1d_bpm", "daily:note"],
                                        full_feature_names=True).to_df()
    assert list(got.columns) == ["subject_id", "event_timestamp", "label", "daily__heart_rate_mean_1d_bpm",
                                 "daily__note"]
    assert got["subject_id"].tolist() == ["S2", "S1", "S3", "S1", "S1"]
    assert got["label"].tolist() == [1, 0, 1, 0, 1]
    assert str(got["event_timestamp"].dt.tz) == "UTC"
    # S2: the later-built version of a tie; S1 at 11:00 on day 2: the day-2 row; S3: no rows;
    # S1 before its first row: nulls; S1 two days after its last row: past the 1-day TTL, nulls.
    assert got["daily__note"].tolist()[:2] == ["new", "b"]
    assert got["daily__heart_rate_mean_1d_bpm"].iloc[:2].tolist() == [71.0, 62.0]
    assert got.loc[2:, "daily__heart_rate_mean_1d_bpm"].isna().all()
    assert got.loc[2:, "daily__note"].isna().all()


def test_an_entity_frame_without_the_join_key_is_refused(store) -> None:
    entities = pd.DataFrame({"patient": ["S1"], "event_timestamp": pd.to_datetime(["2024-03-02"], utc=True)})
    with pytest.raises(Exception, match="subject_id"):
        store.get_historical_features(entity_df=entities, features=["daily:note"]).to_df()


def test_a_training_set_is_saved_as_a_dataset(store, tmp_path) -> None:
    entities = pd.DataFrame({"subject_id": ["S1"], "event_timestamp": pd.to_datetime(["2024-03-02 12:00"], utc=True)})
    job = store.get_historical_features(entity_df=entities, features=["daily:heart_rate_mean_1d_bpm"])
    target = tmp_path / "saved" / "training.parquet"
    store.create_saved_dataset(from_=job, name="training_v1", storage=SavedDatasetFileStorage(path=str(target)))
    assert pd.read_parquet(target)["heart_rate_mean_1d_bpm"].tolist() == [62.0]
    assert not list(target.parent.glob(".*.tmp"))  # published by rename, nothing partial left
    with pytest.raises(Exception, match="already exists"):
        store.create_saved_dataset(from_=job, name="training_v2", storage=SavedDatasetFileStorage(path=str(target)))


def test_pushes_upsert_one_row_per_key_and_time_and_concurrent_writers_lose_nothing(store, tmp_path) -> None:
    """``offline_write_batch`` (what a push to the offline store ends in): created on the first push,
    a redelivered row replaces itself, two writers at once keep each other's rows."""
    import threading

    import pyarrow as pa

    from features.definitions import live_vitals_view
    from features.tables import LIVE_VITALS

    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    store.apply([subject, live_vitals_view(tmp_path / "log")])
    view = store.get_feature_view(LIVE_VITALS.name)  # as registered: its join keys known
    path = tmp_path / "log" / f"{LIVE_VITALS.name}.parquet"
    start = pd.Timestamp("2024-05-01", tz="UTC")

    def batch(writer: int, first: int, n: int, heart_rate: float) -> pa.Table:
        frame = pd.DataFrame({"subject_id": [f"S{writer}"] * n,
                              "event_timestamp": [start + pd.Timedelta(minutes=first + k) for k in range(n)],
                              "created_timestamp": pd.Timestamp.now(tz="UTC")})
        for column in LIVE_VITALS.columns:
            frame[column] = heart_rate
        for column in LIVE_VITALS.text_columns:
            frame[column] = "A"
        frame["event_timestamp"] = frame["event_timestamp"].dt.as_unit("us")
        frame["created_timestamp"] = frame["created_timestamp"].dt.as_unit("us")
        return pa.Table.from_pandas(frame, preserve_index=False)

    assert not path.exists()
    AsofDuckDBOfflineStore.offline_write_batch(store.config, view, batch(0, 0, 5, 60.0), None)
    AsofDuckDBOfflineStore.offline_write_batch(store.config, view, batch(0, 3, 5, 61.0), None)  # 2 redelivered
    assert not path.exists()  # two small parts pending, no rewrite of the log per push
    pending = AsofDuckDBOfflineStore.read_push_log(store.config, view).to_pandas()
    assert PushLog.of(view, tmp_path).fold() and not PushLog.of(view, tmp_path).parts()
    for log in (pending, pd.read_parquet(path)):  # read before the fold, and the folded file
        assert len(log) == 8 and not log.duplicated(["subject_id", "event_timestamp"]).any()
        assert log.set_index("event_timestamp")["heart_rate_last_bpm"].tolist() == [60.0] * 3 + [61.0] * 5

    def write(writer: int) -> None:
        for k in range(40):  # more than FOLD_PARTS pushes: folds happen while the other writes
            AsofDuckDBOfflineStore.offline_write_batch(store.config, view, batch(writer, 10 * k, 10, 70.0), None)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(PushLog.of(view, tmp_path).parts()) < PushLog.FOLD_PARTS
    # A reader folds first (Feast's pulls, point-in-time retrieval, materialization): it sees every push.
    pulled = store.get_historical_features(
        entity_df=pd.DataFrame({"subject_id": ["S1", "S2"], "event_timestamp": [start + pd.Timedelta(hours=7)] * 2}),
        features=[f"{LIVE_VITALS.name}:heart_rate_last_bpm"]).to_df()
    assert pulled["heart_rate_last_bpm"].tolist() == [70.0, 70.0]
    assert not PushLog.of(view, tmp_path).parts()
    log = pd.read_parquet(path)
    assert log.groupby("subject_id").size().to_dict() == {"S0": 8, "S1": 400, "S2": 400}
    assert not list(path.parent.glob(".*.tmp"))  # nothing partial left behind


def test_a_push_log_before_its_first_push_gives_nulls_and_a_missing_table_an_error(store, tmp_path) -> None:
    """A point-in-time retrieval that includes the live view before anything was pushed to it (a new
    deployment) keeps every entity row with nulls; a feature table that is missing stays an error."""
    from features.definitions import live_vitals_view
    from features.tables import LIVE_VITALS

    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    store.apply([subject, live_vitals_view(tmp_path / "log")])
    entities = pd.DataFrame({"subject_id": ["S1", "S2"],
                             "event_timestamp": pd.to_datetime(["2024-03-02"] * 2, utc=True)})
    live = [f"{LIVE_VITALS.name}:heart_rate_last_bpm", f"{LIVE_VITALS.name}:news2_risk_band_last"]
    got = store.get_historical_features(entity_df=entities, features=["daily:heart_rate_mean_1d_bpm", *live]).to_df()
    assert got["subject_id"].tolist() == ["S1", "S2"] and got["heart_rate_mean_1d_bpm"].tolist()[0] == 60.0
    assert got["heart_rate_last_bpm"].isna().all() and got["news2_risk_band_last"].isna().all()
    assert str(got["heart_rate_last_bpm"].dtype) == "float64"

    (tmp_path / "daily.parquet").unlink()
    with pytest.raises(Exception, match="daily.parquet"):
        store.get_historical_features(entity_df=entities, features=["daily:heart_rate_mean_1d_bpm"]).to_df()


def _live_log(store, tmp_path):
    """The live vital-signs view applied in ``store`` (registered: join keys known) and its push log."""
    from features.definitions import live_vitals_view
    from features.tables import LIVE_VITALS

    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    store.apply([subject, live_vitals_view(tmp_path / "log")])
    view = store.get_feature_view(LIVE_VITALS.name)
    return view, PushLog.of(view, tmp_path)


def _pushed(subject: str, minute: int, **values) -> pa.Table:
    """One pushed row with only ``values`` among the features: what pandas gives Arrow (an all-None
    text column is Arrow ``null``)."""
    frame = pd.DataFrame({"subject_id": [subject],
                          "event_timestamp": [pd.Timestamp("2024-05-01", tz="UTC") + pd.Timedelta(minutes=minute)],
                          "created_timestamp": [pd.Timestamp("2024-05-02", tz="UTC")]})
    for column, value in values.items():
        frame[column] = pd.Series([value], dtype=object if isinstance(value, str) or value is None else float)
    frame["event_timestamp"] = frame["event_timestamp"].dt.as_unit("us")
    frame["created_timestamp"] = frame["created_timestamp"].dt.as_unit("us")
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_the_push_log_keeps_the_views_declared_types_whatever_a_batch_holds(store, tmp_path) -> None:
    """A first push with one measurement and its text columns all missing (Arrow ``null`` from pandas)
    stores typed nulls; pushes with strings then fold into it, and Feast materializes the log."""
    import pyarrow.parquet as pq

    from features.tables import LIVE_VITALS

    view, log = _live_log(store, tmp_path)
    partial = _pushed("S1", 0, heart_rate_last_bpm=61.0, consciousness_last_avpu=None, news2_risk_band_last=None)
    assert partial.schema.field("consciousness_last_avpu").type == pa.null()
    AsofDuckDBOfflineStore.offline_write_batch(store.config, view, partial, None)
    assert log.fold()
    AsofDuckDBOfflineStore.offline_write_batch(store.config, view, _pushed(
        "S1", 1, heart_rate_last_bpm=62.0, consciousness_last_avpu="A", news2_risk_band_last="low"), None)
    AsofDuckDBOfflineStore.offline_write_batch(store.config, view, _pushed("S2", 1, spo2_last_percent=95.0), None)
    assert log.fold()
    stored = pq.read_table(log.path)
    assert stored.schema == log.schema
    assert {stored.schema.field(name).type for name in LIVE_VITALS.text_columns} == {pa.string()}
    assert {stored.schema.field(name).type for name in LIVE_VITALS.columns} == {pa.float64()}
    rows = stored.to_pandas().set_index(["subject_id", "event_timestamp"])
    assert rows["consciousness_last_avpu"].tolist() == [None, "A", None]
    assert rows["heart_rate_last_bpm"].tolist()[:2] == [61.0, 62.0] and rows["spo2_last_percent"].tolist()[2] == 95.0
    store.materialize(start_date=pd.Timestamp("2024-04-01", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp("2024-05-03", tz="UTC").to_pydatetime(), feature_views=[view.name])
    online = store.get_online_features(features=[f"{view.name}:consciousness_last_avpu",
                                                 f"{view.name}:spo2_last_percent"],
                                       entity_rows=[{"subject_id": "S1"}, {"subject_id": "S2"}]).to_dict()
    assert online["consciousness_last_avpu"] == ["A", None] and online["spo2_last_percent"] == [None, 95.0]


def test_a_log_stored_with_null_columns_by_an_older_version_folds_and_reads_in_the_declared_types(store,
                                                                                                   tmp_path) -> None:
    import pyarrow.parquet as pq

    view, log = _live_log(store, tmp_path)
    log.path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_pushed("S1", 0, heart_rate_last_bpm=61.0, consciousness_last_avpu=None), log.path)
    log.append(_pushed("S1", 1, consciousness_last_avpu="V"))
    read = log.read(["subject_id", "event_timestamp", "consciousness_last_avpu"])
    assert read.schema.field("consciousness_last_avpu").type == pa.string()
    assert read.column("consciousness_last_avpu").to_pylist() == [None, "V"]
    assert log.fold() and pq.read_table(log.path).schema == log.schema
    # Without the view's schema (a reader that knows only the file), the stored types are widened.
    pq.write_table(_pushed("S3", 0, consciousness_last_avpu=None), log.path)
    untyped = PushLog(log.path, log.key_columns)
    untyped.pending.mkdir(exist_ok=True)  # left by the pushes above, empty after the fold
    pq.write_table(_pushed("S3", 1, consciousness_last_avpu="U"), untyped.pending / "000000000001.parquet")
    assert untyped.read().column("consciousness_last_avpu").to_pylist() == [None, "U"]


@pytest.mark.parametrize(("table", "words"), [
    (lambda: _pushed("S1", 0, heart_rate_last_bpm=60.0, blood_glucose_mmol_l=5.0), "not declared by the view: "
                                                                                     "blood_glucose_mmol_l"),
    (lambda: _pushed("S1", 0, heart_rate_last_bpm=60.0).drop_columns(["event_timestamp"]), "missing event_timestamp"),
    (lambda: _pushed("S1", 0, heart_rate_last_bpm="fast"), "column heart_rate_last_bpm of type string"),
])
def test_a_push_that_does_not_fit_the_declared_schema_is_refused_before_anything_is_written(store, tmp_path,
                                                                                             table, words) -> None:
    view, log = _live_log(store, tmp_path)
    log.append(_pushed("S1", 5, heart_rate_last_bpm=60.0))
    before = log.read().to_pylist()
    with pytest.raises(ValueError, match=words) as refused:
        log.append(table())
    assert "vital_signs_live.parquet" in str(refused.value)
    assert len(log.parts()) == 1 and log.read().to_pylist() == before


def test_a_push_log_read_while_folds_replace_its_file_never_mixes_two_versions(tmp_path):
    """A reader racing a writer that renames new versions of the log file over it (as folds do):
    Arrow opened the path twice per read, and a rename in between paired one version's footer with
    the other's pages ("Page was smaller than expected"), which killed the reading consumer; about
    a third of such reads failed before the log read each file through one open handle."""
    import threading

    import pyarrow as pa

    from adapters.offline_store import PushLog, _write_atomically

    log = PushLog(tmp_path / "log.parquet", ["subject_id", "event_timestamp"])

    def version(rows: int) -> pa.Table:
        return pa.table({"subject_id": [f"S{i}" for i in range(rows)],
                         "event_timestamp": pa.array(range(rows), pa.int64()),
                         "value": pa.array([float(i) for i in range(rows)])})

    _write_atomically(version(10), log.path)
    stop = threading.Event()

    def fold_again_and_again() -> None:
        rows = 10
        while not stop.is_set():
            rows = 10 + (rows * 7) % 500
            _write_atomically(version(rows), log.path)

    writer = threading.Thread(target=fold_again_and_again)
    writer.start()
    try:
        sizes = {log.read().num_rows for _ in range(300)}
    finally:
        stop.set()
        writer.join()
    assert sizes and all(10 <= size < 510 for size in sizes)
