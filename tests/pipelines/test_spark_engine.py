"""The Spark engine of the feature build: the same tables as the local engine, clear errors.

The tests that run Spark share one ``local[2]`` session (the ``spark`` fixture) and skip only
where pyspark is not installed; the ones about a missing pyspark or the configuration run anyway.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from pipelines.build.local import MANIFEST, SubjectsFailedError, build_features
from pipelines.config import SUBJECTS_SOURCE, SparkConfig


def published(tables: Path) -> dict[str, bytes]:
    """Every file of a table folder, by name, with its content."""
    return {path.name: path.read_bytes() for path in sorted(tables.iterdir())}


def test_spark_builds_the_same_tables_as_the_local_engine(spark, demo_build, tmp_path: Path) -> None:
    _, config, local, local_tables = demo_build
    calls = []

    summary = build_features(
        config,
        tmp_path / "tables",
        engine="spark",
        spark=spark,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert not summary.rejected and summary.tables == local.tables
    assert {p.name for p in (tmp_path / "tables").glob("*.parquet")} == {p.name for p in local_tables.glob("*.parquet")}
    for name in summary.tables:
        mine = pd.read_parquet(tmp_path / "tables" / f"{name}.parquet").drop(columns="created_timestamp")
        theirs = pd.read_parquet(local_tables / f"{name}.parquet").drop(columns="created_timestamp")
        pd.testing.assert_frame_equal(mine, theirs, obj=name)
    spark_manifest = json.loads((tmp_path / "tables" / MANIFEST).read_text())
    assert spark_manifest["engine"] == "spark"
    assert spark_manifest["fingerprint"] == json.loads((local_tables / MANIFEST).read_text())["fingerprint"]
    assert calls and calls[-1] == (local.subjects, local.subjects)


def test_a_failing_subject_is_named_and_nothing_is_published(spark, demo_build, tmp_path: Path) -> None:
    manifest, config, _, local_tables = demo_build
    # A copy of the study's lake, with one curated part of one subject damaged on disk. Only the
    # enrollment table and the minute data: the signal sources would add time, not coverage.
    study = config.model_copy(update={"data_root": tmp_path / "study"})
    for source in (SUBJECTS_SOURCE, "minute_wearable"):
        shutil.copytree(config.lake_root / f"source={source}", study.lake_root / f"source={source}")
    subject = manifest.subject_ids[2]
    part = next((study.lake_root / "source=minute_wearable" / f"subject_id={subject}").rglob("*.parquet"))
    part.write_bytes(b"not a parquet file")
    tables = tmp_path / "tables"
    shutil.copytree(local_tables, tables)  # the previous build, which must stay as it is
    before = published(tables)

    with pytest.raises(SubjectsFailedError) as failed:
        build_features(study, tables, engine="spark", spark=spark, force=True)

    assert set(failed.value.failures) == {subject}
    assert f"{subject}: " in str(failed.value) and "1 of 5 subjects" in str(failed.value)
    assert "no table was published" in str(failed.value)
    assert published(tables) == before


def test_without_pyspark_the_command_says_how_to_install_it(tiny_study: Path, monkeypatch) -> None:
    from pipelines.cli import app

    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now fails as if it were not installed

    result = CliRunner().invoke(app, ["build-features", str(tiny_study), "--engine", "spark"])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "the Spark engine needs pyspark: pip install 'digital-biomarkers[spark]'" in result.output


def test_the_spark_section_is_optional_and_only_takes_spark_settings() -> None:
    assert SparkConfig().master == "local[2]"
    settings = SparkConfig(master="spark://head:7077", conf={"spark.driver.memory": "4g", "spark.ui.enabled": False})
    assert settings.conf["spark.ui.enabled"] is False

    with pytest.raises(ValidationError, match="start with 'spark.'.*driver.memory"):
        SparkConfig(conf={"driver.memory": "4g"})
