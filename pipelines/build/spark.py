"""The Spark engine: per-subject work as Spark tasks, for studies that outgrow one machine.

``build_features(..., engine="spark")`` hands its per-subject function to ``map_subjects``, which
runs it once per subject inside Spark's Python workers (``mapInPandas`` over a DataFrame of the
subjects, one partition each) and brings every subject's feature rows back to the driver as
Arrow IPC bytes. What happens before (the fingerprint) and after (checks, publication) is the
local engine's code: only where the subjects are computed differs.

pyspark is an optional extra (``pip install 'digital-biomarkers[spark]'``); importing this module
does not need it, so the platform runs without it and ``--engine spark`` says how to install it.

On a cluster the executors run the same function, so they need this project installed in the
Python that ``spark.pyspark.python`` (or ``PYSPARK_PYTHON``) names, and read access to the lake.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import pandas as pd

from adapters.spark import spark_session
from pipelines.build.subjects import SubjectResult
from pipelines.config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# One row per subject going in: its id and its enrollment row (Arrow IPC).
TASK_SCHEMA = "subject_id string, subject_row binary"
# Going out, one row per (subject, table): the table's rows as Arrow IPC. A subject that failed
# has one row with its traceback in `error`; one with no rows in any table, one row of nulls.
RESULT_SCHEMA = "subject_id string, table string, rows binary, error string"
RESULT_COLUMNS = ["subject_id", "table", "rows", "error"]

POLL_SECONDS = 0.5


def map_subjects(
    compute: Callable[[str, pd.DataFrame], SubjectResult],
    subject_rows: dict[str, pd.DataFrame],
    *,
    session: SparkSession | None = None,
    settings: SparkConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SubjectResult]:
    """Run ``compute(subject_id, subject_row)`` for every subject as a Spark task.

    Parameters
    ----------
    compute : the per-subject function; it and what it binds (the study configuration) are
        shipped to the workers with cloudpickle, so it must be importable there. It reports a
        failure in its result rather than raising, so that every failed subject is named.
    subject_rows : subject id -> that subject's enrollment row (a one-row frame).
    session : the session to run on; default: the active one, or one started from
        ``settings`` and stopped when the subjects are done.
    settings : the study's Spark settings, used when no session is given or active.
    progress : called with ``(done, total)`` subjects while the job runs.

    Returns
    -------
    One ``SubjectResult`` per subject, in the order of ``subject_rows``.
    """
    from pyspark.sql import SparkSession

    if session is None:
        session = SparkSession.getActiveSession()
    owned = session is None  # started here, so stopped here; a session of the caller's stays up
    if owned:
        session = spark_session(settings or SparkConfig())
    try:
        # One partition per subject: subjects differ widely in data, and small tasks balance
        # them across executors (Spark schedules a task in milliseconds; a subject takes seconds).
        tasks = session.sparkContext.parallelize(
            [(subject_id, _to_ipc(row)) for subject_id, row in subject_rows.items()],
            numSlices=max(1, len(subject_rows)),
        )
        frame = session.createDataFrame(tasks, TASK_SCHEMA).mapInPandas(
            functools.partial(_compute_partition, compute), RESULT_SCHEMA
        )
        rows = _collect(frame, len(subject_rows), progress)
    finally:
        if owned:
            session.stop()
    by_subject: dict[str, list] = {subject_id: [] for subject_id in subject_rows}
    for row in rows:
        by_subject[row.subject_id].append(row)
    return [_decode(subject_id, subject) for subject_id, subject in by_subject.items()]


def _compute_partition(compute, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The Spark task (in a Python worker): compute each subject of the partition, encode its tables."""
    for batch in batches:
        for subject_id, row in zip(batch["subject_id"], batch["subject_row"], strict=True):
            result = compute(subject_id, _from_ipc(row))
            if result.error is not None:
                encoded = [(subject_id, None, None, result.error)]
            else:
                encoded = [(subject_id, name, _to_ipc(table), None) for name, table in result.tables.items()]
            yield pd.DataFrame(encoded or [(subject_id, None, None, None)], columns=RESULT_COLUMNS)


def _decode(subject_id: str, rows: list) -> SubjectResult:
    errors = [row.error for row in rows if row.error is not None]
    if errors:
        return SubjectResult(subject_id, error=errors[0])
    return SubjectResult(subject_id, {row.table: _from_ipc(row.rows) for row in rows if row.table is not None})


def _collect(frame: DataFrame, total: int, progress: Callable[[int, int], None] | None) -> list:
    """Collect ``frame``, reporting its finished tasks (subjects) to ``progress`` while it runs.

    The job runs in a thread of its own under a job group, so that this thread can poll Spark's
    status tracker and cancel the job if interrupted. ``toLocalIterator`` would report as results
    arrive, but it runs one job per partition in turn: no parallelism past two partitions.
    """
    context = frame.sparkSession.sparkContext
    group = f"biomarkers-build-{uuid.uuid4().hex}"

    def run() -> list:
        # Job groups are per thread (pyspark pins Python threads to JVM threads): set it here.
        context.setJobGroup(group, "biomarker feature build: one task per subject", interruptOnCancel=True)
        return frame.collect()

    with ThreadPoolExecutor(1, thread_name_prefix="spark-collect") as pool:
        job = pool.submit(run)
        try:
            while not wait([job], timeout=POLL_SECONDS).done:
                if progress:
                    progress(_finished_tasks(context, group, total), total)
        except BaseException:  # Ctrl-C: leave no job running on the cluster
            context.cancelJobGroup(group)
            raise
        rows = job.result()
    if progress:
        progress(total, total)
    return rows


def _finished_tasks(context, group: str, total: int) -> int:
    tracker = context.statusTracker()
    done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job else ():
            stage = tracker.getStageInfo(stage_id)
            done += stage.numCompletedTasks if stage else 0
    return min(done, total)


def _to_ipc(frame: pd.DataFrame) -> bytes:
    """A frame as an Arrow IPC stream; its pandas metadata brings the same dtypes back."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pd.DataFrame:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all().to_pandas()


SPARK_TYPES = {"float64": "double", "bool": "boolean"}
"""The Spark SQL type of each dtype of a task's score columns (``training.tasks.Task.score_columns``)."""


def score_in_spark(job, model, feature_names: list[str], task: str) -> pd.DataFrame:
    """Score the rows of a point-in-time retrieval of Feast's Spark store in Spark tasks.

    ``job``: the ``SparkRetrievalJob`` of ``FeatureStore.get_historical_features``. Its rows stay a
    Spark DataFrame (``to_spark_df``); each task adds the job's on-demand features, which Feast
    computes only when it collects, with the views' own functions (``transform_arrow``), then
    runs the shared scoring function (``training.scoring.score``) with ``model`` on its rows.
    Only the scores come back to the driver: ``subject_id`` and the task's score columns
    (``training.tasks``: ``score`` and, for an anomaly model, ``anomaly``), in no set order.
    """
    from training.tasks import task_named

    columns = task_named(task).score_columns
    schema = ", ".join(["subject_id string", *(f"{name} {SPARK_TYPES[dtype]}" for name, dtype in columns)])
    frame = job.to_spark_df()
    on_demand = list(job.on_demand_feature_views)
    return frame.mapInArrow(functools.partial(_score_batches, model, list(feature_names), task, on_demand),
                            schema).toPandas()


def _score_batches(model, feature_names: list[str], task: str, on_demand: list, batches) -> Iterator:
    """The scoring task (in a Python worker): Arrow record batches of feature rows in, of scores out."""
    import pyarrow as pa

    from training.scoring import score

    for batch in batches:
        table = pa.Table.from_batches([batch])
        for view in on_demand:
            derived = view.transform_arrow(table, False)
            for name in derived.column_names:
                if name not in table.column_names:
                    table = table.append_column(name, derived.column(name))
        rows = table.to_pandas()
        scored = score(model, rows, feature_names, task).reset_index(drop=True)
        scored.insert(0, "subject_id", rows["subject_id"].astype(str).to_numpy())
        yield from pa.Table.from_pandas(scored, preserve_index=False).to_batches()
