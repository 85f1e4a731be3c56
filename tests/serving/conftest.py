"""A tiny real setup for the online API: two feature tables and the live vital-signs view, a
Feast repo (the project's DuckDB offline store, SQLite online) materialized in a temporary
folder, and an MLflow registry with a model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.tracking import Lineage, log_lineage
from serving.settings import ApiKey, ServingSettings, hash_api_key

STUDY = "test"
KEY = "key-for-the-test-study"
OTHER_STUDY_KEY = "key-for-another-study"
SUBJECTS = ["S001", "S002", "S003", "S004", "S005"]
DAILY = ["steps_sum_1d_count", "heart_rate_mean_1d_bpm"]
SLEEP = ["total_sleep_time_night_min", "sleep_efficiency_night_percent"]
FEATURES = DAILY + SLEEP
SERVICE = "risk_v1"


@dataclass
class Setup:
    root: Path
    tables: dict[str, pd.DataFrame]
    tracking_uri: str
    experiment_id: str
    settings: ServingSettings

    def register(self, name: str, seed: int, alias: str = "champion", task: str = "endpoint") -> str:
        """Train a small pipeline (a classifier, or an isolation forest for ``task="anomaly"``), log it with
        its lineage, register it under ``name`` and move ``alias``."""
        import mlflow
        import mlflow.sklearn
        import skops.io
        from sklearn.ensemble import IsolationForest
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(seed)
        x = pd.DataFrame(rng.normal([8000, 70, 420, 85], [3000, 10, 60, 8], size=(200, 4)), columns=FEATURES)
        y = (x["steps_sum_1d_count"] + rng.normal(0, 2000, 200) < 8000).astype(int)
        last = LogisticRegression() if task == "endpoint" else IsolationForest(n_estimators=20, random_state=seed)
        pipe = make_pipeline(SimpleImputer(), StandardScaler(), last).fit(x, y)
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(experiment_id=self.experiment_id):
            info = mlflow.sklearn.log_model(
                pipe, name="model", serialization_format="skops", pip_requirements=["scikit-learn"],
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipe)))
            log_lineage(Lineage.of_external_model(self.settings.study_id, task, SERVICE, ["daily", "sleep"], FEATURES))
        version = mlflow.register_model(info.model_uri, name)
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version.version)
        return str(version.version)


    def live_log(self) -> pd.DataFrame:
        """The log of pushed vital signs as its readers see it (pushes not yet folded included)."""
        from adapters.offline_store import PushLog

        logged = PushLog(self.root / "vital_signs_live.parquet", ["subject_id", "event_timestamp"]).read()
        return pd.DataFrame(columns=["subject_id", "event_timestamp"]) if logged is None else logged.to_pandas()

    def register_vitals(self, name: str, seed: int) -> str:
        """Register a vital-sign anomaly model (an isolation forest on the hourly features of
        ``vitals_anomaly_v1``, fitted on plausible normal hours) under ``name@champion``."""
        import mlflow
        import mlflow.sklearn
        import skops.io
        from sklearn.ensemble import IsolationForest
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(seed)
        n = 500
        x = pd.DataFrame({"news2_score_max_24h": rng.integers(0, 3, n).astype(float),
                          "spo2_min_24h_percent": rng.uniform(93, 99, n),
                          "desaturation_events_24h_count": np.zeros(n),
                          "heart_rate_mean_24h_bpm": rng.uniform(60, 90, n),
                          "respiratory_rate_mean_24h_per_min": rng.uniform(12, 20, n),
                          "temperature_max_24h_deg_c": rng.uniform(36.3, 37.6, n),
                          "systolic_bp_min_24h_mmhg": rng.uniform(105, 140, n)})
        pipe = make_pipeline(StandardScaler(), IsolationForest(contamination=0.01, random_state=seed)).fit(x)
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(experiment_id=self.experiment_id):
            info = mlflow.sklearn.log_model(
                pipe, name="model", serialization_format="skops", pip_requirements=["scikit-learn"],
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipe)))
            log_lineage(Lineage.of_external_model(self.settings.study_id, "anomaly", "vitals_anomaly_v1",
                                                   ["hourly_vitals"], list(x.columns)))
        version = mlflow.register_model(info.model_uri, name)
        mlflow.MlflowClient().set_registered_model_alias(name, "champion", version.version)
        return str(version.version)


def _tables(now: datetime, all_subjects: list[str] = SUBJECTS, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Three days of daily rows for the first four subjects, of sleep rows for the first three (the fifth: none)."""
    rng = np.random.default_rng(seed)
    days = [now - timedelta(days=3), now - timedelta(days=2), now - timedelta(days=1)]
    tables = {}
    for name, columns, subjects, scale in (("daily", DAILY, all_subjects[:4], (8000.0, 70.0)),
                                           ("sleep", SLEEP, all_subjects[:3], (420.0, 85.0))):
        rows = [{"subject_id": subject, "event_timestamp": day} for subject in subjects for day in days]
        frame = pd.DataFrame(rows)
        for column, center in zip(columns, scale, strict=True):
            frame[column] = rng.normal(center, center / 10, len(frame)).astype("float64")
        frame[f"{name}_missing_reason"] = "none"
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        frame["created_timestamp"] = pd.Timestamp(now)
        tables[name] = frame
    return tables


def feast_repo(repo: Path, tables_dir: Path, project: str, online_store_yaml: str, now: datetime):
    """A Feast repo in ``repo`` over the tables in ``tables_dir`` (plus the live vital-signs view),
    applied and materialized into the online store ``online_store_yaml`` describes; the store."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, String

    from features.definitions import live_vitals_view

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: registry.db\n"
        "offline_store:\n  type: adapters.offline_store.AsofDuckDBOfflineStore\n"
        f"{online_store_yaml}entity_key_serialization_version: 3\n")
    subject = Entity(name="subject", join_keys=["subject_id"], value_type=ValueType.STRING)
    views = []
    for name, columns in (("daily", DAILY), ("sleep", SLEEP)):
        source = FileSource(name=f"{name}_source", path=str(tables_dir / f"{name}.parquet"),
                            timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
        schema = [Field(name=column, dtype=Float64) for column in columns]
        schema.append(Field(name=f"{name}_missing_reason", dtype=String))
        views.append(FeatureView(name=name, entities=[subject], ttl=timedelta(days=30), schema=schema,
                                 source=source, online=True))
    daily, sleep = views
    live = live_vitals_view(repo)
    services = [FeatureService(name=SERVICE, features=[daily[DAILY], sleep[SLEEP]]),
                FeatureService(name="daily_v1", features=[daily]),
                FeatureService(name="vitals_live_v1", features=[live])]
    store = FeatureStore(repo_path=str(repo))
    store.apply([subject, *views, live, *services])
    store.materialize(start_date=now - timedelta(days=10), end_date=now + timedelta(minutes=1),
                      feature_views=[view.name for view in views])
    return store


def build_setup(root: Path, study: str = STUDY, subjects: list[str] = SUBJECTS, seed: int = 7) -> Setup:
    """Feature tables of ``subjects``, a materialized Feast repo (project ``serving_<study>``) and an
    MLflow registry holding ``<study>-risk@champion``, in ``root``: a served study ``study``."""
    import mlflow

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    tables = _tables(now, subjects, seed)
    for name, frame in tables.items():
        frame.to_parquet(root / f"{name}.parquet", index=False)
    feast_repo(root, root, f"serving_{study}", "online_store:\n  type: sqlite\n  path: online.db\n", now)

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment(f"serving-{study}", artifact_location=(root / "artifacts").as_uri())
    settings = ServingSettings(
        study_id=study, feast_repo_path=root, tracking_uri=tracking_uri,
        models={"risk": f"{study}-risk@champion"},
        api_keys=(ApiKey(name="test app", sha256=hash_api_key(KEY), studies=(study,)),
                  ApiKey(name="other app", sha256=hash_api_key(OTHER_STUDY_KEY), studies=("other",))),
        max_body_bytes=4096,
    )
    result = Setup(root, tables, tracking_uri, experiment_id, settings)
    result.register(f"{study}-risk", seed=1)
    return result


@pytest.fixture(scope="session")
def setup(tmp_path_factory) -> Setup:
    return build_setup(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="session")
def client(setup):
    """A client of the app (lifespan run: models loaded), shared by the tests that do not change it."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app(setup.settings)) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}
