"""Spark at the edge: the session the platform's Spark work runs in, and what it needs installed.

pyspark is an optional extra; importing this module does not need it. The build engine
(``pipelines.build.spark``) and Feast's Spark offline store (``adapters.feast_repo``) both start
their sessions through here, so the Python workers and the session time zone are the same.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'digital-biomarkers[spark]'"

# The engine's settings unless the study's `spark.conf` says otherwise.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",  # the platform's timestamps are UTC; Spark's default is the host's zone
    "spark.ui.showConsoleProgress": "false",  # the command line draws its own progress bar
}



class SessionSettings(Protocol):
    """Where and how a session runs: a study's ``spark:`` section (``pipelines.config.SparkConfig``)."""

    master: str
    app_name: str
    conf: dict[str, str | int | float | bool]


class SparkNotInstalledError(ImportError):
    """``--engine spark`` was asked for where pyspark is not installed."""


def require_pyspark() -> None:
    """Raise ``SparkNotInstalledError`` (saying how to install it) unless pyspark can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise SparkNotInstalledError(f"the Spark engine needs pyspark: {INSTALL_HINT}") from error


def use_this_python() -> None:
    """Point Spark's Python workers at this interpreter (``PYSPARK_PYTHON``, ``PYSPARK_DRIVER_PYTHON``)
    unless those are already set.

    The workers import the project, so on this machine they must run in its virtual environment,
    not whatever ``python3`` is first on the path. pyspark reads the variable when it starts its
    context (``spark.pyspark.python`` only reaches a job launched by spark-submit), so this must
    run before any session starts, ours or Feast's.
    """
    for variable in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        os.environ.setdefault(variable, sys.executable)


def spark_session(settings: SessionSettings) -> SparkSession:
    """Start (or join) the Spark session the study's ``spark:`` section describes, its Python
    workers running this interpreter (:func:`use_this_python`)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    use_this_python()
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in {**DEFAULT_CONF, **settings.conf}.items():
        # Spark parses its booleans from "true"/"false"; Python's str() would write "True".
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
    return builder.getOrCreate()
