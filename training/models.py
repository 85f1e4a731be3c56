"""Model factories (endpoint classifiers and anomaly detectors as sklearn Pipelines) and feature importance.

Every model is a ``Pipeline`` whose last step is named ``"model"``; missing biomarker values
are imputed inside it (median, plus a missing-indicator column for endpoint models) so the
same object scores batch and online rows with gaps. Nothing here reads files or global state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from training.torch_models import TorchAutoencoderDetector, TorchMLPClassifier

__all__ = [
    "ANOMALY_MODEL_NAMES",
    "ENDPOINT_MODEL_NAMES",
    "build_anomaly_model",
    "build_endpoint_model",
    "feature_importance",
]

_ENDPOINT_ESTIMATORS = {
    # max_iter well above lbfgs's default 100, which stops early on many correlated biomarkers
    "logistic_regression": (LogisticRegression, {"max_iter": 5000}, True),
    # handles NaN natively (learns a branch for missing values) and needs no scaling
    "hist_gradient_boosting": (HistGradientBoostingClassifier, {}, False),
    "torch_mlp": (TorchMLPClassifier, {}, True),
}
_ANOMALY_ESTIMATORS = {
    "isolation_forest": (IsolationForest, {}),
    "torch_autoencoder": (TorchAutoencoderDetector, {}),
}

ENDPOINT_MODEL_NAMES: tuple[str, ...] = tuple(_ENDPOINT_ESTIMATORS)
"""Names accepted by ``build_endpoint_model``."""

ANOMALY_MODEL_NAMES: tuple[str, ...] = tuple(_ANOMALY_ESTIMATORS)
"""Names accepted by ``build_anomaly_model``."""


def _estimator(kind: str, name: str, estimator_class, defaults: dict, params, seed):
    params = dict(params or {})
    if "random_state" in params:
        raise ValueError(f"{kind} model {name!r}: pass the seed argument instead of params['random_state']")
    valid = set(estimator_class().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(
            f"{kind} model {name!r} ({estimator_class.__name__}) has no parameter(s) {unknown}; "
            f"valid: {sorted(valid - {'random_state'})}"
        )
    return estimator_class(**{**defaults, **params, "random_state": seed})


def build_endpoint_model(name: str, params: Mapping | None = None, seed: int = 0) -> Pipeline:
    """An unfitted endpoint classifier pipeline.

    Parameters
    ----------
    name : {"logistic_regression", "hist_gradient_boosting", "torch_mlp"}
        The estimator. Logistic regression and the MLP get ``SimpleImputer(strategy="median",
        add_indicator=True)`` and ``StandardScaler`` before them; gradient boosting takes NaN
        as is and is scale-free.
    params : mapping, optional
        Estimator parameters (e.g. ``{"C": 0.1}``), overriding the defaults here.
    seed : int, default 0
        The estimator's ``random_state``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``impute``, ``scale`` (when used) and ``model``.

    Raises
    ------
    ValueError
        For an unknown name (the known names are listed), an unknown parameter (the valid
        ones are listed), or ``random_state`` in ``params``.
    """
    if name not in _ENDPOINT_ESTIMATORS:
        raise ValueError(f"unknown endpoint model {name!r}; known: {', '.join(ENDPOINT_MODEL_NAMES)}")
    estimator_class, defaults, needs_preprocessing = _ENDPOINT_ESTIMATORS[name]
    model = _estimator("endpoint", name, estimator_class, defaults, params, seed)
    steps = []
    if needs_preprocessing:
        steps += [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
    return Pipeline([*steps, ("model", model)])


def build_anomaly_model(name: str, params: Mapping | None = None, seed: int = 0) -> Pipeline:
    """An unfitted anomaly-detector pipeline: median imputation, standardization, detector.

    The imputer adds no missing-indicator columns here: device gaps are common and are not by
    themselves an anomaly of the physiology, and an indicator would make every missingness
    pattern unseen in training look anomalous.

    Parameters
    ----------
    name : {"isolation_forest", "torch_autoencoder"}
        The detector; both follow sklearn's outlier API (``score_samples`` higher = more
        normal, ``predict`` +1 normal / -1 anomaly).
    params : mapping, optional
        Detector parameters, e.g. ``{"n_estimators": 200}`` or ``{"encoding_dim": 3}``.
    seed : int, default 0
        The detector's ``random_state``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``impute``, ``scale`` and ``model``.

    Raises
    ------
    ValueError
        For an unknown name or parameter (the valid ones are listed).
    """
    if name not in _ANOMALY_ESTIMATORS:
        raise ValueError(f"unknown anomaly model {name!r}; known: {', '.join(ANOMALY_MODEL_NAMES)}")
    estimator_class, defaults = _ANOMALY_ESTIMATORS[name]
    model = _estimator("anomaly", name, estimator_class, defaults, params, seed)
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()), ("model", model)])


def feature_importance(model, X, y, *, seed: int, n_repeats: int = 10) -> pd.DataFrame:
    """Permutation importance of each input column for a fitted endpoint model (drop in AUROC).

    Each column of ``X`` is shuffled ``n_repeats`` times and the decrease in ROC AUC is
    recorded. Use held-out data: on training data it measures what the model memorized.
    Correlated biomarkers share importance (shuffling one leaves its twin), so a low value
    does not prove a feature useless.

    Parameters
    ----------
    model : fitted classifier or Pipeline with ``predict_proba``
    X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Raw model inputs (before imputation); columns named ``x0, x1, ...`` for an array.
    y : array-like of shape (n_samples,)
        Binary outcomes with both classes.
    seed : int
        Seed of the shuffles.
    n_repeats : int, default 10
        Shuffles per column.

    Returns
    -------
    pandas.DataFrame of shape (n_features, 3)
        ``feature``, ``importance_mean`` and ``importance_std`` (AUROC units), sorted by
        ``importance_mean`` descending.

    References
    ----------
    Breiman L. Random forests. Machine Learning 2001;45:5-32 (permutation importance).
    """
    check_is_fitted(model)
    if np.unique(np.asarray(y)).size < 2:
        raise ValueError("feature_importance needs both outcome classes in y: ROC AUC is undefined otherwise")
    names = list(map(str, X.columns)) if isinstance(X, pd.DataFrame) else [f"x{i}" for i in range(np.shape(X)[1])]
    result = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=n_repeats, random_state=seed)
    table = pd.DataFrame(
        {"feature": names, "importance_mean": result.importances_mean, "importance_std": result.importances_std}
    )
    return table.sort_values("importance_mean", ascending=False, kind="mergesort").reset_index(drop=True)
