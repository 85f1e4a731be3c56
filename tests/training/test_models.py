"""Model factories and permutation feature importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression

from training.models import (
    ANOMALY_MODEL_NAMES,
    ENDPOINT_MODEL_NAMES,
    build_anomaly_model,
    build_endpoint_model,
    feature_importance,
)
from training.torch_models import TorchAutoencoderDetector, TorchMLPClassifier

FAST = {
    "torch_mlp": {"max_epochs": 10, "learning_rate": 3e-2},
    "torch_autoencoder": {"encoding_dim": 2, "max_epochs": 10},
    "isolation_forest": {"n_estimators": 20},
}


@pytest.fixture(scope="module")
def biomarkers():
    """Only the first biomarker carries the endpoint; ~10% of values are missing (device gaps)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        rng.normal(size=(200, 4)),
        columns=["heart_rate_mean_1d_bpm", "steps_sum_1d_count", "rmssd_night_ms", "creatinine_last_mg_dl"],
    )
    y = (X["heart_rate_mean_1d_bpm"] + 0.3 * rng.normal(size=200) > 0).astype(int).to_numpy()
    return X.mask(rng.uniform(size=X.shape) < 0.1), y


@pytest.mark.parametrize(
    ("name", "estimator_class", "steps"),
    [
        ("logistic_regression", LogisticRegression, ["impute", "scale", "model"]),
        ("hist_gradient_boosting", HistGradientBoostingClassifier, ["model"]),
        ("torch_mlp", TorchMLPClassifier, ["impute", "scale", "model"]),
    ],
)
def test_endpoint_models_fit_rows_with_missing_values(biomarkers, name, estimator_class, steps):
    X, y = biomarkers
    model = build_endpoint_model(name, FAST.get(name), seed=7)
    assert list(model.named_steps) == steps
    assert isinstance(model[-1], estimator_class) and model[-1].random_state == 7
    if "impute" in steps:
        imputer = model.named_steps["impute"]
        assert isinstance(imputer, SimpleImputer) and imputer.strategy == "median" and imputer.add_indicator
    proba = model.fit(X, y).predict_proba(X)
    assert proba.shape == (200, 2) and np.isfinite(proba).all()


def test_endpoint_model_params_override_defaults():
    model = build_endpoint_model("logistic_regression", {"C": 0.1}, seed=0)
    assert (model[-1].C, model[-1].max_iter) == (0.1, 5000)
    assert build_endpoint_model("logistic_regression", seed=0)[-1].C == 1.0


@pytest.mark.parametrize(
    ("name", "estimator_class"),
    [("isolation_forest", IsolationForest), ("torch_autoencoder", TorchAutoencoderDetector)],
)
def test_anomaly_models_fit_rows_with_missing_values(biomarkers, name, estimator_class):
    X, _ = biomarkers
    model = build_anomaly_model(name, FAST[name], seed=3)
    assert list(model.named_steps) == ["impute", "scale", "model"]
    assert isinstance(model[-1], estimator_class) and model[-1].random_state == 3
    assert not model.named_steps["impute"].add_indicator
    model.fit(X)
    assert set(np.unique(model.predict(X))) <= {-1, 1}
    assert model.score_samples(X).shape == (200,)


def test_factories_reject_unknown_names_and_parameters():
    known = "logistic_regression, hist_gradient_boosting, torch_mlp"
    with pytest.raises(ValueError, match=f"unknown endpoint model 'svm'; known: {known}"):
        build_endpoint_model("svm", seed=0)
    with pytest.raises(ValueError, match="unknown anomaly model 'lof'; known: isolation_forest, torch_autoencoder"):
        build_anomaly_model("lof", seed=0)
    no_such = r"'torch_mlp' \(TorchMLPClassifier\) has no parameter\(s\) \['epochs'\]; valid: .*'max_epochs'"
    with pytest.raises(ValueError, match=no_such):
        build_endpoint_model("torch_mlp", {"epochs": 3}, seed=0)
    with pytest.raises(ValueError, match="pass the seed argument instead of params"):
        build_anomaly_model("isolation_forest", {"random_state": 1}, seed=0)
    assert ENDPOINT_MODEL_NAMES == ("logistic_regression", "hist_gradient_boosting", "torch_mlp")
    assert ANOMALY_MODEL_NAMES == ("isolation_forest", "torch_autoencoder")


def test_feature_importance_ranks_the_informative_biomarker_first(biomarkers):
    X, y = biomarkers
    model = build_endpoint_model("logistic_regression", seed=0).fit(X, y)
    table = feature_importance(model, X, y, seed=0, n_repeats=3)
    assert list(table.columns) == ["feature", "importance_mean", "importance_std"]
    assert table["feature"].iloc[0] == "heart_rate_mean_1d_bpm"
    assert table["importance_mean"].iloc[0] > 0.2
    assert table["importance_mean"].is_monotonic_decreasing
    assert table.equals(feature_importance(model, X, y, seed=0, n_repeats=3))

    array_model = build_endpoint_model("logistic_regression", seed=0).fit(X.to_numpy(), y)
    array_table = feature_importance(array_model, X.to_numpy(), y, seed=0, n_repeats=2)
    assert array_table["feature"].iloc[0] == "x0"
    with pytest.raises(NotFittedError):
        feature_importance(build_endpoint_model("logistic_regression", seed=0), X, y, seed=0)
    with pytest.raises(ValueError, match="needs both outcome classes"):
        feature_importance(model, X, np.zeros(200), seed=0)
