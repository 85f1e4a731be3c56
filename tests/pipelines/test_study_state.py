"""A study owns its state: everything it produces is under its platform folder, its Feast repo folder
works with the stock Feast CLI, and the study can be moved and still explains and reproduces its models."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import load_study
from tests.pipelines.conftest import DEMO_STUDY

MODEL = "hospitalization_risk"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small demo study, ingested, built, materialized and with its endpoint model trained, all
    in its own folder; returns the study's root."""
    from adapters.feast_repo import apply_repo, materialize
    from pipelines.build.local import build_features
    from pipelines.demo.generate import generate_demo
    from pipelines.ingest.run import ingest_study
    from pipelines.models.train import train

    root = tmp_path_factory.mktemp("state") / "study"
    generate_demo(root, seed=3, n_subjects=10, days=3)
    config = load_study(DEMO_STUDY, root)
    ingest_study(config, workers=1)
    build_features(config, config.feature_tables_root, workers=1)
    repo = config.feast_repo()
    apply_repo(repo, config.feature_tables_root)
    materialize(repo)
    train(config, MODEL)
    return root


def test_everything_the_study_produces_is_under_its_platform_folder(trained):
    config = load_study(DEMO_STUDY, trained)
    platform = trained / ".platform"

    assert config.feature_tables_root == platform / "feature_tables"
    assert (platform / "feature_tables" / "daily_activity.parquet").is_file()
    assert sorted(path.name for path in trained.iterdir()) == [".platform", "raw", "truth"]  # the generator's, and ours
    produced = {path.name for path in (platform / "feast").iterdir()}
    assert {"feature_store.yaml", "definitions.py", "registry.db", "online_store.db"} <= produced
    assert "project: demo\n" in (platform / "feast" / "feature_store.yaml").read_text()


def test_no_absolute_path_is_stored_in_the_feast_registry(trained):
    registry = (trained / ".platform" / "feast" / "registry.db").read_bytes()

    assert str(trained).encode() not in registry
    assert b"../feature_tables/daily_activity.parquet" in registry


def test_the_stock_feast_cli_works_on_the_study_repo_folder(trained, tmp_path):
    feast = Path(sys.executable).with_name("feast")
    done = subprocess.run([feast, "-c", str(trained / ".platform" / "feast"), "feature-views", "list"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "daily_activity" in done.stdout and "vital_signs_live" in done.stdout


def test_a_moved_study_explains_and_reproduces_its_model(trained, tmp_path):
    from pipelines.models.registry import lineage, reproduce

    moved = tmp_path / "elsewhere" / "study"
    shutil.copytree(trained, moved, symlinks=True)
    hidden = trained.with_name("study-away")
    trained.rename(hidden)  # nothing may still reach into the old folder
    try:
        config = load_study(DEMO_STUDY, moved)
        chain = lineage(config, f"demo-{MODEL}@candidate")
        result = reproduce(config, f"demo-{MODEL}@candidate")
    finally:
        hidden.rename(trained)

    assert chain["raw_files"], chain
    assert result["reproduced"], result
    with sqlite3.connect(moved / ".platform" / "mlflow.db") as store:
        assert not _cells_containing(store, str(trained)), "the moved store still names the old folder"


def test_every_artifact_location_of_the_mlflow_store_is_known(trained):
    """``adapters.tracking.ARTIFACT_COLUMNS`` lists every column where MLflow keeps a path to the
    study's artifacts (a new one in another MLflow would be left pointing at the old folder)."""
    from adapters.tracking import ARTIFACT_COLUMNS

    with sqlite3.connect(trained / ".platform" / "mlflow.db") as store:
        found = {(table, column) for table, column in _cells_containing(store, str(trained / ".platform"))}

    assert found and found <= set(ARTIFACT_COLUMNS.items())


def _cells_containing(store: sqlite3.Connection, text: str) -> list[tuple[str, str]]:
    cells = []
    for (table,) in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for column in [row[1] for row in store.execute(f'PRAGMA table_info("{table}")')]:
            hit = store.execute(f'SELECT 1 FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ? LIMIT 1',
                                (f"%{text}%",)).fetchone()
            if hit:
                cells.append((table, column))
    return cells


def test_study_repo_folders_keep_their_infrastructure_until_another_template_is_given(tmp_path):
    from adapters.feast_repo import write_study_repo

    folder, tables = tmp_path / "platform" / "feast", tmp_path / "platform" / "feature_tables"
    production = Path(__file__).resolve().parents[2] / "deploy" / "feature_store.production.yaml"

    write_study_repo(folder, "cardio-2", tables)
    embedded = (folder / "feature_store.yaml").read_text()
    write_study_repo(folder, "cardio-2", tables, production)
    switched = (folder / "feature_store.yaml").read_text()
    write_study_repo(folder, "cardio-2", tables)

    assert "project: cardio_2\n" in embedded and "type: sqlite" in embedded
    assert "project: cardio_2\n" in switched and "type: redis" in switched
    assert (folder / "feature_store.yaml").read_text() == switched
    assert "Path('../feature_tables')" in (folder / "definitions.py").read_text()


@pytest.mark.parametrize(("content", "reason"), [
    ("- a list\n- of things\n", "not a mapping"),
    ("project: x\n" + "# padding\n" * 10_000, "larger than"),
])
def test_a_bad_infrastructure_template_is_refused(tmp_path, content, reason):
    from adapters.feast_repo import write_study_repo

    template = tmp_path / "feature_store.yaml"
    template.write_text(content)

    with pytest.raises(ValueError, match=reason):
        write_study_repo(tmp_path / "feast", "demo", tmp_path / "tables", template)
