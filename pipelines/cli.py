"""The ``biomarkers`` command: one sub-command per job.

Only Typer and Rich are imported here at start-up; every job imports its heavy libraries
(pandas, Great Expectations, Feast, MLflow, torch) inside its command, so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEMO_STUDY = REPOSITORY_ROOT / "studies" / "demo" / "study.yaml"
DEMO_DATA = REPOSITORY_ROOT / "data" / "demo"
DEMO_MARKER = ".demo-generated.json"  # parameters of the last complete generation in that folder

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
    console.print(f"{len(manifest.broken_files)} deliberately broken files, each meant to be quarantined:")
    for path, check in sorted(manifest.broken_files.items()):
        console.print(f"  {path}  ->  {check}")


@app.command("ingest")
def ingest_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    workers: Annotated[int, typer.Option(help="processes to validate files in parallel")] = 2,
) -> None:
    """Discover, validate and curate a study's new or changed raw files; quarantine bad ones.

    Example: biomarkers ingest studies/demo/study.yaml
    """
    config = _load(study, data_root)
    summary = _ingest(config, workers)
    _print_summary(config, summary)


@app.command("demo")
def demo_command(
    out_dir: Annotated[Path, typer.Argument(help="where the demo study is generated")] = DEMO_DATA,
    seed: Annotated[int, typer.Option(help="random seed of the demo study")] = 7,
    workers: Annotated[int, typer.Option(help="processes to validate files in parallel")] = 2,
) -> None:
    """The main job on embedded defaults: generate the demo study, ingest it, build its features,
    register the Feast repo, materialize and read two subjects' online features back.

    A second run finds the study generated (the generator is deterministic: it would write the
    same bytes) and the files ingested, so it processes nothing.

    Example: biomarkers demo
    """
    marker = out_dir / DEMO_MARKER
    wanted = {"seed": seed, "subjects": 200, "days": 28}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        console.print(f"demo study already generated in {out_dir} (seed {seed}); delete {marker.name} to regenerate")
    else:
        _generate(out_dir, seed, 200, 28)
        marker.write_text(json.dumps(wanted))
    config = _load(DEMO_STUDY, out_dir)
    summary = _ingest(config, workers)
    _print_summary(config, summary)
    _build_features(config, workers, force=False)
    _materialize()
    _show_online(["S0001", "S0002"])


@app.command("build-features")
def build_features_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    workers: Annotated[int, typer.Option(help="processes computing subjects in parallel")] = 2,
    force: Annotated[bool, typer.Option(help="rebuild even when no curated data changed")] = False,
) -> None:
    """Compute every biomarker feature table from the curated lake, one subject per task.

    Example: biomarkers build-features studies/demo/study.yaml
    """
    config = _load(study, data_root)
    _build_features(config, workers, force)


@app.command("materialize")
def materialize_command(
    study: StudyArgument,
    data_root: Annotated[Path | None, typer.Option(help="override the data_root of study.yaml")] = None,
    feature_store_yaml: Annotated[Path | None, typer.Option(
        help="Feast infrastructure to use instead of feature_store.yaml, e.g. "
             "deploy/feature_store.production.yaml (Redis online store, PostgreSQL registry)")] = None,
) -> None:
    """Register the Feast feature repo (feast apply) and load the latest values online, incrementally.

    Example: biomarkers materialize studies/demo/study.yaml
    """
    _load(study, data_root)
    _materialize(feature_store_yaml)


def _build_features(config, workers: int, force: bool):
    from rich.progress import Progress

    from features.definitions import FEATURE_TABLES_DIR
    from pipelines.build_features import build_features

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("building features", total=None)
        summary = build_features(config, FEATURE_TABLES_DIR, workers=workers, force=force,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
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


def _materialize(yaml_file: Path | None = None):
    from pipelines.feature_store import REPOSITORY_ROOT, apply_repo, materialize

    with console.status("feast apply"):
        registered = apply_repo(REPOSITORY_ROOT, yaml_file=yaml_file)
    console.print(f"registered {len(registered)} Feast objects")
    # Feast prints a progress block per view; the summary below says what was done.
    with console.status("materializing into the online store"), contextlib.redirect_stdout(io.StringIO()):
        done = materialize(REPOSITORY_ROOT, yaml_file=yaml_file)
    for view, span in sorted(done.items()):
        console.print(f"  {view}: {span}")


def _show_online(subject_ids: list[str]) -> None:
    from pipelines.feature_store import online_features

    frame = online_features(subject_ids, service="endpoint_v1")
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

    try:
        return load_study(study, data_root)
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


def _ingest(config, workers: int):
    from rich.progress import Progress

    from pipelines.config import ConfigError
    from pipelines.ingest import ingest_study

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"ingesting {config.study_id}", total=None)

        def advance(total, outcome):
            bar.update(task, total=total, advance=0 if outcome is None else 1,
                       description=f"ingesting {outcome.path}" if outcome else f"ingesting {config.study_id}")

        try:
            return ingest_study(config, workers=workers, progress=advance)
        except ConfigError as error:  # e.g. an unreadable enrollment file: nothing can be checked
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from None


def _print_summary(config, summary) -> None:
    table = Table(title=f"Ingestion of study {config.study_id}: this run")
    for column in ("source", "curated", "quarantined", "failed", "unchanged", "rows curated"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, counts in sorted(summary.by_source().items()):
        table.add_row(source, str(counts["curated"]), str(counts["quarantined"]), str(counts["failed"]),
                      str(counts["skipped"] + counts["busy"]), f"{counts['rows']:,}")
    console.print(table)
    problems = [o for o in summary.outcomes if o.status in ("quarantined", "failed")]
    if problems:
        console.print("[bold]Quarantined or failed files[/bold] (full reports under the quarantine folder):")
        for outcome in problems:
            console.print(f"  [yellow]{outcome.path}[/yellow] ({outcome.status})\n      {outcome.reason}",
                          soft_wrap=True, markup=True, highlight=False)
    processed = len(summary.processed())
    console.print(f"{processed} files processed, {len(summary.outcomes) - processed} unchanged since the last run.")
    if summary.quality_page:
        console.print(f"data quality page (every file, its outcome and evidence): {summary.quality_page}")
    console.print(f"curated lake: {config.lake_root}")
    console.print(f"quarantine and reports: {config.quarantine_root}")
    if summary.data_docs:
        console.print(f"Great Expectations Data Docs: {summary.data_docs}")


if __name__ == "__main__":
    app()
