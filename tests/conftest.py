"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

# Real device recordings (SKDH test data, MIT) live in the shared folder beside the repository:
# /work/main/tests/conftest.py -> /work/shared/data/devices (CI clones the repo with ../shared beside it).
# From a module in tests/<package>/ this is Path(__file__).resolve().parents[3] / "shared" / ...
DEVICES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "devices"


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
