"""The ``biomarkers`` command: help with examples, a fast start, and clear configuration errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("pandas", "numpy", "great_expectations", "feast", "mlflow", "torch", "pyarrow", "sklearn", "skdh")
SUB_COMMANDS = ("generate-demo", "ingest", "demo", "build-features", "materialize", "train", "promote", "lineage",
                "reproduce", "score", "serve", "stream", "api-key", "report", "status")


def biomarkers(*arguments: str) -> subprocess.CompletedProcess:
    """Run the command as a user does; wide and plain so Rich neither wraps nor colours the output."""
    environment = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *arguments], cwd=REPOSITORY_ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


def test_help_shows_an_example():
    result = biomarkers("--help")

    assert result.returncode == 0, result.stderr
    assert "Example: biomarkers demo" in result.stdout
    for command in SUB_COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", SUB_COMMANDS)
def test_each_command_help_shows_an_example(command):
    result = biomarkers(command, "--help")

    assert result.returncode == 0, result.stderr
    assert f"Example: biomarkers {command}" in result.stdout


def test_the_console_script_is_installed_next_to_python():
    script = Path(sys.executable).parent / "biomarkers"

    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "400"})

    assert result.returncode == 0, result.stderr
    assert "Example: biomarkers demo" in result.stdout


@pytest.mark.parametrize("arguments", [["--help"], *([command, "--help"] for command in SUB_COMMANDS)])
def test_help_imports_no_heavy_library(arguments):
    program = f"""
import json, sys
sys.argv = ["biomarkers", *{arguments!r}]
from pipelines.cli import app
try:
    app()
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "modules": sorted({{name.split(".")[0] for name in sys.modules}})}}))
"""
    result = subprocess.run([sys.executable, "-c", program], cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "400"})

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0
    assert "pipelines" in outcome["modules"]  # the probe did import the command
    assert [name for name in HEAVY_MODULES if name in outcome["modules"]] == []


def test_ingest_refuses_a_study_with_an_unknown_key(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "subjects.csv").write_text("subject_id\nS0001\n")
    (tmp_path / "raw" / "endpoints.csv").write_text("subject_id,index_time,endpoint,outcome\n")
    study = tmp_path / "study.yaml"
    study.write_text(
        "study_id: tiny\n"
        "data_root: .\n"
        "subjects: {path: raw/subjects.csv}\n"
        "endpoints: {path: raw/endpoints.csv}\n"
        "sources: {}\n"
        "sampling_rate: 50\n"  # not a study key: it belongs to a source
    )

    result = biomarkers("ingest", str(study))

    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "sampling_rate: unknown key" in output
    assert str(study) in output
    assert "Traceback" not in output
    assert not (tmp_path / ".platform").exists()  # nothing was ingested


def tiny_study(folder: Path, rest: str) -> Path:
    """A study.yaml with one enrolled subject and no endpoints, then ``rest`` (YAML lines)."""
    (folder / "subjects.csv").write_text("subject_id\nS0001\n")
    (folder / "endpoints.csv").write_text("subject_id,index_time,endpoint,outcome\n")
    study = folder / "study.yaml"
    study.write_text("study_id: tiny\ndata_root: .\nsubjects: {path: subjects.csv}\n"
                     "endpoints: {path: endpoints.csv}\n" + rest)
    return study


def test_ingest_names_an_unknown_key_inside_a_source(tmp_path):
    study = tiny_study(
        tmp_path,
        "sources:\n"
        "  minute:\n"
        "    kind: minute_wearable\n"
        "    pattern: minute/*.csv\n"
        "    format: csv\n"
        "    colums: {timestamp: time}\n"  # misspelt "columns"
    )

    result = biomarkers("ingest", str(study))

    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "sources.minute.colums: unknown key" in output
    assert str(study) in output


def test_the_serving_settings_come_from_the_study(tmp_path):
    from pipelines.cli import serving_settings
    from pipelines.config import load_study

    study = tiny_study(tmp_path, "sources: {}\nserving: {online_store_timeout_s: 0.25, "
                                 "max_event_clock_skew_seconds: 60, request_threads: 2}\n")

    settings = serving_settings(load_study(study), tmp_path / "feast", None)

    assert settings.online_store_timeout_s == 0.25
    assert settings.max_event_clock_skew_seconds == 60
    assert settings.request_threads == 2
    assert settings.study_id == "tiny"
