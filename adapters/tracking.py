"""MLflow at the edge: keeping a study's embedded tracking store valid when its folder moves.

MLflow's SQL store records where each experiment, run and logged model keeps its artifacts as
absolute ``file://`` URIs. A study's embedded store (``sqlite:///<platform>/mlflow.db`` with its
artifacts in ``<platform>/mlartifacts``) would therefore still point at the old folder after the
study is moved or copied: its models could not be loaded and its lineage not read, and a copy
would write its new runs into the original's folder. :func:`reroot_artifacts` rewrites those
locations to the folder the store is in now.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

# Every column of MLflow 3's SQL store that holds an artifact location (checked against its schema
# in the tests: a new one in a later MLflow would be left pointing at the old folder).
ARTIFACT_COLUMNS = {
    "experiments": "artifact_location",
    "runs": "artifact_uri",
    "logged_models": "artifact_location",
    "model_versions": "storage_location",
}


def reroot_artifacts(tracking_uri: str, artifacts_root: Path) -> str | None:
    """Point the artifact locations of the SQLite store at ``tracking_uri`` under ``artifacts_root``.

    The store's previous root is its experiments' common artifact location; locations under it
    are rewritten to the same place under ``artifacts_root``, in one transaction, and nothing is
    done when they already agree (the usual case: one query). Returns the previous root when it
    was rewritten, else None. Only for the platform's embedded store, whose experiments all keep
    their artifacts in one folder; a tracking server manages its own locations.
    """
    database = sa.make_url(tracking_uri).database
    if not database or not Path(database).is_file():
        return None  # no store yet: MLflow creates it where the study is now
    engine = sa.create_engine(tracking_uri)
    new_root = Path(artifacts_root).resolve().as_uri()
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("experiments"):
                return None  # a new store: MLflow creates its tables on first use
            # Not MLflow's Default experiment (id 0), which keeps its artifacts where the store was
            # first opened from; the platform never logs to it.
            old_roots = {row[0] for row in conn.execute(sa.text(
                "SELECT artifact_location FROM experiments WHERE experiment_id != 0 "
                "AND artifact_location LIKE 'file://%'"))}
            if old_roots in (set(), {new_root}) or len(old_roots) > 1:
                return None
            old_root = old_roots.pop()
            for table, column in ARTIFACT_COLUMNS.items():
                if not sa.inspect(conn).has_table(table):
                    continue
                conn.execute(sa.text(f"UPDATE {table} SET {column} = :new || substr({column}, :cut) "
                                     f"WHERE {column} = :old OR {column} LIKE :prefix ESCAPE '\\'"),
                             {"new": new_root, "cut": len(old_root) + 1, "old": old_root,
                              "prefix": old_root.replace("%", r"\%").replace("_", r"\_") + "/%"})
            return old_root
    finally:
        engine.dispose()
