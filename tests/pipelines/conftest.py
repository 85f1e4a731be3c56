"""A tiny study written by hand, for ingestion tests that need to change files between runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

START = pd.Timestamp("2024-03-04T00:00:00Z")
DEMO_STUDY = Path(__file__).resolve().parents[2] / "studies" / "demo" / "study.yaml"


def write_minute_file(path: Path, subject_index: int, minutes: int = 180, heart_rate_offset: float = 0.0) -> None:
    """A plausible minute-level export (the demo's column names) for one subject."""
    rng = np.random.default_rng(subject_index)
    times = START + pd.to_timedelta(np.arange(minutes), unit="min")
    frame = pd.DataFrame({
        "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "steps": rng.integers(0, 90, minutes),
        "heart_rate": np.round(rng.normal(72, 6, minutes) + heart_rate_offset, 1),
        "sleep_stage": "wake",
        "worn": 1,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def make_study(root: Path, n_subjects: int = 4, catalog_url: str | None = None) -> Path:
    """Write subjects, endpoints and one minute file per subject; return the study.yaml path."""
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    subjects = [f"S{i:04d}" for i in range(1, n_subjects + 1)]
    pd.DataFrame({
        "subject_id": subjects,
        "site": "SITE-A",
        "arm": "placebo",
        "sex": ["F", "M"] * (n_subjects // 2) + ["F"] * (n_subjects % 2),
        "birth_year": 1960,
        "enrolled_on": "2024-03-01",
    }).to_csv(raw / "subjects.csv", index=False)
    pd.DataFrame({
        "subject_id": subjects,
        "index_time": "2024-03-29T00:00:00Z",
        "endpoint": "hospitalization_90d",
        "outcome": [i % 2 for i in range(n_subjects)],
    }).to_csv(raw / "endpoints.csv", index=False)
    for i, subject in enumerate(subjects, start=1):
        write_minute_file(raw / "minute" / f"{subject}_minute.csv", i)
    catalog = f"\ncatalog_url: '{catalog_url}'" if catalog_url else ""
    study = root / "study.yaml"
    study.write_text(f"""
study_id: tiny
data_root: {root}{catalog}
subjects: {{path: raw/subjects.csv, columns: {{site_id: site, enrollment_date: enrolled_on}}}}
endpoints: {{path: raw/endpoints.csv}}
sources:
  minute_wearable:
    kind: minute_wearable
    pattern: raw/minute/*.csv
    format: csv
    subject_pattern: '^(?P<subject_id>S\\d{{4}})_'
    columns: {{timestamp: time, steps_count: steps, heart_rate_bpm: heart_rate, wear: worn}}
""")
    return study


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    return make_study(tmp_path / "tiny")


def feast_repo(repo: Path, project: str, tables: Path) -> Path:
    """A Feast repo of a test's own on embedded defaults (the project's offline store, SQLite
    online store, local registry) with every definition applied over the feature tables in ``tables``."""
    from adapters.feast_repo import apply_repo

    repo.mkdir()
    (repo / "feature_store.yaml").write_text(f"""
project: {project}
provider: local
registry: {repo / 'registry.db'}
offline_store: {{type: adapters.offline_store.AsofDuckDBOfflineStore}}
online_store: {{type: sqlite, path: {repo / 'online.db'}}}
entity_key_serialization_version: 3
""")
    apply_repo(repo, tables)
    return repo


def ingest_and_build_with(tmp_path: Path, file_name: str, source_yaml: str) -> Path:
    """A two-subject study at ``tmp_path/study`` (:func:`make_study`) with the source in
    ``source_yaml`` added (its file(s) already under ``tmp_path/study/raw``): ingest, check that
    ``file_name`` was curated, build the feature tables into ``tmp_path/tables`` and return that folder."""
    from pipelines.build.local import build_features
    from pipelines.config import load_study
    from pipelines.ingest.run import ingest_study

    study = make_study(tmp_path / "study", n_subjects=2)
    study.write_text(study.read_text() + source_yaml)
    config = load_study(study)
    summary = ingest_study(config, workers=1)
    statuses = {Path(outcome.path).name: (outcome.status, outcome.reason) for outcome in summary.outcomes}
    assert statuses[file_name] == ("curated", None)
    tables = tmp_path / "tables"
    build_features(config, tables, workers=1)
    return tables


def files_holding(tmp_path: Path, *needles: bytes) -> list[Path]:
    """The files the platform wrote for the study of :func:`ingest_and_build_with` (its state and its
    feature tables; asserted to be some) that hold any of ``needles``."""
    written = [path for folder in (tmp_path / "study" / ".platform", tmp_path / "tables")
               for path in folder.rglob("*") if path.is_file()]
    assert written
    return [path for path in written if any(needle in path.read_bytes() for needle in needles)]
