"""Train a study's model on a Feast training set and record it in MLflow with its full lineage.

``train(config, model)``: the labels form the entity frame; Feast's point-in-time retrieval
through the model's feature service builds the training set; ``training`` splits it by subject,
fits, evaluates; this module logs everything to MLflow (one experiment per study) and registers
the model with the alias ``candidate``. Every check that can refuse a training set (unknown
model or feature service, no rows, one class, no usable feature) runs before a run is started,
and the model is registered only after everything else is logged: a failure leaves no
registered model and moves no alias.

What a run records, so a reviewer can trust it and ``biomarkers reproduce`` can rebuild it:

* parameters, metrics with bootstrap confidence intervals, subgroup metrics, plots (ROC,
  calibration, feature importance), the model with its signature and an input example;
* datasets as MLflow inputs (training, evaluation, labels) with the full-content SHA-256
  (``training.digests.frame_sha256``) as a tag: MLflow's own digest samples 10,000 rows;
* ``lineage.json`` and ``lineage.*`` tags: feature service and views with a hash of their
  Feast definitions, the label frame's and training frame's hashes, every raw file behind the
  features with its SHA-256, validation report id and outcome (from the feature build's
  manifest), the git commit, package versions and a hash of the study configuration;
* ``labels.parquet``, the entity frame (pseudonymous subject ids, times, labels), so the training
  set can be rebuilt; and ``model_card.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.feast_repo import feature_tables_dir, historical_features, open_store
from adapters.tracking import LINEAGE_ARTIFACT, Lineage, log_lineage, read_lineage
from pipelines.config import ENDPOINTS_SOURCE, SUBJECTS_SOURCE, ModelConfig, StudyConfig
from pipelines.ingest.lake import read_table
from training.evaluation import Evaluation, EvaluationSettings

logger = logging.getLogger(__name__)

KEYS = ["subject_id", "event_timestamp"]
LABEL = "label"
PACKAGES = ("feast", "mlflow", "scikit-learn", "torch", "pandas", "numpy", "pyarrow", "duckdb",
            "scikit-digital-health", "great-expectations")


class TrainingError(ValueError):
    """A training set or model configuration that cannot train a model; nothing was recorded."""


@dataclass
class TrainingSet:
    """A point-in-time training set: one row per entity row, its label and its features."""

    model_name: str
    model: ModelConfig
    entity: pd.DataFrame  # subject_id, event_timestamp, label
    frame: pd.DataFrame  # entity columns + features, in the entity frame's order
    features: list[str]
    dropped: dict[str, str] = field(default_factory=dict)  # feature column -> why it is not used
    feature_views: list[str] = field(default_factory=list)
    definitions_sha256: str = ""

    @property
    def entity_sha256(self) -> str:
        from training.digests import frame_sha256

        return frame_sha256(self.entity, sort_by=KEYS)

    @property
    def frame_sha256(self) -> str:
        from training.digests import frame_sha256

        return frame_sha256(self.frame, sort_by=KEYS)


@dataclass
class TrainResult:
    run_id: str
    registered_name: str
    version: str
    metrics: dict[str, float]
    training_sha256: str
    entity_sha256: str
    lineage: Lineage
    reused: bool = False  # an earlier run on the same training set, settings and code


def registered_name(config: StudyConfig, model_name: str) -> str:
    """The registry name of a study's model: ``<study>-<model>``, so studies sharing a server never clash."""
    return f"{config.study_id}-{model_name}"


def model_config(config: StudyConfig, model_name: str) -> ModelConfig:
    if model_name not in config.models:
        known = ", ".join(sorted(config.models)) or "none"
        raise TrainingError(f"study {config.study_id} has no model {model_name!r} (its models: {known}); "
                            "add it under `models:` in study.yaml")
    return config.models[model_name]


# --------------------------------------------------------------------------------------------
# Entity frames and the point-in-time training set


def endpoint_labels(config: StudyConfig, model: ModelConfig) -> pd.DataFrame:
    """The entity frame of an endpoint model: one row per subject and index time, its outcome."""
    endpoints = read_table(config.lake_root, ENDPOINTS_SOURCE)
    if endpoints is None or endpoints.empty:
        raise TrainingError(f"study {config.study_id} has no curated endpoints: run `biomarkers ingest` first")
    if model.endpoint is not None:
        known = sorted(endpoints["endpoint"].astype(str).unique())
        endpoints = endpoints[endpoints["endpoint"] == model.endpoint]
        if endpoints.empty:
            raise TrainingError(f"endpoint {model.endpoint!r} has no rows in the endpoints file (endpoints there: "
                                f"{', '.join(known)})")
    return pd.DataFrame({
        "subject_id": endpoints["subject_id"].astype(str),
        "event_timestamp": pd.to_datetime(endpoints["index_time"], utc=True),
        LABEL: endpoints["outcome"].astype("int64"),
    }).reset_index(drop=True)


def anomaly_entities(config: StudyConfig, model: ModelConfig, feature_tables: Path) -> pd.DataFrame:
    """The entity frame of an anomaly model: every row (subject, window end) of its entity table
    (daily biomarker vectors, hourly vital-sign windows), with label 1 where a labelled episode
    (``model.labels``) overlaps the row's window, else 0 (-1 for every row without labels)."""
    path = feature_tables / f"{model.entity_table}.parquet"
    if not path.is_file():
        raise TrainingError(f"no feature table {model.entity_table!r} in {feature_tables}: run "
                            "`biomarkers build-features` or fix entity_table in study.yaml")
    rows = pd.read_parquet(path, columns=KEYS)
    entity = rows.drop_duplicates().sort_values(KEYS, ignore_index=True)
    entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
    if model.labels is None:
        return entity.assign(**{LABEL: -1})
    episodes = pd.read_csv(config.resolve(model.labels))
    missing = {"subject_id", "start", "end"} - set(episodes.columns)
    if missing:
        raise TrainingError(f"{model.labels}: no column {sorted(missing)}; labelled episodes need subject_id, "
                            "start, end")
    episodes["start"] = pd.to_datetime(episodes["start"], utc=True)
    episodes["end"] = pd.to_datetime(episodes["end"], utc=True)
    window_start = entity["event_timestamp"] - pd.Timedelta(hours=model.window_hours)
    label = np.zeros(len(entity), dtype=np.int64)
    for episode in episodes.itertuples():
        overlaps = ((entity["subject_id"] == episode.subject_id) & (window_start < episode.end)
                    & (entity["event_timestamp"] > episode.start))
        label[overlaps.to_numpy()] = 1
    return entity.assign(**{LABEL: label})


ENTITY_FRAMES: dict[str, Callable[[StudyConfig, ModelConfig, object], pd.DataFrame]] = {
    # (config, model, feature store); the functions are looked up when called, so a test can replace them
    "endpoint": lambda config, model, store: endpoint_labels(config, model),
    "anomaly": lambda config, model, store: anomaly_entities(config, model, feature_tables_dir(store)),
}
"""The entity frame of each task of ``training.tasks.TASKS``, from the study and its feature store."""


def study_store(config: StudyConfig, repo_path: Path | None = None, yaml_file: Path | None = None):
    """The feature store of the study's own Feast repo folder (``yaml_file``: its infrastructure
    template), or of another repo (``repo_path``, with ``yaml_file`` selecting its infrastructure)."""
    if repo_path is None:
        return open_store(config.feast_repo(yaml_file))
    return open_store(repo_path, yaml_file)


def build_training_set(config: StudyConfig, model_name: str, *, repo_path: Path | None = None,
                       yaml_file: Path | None = None, entity: pd.DataFrame | None = None) -> TrainingSet:
    """Labels, then Feast's point-in-time features through the model's feature service.

    ``entity`` replaces the labels read from the study (``biomarkers reproduce`` passes the
    recorded ones). Raises :class:`TrainingError` for anything that cannot train a model.
    """
    from training.tasks import task_named

    model = model_config(config, model_name)
    store = study_store(config, repo_path, yaml_file)
    try:
        service = store.get_feature_service(model.feature_service)
    except Exception as error:  # Feast raises its own not-found type per registry kind
        known = ", ".join(sorted(s.name for s in store.list_feature_services())) or "none"
        raise TrainingError(f"model {model_name}: unknown feature service {model.feature_service!r} (registered: "
                            f"{known}); run `biomarkers materialize` or fix study.yaml") from error
    task = task_named(model.task)
    if entity is None:
        entity = ENTITY_FRAMES[task.name](config, model, store)
    if entity.empty:
        raise TrainingError(f"model {model_name}: the training set is empty (no labelled rows)")
    if task.needs_both_outcomes and entity[LABEL].nunique() < 2:
        raise TrainingError(f"model {model_name}: every label is {entity[LABEL].iloc[0]}; {task.name} models "
                            "need both outcomes")
    entity = entity[[*KEYS, LABEL]].reset_index(drop=True)
    frame = historical_features(store, entity, service)  # the same frame from every offline store
    # The service's own features only: Feast also returns the inputs of its on-demand views
    declared = [feature.name for projection in service.feature_view_projections for feature in projection.features]
    candidates = [c for c in declared if c in frame.columns]
    features, dropped = [], {}
    for column in candidates:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            dropped[column] = "not numeric (a reason text, not a model input)"
        elif frame[column].isna().all():
            dropped[column] = "null in every row"
        else:
            features.append(column)
    if not features:
        raise TrainingError(f"model {model_name}: every feature of {model.feature_service} is null for these "
                            f"{len(frame)} rows (build and materialize features first: `biomarkers build-features`)")
    views = sorted({projection.name for projection in service.feature_view_projections})
    # Model inputs are float64 (an integer column in a model signature cannot carry a missing value)
    frame = frame.astype(dict.fromkeys(features, "float64"))
    return TrainingSet(model_name, model, entity.reset_index(drop=True), frame[[*KEYS, LABEL, *features]],
                       features, dropped, views, _definitions_sha256(store, service, views))


def _definitions_sha256(store, service, views: list[str]) -> str:
    """Hash of the Feast definitions behind a service: its spec and each view's spec, without the
    registry's bookkeeping (see ``_definition_bytes``)."""
    digest = hashlib.sha256(_definition_bytes(service.to_proto().spec))
    for name in views:
        try:
            view = store.get_feature_view(name)
        except Exception:  # an on-demand view
            view = store.get_on_demand_feature_view(name)
        digest.update(_definition_bytes(view.to_proto().spec))
    return digest.hexdigest()


def _definition_bytes(spec) -> bytes:
    """A Feast spec's bytes without any ``meta`` (created and last-updated times) nested in it.

    An on-demand view's spec embeds its source views' data sources with their ``meta``, which
    every ``feast apply`` stamps anew: with it, a run's definitions would "change" at each
    ``biomarkers materialize`` and no run could be reproduced after one.
    """
    spec = type(spec).FromString(spec.SerializeToString(deterministic=True))

    def strip(message) -> None:
        for descriptor, value in message.ListFields():
            if descriptor.name == "meta":
                message.ClearField(descriptor.name)
            elif descriptor.message_type is None:
                continue
            elif descriptor.message_type.GetOptions().map_entry:  # e.g. an on-demand view's sources by name
                if descriptor.message_type.fields_by_name["value"].message_type is not None:
                    for item in value.values():
                        strip(item)
            else:
                for item in (value if descriptor.is_repeated else [value]):
                    strip(item)

    strip(spec)
    return spec.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------------------------
# Fit and evaluate (pure training code, ``training.tasks.fit_and_evaluate``, called here)


def subject_attributes(config: StudyConfig) -> pd.DataFrame:
    """Site, sex and age band per subject, for subgroup metrics (never model inputs)."""
    from training.metrics import age_band

    subjects = read_table(config.lake_root, SUBJECTS_SOURCE)
    if subjects is None:
        return pd.DataFrame(columns=["subject_id", "site", "sex", "age_band"])
    return pd.DataFrame({
        "subject_id": subjects["subject_id"].astype(str),
        "site": subjects["site_id"].astype(str) if "site_id" in subjects else "unknown",
        "sex": subjects["sex"].astype(str) if "sex" in subjects else "unknown",
        "age_band": age_band(subjects["age_years"]) if "age_years" in subjects else "unknown",
    })


def evaluation_settings(model: ModelConfig) -> EvaluationSettings:
    """The plain fit-and-evaluate settings of a study's model."""
    return EvaluationSettings(
        estimator=model.estimator, params=model.params, seed=model.seed, test_size=model.split.test_size,
        holdout_site=model.split.holdout_site, bootstrap_samples=model.bootstrap_samples,
        subgroups=tuple(model.subgroups), subgroup_min_samples=model.acceptance.subgroup_min_samples,
        threshold_method=model.threshold.method, threshold_quantile=model.threshold.quantile, label_column=LABEL)


def fit_and_evaluate(training_set: TrainingSet, attributes: pd.DataFrame) -> Evaluation:
    """Split by subject, fit and evaluate; a split or estimator refusing the data is a TrainingError."""
    from training.tasks import fit_and_evaluate as fit_and_evaluate_task

    try:
        return fit_and_evaluate_task(training_set.model.task, training_set.frame, training_set.features,
                                     evaluation_settings(training_set.model), attributes)
    except ValueError as error:  # before any run is logged
        raise TrainingError(f"model {training_set.model_name}: {error}") from error


# --------------------------------------------------------------------------------------------
# Lineage, MLflow run, registration


def lineage_record(config: StudyConfig, training_set: TrainingSet, feature_tables: Path,
                   study_path: Path | None) -> Lineage:
    """Everything that fed the training set, from the raw files to the code (``lineage.json``)."""
    from pipelines.build.local import MANIFEST, MANIFEST_BUILD_KEYS

    manifest_path = feature_tables / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    subjects = set(training_set.entity["subject_id"])
    inputs = [entry for entry in manifest.get("inputs", [])
              if entry.get("subject_id") is None or entry["subject_id"] in subjects]
    outcomes: dict[str, int] = {}
    for entry in inputs:
        outcomes[str(entry.get("validation_outcome"))] = outcomes.get(str(entry.get("validation_outcome")), 0) + 1
    return Lineage(
        study_id=config.study_id,
        model=training_set.model_name,
        task=training_set.model.task,
        feature_service=training_set.model.feature_service,
        feature_views=training_set.feature_views,
        feast_definitions_sha256=training_set.definitions_sha256,
        features=training_set.features,
        features_dropped=training_set.dropped,
        entity_frame={"sha256": training_set.entity_sha256, "rows": len(training_set.entity),
                      "subjects": len(subjects), "positives": int((training_set.entity[LABEL] == 1).sum())},
        training_frame={"sha256": training_set.frame_sha256, "rows": len(training_set.frame),
                        "columns": len(training_set.frame.columns)},
        feature_build={key: manifest.get(key) for key in MANIFEST_BUILD_KEYS},
        raw_files=[{key: entry.get(key) for key in ("raw_path", "sha256", "source", "report_id",
                                                    "validation_outcome")} for entry in inputs],
        curated_parts=sorted(part for entry in inputs for part in entry.get("curated_parts", [])),
        validation_outcomes=outcomes,
        code=_code_version(),
        packages={name: _version(name) for name in PACKAGES},
        study_config_sha256=study_config_sha256(config),
        # Where it was, for the reader; nothing reads it back (a study folder may move).
        study_file=str(study_path) if study_path else None,
    )


def study_config_sha256(config: StudyConfig) -> str:
    """Hash of the study's settings, without its data root: the same study on another machine."""
    settings = config.model_dump(mode="json", exclude={"data_root"})
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _code_version() -> dict:
    """The git commit of the project's source (``unknown`` when it is installed, not a checkout)."""
    source = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD") or "unknown",
            "git_dirty": None if status is None else bool(status)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def follow_moved_study(config: StudyConfig) -> None:
    """Re-root the study's embedded MLflow store at its platform folder, if the study was moved or
    copied since it was last used (``adapters.tracking.reroot_artifacts``); a tracking server of
    the study's own (``mlflow_tracking_uri``) is left alone."""
    from adapters.tracking import reroot_artifacts

    if config.mlflow_tracking_uri is None:
        old = reroot_artifacts(config.tracking_uri, config.artifacts_root)
        if old is not None:
            logger.info("study %s moved: its MLflow artifact locations now point at %s (were %s)",
                        config.study_id, config.artifacts_root, old)


def use_tracking(config: StudyConfig) -> str:
    """Point MLflow at the study's tracking store; return the study's experiment id (one per study)."""
    import mlflow

    follow_moved_study(config)
    mlflow.set_tracking_uri(config.tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.study_id)
    if experiment is not None:
        return experiment.experiment_id
    location = config.artifacts_root.as_uri() if config.mlflow_tracking_uri is None else None
    return mlflow.create_experiment(config.study_id, artifact_location=location,
                                    tags={"study_id": config.study_id})


def train(config: StudyConfig, model_name: str, *, repo_path: Path | None = None,
          yaml_file: Path | None = None, study_path: Path | None = None, reuse: bool = False) -> TrainResult:
    """Build the training set, fit, evaluate, log the run and register the model as ``candidate``.

    With ``reuse``, a registered version trained on the same training set (SHA-256), study
    settings and committed code is returned instead of training again (``reused=True``).
    """
    training_set = build_training_set(config, model_name, repo_path=repo_path, yaml_file=yaml_file)
    if reuse:
        previous = _same_training(config, training_set)
        if previous is not None:
            return previous
    evaluation = fit_and_evaluate(training_set, subject_attributes(config))
    tables = feature_tables_dir(study_store(config, repo_path, yaml_file))
    lineage = lineage_record(config, training_set, tables, study_path)
    return record_run(config, training_set, evaluation, lineage)


def _same_training(config: StudyConfig, training_set: TrainingSet) -> TrainResult | None:
    """The newest registered version trained on exactly this training set, settings and code."""
    from mlflow import MlflowClient

    code = _code_version()
    if code["git_dirty"] is not False:  # uncommitted changes: the code cannot be told apart
        return None
    experiment_id = use_tracking(config)
    client = MlflowClient()
    runs = client.search_runs(
        [experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=(f"params.model = '{training_set.model_name}' and attributes.status = 'FINISHED' "
                       f"and tags.`lineage.training_frame_sha256` = '{training_set.frame_sha256}' "
                       f"and tags.`lineage.study_config_sha256` = '{study_config_sha256(config)}' "
                       f"and tags.`lineage.git_commit` = '{code['git_commit']}'"))
    if not runs:
        return None
    run = runs[0]
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    if not versions:
        return None
    version = max(versions, key=lambda v: int(v.version))
    lineage = read_lineage(run.info.run_id)
    return TrainResult(run.info.run_id, version.name, str(version.version), dict(run.data.metrics),
                       lineage.training_frame["sha256"], lineage.entity_frame["sha256"], lineage, reused=True)


def _ui_artifact_link(experiment_id: str, run_id: str, artifact_path: str) -> str:
    """The MLflow UI's page of one run artifact, as a link for a description on another page of the UI.

    A hash route (the UI is a single-page app) and relative, so that it leads there whatever host or
    path prefix the UI is served under.
    """
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{artifact_path}"


def record_run(config: StudyConfig, training_set: TrainingSet, evaluation: Evaluation, lineage: Lineage) -> TrainResult:
    import mlflow
    from mlflow import MlflowClient

    from training.model_card import model_card_markdown

    model = training_set.model
    experiment_id = use_tracking(config)
    name = registered_name(config, training_set.model_name)
    train_frame = training_set.frame.iloc[evaluation.train_index]
    test_frame = training_set.frame.iloc[evaluation.test_index]
    lineage = lineage.model_copy(update={"split": {
        "train_rows": len(train_frame), "test_rows": len(test_frame),
        "train_subjects": sorted(set(train_frame["subject_id"])),
        "test_subjects": sorted(set(test_frame["subject_id"])), "holdout_site": model.split.holdout_site}})
    # On the run and on the model version alike: a reviewer sees the lineage on either page of the MLflow UI.
    lineage_tags = {
        "lineage.feature_service": model.feature_service,
        "lineage.feature_views": ",".join(training_set.feature_views),
        "lineage.feast_definitions_sha256": training_set.definitions_sha256,
        "lineage.entity_frame_sha256": lineage.entity_frame["sha256"],
        "lineage.training_frame_sha256": lineage.training_frame["sha256"],
        "lineage.validation_outcomes": json.dumps(lineage.validation_outcomes, sort_keys=True),
        "lineage.raw_files": str(len(lineage.raw_files)),
        "lineage.git_commit": lineage.code["git_commit"],
        "lineage.study_config_sha256": lineage.study_config_sha256,
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{training_set.model_name}-{model.estimator}") as run:
        mlflow.log_params({"model": training_set.model_name, "task": model.task, "estimator": model.estimator,
                           "feature_service": model.feature_service, "seed": model.seed,
                           "test_size": model.split.test_size, "holdout_site": model.split.holdout_site,
                           "bootstrap_samples": model.bootstrap_samples, "n_features": len(training_set.features),
                           **{f"param.{key}": value for key, value in model.params.items()}})
        mlflow.log_metrics({key: float(value) for key, value in evaluation.metrics.items()
                            if isinstance(value, int | float | np.floating | np.integer)})
        _log_datasets(training_set, train_frame, test_frame)
        mlflow.set_tags({"study_id": config.study_id, **lineage_tags, "model_card": "model_card.md"})
        log_lineage(lineage)
        _log_table(training_set.entity, "labels.parquet")
        if evaluation.subgroups is not None:  # JSON records, NaN as null
            mlflow.log_dict({"rows": json.loads(evaluation.subgroups.to_json(orient="records"))},
                            "subgroup_metrics.json")
        if evaluation.threshold is not None:
            mlflow.log_dict(evaluation.threshold, "threshold.json")
        _log_plots(evaluation)
        card = model_card_markdown(name=name, study_id=config.study_id, model=model.model_dump(mode="json"),
                                   metrics=evaluation.metrics, subgroups=evaluation.subgroups,
                                   lineage=lineage.model_dump(mode="json"))
        mlflow.log_text(card, "model_card.md")
        info = _log_model(evaluation.model, test_frame[training_set.features], model.task)
    # Registered last: a failure above leaves a failed run and no model version, no alias moved.
    version = mlflow.register_model(info.model_uri, name,
                                    tags={"run_id": run.info.run_id, "task": model.task, **lineage_tags})
    client = MlflowClient()
    headline = ", ".join(f"{key} {evaluation.metrics[key]:.3f}" for key in ("auroc", "calibration_error", "f1")
                         if key in evaluation.metrics)
    card_link = _ui_artifact_link(experiment_id, run.info.run_id, "model_card.md")
    lineage_link = _ui_artifact_link(experiment_id, run.info.run_id, LINEAGE_ARTIFACT)
    client.update_model_version(name, version.version, description=(  # the MLflow UI renders it as Markdown
        f"{model.task} model ({model.estimator}) on feature service {model.feature_service}, run "
        f"{run.info.run_id}: {headline}.\n\nModel card: [model_card.md]({card_link}) in the run's artifacts; "
        f"lineage: [{LINEAGE_ARTIFACT}]({lineage_link})."))
    client.set_registered_model_alias(name, "candidate", version.version)
    return TrainResult(run.info.run_id, name, str(version.version), evaluation.metrics,
                       lineage.training_frame["sha256"], lineage.entity_frame["sha256"], lineage)


def _log_datasets(training_set: TrainingSet, train_frame: pd.DataFrame, test_frame: pd.DataFrame) -> None:
    import mlflow

    from training.digests import frame_sha256

    parts = (("training", training_set.frame, "training_set", "training"),
             ("train_split", train_frame, "train_split", "train"),
             ("test_split", test_frame, "test_split", "evaluation"),
             ("labels", training_set.entity, "labels", "labels"))
    for _, frame, label, context in parts:
        sha256 = frame_sha256(frame, sort_by=KEYS)
        dataset = mlflow.data.from_pandas(frame.reset_index(drop=True), name=f"{training_set.model_name}_{label}",
                                          targets=LABEL, digest=sha256[:32])  # MLflow stores at most 36 characters
        mlflow.log_input(dataset, context=context, tags={"sha256": sha256, "rows": str(len(frame)),
                                                         "subjects": str(frame["subject_id"].nunique())})


def _log_table(frame: pd.DataFrame, artifact: str) -> None:
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / artifact
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path))


def _log_plots(evaluation: Evaluation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    if "roc" in evaluation.curves:
        roc = evaluation.curves["roc"]
        figure, axes = plt.subplots(figsize=(4.5, 4.5))
        axes.plot(roc["fpr"], roc["tpr"], label=f"AUROC {evaluation.metrics.get('auroc', float('nan')):.3f}")
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test subjects)")
        axes.legend(loc="lower right")
        mlflow.log_figure(figure, "plots/roc.png")
        plt.close(figure)
    if "calibration" in evaluation.curves:
        curve = evaluation.curves["calibration"]
        figure, axes = plt.subplots(figsize=(4.5, 4.5))
        axes.plot(curve["mean_probability"], curve["observed_frequency"], marker="o")
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="mean predicted probability", ylabel="observed rate",
                 title=f"Calibration (ECE {evaluation.metrics.get('calibration_error', float('nan')):.3f})")
        mlflow.log_figure(figure, "plots/calibration.png")
        plt.close(figure)
    if evaluation.importance is not None and len(evaluation.importance):
        top = evaluation.importance.head(15).iloc[::-1]
        figure, axes = plt.subplots(figsize=(6, 0.35 * len(top) + 1.2))
        axes.barh(top["feature"], top["importance_mean"], xerr=top["importance_std"])
        axes.set(xlabel="permutation importance (AUROC drop)", title="Feature importance (test subjects)")
        figure.tight_layout()
        mlflow.log_figure(figure, "plots/feature_importance.png")
        plt.close(figure)
    if "scores" in evaluation.curves:
        scores = evaluation.curves["scores"]
        figure, axes = plt.subplots(figsize=(5, 3.5))
        axes.hist(scores["score"], bins=40, color="tab:blue")
        if evaluation.threshold is not None:
            axes.axvline(evaluation.metrics["threshold"], color="tab:red", label="threshold")
            axes.legend()
        axes.set(xlabel="anomaly score", ylabel="test rows", title="Anomaly scores (test subjects)")
        mlflow.log_figure(figure, "plots/anomaly_scores.png")
        plt.close(figure)


def _log_model(estimator, example: pd.DataFrame, task: str):
    """Log the fitted pipeline so stock MLflow loads it without this project.

    The PyTorch estimators' module ships with the model (``code_paths``) under the name its
    classes carry (``torch_models``). The pyfunc predicts with the task's ``predict_method``
    (``training.tasks``): both class probabilities for an endpoint model (``predict_proba``), and
    +1 (normal) or -1 (anomaly, at the chosen threshold) for an anomaly model (``predict``;
    MLflow's sklearn pyfunc offers no ``score_samples``, which the sklearn flavor,
    ``mlflow.sklearn.load_model``, keeps).
    """
    import mlflow
    import sklearn
    import skops
    import skops.io
    from mlflow.models import infer_signature

    import training.torch_models as torch_models
    from training.tasks import task_named

    method = task_named(task).predict_method
    output = getattr(estimator, method)(example)
    module = type(estimator[-1]).__module__
    if module.split(".")[0] in ("training", "features", "pipelines", "validation", "serving"):
        # a class named after a project module would not load where the project is not installed
        raise TrainingError(f"the estimator {type(estimator[-1]).__name__} lives in {module}: it cannot be logged "
                            "so that stock MLflow loads it; import training.torch_models before loading any model")
    uses_torch = module == torch_models.SHIPPED_MODULE_NAME
    # the types skops must be told to trust: exactly those in the estimator just fitted here
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    return mlflow.sklearn.log_model(
        estimator, name="model", signature=infer_signature(example, output), input_example=example.head(5),
        pyfunc_predict_fn=method, serialization_format="skops", skops_trusted_types=trusted,
        code_paths=[torch_models.__file__] if uses_torch else None,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}",
                          f"pandas=={pd.__version__}", f"skops=={skops.__version__}"],
    )


