"""Acceptance criteria for promotion: each criterion passing and failing, boundaries, bad config."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from training.acceptance import (
    AcceptanceCriteria,
    CriterionResult,
    all_passed,
    evaluate_criteria,
    results_as_dicts,
)

NAN = float("nan")
ONLY_NOTHING = {"require_validated_inputs": False, "require_disjoint_subjects": False}


def evaluate(criteria: AcceptanceCriteria, **inputs: Any) -> list[CriterionResult]:
    """evaluate_criteria with every input None unless given."""
    given = {
        "metrics": {},
        "subgroups": None,
        "validation_outcomes": None,
        "train_subjects": None,
        "test_subjects": None,
    }
    given.update(inputs)
    return evaluate_criteria(criteria, **given)


def only(result_list: list[CriterionResult]) -> CriterionResult:
    assert len(result_list) == 1, result_list
    return result_list[0]


def subgroup(column: str, value: str, n: int, auroc: float) -> dict[str, Any]:
    return {"column": column, "value": value, "n": n, "auroc": auroc}


# --- configuration ------------------------------------------------------------------------------


def test_defaults_check_only_inputs_and_split() -> None:
    criteria = AcceptanceCriteria()
    assert criteria.min_auroc is None and criteria.max_calibration_error is None
    assert criteria.subgroup_min_auroc is None and criteria.subgroup_min_samples == 20
    assert criteria.require_validated_inputs and criteria.require_disjoint_subjects
    results = evaluate(
        criteria, validation_outcomes={"r1": "passed"}, train_subjects={"S1"}, test_subjects={"S2"}
    )
    assert [r.name for r in results] == ["validated_inputs", "disjoint_subjects"]
    assert all_passed(results)


def test_nothing_required_gives_no_results() -> None:
    assert evaluate(AcceptanceCriteria(**ONLY_NOTHING)) == []
    assert all_passed([])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_auroc", 0.49, r"min_auroc must be in \[0.5, 1\]"),
        ("min_auroc", 1.01, r"min_auroc must be in \[0.5, 1\]"),
        ("min_auroc", NAN, r"min_auroc must be in \[0.5, 1\]"),
        ("subgroup_min_auroc", 0.3, r"subgroup_min_auroc must be in \[0.5, 1\]"),
        ("max_calibration_error", -0.01, r"max_calibration_error must be in \[0, 1\]"),
        ("max_calibration_error", 1.5, r"max_calibration_error must be in \[0, 1\]"),
        ("max_calibration_error", NAN, r"max_calibration_error must be in \[0, 1\]"),
        ("subgroup_min_samples", 0, "subgroup_min_samples must be at least 1"),
        ("min_auroc", "0.7", "valid number"),  # strict: no string coercion
        ("min_auroc", True, "valid number"),
        ("subgroup_min_samples", 20.0, "valid integer"),
        ("require_validated_inputs", "yes", "valid boolean"),
        ("min_accuracy", 0.9, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_values_are_refused_with_a_message(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        AcceptanceCriteria(**{field: value})
    assert field in str(error.value)


def test_boundary_config_values_are_accepted_and_criteria_are_frozen() -> None:
    criteria = AcceptanceCriteria(
        min_auroc=0.5, subgroup_min_auroc=1, max_calibration_error=0.0, subgroup_min_samples=1
    )
    assert criteria.subgroup_min_auroc == 1.0 and isinstance(criteria.subgroup_min_auroc, float)
    assert AcceptanceCriteria(max_calibration_error=1.0).max_calibration_error == 1.0
    with pytest.raises(ValidationError, match="frozen"):
        criteria.min_auroc = 0.9


def test_criteria_must_be_the_model() -> None:
    with pytest.raises(TypeError, match="AcceptanceCriteria"):
        evaluate({"min_auroc": 0.7})


# --- auroc --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("auroc", "passed"), [(0.8, True), (0.75, True), (0.7499, False)])
def test_auroc_threshold_with_equal_passing(auroc: float, passed: bool) -> None:
    result = only(evaluate(AcceptanceCriteria(min_auroc=0.75, **ONLY_NOTHING), metrics={"auroc": auroc}))
    assert (result.name, result.passed, result.observed, result.required) == ("auroc", passed, auroc, 0.75)
    assert ("<" in result.detail) is not passed


def test_auroc_detail_reports_the_ci_low() -> None:
    result = only(evaluate(
        AcceptanceCriteria(min_auroc=0.7, **ONLY_NOTHING), metrics={"auroc": 0.81, "auroc_ci_low": 0.66}
    ))
    assert result.passed
    assert result.detail == "AUROC 0.81 (CI low 0.66) >= required 0.7"


def test_auroc_numpy_scalar_is_a_number() -> None:
    result = only(evaluate(AcceptanceCriteria(min_auroc=0.7, **ONLY_NOTHING), metrics={"auroc": np.float32(0.9)}))
    assert result.passed and isinstance(result.observed, float)


@pytest.mark.parametrize(
    ("metrics", "detail"),
    [
        ({}, "metrics has no 'auroc'"),
        ({"calibration_error": 0.01}, "metrics has no 'auroc'"),
        ({"auroc": NAN}, "AUROC not computable (single class"),
        ({"auroc": None}, "not a number: None"),
        ({"auroc": "0.9"}, "not a number: '0.9'"),
    ],
)
def test_missing_or_undefined_auroc_fails_without_raising(metrics: dict, detail: str) -> None:
    result = only(evaluate(AcceptanceCriteria(min_auroc=0.7, **ONLY_NOTHING), metrics=metrics))
    assert not result.passed
    assert detail in result.detail


# --- calibration --------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "passed"), [(0.02, True), (0.05, True), (0.0501, False)])
def test_calibration_threshold_with_equal_passing(error: float, passed: bool) -> None:
    result = only(evaluate(
        AcceptanceCriteria(max_calibration_error=0.05, **ONLY_NOTHING), metrics={"calibration_error": error}
    ))
    assert (result.name, result.passed, result.observed, result.required) == (
        "calibration_error", passed, error, 0.05
    )


@pytest.mark.parametrize(
    ("metrics", "detail"),
    [({"auroc": 0.9}, "no 'calibration_error'"), ({"calibration_error": NAN}, "not computable")],
)
def test_missing_or_nan_calibration_error_fails(metrics: dict, detail: str) -> None:
    result = only(evaluate(AcceptanceCriteria(max_calibration_error=0.1, **ONLY_NOTHING), metrics=metrics))
    assert not result.passed and detail in result.detail


# --- subgroups ----------------------------------------------------------------------------------


def test_one_result_per_subgroup_with_small_groups_reported_but_not_held() -> None:
    criteria = AcceptanceCriteria(subgroup_min_auroc=0.65, **ONLY_NOTHING)
    rows = [
        subgroup("sex", "F", 40, 0.72),
        subgroup("sex", "M", 35, 0.65),  # equal to the floor: passes
        subgroup("site", "SITE-B", 30, 0.61),
        subgroup("site", "SITE-C", 12, 0.41),  # too small to judge
        subgroup("age_band", "<18", 12, NAN),
    ]
    results = evaluate(criteria, subgroups=rows)
    assert [r.name for r in results] == ["subgroup_auroc"] * 5
    assert [r.passed for r in results] == [True, True, False, True, True]
    assert results[2].detail == "site=SITE-B (n=30): AUROC 0.61 < floor 0.65"
    assert results[3].detail == "site=SITE-C: AUROC 0.41, not held to the floor: n=12 < 20"
    assert "not held to the floor: n=12 < 20" in results[4].detail
    assert not all_passed(results)


def test_nan_auroc_in_a_big_enough_subgroup_fails() -> None:
    criteria = AcceptanceCriteria(subgroup_min_auroc=0.6, subgroup_min_samples=20, **ONLY_NOTHING)
    result = only(evaluate(criteria, subgroups=[subgroup("site", "SITE-A", 20, NAN)]))
    assert not result.passed
    assert result.detail == "site=SITE-A (n=20): AUROC not computable (single class)"


def test_subgroup_metrics_rows_are_read_as_they_come() -> None:
    # training.metrics.subgroup_metrics(...).to_dict("records") names the keys subgroup and n_samples.
    row = {"subgroup": "sex", "value": "F", "n_samples": np.int64(50), "auroc": np.float64(0.7), "note": ""}
    result = only(evaluate(AcceptanceCriteria(subgroup_min_auroc=0.6, **ONLY_NOTHING), subgroups=[row]))
    assert result.passed and "sex=F (n=50)" in result.detail


@pytest.mark.parametrize(
    ("subgroups", "detail"),
    [
        (None, "no subgroup table given"),
        ([], "subgroup table is empty"),
        ([{"column": "sex", "value": "F", "n": 40}], "sex=F: the subgroup row has no auroc"),
        ([{"value": "F", "auroc": 0.8}], "subgroup row 0: the subgroup row has no column, n"),
        ([subgroup("sex", "F", None, 0.8) | {"n": "many"}], "row count is not a number"),
    ],
)
def test_missing_subgroup_data_fails(subgroups: list | None, detail: str) -> None:
    result = only(evaluate(AcceptanceCriteria(subgroup_min_auroc=0.6, **ONLY_NOTHING), subgroups=subgroups))
    assert not result.passed and detail in result.detail


# --- validated inputs ---------------------------------------------------------------------------


def test_passed_and_warned_reports_pass() -> None:
    outcomes = {"rep-1": "passed", "rep-2": "warned", "rep-3": "passed_with_warnings"}
    result = only(evaluate(AcceptanceCriteria(require_disjoint_subjects=False), validation_outcomes=outcomes))
    assert result.passed
    assert result.observed == {"passed": 1, "passed_with_warnings": 1, "warned": 1}
    assert result.detail == "all 3 validation reports passed or warned"


def test_rejected_failed_and_unknown_reports_fail_naming_them() -> None:
    outcomes = {"rep-1": "passed", "rep-9": "rejected", "rep-4": "failed", "rep-7": "pending"}
    result = only(evaluate(AcceptanceCriteria(require_disjoint_subjects=False), validation_outcomes=outcomes))
    assert not result.passed
    assert result.detail == (
        "of 4 validation reports, 2 rejected or failed: rep-4, rep-9; 1 with an unknown status: rep-7"
    )


def test_many_failed_reports_are_counted_and_the_first_named() -> None:
    outcomes = {f"rep-{i:02d}": "rejected" for i in range(8)}
    result = only(evaluate(AcceptanceCriteria(require_disjoint_subjects=False), validation_outcomes=outcomes))
    assert "8 rejected or failed: rep-00, rep-01, rep-02, rep-03, rep-04 and 3 more" in result.detail


@pytest.mark.parametrize(("outcomes", "detail"), [(None, "none were given"), ({}, "the mapping is empty")])
def test_no_validation_outcomes_fails(outcomes: dict | None, detail: str) -> None:
    result = only(evaluate(AcceptanceCriteria(require_disjoint_subjects=False), validation_outcomes=outcomes))
    assert not result.passed and result.observed is None
    assert detail in result.detail and "cannot be shown" in result.detail


# --- disjoint subjects --------------------------------------------------------------------------


def test_disjoint_subjects_pass() -> None:
    result = only(evaluate(
        AcceptanceCriteria(require_validated_inputs=False), train_subjects={"S1", "S2"}, test_subjects=["S3"]
    ))
    assert (result.name, result.passed, result.observed) == ("disjoint_subjects", True, 0)
    assert result.detail == "train (2 subjects) and test (1 subjects) share none"


def test_overlap_fails_naming_five_ids_and_the_count() -> None:
    shared = {f"S{i:03d}" for i in range(7)}
    result = only(evaluate(
        AcceptanceCriteria(require_validated_inputs=False),
        train_subjects=shared | {"T1"}, test_subjects=shared | {"V1"},
    ))
    assert not result.passed and result.observed == 7
    assert result.detail == "7 subject(s) in both train and test: S000, S001, S002, S003, S004 and 2 more"


@pytest.mark.parametrize(
    ("train", "test", "detail"),
    [
        (None, {"S1"}, "train_subjects not given"),
        ({"S1"}, None, "test_subjects not given"),
        (None, None, "train_subjects and test_subjects not given"),
    ],
)
def test_missing_subject_sets_fail(train: set | None, test: set | None, detail: str) -> None:
    criteria = AcceptanceCriteria(require_validated_inputs=False)
    result = only(evaluate(criteria, train_subjects=train, test_subjects=test))
    assert not result.passed and detail in result.detail


def test_a_single_string_is_not_a_subject_set() -> None:
    with pytest.raises(TypeError, match="not one string"):
        evaluate(AcceptanceCriteria(require_validated_inputs=False), train_subjects="S001", test_subjects={"S2"})


# --- everything together, and logging -----------------------------------------------------------


def test_full_evaluation_order_and_json_logging() -> None:
    criteria = AcceptanceCriteria(min_auroc=0.7, max_calibration_error=0.1, subgroup_min_auroc=0.6)
    inputs = {
        "metrics": {"auroc": 0.8, "auroc_ci_low": 0.71, "calibration_error": 0.04},
        "subgroups": [subgroup("sex", "F", 30, 0.75), subgroup("sex", "M", 5, NAN)],
        "validation_outcomes": {"rep-1": "passed"},
        "train_subjects": {"S1", "S2"},
        "test_subjects": {"S3"},
    }
    results = evaluate_criteria(criteria, **inputs)
    assert [r.name for r in results] == [
        "auroc", "calibration_error", "subgroup_auroc", "subgroup_auroc", "validated_inputs", "disjoint_subjects"
    ]
    assert all_passed(results)
    with pytest.raises(FrozenInstanceError):
        results[0].passed = False

    logged = results_as_dicts(results)
    text = json.dumps(logged, allow_nan=False)  # NaN would make invalid JSON
    assert json.loads(text) == logged
    assert logged[0] == {
        "name": "auroc", "passed": True, "observed": 0.8, "required": 0.7,
        "detail": "AUROC 0.8 (CI low 0.71) >= required 0.7",
    }
    assert logged[3]["observed"] is None and math.isnan(results[3].observed)
    assert logged[4]["observed"] == {"passed": 1}
    # The inputs are not mutated.
    assert inputs["train_subjects"] == {"S1", "S2"} and inputs["subgroups"][1]["n"] == 5


def test_one_failure_fails_the_whole() -> None:
    criteria = AcceptanceCriteria(min_auroc=0.7, **ONLY_NOTHING)
    results = evaluate(criteria, metrics={"auroc": 0.69})
    assert not all_passed(results)
    assert results_as_dicts(results)[0]["passed"] is False
