"""Feast at the edge: register the feature repo, materialize it, read online features back.

The repository root is the Feast repo (``feature_store.yaml`` there holds the infrastructure);
``features.definitions`` holds every Feast object. Only this module and the CLI talk to Feast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def feast_objects(tables_dir: Path | None = None) -> list:
    """Every Feast object of the repo, as `feast apply` would find them (tables from ``tables_dir``)."""
    from features.definitions import FEATURE_TABLES_DIR, build_definitions

    return list(build_definitions(tables_dir or FEATURE_TABLES_DIR).values())


def open_store(repo_path: Path = REPOSITORY_ROOT, yaml_file: Path | None = None):
    """The feature store of the repo; ``yaml_file`` selects other infrastructure (production)."""
    from feast import FeatureStore

    if yaml_file is None:
        return FeatureStore(repo_path=str(repo_path))
    return FeatureStore(repo_path=str(repo_path), fs_yaml_file=Path(yaml_file))


def apply_repo(repo_path: Path = REPOSITORY_ROOT, tables_dir: Path | None = None,
               yaml_file: Path | None = None) -> list[str]:
    """Register every definition (what `feast apply` does); return the names registered."""
    store = open_store(repo_path, yaml_file)
    objects = feast_objects(tables_dir)
    store.apply(objects)
    return sorted(obj.name for obj in objects)


def materialize(repo_path: Path = REPOSITORY_ROOT, end: datetime | None = None,
                yaml_file: Path | None = None) -> dict[str, str]:
    """Load the latest feature values into the online store, incrementally where that is right.

    A view whose table is unchanged since its last materialization continues from where it
    stopped (`feast materialize-incremental`). A view never materialized, or whose table was
    rebuilt since (rows recomputed or withdrawn with old event times, which an incremental run
    would never see), is emptied in the online store and loaded again from its table's first
    row: Feast's incremental default would start at ``end - ttl`` and silently skip older
    windows, the Redis store keeps a stored value whose event time is not older than the new
    one (a recomputed value of the same window would be dropped), and no store forgets a
    subject withdrawn from the table.
    """
    import json

    import pyarrow.parquet as pq

    store = open_store(repo_path, yaml_file)
    end = end or datetime.now(UTC)
    # Which table build each view was loaded from: beside the registry file, or for a SQL
    # registry in the repo's data folder, one record per project.
    registry = Path(store.config.registry.path)
    folder = registry.parent if registry.suffix == ".db" else repo_path / "data" / "feast"
    record_path = folder / f"materialized_tables.{store.project}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    done = {}
    for view in store.list_feature_views():
        path = Path(view.batch_source.path)
        if not path.is_file():
            done[view.name] = "no feature table yet"
            continue
        stamps = pq.read_table(path, columns=["event_timestamp", "created_timestamp"])
        built = str(pd.Timestamp(stamps.column("created_timestamp")[0].as_py()))
        if view.materialization_intervals and record.get(view.name) == built:
            start = view.most_recent_end_time
            done[view.name] = f"incremental to {end.isoformat()}"
        else:
            first = pd.Timestamp(stamps.column("event_timestamp").to_pandas().min())
            start = (first - pd.Timedelta(seconds=1)).to_pydatetime()
            clear_online_view(store, view)
            done[view.name] = f"full load {start.isoformat()} to {end.isoformat()} (table built {built})"
        _load(store, view, start, end, emptied=done[view.name].startswith("full load"))
        record[view.name] = built
    record_path.write_text(json.dumps(record, indent=2))
    return done


def _load(store, view, start: datetime, end: datetime, *, emptied: bool) -> None:
    """Materialize one view over ``[start, end]``: Feast's own path, or the bulk Redis loader.

    The loader writes what Feast writes, some 20x faster (``pipelines.redis_loader``); every
    other online store gets Feast's ``materialize``.
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    if isinstance(store.config.online_store, RedisOnlineStoreConfig):
        from pipelines.redis_loader import load_latest

        load_latest(store, view, start, end, emptied=emptied)
    else:
        store.materialize(start_date=start, end_date=end, feature_views=[view.name])


def clear_online_view(store, view) -> None:
    """Remove every online row of one feature view, leaving its (empty) table in place.

    Through the online store's own ``update``, as `feast apply` uses it for a deleted view:
    SQLite drops the view's table (then it is created again), Redis deletes the view's fields
    from every entity hash of the project.
    """
    online = store._get_provider().online_store
    common = {"config": store.config, "entities_to_delete": [], "entities_to_keep": [], "partial": True}
    online.update(tables_to_delete=[view], tables_to_keep=[], **common)
    online.update(tables_to_delete=[], tables_to_keep=[view], **common)


def online_features(subject_ids: list[str], service: str = "endpoint_v1",
                    repo_path: Path = REPOSITORY_ROOT, yaml_file: Path | None = None) -> pd.DataFrame:
    """The online feature values of a feature service for some subjects, read back through Feast."""
    store = open_store(repo_path, yaml_file)
    response = store.get_online_features(
        features=store.get_feature_service(service),
        entity_rows=[{"subject_id": subject_id} for subject_id in subject_ids],
    )
    return response.to_df()
