"""`biomarkers run` does only what changed, and `biomarkers watch` runs a folder of studies cycle
after cycle: new studies, late files, files waiting for their subject's enrollment, broken studies."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.config import StudyConfig, load_study
from pipelines.ingest.lake import read_subject
from pipelines.study_run import StudyBusyError, StudyRun, run_study, study_lock, watch
from tests.pipelines.conftest import DEMO_STUDY, make_study, write_minute_file

MODEL = "hospitalization_risk"


def outcomes(run) -> dict[str, str]:
    return {step.name: step.outcome for step in run.steps}


def small_demo(root: Path, study_id: str, seed: int) -> Path:
    """A generated demo study of 10 subjects by 3 days under ``root``, with its endpoint model only
    (the anomaly models need more subjects): its study.yaml."""
    from pipelines.demo.generate import generate_demo

    generate_demo(root / "data", seed=seed, n_subjects=10, days=3)
    settings = yaml.safe_load(DEMO_STUDY.read_text())
    settings.update(study_id=study_id, data_root="data")
    # Criteria any model meets: a 10-subject study cannot show the demo's AUROC, and these tests are about runs.
    settings["models"] = {MODEL: {**settings["models"][MODEL], "acceptance": {"require_validated_inputs": False}}}
    settings["serving"].pop("events_anomaly_model", None)
    study = root / "study.yaml"
    study.write_text(yaml.safe_dump(settings))
    return study


@dataclass
class Runs:
    """A study's runs as its team and reviewer go: run, run again, promote, run."""

    study: Path
    config: StudyConfig
    lines: list[str]
    first: StudyRun
    second: StudyRun
    promoted: bool
    third: StudyRun


def run_promote_run(study: Path) -> Runs:
    from pipelines.models.registry import promote

    config = load_study(study)
    lines: list[str] = []
    first = run_study(config, study_path=study, log=lines.append)
    second = run_study(config, study_path=study, log=lines.append)
    # Promotion is the reviewer's act; the next run scores with the new champion and updates the report.
    promoted = promote(config, f"{config.study_id}-{MODEL}", "1", approver="A. Reviewer", reason="test").accepted
    third = run_study(config, study_path=study, log=lines.append)
    return Runs(study, config, lines, first, second, promoted, third)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Runs:
    return run_promote_run(small_demo(tmp_path_factory.mktemp("demo"), "demo", seed=3))


def test_a_run_does_every_step_once_and_a_second_run_does_nothing(demo):
    lines = demo.lines
    assert outcomes(demo.first) == {"ingest": "done", "features": "done", "materialize": "done",
                                    f"train {MODEL}": "done", f"score {MODEL}": "skipped", "report": "done"}, lines
    assert demo.first.report is not None and demo.first.report.is_file()
    assert not demo.second.did_work and set(outcomes(demo.second).values()) == {"skipped"}, lines
    assert all(line.startswith("study demo: ") for line in lines)

    assert demo.promoted
    assert outcomes(demo.third)[f"score {MODEL}"] == "done" and outcomes(demo.third)["report"] == "done"
    assert outcomes(demo.third)[f"train {MODEL}"] == "skipped"
    assert list((demo.config.platform_root / "scores").rglob("*.parquet"))


def test_the_trained_models_lineage_holds_the_biomarker_pipeline_it_was_built_with(demo):
    import json

    import mlflow

    from adapters.tracking import read_lineage
    from features.settings import resolved_pipeline
    from pipelines.build.local import MANIFEST

    mlflow.set_tracking_uri(demo.config.tracking_uri)
    champion = mlflow.MlflowClient().get_model_version_by_alias(f"demo-{MODEL}", "champion")
    recorded = read_lineage(champion.run_id).feature_build["pipeline"]
    assert recorded == resolved_pipeline(demo.config.biomarkers)
    assert recorded == json.loads((demo.config.feature_tables_root / MANIFEST).read_text())["pipeline"]
    assert recorded["settings"]["hrv"]["artefact_method"] == "lipponen_tarvainen_2019"


def test_a_second_study_runs_beside_the_demo_and_both_are_served_apart(demo, tmp_path):
    """A second generated study with its own id and seed goes through the same runs; one service
    then serves both, each with its own features, model and keys."""
    from fastapi.testclient import TestClient

    from pipelines.cli import serving_settings
    from serving.app import create_studies_app
    from serving.settings import ApiKey, hash_api_key

    ward = run_promote_run(small_demo(tmp_path, "ward-b", seed=4))
    assert ward.promoted and outcomes(ward.third)[f"score {MODEL}"] == "done", ward.lines
    assert all(line.startswith("study ward-b: ") for line in ward.lines)
    roots = {runs.config.platform_root for runs in (demo, ward)}
    assert len(roots) == 2 and not any(root in other.parents for root in roots for other in roots)

    keys = {"demo": "key-of-the-demo", "ward-b": "key-of-ward-b"}
    settings = [serving_settings(runs.config, None, None).model_copy(update={"api_keys": (
        ApiKey(name="app", sha256=hash_api_key(keys[runs.config.study_id]), studies=(runs.config.study_id,)),)})
        for runs in (demo, ward)]
    answers = {}
    with TestClient(create_studies_app(settings)) as client:
        for study, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"}
            scored = client.post(f"/studies/{study}/v1/score/{MODEL}", json={"subject_ids": ["S0001"]},
                                 headers=headers)
            assert scored.status_code == 200, scored.text
            assert scored.json()["registered_model"] == f"{study}-{MODEL}" and scored.json()["version"] == "1"
            features = client.get(f"/studies/{study}/v1/subjects/S0001/features", headers=headers,
                                  params={"service": demo.config.models[MODEL].feature_service})
            assert features.status_code == 200, features.text
            answers[study] = (scored.json()["scores"][0]["score"], features.json()["features"])
            other = next(name for name in keys if name != study)
            refused = client.post(f"/studies/{other}/v1/score/{MODEL}", json={"subject_ids": ["S0001"]},
                                  headers=headers)
            assert refused.status_code == 403, refused.text
    # Same subject code, different studies (seeds): each study's own data, nothing shared.
    assert answers["demo"] != answers["ward-b"]
    for study, (score, _) in answers.items():
        assert 0.0 <= score <= 1.0, study


def test_a_second_run_of_a_study_in_progress_is_refused(tmp_path):
    config = load_study(make_study(tmp_path / "tiny"))

    with study_lock(config), pytest.raises(StudyBusyError, match="another run holds"):
        run_study(config)


def test_the_run_command_exits_0_and_says_what_it_skipped(tmp_path):
    study = make_study(tmp_path / "tiny")
    environment = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}

    def biomarkers_run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(study), "--workers", "1"],
                              cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)

    first, second = biomarkers_run(), biomarkers_run()

    assert first.returncode == 0, first.stdout + first.stderr
    assert "study tiny: ingest: done: 6 curated" in first.stdout  # 4 minute files, enrollment, endpoints
    assert "study tiny: features: done" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "study tiny: ingest: skipped" in second.stdout and "report: skipped" in second.stdout


def test_watch_picks_up_new_studies_late_files_and_enrollments_and_goes_past_a_broken_study(tmp_path):
    studies = tmp_path / "studies"
    first = make_study(studies / "first")
    lines: list[str] = []

    def cycle() -> list[str]:
        start = len(lines)
        watch(studies, cycles=1, log=lines.append)
        return lines[start:]

    one = cycle()
    assert f"new study: {first}" in one
    assert "study tiny: ingest: done: 6 curated" in one and "study tiny: features: done" in " ".join(one)

    assert cycle()[-1] == "study tiny: up to date"

    # A file arrives for a subject the enrollment file does not hold yet: it waits, nothing else moves.
    late = first.parent / "raw" / "minute" / "S0005_minute.csv"
    write_minute_file(late, 5)
    waiting = cycle()
    assert any("ingest: skipped" in line and "1 pending" in line and "S0005" in line for line in waiting), waiting
    config = load_study(first)
    assert read_subject(config.lake_root, "minute_wearable", "S0005") is None

    # The subject is enrolled: the waiting file is curated and the features rebuilt with it.
    subjects = pd.read_csv(first.parent / "raw" / "subjects.csv")
    enrolled = pd.concat([subjects, subjects.tail(1).assign(subject_id="S0005")])
    enrolled.to_csv(first.parent / "raw" / "subjects.csv", index=False)
    # A second study appears, and a broken one beside it.
    second = make_study(studies / "second")
    second.write_text(second.read_text().replace("study_id: tiny", "study_id: tiny-two"))
    (studies / "broken").mkdir()
    (studies / "broken" / "study.yaml").write_text("study_id: [unclosed\n")
    after = cycle()
    joined = "\n".join(after)
    assert "study tiny: ingest: done: 2 curated" in joined, joined  # the waiting file and the enrollment file
    assert "study tiny: features: done" in joined
    assert f"new study: {second}" in joined and "study tiny-two: ingest: done: 6 curated" in joined
    assert f"study {studies / 'broken' / 'study.yaml'}: not run:" in joined
    assert len(read_subject(config.lake_root, "minute_wearable", "S0005")) == 180  # once
    # Each study's state is its own.
    assert load_study(second).feature_tables_root != config.feature_tables_root
    assert (load_study(second).feast_repo_root / "feature_store.yaml").read_text().count("project: tiny_two") == 1
