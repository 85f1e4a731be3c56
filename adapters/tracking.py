"""MLflow at the edge: model references, the typed lineage record of a training run, and a study's
embedded tracking store kept valid when its folder moves.

MLflow's SQL store records where each experiment, run and logged model keeps its artifacts as
absolute ``file://`` URIs. A study's embedded store (``sqlite:///<platform>/mlflow.db`` with its
artifacts in ``<platform>/mlartifacts``) would therefore still point at the old folder after the
study is moved or copied: its models could not be loaded and its lineage not read, and a copy
would write its new runs into the original's folder. :func:`reroot_artifacts` rewrites those
locations to the folder the store is in now.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

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


# --------------------------------------------------------------------------------------------
# Model references and the lineage record


@dataclass(frozen=True)
class ModelReference:
    """A registered model version named as ``NAME@ALIAS`` (the version an alias points at) or
    ``NAME/VERSION``; :meth:`parse` is the one place such a reference is read."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        """``ValueError`` naming the reference unless it is ``NAME@ALIAS`` or ``NAME/VERSION``."""
        if "@" in text:
            name, _, alias = text.partition("@")
            if name and alias:
                return cls(name, alias=alias)
        elif "/" in text:
            name, _, version = text.rpartition("/")
            if name and version.isdigit():
                return cls(name, version=version)
        raise ValueError(f"{text!r} is not a model reference: NAME@ALIAS or NAME/VERSION "
                         "(e.g. demo-hospitalization_risk@champion, demo-hospitalization_risk/3)")

    @staticmethod
    def is_reference(text: str) -> bool:
        """Whether ``text`` names a model version rather than, say, a run id."""
        try:
            ModelReference.parse(text)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias is not None else f"{self.name}/{self.version}"


LINEAGE_ARTIFACT = "lineage.json"


class Lineage(BaseModel):
    """A training run's ``lineage.json``: everything that fed its training set, from the raw files
    to the code. Written once by the training run (:func:`log_lineage`) and read back by the
    registry, batch scoring and the online service (:func:`read_lineage`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    study_id: str
    model: str
    task: str
    feature_service: str
    feature_views: list[str]
    feast_definitions_sha256: str
    features: list[str]
    features_dropped: dict[str, str] = Field(default_factory=dict)
    entity_frame: dict[str, Any]
    training_frame: dict[str, Any]
    feature_build: dict[str, Any] = Field(default_factory=dict)
    raw_files: list[dict[str, Any]] = Field(default_factory=list)
    curated_parts: list[str] = Field(default_factory=list)
    validation_outcomes: dict[str, int] = Field(default_factory=dict)
    code: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str | None] = Field(default_factory=dict)
    study_config_sha256: str | None = None
    study_file: str | None = None
    split: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of_external_model(cls, study_id: str, task: str, feature_service: str, feature_views: list[str],
                          features: list[str]) -> Lineage:
        """The record of a model fitted outside the platform's training runs (imported, or a
        benchmark's): what serving it needs; its training data is unknown, so it cannot be reproduced."""
        unknown = {"sha256": "unknown", "rows": 0}
        return cls(study_id=study_id, model="external", task=task, feature_service=feature_service,
                   feature_views=feature_views, feast_definitions_sha256="unknown", features=features,
                   entity_frame=unknown, training_frame=unknown)


def log_lineage(lineage: Lineage) -> None:
    """Log the record as the active MLflow run's ``lineage.json``."""
    import mlflow

    mlflow.log_dict(lineage.model_dump(mode="json"), LINEAGE_ARTIFACT)


def read_lineage(run_id: str) -> Lineage:
    """A run's lineage record, through the current tracking URI; ``ValueError`` naming the run and
    what is missing when the run has none or it is incomplete."""
    import mlflow
    from pydantic import ValidationError

    try:
        document = mlflow.artifacts.load_dict(f"runs:/{run_id}/{LINEAGE_ARTIFACT}")
    except Exception as error:  # MLflow raises its own types per store
        raise ValueError(f"run {run_id} has no readable {LINEAGE_ARTIFACT}: {error}") from None
    try:
        return Lineage.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"run {run_id}: {LINEAGE_ARTIFACT} is incomplete ({problems})") from None
