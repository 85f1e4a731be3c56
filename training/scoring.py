"""The one scoring function: batch cohorts, the HTTP API and the event stream all call it.

Pure: a fitted model (the scikit-learn pipeline a training run logged) and a frame of features
in, scores out. No I/O; the callers fetch features (point-in-time for a cohort, online for a
request) and the model (from the registry).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from training.tasks import task_named


def score(model, features: pd.DataFrame, feature_names: Sequence[str], task: str) -> pd.DataFrame:
    """Score rows of features with a trained model.

    Parameters
    ----------
    model : fitted scikit-learn pipeline
        An endpoint classifier (``predict_proba``) or an anomaly detector (``score_samples`` and
        ``predict``, its threshold set at training).
    features : DataFrame of shape (n_rows, >= n_features)
        One row per subject (or window); may hold other columns. Missing values are allowed
        (the pipeline imputes them). Not modified.
    feature_names : sequence of str
        The model's inputs, in the order it was trained on.
    task : str
        A task of the registry (``training.tasks.TASK_NAMES``: endpoint, anomaly); its entry says
        which columns come back and how they are computed.

    Returns
    -------
    DataFrame of n_rows
        The task's ``score_columns``, with the index of ``features``. ``score``: for an
        endpoint model the predicted probability of the outcome, in [0, 1]; for an anomaly
        model the anomaly score (higher = more anomalous), with ``anomaly`` (bool) true where
        it is above the threshold chosen at training.

    Raises
    ------
    ValueError
        If a feature is missing or not numeric, or the task is unknown
        (``training.tasks.UnknownTaskError``, which lists the known tasks).
    """
    spec = task_named(task)
    missing = [name for name in feature_names if name not in features.columns]
    if missing:
        raise ValueError(f"the features {missing} are missing; the model needs {list(feature_names)}")
    try:
        x = features[list(feature_names)].astype("float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"every feature must be numeric: {error}") from error
    return pd.DataFrame(spec.scores(model, x), index=features.index)
