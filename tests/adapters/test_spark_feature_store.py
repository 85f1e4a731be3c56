"""The feature repo on Spark (``deploy/feature_store.spark.yaml``): Feast's Spark offline store and
Spark compute engine over the same Parquet tables give what the embedded repo gives.

On the demo study (``demo_build``): the endpoint model's point-in-time training set (same frame,
same SHA-256) and the online features after materialization, including live vital signs pushed
into the log and not yet folded into its file. The tests that run Spark share the one ``local[2]``
session of the ``spark`` fixture (Feast's Spark store and engine join the active session) and skip
only where pyspark is not installed; the one about a missing pyspark runs anyway.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from adapters.feast_repo import apply_repo, materialize, offline_kind, online_features, open_store
from adapters.offline_store import PushLog, source_path
from adapters.spark import SparkNotInstalledError
from features.tables import LIVE_VITALS
from pipelines.models.train import build_training_set
from tests.pipelines.conftest import feast_repo

SPARK_YAML = Path(__file__).resolve().parents[2] / "deploy" / "feature_store.spark.yaml"
MODEL = "hospitalization_risk"  # the demo's endpoint model (feature service endpoint_v1)


def pushed_vitals(subjects: list[str]) -> pa.Table:
    """Two observations per subject as a push writes them to the log (times UTC, microseconds)."""
    first = pd.Timestamp("2024-03-06T08:00:00Z")
    frame = pd.DataFrame({"subject_id": [subject for subject in subjects for _ in range(2)]})
    times = [first, first + pd.Timedelta("90min 250001us")]
    frame["event_timestamp"] = pd.Series(times * len(subjects)).dt.as_unit("us")
    frame["created_timestamp"] = (frame["event_timestamp"] + pd.Timedelta(seconds=1)).dt.as_unit("us")
    for number, column in enumerate(LIVE_VITALS.columns):
        frame[column] = [float(number + i) for i in range(len(frame))]
    frame["consciousness_last_avpu"] = "A"
    frame["news2_risk_band_last"] = ["low", "medium"] * len(subjects)
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.fixture(scope="module")
def repos(spark, demo_build, tmp_path_factory):
    """An embedded repo and a Spark repo (the deploy YAML) over one copy of the demo's tables.

    A copy, with live vital signs pushed into its log as pending parts (not folded into the log
    file): the Spark repo must fold them before Spark reads the file. ``demo_build`` is shared and
    never changed.
    """
    _, config, _, built = demo_build
    root = tmp_path_factory.mktemp("spark_repo")
    tables = root / "tables"
    shutil.copytree(built, tables)
    subjects = sorted(pd.read_parquet(tables / "daily_activity.parquet")["subject_id"].unique())
    log = PushLog(tables / f"{LIVE_VITALS.name}.parquet", ["subject_id", "event_timestamp"])
    log.append(pushed_vitals(subjects))
    local = feast_repo(root / "local", "biomarkers_local", tables)
    (root / "spark").mkdir()
    apply_repo(root / "spark", tables, yaml_file=SPARK_YAML)
    return config, subjects, local, root / "spark", log


def selections(store) -> dict[str, list]:
    """What each feature service selects: views and their fields (a projection also holds its view's source)."""
    return {service.name: [(projection.name, projection.features) for projection in service.feature_view_projections]
            for service in store.list_feature_services()}


def test_the_spark_repo_declares_the_same_views_over_spark_sources(repos) -> None:
    _, _, local, spark_repo, _ = repos
    local_store, spark_store = open_store(local), open_store(spark_repo, SPARK_YAML)
    assert (offline_kind(local_store), offline_kind(spark_store)) == ("file", "spark")
    assert type(spark_store.config.batch_engine).__name__ == "SparkComputeEngineConfig"
    theirs = {view.name: view for view in local_store.list_feature_views()}
    for view in spark_store.list_feature_views():
        source, local_source = view.batch_source, theirs[view.name].batch_source
        assert type(source).__name__ == "SparkSource" and source.file_format == "parquet"
        # The same files: named relative to the repo folder for the file-based stores, absolute for Spark's.
        assert (source.path, source.timestamp_field, source.created_timestamp_column, source.tags) == (
            str(source_path(local_source, local_store.repo_path).resolve()), local_source.timestamp_field,
            local_source.created_timestamp_column, local_source.tags)
        assert view.features == theirs[view.name].features and view.ttl == theirs[view.name].ttl
    assert selections(spark_store) == selections(local_store)


def test_the_spark_training_set_is_the_local_one(repos) -> None:
    """Same rows, values and dtypes (times UTC microseconds on both sides), so the same SHA-256."""
    config, _, local, spark_repo, _ = repos

    mine = build_training_set(config, MODEL, repo_path=spark_repo, yaml_file=SPARK_YAML)
    theirs = build_training_set(config, MODEL, repo_path=local)

    assert str(mine.frame["event_timestamp"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(mine.frame, theirs.frame)
    assert mine.frame[mine.features].notna().any().all() and len(mine.frame) == len(mine.entity)
    assert mine.frame_sha256 == theirs.frame_sha256
    assert (mine.features, mine.dropped) == (theirs.features, theirs.dropped)


def test_materializing_with_the_spark_engine_loads_what_the_local_repo_loads(repos) -> None:
    _, subjects, local, spark_repo, log = repos
    assert log.parts() and not log.path.exists()  # pushed, not yet folded

    done = materialize(spark_repo, yaml_file=SPARK_YAML)  # first: it must fold the log itself
    assert all(span.startswith("full load") for span in done.values()), done
    assert not log.parts() and log.path.is_file()
    materialize(local)

    for service in ("endpoint_v1", "anomaly_v1", "vitals_anomaly_v1", "vitals_live_v1"):
        mine = online_features(subjects, service, repo_path=spark_repo, yaml_file=SPARK_YAML)
        theirs = online_features(subjects, service, repo_path=local)
        assert mine.drop(columns="subject_id").notna().any().any(), service
        pd.testing.assert_frame_equal(mine, theirs, obj=service)
    live = online_features(subjects, "vitals_live_v1", repo_path=spark_repo, yaml_file=SPARK_YAML)
    assert (live["news2_risk_band_last"] == "medium").all()  # each subject's later observation


def test_the_spark_repo_materializes_before_the_first_push(spark, demo_build, tmp_path) -> None:
    """No log file yet: the live view is skipped, as on the embedded repo (Feast's Spark store
    cannot read a path that does not exist), and every table is loaded."""
    _, _, _, built = demo_build
    tables = tmp_path / "tables"
    tables.mkdir()
    shutil.copy(built / "labs.parquet", tables)
    apply_repo(tmp_path / "repo", tables, yaml_file=SPARK_YAML)
    done = materialize(tmp_path / "repo", yaml_file=SPARK_YAML)
    assert done.pop(LIVE_VITALS.name) == "no feature table yet"
    assert done.pop("labs").startswith("full load")
    assert set(done.values()) == {"no feature table yet"}


def test_without_pyspark_the_spark_repo_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now fails as if it were not installed
    for module in ("feast.infra.offline_stores.contrib.spark_offline_store.spark", "adapters.spark_offline_store"):
        monkeypatch.delitem(sys.modules, module, raising=False)  # imported by an earlier test: import them again
    with pytest.raises(SparkNotInstalledError, match=r"feature_store\.spark\.yaml configures Feast's Spark .*"
                                                     r"pip install 'digital-biomarkers\[spark\]'"):
        open_store(tmp_path, SPARK_YAML)


def test_pushes_on_the_spark_repo_go_to_the_push_log_and_reach_point_in_time_retrieval(repos) -> None:
    """A push (what the API and the stream consumer do) on the Spark repo is a part of the push log,
    read by live scoring before any fold, and seen by Spark's point-in-time retrieval (which folds).
    Feast's own Spark store fails on a single-file log."""
    _, subjects, _, spark_repo, log = repos
    store = open_store(spark_repo, SPARK_YAML)
    view = store.get_feature_view(LIVE_VITALS.name)
    later = pushed_vitals(subjects[:1]).to_pandas()
    later["event_timestamp"] += pd.Timedelta(days=1)
    later["heart_rate_last_bpm"] = [101.0, 102.0]
    provider = store._get_provider()
    provider.ingest_df_to_offline_store(view, pa.Table.from_pandas(later, preserve_index=False))  # serving's push
    assert log.parts()
    pending = type(provider.offline_store).read_push_log(store.config, view).to_pandas()
    assert pending.set_index("event_timestamp").loc[later["event_timestamp"], "heart_rate_last_bpm"].tolist() == [
        101.0, 102.0]

    entity = pd.DataFrame({"subject_id": subjects[:1], "event_timestamp": [later["event_timestamp"].max()]})
    got = store.get_historical_features(entity_df=entity, features=[f"{LIVE_VITALS.name}:heart_rate_last_bpm"]).to_df()
    assert got["heart_rate_last_bpm"].tolist() == [102.0] and not log.parts()
