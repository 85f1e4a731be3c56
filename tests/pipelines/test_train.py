"""Training, lineage, promotion and reproduction on a small demo study, end to end.

One demo study (40 subjects, 6 days) is generated, ingested, built and registered in a Feast repo
of the test's own; models train into the study's own MLflow store (SQLite, local artifacts).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pipelines.build.local import build_features
from pipelines.config import load_study
from pipelines.demo.generate import generate_demo
from pipelines.ingest.run import ingest_study
from tests.mlflow_ui import assert_lineage_visible, mlflow_ui
from tests.pipelines.conftest import feast_repo

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_STUDY = REPOSITORY / "studies" / "demo" / "study.yaml"
ENDPOINT = "hospitalization_risk"
PROJECT = ("features", "pipelines", "training", "validation", "serving")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    generate_demo(root / "study", seed=5, n_subjects=40, days=6)
    config = load_study(DEMO_STUDY, root / "study")
    ingest_study(config, workers=2)
    tables = root / "tables"
    build_features(config, tables, workers=2)
    repo = feast_repo(root / "repo", "biomarkers_train_test", tables)
    return config, repo, tables


def with_model(config, name: str, **changes):
    """The study configuration with one model's settings changed."""
    model = config.models[name]
    acceptance = changes.pop("acceptance", None)
    if acceptance is not None:
        changes["acceptance"] = model.acceptance.model_copy(update=acceptance)
    return config.model_copy(update={"models": {**config.models, name: model.model_copy(update=changes)}})


@pytest.fixture(scope="module")
def trained(study):
    from pipelines.models.train import train

    config, repo, _ = study
    # lenient criteria for this small cohort: promotion is tested on both sides below
    config = with_model(config, ENDPOINT, estimator="logistic_regression", params={"C": 0.5}, bootstrap_samples=200,
                        acceptance={"min_auroc": 0.5, "max_calibration_error": 0.5, "subgroup_min_auroc": None})
    return config, train(config, ENDPOINT, repo_path=repo, study_path=DEMO_STUDY)


def test_a_run_records_metrics_datasets_lineage_and_a_candidate(study, trained) -> None:
    import mlflow
    from mlflow import MlflowClient

    config, result = trained
    _, repo, _ = study
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == config.study_id  # one experiment per study
    assert {"auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "calibration_error"} <= set(run.data.metrics)
    assert run.data.metrics["auroc_ci_low"] <= run.data.metrics["auroc"] <= run.data.metrics["auroc_ci_high"]
    assert run.data.params["estimator"] == "logistic_regression"
    assert str(client.get_model_version_by_alias(result.registered_name, "candidate").version) == result.version

    # datasets: the full-content SHA-256 of each frame, as a tag beside MLflow's sampled digest
    inputs = {i.dataset.name: {t.key: t.value for t in i.tags} for i in run.inputs.dataset_inputs}
    training = inputs[f"{ENDPOINT}_training_set"]
    assert training["mlflow.data.context"] == "training" and training["sha256"] == result.training_sha256
    assert inputs[f"{ENDPOINT}_labels"]["sha256"] == result.entity_sha256

    artifacts = {a.path for a in client.list_artifacts(result.run_id)} | {
        a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"lineage.json", "model_card.md", "labels.parquet", "subgroup_metrics.json", "plots/roc.png",
            "plots/calibration.png", "plots/feature_importance.png"} <= artifacts
    card = mlflow.artifacts.load_text(f"runs:/{result.run_id}/model_card.md")
    assert "## Intended use" in card and "## Subgroups" in card and result.training_sha256 in card

    lineage = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/lineage.json")
    assert lineage["feature_service"] == "endpoint_v1"
    assert {"daily_activity", "labs", "cardiac", "sleep"} <= set(lineage["feature_views"])
    assert lineage["code"]["git_commit"] and lineage["packages"]["mlflow"].startswith("3.17")
    # every raw file named exists with the recorded SHA-256, and was validated
    assert len(lineage["raw_files"]) > 40
    for entry in lineage["raw_files"][:25]:
        raw = config.data_root / entry["raw_path"]
        assert hashlib.sha256(raw.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["validation_outcome"] in ("passed", "passed_with_warnings")
    assert not set(lineage["split"]["train_subjects"]) & set(lineage["split"]["test_subjects"])
    assert run.data.tags["lineage.training_frame_sha256"] == result.training_sha256


def predict_in_a_bare_process(tracking_uri: str, model_uri: str, frame: pd.DataFrame, folder: Path,
                              refused: tuple[str, ...] = PROJECT) -> list:
    """``mlflow.pyfunc.load_model(model_uri).predict(frame)`` in a fresh Python process in which the
    ``refused`` top-level packages cannot be imported."""
    frame.to_json(folder / "frame.json", orient="split")
    script = folder / "load.py"
    script.write_text(textwrap.dedent(f"""
        import importlib.abc, sys
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {refused!r}:
                    raise ImportError("must not be needed: " + name)
        sys.meta_path.insert(0, Refuse())
        import json, mlflow, pandas as pd
        mlflow.set_tracking_uri({tracking_uri!r})
        model = mlflow.pyfunc.load_model({model_uri!r})
        frame = pd.read_json({str(folder / 'frame.json')!r}, orient="split").astype("float64")
        print(json.dumps(pd.DataFrame(model.predict(frame)).to_numpy().tolist()))
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, cwd=folder, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_registered_model_loads_with_stock_mlflow_alone(trained, tmp_path) -> None:
    """A fresh Python process that cannot import the project loads the model and predicts."""
    import mlflow

    config, result = trained
    example = pd.read_json(Path(mlflow.artifacts.download_artifacts(
        f"models:/{result.registered_name}/{result.version}/input_example.json", dst_path=str(tmp_path))),
        orient="split").astype("float64")
    probabilities = predict_in_a_bare_process(config.tracking_uri, f"models:/{result.registered_name}@candidate",
                                              example, tmp_path)
    model = mlflow.sklearn.load_model(f"models:/{result.registered_name}/{result.version}")
    expected = model.predict_proba(example)
    assert len(probabilities) == len(example) and len(probabilities[0]) == 2
    assert pd.DataFrame(probabilities).to_numpy() == pytest.approx(expected)


def test_a_pytorch_autoencoder_on_vital_sign_windows_ships_with_its_code(study, tmp_path) -> None:
    """The PyTorch model's module travels with it: it loads, and scores, without the project and
    without torch (inference runs in numpy)."""
    import mlflow

    from pipelines.models.train import build_training_set, train

    config, repo, _ = study
    result = train(with_model(config, "vitals_anomaly", params={"max_epochs": 5, "batch_size": 256}),
                   "vitals_anomaly", repo_path=repo)
    assert {"precision", "recall", "f1"} <= set(result.metrics)
    assert result.lineage.features and "news2_score_max_24h" in result.lineage.features
    labels = pd.read_parquet(Path(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/labels.parquet")))
    rebuilt = build_training_set(config, "vitals_anomaly", repo_path=repo, entity=labels)
    test = rebuilt.frame[rebuilt.frame["subject_id"].isin(result.lineage.split["test_subjects"])]
    flags = predict_in_a_bare_process(config.tracking_uri, f"models:/{result.registered_name}/{result.version}",
                                      test[rebuilt.features], tmp_path, refused=(*PROJECT, "torch"))
    flagged = sum(1 for row in flags if row[0] == -1) / len(flags)
    assert flagged == pytest.approx(result.metrics["flagged_share_test"])


def test_promotion_refused_then_accepted_and_every_request_audited(trained) -> None:
    from mlflow import MlflowClient

    from pipelines.models.audit import AuditLog
    from pipelines.models.registry import promote

    config, result = trained
    strict = with_model(config, ENDPOINT, acceptance={"min_auroc": 0.999})
    refused = promote(strict, result.registered_name, result.version, approver="A. Reviewer", reason="too early")
    assert not refused.accepted
    assert any(c["name"] == "auroc" and not c["passed"] for c in refused.criteria)
    client = MlflowClient()
    assert "champion" not in client.get_model_version(result.registered_name, result.version).aliases

    accepted = promote(config, result.registered_name, result.version, approver="A. Reviewer", reason="meets criteria")
    assert accepted.accepted and accepted.from_version is None
    assert str(client.get_model_version_by_alias(result.registered_name, "champion").version) == result.version
    with AuditLog(config.catalog) as log:
        entries = log.entries(result.registered_name)
        assert [(e.decision, e.approver, e.to_version) for e in entries[-2:]] == [
            ("refused", "A. Reviewer", result.version), ("accepted", "A. Reviewer", result.version)]
        assert entries[-1].reason == "meets criteria" and entries[-1].criteria
        assert log.verify() == []
    tags = client.get_model_version(result.registered_name, result.version).tags
    assert tags["audit.entry_hash"] == entries[-1].entry_hash


def test_lineage_from_the_alias_and_from_the_run(trained) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.models.registry import lineage

    config, result = trained
    by_run = lineage(config, result.run_id)
    assert by_run["run"]["run_id"] == result.run_id and "model_version" not in by_run
    assert {d["sha256"] for d in by_run["datasets"]} >= {result.training_sha256, result.entity_sha256}
    assert all(len(entry["sha256"]) == 64 for entry in by_run["raw_files"])
    runner = CliRunner()
    shown = runner.invoke(app, ["lineage", f"{result.registered_name}/{result.version}", "--json", "--study",
                                str(DEMO_STUDY), "--data-root", str(config.data_root)])
    assert shown.exit_code == 0, shown.output
    chain = json.loads(shown.output)
    assert str(chain["model_version"]["version"]) == result.version
    assert chain["features"]["feature_service"] == "endpoint_v1"
    missing = runner.invoke(app, ["lineage", f"{result.registered_name}@nonexistent", "--study", str(DEMO_STUDY),
                                  "--data-root", str(config.data_root)])
    assert missing.exit_code == 2 and "no alias 'nonexistent'" in missing.output


def test_an_anomaly_model_is_evaluated_against_the_labelled_episodes(study) -> None:
    import mlflow

    from pipelines.models.train import build_training_set, train

    config, repo, _ = study
    result = train(config, "daily_anomaly", repo_path=repo)
    assert {"precision", "recall", "f1", "threshold"} <= set(result.metrics)
    how = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/threshold.json")
    assert how["method"] == "quantile"
    frame = pd.read_parquet(Path(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/labels.parquet")))
    assert len(frame) == result.lineage.entity_frame["rows"] and set(frame["label"]) <= {0, 1}
    assert result.lineage.entity_frame["positives"] >= 1  # planted episodes were found in the days
    # The logged model flags (-1) exactly the test rows above the chosen threshold.
    rebuilt = build_training_set(config, "daily_anomaly", repo_path=repo, entity=frame)
    test = rebuilt.frame[rebuilt.frame["subject_id"].isin(result.lineage.split["test_subjects"])]
    model = mlflow.pyfunc.load_model(f"models:/{result.registered_name}/{result.version}")
    flags = model.predict(test[rebuilt.features])
    assert set(flags) <= {-1, 1}
    assert (flags == -1).mean() == pytest.approx(result.metrics["flagged_share_test"])


def test_bad_training_inputs_fail_before_anything_is_registered(study, monkeypatch) -> None:
    from mlflow import MlflowClient

    from pipelines.models import train as training
    from pipelines.models.train import TrainingError, use_tracking

    config, repo, _ = study
    use_tracking(config)
    client = MlflowClient()

    def versions() -> int:
        return sum(len(client.search_model_versions(f"name='{m.name}'")) for m in client.search_registered_models())

    before = versions()
    with pytest.raises(TrainingError, match="no model 'risk'.*hospitalization_risk"):
        training.train(config, "risk", repo_path=repo)
    with pytest.raises(TrainingError, match="unknown feature service 'endpoint_v9'.*endpoint_v1"):
        training.train(with_model(config, ENDPOINT, feature_service="endpoint_v9"), ENDPOINT, repo_path=repo)
    with pytest.raises(TrainingError, match="has no parameter.*'max_depth_typo'"):
        training.train(with_model(config, ENDPOINT, params={"max_depth_typo": 3}), ENDPOINT, repo_path=repo)
    with pytest.raises(TrainingError, match="endpoint 'death_30d' has no rows.*hospitalization_90d"):
        training.train(with_model(config, ENDPOINT, endpoint="death_30d"), ENDPOINT, repo_path=repo)

    labels = training.endpoint_labels(config, config.models[ENDPOINT])
    monkeypatch.setattr(training, "endpoint_labels", lambda *_: labels.assign(label=0))
    with pytest.raises(TrainingError, match="every label is 0"):
        training.train(config, ENDPOINT, repo_path=repo)
    monkeypatch.setattr(training, "endpoint_labels", lambda *_: labels.iloc[:0])
    with pytest.raises(TrainingError, match="training set is empty"):
        training.train(config, ENDPOINT, repo_path=repo)
    # every entity time long before any feature row: all features null
    monkeypatch.setattr(training, "endpoint_labels", lambda *_: labels.assign(
        event_timestamp=pd.Timestamp("2001-01-01", tz="UTC")))
    with pytest.raises(TrainingError, match="every feature of endpoint_v1 is null"):
        training.train(config, ENDPOINT, repo_path=repo)
    assert versions() == before


def test_a_run_is_reproduced_and_a_changed_feature_table_is_detected(study, trained) -> None:
    """Reproduced after the repo was applied again, as every `biomarkers materialize` does (Feast then
    stamps new times into the on-demand view's spec: not a change of definitions), and by the model
    version's reference as well as the run id; a changed feature table is detected."""
    from adapters.feast_repo import apply_repo
    from pipelines.models.registry import reproduce

    config, result = trained
    _, repo, tables = study
    apply_repo(repo, tables)
    assert reproduce(config, f"{result.registered_name}/{result.version}", repo_path=repo)["reproduced"]
    same = reproduce(config, result.run_id, repo_path=repo)
    assert same["reproduced"], same
    assert same["checks"]["training_frame_sha256"]["rebuilt"] == result.training_sha256

    path = tables / "daily_activity.parquet"
    original = path.read_bytes()
    try:
        daily = pd.read_parquet(path)
        daily["steps_sum_1d_count"] = daily["steps_sum_1d_count"] + 1.0
        daily.to_parquet(path, index=False)
        changed = reproduce(config, result.run_id, repo_path=repo)
    finally:
        path.write_bytes(original)
    assert not changed["reproduced"]
    assert changed["checks"]["entity_frame_sha256"]["match"]
    assert not changed["checks"]["training_frame_sha256"]["match"]


def test_a_run_is_reproduced_from_the_lake_as_it_was_after_the_lake_moved_on(study, trained) -> None:
    """A re-exported raw file moves the lake on and a build publishes it; the run's recorded table
    versions still rebuild its training set exactly (time travel). The raw file and the published
    tables are put back afterwards, byte for byte, for the other tests of the module."""
    from features.settings import BiomarkerSettings
    from pipelines.build.local import MANIFEST
    from pipelines.models.registry import recorded_build, reproduce

    config, result = trained
    _, repo, tables = study
    raw = config.data_root / "raw" / "minute" / "S0001_minute.csv"
    original = raw.read_bytes()
    published = {path: path.read_bytes() for path in tables.iterdir() if path.is_file()}
    recorded = recorded_build(config, f"{result.registered_name}/{result.version}").lake_versions
    assert recorded == recorded_build(config, result.run_id).lake_versions
    try:
        minutes = pd.read_csv(raw)
        minutes.loc[minutes["worn"] == 1, "steps"] += 7  # the vendor re-exported the file with corrected steps
        minutes.to_csv(raw, index=False)
        assert ingest_study(config, workers=1).by_source()["minute_wearable"]["curated"] == 1
        build_features(config, tables, workers=1)

        moved_on = reproduce(config, result.run_id, repo_path=repo)
        assert not moved_on["reproduced"]
        assert f"--lake-versions-of {result.run_id}" in moved_on["hint"]

        build_features(config, tables, workers=1, lake_versions=recorded)
        manifest = json.loads((tables / MANIFEST).read_text())
        behind = [i["sha256"] for i in manifest["inputs"] if i["raw_path"] == "raw/minute/S0001_minute.csv"]
        assert behind == [hashlib.sha256(original).hexdigest()]  # the version it read, superseded since
        assert manifest["lake_versions"] == recorded
        again = reproduce(config, result.run_id, repo_path=repo)
        assert again["reproduced"], again
        assert again["checks"]["training_frame_sha256"]["rebuilt"] == result.training_sha256

        # The study then changes an algorithm that feeds the model's features: the run's recorded
        # settings rebuild what it trained on.
        changed = config.model_copy(update={"biomarkers": BiomarkerSettings(hrv={"artefact_method": "local_median"})})
        assert build_features(changed, tables, workers=1, lake_versions=recorded).computed == ["cardiac"]
        assert not reproduce(changed, result.run_id, repo_path=repo)["reproduced"]
        as_built = recorded_build(changed, result.run_id)
        assert as_built.settings == config.biomarkers
        build_features(changed.model_copy(update={"biomarkers": as_built.settings}), tables, workers=1,
                       lake_versions=as_built.lake_versions)
        assert reproduce(changed, result.run_id, repo_path=repo)["reproduced"]
    finally:
        raw.write_bytes(original)
        ingest_study(config, workers=1)
        for path in tables.iterdir():
            if path.is_file() and path not in published:
                path.unlink()
        for path, content in published.items():
            path.write_bytes(content)


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on 127.0.0.1 with a PostgreSQL backend store of its own (the real server)."""
    import socket
    import time
    import urllib.request
    import uuid

    psycopg = pytest.importorskip("psycopg")
    from tests.conftest import PG_ADMIN_DSN

    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {error}")
    database = f"mlflow_it_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{database}"')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'mlflow-server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@pytest.mark.postgres
def test_train_promote_and_read_lineage_through_an_mlflow_server(study, mlflow_server) -> None:
    """Production tracking: an MLflow server with its PostgreSQL backend store, artifacts proxied."""
    import mlflow

    from pipelines.models.registry import lineage, promote
    from pipelines.models.train import train

    config, repo, _ = study
    remote = with_model(config.model_copy(update={"mlflow_tracking_uri": mlflow_server}), ENDPOINT,
                        estimator="logistic_regression", params={"C": 0.5}, bootstrap_samples=200,
                        acceptance={"min_auroc": 0.5, "max_calibration_error": 0.5, "subgroup_min_auroc": None})
    try:
        result = train(remote, ENDPOINT, repo_path=repo)
        assert mlflow.get_tracking_uri() == mlflow_server
        promotion = promote(remote, result.registered_name, result.version, approver="A. Reviewer", reason="server")
        assert promotion.accepted
        chain = lineage(remote, f"{result.registered_name}@champion")
        assert chain["run"]["run_id"] == result.run_id
        assert {d["sha256"] for d in chain["datasets"]} >= {result.training_sha256}
        assert chain["raw_files"] and all(len(entry["sha256"]) == 64 for entry in chain["raw_files"])
        model = mlflow.pyfunc.load_model(f"models:/{result.registered_name}@champion")
        assert model.metadata.run_id == result.run_id
    finally:
        mlflow.set_tracking_uri(config.tracking_uri)  # the other tests use the study's own store


def test_training_again_on_the_same_set_settings_and_code_reuses_the_version(study, monkeypatch) -> None:
    from pipelines.models import train as training

    config, repo, _ = study
    monkeypatch.setattr(training, "_code_version", lambda: {"git_commit": "0" * 40, "git_dirty": False})
    first = training.train(config, "daily_anomaly", repo_path=repo, reuse=True)
    again = training.train(config, "daily_anomaly", repo_path=repo, reuse=True)
    assert again.reused and not first.reused
    assert (again.run_id, again.version, again.training_sha256) == (first.run_id, first.version, first.training_sha256)
    changed = with_model(config, "daily_anomaly", threshold=config.models["daily_anomaly"].threshold.model_copy(
        update={"quantile": 0.9}))
    retrained = training.train(changed, "daily_anomaly", repo_path=repo, reuse=True)
    assert not retrained.reused and retrained.version != first.version  # other settings: a new version
    monkeypatch.setattr(training, "_code_version", lambda: {"git_commit": "0" * 40, "git_dirty": True})
    assert not training.train(config, "daily_anomaly", repo_path=repo, reuse=True).reused  # uncommitted code


def test_a_cohort_is_scored_point_in_time_with_feature_ages_and_lineage(study, trained) -> None:
    import mlflow

    from pipelines.models.registry import RegistryError, lineage
    from pipelines.models.scoring import score_cohort
    from pipelines.models.train import build_training_set

    config, result = trained
    _, repo, _ = study
    cohort = config.data_root / "cohorts" / "first_ten.csv"
    cohort.parent.mkdir(exist_ok=True)
    pd.DataFrame({"subject_id": [f"S{k:04d}" for k in range(1, 11)]}).to_csv(cohort, index=False)
    as_of = pd.Timestamp("2024-03-12T06:00:00Z")
    scored = score_cohort(config, f"{result.registered_name}/{result.version}", as_of.to_pydatetime(),
                          cohort=Path("cohorts/first_ten.csv"), repo_path=repo)
    frame = pd.read_parquet(scored.path)
    assert scored.path.is_relative_to(config.data_root) and len(frame) == 10
    assert {"subject_id", "score", "model_name", "model_version", "as_of", "feature_age_daily_activity_h",
            "feature_age_labs_h"} <= set(frame.columns)
    assert (frame["as_of"] == as_of).all() and frame["score"].between(0, 1).all()
    ages = frame["feature_age_daily_activity_h"].dropna()
    assert (ages >= 0).all() and (ages <= 3 * 24).all()  # never from the future, never past the 3-day TTL

    # the same numbers as the model on the point-in-time training set built for those rows
    entity = pd.DataFrame({"subject_id": frame["subject_id"], "event_timestamp": as_of, "label": 0})
    rebuilt = build_training_set(config, ENDPOINT, repo_path=repo, entity=entity.assign(label=[0, 1] * 5))
    model = mlflow.sklearn.load_model(f"models:/{result.registered_name}/{result.version}")
    assert frame["score"].to_numpy() == pytest.approx(model.predict_proba(rebuilt.frame[rebuilt.features])[:, 1])

    chain = lineage(config, scored.run_id)  # lineage reaches scores
    assert chain["scores"]["output_sha256"] == scored.output_sha256
    assert chain["model_version"]["version"] == result.version and chain["raw_files"]

    latest = score_cohort(config, f"{result.registered_name}/{result.version}", None, repo_path=repo)
    assert (latest.scores["feature_age_daily_activity_h"] == 0).all()  # each subject at its newest window
    with pytest.raises(RegistryError, match="outside the study data root"):
        score_cohort(config, f"{result.registered_name}/{result.version}", None, cohort=Path("../elsewhere.csv"),
                     repo_path=repo)


def test_the_study_report_shows_the_model_run_and_the_highest_risks(study, trained) -> None:
    import re

    from pipelines.models.scoring import score_cohort
    from pipelines.report.page import HIGHEST_RISK_SHOWN, write_report
    from tests.pipelines.test_report import Page, plots, section

    config, result = trained
    _, repo, tables = study
    scored = score_cohort(config, f"{result.registered_name}/{result.version}", None, repo_path=repo)
    page = write_report(config, tables=tables).read_text(encoding="utf-8")

    model = section(page, "model")
    assert f"{result.registered_name} version " in model and result.registered_name in model
    assert [figure.count('<img alt="') for figure in plots(model)] == [1, 1]  # ROC and calibration, as logged
    metrics = {row[0]: row for row in Page(model).tables["metrics"]}
    assert {"auroc", "auprc", "brier", "calibration_error"} <= set(metrics)
    assert re.fullmatch(r"\d\.\d{3} to \d\.\d{3}", metrics["auroc"][2])
    subgroups = Page(model).tables["subgroups"]  # subgroup, value, rows, ..., AUROC, its CI, ..., note
    assert {row[0] for row in subgroups} == {"site", "sex", "age_band"}
    assert all(row[6] == "-" or " to " in row[6] for row in subgroups)

    risk = Page(section(page, "risk")).tables["risk"]
    highest = scored.scores.sort_values(["score", "subject_id"], ascending=[False, True]).iloc[0]
    assert len(risk) == HIGHEST_RISK_SHOWN and risk[0][1] == highest["subject_id"]
    assert risk[0][4] == f"{highest['score']:.3f}"


def test_a_whole_site_can_be_held_out(study) -> None:
    from pipelines.config import SplitConfig
    from pipelines.models.train import subject_attributes, train

    config, repo, _ = study
    sites = subject_attributes(config).set_index("subject_id")["site"]
    held_out = sorted(sites.unique())[0]
    result = train(with_model(config, "daily_anomaly", split=SplitConfig(holdout_site=held_out)),
                   "daily_anomaly", repo_path=repo)
    split = result.lineage.split
    assert split["holdout_site"] == held_out
    assert set(split["test_subjects"]) == set(sites[sites == held_out].index) & set(
        result.lineage.split["test_subjects"] + result.lineage.split["train_subjects"])
    assert not any(sites[s] == held_out for s in split["train_subjects"])


def test_biomarkers_serve_answers_scores_over_http(study, trained, tmp_path) -> None:
    """`biomarkers serve` under uvicorn on 127.0.0.1: a key made by `biomarkers api-key`, a score."""
    import socket
    import time
    import urllib.error
    import urllib.request

    from typer.testing import CliRunner

    from adapters.feast_repo import materialize
    from pipelines.cli import app
    from serving.settings import hash_api_key

    config, result = trained
    _, repo, _ = study
    materialize(repo)
    made = CliRunner().invoke(app, ["api-key", "test-client", "--study-id", config.study_id])
    assert made.exit_code == 0, made.output
    key = made.output.split("):", 1)[1].split()[0]
    entry = next(line for line in made.output.splitlines() if "sha256:" in line)
    assert key not in entry  # only the hash goes into the configuration
    study_file = tmp_path / "study.yaml"
    demo = DEMO_STUDY.read_text().split("\nserving:")[0]  # this test's serving section replaces the demo's
    study_file.write_text(demo.replace("data_root: ../../data/demo", f"data_root: {config.data_root}")
                          + f"\nserving:\n  models: {{hospitalization_risk: {result.registered_name}/{result.version}}}"
                          + "\n  api_keys:\n  " + entry.strip() + "\n")
    # A second key registered for the study (the README's way): only the key on stdout, its hash in the file.
    registered = CliRunner().invoke(app, ["api-key", "readme", "--register", str(study_file)])
    assert registered.exit_code == 0, registered.output
    laptop_key = registered.stdout.strip()
    keys_file = (config.platform_root / "api_keys.yaml").read_text()
    assert laptop_key not in keys_file and hash_api_key(laptop_key) in keys_file
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "biomarkers"), "serve", str(study_file), "--port",
                               str(port), "--feast-repo", str(repo)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def call(path: str, body: dict | None = None, token: str | None = key) -> tuple[int, dict]:
        request = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if call("/healthz", token=None)[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()[-3000:]
            time.sleep(0.5)
        assert call("/readyz", token=None)[0] == 200
        status, answer = call("/v1/score/hospitalization_risk", {"subject_ids": ["S0001", "S0002"]})
        assert status == 200, answer
        assert str(answer["version"]) == result.version and len(answer["scores"]) == 2
        assert all(0 <= row["score"] <= 1 for row in answer["scores"])
        urgent = {"subject_id": "S0001", "timestamp": "2024-03-12T06:00:00Z", "heart_rate_bpm": 135,
                  "respiratory_rate_per_min": 28, "spo2_percent": 89, "temperature_deg_c": 38.9,
                  "systolic_bp_mmhg": 88, "consciousness_avpu": "A", "supplemental_oxygen": False}
        status, answer = call("/v1/events", {"events": [urgent]})
        assert status == 200 and answer["results"][0]["alert"], answer
        status, alerts = call("/v1/alerts?subject_id=S0001")
        assert status == 200 and alerts, alerts
        assert (config.platform_root / "alerts.db").is_file()  # alerts kept in the study's platform folder
        assert call("/v1/score/hospitalization_risk", {"subject_ids": ["S0001"]}, token=laptop_key)[0] == 200
        assert call("/v1/score/hospitalization_risk", {"subject_ids": ["S0001"]}, token=None)[0] == 401
        assert call("/v1/score/hospitalization_risk", {"subject_ids": ["S0001"]}, token="wrong")[0] == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_spark_scoring_gives_the_local_scores(spark, study, trained, tmp_path) -> None:
    """``--engine spark``: features from Feast's Spark offline store, scored in Spark tasks (the
    on-demand change-from-baseline features derived there too): the local engine's scores, ages
    and output digest."""
    from adapters.feast_repo import apply_repo
    from pipelines.models.registry import RegistryError
    from pipelines.models.scoring import score_cohort

    spark_yaml = REPOSITORY / "deploy" / "feature_store.spark.yaml"
    config, result = trained
    _, repo, tables = study
    apply_repo(tmp_path / "spark_repo", tables, yaml_file=spark_yaml)
    reference = f"{result.registered_name}/{result.version}"
    as_of = pd.Timestamp("2024-03-12T06:00:00Z").to_pydatetime()
    local = score_cohort(config, reference, as_of, repo_path=repo, out=Path("scores/local.parquet"))
    spark_scored = score_cohort(config, reference, as_of, repo_path=tmp_path / "spark_repo", yaml_file=spark_yaml,
                                engine="spark", out=Path("scores/spark.parquet"))
    assert "creatinine_change_from_baseline_mg_dl" in result.lineage.features  # an on-demand feature is scored
    pd.testing.assert_frame_equal(spark_scored.scores, local.scores, check_exact=False, rtol=1e-12)
    assert spark_scored.input_sha256 == local.input_sha256
    with pytest.raises(RegistryError, match="--engine spark reads features through Feast's Spark offline store"):
        score_cohort(config, reference, as_of, repo_path=repo, engine="spark")


def test_a_reviewer_sees_the_champions_lineage_in_the_mlflow_ui(trained, tmp_path: Path) -> None:
    """The model version page shows the lineage and links to the model card; the run page shows the
    datasets' digests; the link leads to the card."""
    from mlflow import MlflowClient

    config, result = trained
    client = MlflowClient(config.tracking_uri)
    # Promotion is tested above; here the alias only says which version a reviewer looks at.
    client.set_registered_model_alias(result.registered_name, "champion", result.version)
    version = client.get_model_version(result.registered_name, result.version)
    run_lineage = {key: value for key, value in client.get_run(result.run_id).data.tags.items()
                   if key.startswith("lineage.")}
    assert run_lineage.items() <= version.tags.items()  # the version carries the run's lineage as it is
    assert version.description.startswith(
        f"endpoint model (logistic_regression) on feature service endpoint_v1, run {result.run_id}: auroc ")

    with mlflow_ui(config.tracking_uri) as url:
        assert_lineage_visible(url, result.registered_name, "champion", tmp_path / "chromium", config.tracking_uri)


def test_every_task_of_the_registry_has_an_entity_frame_and_an_unknown_task_is_refused() -> None:
    """The training pipeline and study.yaml read the tasks from ``training.tasks``; no study is needed."""
    from pydantic import ValidationError

    from pipelines.config import ModelConfig
    from pipelines.models.train import ENTITY_FRAMES, evaluation_settings
    from training.tasks import TASK_NAMES

    assert set(ENTITY_FRAMES) == set(TASK_NAMES)
    with pytest.raises(ValidationError, match="unknown task 'risk'; known tasks: endpoint, anomaly"):
        ModelConfig(task="risk", feature_service="endpoint_v1", estimator="logistic_regression")
    with pytest.raises(ValidationError, match="'isolation_forest' is not one of task endpoint.*logistic_regression"):
        ModelConfig(task="endpoint", feature_service="endpoint_v1", estimator="isolation_forest")
    model = ModelConfig(task="anomaly", feature_service="anomaly_v1", estimator="isolation_forest", seed=4,
                        params={"n_estimators": 50}, split={"holdout_site": "S2"}, threshold={"quantile": 0.9})
    settings = evaluation_settings(model)
    assert (settings.estimator, dict(settings.params), settings.seed, settings.holdout_site, settings.test_size,
            settings.threshold_method, settings.threshold_quantile, settings.label_column) == \
        ("isolation_forest", {"n_estimators": 50}, 4, "S2", 0.3, "quantile", 0.9, "label")
    assert (settings.bootstrap_samples, settings.subgroups, settings.subgroup_min_samples) == \
        (1000, ("site", "sex", "age_band"), 20)
