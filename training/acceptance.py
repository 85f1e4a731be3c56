"""Written acceptance criteria for promoting a model, and their evaluation.

A promotion gate compares a candidate model's evaluation with criteria fixed in advance (in
the study's governance settings) and records every result, passed or failed, in the audit
log. Each criterion left at None is not checked and produces no result.

Conventions
-----------
- Metric names are those of ``training.metrics.endpoint_metrics``: ``auroc``,
  ``auroc_ci_low``, ``calibration_error`` (expected calibration error, a probability in [0, 1]).
- Subgroup rows are dicts such as ``subgroup_metrics(...).to_dict("records")`` returns. The
  subgroup column may be named ``column`` or ``subgroup``, the row count ``n`` or ``n_samples``.
- A value equal to its threshold passes (``auroc >= min_auroc``, ``calibration_error <=
  max_calibration_error``).
- Anything missing or undefined (an absent metric, a NaN AUROC, no validation outcomes) fails
  the criterion that needs it, with a detail saying what is missing; it never raises.

Nothing here reads files, a clock or global state, and no input is mutated.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "PASSING_VALIDATION_OUTCOMES",
    "FAILING_VALIDATION_OUTCOMES",
    "AcceptanceCriteria",
    "CriterionResult",
    "all_passed",
    "evaluate_criteria",
    "results_as_dicts",
]

PASSING_VALIDATION_OUTCOMES = frozenset({"passed", "warned", "passed_with_warnings"})
"""Validation report statuses whose data may train a promoted model (``passed_with_warnings``
is ``validation.report.Outcome.WARNED``'s value, accepted as ``warned``)."""

FAILING_VALIDATION_OUTCOMES = frozenset({"rejected", "failed", "unreadable"})
"""Statuses that block promotion. Any status in neither set blocks it too, as unknown."""

_MAX_LISTED = 5  # ids named in a detail; the count says how many there are in all


class AcceptanceCriteria(BaseModel):
    """The criteria a model must meet before an alias (``champion``) may point at it.

    Every threshold left at None is not checked. Values are checked on construction; a bad one
    raises ``pydantic.ValidationError`` naming the field and the allowed range.

    Attributes
    ----------
    min_auroc : float or None
        Lowest acceptable AUROC on the test set, in [0.5, 1] (0.5 is chance).
    max_calibration_error : float or None
        Highest acceptable expected calibration error on the test set, in [0, 1].
    subgroup_min_auroc : float or None
        AUROC floor, in [0.5, 1], for every subgroup (site, sex, age band...) with at least
        ``subgroup_min_samples`` rows. A subgroup of that size whose AUROC is NaN (a single
        class) fails: its performance cannot be shown.
    subgroup_min_samples : int, default 20
        Subgroups with fewer rows are reported, passed, and marked as not held to the floor:
        their AUROC is too unstable to judge. At least 1.
    require_validated_inputs : bool, default True
        Every validation report behind the training data must be passed or warned.
    require_disjoint_subjects : bool, default True
        No subject may be in both the training and the test set.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    min_auroc: float | None = Field(None, description="lowest acceptable test AUROC, in [0.5, 1]")
    max_calibration_error: float | None = Field(
        None, description="highest acceptable expected calibration error, in [0, 1]"
    )
    subgroup_min_auroc: float | None = Field(
        None, description="AUROC floor for every subgroup of at least subgroup_min_samples rows, in [0.5, 1]"
    )
    subgroup_min_samples: int = Field(20, description="smaller subgroups are reported but not held to the floor")
    require_validated_inputs: bool = Field(True, description="every input validation report passed or warned")
    require_disjoint_subjects: bool = Field(True, description="no subject in both train and test")

    @field_validator("min_auroc", "subgroup_min_auroc")
    @classmethod
    def _auroc_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not 0.5 <= value <= 1.0:
            raise ValueError(
                f"{info.field_name} must be in [0.5, 1] (0.5 is chance, 1 is perfect); got {value!r}"
            )
        return value

    @field_validator("max_calibration_error")
    @classmethod
    def _calibration_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(
                f"max_calibration_error must be in [0, 1] (a difference of probabilities); got {value!r}"
            )
        return value

    @field_validator("subgroup_min_samples")
    @classmethod
    def _positive_samples(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"subgroup_min_samples must be at least 1; got {value!r}")
        return value


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one criterion.

    Attributes
    ----------
    name : str
        ``auroc``, ``calibration_error``, ``subgroup_auroc`` (one per subgroup row; the detail
        names the subgroup), ``validated_inputs`` or ``disjoint_subjects``.
    passed : bool
    observed : Any
        What was measured: a float (NaN when undefined), a count, a dict of counts, or None
        when the input was missing.
    required : Any
        The threshold or requirement, as configured.
    detail : str
        One sentence for a reviewer: what was compared and why it passed or failed.
    """

    name: str
    passed: bool
    observed: Any
    required: Any
    detail: str


def _number(value: Any) -> float | None:
    """The value as a float, or None if it is not a real number (bools and strings are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _auroc_result(criteria: AcceptanceCriteria, metrics: Mapping[str, Any]) -> CriterionResult:
    required = criteria.min_auroc
    if "auroc" not in metrics:
        return CriterionResult("auroc", False, None, required, "metrics has no 'auroc': the test AUROC is missing")
    observed = _number(metrics["auroc"])
    if observed is None:
        return CriterionResult(
            "auroc", False, metrics["auroc"], required, f"metrics['auroc'] is not a number: {metrics['auroc']!r}"
        )
    ci_low = _number(metrics.get("auroc_ci_low"))
    ci = f" (CI low {_fmt(ci_low)})" if ci_low is not None and not math.isnan(ci_low) else ""
    if math.isnan(observed):
        return CriterionResult(
            "auroc", False, observed, required, "AUROC not computable (single class in the test set)"
        )
    passed = observed >= required
    relation = ">=" if passed else "<"
    return CriterionResult(
        "auroc", passed, observed, required, f"AUROC {_fmt(observed)}{ci} {relation} required {_fmt(required)}"
    )


def _calibration_result(criteria: AcceptanceCriteria, metrics: Mapping[str, Any]) -> CriterionResult:
    name, required = "calibration_error", criteria.max_calibration_error
    if name not in metrics:
        return CriterionResult(
            name, False, None, required, "metrics has no 'calibration_error': the calibration error is missing"
        )
    observed = _number(metrics[name])
    if observed is None:
        return CriterionResult(
            name, False, metrics[name], required, f"metrics['{name}'] is not a number: {metrics[name]!r}"
        )
    if math.isnan(observed):
        return CriterionResult(name, False, observed, required, "calibration error not computable (NaN)")
    passed = observed <= required
    relation = "<=" if passed else ">"
    return CriterionResult(
        name, passed, observed, required,
        f"calibration error {_fmt(observed)} {relation} allowed {_fmt(required)}",
    )


def _first_key(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    return None


def _subgroup_results(
    criteria: AcceptanceCriteria, subgroups: Sequence[Mapping[str, Any]] | None
) -> list[CriterionResult]:
    name, floor, min_n = "subgroup_auroc", criteria.subgroup_min_auroc, criteria.subgroup_min_samples
    if subgroups is None:
        return [CriterionResult(name, False, None, floor, "no subgroup table given: subgroup AUROCs are missing")]
    if len(subgroups) == 0:
        return [CriterionResult(name, False, None, floor, "the subgroup table is empty: no subgroup was evaluated")]
    results = []
    for index, row in enumerate(subgroups):
        column = _first_key(row, ("column", "subgroup"))
        value = row.get("value")
        label = f"{column}={value}" if column is not None else f"subgroup row {index}"
        n_raw = _first_key(row, ("n", "n_samples"))
        n = _number(n_raw)
        missing = [key for key, present in (("column", column is not None), ("value", "value" in row),
                                             ("n", n_raw is not None), ("auroc", "auroc" in row)) if not present]
        if missing:
            results.append(CriterionResult(
                name, False, None, floor, f"{label}: the subgroup row has no {', '.join(missing)}"
            ))
            continue
        if n is None or math.isnan(n):
            results.append(CriterionResult(name, False, None, floor, f"{label}: row count is not a number: {n_raw!r}"))
            continue
        auroc = _number(row["auroc"])
        count = int(n)
        if count < min_n:
            shown = "NaN" if auroc is None or math.isnan(auroc) else _fmt(auroc)
            results.append(CriterionResult(
                name, True, auroc, floor,
                f"{label}: AUROC {shown}, not held to the floor: n={count} < {min_n}",
            ))
        elif auroc is None:
            results.append(CriterionResult(
                name, False, row["auroc"], floor, f"{label} (n={count}): AUROC is not a number: {row['auroc']!r}"
            ))
        elif math.isnan(auroc):
            results.append(CriterionResult(
                name, False, auroc, floor, f"{label} (n={count}): AUROC not computable (single class)"
            ))
        else:
            passed = auroc >= floor
            relation = ">=" if passed else "<"
            results.append(CriterionResult(
                name, passed, auroc, floor, f"{label} (n={count}): AUROC {_fmt(auroc)} {relation} floor {_fmt(floor)}"
            ))
    return results


def _listed(ids: Iterable[str]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(ordered[:_MAX_LISTED])
    more = f" and {len(ordered) - _MAX_LISTED} more" if len(ordered) > _MAX_LISTED else ""
    return shown + more


def _validation_result(validation_outcomes: Mapping[str, str] | None) -> CriterionResult:
    name, required = "validated_inputs", "every validation report passed or warned"
    if not validation_outcomes:
        given = "none were given" if validation_outcomes is None else "the mapping is empty"
        return CriterionResult(
            name, False, None, required,
            f"no validation outcomes for the training data ({given}): its validation cannot be shown",
        )
    counts: dict[str, int] = {}
    blocked, unknown = [], []
    for report_id, status in validation_outcomes.items():
        counts[str(status)] = counts.get(str(status), 0) + 1
        if status in PASSING_VALIDATION_OUTCOMES:
            continue
        (blocked if status in FAILING_VALIDATION_OUTCOMES else unknown).append(str(report_id))
    observed = dict(sorted(counts.items()))
    total = len(validation_outcomes)
    if not blocked and not unknown:
        return CriterionResult(name, True, observed, required, f"all {total} validation reports passed or warned")
    parts = []
    if blocked:
        parts.append(f"{len(blocked)} rejected or failed: {_listed(blocked)}")
    if unknown:
        parts.append(f"{len(unknown)} with an unknown status: {_listed(unknown)}")
    return CriterionResult(name, False, observed, required, f"of {total} validation reports, " + "; ".join(parts))


def _as_subjects(subjects: Iterable[str], name: str) -> set[str]:
    if isinstance(subjects, str | bytes):
        raise TypeError(f"{name} must be a collection of subject ids, not one string")
    return {str(s) for s in subjects}


def _disjoint_result(train_subjects: Iterable[str] | None, test_subjects: Iterable[str] | None) -> CriterionResult:
    name, required = "disjoint_subjects", "no subject in both train and test"
    missing = [n for n, s in (("train_subjects", train_subjects), ("test_subjects", test_subjects)) if s is None]
    if missing:
        return CriterionResult(
            name, False, None, required, f"{' and '.join(missing)} not given: the split cannot be checked"
        )
    train = _as_subjects(train_subjects, "train_subjects")
    test = _as_subjects(test_subjects, "test_subjects")
    overlap = train & test
    if overlap:
        return CriterionResult(
            name, False, len(overlap), required,
            f"{len(overlap)} subject(s) in both train and test: {_listed(overlap)}",
        )
    return CriterionResult(
        name, True, 0, required, f"train ({len(train)} subjects) and test ({len(test)} subjects) share none"
    )


def evaluate_criteria(
    criteria: AcceptanceCriteria,
    *,
    metrics: Mapping[str, float],
    subgroups: Sequence[Mapping[str, Any]] | None,
    validation_outcomes: Mapping[str, str] | None,
    train_subjects: Iterable[str] | None,
    test_subjects: Iterable[str] | None,
) -> list[CriterionResult]:
    """Check a candidate model against the acceptance criteria.

    Parameters
    ----------
    criteria : AcceptanceCriteria
    metrics : mapping of str to float
        Test-set metrics as ``endpoint_metrics`` returns them; ``auroc`` is read when
        ``min_auroc`` is set (``auroc_ci_low`` is reported if present), ``calibration_error``
        when ``max_calibration_error`` is set.
    subgroups : sequence of mappings, or None
        One row per subgroup with ``column`` (or ``subgroup``), ``value``, ``n`` (or
        ``n_samples``) and ``auroc``; read when ``subgroup_min_auroc`` is set.
    validation_outcomes : mapping of str to str, or None
        Validation report id -> status, one of "passed", "warned" (or "passed_with_warnings"),
        "rejected", "failed" (or "unreadable"); read when ``require_validated_inputs``.
    train_subjects, test_subjects : collections of str, or None
        Subject ids of each part; read when ``require_disjoint_subjects``.

    Returns
    -------
    list of CriterionResult
        In the order auroc, calibration_error, subgroup_auroc (one per row), validated_inputs,
        disjoint_subjects, each present only when its criterion is set. Missing or undefined
        inputs give failed results rather than errors.
    """
    if not isinstance(criteria, AcceptanceCriteria):
        raise TypeError(f"criteria must be an AcceptanceCriteria, got {type(criteria).__name__}")
    results: list[CriterionResult] = []
    if criteria.min_auroc is not None:
        results.append(_auroc_result(criteria, metrics))
    if criteria.max_calibration_error is not None:
        results.append(_calibration_result(criteria, metrics))
    if criteria.subgroup_min_auroc is not None:
        results.extend(_subgroup_results(criteria, subgroups))
    if criteria.require_validated_inputs:
        results.append(_validation_result(validation_outcomes))
    if criteria.require_disjoint_subjects:
        results.append(_disjoint_result(train_subjects, test_subjects))
    return results


def all_passed(results: Iterable[CriterionResult]) -> bool:
    """Whether every result passed (True for no results: nothing was required)."""
    return all(result.passed for result in results)


def _json_value(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None (JSON has no NaN), sets sorted lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_json_value(v) for v in value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def results_as_dicts(results: Iterable[CriterionResult]) -> list[dict[str, Any]]:
    """The results as JSON-safe dicts (``name``, ``passed``, ``observed``, ``required``, ``detail``).

    NaN and infinite values become None, so ``json.dumps(..., allow_nan=False)`` accepts them;
    the detail still says "not computable".
    """
    return [_json_value(asdict(result)) for result in results]
