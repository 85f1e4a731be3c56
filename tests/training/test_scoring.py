"""The shared scoring function."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.models import build_anomaly_model, build_endpoint_model
from training.scoring import score


def data(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return x, (x["a"] + 0.3 * rng.normal(size=n) > 0).astype(int).to_numpy()


def test_endpoint_scores_are_the_positive_class_probability_in_the_rows_order():
    x, y = data()
    model = build_endpoint_model("logistic_regression", seed=0).fit(x, y)
    extra = x.assign(subject_id=[f"S{k}" for k in range(len(x))], b=x["b"].where(x.index % 7 != 0))  # gaps too
    got = score(model, extra.iloc[::-1], ["a", "b"], "endpoint")
    assert list(got.index) == list(extra.index[::-1])
    assert got["score"].to_numpy() == pytest.approx(model.predict_proba(extra[["a", "b"]].iloc[::-1])[:, 1])
    assert got["score"].between(0, 1).all()


def test_anomaly_scores_rise_with_strangeness_and_flags_follow_the_model():
    x, _ = data()
    model = build_anomaly_model("isolation_forest", seed=0).fit(x)
    odd = pd.DataFrame({"a": [0.0, 8.0], "b": [0.0, -8.0]})
    got = score(model, odd, ["a", "b"], "anomaly")
    assert got["score"].iloc[1] > got["score"].iloc[0]
    assert got["anomaly"].tolist() == (model.predict(odd) == -1).tolist()


def test_bad_inputs_are_refused_with_the_reason():
    x, y = data()
    model = build_endpoint_model("logistic_regression", seed=0).fit(x, y)
    with pytest.raises(ValueError, match=r"features \['b'\] are missing"):
        score(model, x[["a"]], ["a", "b"], "endpoint")
    with pytest.raises(ValueError, match="numeric"):
        score(model, x.assign(b="high"), ["a", "b"], "endpoint")
    with pytest.raises(ValueError, match="task 'risk'"):
        score(model, x, ["a", "b"], "risk")
