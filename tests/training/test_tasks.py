"""The task registry: each task's entry, unknown tasks refused, scoring and fit-and-evaluate through it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluation import EvaluationSettings
from training.model_card import model_card_markdown
from training.models import ANOMALY_MODEL_NAMES, ENDPOINT_MODEL_NAMES, build_anomaly_model, build_endpoint_model
from training.scoring import score
from training.tasks import (
    ANOMALY_TASK,
    ENDPOINT_TASK,
    TASK_NAMES,
    TASKS,
    UnknownTaskError,
    fit_and_evaluate,
    task_named,
)

FEATURES = ["a", "b"]
BUILDERS = {"endpoint": build_endpoint_model, "anomaly": build_anomaly_model}


def training_frame(n_subjects: int = 40, days: int = 4) -> pd.DataFrame:
    """subject_id, label (0/1, driven by feature a) and features a, b with gaps."""
    rng = np.random.default_rng(4)
    subjects = np.repeat([f"S{k:03d}" for k in range(n_subjects)], days)
    a, b = rng.normal(size=len(subjects)), rng.normal(size=len(subjects))
    b[rng.random(len(subjects)) < 0.1] = np.nan
    label = (a + 0.5 * rng.normal(size=len(subjects)) > 0.3).astype("int64")
    return pd.DataFrame({"subject_id": subjects, "label": label, "a": a, "b": b})


def attributes(n_subjects: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": [f"S{k:03d}" for k in range(n_subjects)],
                         "site": [f"site{k % 2}" for k in range(n_subjects)]})


def settings(estimator: str, **changes) -> EvaluationSettings:
    values = {"estimator": estimator, "seed": 3, "test_size": 0.3, "bootstrap_samples": 20,
              "subgroups": ("site",), "subgroup_min_samples": 5, "threshold_method": "quantile",
              "threshold_quantile": 0.9}
    return EvaluationSettings(**{**values, **changes})


def test_the_registry_holds_endpoint_and_anomaly_by_name():
    assert TASK_NAMES == ("endpoint", "anomaly")
    assert TASKS == {"endpoint": ENDPOINT_TASK, "anomaly": ANOMALY_TASK}
    assert all(task_named(name).name == name for name in TASK_NAMES)


def test_the_endpoint_entry():
    task = task_named("endpoint")
    assert task.estimators == ENDPOINT_MODEL_NAMES
    assert task.stratified and task.needs_both_outcomes and task.subgroup_metrics and task.ranks_risk
    assert task.predict_method == "predict_proba"
    assert task.score_columns == (("score", "float64"),)
    assert [key for _, key in task.card_metrics] == ["auroc", "auprc", "brier", "calibration_error"]
    assert "clinical endpoint" in task.purpose


def test_the_anomaly_entry():
    task = task_named("anomaly")
    assert task.estimators == ANOMALY_MODEL_NAMES
    assert not (task.stratified or task.needs_both_outcomes or task.subgroup_metrics or task.ranks_risk)
    assert task.predict_method == "predict"  # MLflow's pyfunc has no score_samples
    assert task.score_columns == (("score", "float64"), ("anomaly", "bool"))
    assert task.card_metrics == ()
    assert "unusual" in task.purpose


def test_every_task_accepts_its_own_estimators_which_have_its_predict_method():
    seen = set()
    for task in TASKS.values():
        assert task.estimators and not seen & set(task.estimators)
        seen |= set(task.estimators)
        for estimator in task.estimators:
            assert callable(getattr(BUILDERS[task.name](estimator, seed=0), task.predict_method))
    assert seen == set(ENDPOINT_MODEL_NAMES) | set(ANOMALY_MODEL_NAMES)


@pytest.mark.parametrize("name", ["risk", "Endpoint", "", None])
def test_an_unknown_task_is_refused_with_the_known_tasks_listed(name):
    with pytest.raises(UnknownTaskError, match=r"unknown task .*; known tasks: endpoint, anomaly$"):
        task_named(name)


def test_an_unknown_task_is_refused_by_scoring_fitting_and_the_model_card():
    frame = training_frame()
    model = build_endpoint_model("logistic_regression", seed=0).fit(frame[FEATURES], frame["label"])
    with pytest.raises(ValueError, match="unknown task 'risk'; known tasks: endpoint, anomaly"):
        score(model, frame, FEATURES, "risk")
    with pytest.raises(UnknownTaskError, match="known tasks: endpoint, anomaly"):
        fit_and_evaluate("risk", frame, FEATURES, settings("logistic_regression"))
    with pytest.raises(UnknownTaskError, match="known tasks: endpoint, anomaly"):
        model_card_markdown(name="m", study_id="s", model={"task": "risk"}, metrics={}, subgroups=None, lineage={})


@pytest.mark.parametrize("name", TASK_NAMES)
def test_scoring_through_the_registry_returns_the_tasks_columns(name):
    task = task_named(name)
    frame = training_frame()
    model = BUILDERS[name](task.estimators[0], seed=0)
    model.fit(frame[FEATURES], frame["label"])  # a detector ignores the labels
    rows = frame.iloc[::-3]
    got = score(model, rows, FEATURES, name)
    assert list(got.index) == list(rows.index)
    assert [(column, str(dtype)) for column, dtype in got.dtypes.items()] == list(task.score_columns)
    expected = task.scores(model, rows[FEATURES].astype("float64"))
    for column, _ in task.score_columns:
        assert got[column].to_numpy() == pytest.approx(expected[column])


def test_endpoint_scores_are_the_probability_and_anomaly_flags_follow_predict():
    frame = training_frame()
    classifier = build_endpoint_model("logistic_regression", seed=0).fit(frame[FEATURES], frame["label"])
    assert score(classifier, frame, FEATURES, "endpoint")["score"].to_numpy() == pytest.approx(
        classifier.predict_proba(frame[FEATURES])[:, 1])
    detector = build_anomaly_model("isolation_forest", seed=0).fit(frame[FEATURES])
    got = score(detector, frame, FEATURES, "anomaly")
    assert got["score"].to_numpy() == pytest.approx(-detector.score_samples(frame[FEATURES]))
    assert got["anomaly"].tolist() == (detector.predict(frame[FEATURES]) == -1).tolist()


def test_an_endpoint_model_is_fitted_on_a_stratified_subject_split_and_evaluated():
    frame = training_frame()
    before = frame.copy()
    evaluation = fit_and_evaluate("endpoint", frame, FEATURES, settings("logistic_regression"), attributes())
    pd.testing.assert_frame_equal(frame, before)  # not modified
    train, test = frame.iloc[evaluation.train_index], frame.iloc[evaluation.test_index]
    assert not set(train["subject_id"]) & set(test["subject_id"])
    assert set(train["label"]) == set(test["label"]) == {0, 1}
    assert {"auroc", "auroc_ci_low", "brier", "calibration_error"} <= set(evaluation.metrics)
    assert evaluation.metrics["auroc"] > 0.7
    assert set(evaluation.subgroups["subgroup"]) == {"site"}
    assert set(evaluation.curves) == {"roc", "calibration"}
    assert list(evaluation.importance["feature"])[0] == "a"
    assert evaluation.threshold is None


def test_a_held_out_site_is_the_whole_test_set():
    frame = training_frame()
    evaluation = fit_and_evaluate("endpoint", frame, FEATURES, settings("logistic_regression", holdout_site="site1"),
                                  attributes())
    sites = attributes().set_index("subject_id")["site"]
    assert set(sites[frame.iloc[evaluation.test_index]["subject_id"]]) == {"site1"}
    assert set(sites[frame.iloc[evaluation.train_index]["subject_id"]]) == {"site0"}


def test_an_anomaly_model_gets_a_threshold_its_predict_applies():
    frame = training_frame()
    evaluation = fit_and_evaluate("anomaly", frame, FEATURES, settings("isolation_forest", params={"n_estimators": 30}))
    assert {"threshold", "flagged_share_test", "precision", "recall", "f1"} <= set(evaluation.metrics)
    assert evaluation.threshold["method"] == "quantile" and evaluation.subgroups is None
    test = frame.iloc[evaluation.test_index][FEATURES]
    flagged = evaluation.model.predict(test) == -1
    assert flagged.mean() == pytest.approx(evaluation.metrics["flagged_share_test"])
    assert list(evaluation.curves["scores"].columns) == ["score", "label"]


def test_threshold_max_f1_without_labels_is_refused():
    frame = training_frame().assign(label=-1)  # -1: no labelled episodes
    held_out = {"holdout_site": "site1"}  # the grouped split itself refuses labels other than 0/1
    with pytest.raises(ValueError, match="threshold method max_f1 needs labels"):
        fit_and_evaluate("anomaly", frame, FEATURES,
                         settings("isolation_forest", threshold_method="max_f1", **held_out), attributes())
    # without labels the quantile threshold still works, and no precision is claimed
    evaluation = fit_and_evaluate("anomaly", frame, FEATURES, settings("isolation_forest", **held_out), attributes())
    assert "precision" not in evaluation.metrics


def test_an_estimator_of_the_other_task_is_refused():
    with pytest.raises(ValueError, match="unknown endpoint model 'isolation_forest'"):
        fit_and_evaluate("endpoint", training_frame(), FEATURES, settings("isolation_forest"))
