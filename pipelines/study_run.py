"""A study end to end (`biomarkers run`), and every study under a folder on an interval (`biomarkers watch`).

:func:`run_study` takes a study from its raw files to scores and report, doing only what changed:
ingest new and changed files; rebuild the feature tables when their inputs or the feature code
changed (the build's own fingerprint); register and materialize rebuilt tables; train the declared
models whose features or settings changed (each registered as ``candidate``: promotion stays a
reviewer's act); score the cohort with each champion whose version or features changed; write the
report when anything did. What each step last acted on is kept in the study's platform folder
(``run_state.json``, written after every step), so a second run does nothing and a run killed
midway repeats only the steps it had not finished. One run per study at a time (a lock file).

:func:`watch` runs every ``study.yaml`` under a folder this way, cycle after cycle: new studies
and changed configurations are picked up, late files are ingested when they arrive (a file
whose subject is not enrolled yet waits as ``pending``), and a broken study is reported while
the others go on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, StudyConfig, load_study

logger = logging.getLogger(__name__)

STATE_FILE = "run_state.json"
LOCK_FILE = "run.lock"


class StudyBusyError(RuntimeError):
    """Another run of the same study holds its lock."""


@dataclass(frozen=True)
class Step:
    """What one step of a run did: ``done``, ``skipped`` (nothing had changed) or ``failed``."""

    name: str
    outcome: str
    detail: str

    def line(self, study_id: str) -> str:
        return f"study {study_id}: {self.name}: {self.outcome}: {self.detail}"


@dataclass
class StudyRun:
    """The steps of one run of a study, in order, and the report it wrote (if any)."""

    study_id: str
    steps: list[Step] = field(default_factory=list)
    report: Path | None = None

    @property
    def did_work(self) -> bool:
        return any(step.outcome == "done" for step in self.steps)

    @property
    def failed(self) -> list[Step]:
        return [step for step in self.steps if step.outcome == "failed"]


@contextmanager
def study_lock(config: StudyConfig) -> Iterator[None]:
    """Hold the study's run lock, or raise :class:`StudyBusyError` at once (two runs would only
    repeat each other's work; ingest itself is safe under races, the steps after it need not be)."""
    path = config.platform_root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusyError(f"study {config.study_id}: another run holds {path}; try again when it is "
                                 "done") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _State:
    """``run_state.json``: what each step last acted on; written atomically after each step."""

    def __init__(self, config: StudyConfig):
        self.path = config.platform_root / STATE_FILE
        try:
            self.values: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.values = {}  # unreadable: every step checks again, which is safe (each is idempotent)

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps(self.values, indent=2, sort_keys=True))
        os.replace(temporary, self.path)


def run_study(config: StudyConfig, *, study_path: Path | None = None, workers: int = 1, engine: str = "local",
              feature_store_yaml: Path | None = None, alerts: Callable[[StudyConfig], Any] | None = None,
              log: Callable[[str], None] = logger.info) -> StudyRun:
    """Run every step of the study that has something to do (see the module docstring).

    Parameters
    ----------
    config : the study.
    study_path : its study.yaml (recorded in the training runs' lineage).
    workers : processes for ingest and the local feature build.
    engine : the feature build's engine, ``local`` or ``spark``.
    feature_store_yaml : Feast infrastructure for the study's repo folder (default: as it is).
    alerts : returns the study's alerts for the report (the CLI reads them from the alerts store).
    log : receives one line per step, as it ends.

    Raises
    ------
    StudyBusyError : another run of the study is in progress.
    ConfigError : the study cannot be run at all (e.g. its enrollment file cannot be read).
    """
    run = StudyRun(config.study_id)

    def record(step: Step) -> None:
        run.steps.append(step)
        log(step.line(config.study_id))

    with study_lock(config):
        state = _State(config)
        record(_ingest(config, workers))
        built = _build(config, state, workers, engine, record)
        if built is not None:
            _materialize(config, state, built, feature_store_yaml, record)
            for model in config.models:
                record(_train(config, state, model, built, study_path))
            for model in config.models:
                record(_score(config, state, model, built))
        if run.did_work or not _report_exists(config):
            run.report = _report(config, alerts, record)
        else:
            record(Step("report", "skipped", "nothing changed since it was written"))
    return run


def _ingest(config: StudyConfig, workers: int) -> Step:
    from pipelines.ingest.run import ingest_study

    summary = ingest_study(config, workers=workers)
    counts: dict[str, int] = {}
    for outcome in summary.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    processed = len(summary.processed())
    detail = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no files"
    waiting = summary.pending()
    if waiting:
        detail += "; waiting: " + "; ".join(f"{o.path} ({o.reason})" for o in waiting[:3]) + (
            f" and {len(waiting) - 3} more" if len(waiting) > 3 else "")
    if summary.unprocessed():
        return Step("ingest", "failed", f"{detail} (busy or failed files are left for the next run)")
    return Step("ingest", "done" if processed else "skipped", detail)


def _build(config: StudyConfig, state: _State, workers: int, engine: str, record) -> str | None:
    """Build the feature tables if their inputs or code changed; the build's time stamp (None: no tables)."""
    from pipelines.build.local import MANIFEST, SubjectsFailedError, build_features

    try:
        summary = build_features(config, config.feature_tables_root, engine=engine, workers=workers)
    except SubjectsFailedError as error:
        record(Step("features", "failed", str(error)))
        return None
    manifest_path = config.feature_tables_root / MANIFEST
    built = json.loads(manifest_path.read_text()).get("built_at") if manifest_path.is_file() else None
    if summary.rejected:
        record(Step("features", "failed", "; ".join(f"{table} not published: {why}"
                                                     for table, why in summary.rejected.items())))
    elif summary.skipped:
        record(Step("features", "skipped", "no curated data or feature code changed"))
    else:
        record(Step("features", "done", f"{sum(summary.tables.values()):,} rows in {len(summary.tables)} tables "
                                        f"for {summary.subjects} subjects"))
    return built


def _materialize(config: StudyConfig, state: _State, built: str, template: Path | None, record) -> None:
    from adapters.feast_repo import apply_repo, materialize, project_name

    repo = config.feast_repo(template)
    wanted = {"built_at": built, "infrastructure": _sha256((repo / "feature_store.yaml").read_bytes())}
    if state.get("materialized") == wanted:
        record(Step("materialize", "skipped", "the online store holds this build already"))
        return
    registered = apply_repo(repo, config.feature_tables_root)
    done = materialize(repo)
    state.set("materialized", wanted)
    loaded = sum(1 for span in done.values() if span.startswith(("full load", "incremental")))
    record(Step("materialize", "done", f"{len(registered)} Feast objects in project {project_name(config.study_id)}; "
                                      f"{loaded} views loaded online"))


def _train(config: StudyConfig, state: _State, model: str, built: str, study_path: Path | None) -> Step:
    from pipelines.models.train import TrainingError, train

    wanted = {"built_at": built, "settings": _sha256(config.models[model].model_dump_json().encode())}
    trained = state.get("trained") or {}
    if trained.get(model, {}).get("inputs") == wanted:
        return Step(f"train {model}", "skipped", f"version {trained[model]['version']} was trained on these "
                                                 "features and settings")
    try:
        result = train(config, model, study_path=study_path, reuse=True)
    except TrainingError as error:
        return Step(f"train {model}", "failed", str(error))
    state.set("trained", {**trained, model: {"inputs": wanted, "version": result.version}})
    if result.reused:
        return Step(f"train {model}", "skipped", f"same training set as {result.registered_name} version "
                                                 f"{result.version} (run {result.run_id})")
    shown = ", ".join(f"{name} {value:.3f}" for name, value in result.metrics.items()
                      if name in ("auroc", "auprc", "brier", "f1"))
    return Step(f"train {model}", "done", f"{result.registered_name} version {result.version} registered as "
                                          f"candidate (run {result.run_id}{'; ' + shown if shown else ''}); "
                                          "a reviewer promotes it: biomarkers promote")


def _score(config: StudyConfig, state: _State, model: str, built: str) -> Step:
    from pipelines.models.registry import CHAMPION, RegistryError, alias_version
    from pipelines.models.scoring import score_cohort
    from pipelines.models.train import registered_name

    name = registered_name(config, model)
    champion = alias_version(config, name, CHAMPION)
    if champion is None:
        return Step(f"score {model}", "skipped", f"{name} has no champion yet")
    wanted = {"built_at": built, "champion": champion}
    scored = state.get("scored") or {}
    if scored.get(model) == wanted:
        return Step(f"score {model}", "skipped", f"version {champion} scored these features already")
    try:
        result = score_cohort(config, f"{name}@{CHAMPION}", None)
    except RegistryError as error:
        return Step(f"score {model}", "failed", str(error))
    state.set("scored", {**scored, model: wanted})
    return Step(f"score {model}", "done", f"{result.rows} subjects with {name} version {champion}: {result.path}")


def _report_exists(config: StudyConfig) -> bool:
    from pipelines.report.page import report_path

    return report_path(config, None).is_file()


def _report(config: StudyConfig, alerts, record) -> Path | None:
    from pipelines.report.page import ReportError, write_report

    try:
        path = write_report(config, alerts=alerts(config) if alerts else None)
    except ReportError as error:
        record(Step("report", "failed", str(error)))
        return None
    record(Step("report", "done", str(path)))
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Watching a folder of studies


def study_files(studies_dir: Path) -> list[Path]:
    """Every ``study.yaml`` under the folder, in a stable order; platform folders are not searched."""
    return sorted(path for path in Path(studies_dir).rglob("study.yaml")
                  if ".platform" not in path.relative_to(studies_dir).parts)


def watch(studies_dir: Path, *, interval_s: float = 60.0, cycles: int | None = None, workers: int = 1,
          alerts: Callable[[StudyConfig], Any] | None = None, log: Callable[[str], None] = logger.info,
          sleep: Callable[[float], None] = time.sleep) -> None:
    """Run every study under ``studies_dir`` (:func:`run_study`), every ``interval_s`` seconds,
    ``cycles`` times (None: until interrupted). One line per action goes to ``log``; a study that
    cannot be loaded or run is reported and the others go on."""
    seen: dict[Path, str] = {}
    cycle = 0
    while cycles is None or cycle < cycles:
        cycle += 1
        ids: dict[str, Path] = {}
        for path in study_files(studies_dir):
            digest = _sha256(path.read_bytes())
            if seen.get(path) != digest:
                log(f"{'new study' if path not in seen else 'changed configuration'}: {path}")
                seen[path] = digest
            try:
                config = load_study(path)
            except ConfigError as error:
                log(f"study {path}: not run: {error}")
                continue
            if config.study_id in ids:
                log(f"study {path}: not run: study id {config.study_id!r} is also {ids[config.study_id]}'s")
                continue
            ids[config.study_id] = path
            try:
                run = run_study(config, study_path=path, workers=workers, alerts=alerts, log=log)
            except (StudyBusyError, ConfigError) as error:
                log(f"study {config.study_id}: not run: {error}")
                continue
            except Exception as error:  # one broken study must not stop the others
                logger.exception("study %s failed", config.study_id)
                log(f"study {config.study_id}: failed: {type(error).__name__}: {error}")
                continue
            if not run.did_work:
                log(f"study {config.study_id}: up to date")
        if cycles is None or cycle < cycles:
            sleep(interval_s)
