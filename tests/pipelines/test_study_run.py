"""`biomarkers run` does only what changed, and `biomarkers watch` runs a folder of studies cycle
after cycle: new studies, late files, files waiting for their subject's enrollment, broken studies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.config import load_study
from pipelines.ingest.lake import read_subject
from pipelines.study_run import StudyBusyError, run_study, study_lock, watch
from tests.pipelines.conftest import DEMO_STUDY, make_study, write_minute_file

MODEL = "hospitalization_risk"


def outcomes(run) -> dict[str, str]:
    return {step.name: step.outcome for step in run.steps}


@pytest.fixture(scope="module")
def endpoint_study(tmp_path_factory) -> Path:
    """The demo study, small, with its endpoint model only (the anomaly models need more subjects)."""
    from pipelines.demo.generate import generate_demo

    root = tmp_path_factory.mktemp("run")
    generate_demo(root / "data", seed=3, n_subjects=10, days=3)
    settings = yaml.safe_load(DEMO_STUDY.read_text())
    settings["data_root"] = "data"
    # Criteria any model meets: a 10-subject study cannot show the demo's AUROC, and this test is about runs.
    settings["models"] = {MODEL: {**settings["models"][MODEL], "acceptance": {"require_validated_inputs": False}}}
    settings["serving"].pop("events_anomaly_model", None)
    study = root / "study.yaml"
    study.write_text(yaml.safe_dump(settings))
    return study


def test_a_run_does_every_step_once_and_a_second_run_does_nothing(endpoint_study):
    from pipelines.models.registry import promote

    config = load_study(endpoint_study)
    lines: list[str] = []

    first = run_study(config, study_path=endpoint_study, log=lines.append)
    second = run_study(config, study_path=endpoint_study, log=lines.append)

    assert outcomes(first) == {"ingest": "done", "features": "done", "materialize": "done", f"train {MODEL}": "done",
                               f"score {MODEL}": "skipped", "report": "done"}, lines
    assert first.report is not None and first.report.is_file()
    assert not second.did_work and set(outcomes(second).values()) == {"skipped"}, lines
    assert all(line.startswith("study demo: ") for line in lines)

    # Promotion is the reviewer's act; the next run scores with the new champion and updates the report.
    assert promote(config, f"demo-{MODEL}", "1", approver="A. Reviewer", reason="test").accepted
    third = run_study(config, study_path=endpoint_study, log=lines.append)
    assert outcomes(third)[f"score {MODEL}"] == "done" and outcomes(third)["report"] == "done"
    assert outcomes(third)[f"train {MODEL}"] == "skipped"
    assert list((config.platform_root / "scores").rglob("*.parquet"))


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
