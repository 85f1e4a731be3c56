"""Feast at the edge: a study's Feast repo folder, registering it, materializing it, reading it back.

Every study has a Feast repo folder of its own under its platform folder (:func:`write_study_repo`):
a ``feature_store.yaml`` made from an infrastructure template with the study's project name, and a
definitions entry point over the study's feature tables, so that the stock Feast CLI works per
study (``feast -c FOLDER ui``) as the platform does. ``features.definitions`` builds the objects.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

EMBEDDED_TEMPLATE = Path(__file__).resolve().with_name("feature_store.yaml")
"""The embedded defaults (the project's DuckDB offline store, SQLite online store, registry file),
the repository's ``feature_store.yaml``, packaged with this module. Local paths in a template are
relative to the study's Feast repo folder."""

MAX_TEMPLATE_BYTES = 64 * 1024
"""The largest infrastructure template read (a Feast YAML is well under a kilobyte or two)."""

DEFINITIONS_ENTRY = "definitions.py"

_ENTRY_POINT = '''"""Feast definitions of study {study_id}, written by `biomarkers`: `feast -c <this folder> plan`.

The views read the study's feature tables in {tables!r}, relative to this folder.
"""

from pathlib import Path

from features.definitions import build_definitions

globals().update(build_definitions(Path({tables!r})))
'''


# The configuration class of Feast's Spark offline store, by name: matching it spares importing
# pyspark where the store is another one (and pyspark may not be installed).
SPARK_OFFLINE_CONFIG = "feast.infra.offline_stores.contrib.spark_offline_store.spark.SparkOfflineStoreConfig"


def feast_objects(tables_dir: Path, offline: str = "file") -> list:
    """Every Feast object of the repo, as `feast apply` would find them (tables from ``tables_dir``,
    read through data sources of the ``offline`` kind, ``features.definitions.OFFLINE_KINDS``)."""
    from features.definitions import build_definitions

    return list(build_definitions(tables_dir, offline).values())


def project_name(study_id: str) -> str:
    """The study's Feast project: its id, with ``_`` for ``-`` (Feast's SQLite online store names
    tables after the project and refuses hyphens)."""
    return study_id.replace("-", "_")


def write_study_repo(folder: Path, study_id: str, tables_dir: Path, template: Path | None = None) -> Path:
    """Write (or refresh) a study's Feast repo folder; return the folder.

    ``feature_store.yaml`` is ``template`` (production: a SQL registry and Redis shared by every
    study) with the study's project (:func:`project_name`), so that studies on one registry and
    online store stay apart; without a template the folder keeps the infrastructure it has, or
    gets :data:`EMBEDDED_TEMPLATE`. ``definitions.py`` builds the study's
    views over ``tables_dir``, given relative to the folder, so that the registry holds no
    absolute path and the study's folder can be moved. Files are rewritten only when their
    content changes (Feast caches the registry by the YAML's time stamp).
    """
    folder.mkdir(parents=True, exist_ok=True)
    tables = Path(os.path.relpath(tables_dir, folder)).as_posix()
    _write_if_changed(folder / DEFINITIONS_ENTRY, _ENTRY_POINT.format(study_id=study_id, tables=tables))
    if template is None and (folder / "feature_store.yaml").is_file():
        return folder  # the infrastructure it was written with stays until another template is given
    template = Path(template) if template is not None else EMBEDDED_TEMPLATE
    if template.stat().st_size > MAX_TEMPLATE_BYTES:
        raise ValueError(f"Feast infrastructure template {template}: larger than {MAX_TEMPLATE_BYTES} bytes")
    infrastructure = yaml.safe_load(template.read_text())
    if not isinstance(infrastructure, dict):
        raise ValueError(f"Feast infrastructure template {template}: not a mapping of settings")
    infrastructure["project"] = project_name(study_id)
    _write_if_changed(folder / "feature_store.yaml",
                      f"# Study {study_id}: written by `biomarkers` from {template.name}; edit the template, not "
                      "this file.\n" + yaml.safe_dump(infrastructure, sort_keys=False))
    return folder


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def tables_for_sources(store, tables_dir: Path) -> Path:
    """The feature tables folder as the store's data sources name it: relative to the repo folder
    (the registry holds no absolute path) for the file-based stores, which resolve it against the
    repo; absolute for Feast's Spark store, whose executors resolve paths against their own
    working directory."""
    if offline_kind(store) == "spark":
        return Path(tables_dir).resolve()
    return Path(os.path.relpath(Path(tables_dir).resolve(), Path(store.repo_path).resolve()))


def feature_tables_dir(store) -> Path:
    """The folder of the feature tables the store's views read (their paths resolved against the repo)."""
    from adapters.offline_store import source_path

    return source_path(store.list_feature_views()[0].batch_source, store.repo_path).parent


def offline_kind(store) -> str:
    """The kind of data source the store's offline store reads: ``"spark"`` for Feast's Spark
    offline store (``type: spark``, its class path, or a subclass), which accepts ``SparkSource``
    only; ``"file"`` for every other store (DuckDB, the project's, Feast's file store)."""
    classes = type(store.config.offline_store).__mro__
    return "spark" if any(f"{cls.__module__}.{cls.__qualname__}" == SPARK_OFFLINE_CONFIG for cls in classes) else "file"


def open_store(repo_path: Path, yaml_file: Path | None = None):
    """The feature store of the repo; ``yaml_file`` selects other infrastructure (production, Spark)."""
    from feast import FeatureStore
    from feast.errors import FeastModuleImportError

    try:
        if yaml_file is None:
            store = FeatureStore(repo_path=str(repo_path))
        else:
            store = FeatureStore(repo_path=str(repo_path), fs_yaml_file=Path(yaml_file))
        kind = offline_kind(store)
    except FeastModuleImportError as error:
        if getattr(error.__cause__, "name", None) != "pyspark":
            raise
        from adapters.spark import INSTALL_HINT, SparkNotInstalledError

        raise SparkNotInstalledError(f"{yaml_file or Path(repo_path) / 'feature_store.yaml'} configures Feast's "
                                     f"Spark offline store or compute engine, which needs pyspark: {INSTALL_HINT}"
                                     ) from error
    if kind == "spark":
        _prepare_spark(store.config)
    return store


def _prepare_spark(config) -> None:
    """Make the Spark session that Feast starts the project's kind of session.

    Feast's Spark offline store and compute engine join the active session if there is one (the
    Spark build engine's, the tests' shared one), else start one from their ``spark_conf`` when
    they first need it, which may be in the middle of a retrieval. So before that: its Python
    workers run this interpreter, and the project's defaults (session time zone UTC, which the
    naive times Spark hands back to pandas are read in) apply unless the YAML sets them.
    """
    from adapters.spark import DEFAULT_CONF, use_this_python

    use_this_python()
    for settings in (config.offline_store, config.batch_engine):
        if hasattr(settings, "spark_conf"):
            settings.spark_conf = {**DEFAULT_CONF, **(settings.spark_conf or {})}


def apply_repo(repo_path: Path, tables_dir: Path, yaml_file: Path | None = None) -> list[str]:
    """Register every definition (what `feast apply` does); return the names registered.

    The views' data sources follow the store's offline store (:func:`offline_kind`): a repo on
    Feast's Spark offline store gets the same views over ``SparkSource``s of the same files.
    """
    store = open_store(repo_path, yaml_file)
    registry = store.config.registry
    if registry.registry_type == "file" and "://" not in registry.path:
        # Feast creates the registry file's folder but not its parents (data/feast/spark/ of the Spark YAML).
        (Path(store.repo_path) / registry.path).parent.mkdir(parents=True, exist_ok=True)
    objects = feast_objects(tables_for_sources(store, tables_dir), offline_kind(store))
    store.apply(objects)
    return sorted(obj.name for obj in objects)


def materialize(repo_path: Path, end: datetime | None = None,
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

    from adapters.offline_store import fold_push_logs, source_path

    store = open_store(repo_path, yaml_file)
    end = end or datetime.now(UTC)
    # Which table build each view was loaded from: beside the registry file, or for a SQL
    # registry in the repo folder, one record per project. A relative registry path is the
    # repo's, as Feast reads it, not the working directory's.
    registry = Path(store.repo_path) / store.config.registry.path
    folder = registry.parent if registry.suffix == ".db" else Path(store.repo_path)
    record_path = folder / f"materialized_tables.{store.project}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    done = {}
    views = store.list_feature_views()
    fold_push_logs(views, store.repo_path)  # pushes since the last fold are in the log file before it is read
    for view in views:
        path = source_path(view.batch_source, store.repo_path)
        if not path.is_file():
            done[view.name] = "no feature table yet"
            continue
        stamps = pq.read_table(path, columns=["event_timestamp", "created_timestamp"])
        if stamps.num_rows == 0:  # no subject has rows in it (e.g. no source of its kind): nothing online either
            clear_online_view(store, view)
            record.pop(view.name, None)
            done[view.name] = "empty feature table"
            continue
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

    The loader writes what Feast writes, some 20x faster (``adapters.redis_loader``), reading
    the Parquet file itself with DuckDB; every other online store, and every store of a repo on
    Spark (whose compute engine is there to do the reading), gets Feast's ``materialize``.
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    if isinstance(store.config.online_store, RedisOnlineStoreConfig) and offline_kind(store) == "file":
        from adapters.redis_loader import load_latest

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


def historical_features(store, entity: pd.DataFrame, features, time_column: str = "event_timestamp") -> pd.DataFrame:
    """Feast's point-in-time retrieval for the rows of ``entity``, the same frame whatever the offline store.

    Parameters
    ----------
    store : the feature store (:func:`open_store`).
    entity : DataFrame of shape (n_rows, n_columns)
        The entity frame: join keys, ``time_column`` (timezone-aware, or naive UTC) and any other
        columns (labels), which come back as they are.
    features : a feature service or a list of feature references.

    Returns
    -------
    The entity frame's columns and the features, rows in the entity frame's order, with
    ``time_column`` as UTC at microsecond resolution (the lake's). Stores differ in both: the
    project's keeps the order and the entity frame's times as given, while Feast's Spark store
    returns rows in no set order, its times naive in the Spark session's time zone, in nanoseconds.
    So the rows are numbered going in, put back in order, and their times taken from the entity
    frame (they are its times, echoed) in one form.
    """
    row = "__entity_row"
    rows = entity.reset_index(drop=True).assign(**{row: np.arange(len(entity))})
    frame = store.get_historical_features(entity_df=rows.copy(), features=features).to_df()
    frame = frame.sort_values(row, ignore_index=True)
    times = pd.to_datetime(rows[time_column], utc=True).dt.as_unit("us")
    frame[time_column] = times.take(frame[row]).reset_index(drop=True)
    return frame.drop(columns=row)


def online_features(subject_ids: list[str], service: str = "endpoint_v1", *, repo_path: Path,
                    yaml_file: Path | None = None) -> pd.DataFrame:
    """The online feature values of a feature service for some subjects, read back through Feast."""
    store = open_store(repo_path, yaml_file)
    response = store.get_online_features(
        features=store.get_feature_service(service),
        entity_rows=[{"subject_id": subject_id} for subject_id in subject_ids],
    )
    return response.to_df()
