"""Batch scoring of a study cohort with a registered model, recorded in MLflow.

``score_cohort(config, "NAME@ALIAS", as_of)``: the model version from the registry, its feature
service and inputs from its training run's lineage, the cohort's point-in-time features as of
the given time through Feast, the scores from ``training.scoring.score`` (the same function the
HTTP API and the stream use), and how old each feature group was at that time. Scores are
written to Parquet (temporary file, then rename) and an MLflow run records the model version,
the SHA-256 of the input and of the output, so ``biomarkers lineage`` reaches scores too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from adapters.feast_repo import offline_kind
from pipelines.config import SUBJECTS_SOURCE, ConfigError, StudyConfig
from pipelines.ingest.lake import read_table
from pipelines.models.registry import RegistryError, resolve, run_lineage
from pipelines.models.train import study_store, use_tracking

CHUNK_ROWS = 2000


@dataclass
class ScoreResult:
    path: Path
    rows: int
    run_id: str
    model_name: str
    model_version: str
    task: str
    input_sha256: str
    output_sha256: str
    scores: pd.DataFrame


def cohort_subjects(config: StudyConfig, cohort: Path | None) -> list[str]:
    """The subjects to score: a cohort file's ``subject_id`` column (CSV or Parquet, inside the
    study's data root), or every enrolled subject."""
    if cohort is None:
        subjects = read_table(config.lake_root, SUBJECTS_SOURCE)
        if subjects is None or subjects.empty:
            raise RegistryError(f"study {config.study_id} has no curated enrollment table: run `biomarkers ingest`")
        return sorted(subjects["subject_id"].astype(str).unique())
    try:
        path = config.resolve(cohort)
    except ConfigError as error:
        raise RegistryError(f"cohort file: {error}") from None
    if not path.is_file():
        raise RegistryError(f"cohort file {cohort} does not exist under the data root {config.data_root}")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"subject_id": str})
    if "subject_id" not in frame.columns:
        raise RegistryError(f"cohort file {cohort}: no subject_id column (columns: {', '.join(frame.columns)})")
    subjects = frame["subject_id"].dropna().astype(str).unique().tolist()
    if not subjects:
        raise RegistryError(f"cohort file {cohort} lists no subject")
    return sorted(subjects)


def score_cohort(config: StudyConfig, reference: str, as_of: datetime | None, *, cohort: Path | None = None,
                 out: Path | None = None, repo_path: Path | None = None, yaml_file: Path | None = None,
                 engine: str = "local", progress: Callable[[int, int], None] | None = None) -> ScoreResult:
    """Score a cohort with a registered model version (``NAME@ALIAS`` or ``NAME/VERSION``).

    ``as_of``: the time whose known features are used, the same for every subject; None scores
    each subject as of the end of its own newest feature window (subjects of a study are
    followed over different periods, so one time can be long after some of them ended).

    ``engine``: ``local`` retrieves and scores in this process, in chunks of ``CHUNK_ROWS``
    subjects; ``spark`` needs a repo on Feast's Spark offline store (``yaml_file``, e.g.
    ``deploy/feature_store.spark.yaml``): the point-in-time features stay a Spark DataFrame and
    the shared scoring function runs in Spark tasks (``pipelines.build.spark.score_in_spark``). Both
    write the same scores.
    """
    import mlflow

    from adapters.offline_store import feature_event_times
    from training.digests import frame_sha256
    from training.scoring import score

    client, model_version, _ = resolve(config, reference)
    if model_version is None:
        raise RegistryError(f"{reference!r}: name a model version as NAME@ALIAS or NAME/VERSION")
    lineage = run_lineage(model_version.run_id)
    subjects = cohort_subjects(config, cohort)
    store = study_store(config, repo_path, yaml_file)
    if engine == "spark" and offline_kind(store) != "spark":
        raise RegistryError("--engine spark reads features through Feast's Spark offline store: pass "
                            "--feature-store-yaml deploy/feature_store.spark.yaml (registered with `biomarkers "
                            "materialize --feature-store-yaml deploy/feature_store.spark.yaml`)")
    service = store.get_feature_service(lineage.feature_service)
    views = [store.get_feature_view(name) for name in lineage.feature_views
             if name in {view.name for view in store.list_feature_views()}]
    if as_of is None:
        when = _latest_per_subject(views, subjects, store.repo_path)
    else:
        moment = pd.Timestamp(as_of)
        when = pd.Series(moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC"),
                         index=subjects)
    entity = pd.DataFrame({"subject_id": subjects, "event_timestamp": when.loc[subjects].to_numpy()})
    entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
    model = mlflow.sklearn.load_model(f"models:/{model_version.name}/{model_version.version}")
    if engine == "spark":
        from pipelines.build.spark import score_in_spark

        job = store.get_historical_features(entity_df=entity, features=service)
        scored = score_in_spark(job, model, lineage.features, lineage.task)
        scores = scored.set_index("subject_id").loc[entity["subject_id"]].reset_index()
        if progress:
            progress(len(entity), len(entity))
    else:
        parts = []
        for begin in range(0, len(entity), CHUNK_ROWS):
            chunk = entity.iloc[begin:begin + CHUNK_ROWS]
            features = store.get_historical_features(entity_df=chunk.reset_index(drop=True),
                                                     features=service).to_df()
            features = features.set_index("subject_id").loc[chunk["subject_id"]].reset_index()
            parts.append(pd.concat([features[["subject_id"]], score(model, features, lineage.features,
                                                                    lineage.task).reset_index(drop=True)], axis=1))
            if progress:
                progress(min(begin + CHUNK_ROWS, len(entity)), len(entity))
        scores = pd.concat(parts, ignore_index=True)
    times = feature_event_times(views, entity, store.repo_path)
    for view in views:
        age = entity["event_timestamp"] - times[view.name]
        scores[f"feature_age_{view.name}_h"] = age.dt.total_seconds().to_numpy() / 3600.0
    scores.insert(2, "model_name", model_version.name)
    scores.insert(3, "model_version", str(model_version.version))
    scores.insert(4, "as_of", entity["event_timestamp"].to_numpy())
    label = "latest" if as_of is None else entity["event_timestamp"].iloc[0].strftime("%Y%m%dT%H%M%SZ")
    target = out or (config.platform_root / "scores" / f"{model_version.name}-v{model_version.version}-{label}.parquet")
    try:
        target = config.resolve(target)  # inside the study's data root, like every path it writes
    except ConfigError as error:
        raise RegistryError(f"output file: {error}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    scores.to_parquet(temporary, index=False)
    os.replace(temporary, target)
    when_label = "each subject's latest window" if as_of is None else entity["event_timestamp"].iloc[0].isoformat()
    input_sha256 = frame_sha256(entity, sort_by=["subject_id"])
    output_sha256 = frame_sha256(scores, sort_by=["subject_id"])
    experiment_id = use_tracking(config)
    with mlflow.start_run(experiment_id=experiment_id,
                          run_name=f"score-{model_version.name}-v{model_version.version}") as run:
        mlflow.log_params({"model": model_version.name, "model_version": str(model_version.version),
                           "as_of": when_label, "subjects": len(subjects),
                           "cohort": str(cohort) if cohort else "all enrolled subjects"})
        cohort_dataset = mlflow.data.from_pandas(entity, name="cohort", digest=input_sha256[:32])
        mlflow.log_input(cohort_dataset, context="scoring", tags={"sha256": input_sha256, "rows": str(len(entity))})
        mlflow.set_tags({"kind": "scoring", "study_id": config.study_id, "scoring.model": model_version.name,
                         "scoring.model_version": str(model_version.version),
                         "scoring.model_run_id": model_version.run_id, "scoring.input_sha256": input_sha256,
                         "scoring.output_sha256": output_sha256, "scoring.output": str(target)})
        mlflow.log_dict({"kind": "scoring", "model": model_version.name, "model_version": str(model_version.version),
                         "model_run_id": model_version.run_id,
                         "as_of": when_label,
                         "feature_service": lineage.feature_service, "input_sha256": input_sha256,
                         "output_sha256": output_sha256, "output": str(target), "rows": len(scores)},
                        "scoring.json")
    return ScoreResult(target, len(scores), run.info.run_id, model_version.name, str(model_version.version),
                       lineage.task, input_sha256, output_sha256, scores)


def _latest_per_subject(views, subjects: list[str], repo_path: str) -> pd.Series:
    """Per subject, the end of its newest window in any of the views' tables."""
    from adapters.offline_store import source_path

    latest = pd.Series(pd.NaT, index=pd.Index(subjects, name="subject_id"), dtype="datetime64[us, UTC]")
    for view in views:
        path = source_path(view.batch_source, repo_path)
        if path.is_file():
            rows = pd.read_parquet(path, columns=["subject_id", "event_timestamp"])
            newest = pd.to_datetime(rows.groupby("subject_id")["event_timestamp"].max(), utc=True)
            latest = pd.concat([latest, newest.reindex(latest.index)], axis=1).max(axis=1)
    missing = latest[latest.isna()].index.tolist()
    if missing:
        raise RegistryError(f"no feature rows at all for {len(missing)} subject(s) of the cohort, e.g. "
                            f"{', '.join(missing[:5])}: score them as of a time (--as-of) or drop them")
    return latest
