"""Build the feature tables of a study from its curated lake, one subject per task.

Each subject's curated frames are read from its own lake partition and turned into feature rows
by ``features.compute``, in a process pool (engine ``local``) or as Spark tasks (engine
``spark``, ``pipelines.build.spark``); the rows of all subjects are gathered into one Parquet file per
table under the feature repo's table folder, each checked by a plausibility suite before it is
published (written to a temporary file, then renamed). A table that fails its suite is not
published: the previous version stays, and the report says why. A subject whose computation
fails stops the whole build before anything is published, with every failed subject named.

Consistent: the build reads one snapshot of the lake (a version of each source's Delta table,
taken when it starts), whatever ingest runs commit meanwhile, and records those versions in its
manifest (``lake_versions``); ``build_features(..., lake_versions=...)`` reads that snapshot again
later (time travel), so a recorded build can be rebuilt after the lake moved on.

Idempotent: the build is skipped when the curated parts of the snapshot (whose names carry
their content hash), the feature code and the study's biomarker settings are the same as at the
last published build. Each table has its own fingerprint (the data's and the settings of the
families that feed it, ``features.settings.TABLES_BY_FAMILY``): when only a family's settings
changed, only its tables are computed again and the others stay as published.

The manifest records the resolved biomarker pipeline (``pipeline``: every family's settings with
their defaults, and the versions of the packages that compute them), which training runs copy
into their lineage.

Lineage: the build's manifest (``_build.json`` beside the tables) lists every raw file whose
curated parts fed it, with its SHA-256, validation report id and outcome, from the catalog, so
that a model trained on these tables can name the raw files behind it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from features.settings import BiomarkerSettings, family_settings, resolved_pipeline
from pipelines.build.subjects import SubjectResult
from pipelines.config import ENDPOINTS_SOURCE, SUBJECTS_SOURCE, SourceConfig, StudyConfig
from pipelines.ingest.lake import lake_versions as current_lake_versions
from pipelines.ingest.lake import read_subject, read_table, subject_parts, table_parts
from validation.schemas import SCHEMAS, SourceKind

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from features.compute import Recording

logger = logging.getLogger(__name__)

MANIFEST = "_build.json"
# What lineage records of a build, and compares to tell whether the tables were rebuilt since.
MANIFEST_BUILD_KEYS = ("built_at", "fingerprint", "tables", "lake_versions", "pipeline")

Engine = Literal["local", "spark"]
ENGINES: tuple[Engine, ...] = ("local", "spark")


@dataclass
class BuildSummary:
    tables: dict[str, int] = field(default_factory=dict)  # published table -> rows
    rejected: dict[str, str] = field(default_factory=dict)  # table -> why it was not published
    skipped: bool = False
    subjects: int = 0
    out_dir: Path | None = None
    computed: list[str] = field(default_factory=list)  # tables computed by this build (the others were kept)


class SubjectsFailedError(RuntimeError):
    """Computing some subjects' features failed; nothing was published.

    ``failures`` maps each failed subject to its traceback; the message names every subject with
    the exception it raised.
    """

    def __init__(self, study_id: str, failures: dict[str, str], total: int):
        self.failures = failures
        lines = [f"  {subject_id}: {trace.strip().splitlines()[-1]}" for subject_id, trace in failures.items()]
        super().__init__(f"study {study_id}: computing features failed for {len(failures)} of {total} subjects, so "
                         "no table was published (any previous tables stay):\n" + "\n".join(lines))


def input_sources(config: StudyConfig) -> dict[str, list[str]]:
    """Input key (``kind`` or ``accelerometry:<placement>``) -> the study's curated sources of it."""
    keys: dict[str, list[str]] = {}
    for name, source in config.sources.items():
        key = source.kind.value
        if source.kind is SourceKind.ACCELEROMETRY:
            key = f"{key}:{source.placement}"  # wrist for activity and sleep, lower back for gait
        keys.setdefault(key, []).append(name)
    return keys


def build_features(
    config: StudyConfig,
    out_dir: Path,
    *,
    engine: Engine = "local",
    workers: int = 2,
    spark: SparkSession | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    lake_versions: dict[str, int] | None = None,
) -> BuildSummary:
    """Build and publish every feature table of the study into ``out_dir``.

    Parameters
    ----------
    config : the study.
    out_dir : the feature repo's table folder (one ``<table>.parquet`` per feature view).
    engine : where the subjects are computed: ``local`` (a process pool) or ``spark`` (Spark
        tasks; needs the ``spark`` extra). Both publish the same tables.
    workers : engine ``local``: processes computing subjects in parallel (1: in this process).
    spark : engine ``spark``: the session to run on; default: one from the study's ``spark:``
        settings, stopped when the subjects are computed.
    force : rebuild even when nothing changed.
    progress : called with ``(done, total)`` subjects.
    lake_versions : source -> table version to read (a manifest's ``lake_versions``); default
        the lake as it is now.

    Raises
    ------
    SubjectsFailedError
        naming every subject whose computation failed; nothing is published then.
    adapters.spark.SparkNotInstalledError
        engine ``spark`` without pyspark installed, before anything is read.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "spark":  # say so before any work, not after a build that is then skipped
        from adapters.spark import require_pyspark

        require_pyspark()
    keys = input_sources(config)
    if lake_versions is None:
        lake_versions = current_lake_versions(config.lake_root, _lake_sources(keys))
    subjects = read_table(config.lake_root, SUBJECTS_SOURCE, lake_versions.get(SUBJECTS_SOURCE))
    if subjects is None or subjects.empty:
        raise ValueError(f"study {config.study_id} has no curated enrollment table: run `biomarkers ingest` first")
    subject_ids = sorted(subjects["subject_id"].astype(str))
    data_fingerprint = _fingerprint(config, keys, subject_ids, lake_versions)
    table_fingerprints = _table_fingerprints(data_fingerprint, config.biomarkers)
    fingerprint = _combined(table_fingerprints)
    manifest = out_dir / MANIFEST
    previous = json.loads(manifest.read_text()) if manifest.is_file() else {}
    summary = BuildSummary(subjects=len(subject_ids), out_dir=out_dir)
    if not force and previous.get("fingerprint") == fingerprint:
        summary.skipped = True
        summary.tables = previous["tables"]
        return summary
    kept = set() if force else _unchanged_tables(previous, table_fingerprints, out_dir)
    stale = sorted(set(table_fingerprints) - kept)

    subject_rows = {sid: subjects[subjects["subject_id"] == sid].reset_index(drop=True) for sid in subject_ids}
    compute = functools.partial(_subject_result, config, keys, lake_versions, stale)
    if engine == "spark":
        from pipelines.build.spark import map_subjects

        outcomes = map_subjects(compute, subject_rows, session=spark, settings=config.spark, progress=progress)
    else:
        outcomes = _map_local(compute, subject_rows, workers, progress)
    results: dict[str, list[pd.DataFrame]] = {}
    failures: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            failures[outcome.subject_id] = outcome.error
        for name, frame in outcome.tables.items():
            results.setdefault(name, []).append(frame)
    if failures:
        for subject_id, trace in failures.items():
            logger.info("subject %s failed:\n%s", subject_id, trace)
        raise SubjectsFailedError(config.study_id, failures, len(subject_ids))

    created = pd.Timestamp(datetime.now(UTC))
    out_dir.mkdir(parents=True, exist_ok=True)
    from features.tables import TABLES
    from pipelines.build.checks import check_feature_table

    summary.tables = {name: rows for name, rows in previous.get("tables", {}).items() if name in kept}
    summary.computed = stale
    for table in TABLES:
        frames = results.get(table.name)
        if table.name in kept:
            continue
        if not frames:
            # Nothing feeds it (the study has no source of its kind, or one left): published empty,
            # so that no old rows go on being served as current and Feast's own commands, which
            # read every view's file, find one.
            _publish_table(_empty_table(table), out_dir / f"{table.name}.parquet")
            summary.tables[table.name] = 0
            continue
        frame = pd.concat(frames, ignore_index=True).sort_values(["subject_id", "event_timestamp"], ignore_index=True)
        frame["created_timestamp"] = created
        problems = check_feature_table(table, frame)
        if problems:
            summary.rejected[table.name] = problems
            logger.warning("feature table %s not published: %s", table.name, problems)
            continue
        _publish(frame, out_dir / f"{table.name}.parquet")
        summary.tables[table.name] = len(frame)
    if not summary.rejected:
        _write_json(manifest, {"fingerprint": fingerprint, "table_fingerprints": table_fingerprints,
                               "pipeline": resolved_pipeline(config.biomarkers), "tables": summary.tables,
                               "built_at": created.isoformat(), "study_id": config.study_id, "engine": engine,
                               "lake_versions": lake_versions, "inputs": build_inputs(config, keys, lake_versions)})
    return summary


def build_inputs(config: StudyConfig, keys: dict[str, list[str]], lake_versions: dict[str, int]) -> list[dict]:
    """The raw files behind a build: every file version whose curated parts the build's lake snapshot
    lists, from its sources and the enrollment and endpoint tables, as the catalog records them
    (path, SHA-256, report id and outcome, parts). A build from an older snapshot names the
    versions it read, superseded since or not."""
    from pipelines.ingest.catalog import Catalog, FileStatus

    sources = _lake_sources(keys)
    in_snapshot = {part for source in sources if source in lake_versions
                   for part in table_parts(config.lake_root, source, lake_versions[source])}
    outcomes = {}
    with Catalog(config.catalog) as catalog:
        records = [r for r in catalog.files() if r.status in (FileStatus.CURATED, FileStatus.SUPERSEDED)
                   and r.curated_paths and in_snapshot.issuperset(r.curated_paths)]
    records.sort(key=lambda r: (r.path, r.version))
    for record in records:
        report = config.reports_root / f"{record.report_id}.json" if record.report_id else None
        outcomes[record.id] = (json.loads(report.read_text()).get("outcome") if report and report.is_file()
                               else None)
    return [{"raw_path": r.path, "sha256": r.sha256, "source": r.source, "subject_id": r.subject_id,
             "report_id": r.report_id, "validation_outcome": outcomes[r.id], "curated_parts": list(r.curated_paths)}
            for r in records]


def _lake_sources(keys: dict[str, list[str]]) -> list[str]:
    """Every lake table a build reads: its input sources and the enrollment and endpoint tables."""
    return sorted({source for names in keys.values() for source in names} | {SUBJECTS_SOURCE, ENDPOINTS_SOURCE})


def _subject_result(config: StudyConfig, keys: dict[str, list[str]], lake_versions: dict[str, int],
                    tables: list[str], subject_id: str, subject_row: pd.DataFrame) -> SubjectResult:
    """One subject's rows of ``tables``, or its failure (runs in a pool worker or a Spark task).

    A failure is returned, not raised, so that the build names every failed subject, not the first.
    """
    try:
        return SubjectResult(subject_id, _subject_tables(config, keys, lake_versions, tables, subject_id,
                                                         subject_row))
    except Exception:
        return SubjectResult(subject_id, error=traceback.format_exc())


def _subject_tables(config: StudyConfig, keys: dict[str, list[str]], lake_versions: dict[str, int],
                    tables: list[str], subject_id: str, subject_row: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Read one subject's curated data and compute its rows of ``tables``."""
    from features.compute import SubjectInputs, compute_subject_tables

    recordings: dict[str, list[Recording]] = {}
    for key, sources in keys.items():
        for source in sources:
            if source not in lake_versions:  # no table in the snapshot: nothing curated yet
                continue
            frame = read_subject(config.lake_root, source, subject_id, lake_versions[source])
            if frame is None or frame.empty:
                continue
            spec = config.sources[source]
            if not SCHEMAS[spec.kind].per_subject_column:
                frame = frame.drop(columns="subject_id")
            recordings.setdefault(key, []).append(source_recording(frame, spec))
    return compute_subject_tables(SubjectInputs(subject_id, recordings, subject_row, config.biomarkers), only=tables)


def source_recording(frame: pd.DataFrame, spec: SourceConfig) -> Recording:
    """A curated frame as the biomarker code takes it, with what its source says about it."""
    from features.compute import Recording

    return Recording(frame, spec.sampling_rate_hz, spec.intervals_edited, spec.timezone, spec.device_range_g,
                     spec.hrv_recording)


def _map_local(compute: Callable[[str, pd.DataFrame], SubjectResult], subject_rows: dict[str, pd.DataFrame],
               workers: int, progress: Callable[[int, int], None] | None) -> Iterator[SubjectResult]:
    """``compute(subject_id, subject_row)`` for every subject, in a process pool of ``workers``, in order."""
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(subject_rows) > 1:
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            results = pool.map(compute, subject_rows.keys(), subject_rows.values(), chunksize=1)
        else:
            results = map(compute, subject_rows.keys(), subject_rows.values())
        for done, result in enumerate(results, start=1):
            yield result
            if progress:
                progress(done, len(subject_rows))


def _fingerprint(config: StudyConfig, keys: dict[str, list[str]], subject_ids: list[str],
                 lake_versions: dict[str, int]) -> str:
    """Hash of every input part name in the snapshot (content-addressed) and of the feature code."""
    digest = hashlib.sha256()
    sources = [source for names in keys.values() for source in names]
    for subject_id in subject_ids:
        for part in subject_parts(config.lake_root, sources, subject_id, lake_versions):
            digest.update(part.encode())
    for part in table_parts(config.lake_root, SUBJECTS_SOURCE, lake_versions.get(SUBJECTS_SOURCE)):
        digest.update(part.encode())
    for path in feature_code_files():
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _table_fingerprints(data_fingerprint: str, settings: BiomarkerSettings) -> dict[str, str]:
    """Per feature table: the hash of the data's fingerprint and the settings of the families feeding it."""
    from features.tables import TABLES

    return {table.name: hashlib.sha256(json.dumps([data_fingerprint, family_settings(settings, table.name)],
                                                  sort_keys=True).encode()).hexdigest()
            for table in TABLES}


def _combined(table_fingerprints: dict[str, str]) -> str:
    """The build's fingerprint: one hash of every table's."""
    return hashlib.sha256(json.dumps(table_fingerprints, sort_keys=True).encode()).hexdigest()


def _unchanged_tables(previous: dict, table_fingerprints: dict[str, str], out_dir: Path) -> set[str]:
    """Tables the last published build made from the same data and settings, still in place:
    kept as they are. A table the last build published no rows for has no file and is computed again."""
    recorded = previous.get("table_fingerprints") or {}
    return {name for name, fingerprint in table_fingerprints.items()
            if recorded.get(name) == fingerprint and (name not in previous.get("tables", {})
                                                      or (out_dir / f"{name}.parquet").is_file())}


def feature_code_files() -> list[Path]:
    """The biomarker code (every module of the ``features`` package): a change to it rebuilds every subject."""
    import features

    return sorted(Path(features.__file__).resolve().parent.rglob("*.py"))


def _publish(frame: pd.DataFrame, target: Path) -> None:
    import pyarrow as pa

    _publish_table(pa.Table.from_pandas(frame, preserve_index=False), target)


def _publish_table(table, target: Path) -> None:
    import pyarrow.parquet as pq

    temporary = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, temporary, coerce_timestamps="us", allow_truncated_timestamps=True)
    os.replace(temporary, target)


def _empty_table(table):
    """A feature table without rows, in the column types a built one has."""
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    fields = [pa.field("subject_id", pa.string()), pa.field("event_timestamp", stamp),
              *(pa.field(name, pa.float64()) for name in table.columns),
              *(pa.field(name, pa.string()) for name in table.text_columns),
              pa.field(f"{table.name}_missing_reason", pa.string()), pa.field("created_timestamp", stamp)]
    return pa.schema(fields).empty_table()


def _write_json(target: Path, document: dict) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str))
    os.replace(temporary, target)
