"""The bulk Redis loader writes exactly what Feast's own materialization writes (real Redis on
127.0.0.1:6379; skipped only when it is unreachable)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.feast_repo import apply_repo, open_store
from adapters.offline_store import source_path
from adapters.redis_loader import load_latest
from tests.adapters.test_feature_store_production import redis_server  # noqa: F401  (fixture)

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 4, 1, tzinfo=UTC)


def write_tables(folder: Path, rng: np.random.Generator) -> None:
    """Every feature table: 40 subjects, rows inside and outside [START, END], ties on the event
    time decided by created_timestamp, NaN values and missing reasons."""
    from features.tables import TABLES

    folder.mkdir()
    subjects = [f"S{k:04d}" for k in range(40)]
    for table in TABLES:
        ends = pd.date_range("2024-02-27", periods=40, freq="D", tz="UTC")  # some before START, some after END
        rows = pd.DataFrame([(s, t) for s in subjects for t in ends if rng.random() < 0.6],
                            columns=["subject_id", "event_timestamp"])
        rows["created_timestamp"] = pd.Timestamp("2024-04-10", tz="UTC")
        # a second version of ten subjects' latest row in the window, built later: it must win
        in_window = rows[rows["event_timestamp"] <= END]
        latest = in_window.groupby("subject_id").tail(1).head(10)
        tie = latest.assign(created_timestamp=pd.Timestamp("2024-04-11", tz="UTC"))
        rows = pd.concat([rows, tie], ignore_index=True)
        for column in table.columns:
            values = rng.normal(50, 10, len(rows))
            values[rng.random(len(rows)) < 0.1] = np.nan
            rows[column] = values
        rows[f"{table.name}_missing_reason"] = np.where(rng.random(len(rows)) < 0.2, "wear time 410 min < 600 min",
                                                        None)
        rows.sample(frac=1, random_state=2).to_parquet(folder / f"{table.name}.parquet", index=False)


def repo(path: Path, project: str, tables: Path) -> Path:
    path.mkdir()
    (path / "feature_store.yaml").write_text(f"""
project: {project}
provider: local
registry: {path / 'registry.db'}
offline_store: {{type: adapters.offline_store.AsofDuckDBOfflineStore}}
online_store: {{type: redis, connection_string: "127.0.0.1:6379"}}
entity_key_serialization_version: 3
""")
    apply_repo(path, tables)
    return path


def hashes(client, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of a project, keyed by the entity part of its key (the key minus the project)."""
    suffix = project.encode()
    return {key[: -len(suffix)]: client.hgetall(key) for key in client.scan_iter(match=b"*" + suffix, count=1000)}


def test_bulk_load_equals_feast_materialize_byte_for_byte(tmp_path, redis_server) -> None:  # noqa: F811
    tables = tmp_path / "tables"
    write_tables(tables, np.random.default_rng(8))
    feast_project, ours_project = (f"rl_{name}_{uuid.uuid4().hex[:8]}" for name in ("feast", "ours"))
    feast_repo = repo(tmp_path / "feast", feast_project, tables)
    ours_repo = repo(tmp_path / "ours", ours_project, tables)
    feast_store, ours_store = open_store(feast_repo), open_store(ours_repo)
    try:
        feast_store.materialize(start_date=START, end_date=END)
        # Every view with a table: the live view's log is empty until events are pushed.
        written = sum(load_latest(ours_store, view, START, END) for view in ours_store.list_feature_views()
                      if source_path(view.batch_source, ours_store.repo_path).is_file())
        expected, got = hashes(redis_server, feast_project), hashes(redis_server, ours_project)
        assert written > 8 * 30 and len(got) == len(expected) == 40
        assert got == expected  # same fields, same serialized values and event times, for every subject

        # The registry records the interval, so `feast materialize-incremental` continues from END.
        for view in open_store(ours_repo).list_feature_views():
            assert view.most_recent_end_time == END or view.name == "vital_signs_live"

        # Feast reads it back, values equal to the latest row per subject in [START, END].
        subjects = ["S0000", "S0007"]
        online = ours_store.get_online_features(features=ours_store.get_feature_service("endpoint_v1"),
                                                entity_rows=[{"subject_id": s} for s in subjects]).to_df()
        daily = pd.read_parquet(tables / "daily_activity.parquet")
        window = daily[(daily["event_timestamp"] >= START) & (daily["event_timestamp"] <= END)]
        for subject, value in zip(online["subject_id"], online["steps_sum_1d_count"], strict=True):
            latest = window[window["subject_id"] == subject].sort_values(["event_timestamp", "created_timestamp"])
            assert (np.isnan(value) and np.isnan(latest["steps_sum_1d_count"].iloc[-1])) or \
                value == latest["steps_sum_1d_count"].iloc[-1]
    finally:
        feast_store.teardown()
        ours_store.teardown()


def test_a_stored_newer_row_is_not_overwritten(tmp_path, redis_server) -> None:  # noqa: F811
    tables = tmp_path / "tables"
    write_tables(tables, np.random.default_rng(9))
    project = f"rl_newer_{uuid.uuid4().hex[:8]}"
    store = open_store(repo(tmp_path / "repo", project, tables))
    view = store.get_feature_view("labs")
    try:
        # A stream pushed a newer value for S0001 after END.
        pushed = pd.DataFrame({"subject_id": ["S0001"], "event_timestamp": [pd.Timestamp("2024-05-01", tz="UTC")],
                               "created_timestamp": [pd.Timestamp("2024-05-01", tz="UTC")]})
        for feature in view.features:
            pushed[feature.name] = "pushed" if feature.name.endswith("missing_reason") else 1.0
        store.write_to_online_store("labs", pushed)
        written = load_latest(store, view, START, END)
        online = store.get_online_features(features=["labs:creatinine_last_mg_dl"],
                                           entity_rows=[{"subject_id": "S0001"}, {"subject_id": "S0002"}]).to_df()
        assert online["creatinine_last_mg_dl"].iloc[0] == 1.0  # the newer pushed value stays
        assert online["creatinine_last_mg_dl"].iloc[1] != 1.0
        assert written == 39  # every subject but S0001
    finally:
        store.teardown()
