"""PyTorch models behind the scikit-learn estimator API: an MLP classifier and an autoencoder detector.

This file stands alone on purpose: it imports numpy, scikit-learn and (inside ``fit`` only)
torch, and nothing of this project. A fitted pipeline holding these classes is shipped to
MLflow together with this single file (``code_paths=[<this file>]``) and must load in a
process that does not have the project installed.

Shipping under a top-level name
-------------------------------
MLflow copies a ``code_paths`` file to ``<model>/code/torch_models.py`` and puts
``<model>/code`` first on ``sys.path`` before unpickling, so the shipped file is importable
as the top-level module ``torch_models``, not as ``training.torch_models``. A pickle names a
class by ``__module__`` + qualified name, so the classes here set ``__module__`` to
``"torch_models"`` and this module registers itself under that name in ``sys.modules`` when it
is imported as ``training.torch_models``. Pickles made in the project then load both inside
the project (same class objects) and in a bare process with only this file on ``sys.path``.
If another module already holds the name ``torch_models``, the alias is not taken and the
classes keep their full name.

Fitted networks are stored as numpy arrays (``coefs_``, ``intercepts_``, as in
``sklearn.neural_network.MLPClassifier``) and evaluated in float64 numpy: pickles hold no torch
objects, and predicting needs neither torch nor its import time.
"""

from __future__ import annotations

import sys
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["SHIPPED_MODULE_NAME", "TorchAutoencoderDetector", "TorchMLPClassifier"]

SHIPPED_MODULE_NAME = "torch_models"
"""Top-level module name of this file when shipped alone with a model (see the module docstring)."""


def _pickle_module_name() -> str:
    this = sys.modules[__name__]
    if sys.modules.setdefault(SHIPPED_MODULE_NAME, this) is this:
        return SHIPPED_MODULE_NAME
    return __name__


_PICKLE_MODULE = _pickle_module_name()

_MIN_IMPROVEMENT = 1e-4  # validation-loss decrease that resets early-stopping patience
_SEED_LIMIT = np.iinfo(np.int32).max


# --- shared helpers -----------------------------------------------------------------------------


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_real(name: str, value, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)


def _check_layer_sizes(name: str, sizes) -> tuple[int, ...]:
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers, e.g. (32, 16); got {sizes!r}") from None
    for size in sizes:
        _check_int(f"each of {name}", size, 1)
    return tuple(int(size) for size in sizes)


def _forward(X: np.ndarray, coefs: list, intercepts: list, relu_after: tuple) -> np.ndarray:
    """Evaluate a fitted Linear/ReLU stack in float64 (dropout is off at prediction)."""
    hidden = np.asarray(X, dtype=np.float64)
    for weight, bias, relu in zip(coefs, intercepts, relu_after, strict=True):
        hidden = hidden @ weight + bias
        if relu:
            hidden = np.maximum(hidden, 0.0)
    return hidden


def _fit_network(
    X: np.ndarray,
    target: np.ndarray,
    *,
    layer_sizes: tuple[int, ...],
    relu_after: tuple[bool, ...],
    dropout: float,
    loss: str,
    learning_rate: float,
    weight_decay: float,
    max_epochs: int,
    batch_size: int,
    seed: int,
    validation_fraction: float | None,
    patience: int,
) -> dict:
    """Train a Linear/ReLU(/Dropout) network on CPU with AdamW and return its weights as numpy.

    Reproducible for a given ``seed``: weight initialization and dropout draw from torch's CPU
    default generator inside ``torch.random.fork_rng`` (seeded there, restored on exit, so the
    caller's RNG state is untouched); shuffling and the validation split use a local
    ``torch.Generator``; deterministic algorithms are required for the duration of the fit.
    The thread count is left to the caller (``torch.set_num_threads``).

    With ``validation_fraction``, that fraction of the samples is held out, training stops
    after ``patience`` epochs without a validation-loss improvement of ``_MIN_IMPROVEMENT``,
    and the weights of the best epoch are returned.
    """
    import torch
    from torch import nn

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            generator = torch.Generator().manual_seed(seed)
            modules: list = []
            for n_in, n_out, relu in zip(layer_sizes[:-1], layer_sizes[1:], relu_after, strict=True):
                modules.append(nn.Linear(n_in, n_out))
                if relu:
                    modules.append(nn.ReLU())
                    if dropout > 0:
                        modules.append(nn.Dropout(dropout))
            network = nn.Sequential(*modules)
            loss_fn = nn.BCEWithLogitsLoss() if loss == "bce" else nn.MSELoss()
            optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=weight_decay)

            # float32 copies: torch shares memory with numpy and must not see a read-only caller array
            inputs = torch.from_numpy(np.array(X, dtype=np.float32))
            targets = torch.from_numpy(np.array(target, dtype=np.float32))
            order = torch.randperm(inputs.shape[0], generator=generator)
            n_validation = 0
            if validation_fraction is not None:
                n_validation = min(max(1, round(validation_fraction * inputs.shape[0])), inputs.shape[0] - 1)
            validation, train = order[:n_validation], order[n_validation:]
            x_train, t_train = inputs[train], targets[train]
            x_validation, t_validation = inputs[validation], targets[validation]

            linears = [module for module in network if isinstance(module, nn.Linear)]
            loss_curve, validation_curve = [], []
            best_loss, best_epoch, best_state, waited = np.inf, 0, None, 0
            for epoch in range(1, max_epochs + 1):
                network.train()
                total = 0.0
                permutation = torch.randperm(x_train.shape[0], generator=generator)
                for start in range(0, x_train.shape[0], batch_size):
                    batch = permutation[start : start + batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    batch_loss = loss_fn(network(x_train[batch]), t_train[batch])
                    batch_loss.backward()
                    optimizer.step()
                    total += float(batch_loss.detach()) * batch.shape[0]
                loss_curve.append(total / x_train.shape[0])
                if not n_validation:
                    continue
                network.eval()
                with torch.no_grad():
                    validation_loss = float(loss_fn(network(x_validation), t_validation))
                validation_curve.append(validation_loss)
                if validation_loss < best_loss - _MIN_IMPROVEMENT:
                    best_loss, best_epoch, waited = validation_loss, epoch, 0
                    best_state = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in linears]
                else:
                    waited += 1
                    if waited >= patience:
                        break
            state = best_state or [(m.weight.detach(), m.bias.detach()) for m in linears]
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)

    return {
        # torch stores Linear weights as (out, in); x @ W wants (in, out)
        "coefs": [weight.cpu().numpy().T.astype(np.float64) for weight, _ in state],
        "intercepts": [bias.cpu().numpy().astype(np.float64) for _, bias in state],
        "loss_curve": loss_curve,
        "validation_loss_curve": validation_curve,
        "n_epochs": len(loss_curve),
        "best_epoch": best_epoch if n_validation else len(loss_curve),
    }


def _seed(random_state) -> int:
    return int(check_random_state(random_state).randint(_SEED_LIMIT))


# --- classifier ---------------------------------------------------------------------------------


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary multilayer-perceptron classifier trained with PyTorch on CPU.

    Hidden layers are Linear -> ReLU -> Dropout; one output logit is trained with binary
    cross-entropy (``BCEWithLogitsLoss``) and AdamW. Inputs must be numeric and complete and
    are best standardized: put a ``SimpleImputer`` and ``StandardScaler`` before it in a
    ``Pipeline`` (``training.models.build_endpoint_model`` does).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (32, 16)
        Width of each hidden layer.
    dropout : float in [0, 1), default 0.1
        Dropout probability after each hidden layer, during training only.
    learning_rate : float > 0, default 1e-3
        AdamW learning rate.
    weight_decay : float >= 0, default 1e-4
        AdamW decoupled weight decay.
    max_epochs : int >= 1, default 200
        Passes over the training samples.
    batch_size : int >= 1, default 64
        Samples per gradient step.
    early_stopping : bool, default True
        Hold out ``validation_fraction`` of the samples and stop after ``patience`` epochs
        without improving the validation loss; the best epoch's weights are kept.
    validation_fraction : float in (0, 1), default 0.1
        Share of samples held out for early stopping (at least one sample).
    patience : int >= 1, default 10
        Epochs without a validation-loss improvement before stopping.
    random_state : int, RandomState instance or None, default None
        Seeds weight initialization, dropout, shuffling and the validation split; an int
        gives identical probabilities on every fit.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two class labels; ``classes_[1]`` is the positive class.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input column names, when X was a frame with string column names.
    coefs_ : list of ndarray, shapes (n_in, n_out) per layer
        Fitted weights (float64 copies of the float32 torch weights).
    intercepts_ : list of ndarray, shapes (n_out,) per layer
        Fitted biases.
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_loss_curve_ : list of float
        Validation loss per epoch (empty without early stopping).
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept.
    """

    __module__ = _PICKLE_MODULE

    def __init__(
        self,
        hidden_layer_sizes=(32, 16),
        dropout=0.1,
        learning_rate=1e-3,
        weight_decay=1e-4,
        max_epochs=200,
        batch_size=64,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """Fit the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features without NaN (impute first).
        y : array-like of shape (n_samples,)
            Two class labels.

        Returns
        -------
        self : TorchMLPClassifier
        """
        hidden = _check_layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        dropout = _check_real("dropout", self.dropout, 0.0, 1.0, low_open=False, high_open=True)
        learning_rate = _check_real("learning_rate", self.learning_rate, 0.0, np.inf, low_open=True, high_open=True)
        weight_decay = _check_real("weight_decay", self.weight_decay, 0.0, np.inf, low_open=False, high_open=True)
        max_epochs = _check_int("max_epochs", self.max_epochs, 1)
        batch_size = _check_int("batch_size", self.batch_size, 1)
        patience = _check_int("patience", self.patience, 1)
        validation_fraction = None
        if self.early_stopping:
            validation_fraction = _check_real(
                "validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True, high_open=True
            )

        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}; "
                "TorchMLPClassifier predicts one binary endpoint"
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"y has only one class ({self.classes_.tolist()[0]!r}); TorchMLPClassifier needs samples of both "
                "classes of the binary endpoint"
            )

        relu_after = (True,) * len(hidden) + (False,)
        fitted = _fit_network(
            X,
            encoded.astype(np.float32).reshape(-1, 1),
            layer_sizes=(X.shape[1], *hidden, 1),
            relu_after=relu_after,
            dropout=dropout,
            loss="bce",
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            max_epochs=max_epochs,
            batch_size=batch_size,
            seed=_seed(self.random_state),
            validation_fraction=validation_fraction,
            patience=patience,
        )
        self.coefs_ = fitted["coefs"]
        self.intercepts_ = fitted["intercepts"]
        self.layer_relu_ = relu_after
        self.loss_curve_ = fitted["loss_curve"]
        self.validation_loss_curve_ = fitted["validation_loss_curve"]
        self.n_iter_ = fitted["n_epochs"]
        self.best_epoch_ = fitted["best_epoch"]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logit of the positive class ``classes_[1]``, shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _forward(X, self.coefs_, self.intercepts_, self.layer_relu_)[:, 0]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2), columns in ``classes_`` order."""
        logit = self.decision_function(X)
        # 1 / (1 + exp(-z)) written with tanh: no overflow for large |z|
        positive = 0.5 * (1.0 + np.tanh(0.5 * logit))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X) -> np.ndarray:
        """Predicted class label, ``classes_[1]`` where the logit is above 0 (probability > 0.5)."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.intp)]


# --- anomaly detector ---------------------------------------------------------------------------


class TorchAutoencoderDetector(OutlierMixin, BaseEstimator):
    """Anomaly detector scoring samples by their autoencoder reconstruction error.

    A small MLP autoencoder (``n_features -> hidden -> encoding_dim -> reversed(hidden) ->
    n_features``, ReLU between layers, linear bottleneck and output) is trained with mean
    squared error on presumed-normal, standardized feature vectors. Samples it reconstructs
    badly lie off the normal data's manifold. The API follows sklearn's outlier detectors
    (``IsolationForest``): ``score_samples`` is higher for more normal samples and ``predict``
    returns +1 (normal) or -1 (anomaly).

    Parameters
    ----------
    encoding_dim : int >= 1, default 4
        Bottleneck width; must be smaller than the number of features, else the network can
        learn the identity and every error is near zero.
    hidden_layer_sizes : tuple of int, default (32,)
        Encoder widths between the input and the bottleneck; the decoder mirrors them.
    learning_rate : float > 0, default 1e-3
        AdamW learning rate.
    weight_decay : float >= 0, default 0.0
        AdamW decoupled weight decay.
    max_epochs : int >= 1, default 100
        Passes over the training samples.
    batch_size : int >= 1, default 64
        Samples per gradient step.
    threshold_quantile : float in (0, 1), default 0.99
        Quantile of the training reconstruction errors above which a sample is an anomaly
        (about 1 - threshold_quantile of the training data is flagged).
    random_state : int, RandomState instance or None, default None
        Seeds initialization and shuffling; an int gives identical scores on every fit.

    Attributes
    ----------
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input column names, when X was a frame with string column names.
    coefs_, intercepts_ : list of ndarray
        Fitted weights (n_in, n_out) and biases (n_out,) per layer.
    offset_ : float
        ``-quantile(training reconstruction errors, threshold_quantile)``;
        ``decision_function = score_samples - offset_``, negative for anomalies.
    loss_curve_ : list of float
        Mean training loss per epoch.
    n_iter_ : int
        Epochs run.

    Notes
    -----
    The threshold comes from the training errors, which are optimistic for a network that
    has seen those samples; to set it on held-out normal data, use
    ``training.metrics.choose_threshold(detector.reconstruction_error(X_normal_holdout), method="quantile", ...)``.
    """

    __module__ = _PICKLE_MODULE

    def __init__(
        self,
        encoding_dim=4,
        hidden_layer_sizes=(32,),
        learning_rate=1e-3,
        weight_decay=0.0,
        max_epochs=100,
        batch_size=64,
        threshold_quantile=0.99,
        random_state=None,
    ):
        self.encoding_dim = encoding_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.threshold_quantile = threshold_quantile
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the autoencoder on presumed-normal samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Standardized numeric features without NaN.
        y : None
            Ignored; present for the sklearn API.

        Returns
        -------
        self : TorchAutoencoderDetector
        """
        encoding_dim = _check_int("encoding_dim", self.encoding_dim, 1)
        hidden = _check_layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        learning_rate = _check_real("learning_rate", self.learning_rate, 0.0, np.inf, low_open=True, high_open=True)
        weight_decay = _check_real("weight_decay", self.weight_decay, 0.0, np.inf, low_open=False, high_open=True)
        max_epochs = _check_int("max_epochs", self.max_epochs, 1)
        batch_size = _check_int("batch_size", self.batch_size, 1)
        quantile = _check_real("threshold_quantile", self.threshold_quantile, 0.0, 1.0, low_open=True, high_open=True)

        X = validate_data(self, X, dtype=[np.float64, np.float32])
        if encoding_dim >= X.shape[1]:
            raise ValueError(
                f"encoding_dim={encoding_dim} must be smaller than n_features={X.shape[1]}, else the autoencoder "
                f"can learn the identity; pass encoding_dim <= {X.shape[1] - 1} (needs at least 2 features)"
            )

        layer_sizes = (X.shape[1], *hidden, encoding_dim, *reversed(hidden), X.shape[1])
        relu_after = tuple(index not in (len(hidden), len(layer_sizes) - 2) for index in range(len(layer_sizes) - 1))
        fitted = _fit_network(
            X,
            X,
            layer_sizes=layer_sizes,
            relu_after=relu_after,
            dropout=0.0,
            loss="mse",
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            max_epochs=max_epochs,
            batch_size=batch_size,
            seed=_seed(self.random_state),
            validation_fraction=None,
            patience=1,
        )
        self.coefs_ = fitted["coefs"]
        self.intercepts_ = fitted["intercepts"]
        self.layer_relu_ = relu_after
        self.loss_curve_ = fitted["loss_curve"]
        self.n_iter_ = fitted["n_epochs"]
        self.offset_ = -float(np.quantile(self._errors(X), quantile))
        return self

    def _errors(self, X: np.ndarray) -> np.ndarray:
        reconstruction = _forward(X, self.coefs_, self.intercepts_, self.layer_relu_)
        return np.mean((reconstruction - X) ** 2, axis=1)

    def reconstruction_error(self, X) -> np.ndarray:
        """Mean squared reconstruction error per sample, shape (n_samples,), in squared input units."""
        check_is_fitted(self)
        return self._errors(validate_data(self, X, reset=False, dtype=[np.float64, np.float32]))

    def score_samples(self, X) -> np.ndarray:
        """Normality score, ``-reconstruction_error(X)``: higher is more normal, shape (n_samples,)."""
        return -self.reconstruction_error(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies, shape (n_samples,)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for normal samples and -1 for anomalies, shape (n_samples,)."""
        return np.where(self.decision_function(X) < 0, -1, 1)
