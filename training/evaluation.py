"""Fit a task's model on the train subjects and evaluate it on the test subjects.

Pure: a training frame, its feature names and an :class:`EvaluationSettings` in, an
:class:`Evaluation` out (the fitted model, the split, metrics, curves). The pipeline builds the
frame (Feast's point-in-time join), logs the result to MLflow and registers the model; the task
registry (``training.tasks``) picks which evaluation a task runs and whether its split is
stratified (``training.tasks.fit_and_evaluate``). Any refusal of the data is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["Evaluation", "EvaluationSettings", "evaluate_anomaly", "evaluate_endpoint", "split_by_subject"]


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings:
    """How one model is fitted and evaluated: plain values, read from a study's model settings.

    Parameters
    ----------
    estimator : str
        A name of ``training.models`` (``ENDPOINT_MODEL_NAMES`` or ``ANOMALY_MODEL_NAMES``).
    params : mapping
        The estimator's parameters.
    seed : int
        Seed of the split, the estimator, the bootstrap and the permutation importance.
    test_size : float
        Share of subjects in the test set, in (0, 1); unused when ``holdout_site`` is set.
    holdout_site : str or None
        Test on this site's subjects (column ``site`` of the subject attributes), train on the others.
    bootstrap_samples : int
        Bootstrap replicates of the confidence intervals (subgroups use at most 200).
    subgroups : tuple of str
        Subject attribute columns to report endpoint metrics per value of (absent ones skipped).
    subgroup_min_samples : int
        Subgroups with fewer rows are reported but not judged.
    threshold_method : {"quantile", "max_f1"}
        How an anomaly model's alarm threshold is chosen (``training.metrics.choose_threshold``).
    threshold_quantile : float
        For ``quantile``: the share of training anomaly scores below the threshold.
    label_column : str, default "label"
        The outcome column: 0 or 1; -1 in every row of an anomaly training set without labels.
    """

    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int
    test_size: float
    holdout_site: str | None = None
    bootstrap_samples: int
    subgroups: tuple[str, ...] = ()
    subgroup_min_samples: int
    threshold_method: Literal["quantile", "max_f1"]
    threshold_quantile: float
    label_column: str = "label"


@dataclass
class Evaluation:
    """A fitted model and how it did on the test subjects.

    Attributes
    ----------
    model : fitted scikit-learn Pipeline
    train_index, test_index : ndarray of int
        Row positions of the training frame in each side of the split (no subject in both).
    metrics : dict of str to float
        ``training.metrics.endpoint_metrics`` (with bootstrap intervals) for an endpoint model;
        ``threshold``, ``flagged_share_test`` and, with labels, precision, recall and F1 for an
        anomaly model.
    subgroups : DataFrame or None
        ``training.metrics.subgroup_metrics`` of an endpoint model.
    curves : dict of str to DataFrame
        ``roc`` (fpr, tpr) and ``calibration`` of an endpoint model; ``scores`` (score, label) of
        an anomaly model's test rows.
    importance : DataFrame or None
        Permutation importance of an endpoint model on the test rows (``training.models.feature_importance``).
    threshold : dict or None
        How an anomaly model's threshold was chosen (``training.metrics.choose_threshold``).
    """

    model: object
    train_index: np.ndarray
    test_index: np.ndarray
    metrics: dict[str, float]
    subgroups: pd.DataFrame | None
    curves: dict[str, pd.DataFrame]
    importance: pd.DataFrame | None
    threshold: dict | None = None


def split_by_subject(frame: pd.DataFrame, settings: EvaluationSettings, *,
                     stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions, no subject on both sides: a held-out site, or a grouped split.

    ``stratify`` keeps each outcome's share of subjects alike on both sides (endpoint labels).
    """
    from training.splits import grouped_train_test_split, site_holdout_split

    if settings.holdout_site is not None:
        return site_holdout_split(frame, holdout_site=settings.holdout_site)
    return grouped_train_test_split(frame, label_column=settings.label_column, test_size=settings.test_size,
                                    seed=settings.seed, stratify=stratify)


def evaluate_endpoint(frame: pd.DataFrame, features: list[str], train_index: np.ndarray, test_index: np.ndarray,
                      settings: EvaluationSettings) -> Evaluation:
    """Fit an endpoint classifier on the train rows; discrimination, calibration, subgroups and
    feature importance on the test rows.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, >= n_features + 2)
        ``subject_id``, the label column, the features and any subject attribute columns.
    features : list of str
        The model's inputs, in order.
    train_index, test_index : ndarray of int
        Row positions of each side of the split.
    settings : EvaluationSettings
    """
    from sklearn.metrics import roc_curve

    from training.metrics import endpoint_metrics, reliability_curve, subgroup_metrics
    from training.models import build_endpoint_model, feature_importance

    x = frame[features]
    y = frame[settings.label_column].to_numpy()
    estimator = build_endpoint_model(settings.estimator, settings.params, seed=settings.seed)
    estimator.fit(x.iloc[train_index], y[train_index])
    probability = estimator.predict_proba(x.iloc[test_index])[:, 1]
    y_test = y[test_index]
    metrics = endpoint_metrics(y_test, probability, groups=frame["subject_id"].to_numpy()[test_index],
                               n_boot=settings.bootstrap_samples, seed=settings.seed)
    scored = frame.iloc[test_index].assign(probability=probability)
    subgroups = subgroup_metrics(scored, label_column=settings.label_column, probability_column="probability",
                                 subgroup_columns=[c for c in settings.subgroups if c in scored.columns],
                                 min_samples=settings.subgroup_min_samples,
                                 n_boot=min(200, settings.bootstrap_samples), seed=settings.seed)
    fpr, tpr, _ = roc_curve(y_test, probability)
    importance = feature_importance(estimator, x.iloc[test_index], y_test, seed=settings.seed, n_repeats=5)
    return Evaluation(estimator, train_index, test_index, metrics, subgroups,
                      {"roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
                       "calibration": reliability_curve(y_test, probability)}, importance)


def evaluate_anomaly(frame: pd.DataFrame, features: list[str], train_index: np.ndarray, test_index: np.ndarray,
                     settings: EvaluationSettings) -> Evaluation:
    """Fit an anomaly detector on the train rows (labels unused), choose its threshold, and
    measure the flagged share and, where every row is labelled, precision, recall and F1 on the
    test rows.

    Parameters are those of :func:`evaluate_endpoint`; the label column holds -1 in every row
    without labels, which method ``max_f1`` refuses.
    """
    from training.metrics import choose_threshold, flag_anomalies, precision_recall_f1
    from training.models import build_anomaly_model

    x = frame[features]
    estimator = build_anomaly_model(settings.estimator, settings.params, seed=settings.seed)
    estimator.fit(x.iloc[train_index])
    # anomaly score: higher = more anomalous (sklearn's score_samples is higher = more normal)
    train_scores = -estimator.score_samples(x.iloc[train_index])
    test_scores = -estimator.score_samples(x.iloc[test_index])
    y = frame[settings.label_column].to_numpy()
    if settings.threshold_method == "quantile":
        threshold, how = choose_threshold(train_scores, method="quantile", quantile=settings.threshold_quantile)
    else:
        if (y < 0).any():
            raise ValueError("threshold method max_f1 needs labels (set `labels:` to the labelled episodes)")
        threshold, how = choose_threshold(train_scores, method="max_f1", y_true=y[train_index])
    # The detector's own predict() then flags exactly what the chosen threshold flags (-1 where
    # score_samples - offset_ < 0, i.e. anomaly score > threshold): the logged model carries it.
    estimator[-1].offset_ = -float(threshold)
    flagged = flag_anomalies(test_scores, threshold)
    metrics = {"threshold": float(threshold), "flagged_share_test": float(flagged.mean())}
    if (y >= 0).all():
        metrics.update(precision_recall_f1(y[test_index], flagged))
        metrics["labelled_anomalies_test"] = float(y[test_index].sum())
    return Evaluation(estimator, train_index, test_index, metrics, None,
                      {"scores": pd.DataFrame({"score": test_scores, settings.label_column: y[test_index]})},
                      None, how)
