"""The ``biomarkers`` command: one sub-command per job.

Only Typer and Rich are imported here at start-up; every job imports its heavy libraries
(pandas, Great Expectations, Feast, MLflow, torch) inside its command, so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import sys
import threading
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    name="biomarkers",
    help=(
        "Digital biomarker platform: validated device and lab data, Feast features, MLflow models.\n\n"
        "Example: biomarkers demo   (generate the demo study and ingest it)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

DEMO_STUDY = Path(__file__).parent / "demo" / "study.yaml"  # studies/demo/study.yaml, packaged
DEMO_DATA = Path("data") / "demo"  # where `biomarkers demo` generates its study: in the working directory
DEMO_MARKER = ".demo-generated.json"  # parameters of the last complete generation in that folder

# `biomarkers ingest` exit status when files were left busy or failed (2: nothing could be ingested).
INGEST_UNPROCESSED_EXIT = 3
StudyArgument = Annotated[Path, typer.Argument(help="the study's study.yaml, e.g. studies/demo/study.yaml")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # Great Expectations sets INFO on its own loggers
    if not verbose:  # deprecation notices of third-party libraries are for their maintainers
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)  # where captured warnings are logged


@app.command("generate-demo")
def generate_demo_command(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the demo study's raw files into")],
    seed: Annotated[int, typer.Option(help="random seed; the same seed writes byte-identical files")] = 7,
    subjects: Annotated[int, typer.Option(help="number of subjects")] = 200,
    days: Annotated[int, typer.Option(help="days of data per subject")] = 28,
) -> None:
    """Write the synthetic demo study (devices, vitals, labs, enrollment, endpoints, broken files).

    Example: biomarkers generate-demo data/demo --seed 7
    """
    manifest = _generate(out_dir, seed, subjects, days)
    console.print(f"wrote {len(manifest.files)} files for {len(manifest.subject_ids)} subjects under {out_dir}")
    console.print(f"{len(manifest.broken_files)} deliberately broken files, each meant to be quarantined by its "
                  "check (a file of a subject not enrolled waits as pending instead):")
    for path, check in sorted(manifest.broken_files.items()):
        console.print(f"  {path}  ->  {check}")


@app.command("ingest")
def ingest_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    workers: Annotated[int, typer.Option(help="processes to validate files in parallel")] = 2,
    retry_failed: Annotated[bool, typer.Option(help="process failed files again (they are retried anyway "
                                                    "when the platform's code version changes)")] = False,
) -> None:
    """Discover, validate and curate a study's new or changed raw files; quarantine bad ones.

    Exit status: 0 when every file has an outcome (curated, quarantined, pending or unchanged);
    3 when files were left unprocessed: busy (another live run holds them) or failed (the
    platform broke on them); 2 when the study cannot be ingested at all.

    Example: biomarkers ingest studies/demo/study.yaml
    """
    config = _load(study, data_root)
    summary = _ingest(config, workers, retry_failed)
    _print_summary(config, summary)
    if summary.unprocessed():
        raise typer.Exit(INGEST_UNPROCESSED_EXIT)


@app.command("status")
def status_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """The catalog state of every file: path, SHA-256, version, status, reason, report, rows and
    the lake version that holds it.

    Example: biomarkers status studies/demo/study.yaml --json
    """
    from pipelines.ingest.run import study_status

    config = _load(study, data_root)
    status = study_status(config)
    if as_json:
        print(json.dumps(status, indent=2))
        return
    table = Table(title=f"Files of study {config.study_id}")
    for column in ("path", "sha256", "version", "status", "rows", "lake version", "reason"):
        table.add_column(column, justify="right" if column in ("version", "rows", "lake version") else "left")
    for entry in status["files"]:
        table.add_row(entry["path"], entry["sha256"][:12], str(entry["version"]), entry["status"],
                      "" if entry["rows"] is None else f"{entry['rows']:,}",
                      "" if entry["lake_version"] is None else str(entry["lake_version"]), entry["reason"] or "")
    console.print(table)
    console.print("lake versions: " + ", ".join(f"{k} {v}" for k, v in status["lake_versions"].items()))


@app.command("demo")
def demo_command(
    out_dir: Annotated[Path, typer.Argument(help="where the demo study is generated")] = DEMO_DATA,
    seed: Annotated[int, typer.Option(help="random seed of the demo study")] = 7,
    workers: Annotated[int, typer.Option(help="processes to validate files in parallel")] = 2,
    subjects: Annotated[int, typer.Option(help="subjects of the demo study (a smaller study runs faster)")] = 200,
    days: Annotated[int, typer.Option(help="days of data per subject")] = 28,
) -> None:
    """The main job on embedded defaults: generate the demo study, then `biomarkers run` it (ingest,
    features, materialize, train, report), read two subjects' online features back, promote the
    endpoint model if it meets the study's criteria, print its lineage, and run again (which
    scores the cohort with the new champion and updates the report).

    A second run finds the study generated (the generator is deterministic: it would write the
    same bytes) and every step up to date, so it does nothing but say so.

    Example: biomarkers demo   (a smaller study, in about a minute: biomarkers demo --subjects 80 --days 8)
    """
    marker = out_dir / DEMO_MARKER
    wanted = {"seed": seed, "subjects": subjects, "days": days}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        console.print(f"demo study already generated in {out_dir} (seed {seed}); delete {marker.name} to regenerate")
    else:
        _generate(out_dir, seed, subjects, days)
        marker.write_text(json.dumps(wanted))
    config = _load(DEMO_STUDY, out_dir)
    run = _run(config, DEMO_STUDY, workers)
    _show_online(config, ["S0001", "S0002"])
    from pipelines.models.registry import CANDIDATE, alias_version, lineage, promote
    from pipelines.models.train import registered_name
    from training.tasks import task_named

    endpoint = next(name for name, model in config.models.items() if task_named(model.task).ranks_risk)

    name = registered_name(config, endpoint)
    champion = f"{name}@champion"
    with _registry_errors(), _quiet_mlflow():
        current, candidate = _champion_version(config, name), alias_version(config, name, CANDIDATE)
        promotion = None
        if candidate is not None and current != candidate:
            promotion = promote(config, name, candidate, approver="demo pipeline",
                                reason="demo run: the study's acceptance criteria decide")
    if promotion is None:
        console.print(f"{champion} is already version {current}")
    else:
        _print_promotion(promotion)
    if promotion is None or promotion.accepted:
        with _registry_errors(), _quiet_mlflow():
            chain = lineage(config, champion)
        console.print(f"\n[bold]biomarkers lineage {champion}[/bold]")
        _print_lineage(chain, raw_files_shown=8)
    if promotion is not None and promotion.accepted:
        run = _run(config, DEMO_STUDY, workers)  # scores with the new champion, updates the report
    report = run.report or report_path_of(config)
    _print_where_to_look(config, report, out_dir, champion)


def report_path_of(config) -> Path:
    from pipelines.report.page import report_path

    return report_path(config, None)


def _print_where_to_look(config, report: Path, out_dir: Path, champion: str) -> None:
    """The demo's last word: the pages to open and the commands to run next, each on one line as typed."""
    from pipelines.ingest.quality_page import data_docs_site

    here = Path.cwd()

    def shown(path: Path) -> str:  # relative when under the current folder, as a user would type it
        path = Path(os.path.abspath(path))
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    tools = Path(sys.executable).parent
    from adapters.tracking import ModelReference
    from pipelines.config import load_yaml

    study_file = DEMO_STUDY.resolve()  # studies/demo/study.yaml in a checkout
    own_root = (study_file.parent / load_yaml(study_file, "the demo study")["data_root"]).resolve()
    data_root = "" if out_dir.resolve() == own_root else f" --data-root {shown(out_dir)}"
    study = shown(study_file) + data_root
    name = ModelReference.parse(champion).name
    lines = [
        ("study report", f"{shown(report)}  (open it in a browser)"),
        ("data quality", shown(config.reports_root / "index.html")),
        ("Data Docs", shown(data_docs_site(config) / "index.html")),
        ("MLflow UI", f"{shown(tools / 'mlflow')} ui --backend-store-uri {config.tracking_uri}  "
                      f"(then http://127.0.0.1:5000/#/models/{name})"),
        ("lineage", f"{shown(tools / 'biomarkers')} lineage {champion}{data_root}"),
        ("an API key", f"KEY=$({shown(tools / 'biomarkers')} api-key me --register {study})"),
        ("the online API", f"{shown(tools / 'biomarkers')} serve {study}  "
                           f"(OpenAPI at http://{config.serving.host}:{config.serving.port}/docs)"),
    ]
    console.print("\n[bold]Where to look next[/bold]")
    for label, text in lines:
        console.print(f"  {label + ':':<16}{text}", soft_wrap=True, highlight=False)


@app.command("build-features")
def build_features_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    engine: Annotated[Literal["local", "spark"], typer.Option(
        help="where subjects are computed: local (a process pool) or spark (Spark tasks, on the master of the "
             "study's spark: section, default local[2]; needs the spark extra)")] = "local",
    workers: Annotated[int, typer.Option(help="engine local: processes computing subjects in parallel")] = 2,
    force: Annotated[bool, typer.Option(help="rebuild even when no curated data changed")] = False,
    lake_versions_of: Annotated[str | None, typer.Option(
        help="build as a training run's tables were built: from the lake as it read it (its recorded table "
             "versions) and with the biomarker settings it recorded; the run's id, or its model version NAME@ALIAS or "
             "NAME/VERSION; `reproduce` then matches after newer data arrived or the settings changed. Build again "
             "without it to return to the newest lake and the study's settings")] = None,
) -> None:
    """Compute every biomarker feature table from the curated lake, one subject per task.

    Example: biomarkers build-features studies/demo/study.yaml --engine spark
    """
    config = _load(study, data_root)
    lake_versions = None
    if lake_versions_of is not None:
        with _registry_errors(), _quiet_mlflow():
            from pipelines.models.registry import recorded_build

            recorded = recorded_build(config, lake_versions_of)
        lake_versions = recorded.lake_versions
        console.print("building from the lake as it was: "
                      + ", ".join(f"{source} v{version}" for source, version in sorted(lake_versions.items())))
        if recorded.settings is None:
            console.print("the run recorded no biomarker settings (trained before they were recorded): building with "
                          "the study's own")
        elif recorded.settings != config.biomarkers:
            console.print("with the biomarker settings the run recorded (they differ from the study's now)")
            config = config.model_copy(update={"biomarkers": recorded.settings})
    _build_features(config, workers, force, engine, lake_versions)


@app.command("materialize")
def materialize_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure to use instead of feature_store.yaml, e.g. "
             "deploy/feature_store.production.yaml (Redis online store, PostgreSQL registry)")] = None,
) -> None:
    """Register the study's Feast repo (feast apply) and load the latest values online, incrementally.

    The repo folder is the study's own (<data_root>/.platform/feast, one Feast project per study);
    --feature-store-yaml sets its infrastructure from then on.
    Example: biomarkers materialize studies/demo/study.yaml
    """
    _materialize(_load(study, data_root), feature_store_yaml)


StudyOption = Annotated[Path, typer.Option("--study", help="the study's study.yaml")]
DataRootOption = Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")]


@app.command("run")
def run_command(
    study: StudyArgument,
    data_root: DataRootOption = None,
    workers: Annotated[int, typer.Option(help="processes for ingest and the feature build")] = 2,
    engine: Annotated[str, typer.Option(help="feature build engine: local (process pool) or spark")] = "local",
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure for the study's repo folder from now on, e.g. "
             "deploy/feature_store.production.yaml")] = None,
) -> None:
    """A study end to end, doing only what changed: ingest new and changed files, rebuild the feature
    tables, materialize them, train the declared models (registered as candidates: promotion stays
    a reviewer's act), score the cohort with each champion and write the report. A second run does
    nothing.

    Exit status: 0 when every step succeeded or had nothing to do; 1 when a step failed (the others
    still ran); 3 when another run of the study is in progress; 2 when the study cannot be run.
    Example: biomarkers run studies/demo/study.yaml
    """
    run = _run(_load(study, data_root), study, workers, engine, feature_store_yaml)
    if run.failed:
        raise typer.Exit(1)


@app.command("watch")
def watch_command(
    studies_dir: Annotated[Path, typer.Argument(help="the folder whose study.yaml files (at any depth) are run")],
    interval: Annotated[float, typer.Option(help="seconds between two cycles")] = 60.0,
    cycles: Annotated[int | None, typer.Option(help="stop after this many cycles (default: run until Ctrl-C)")] = None,
    workers: Annotated[int, typer.Option(help="processes for ingest and the feature build")] = 2,
) -> None:
    """Run every study under a folder, again and again: new and changed study.yaml files are picked up,
    new raw files of every study are processed incrementally (as `biomarkers run` does), one log line
    per action. A file whose subject is not enrolled yet waits as pending and is processed once it
    is; a study that cannot be loaded or run is reported and the others go on.

    Example: biomarkers watch studies/ --interval 300
    """
    from pipelines.study_run import watch

    if not studies_dir.is_dir():
        console.print(f"[red]{studies_dir} is not a folder[/red]")
        raise typer.Exit(2)
    with _without_feast_output(timestamped=True) as show, _quiet_mlflow():
        try:
            watch(studies_dir, interval_s=interval, cycles=cycles, workers=workers, alerts=_report_alerts, log=show)
        except KeyboardInterrupt:
            show("stopped")


@contextlib.contextmanager
def _without_feast_output(timestamped: bool = False):
    """Swallow what Feast prints to standard output (a progress block per view) while yielding a
    function that prints one step line there, in red when the step failed."""
    out = Console(file=sys.stdout, soft_wrap=True, highlight=False)

    def show(line: str) -> None:
        if timestamped:
            line = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}"
        out.print(f"[red]{escape(line)}[/red]" if ": failed:" in line else escape(line))

    with contextlib.redirect_stdout(io.StringIO()):
        yield show


def _run(config, study: Path, workers: int, engine: str = "local", feature_store_yaml: Path | None = None):
    from pipelines.config import ConfigError
    from pipelines.study_run import StudyBusyError, run_study

    try:
        with _without_feast_output() as show, _quiet_mlflow():
            return run_study(config, study_path=study, workers=workers, engine=engine,
                             feature_store_yaml=feature_store_yaml, alerts=_report_alerts, log=show)
    except StudyBusyError as error:
        console.print(f"[yellow]{escape(str(error))}[/yellow]", soft_wrap=True)
        raise typer.Exit(INGEST_UNPROCESSED_EXIT) from None
    except ConfigError as error:
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("train")
def train_command(
    study: StudyArgument,
    model: Annotated[str, typer.Option("--model", help="a model named under `models:` in study.yaml")],
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure to use instead of feature_store.yaml, e.g. deploy/feature_store.spark.yaml "
             "(the training set from Feast's Spark offline store: the same rows and SHA-256)")] = None,
    data_root: DataRootOption = None,
) -> None:
    """Train a model on its Feast training set, log it to MLflow with its lineage, register it as candidate.

    Example: biomarkers train studies/demo/study.yaml --model hospitalization_risk
    """
    config = _load(study, data_root)
    _train(config, model, study, feature_store_yaml=feature_store_yaml)


@app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="registered model name, e.g. demo-hospitalization_risk")],
    version: Annotated[str, typer.Argument(help="the model version to promote to champion")],
    approver: Annotated[str, typer.Option(help="who approves (recorded in the audit log)")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    study: StudyOption = DEMO_STUDY,
    data_root: DataRootOption = None,
) -> None:
    """Move the champion alias to a model version if it meets the study's acceptance criteria.

    Every request, accepted or refused, is appended to the audit log with each criterion's result.

    Example: biomarkers promote demo-hospitalization_risk 1 --approver "A. Reviewer" --reason "meets criteria"
    """
    config = _load(study, data_root)
    with _registry_errors(), _quiet_mlflow():
        from pipelines.models.registry import promote

        result = promote(config, name, version, approver=approver, reason=reason)
    _print_promotion(result)
    if not result.accepted:
        raise typer.Exit(1)


@app.command("lineage")
def lineage_command(
    reference: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or a run id")],
    study: StudyOption = DEMO_STUDY,
    data_root: DataRootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the chain as JSON")] = False,
) -> None:
    """Print the chain behind a model or run: version, run, datasets, features, curated and raw files.

    Example: biomarkers lineage demo-hospitalization_risk@champion
    """
    config = _load(study, data_root)
    with _registry_errors(), _quiet_mlflow():
        from pipelines.models.registry import lineage

        chain = lineage(config, reference)
    if as_json:
        print(json.dumps(chain, indent=2, default=str))
    else:
        _print_lineage(chain)


@app.command("reproduce")
def reproduce_command(
    reference: Annotated[str, typer.Argument(help="a training run's MLflow id, or the model version whose run it "
                                                  "is: NAME@ALIAS or NAME/VERSION")],
    study: StudyOption = DEMO_STUDY,
    data_root: DataRootOption = None,
) -> None:
    """Rebuild a run's training set from its recorded labels and confirm its SHA-256.

    Example: biomarkers reproduce demo-hospitalization_risk@champion   (or a run id: biomarkers reproduce 3f2c...e1)
    """
    config = _load(study, data_root)
    with _registry_errors(), _quiet_mlflow():
        from pipelines.models.registry import reproduce

        result = reproduce(config, reference)
    run_id = result["run_id"]
    for name, check in result["checks"].items():
        mark = "[green]match[/green]" if check["match"] else "[red]DIFFERS[/red]"
        console.print(f"{name}: {mark}  recorded {check['recorded']}  rebuilt {check['rebuilt']}")
    if not result["reproduced"]:
        hint = f": {result['hint']}" if "hint" in result else ""
        console.print(f"[red]run {run_id} is not reproduced[/red]{hint}")
        raise typer.Exit(1)
    console.print(f"run {run_id} reproduced: {result['rows']} rows, training set SHA-256 identical")


@app.command("score")
def score_command(
    study: StudyArgument,
    model: Annotated[str, typer.Option("--model", help="NAME@ALIAS or NAME/VERSION, e.g. "
                                                       "demo-hospitalization_risk@champion")],
    as_of: Annotated[str, typer.Option("--as-of", help="score with the features known at this time (ISO 8601, "
                                                       "UTC unless it says otherwise), or 'latest': each "
                                                       "subject as of the end of its own newest feature window")],
    cohort: Annotated[Path | None, typer.Option(help="CSV or Parquet with a subject_id column, under the data "
                                                     "root (default: every enrolled subject)")] = None,
    out: Annotated[Path | None, typer.Option(help="output Parquet, under the data root (default: "
                                                  ".platform/scores/<model>-v<version>-<time>.parquet)")] = None,
    engine: Annotated[Literal["local", "spark"], typer.Option(
        help="local: retrieve and score in this process; spark: point-in-time features from Feast's Spark offline "
             "store, scored in Spark tasks (needs a Spark --feature-store-yaml and the spark extra)")] = "local",
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure to use instead of feature_store.yaml, e.g. deploy/feature_store.spark.yaml "
             "(registered by `biomarkers materialize --feature-store-yaml` with the same file)")] = None,
    data_root: DataRootOption = None,
) -> None:
    """Score a cohort with a registered model as of a time; scores to Parquet, an MLflow run for lineage.

    Example: biomarkers score studies/demo/study.yaml --model demo-hospitalization_risk@champion --as-of latest

    On Spark: ... --engine spark --feature-store-yaml deploy/feature_store.spark.yaml
    """
    config = _load(study, data_root)
    _score(config, model, as_of, cohort, out, engine=engine, feature_store_yaml=feature_store_yaml)


def _score(config, model: str, as_of: str, cohort: Path | None = None, out: Path | None = None, *,
           engine: str = "local", feature_store_yaml: Path | None = None):
    import pandas as pd
    from rich.progress import Progress

    from pipelines.models.scoring import score_cohort
    from training.tasks import task_named

    with _registry_errors():
        try:
            moment = None if as_of == "latest" else pd.Timestamp(as_of).to_pydatetime()
        except ValueError as error:
            raise typer.BadParameter(f"--as-of {as_of!r}: {error}") from None
        with Progress(console=console, transient=True) as bar, _quiet_mlflow():
            task = bar.add_task(f"scoring with {model}", total=None)
            result = score_cohort(config, model, moment, cohort=cohort, out=out, engine=engine,
                                  yaml_file=feature_store_yaml,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    when = "each subject's latest window" if moment is None else moment.isoformat()
    console.print(f"scored {result.rows} subjects with {result.model_name} v{result.model_version} as of "
                  f"{when}: {result.path} (run {result.run_id})")
    top = result.scores.sort_values("score", ascending=False).head(10)
    ages = [column for column in top.columns if column.startswith("feature_age_")]
    table = Table(title="Highest scores" + (" (risk of the endpoint)" if task_named(result.task).ranks_risk else ""))
    table.add_column("subject")
    table.add_column("score", justify="right")
    for column in ages:
        table.add_column(f"age of {column.removeprefix('feature_age_').removesuffix('_h')} (h)", justify="right")
    for _, row in top.iterrows():
        table.add_row(str(row["subject_id"]), *(_cell(float(row[column])) for column in ["score", *ages]))
    console.print(table)
    return result


@app.command("report")
def report_command(
    study: StudyArgument,
    out: Annotated[Path | None, typer.Option(help="the HTML file to write, under the data root (default: "
                                                  "<platform_dir>/reports/study_report.html)")] = None,
    data_root: DataRootOption = None,
) -> None:
    """Write the study report: one self-contained HTML file, plots inside, that fetches nothing.

    Data quality per source (files curated and quarantined, and why), biomarker distributions by
    arm and site, a few subjects' trajectories with their endpoint and anomaly events, the
    endpoint model's ROC, calibration and subgroup table with confidence intervals, the
    highest-risk subjects and the alerts raised. A section whose artifacts do not exist yet
    (no model trained, nothing scored) says so and names the command that makes them.

    Example: biomarkers report studies/demo/study.yaml --out .platform/reports/week12.html
    """
    config = _load(study, data_root)
    console.print(f"study report: {_report(config, out)}")


def _report(config, out: Path | None = None) -> Path:
    from pipelines.report.page import ReportError, report_path, write_report

    try:
        report_path(config, out)  # refused before anything is read
    except ReportError as error:
        console.print(f"[red]{error}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    with console.status("writing the study report"), _quiet_mlflow():
        return write_report(config, out=out, tables=config.feature_tables_root, alerts=_report_alerts(config))


def _report_alerts(config):
    """The study's alerts for the report, newest first (as many as one listing holds); None when it has no
    alerts store yet; a sentence when the store cannot be read."""
    import dataclasses

    import pandas as pd
    import sqlalchemy as sa

    from pipelines.report.page import sqlite_file_missing
    from serving.alerts import MAX_ALERTS_PER_LIST, Alert, AlertStore

    url = alerts_url(config)
    if sqlite_file_missing(url):  # opening it would create an empty store
        return None
    try:
        store = AlertStore(url, config.study_id)
        try:
            alerts = store.list(limit=MAX_ALERTS_PER_LIST)
        finally:
            store.close()
    except sa.exc.SQLAlchemyError as error:
        return f"The alerts store could not be read: {error.__class__.__name__}: {error}"
    return pd.DataFrame([dataclasses.asdict(alert) for alert in alerts],
                        columns=[field.name for field in dataclasses.fields(Alert)])


StudiesArgument = Annotated[list[Path], typer.Argument(
    help="each study's study.yaml (one or more), e.g. studies/demo/study.yaml", metavar="study", show_default=False)]


@app.command("serve")
def serve_command(
    studies: StudiesArgument,
    data_root: DataRootOption = None,
    host: Annotated[str | None, typer.Option(
        help="address to listen on (default: serving.host of the first study's study.yaml)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: serving.port of the first study's study.yaml)")] =
    None,
    feast_repo: Annotated[Path | None, typer.Option(
        help="another Feast repo to read (default: the study's own, <data_root>/.platform/feast; one study only)")] =
    None,
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure instead of the repo's feature_store.yaml (production: Redis); each study "
             "keeps its own Feast project in it")] = None,
) -> None:
    """Serve online features and scores of one or more studies over HTTP (FastAPI under uvicorn).

    Each study is served apart, under /studies/STUDY_ID (its feature store, models, alerts and
    keys: a key of one study gets 403 on another), with its OpenAPI page at /studies/STUDY_ID/docs;
    GET /studies lists them. With one study its routes are also at the root (/v1/..., /docs,
    /healthz); with several, /healthz and /readyz answer for all of them.

    Clients send `Authorization: Bearer KEY`; keys are configured hashed under `serving.api_keys`
    (see `biomarkers api-key`). Example: biomarkers serve studies/demo/study.yaml --port 8000
    """
    import uvicorn
    from rich.markup import escape

    from serving.app import create_studies_app
    from serving.routers.studies import study_path

    _one_study_options(studies, {"--data-root": data_root, "--feast-repo": feast_repo})
    configs = [_load(study, data_root) for study in studies]
    settings = [serving_settings(config, feast_repo, feature_store_yaml) for config in configs]
    try:
        served = create_studies_app(settings)
    except ValueError as error:
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    for study in settings:
        if not study.api_keys:
            console.print(f"[yellow]study {study.study_id}: no API key is configured (serving.api_keys): every /v1 "
                          "request will be refused; create one with `biomarkers api-key NAME`[/yellow]")
    host, port = host or configs[0].serving.host, port or configs[0].serving.port
    pages = ["/docs"] * (len(settings) == 1) + [f"{study_path(study.study_id)}/docs" for study in settings]
    console.print(f"serving {', '.join(study.study_id for study in settings)} on http://{host}:{port}; OpenAPI "
                  f"pages: {', '.join(pages)}", soft_wrap=True)
    uvicorn.run(served, host=host, port=port, log_level="warning")


def _one_study_options(studies: list[Path], options: dict[str, object]) -> None:
    """Refuse an option that names one study's state when several studies are given (they would share it)."""
    given = [name for name, value in options.items() if value is not None]
    if len(studies) > 1 and given:
        raise typer.BadParameter(f"{', '.join(given)} names one study's data: with several studies, set it in each "
                                 "study's study.yaml (data_root) instead")


def serving_settings(config, feast_repo: Path | None, feature_store_yaml: Path | None):
    """The online API's settings from the study configuration: the study's own Feast repo (its
    infrastructure set from ``feature_store_yaml`` when given), or the repo ``feast_repo``."""
    from pipelines.models.train import follow_moved_study, registered_name
    from serving.settings import ApiKey, ServingSettings

    follow_moved_study(config)
    models = config.serving.models or {name: f"{registered_name(config, name)}@champion" for name in config.models}
    return ServingSettings(
        study_id=config.study_id, feast_repo_path=feast_repo or config.feast_repo(feature_store_yaml),
        feast_yaml_file=feature_store_yaml if feast_repo else None,
        tracking_uri=config.tracking_uri, models=models,
        api_keys=tuple(ApiKey(name=key.name, sha256=key.sha256, studies=tuple(key.studies))
                       for key in [*config.serving.api_keys, *registered_api_keys(config).api_keys]),
        max_body_bytes=config.serving.max_body_bytes, reload_seconds=config.serving.reload_seconds,
        request_threads=config.serving.request_threads, alerts_url=alerts_url(config),
        events_anomaly_model=config.serving.events_anomaly_model,
        max_event_clock_skew_seconds=config.serving.max_event_clock_skew_seconds,
        online_store_timeout_s=config.serving.online_store_timeout_s)


def _follow_aliases(models, every_s: float) -> None:
    """Reload a model registry's models whose alias moved, every ``every_s`` seconds, forever (a daemon thread)."""
    import time

    while True:
        time.sleep(every_s)
        try:
            models.refresh()
        except Exception:  # noqa: BLE001 - a registry outage must not stop the stream; refresh logs per model
            logging.getLogger(__name__).exception("alias polling failed")


def api_keys_path(config) -> Path:
    """Where ``biomarkers api-key --register`` keeps the study's added keys (hashes only)."""
    return config.platform_root / "api_keys.yaml"


def registered_api_keys(config):
    """The keys registered with ``biomarkers api-key --register`` (none when the file is absent)."""
    from pipelines.config import ApiKeysFile, load_yaml

    path = api_keys_path(config)
    if not path.is_file():
        return ApiKeysFile()
    return ApiKeysFile.model_validate(load_yaml(path, "the registered API keys") or {})


def alerts_url(config) -> str:
    """The study's alerts database: ``serving.alerts_url``, by default a SQLite file on the platform root."""
    return config.serving.alerts_url or f"sqlite:///{config.platform_root / 'alerts.db'}"


@app.command("stream")
def stream_command(
    studies: StudiesArgument,
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")],
    data_root: DataRootOption = None,
    topic: Annotated[str, typer.Option(help="the topic of a study's device events (JSON, keyed by subject); "
                                            "{study_id} is replaced by the study id")] = "{study_id}.vital-signs",
    dead_letter_topic: Annotated[str, typer.Option(help="where a study's invalid events go, with the reason")] =
    "{study_id}.vital-signs.dead-letter",
    alerts_topic: Annotated[str, typer.Option(help="where a study's urgent-response alerts go")] =
    "{study_id}.vital-signs.alerts",
    group: Annotated[str, typer.Option(help="a study's consumer group")] = "biomarkers-{study_id}",
    max_batch_events: Annotated[int, typer.Option(help="events per micro-batch at most")] = 2000,
    max_batch_wait_ms: Annotated[int, typer.Option(help="a micro-batch closes after this long (ms)")] = 50,
    commit_interval_ms: Annotated[int, typer.Option(
        help="how often processed events are written to the offline log and committed (ms)")] = 1000,
    session_timeout_ms: Annotated[int, typer.Option(help="Kafka consumer session timeout (ms)")] = 10_000,
    feast_repo: Annotated[Path | None, typer.Option(
        help="another Feast repo to write (default: the study's own, <data_root>/.platform/feast; one study only)")] =
    None,
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure instead of the repo's feature_store.yaml (production: Redis)")] = None,
) -> None:
    """Consume live vital-sign events of one or more studies from Kafka into their feature stores, with NEWS2 alerts.

    Each study has its own topics, by default STUDY_ID.vital-signs (events), STUDY_ID.vital-signs.dead-letter
    and STUDY_ID.vital-signs.alerts, and its own consumer group, biomarkers-STUDY_ID: the topic says
    which study an event is for, and a prefixed ACL on STUDY_ID. grants exactly one study's topics.
    Valid events are pushed to the study's Feast view vital_signs_live (online at once: each
    subject's latest; offline at each commit: every observation), invalid ones go to the
    dead-letter topic with the reason (an event naming another study in a study_id field too),
    and urgent-response alerts to the alerts topic and the study's alerts store. Offsets are
    committed after all of that is stored (at least once; writes are idempotent). Several
    studies are consumed side by side, one consumer each. Stop with Ctrl-C or SIGTERM.

    Example: biomarkers stream studies/demo/study.yaml --bootstrap 127.0.0.1:9092
    """
    from rich.markup import escape

    from serving.settings import STUDY_PLACEHOLDER, StreamSettings
    from serving.stream import run_until_signalled

    _one_study_options(studies, {"--data-root": data_root, "--feast-repo": feast_repo})
    shared = [f"--{name}" for name, value in (("topic", topic), ("dead-letter-topic", dead_letter_topic),
                                               ("alerts-topic", alerts_topic), ("group", group))
              if STUDY_PLACEHOLDER not in value]
    if len(studies) > 1 and shared:
        raise typer.BadParameter(f"{', '.join(shared)} must contain {STUDY_PLACEHOLDER} with several studies: "
                                 "one topic or group for two studies would mix their events")
    configs = [_load(study, data_root) for study in studies]
    ids = [config.study_id for config in configs]
    repeated = sorted({study_id for study_id in ids if ids.count(study_id) > 1})
    if repeated:
        console.print(f"[red]study {', '.join(repeated)} is given more than once: each study is consumed once[/red]")
        raise typer.Exit(2)
    try:
        streams = [StreamSettings.for_study(
            config.study_id, bootstrap, events_topic=topic, dead_letter_topic=dead_letter_topic,
            alerts_topic=alerts_topic, group_id=group, max_batch_events=max_batch_events,
            max_batch_wait_s=max_batch_wait_ms / 1000, commit_interval_s=commit_interval_ms / 1000,
            session_timeout_ms=session_timeout_ms,
            max_event_clock_skew_seconds=config.serving.max_event_clock_skew_seconds) for config in configs]
    except ValueError as error:  # pydantic's ValidationError: a topic name Kafka would refuse
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.ExitStack() as closing:
        consumers = [_study_consumer(config, stream, feast_repo, feature_store_yaml, closing)
                     for config, stream in zip(configs, streams, strict=True)]
        counts = run_until_signalled(consumers)
    for consumer, totals in zip(consumers, counts, strict=True):
        console.print(f"stopped{'' if len(consumers) == 1 else f' {consumer.study_id}'}: {totals.events} events "
                      f"pushed, {totals.dead_letters} dead letters, {totals.alerts} alerts, {totals.failed_batches} "
                      "batches retried")


def _study_consumer(config, stream, feast_repo: Path | None, feature_store_yaml: Path | None,
                    closing: contextlib.ExitStack):
    """One study's stream consumer: its store, alerts store (closed by ``closing``) and anomaly model."""
    from serving.alerts import AlertStore
    from serving.app import open_store
    from serving.models import ModelRegistry
    from serving.stream import EventStreamConsumer

    served = serving_settings(config, feast_repo, feature_store_yaml)
    store = open_store(served)
    alerts = AlertStore(alerts_url(config), config.study_id)
    closing.callback(alerts.close)
    anomaly_model = None
    if served.events_anomaly_model is not None:
        name = served.events_anomaly_model
        models = ModelRegistry(served.tracking_uri, {name: served.models[name]})
        for failed, reason in models.load_all().items():
            console.print(f"[yellow]{config.study_id}: {failed} not loaded ({reason}): NEWS2 alerts only[/yellow]",
                          soft_wrap=True)
        anomaly_model = functools.partial(models.get, name)
        if config.serving.reload_seconds > 0:  # follow the alias as `serve` does: a promotion reaches the stream
            threading.Thread(target=_follow_aliases, args=(models, config.serving.reload_seconds), daemon=True).start()
    console.print(f"{config.study_id}: consuming {stream.events_topic} on {stream.bootstrap_servers} as group "
                  f"{stream.group_id}; dead letters to {stream.dead_letter_topic}, alerts to {stream.alerts_topic}. "
                  "Ctrl-C stops.", soft_wrap=True)
    return EventStreamConsumer(stream, config.study_id, store, alerts, anomaly_model=anomaly_model)


@app.command("api-key")
def api_key_command(
    name: Annotated[str, typer.Argument(help="who will hold the key, e.g. ward-dashboard")],
    study_id: Annotated[list[str] | None, typer.Option("--study-id", help="a study the key may read (repeat for "
                                                                           "more; default: the --register study)")]
    = None,
    register: Annotated[Path | None, typer.Option(
        help="add the key's hash to this study's keys (<platform>/api_keys.yaml), which `serve` reads, and print "
             "only the key")] = None,
    data_root: DataRootOption = None,
) -> None:
    """Create an API key: print the key once, and the line with its hash for serving.api_keys in study.yaml.

    Only the hash is stored; the key cannot be recovered from it. With --register the hash is
    added to the study's registered keys instead, and the key alone goes to stdout:

    Example: biomarkers api-key my-laptop --register studies/demo/study.yaml

    In a script: KEY=$(biomarkers api-key my-laptop --register studies/demo/study.yaml)
    """
    import secrets

    import yaml

    from pipelines.config import ApiKeyConfig
    from serving.settings import hash_api_key

    key = secrets.token_urlsafe(32)
    if register is None:
        if not study_id:
            raise typer.BadParameter("name the studies the key may read with --study-id (or use --register STUDY)")
        console.print(f"key (shown once, give it to {name}): {key}")
        console.print("add under serving.api_keys in study.yaml:")
        print(f"  - {{name: {name}, sha256: {hash_api_key(key)}, studies: [{', '.join(study_id)}]}}")
        return
    config = _load(register, data_root)
    keys = registered_api_keys(config)
    keys.api_keys.append(ApiKeyConfig(name=name, sha256=hash_api_key(key), studies=study_id or [config.study_id]))
    path = api_keys_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(keys.model_dump(), sort_keys=False))
    temporary.replace(path)
    Console(stderr=True).print(f"registered key {name!r} for {', '.join(keys.api_keys[-1].studies)} in {path} "
                               "(its hash only; the key is printed once, on stdout)")
    print(key)


@contextlib.contextmanager
def _registry_errors():
    from adapters.spark import SparkNotInstalledError
    from pipelines.models.registry import RegistryError
    from pipelines.models.train import TrainingError

    try:
        yield
    except (RegistryError, TrainingError, SparkNotInstalledError) as error:
        console.print(f"[red]{error}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


def _train(config, model: str, study: Path, reuse: bool = False, feature_store_yaml: Path | None = None):
    with _registry_errors(), console.status(f"training {model}"), _quiet_mlflow():
        from pipelines.models.train import train

        result = train(config, model, yaml_file=feature_store_yaml, study_path=study, reuse=reuse)
    if result.reused:
        console.print(f"{model}: same training set, settings and code as run {result.run_id}: "
                      f"{result.registered_name} version {result.version} kept (not trained again)")
    else:
        console.print(f"trained {model}: run {result.run_id}, registered {result.registered_name} version "
                      f"{result.version} (alias candidate)")
    table = Table(title=f"{result.registered_name} v{result.version}: test-set metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for key, value in result.metrics.items():
        if key.endswith(("_ci_low", "_ci_high")) or key.startswith("bootstrap"):
            continue
        low, high = result.metrics.get(f"{key}_ci_low"), result.metrics.get(f"{key}_ci_high")
        table.add_row(key, _cell(float(value)), f"{_cell(low)} to {_cell(high)}" if low is not None else "")
    console.print(table)
    return result


@contextlib.contextmanager
def _quiet_mlflow():
    """MLflow prints registration notices and download bars; the commands print their own summary."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        yield


def _reference(chain: dict) -> str:
    if "model_version" in chain:
        return f"{chain['model_version']['name']}/{chain['model_version']['version']}"
    return chain["run"]["run_id"]


def _champion_version(config, name: str) -> str | None:
    from pipelines.models.registry import CHAMPION, alias_version

    return alias_version(config, name, CHAMPION)


def _print_promotion(result) -> None:
    verdict = "[green]accepted[/green]" if result.accepted else "[red]refused[/red]"
    console.print(f"promotion of {result.name} version {result.version} to champion: {verdict} "
                  f"(champion was {result.from_version or 'unset'}; audit entry {result.entry_hash[:12]})")
    for criterion in result.criteria:
        mark = "[green]pass[/green]" if criterion["passed"] else "[red]FAIL[/red]"
        console.print(f"  {mark} {criterion['name']}: {criterion['detail']}", soft_wrap=True)


def _print_lineage(chain: dict, raw_files_shown: int | None = None) -> None:
    if "scores" in chain:
        scores = chain["scores"]
        console.print(f"[bold]scores[/bold] run {scores['run_id']}: {scores['rows']} subjects as of {scores['as_of']}, "
                      f"output {scores['output']} (SHA-256 {scores['output_sha256']}), cohort SHA-256 "
                      f"{scores['input_sha256']}")
    if "model_version" in chain:
        mv = chain["model_version"]
        console.print(f"[bold]model[/bold] {mv['name']} version {mv['version']} (aliases: "
                      f"{', '.join(mv['aliases']) or 'none'}); audit entry {mv['audit_entry_hash'] or '-'}")
    run = chain["run"]
    console.print(f"[bold]run[/bold] {run['run_id']} ({run['name']}, {run['status']}, {run['start_time']})")
    for dataset in chain["datasets"]:
        console.print(f"  [bold]dataset[/bold] {dataset['context']}: {dataset['name']}, {dataset['rows']} rows, "
                      f"SHA-256 {dataset['sha256']}")
    features = chain["features"]
    console.print(f"[bold]feature service[/bold] {features['feature_service']}: views "
                  f"{', '.join(features['feature_views'])}; definitions SHA-256 {features['feast_definitions_sha256']}")
    build = chain.get("feature_build") or {}
    console.print(f"[bold]feature build[/bold] {build.get('built_at')} (inputs fingerprint {build.get('fingerprint')})")
    console.print(f"[bold]curated parts[/bold] {len(chain['curated_parts'])}")
    table = Table(title=f"raw files behind the features ({len(chain['raw_files'])})")
    for column in ("raw file", "SHA-256", "validation report", "outcome"):
        table.add_column(column)
    for entry in chain["raw_files"][:raw_files_shown]:
        table.add_row(entry["raw_path"], entry["sha256"], entry["report_id"] or "-", str(entry["validation_outcome"]))
    console.print(table)
    hidden = len(chain["raw_files"]) - len(chain["raw_files"][:raw_files_shown])
    if hidden:
        console.print(f"  ... and {hidden} more raw files: biomarkers lineage {_reference(chain)} --json")
    code = chain["code"]
    console.print(f"[bold]code[/bold] git {code.get('git_commit')}" + (" (uncommitted changes)" if code.get("git_dirty")
                                                                      else "")
                  + f"; study configuration SHA-256 {code.get('study_config_sha256')}")


def _build_features(config, workers: int, force: bool, engine: str = "local",
                    lake_versions: dict[str, int] | None = None):
    from rich.progress import Progress

    from adapters.spark import SparkNotInstalledError
    from pipelines.build.local import SubjectsFailedError, build_features

    where = f" on Spark ({config.spark.master})" if engine == "spark" else ""
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"building features{where}", total=None)
            summary = build_features(config, config.feature_tables_root, engine=engine, workers=workers, force=force,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total),
                                     lake_versions=lake_versions)
    except (SparkNotInstalledError, SubjectsFailedError) as error:
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True, highlight=False)
        if isinstance(error, SubjectsFailedError):
            console.print("`biomarkers --verbose build-features ...` logs each subject's traceback")
        raise typer.Exit(1) from None
    if summary.skipped:
        console.print("feature tables are up to date (no curated data or feature code changed)")
    table = Table(title=f"Feature tables of study {config.study_id}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in sorted(summary.tables.items()):
        table.add_row(name, f"{rows:,}")
    console.print(table)
    for name, reason in summary.rejected.items():
        console.print(f"[red]not published: {name}[/red]: {reason}", soft_wrap=True)
    if summary.rejected:
        raise typer.Exit(1)
    return summary


def _materialize(config, yaml_file: Path | None = None):
    from adapters.feast_repo import apply_repo, materialize, project_name

    repo = config.feast_repo(yaml_file)
    with console.status("feast apply"):
        registered = apply_repo(repo, config.feature_tables_root)
    console.print(f"registered {len(registered)} Feast objects in project {project_name(config.study_id)} ({repo})")
    # Feast prints a progress block per view; the summary below says what was done.
    with console.status("materializing into the online store"), contextlib.redirect_stdout(io.StringIO()):
        done = materialize(repo)
    for view, span in sorted(done.items()):
        console.print(f"  {view}: {span}")


def _show_online(config, subject_ids: list[str]) -> None:
    from adapters.feast_repo import online_features

    frame = online_features(subject_ids, service="endpoint_v1", repo_path=config.feast_repo())
    table = Table(title="Online features (feature service endpoint_v1), read back through Feast")
    table.add_column("feature")
    for subject_id in frame["subject_id"]:
        table.add_column(str(subject_id), justify="right")
    for column in frame.columns:
        if column != "subject_id":
            table.add_row(column, *(_cell(value) for value in frame[column]))
    console.print(table)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _generate(out_dir: Path, seed: int, subjects: int, days: int):
    from rich.progress import Progress

    from pipelines.demo.generate import generate_demo, progress_total

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("generating the demo study", total=progress_total(subjects))
        return generate_demo(out_dir, seed=seed, n_subjects=subjects, days=days,
                             progress=lambda step, advance: bar.update(task, advance=advance,
                                                                       description=f"generating: {step}"))


def _load(study: Path, data_root: Path | None):
    from pipelines.config import ConfigError, load_study

    if data_root is None and study == DEMO_STUDY:
        data_root = DEMO_DATA  # the packaged demo study's data is where `biomarkers demo` generates it
    try:
        return load_study(study, data_root)
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


def _ingest(config, workers: int, retry_failed: bool = False):
    from rich.progress import Progress

    from pipelines.config import ConfigError
    from pipelines.ingest.run import ingest_study

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"ingesting {config.study_id}", total=None)

        def advance(total, outcome):
            bar.update(task, total=total, advance=0 if outcome is None else 1,
                       description=f"ingesting {outcome.path}" if outcome else f"ingesting {config.study_id}")

        try:
            return ingest_study(config, workers=workers, progress=advance, retry_failed=retry_failed)
        except ConfigError as error:  # e.g. an unreadable enrollment file: nothing can be checked
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from None


def _print_summary(config, summary) -> None:
    table = Table(title=f"Ingestion of study {config.study_id}: this run")
    for column in ("source", "curated", "quarantined", "failed", "pending", "busy", "unchanged", "rows curated"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, counts in sorted(summary.by_source().items()):
        table.add_row(source, str(counts["curated"]), str(counts["quarantined"]), str(counts["failed"]),
                      str(counts["pending"]), str(counts["busy"]), str(counts["skipped"]), f"{counts['rows']:,}")
    console.print(table)
    problems = [o for o in summary.outcomes if o.status in ("quarantined", "failed")]
    if problems:
        console.print("[bold]Quarantined or failed files[/bold] (full reports under the quarantine folder):")
        for outcome in problems:
            console.print(f"  [yellow]{outcome.path}[/yellow] ({outcome.status})\n      {outcome.reason}",
                          soft_wrap=True, markup=True, highlight=False)
    processed, busy = len(summary.processed()), [o for o in summary.outcomes if o.status == "busy"]
    pending = summary.pending()
    unchanged = len(summary.outcomes) - processed - len(busy) - len(pending)
    console.print(f"{processed} files processed, {unchanged} unchanged since the last run.")
    if pending:
        console.print(f"[yellow]{len(pending)} files wait for their subject's enrollment[/yellow] (pending, not "
                      "quarantined; every run checks them again):")
        for outcome in pending:
            console.print(f"  {outcome.path}\n      {outcome.reason}", soft_wrap=True, markup=False, highlight=False)
    if busy:
        console.print(f"[yellow]{len(busy)} files are busy: another live ingest run holds them[/yellow] "
                      "(this run did not process them; run again when it is done).")
    if summary.unprocessed():
        console.print(f"exit status {INGEST_UNPROCESSED_EXIT}: files were left busy or failed.")
    if summary.quality_page:
        console.print(f"data quality page (every file, its outcome and evidence): {summary.quality_page}")
    console.print(f"curated lake: {config.lake_root}")
    console.print(f"quarantine and reports: {config.quarantine_root}")
    if summary.data_docs:
        console.print(f"Great Expectations Data Docs: {summary.data_docs}")


if __name__ == "__main__":
    app()
