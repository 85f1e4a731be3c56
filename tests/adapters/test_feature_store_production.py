"""The same feature definitions on the production infrastructure: Redis online store and a SQL
registry on PostgreSQL, both the real servers on 127.0.0.1 (skipped only when unreachable)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from adapters.feast_repo import apply_repo, materialize, online_features, open_store
from features.tables import TABLES
from tests.conftest import PG_ADMIN_DSN

pytestmark = pytest.mark.postgres


@pytest.fixture
def redis_server():
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379: {error}")
    return client


@pytest.fixture
def registry_database():
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {error}")
    name = f"feast_registry_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def write_tables(folder: Path, subjects: list[str], rng: np.random.Generator) -> None:
    """Three days of rows per subject for every feature table, random but plausible floats."""
    folder.mkdir(parents=True)
    ends = pd.date_range("2024-03-02", periods=3, freq="D", tz="UTC")
    created = pd.Timestamp("2024-03-10", tz="UTC")
    for table in TABLES:
        rows = pd.DataFrame([(s, t) for s in subjects for t in ends], columns=["subject_id", "event_timestamp"])
        for column in table.columns:
            rows[column] = rng.uniform(1, 100, len(rows)).round(3)
        rows[f"{table.name}_missing_reason"] = None
        rows["created_timestamp"] = created
        rows.to_parquet(folder / f"{table.name}.parquet", index=False)


def test_redis_online_store_and_postgresql_registry(tmp_path, redis_server, registry_database) -> None:
    project = f"biomarkers_it_{uuid.uuid4().hex[:8]}"  # keys in Redis are per project: no clash
    yaml_file = tmp_path / "feature_store.production.yaml"
    yaml_file.write_text(f"""
project: {project}
provider: local
registry:
  registry_type: sql
  path: {registry_database}
  cache_ttl_seconds: 0
offline_store: {{type: adapters.offline_store.AsofDuckDBOfflineStore}}
online_store: {{type: redis, connection_string: "127.0.0.1:6379"}}
entity_key_serialization_version: 3
""")
    subjects = ["S0001", "S0002", "S0003"]
    tables = tmp_path / "tables"
    write_tables(tables, subjects, np.random.default_rng(3))
    try:
        registered = apply_repo(tmp_path, tables, yaml_file=yaml_file)
        assert {"endpoint_v1", "anomaly_v1", "subject", "labs_change_from_baseline"} <= set(registered)
        done = materialize(tmp_path, yaml_file=yaml_file)
        # Every built table is loaded; the live view has no log until events are pushed.
        assert done.pop("vital_signs_live") == "no feature table yet"
        assert all(span.startswith("full load") for span in done.values())

        # The registry really is in PostgreSQL: a fresh store on the same YAML sees the services.
        assert {s.name for s in open_store(tmp_path, yaml_file).list_feature_services()} >= {"endpoint_v1"}
        online = online_features(subjects, service="endpoint_v1", repo_path=tmp_path,
                                 yaml_file=yaml_file).set_index("subject_id")
        daily = pd.read_parquet(tables / "daily_activity.parquet")
        labs = pd.read_parquet(tables / "labs.parquet")
        for subject in subjects:
            latest = daily[daily["subject_id"] == subject].iloc[-1]
            assert online.loc[subject, "steps_sum_1d_count"] == pytest.approx(latest["steps_sum_1d_count"])
            lab = labs[labs["subject_id"] == subject].iloc[-1]
            assert online.loc[subject, "creatinine_change_from_baseline_mg_dl"] == pytest.approx(
                lab["creatinine_last_mg_dl"] - lab["creatinine_baseline_mg_dl"])
        assert any(project.encode() in key for key in redis_server.scan_iter(count=1000))

        # The table is rebuilt: the same windows recomputed (same event times, a later build) and
        # one subject withdrawn. Redis keeps a stored value whose event time is not older than
        # the new one, so without emptying the view first the old values would stay online.
        rebuilt = daily[daily["subject_id"] != "S0003"].assign(
            steps_sum_1d_count=lambda f: f["steps_sum_1d_count"] + 1000.0,
            created_timestamp=pd.Timestamp("2024-03-11", tz="UTC"))
        rebuilt.to_parquet(tables / "daily_activity.parquet", index=False)
        again = materialize(tmp_path, yaml_file=yaml_file)
        assert again["daily_activity"].startswith("full load")
        assert again["labs"].startswith("incremental")
        online = online_features(subjects, service="endpoint_v1", repo_path=tmp_path,
                                 yaml_file=yaml_file).set_index("subject_id")
        for subject in ("S0001", "S0002"):
            latest = rebuilt[rebuilt["subject_id"] == subject].iloc[-1]
            assert online.loc[subject, "steps_sum_1d_count"] == pytest.approx(latest["steps_sum_1d_count"])
        assert pd.isna(online.loc["S0003", "steps_sum_1d_count"])  # withdrawn: nothing stale online
        assert not pd.isna(online.loc["S0003", "creatinine_change_from_baseline_mg_dl"])  # other views kept
    finally:
        open_store(tmp_path, yaml_file).teardown()  # removes this project's keys from Redis
