"""Model registry governance: the promotion gate, the lineage chain, and reproduction of a run.

* :func:`promote` checks a model version against the acceptance criteria written in study.yaml
  (``training.acceptance``) and only then moves the ``champion`` alias. Every request, accepted
  or refused, is appended to the audit log in the catalog database (``pipelines.models.audit``): who,
  when, model, from and to version, reason and every criterion's result. MLflow keeps no history
  of alias moves; the audit log does, hash-chained and append-only. The entry's hash is also set
  on the model version (tag ``audit.entry_hash``), an anchor outside the log.
* :func:`lineage` walks from a model version (``NAME@ALIAS``, ``NAME/VERSION``) or a run id to
  the run, its datasets, feature service and views, curated parts and raw files with SHA-256 and
  validation reports.
* :func:`reproduce` rebuilds a run's training set from its recorded labels through Feast and
  compares its SHA-256 with the recorded one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adapters.tracking import Lineage, ModelReference, read_lineage
from features.settings import BiomarkerSettings
from pipelines.config import StudyConfig
from pipelines.models.train import (
    TrainingError,
    build_training_set,
    model_config,
    registered_name,
    study_store,
    use_tracking,
)

CHAMPION = "champion"
CANDIDATE = "candidate"


class RegistryError(ValueError):
    """A model, version, alias or run that does not exist, or a reference that cannot be read."""


@dataclass
class Promotion:
    accepted: bool
    name: str
    version: str
    from_version: str | None
    criteria: list[dict]
    entry_hash: str


def _client(config: StudyConfig):
    from mlflow import MlflowClient

    use_tracking(config)
    return MlflowClient()


def _model_key(config: StudyConfig, name: str) -> str:
    prefix = f"{config.study_id}-"
    if not name.startswith(prefix):
        raise RegistryError(f"model {name!r} is not a model of study {config.study_id} (its models are named "
                            f"{prefix}<model>: {', '.join(registered_name(config, m) for m in config.models)})")
    return name[len(prefix):]


def _version(client, name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as error:
        raise RegistryError(f"model {name} has no version {version}: {error.message}") from None


def _alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def alias_version(config: StudyConfig, name: str, alias: str) -> str | None:
    """The version an alias of a registered model points at, or None (no such model or alias)."""
    return _alias_version(_client(config), name, alias)


def run_artifact_json(run_id: str, path: str) -> dict:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except Exception as error:  # MLflow raises several types for a missing artifact
        raise RegistryError(f"run {run_id} has no readable {path}: {error}") from None


def promote(config: StudyConfig, name: str, version: str, *, approver: str, reason: str) -> Promotion:
    """Move ``champion`` to ``name`` version ``version`` if it meets the study's criteria; audit either way."""
    from pipelines.models.audit import AuditLog, Decision
    from training.acceptance import all_passed, evaluate_criteria, results_as_dicts
    from training.tasks import task_named

    if not approver.strip() or not reason.strip():
        raise RegistryError("a promotion needs an approver and a reason")
    model = model_config(config, _model_key(config, name))
    client = _client(config)
    model_version = _version(client, name, version)
    run = client.get_run(model_version.run_id) if model_version.run_id else None
    if run is None:
        raise RegistryError(f"model {name} version {version} was not logged by a run: no lineage to check")
    lineage = run_lineage(run.info.run_id)
    subgroups = None
    if task_named(model.task).subgroup_metrics:
        subgroups = run_artifact_json(run.info.run_id, "subgroup_metrics.json")["rows"]
    outcomes = {entry["report_id"] or entry["raw_path"]: str(entry["validation_outcome"])
                for entry in lineage.raw_files}
    split = lineage.split
    results = evaluate_criteria(model.acceptance, metrics=dict(run.data.metrics), subgroups=subgroups,
                                validation_outcomes=outcomes, train_subjects=set(split.get("train_subjects", [])),
                                test_subjects=set(split.get("test_subjects", [])))
    accepted = all_passed(results)
    previous = _alias_version(client, name, CHAMPION)
    criteria = results_as_dicts(results)
    if accepted:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    try:
        with AuditLog(config.catalog) as log:
            entry = log.record(study_id=config.study_id, model_name=name, alias=CHAMPION, from_version=previous,
                               to_version=str(version), decision=Decision.ACCEPTED if accepted else Decision.REFUSED,
                               approver=approver, reason=reason, criteria=criteria, run_id=run.info.run_id)
    except Exception:
        if accepted:  # no alias move without its audit entry
            if previous is None:
                client.delete_registered_model_alias(name, CHAMPION)
            else:
                client.set_registered_model_alias(name, CHAMPION, previous)
        raise
    client.set_model_version_tag(name, str(version), "audit.entry_hash", entry.entry_hash)
    return Promotion(accepted, name, str(version), previous, criteria, entry.entry_hash)


def resolve(config: StudyConfig, reference: str):
    """A model version from ``NAME@ALIAS`` or ``NAME/VERSION``, or None with the run id for a bare run id."""
    client = _client(config)
    if not ModelReference.is_reference(reference):
        return client, None, reference
    parsed = ModelReference.parse(reference)
    version = parsed.version
    if parsed.alias is not None:
        version = _alias_version(client, parsed.name, parsed.alias)
        if version is None:
            raise RegistryError(f"model {parsed.name} has no alias {parsed.alias!r}")
    return client, _version(client, parsed.name, version), None


def run_lineage(run_id: str) -> Lineage:
    """A training run's lineage record, or ``RegistryError`` saying why it cannot be read."""
    try:
        return read_lineage(run_id)
    except ValueError as error:
        raise RegistryError(str(error)) from None


def lineage(config: StudyConfig, reference: str) -> dict:
    """The chain behind a model version or run: version, run, datasets, features, curated and raw files."""
    from mlflow.exceptions import MlflowException

    client, model_version, run_id = resolve(config, reference)
    run_id = model_version.run_id if model_version is not None else run_id
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise RegistryError(f"no run {run_id}: {error.message}") from None
    if run.data.tags.get("kind") == "scoring":  # a batch of scores: its inputs, then the model's chain
        scoring = run_artifact_json(run_id, "scoring.json")
        chain = lineage(config, f"{scoring['model']}/{scoring['model_version']}")
        return {"scores": {"run_id": run_id, **scoring}, **chain}
    record = run_lineage(run_id)
    chain = {}
    if model_version is not None:
        chain["model_version"] = {
            "name": model_version.name, "version": str(model_version.version),
            "aliases": list(model_version.aliases), "source": model_version.source,
            "audit_entry_hash": model_version.tags.get("audit.entry_hash")}
    chain["run"] = {"run_id": run_id, "experiment_id": run.info.experiment_id, "name": run.info.run_name,
                    "status": run.info.status, "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
                    .isoformat(), "params": dict(run.data.params),
                    "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if "bootstrap" not in k}}
    chain["datasets"] = [{"name": item.dataset.name, "context": _tag(item.tags, "mlflow.data.context"),
                          "sha256": _tag(item.tags, "sha256"), "rows": _tag(item.tags, "rows"),
                          "mlflow_digest": item.dataset.digest} for item in run.inputs.dataset_inputs]
    chain["features"] = record.model_dump(include={"feature_service", "feature_views", "feast_definitions_sha256",
                                                   "features", "features_dropped"})
    chain["feature_build"] = record.feature_build
    chain["curated_parts"] = record.curated_parts
    chain["raw_files"] = record.raw_files
    chain["validation_outcomes"] = record.validation_outcomes
    chain["code"] = {**record.code, "packages": record.packages, "study_config_sha256": record.study_config_sha256}
    return chain


def _tag(tags, key: str) -> str | None:
    for tag in tags:
        if tag.key == key:
            return tag.value
    return None


def reproduce(config: StudyConfig, reference: str, *, repo_path: Path | None = None,
              yaml_file: Path | None = None) -> dict:
    """Rebuild a run's training set from its recorded labels; compare SHA-256s with the recorded ones.

    ``reference`` is the training run's id, or a model version (``NAME@ALIAS``, ``NAME/VERSION``)
    whose run it is.
    """
    import mlflow

    client, version, run_id = resolve(config, reference)
    run_id = version.run_id if version is not None else run_id
    record = run_lineage(run_id)
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/labels.parquet", dst_path=folder)
        except Exception as error:
            raise RegistryError(f"run {run_id} has no labels.parquet artifact: {error}") from None
        entity = pd.read_parquet(path)
    client.get_run(run_id)  # the run exists (the artifacts above could come from a deleted run)
    try:
        rebuilt = build_training_set(config, record.model, repo_path=repo_path, yaml_file=yaml_file, entity=entity)
    except TrainingError as error:
        raise RegistryError(f"run {run_id}: the training set cannot be rebuilt: {error}") from None
    checks = {
        "entity_frame_sha256": (record.entity_frame["sha256"], rebuilt.entity_sha256),
        "training_frame_sha256": (record.training_frame["sha256"], rebuilt.frame_sha256),
        "feast_definitions_sha256": (record.feast_definitions_sha256, rebuilt.definitions_sha256),
    }
    result = {"run_id": run_id, "model": record.model, "rows": len(rebuilt.frame),
              "checks": {key: {"recorded": a, "rebuilt": b, "match": a == b} for key, (a, b) in checks.items()}}
    result["reproduced"] = all(check["match"] for check in result["checks"].values())
    if not result["reproduced"] and record.feature_build != _current_build(config, repo_path, yaml_file):
        versions = record.feature_build.get("lake_versions")
        result["hint"] = ("the feature tables were rebuilt since this run (new curated data, feature code or "
                          "biomarker settings): rebuild them from the recorded inputs to reproduce it"
                          + (" (the lake and settings as they were: biomarkers build-features STUDY "
                             f"--lake-versions-of {reference}; without the option it returns to the newest lake and "
                             "the study's settings)" if versions else ""))
    return result


@dataclass(frozen=True)
class RecordedBuild:
    """What a training run's feature tables were built from: the lake snapshot (source -> Delta
    table version) and the biomarker settings (``None`` for a run that recorded none)."""

    lake_versions: dict[str, int]
    settings: BiomarkerSettings | None


def recorded_build(config: StudyConfig, reference: str) -> RecordedBuild:
    """The lake snapshot and biomarker settings a training run's feature tables were built from.

    ``reference`` is the run's id or its model version (``NAME@ALIAS``, ``NAME/VERSION``). The
    lake versions stay readable (time travel) while the lake moves on: superseded parts are kept.
    """
    _, version, run_id = resolve(config, reference)
    run_id = version.run_id if version is not None else run_id
    feature_build = run_lineage(run_id).feature_build
    versions = feature_build.get("lake_versions")
    if not versions:
        raise RegistryError(f"run {run_id} recorded no lake versions: it was trained before the curated lake "
                            "had versioned tables, so the lake as it read it cannot be named")
    pipeline = feature_build.get("pipeline")
    return RecordedBuild({str(source): int(number) for source, number in versions.items()},
                         BiomarkerSettings.model_validate(pipeline["settings"]) if pipeline else None)


def _current_build(config: StudyConfig, repo_path: Path | None, yaml_file: Path | None) -> dict:
    from adapters.feast_repo import feature_tables_dir
    from pipelines.build.local import MANIFEST, MANIFEST_BUILD_KEYS

    tables = feature_tables_dir(study_store(config, repo_path, yaml_file))
    manifest = json.loads((tables / MANIFEST).read_text()) if (tables / MANIFEST).is_file() else {}
    return {key: manifest.get(key) for key in MANIFEST_BUILD_KEYS}
