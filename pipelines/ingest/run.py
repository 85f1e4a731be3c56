"""Ingestion: discover a study's raw files, read, validate, curate or quarantine each, record all.

Per file: hash it; skip it if the catalog already holds this exact content; claim it (so a
concurrent run reports it ``busy``); read it into its canonical frame; run its source's
expectation suite; then either write it to the curated lake or copy it to quarantine with its
report. Every outcome, good or bad, is recorded in the catalog with the report id and the
platform's code version. A file that breaks the reader or a check never stops the other files;
a file that breaks the platform itself ends ``failed``, with a report and a quarantine copy,
and is tried again by ``--retry-failed`` or by a run of another code version.

A file that waits for the study's metadata ends ``pending``, not quarantined: files often arrive
before the enrollment file names their subject. The rule (`validation.causes.waiting_reason`):
a readable file whose only rejecting checks are ``known_subject`` waits; a file bad in itself
(unreadable, or any other rejecting check) is quarantined even when its subject is also
unknown; the enrollment and endpoints files never wait. A pending file gets no quarantine copy
and no row in the lake; every run that starts after it was checked checks it again (its SHA-256
has not changed, the enrollment file may have) and curates it, or quarantines it, once its
subject is enrolled. The catalog's claim keeps two runs from checking one pending file.

Crash safety: a curated version's parts are written invisibly, then one lake commit makes
them visible and removes the path's previous version; the catalog outcome follows. A run
killed at any moment leaves its claims to be taken over at once by the next run (the catalog
sees its owner dead), which redoes them; the redo's commit replaces whatever the dead run had
committed of the same path. Parts a dead run wrote but never committed are swept.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.config import (
    ENDPOINTS_SOURCE,
    SUBJECTS_SOURCE,
    CheckName,
    ConfigError,
    Severity,
    SourceConfig,
    StudyConfig,
    TableFile,
)
from pipelines.ingest.catalog import Catalog, FileStatus
from pipelines.ingest.lake import (
    StagedVersion,
    adopt_parts,
    commit_version,
    discard,
    is_legacy_folder,
    sweep_orphans,
    table_lock,
    write_parts,
)
from pipelines.ingest.quality_page import write_quality_page
from pipelines.ingest.readers import RawRead, ReadError, read_raw
from pipelines.ingest.readers.tables import read_table
from validation.batches import file_batch, rows_batch, seconds_batch
from validation.causes import waiting_reason
from validation.report import Outcome, ValidationReport
from validation.schemas import SCHEMAS, SourceKind
from validation.suites import FILE_BATCH, ROWS_BATCH, SECONDS_BATCH, SuiteParameters, suite_checks

logger = logging.getLogger(__name__)

_HASH_CHUNK_BYTES = 4 * 1024 * 1024
# Environment variable naming a point of `Ingestor.process` where the process stops and waits to
# be killed (crash tests): ``<point>`` or ``<point>@<relative path of one file>``; the file named
# by PAUSE_FILE_ENV is created when it gets there.
PAUSE_AT_ENV = "BIOMARKERS_INGEST_PAUSE_AT"
PAUSE_FILE_ENV = "BIOMARKERS_INGEST_PAUSE_FILE"
PAUSE_POINTS = ("claimed", "part-written", "committed")
# Code whose change may fix a failure: the ingestion pipeline, readers and checks.
# Every status a file may end a run with (`FileOutcome.status`), in the order summaries show them.
OUTCOME_STATUSES = ("curated", "quarantined", "failed", "pending", "skipped", "busy")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file in this run."""

    source: str
    path: str
    # curated, quarantined, failed, pending (waits for its subject's enrollment; checked again by
    # later runs), skipped (already processed), busy (held by another live run)
    status: str
    rows: int = 0
    report_id: str | None = None
    reason: str | None = None


@dataclass
class IngestSummary:
    run_id: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    data_docs: Path | None = None
    quality_page: Path | None = None

    def processed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status in ("curated", "quarantined", "failed")]

    def pending(self) -> list[FileOutcome]:
        """Files waiting for their subject's enrollment; later runs check them again. Not a
        failure of this run (they are not in `unprocessed`)."""
        return [o for o in self.outcomes if o.status == "pending"]

    def unprocessed(self) -> list[FileOutcome]:
        """Files this run left without a final outcome: ``busy`` (another live run holds them)
        or ``failed`` (the platform broke on them; retried later)."""
        return [o for o in self.outcomes if o.status in ("busy", "failed")]

    def counts(self) -> dict[str, int]:
        """Files per status of this run: curated, quarantined, failed, pending, skipped, busy."""
        return {status: sum(1 for o in self.outcomes if o.status == status) for status in OUTCOME_STATUSES}

    def by_source(self) -> dict[str, dict[str, int]]:
        """source -> counts of curated, quarantined, failed, pending, skipped, busy files and curated rows."""
        table: dict[str, dict[str, int]] = {}
        for outcome in self.outcomes:
            row = table.setdefault(outcome.source, {**dict.fromkeys(OUTCOME_STATUSES, 0), "rows": 0})
            row[outcome.status] += 1
            if outcome.status == "curated":
                row["rows"] += outcome.rows
        return table


@dataclass(frozen=True)
class _Task:
    source: str
    path: Path


class Ingestor:
    """Processes files of one study; one per process (it owns a catalog connection and a GE context)."""

    def __init__(self, config: StudyConfig, run_id: str, known_subjects: frozenset[str], retry_failed: bool = False):
        import great_expectations as gx

        from validation.runner import SuiteRunner

        self.config = config
        self.run_id = run_id
        self.known_subjects = known_subjects
        self.retry_failed = retry_failed
        self.code_version = code_version()
        self.catalog = Catalog(config.catalog)
        self.runner = SuiteRunner(gx.get_context(mode="ephemeral"))
        self.sources = study_sources(config)
        self.checks = {name: suite_checks(kind, self.parameters(spec, kind, known_subjects))
                       for name, (spec, kind) in self.sources.items()}
        self.severities = {check.value: config.severity(check).value for check in CheckName}
        # Seconds spent per phase in this process, for logs and benchmarks/ingest.py.
        self.timings = {"hash": 0.0, "read": 0.0, "validate": 0.0, "curate": 0.0}

    @staticmethod
    def parameters(spec: SourceConfig | TableFile, kind: SourceKind, known_subjects: frozenset[str]) -> SuiteParameters:
        lab_ranges, lab_units = {}, {}
        if kind is SourceKind.LABS:
            from validation.analytes import ANALYTES

            lab_ranges = {a.name: a.plausible_range for a in ANALYTES.values()}
            lab_units = {a.name: a.unit for a in ANALYTES.values()}
        return SuiteParameters(
            known_subjects=None if kind is SourceKind.SUBJECTS else known_subjects,
            sampling_rate_hz=getattr(spec, "sampling_rate_hz", None),
            sampling_rate_tolerance=getattr(spec, "sampling_rate_tolerance", 0.05),
            device_range_g=getattr(spec, "device_range_g", 8.0),
            max_missing_fraction=getattr(spec, "max_missing_fraction", 0.2),
            lab_ranges=lab_ranges,
            lab_units=lab_units,
        )

    def register_suites(self) -> None:
        for name, checks in self.checks.items():
            self.runner.register(self.suite_name(name), checks)

    def publish_results(self, results: list) -> Path | None:
        """Add this process's validation results to the study's Data Docs, one publisher at a time."""
        import great_expectations as gx

        from validation.runner import publish

        lock_path = self.config.platform_root / "gx.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once must not interleave writes to gx/
            context = gx.get_context(mode="file", project_root_dir=self.config.platform_root)
            suites = {self.suite_name(name): checks for name, checks in self.checks.items()}
            return publish(context, suites, results)

    def suite_name(self, source: str) -> str:
        return f"{self.config.study_id}.{source}"

    def _still_waiting(self, relative: str, sha256: str) -> FileOutcome | None:
        """A pending file whose subject is still not enrolled, checked by this code under the same
        rule: it waits on, unread (reading and validating a week of device data again on every
        run, or every `watch` cycle, would change nothing)."""
        current = self.catalog.current(relative, sha256)
        if (current is None or current.status is not FileStatus.PENDING or current.subject_id is None
                or current.subject_id in self.known_subjects or current.code_version != self.code_version
                or self.config.severity(CheckName.KNOWN_SUBJECT) is not Severity.REJECT):
            return None
        return FileOutcome(current.source, relative, "pending", report_id=current.report_id, reason=current.message)

    def process(self, task: _Task) -> FileOutcome:
        """Hash, claim, read, validate and curate, quarantine or leave pending one file."""
        relative = task.path.relative_to(self.config.data_root).as_posix()
        started = time.perf_counter()
        sha256, size = file_digest(task.path)
        self.timings["hash"] += time.perf_counter() - started
        retry = {"retry_failed": self.retry_failed, "code_version": self.code_version}
        if self.catalog.is_processed(relative, sha256, **retry):
            return FileOutcome(task.source, relative, "skipped")
        waiting = self._still_waiting(relative, sha256)
        if waiting is not None:
            return waiting
        record = self.catalog.claim(path=relative, sha256=sha256, size_bytes=size, source=task.source,
                                    run_id=self.run_id, **retry)
        if record is None:  # finished by another run just now, held by a live one, or checked by one
            current = self.catalog.current(relative, sha256)  # since this run started and still pending
            if current is not None and current.status is FileStatus.PENDING:
                return FileOutcome(task.source, relative, "pending", report_id=current.report_id,
                                   reason=current.message)
            done = self.catalog.is_processed(relative, sha256, **retry)
            return FileOutcome(task.source, relative, "skipped" if done else "busy",
                               reason=None if done else "held by another live ingest run")
        _pause_point("claimed", relative)
        try:
            report, staged, subject, waiting = self._curate(task, relative, sha256)
            if waiting is not None:
                status, reason = FileStatus.PENDING, waiting
            else:
                status = FileStatus.QUARANTINED if report.rejected else FileStatus.CURATED
                reason = report.reason() if report.rejected else None
        except KeyboardInterrupt:
            self.catalog.release(record.id, run_id=self.run_id)
            raise
        except Exception as error:  # a bug or an environment fault: record it, go on with the rest
            logger.exception("ingest of %s failed", relative)
            report = self._failure_report(task, relative, sha256, error)
            staged, subject, status, reason = None, None, FileStatus.FAILED, report.read_error
        # The lake commit and the catalog outcome under the table's lock: versions of one path
        # then become visible in the order the catalog records them, and an older version
        # finishing after a newer one never hides it.
        with table_lock(self.config.lake_root, task.source):
            lake_version = None
            if self.catalog.newer_version_finished(relative, record.version):
                if staged is not None:
                    discard(self.config.lake_root, staged)
                    staged = None
            else:
                lake_version = commit_version(self.config.lake_root, staged, source=task.source, raw_path=relative,
                                              sha256=sha256, report_id=report.report_id)
                _pause_point("committed", relative)
            self.catalog.finish(record.id, status=status, subject_id=subject, report_id=report.report_id,
                                rows=report.rows, message=reason or report.outcome.value,
                                curated_paths=staged.lake_paths() if staged else (), run_id=self.run_id,
                                code_version=self.code_version, lake_version=lake_version)
        return FileOutcome(task.source, relative, status.value, rows=report.rows or 0,
                           report_id=report.report_id, reason=reason)

    def _failure_report(self, task: _Task, relative: str, sha256: str, error: Exception) -> ValidationReport:
        """A failed file gets a report and a quarantine copy like a rejected one; the reason says
        the platform failed, not the data, and that the file will be tried again."""
        spec, kind = self.sources[task.source]
        report = ValidationReport(
            report_id=f"{task.source}-{sha256[:12]}-{uuid.uuid4().hex[:8]}", file=relative, source=task.source,
            kind=kind.value, sha256=sha256, checked_at=_now_iso(), outcome=Outcome.UNREADABLE,
            read_error=(f"{relative}: the platform failed while processing it ({type(error).__name__}: {error}); "
                        f"retried by `biomarkers ingest --retry-failed` or under another code version "
                        f"(this is {self.code_version})"))
        try:
            self._quarantine(task.path, relative, report)
        except OSError:
            logger.exception("the quarantine copy of %s failed", relative)
        return report

    def _curate(self, task: _Task, relative: str, sha256: str) -> tuple[ValidationReport, StagedVersion | None,
                                                                       str | None, str | None]:
        """Read and validate one file; stage its parts, or quarantine it, or leave it waiting.

        Returns the report, the staged version (None unless it passed), the file's subject and
        the reason it waits for the study's metadata (None unless it is pending).
        """
        spec, kind = self.sources[task.source]
        report_id = f"{task.source}-{sha256[:12]}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            raw = _read(task.path, spec, kind)
        except ReadError as error:
            report = ValidationReport(report_id=report_id, file=relative, source=task.source, kind=kind.value,
                                      sha256=sha256, checked_at=_now_iso(), outcome=Outcome.UNREADABLE,
                                      read_error=str(error))
            self._quarantine(task.path, relative, report)
            return report, None, None, None
        read_done = time.perf_counter()
        self.timings["read"] += read_done - started
        report = self.runner.validate(
            self.suite_name(task.source), self.checks[task.source], _batches(kind, raw), self.severities,
            report_id=report_id, file=relative, source=task.source, kind=kind.value, sha256=sha256,
            rows=len(raw.frame),
        )
        validated = time.perf_counter()
        self.timings["validate"] += validated - read_done
        subject = raw.subject_id
        if report.rejected:
            waiting = None
            if kind not in (SourceKind.SUBJECTS, SourceKind.ENDPOINTS):  # the study's metadata itself never waits
                waiting = waiting_reason(report, _unknown_subjects(kind, raw, self.known_subjects))
            if waiting is None:
                self._quarantine(task.path, relative, report)
            # A waiting file gets no quarantine copy and no report file (the report would call it
            # quarantined); its reason is in the catalog, its checks in the Data Docs.
            return report, None, subject, waiting
        staged = write_parts(raw.frame, lake_root=self.config.lake_root, source=task.source, kind=kind,
                             subject_id=subject, raw_path=relative, sha256=sha256, report_id=report_id,
                             run_id=self.run_id, after_part=functools.partial(_pause_point, "part-written", relative))
        self._write_report(self.config.reports_root / f"{report_id}.json", report)
        self.timings["curate"] += time.perf_counter() - validated
        return report, staged, subject, None

    def _quarantine(self, path: Path, relative: str, report: ValidationReport) -> None:
        """Copy the raw file (the study's own copy stays where it is) and its report to quarantine."""
        folder = self.config.quarantine_root / report.report_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        temporary = folder / f".{path.name}.tmp-{self.run_id}"  # the run's own: never another's
        shutil.copyfile(path, temporary)
        os.replace(temporary, target)
        self._write_report(folder / "report.json", report)
        self._write_report(self.config.reports_root / f"{report.report_id}.json", report)
        (folder / "README.txt").write_text(report.paragraph() + "\n", encoding="utf-8")

    def _write_report(self, target: Path, report: ValidationReport) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{self.run_id}")
        temporary.write_text(report.to_json(), encoding="utf-8")
        os.replace(temporary, target)


def ingest_study(
    config: StudyConfig,
    *,
    workers: int = 1,
    progress: Callable[[int, FileOutcome | None], None] | None = None,
    retry_failed: bool = False,
) -> IngestSummary:
    """Ingest every new or changed file of the study.

    Parameters
    ----------
    config : the study.
    workers : processes to fan the files out over (1 runs in this process).
    progress : called once with ``(total, None)`` when the files are known, then with
        ``(total, outcome)`` after each file.
    retry_failed : process ``failed`` files again even under the code version that failed.

    Returns
    -------
    IngestSummary
        One outcome per file; `IngestSummary.unprocessed` lists those left ``busy`` or ``failed``,
        `IngestSummary.pending` those waiting for their subject's enrollment (not a failure).
    """
    config.check_platform_folders()  # a folder linked elsewhere after the load gets no write either
    known_subjects = read_known_subjects(config)
    with Catalog(config.catalog) as catalog:
        run_id = catalog.start_run(config.study_id)
        records = catalog.files()
        _adopt_legacy_folders(config, records)
        recorded = {part for record in records for part in record.curated_paths}
        swept = sweep_orphans(config.lake_root, catalog.run_is_live, recorded)
    if swept:
        logger.info("removed %d parts that dead runs wrote but never committed", len(swept))
    ingestor = Ingestor(config, run_id, known_subjects, retry_failed)
    ingestor.register_suites()
    with _Heartbeat(ingestor.catalog, run_id):
        summary = _run_tasks(config, ingestor, known_subjects, workers, progress)
    ingestor.catalog.close()
    return summary


def _adopt_legacy_folders(config: StudyConfig, records: list) -> None:
    """Turn source folders an earlier release wrote (plain parts, no table) into tables holding
    the parts of the catalog's curated outcomes, so that existing studies keep their data."""
    for source in study_sources(config):
        if not is_legacy_folder(config.lake_root, source):
            continue
        parts = [part for record in records if record.source == source and record.status is FileStatus.CURATED
                 for part in record.curated_paths if (config.lake_root / part).is_file()]
        with table_lock(config.lake_root, source):
            if adopt_parts(config.lake_root, source, parts) is not None:
                logger.info("adopted %d parts of %s into a lake table", len(parts), source)


class _Heartbeat(threading.Thread):
    """Renews the run's claims every quarter lease while the run works, so that a run on
    another host can tell a slow run from a dead one."""

    def __init__(self, catalog: Catalog, run_id: str):
        super().__init__(name=f"heartbeat-{run_id[:8]}", daemon=True)
        self.catalog, self.run_id, self.stopped = catalog, run_id, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.catalog.lease_seconds / 4):
            try:
                self.catalog.heartbeat(self.run_id)
            except Exception:  # a catalog hiccup: the next beat tries again within the lease
                logger.warning("heartbeat of run %s failed", self.run_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.join()


def _run_tasks(config: StudyConfig, ingestor: Ingestor, known_subjects: frozenset[str], workers: int,
               progress: Callable[[int, FileOutcome | None], None] | None) -> IngestSummary:
    run_id = ingestor.run_id
    # The enrollment and endpoint files go first: the rest of the study is checked against them.
    tasks = [_Task(SUBJECTS_SOURCE, config.resolve(config.subjects.path)),
             _Task(ENDPOINTS_SOURCE, config.resolve(config.endpoints.path)),
             *discover(config)]
    summary = IngestSummary(run_id=run_id)
    if progress:
        progress(len(tasks), None)

    def record(outcome: FileOutcome) -> None:
        summary.outcomes.append(outcome)
        if progress:
            progress(len(tasks), outcome)

    for outcome in map(ingestor.process, tasks[:2]):
        record(outcome)
    if workers <= 1:
        for outcome in map(ingestor.process, tasks[2:]):
            record(outcome)
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(config, run_id, known_subjects, ingestor.retry_failed)) as pool:
            for outcome, results in pool.map(_process_in_worker, tasks[2:], chunksize=4):
                ingestor.runner.results.extend(results)
                record(outcome)

    summary.data_docs = ingestor.publish_results(ingestor.runner.results)
    summary.quality_page = write_quality_page(config)
    ingestor.catalog.finish_run(run_id, summary.counts())
    return summary


@functools.cache
def code_version() -> str:
    """The platform's version as recorded with each outcome: the package version and a hash of
    the ingestion code (readers, checks, lake), so that any change to it retries failures."""
    from importlib import metadata

    try:
        package = metadata.version("digital-biomarkers")
    except metadata.PackageNotFoundError:
        package = "0"
    digest = hashlib.sha256()
    for name, path in ingestion_code_files():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return f"{package}+{digest.hexdigest()[:12]}"


def ingestion_code_files() -> list[tuple[str, Path]]:
    """Every file of the ``pipelines`` and ``validation`` packages that ingestion may run or read,
    by its name within the project (``pipelines/ingest/run.py``), wherever the packages are installed."""
    import pipelines
    import validation

    files = []
    for package in (pipelines, validation):
        folder = Path(package.__file__).resolve().parent
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".py", ".json", ".yaml") and path.is_file():
                files.append((path.relative_to(folder.parent).as_posix(), path))
    return files


def _pause_point(name: str, relative: str, *_: object) -> None:
    """Stop here until killed when the crash tests ask for this point (see PAUSE_AT_ENV)."""
    if os.environ.get(PAUSE_AT_ENV) not in (name, f"{name}@{relative}"):
        return
    Path(os.environ[PAUSE_FILE_ENV]).write_text(f"{os.getpid()}\n")
    while True:
        time.sleep(60)


def discover(config: StudyConfig) -> Iterator[_Task]:
    """Every file matching a source's pattern, in a stable order, confined to the data root."""
    seen: set[Path] = set()
    for name, source in config.sources.items():
        for path in sorted(config.data_root.glob(source.pattern)):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                resolved = config.resolve(path)  # refuses a symbolic link that leads outside
            except ConfigError as error:
                logger.warning("skipping %s: %s", path, error)
                continue
            if resolved.is_relative_to(config.platform_root) or resolved in seen:
                continue
            seen.add(resolved)
            yield _Task(name, path)


def read_known_subjects(config: StudyConfig) -> frozenset[str]:
    """Subject ids of the enrollment file as it is now (read again each run: enrollment grows)."""
    try:
        frame = read_table(config.resolve(config.subjects.path), config.subjects, SourceKind.SUBJECTS,
                           config.subjects.format).frame
    except ReadError as error:
        raise ConfigError(f"the enrollment file cannot be read, so no subject can be checked: {error}") from error
    if "subject_id" not in frame:
        raise ConfigError(f"the enrollment file {config.subjects.path} has no subject_id column (check its mapping)")
    return frozenset(frame["subject_id"].dropna().astype(str))


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file, read in chunks (device files run to GB)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _unknown_subjects(kind: SourceKind, raw: RawRead, known_subjects: frozenset[str]) -> list[str]:
    """The subjects of a file that the enrollment file does not name, sorted."""
    if SCHEMAS[kind].per_subject_column:
        subjects = set(raw.frame["subject_id"].dropna().astype(str)) if "subject_id" in raw.frame else set()
    else:
        subjects = {raw.subject_id} if raw.subject_id is not None else set()
    return sorted(subjects - known_subjects)


def _batches(kind: SourceKind, raw: RawRead) -> dict:
    schema = SCHEMAS[kind]
    per_file_subject = raw.subject_id if not schema.per_subject_column else None
    batches = {FILE_BATCH: file_batch(raw.source_fields, per_file_subject)}
    if schema.high_rate:
        batches[SECONDS_BATCH] = seconds_batch(kind, raw.frame, raw.corrupt_blocks)
    else:
        batches[ROWS_BATCH] = rows_batch(raw.frame, raw.unparsable_cells)
    return batches


def study_sources(config: StudyConfig) -> dict[str, tuple[SourceConfig | TableFile, SourceKind]]:
    """Every source of the study by name, with its kind; the enrollment and endpoint files included."""
    return {
        SUBJECTS_SOURCE: (config.subjects, SourceKind.SUBJECTS),
        ENDPOINTS_SOURCE: (config.endpoints, SourceKind.ENDPOINTS),
        **{name: (source, source.kind) for name, source in config.sources.items()},
    }


def _read(path: Path, spec: SourceConfig | TableFile, kind: SourceKind) -> RawRead:
    if isinstance(spec, TableFile):
        return read_table(path, spec, kind, spec.format)
    return read_raw(path, spec)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


_worker: Ingestor | None = None


def _init_worker(config: StudyConfig, run_id: str, known_subjects: frozenset[str], retry_failed: bool) -> None:
    global _worker
    _worker = Ingestor(config, run_id, known_subjects, retry_failed)
    _worker.register_suites()


def _process_in_worker(task: _Task) -> tuple[FileOutcome, list]:
    """Process one file in a pool worker; hand its validation results to the parent to publish."""
    assert _worker is not None, "worker not initialised"
    outcome = _worker.process(task)
    results, _worker.runner.results = _worker.runner.results, []
    return outcome, results


def study_status(config: StudyConfig) -> dict:
    """The catalog state of every file of the study (its latest version), as one JSON-ready document.

    ``files`` holds, per path: SHA-256, version, status, reason, report id, rows, source,
    subject, the lake table version whose commit made the outcome visible (``lake_version``),
    and the code version that recorded it; ``counts`` the number of files per status (a
    ``pending`` file waits for its subject's enrollment; its reason says which subject);
    ``lake_versions`` the current version of each table.
    """
    from pipelines.ingest.lake import lake_versions

    with Catalog(config.catalog) as catalog:
        records = catalog.latest()
    files = [{
        "path": r.path, "sha256": r.sha256, "version": r.version, "status": r.status.value,
        "reason": None if r.status is FileStatus.CURATED else r.message, "report_id": r.report_id,
        "rows": r.rows, "source": r.source, "subject_id": r.subject_id, "lake_version": r.lake_version,
        "code_version": r.code_version, "processed_at": r.processed_at.isoformat() if r.processed_at else None,
    } for r in records]
    counts = dict.fromkeys((s.value for s in FileStatus if s is not FileStatus.SUPERSEDED), 0)
    for entry in files:
        counts[entry["status"]] += 1
    return {"study_id": config.study_id, "counts": counts, "lake_versions": lake_versions(config.lake_root),
            "files": files}
