"""PyTorch estimators: sklearn contract, learning, reproducibility, pickling, shipping as a lone file."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.impute import SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import training.torch_models
from training.torch_models import SHIPPED_MODULE_NAME, TorchAutoencoderDetector, TorchMLPClassifier

# few, large steps keep the estimator checks fast; they still reach the accuracy the checks require
FAST_MLP = {"max_epochs": 10, "learning_rate": 3e-2, "batch_size": 256}


@parametrize_with_checks(
    [
        TorchMLPClassifier(random_state=0, **FAST_MLP),
        TorchAutoencoderDetector(encoding_dim=1, max_epochs=5, random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def separable():
    X, y = make_classification(
        n_samples=400, n_features=10, n_informative=4, class_sep=2.0, flip_y=0.0, random_state=0
    )
    X = StandardScaler().fit_transform(X)
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def fitted_mlp(separable):
    X, y, _, _ = separable
    return TorchMLPClassifier(hidden_layer_sizes=(16, 8), max_epochs=40, random_state=0).fit(X, y)


def test_mlp_learns_a_separable_problem(separable, fitted_mlp):
    _, _, X_test, y_test = separable
    proba = fitted_mlp.predict_proba(X_test)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.9
    assert np.array_equal(fitted_mlp.predict(X_test), fitted_mlp.classes_[(proba[:, 1] > 0.5).astype(int)])
    assert np.all(np.diff(fitted_mlp.decision_function(X_test)[np.argsort(proba[:, 1])]) >= 0)
    assert 1 <= fitted_mlp.best_epoch_ <= fitted_mlp.n_iter_ <= 40
    assert len(fitted_mlp.validation_loss_curve_) == len(fitted_mlp.loss_curve_) == fitted_mlp.n_iter_


def test_mlp_is_reproducible_and_leaves_torch_state_alone(separable, fitted_mlp):
    import torch

    X, y, X_test, _ = separable
    rng_state = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    again = TorchMLPClassifier(hidden_layer_sizes=(16, 8), max_epochs=40, random_state=0).fit(X, y)
    assert np.array_equal(again.predict_proba(X_test), fitted_mlp.predict_proba(X_test))
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    other = TorchMLPClassifier(hidden_layer_sizes=(16, 8), max_epochs=40, random_state=1).fit(X, y)
    assert not np.array_equal(other.predict_proba(X_test), fitted_mlp.predict_proba(X_test))


def test_mlp_survives_a_pickle_round_trip(separable, fitted_mlp):
    _, _, X_test, _ = separable
    restored = pickle.loads(pickle.dumps(fitted_mlp))
    assert np.array_equal(restored.predict_proba(X_test), fitted_mlp.predict_proba(X_test))
    assert restored.get_params() == fitted_mlp.get_params()


def test_mlp_string_labels_and_feature_names():
    X, y = make_classification(n_samples=60, n_features=3, n_informative=2, n_redundant=0, random_state=1)
    frame = pd.DataFrame(X, columns=["heart_rate_mean_1d_bpm", "steps_sum_1d_count", "rmssd_night_ms"])
    labels = np.where(y == 1, "event", "no_event")
    model = TorchMLPClassifier(**FAST_MLP, random_state=0).fit(frame, labels)
    assert model.classes_.tolist() == ["event", "no_event"]
    assert model.feature_names_in_.tolist() == list(frame.columns)
    assert set(model.predict(frame)) <= {"event", "no_event"}


def test_mlp_rejects_bad_input_with_clear_errors():
    X, y = make_classification(n_samples=30, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        TorchMLPClassifier(**FAST_MLP).fit(np.where(np.eye(30, 4) == 1, np.nan, X), y)
    model = TorchMLPClassifier(**FAST_MLP, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict_proba(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        TorchMLPClassifier(**FAST_MLP).fit(X, np.arange(30) % 3)
    with pytest.raises(ValueError, match=r"y has only one class \(1\)"):
        TorchMLPClassifier(**FAST_MLP).fit(X, np.ones(30, dtype=int))
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0.0, 1.0\); got 1.5"):
        TorchMLPClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match=r"each of hidden_layer_sizes must be an integer >= 1; got 0"):
        TorchMLPClassifier(hidden_layer_sizes=(8, 0)).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but TorchMLPClassifier is expecting 4"):
        model.predict(X[:, :3])


def _planted_outliers(seed: int = 0):
    """Normal samples near a 2-D plane in 8-D; outliers break that structure by 4 SD on two features."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(2, 8))

    def normal(n):
        return rng.normal(size=(n, 2)) @ mixing + 0.05 * rng.normal(size=(n, 8))

    train, normal_test, outliers = normal(600), normal(200), normal(20)
    for row in outliers:
        row[rng.choice(8, 2, replace=False)] += rng.choice([-4.0, 4.0], 2) * train.std(axis=0).mean()
    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(normal_test), scaler.transform(outliers)


AUTOENCODER = {"encoding_dim": 2, "hidden_layer_sizes": (16,), "max_epochs": 60, "learning_rate": 1e-2}


@pytest.fixture(scope="module")
def planted():
    train, normal_test, outliers = _planted_outliers()
    return train, normal_test, outliers, TorchAutoencoderDetector(**AUTOENCODER, random_state=0).fit(train)


def test_autoencoder_flags_planted_outliers(planted):
    _, normal_test, outliers, detector = planted
    assert np.mean(detector.predict(outliers) == -1) >= 0.9
    assert np.mean(detector.predict(normal_test) == -1) <= 0.05
    assert set(np.unique(detector.predict(normal_test))) <= {-1, 1}
    error = detector.reconstruction_error
    assert np.median(error(outliers)) > 10 * np.median(error(normal_test))


def test_autoencoder_scores_follow_the_sklearn_outlier_convention(planted):
    train, normal_test, _, detector = planted
    np.testing.assert_array_equal(detector.score_samples(normal_test), -detector.reconstruction_error(normal_test))
    scores = detector.score_samples(normal_test)
    np.testing.assert_allclose(detector.decision_function(normal_test), scores - detector.offset_)
    # threshold_quantile=0.99 flags about 1% of the training data
    assert np.mean(detector.predict(train) == -1) == pytest.approx(0.01, abs=0.005)


def test_autoencoder_is_reproducible_and_picklable(planted):
    train, normal_test, _, detector = planted
    again = TorchAutoencoderDetector(**AUTOENCODER, random_state=0).fit(train)
    assert np.array_equal(again.score_samples(normal_test), detector.score_samples(normal_test))
    restored = pickle.loads(pickle.dumps(detector))
    assert np.array_equal(restored.score_samples(normal_test), detector.score_samples(normal_test))
    assert restored.offset_ == detector.offset_


def test_autoencoder_rejects_bad_input():
    with pytest.raises(ValueError, match=r"encoding_dim=4 must be smaller than n_features=3.*encoding_dim <= 2"):
        TorchAutoencoderDetector().fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        TorchAutoencoderDetector(encoding_dim=1).fit(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"threshold_quantile must be a number in \(0.0, 1.0\)"):
        TorchAutoencoderDetector(encoding_dim=1, threshold_quantile=1).fit(np.zeros((10, 3)))


def test_pickles_name_the_top_level_module_that_mlflow_code_paths_ships():
    assert TorchMLPClassifier.__module__ == TorchAutoencoderDetector.__module__ == SHIPPED_MODULE_NAME == "torch_models"
    assert sys.modules[SHIPPED_MODULE_NAME] is training.torch_models


def test_pickled_pipeline_loads_with_only_the_shipped_file(tmp_path: Path):
    """A process without the project (and without torch) unpickles and scores with this one file."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X[::7, 2] = np.nan
    pipeline = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        StandardScaler(),
        TorchMLPClassifier(**FAST_MLP, random_state=0),
    ).fit(X, y)
    shipped = tmp_path / "code"
    shipped.mkdir()
    shutil.copy(training.torch_models.__file__, shipped / "torch_models.py")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(pipeline))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", pipeline.predict_proba(X))

    script = textwrap.dedent(
        f"""
        import pickle, sys
        import numpy as np


        class Absent:
            # the project is not installed here (this also hides its editable install), and scoring needs no torch
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("training", "features", "torch"):
                    raise ModuleNotFoundError(f"{{name}} is not available in the serving process")

        sys.meta_path.insert(0, Absent())
        sys.path.insert(0, {str(shipped)!r})  # what MLflow does with <model>/code
        model = pickle.loads(open("model.pkl", "rb").read())
        assert type(model[-1]).__module__ == "torch_models", type(model[-1]).__module__
        assert sys.modules["torch_models"].__file__ == {str(shipped / "torch_models.py")!r}
        np.testing.assert_array_equal(model.predict_proba(np.load("X.npy")), np.load("expected.npy"))
        assert not {{"training", "torch"}} & set(sys.modules), "the project or torch was imported"
        print("shipped ok")
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "shipped ok" in result.stdout
