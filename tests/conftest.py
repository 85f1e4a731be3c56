"""Fixtures shared by every test package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pipelines.conftest import DEMO_STUDY

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"

# Real device recordings (SKDH test data, MIT) live in the shared folder beside the repository:
# /work/main/tests/conftest.py -> /work/shared/data/devices (CI clones the repo with ../shared beside it).
# From a module in tests/<package>/ this is Path(__file__).resolve().parents[3] / "shared" / ...
DEVICES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "devices"


# The longest modules, started first: with two workers handing out whole modules (`-n 2 --dist
# loadfile`, see pyproject.toml), the README walk-through (about ten minutes) then runs beside
# the rest of the suite instead of after it, on one core while the other waits.
SLOWEST_FIRST = ("tests/test_readme.py", "tests/pipelines/test_train.py", "tests/test_wheel.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: position for position, module in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order


@pytest.fixture(scope="session")
def devices_dir() -> Path:
    """The folder of real Axivity, GENEActiv and CSV recordings; fails (never skips) when it is missing."""
    if not DEVICES_DIR.is_dir():
        pytest.fail(
            f"device recordings not found at {DEVICES_DIR}: clone the shared data repository beside "
            "this one (../shared/data/devices) before running the tests"
        )
    return DEVICES_DIR


@pytest.fixture(scope="session")
def spark():
    """One Spark session in ``local[2]`` mode (the machine's Java 17) for every Spark test, stopped at the end.

    Skips only where pyspark is not installed; ``make test`` installs it (the ``spark`` extra).
    """
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -c constraints.txt -e '.[test,spark]'")
    from adapters.spark import spark_session
    from pipelines.config import SparkConfig

    # No web UI: parallel test sessions on one machine would race for its port, and no one looks at it.
    settings = SparkConfig(
        master="local[2]",
        app_name="biomarkers-tests",
        conf={"spark.ui.enabled": False, "spark.sql.shuffle.partitions": 2},
    )
    session = spark_session(settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """The demo study at small scale (5 subjects, 6 days: the circadian table's week needs 5 valid
    days), ingested and built on the local engine.

    Shared by the modules that test the feature build (generating and ingesting it takes most of
    their time); they read it and build into folders of their own, never change it.

    Returns ``(manifest, config, summary, tables)``: the generator's manifest, the study, the
    local build's summary and the folder of its published tables.
    """
    from pipelines.build.local import build_features
    from pipelines.config import load_study
    from pipelines.demo.generate import generate_demo
    from pipelines.ingest.run import ingest_study

    root = tmp_path_factory.mktemp("features")
    manifest = generate_demo(root / "study", seed=5, n_subjects=5, days=6)
    config = load_study(DEMO_STUDY, root / "study")
    ingest_study(config, workers=1)
    tables = root / "tables"
    summary = build_features(config, tables, workers=1)
    return manifest, config, summary, tables


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session, so no test sees rows left by anyone else."""
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres: {exc}")
    name = f"catalog_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        # FORCE: pooled connections of catalogs a failed test did not close must not block the drop.
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A fresh schema per test, selected through search_path in the URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={postgres_database}", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{postgres_database}?options=-csearch_path%3D{schema}"
