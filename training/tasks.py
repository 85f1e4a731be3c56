"""The task registry: what a model of each task is, declared once and read everywhere.

A study's model names its task (``task: endpoint`` in study.yaml). Everything that differs by
task (the estimators it accepts, whether its split is stratified, how it is evaluated, the method
its logged model predicts with, the columns the scoring function returns, the model card's
intended use) is a field of its :class:`Task` entry in :data:`TASKS`; callers look the entry up
with :func:`task_named` instead of comparing task names. A new task is one more entry.

Pure: no I/O. ``training.scoring.score`` and ``training.model_card`` read it; the pipelines read
it for training, promotion, batch and Spark scoring, the study report and config validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.evaluation import Evaluation, EvaluationSettings, evaluate_anomaly, evaluate_endpoint, split_by_subject
from training.models import ANOMALY_MODEL_NAMES, ENDPOINT_MODEL_NAMES

__all__ = [
    "ANOMALY_TASK",
    "ENDPOINT_TASK",
    "TASKS",
    "TASK_NAMES",
    "Task",
    "UnknownTaskError",
    "fit_and_evaluate",
    "task_named",
]


class UnknownTaskError(ValueError):
    """A task name that is not in the registry; the message lists the known ones."""


@dataclass(frozen=True)
class Task:
    """One kind of model: how it is trained, evaluated, logged, scored and described.

    Attributes
    ----------
    name : str
        The name a study's model gives as its ``task``.
    estimators : tuple of str
        The ``training.models`` estimator names this task accepts.
    stratified : bool
        Whether the subject split keeps each outcome's share alike on both sides.
    needs_both_outcomes : bool
        Whether the model learns from labels, so a training set with one outcome cannot train it.
    subgroup_metrics : bool
        Whether its evaluation reports metrics per subgroup, which promotion judges.
    ranks_risk : bool
        Whether its score is a predicted probability of the endpoint, by which the study report
        ranks subjects and whose discrimination it shows.
    evaluate : callable
        ``(frame, features, train_index, test_index, settings) -> Evaluation``
        (``training.evaluation``): fit on the train rows, evaluate on the test rows.
    predict_method : str
        The estimator method the logged model's pyfunc predicts with (its signature's output).
    score_columns : tuple of (str, str)
        The columns of ``training.scoring.score``'s result, in order, with their dtypes.
    scores : callable
        ``(model, x) -> dict of column name to ndarray of shape (n_rows,)``: the scores of the
        rows of ``x`` (float64 features, in the model's input order), one entry per score column.
    purpose : str
        The model card's intended use.
    card_metrics : tuple of (str, str)
        (label, metric) shown with their confidence intervals on the model card; when empty, the
        card lists every metric as it is.
    """

    name: str
    estimators: tuple[str, ...]
    stratified: bool
    needs_both_outcomes: bool
    subgroup_metrics: bool
    ranks_risk: bool
    evaluate: Callable[..., Evaluation]
    predict_method: str
    score_columns: tuple[tuple[str, str], ...]
    scores: Callable[[object, pd.DataFrame], dict[str, np.ndarray]]
    purpose: str
    card_metrics: tuple[tuple[str, str], ...] = ()


def endpoint_scores(model, x: pd.DataFrame) -> dict[str, np.ndarray]:
    """``score``: the predicted probability of the outcome, in [0, 1]."""
    return {"score": model.predict_proba(x)[:, 1]}


def anomaly_scores(model, x: pd.DataFrame) -> dict[str, np.ndarray]:
    """``score``: the anomaly score (higher = more anomalous); ``anomaly``: above the threshold
    chosen at training (the detector's ``predict`` is -1)."""
    return {"score": -np.asarray(model.score_samples(x), dtype=np.float64),
            "anomaly": np.asarray(model.predict(x)) == -1}


ENDPOINT_TASK = Task(
    name="endpoint",
    estimators=ENDPOINT_MODEL_NAMES,
    stratified=True,
    needs_both_outcomes=True,
    subgroup_metrics=True,
    ranks_risk=True,
    evaluate=evaluate_endpoint,
    predict_method="predict_proba",
    score_columns=(("score", "float64"),),
    scores=endpoint_scores,
    purpose="Ranks study subjects by their risk of the study's clinical endpoint within its horizon, from "
            "wearable, vital-sign and laboratory biomarkers, to prioritize review by the study team. It "
            "supports, and never replaces, clinical judgement; it is not a diagnostic device.",
    card_metrics=(("AUROC", "auroc"), ("AUPRC", "auprc"), ("Brier score", "brier"),
                  ("Expected calibration error (10 bins)", "calibration_error")),
)
"""Clinical endpoint prediction: a classifier of the outcome within the horizon."""

ANOMALY_TASK = Task(
    name="anomaly",
    estimators=ANOMALY_MODEL_NAMES,
    stratified=False,
    needs_both_outcomes=False,
    subgroup_metrics=False,
    ranks_risk=False,
    evaluate=evaluate_anomaly,
    # MLflow's sklearn pyfunc offers no score_samples; predict gives +1 normal, -1 anomaly
    predict_method="predict",
    score_columns=(("score", "float64"), ("anomaly", "bool")),
    scores=anomaly_scores,
    purpose="Flags subject-days whose biomarker vector is unusual for the cohort (sensor faults, data "
            "problems or true physiological change), for review by the study's data managers.",
)
"""Anomaly detection: a detector fitted without labels, with an alarm threshold; labels only evaluate it."""

TASKS: dict[str, Task] = {task.name: task for task in (ENDPOINT_TASK, ANOMALY_TASK)}
"""Every task by name."""

TASK_NAMES: tuple[str, ...] = tuple(TASKS)
"""The known task names, in registry order."""


def task_named(name: str) -> Task:
    """The registry entry of a task.

    Raises
    ------
    UnknownTaskError
        If ``name`` is not a known task; the message lists the known ones.
    """
    try:
        return TASKS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}") from None


def fit_and_evaluate(task: str, frame: pd.DataFrame, features: list[str], settings: EvaluationSettings,
                     attributes: pd.DataFrame | None = None) -> Evaluation:
    """Split a training frame by subject, fit the task's model and evaluate it.

    Parameters
    ----------
    task : str
        A name of :data:`TASKS`.
    frame : DataFrame of shape (n_rows, >= n_features + 2)
        One row per entity row: ``subject_id``, the label column (``settings.label_column``) and
        the features. Not modified.
    features : list of str
        The model's inputs, in order.
    settings : EvaluationSettings
    attributes : DataFrame, optional
        Subject attributes (``subject_id`` and e.g. ``site``, ``sex``, ``age_band``), joined to the
        rows for a site hold-out and subgroup metrics; never model inputs.

    Returns
    -------
    Evaluation

    Raises
    ------
    UnknownTaskError
        For an unknown task.
    ValueError
        If the split or the estimator refuses the data or the settings.
    """
    spec = task_named(task)
    if attributes is not None:
        frame = frame.merge(attributes, on="subject_id", how="left")
    train_index, test_index = split_by_subject(frame, settings, stratify=spec.stratified)
    return spec.evaluate(frame, features, train_index, test_index, settings)
