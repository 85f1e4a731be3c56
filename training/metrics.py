"""Evaluation metrics: binary endpoint discrimination and calibration with bootstrap CIs, subgroup
tables, and anomaly-detection precision/recall with a logged threshold choice.

Conventions
-----------
- ``y_true`` is the binary outcome, 0/1 or False/True; ``probability`` is the predicted
  probability of the positive class, in [0, 1].
- A metric that is undefined for its input returns NaN instead of raising: AUROC and AUPRC
  need both classes; every metric needs at least one sample. ``undefined_reason`` says why.
  Brier score and calibration error stay defined on a single-class input.
- Malformed input (different lengths, labels other than 0/1, probabilities outside [0, 1] or
  NaN) raises ``ValueError``: that is a bug upstream, not a property of the sample.
- Anomaly scores are "higher = more anomalous" (a reconstruction error, or ``-score_samples``
  of an sklearn outlier detector); a sample is flagged when its score is above the threshold.

Nothing here reads files, a clock or global state, and no input is mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = [
    "AGE_BANDS",
    "CALIBRATION_BINS",
    "ConfidenceInterval",
    "age_band",
    "auprc",
    "auroc",
    "bootstrap_ci",
    "brier_score",
    "choose_threshold",
    "endpoint_metrics",
    "expected_calibration_error",
    "flag_anomalies",
    "precision_recall_f1",
    "reliability_curve",
    "subgroup_metrics",
    "undefined_reason",
]

CALIBRATION_BINS = 10
"""Equal-width probability bins on [0, 1] used by the calibration error and reliability curve."""

AGE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 18.0, "<18"),
    (18.0, 40.0, "18-39"),
    (40.0, 65.0, "40-64"),
    (65.0, np.inf, "65+"),
)
"""(lowest age, age limit, label): a band holds ``lowest <= age_years < limit`` in years."""


# --- input checks ------------------------------------------------------------------------------


def _labels(y_true, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional; got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int8)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must hold 0/1 outcomes; got dtype {y.dtype}")
    bad = np.unique(y[(y != 0) & (y != 1)])
    if bad.size:
        raise ValueError(f"{name} must hold 0/1 outcomes; found {bad[:10].tolist()}")
    return y.astype(np.int8)


def _probabilities(probability, n: int) -> np.ndarray:
    p = np.asarray(probability, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"probability must have shape ({n},) like y_true; got {p.shape}")
    bad = np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))  # also catches NaN
    if bad.size:
        raise ValueError(
            f"probability must lie in [0, 1] without NaN; {bad.size} value(s) do not, at positions "
            f"{bad[:10].tolist()} (values {p[bad[:10]].tolist()}); pass predict_proba(X)[:, 1], not a decision score"
        )
    return p


def _checked(y_true, probability) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    return y, _probabilities(probability, y.size)


def _group_codes(groups, n: int) -> np.ndarray:
    values = pd.Series(np.asarray(groups, dtype=object))
    if len(values) != n:
        raise ValueError(f"groups must have one id per sample ({n}); got {len(values)}")
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise ValueError(f"groups is missing for {missing.size} sample(s), positions {missing[:10].tolist()}")
    codes, _ = pd.factorize(values, sort=True)
    return codes


def undefined_reason(y_true) -> str | None:
    """Why AUROC and AUPRC are undefined for these labels, or None when they are defined.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.

    Returns
    -------
    str or None
        E.g. ``"single class: all 12 samples are negative (0); AUROC and AUPRC need both classes"``.
    """
    y = _labels(y_true)
    if y.size == 0:
        return "no samples"
    n_positive = int(y.sum())
    if n_positive in (0, y.size):
        kind = "negative (0)" if n_positive == 0 else "positive (1)"
        return f"single class: all {y.size} samples are {kind}; AUROC and AUPRC need both classes"
    return None


# --- point metrics (unchecked cores are reused by the bootstrap) -------------------------------


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    n_positive = int(y.sum())
    n_negative = y.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    # Mann-Whitney U with midranks: equals the trapezoidal ROC area, ties counted as 1/2.
    ranks = rankdata(p)
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    n_positive = int(y.sum())
    if n_positive == 0 or n_positive == y.size:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # One operating point per distinct score (ties move together), as in sklearn.
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), y.size - 1]
    true_positives = np.cumsum(y_sorted)[last_of_tie]
    precision = true_positives / (last_of_tie + 1.0)
    recall = true_positives / n_positive
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    # floor(p * n) puts p = b/n in bin b exactly for decimal edges; p = 1 joins the last bin.
    return np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)


def _ece(y: np.ndarray, p: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float:
    if y.size == 0:
        return float("nan")
    bins = _bin_index(p, n_bins)
    gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    # sum_b (n_b / N) * |mean(y)_b - mean(p)_b| == sum_b |sum(y)_b - sum(p)_b| / N
    return float(gap.sum() / y.size)


def auroc(y_true, probability) -> float:
    """Area under the ROC curve (ties count 1/2); NaN when only one class is present.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].

    Returns
    -------
    float
        In [0, 1]; equals ``sklearn.metrics.roc_auc_score``.

    References
    ----------
    Hanley JA, McNeil BJ. The meaning and use of the area under a receiver operating
    characteristic (ROC) curve. Radiology 1982;143:29-36.
    """
    return _auroc(*_checked(y_true, probability))


def auprc(y_true, probability) -> float:
    """Area under the precision-recall curve as average precision; NaN unless both classes occur.

    Average precision is the sum over distinct thresholds of (recall step) x precision, with no
    interpolation, and equals ``sklearn.metrics.average_precision_score``. Its chance level is
    the prevalence, not 0.5.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].

    Returns
    -------
    float
        In [0, 1].
    """
    return _auprc(*_checked(y_true, probability))


def brier_score(y_true, probability) -> float:
    """Mean squared difference between probability and outcome (lower is better).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].

    Returns
    -------
    float
        In [0, 1]; NaN for no samples. Equals ``sklearn.metrics.brier_score_loss``.

    References
    ----------
    Brier GW. Verification of forecasts expressed in terms of probability. Monthly Weather
    Review 1950;78:1-3.
    """
    return _brier(*_checked(y_true, probability))


def expected_calibration_error(y_true, probability, *, n_bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error (ECE) over equal-width probability bins.

    The probabilities are put in ``n_bins`` equal-width bins on [0, 1]: bin ``b`` holds
    ``b / n_bins <= p < (b + 1) / n_bins`` and the last bin also holds ``p = 1``. Then

    ``ECE = sum_b (n_b / N) * |mean(y_true in b) - mean(probability in b)|``,

    i.e. the gaps of the reliability curve weighted by bin counts; empty bins add nothing.
    ``reliability_curve`` returns the per-bin points for a plot.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].
    n_bins : int, default 10
        Number of equal-width bins.

    Returns
    -------
    float
        In [0, 1], in probability units (0 = perfectly calibrated on these bins); NaN for no
        samples. Defined for a single class too.

    References
    ----------
    Naeini MP, Cooper GF, Hauskrecht M. Obtaining well calibrated probabilities using Bayesian
    binning. AAAI 2015:2901-7. Guo C et al. On calibration of modern neural networks. ICML 2017.
    """
    y, p = _checked(y_true, probability)
    return _ece(y, p, _n_bins(n_bins))


def _n_bins(n_bins) -> int:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    return int(n_bins)


def reliability_curve(y_true, probability, *, n_bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Points of the reliability (calibration) diagram, one row per bin of ``expected_calibration_error``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].
    n_bins : int, default 10
        Number of equal-width bins on [0, 1].

    Returns
    -------
    pandas.DataFrame of shape (n_bins, 5)
        ``bin_low``, ``bin_high`` (edges), ``n_samples``, ``mean_probability`` (x of the point)
        and ``observed_frequency`` (y of the point, the fraction of positives); the last two
        are NaN for an empty bin. Plot the points against the diagonal.
    """
    y, p = _checked(y_true, probability)
    n_bins = _n_bins(n_bins)
    bins = _bin_index(p, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_probability = np.bincount(bins, weights=p, minlength=n_bins) / counts
        observed = np.bincount(bins, weights=y, minlength=n_bins) / counts
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "n_samples": counts,
            "mean_probability": mean_probability,
            "observed_frequency": observed,
        }
    )


# --- bootstrap ---------------------------------------------------------------------------------


class ConfidenceInterval(NamedTuple):
    """A percentile bootstrap interval and how many replicates it rests on."""

    low: float
    high: float
    n_used: int
    """Replicates the percentiles were taken over."""
    n_skipped: int
    """Replicates skipped: a single outcome class was drawn, or the metric was NaN."""


def _check_bootstrap_args(n_boot, alpha) -> None:
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.05 for a 95% interval; got {alpha!r}")


def _replicates(
    metric_fns: dict[str, Callable[[np.ndarray, np.ndarray], float]],
    y: np.ndarray,
    p: np.ndarray,
    groups,
    n_boot: int,
    seed,
) -> dict[str, np.ndarray]:
    """Metric values per bootstrap replicate (NaN where skipped); all metrics share the resamples."""
    rng = np.random.default_rng(seed)
    values = {name: np.full(int(n_boot), np.nan) for name in metric_fns}
    if y.size == 0:
        return values
    if groups is None:
        codes, n_units = None, y.size
    else:
        codes = _group_codes(groups, y.size)
        n_units = int(codes.max()) + 1
    rows = np.arange(y.size)
    for b in range(int(n_boot)):
        draw = rng.integers(0, n_units, n_units)
        if codes is None:
            index = draw
        else:
            # Each drawn subject brings all its rows, as many times as it was drawn.
            index = np.repeat(rows, np.bincount(draw, minlength=n_units)[codes])
        y_b = y[index]
        n_positive = int(y_b.sum())
        if n_positive == 0 or n_positive == y_b.size:
            continue
        p_b = p[index]
        for name, fn in metric_fns.items():
            values[name][b] = fn(y_b, p_b)
    return values


def _interval(values: np.ndarray, alpha: float) -> ConfidenceInterval:
    used = values[np.isfinite(values)]
    if used.size == 0:
        return ConfidenceInterval(float("nan"), float("nan"), 0, int(values.size))
    low, high = np.quantile(used, [alpha / 2.0, 1.0 - alpha / 2.0])
    return ConfidenceInterval(float(low), float(high), int(used.size), int(values.size - used.size))


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true,
    probability,
    *,
    groups=None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed,
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of a metric, resampling subjects when given.

    Each replicate draws, with replacement, as many units as there are: samples, or, when
    ``groups`` is given, groups (subjects), each bringing all of its rows (cluster bootstrap).
    Rows of one subject are correlated (the same physiology, device and wear habits on every
    day), so resampling rows treats them as independent evidence and gives intervals that are
    too narrow; resampling subjects keeps that correlation inside every replicate.

    A replicate that draws a single outcome class is skipped and counted, as is one where the
    metric returns NaN: AUROC and AUPRC are undefined there, and the interval should describe
    samples like the evaluated one, which has both classes.

    Parameters
    ----------
    metric_fn : callable ``(y_true, probability) -> float``
        E.g. ``auroc``. Receives numpy arrays of the replicate.
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].
    groups : array-like of shape (n_samples,), optional
        Group (subject) id per sample; enables the cluster bootstrap.
    n_boot : int, default 1000
        Number of replicates drawn (skipped ones included). 0 gives a NaN interval.
    alpha : float, default 0.05
        1 - confidence level: the interval spans the alpha/2 and 1 - alpha/2 quantiles
        (numpy's linear interpolation) of the replicate values.
    seed : int or numpy.random.SeedSequence
        Seed of ``numpy.random.default_rng``; the same seed gives the same interval.

    Returns
    -------
    ConfidenceInterval
        ``(low, high, n_used, n_skipped)``; low and high are NaN when no replicate was used.

    References
    ----------
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993, ch. 13.
    Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369-90.
    """
    _check_bootstrap_args(n_boot, alpha)
    y, p = _checked(y_true, probability)
    return _interval(_replicates({"metric": metric_fn}, y, p, groups, n_boot, seed)["metric"], alpha)


# --- endpoint and subgroup tables ---------------------------------------------------------------

_ENDPOINT_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": _auroc,
    "auprc": _auprc,
    "brier": _brier,
    "calibration_error": _ece,
}


def endpoint_metrics(
    y_true,
    probability,
    *,
    groups=None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed,
) -> dict[str, float]:
    """Point estimates and bootstrap CIs of a binary endpoint model, as flat MLflow metric names.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary outcomes, 0/1.
    probability : array-like of shape (n_samples,)
        Predicted probability of the positive class, in [0, 1].
    groups : array-like of shape (n_samples,), optional
        Subject id per sample: the CIs then come from the cluster bootstrap (see
        ``bootstrap_ci``). Pass it whenever a subject has several rows.
    n_boot : int, default 1000
        Bootstrap replicates; all four metrics share the same resamples. 0 skips the CIs (NaN).
    alpha : float, default 0.05
        1 - confidence level of the intervals.
    seed : int
        Bootstrap seed; with the same seed the CI of a metric equals
        ``bootstrap_ci(<metric>, ..., seed=seed)``.

    Returns
    -------
    dict of str to float
        ``auroc``, ``auprc``, ``brier``, ``calibration_error`` (ECE, 10 equal-width bins), each
        with ``<name>_ci_low`` and ``<name>_ci_high``; ``n_samples``, ``n_positive``,
        ``n_groups`` (distinct groups, or n_samples without groups), ``bootstrap_n_replicates``
        and ``bootstrap_n_skipped`` (single-class replicates). Undefined values are NaN;
        ``undefined_reason(y_true)`` says why.
    """
    _check_bootstrap_args(n_boot, alpha)
    y, p = _checked(y_true, probability)
    n_groups = y.size if groups is None else int(np.unique(_group_codes(groups, y.size)).size)
    replicates = _replicates(_ENDPOINT_METRICS, y, p, groups, n_boot, seed)
    result: dict[str, float] = {
        "n_samples": float(y.size),
        "n_positive": float(y.sum()),
        "n_groups": float(n_groups),
    }
    skipped = 0
    for name, fn in _ENDPOINT_METRICS.items():
        interval = _interval(replicates[name], alpha)
        result[name] = fn(y, p)
        result[f"{name}_ci_low"] = interval.low
        result[f"{name}_ci_high"] = interval.high
        skipped = max(skipped, interval.n_skipped)
    result["bootstrap_n_replicates"] = float(n_boot)
    result["bootstrap_n_skipped"] = float(skipped)
    return result


def age_band(age_years):
    """Age band label of ``AGE_BANDS``: "<18", "18-39", "40-64", "65+"; NaN gives "unknown".

    Bands are by age in years with the lower edge included: 39.9 is "18-39", 40.0 is "40-64".

    Parameters
    ----------
    age_years : float or array-like of shape (n,)
        Age in years; NaN or None for unknown.

    Returns
    -------
    str, numpy.ndarray of object of shape (n,), or pandas.Series
        A label per age, with the input's index for a Series.

    Raises
    ------
    ValueError
        For a negative age.
    """
    if isinstance(age_years, pd.Series):
        ages = age_years.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        ages = np.asarray(age_years, dtype=np.float64)
    negative = np.flatnonzero(ages.reshape(-1) < 0)
    if negative.size:
        raise ValueError(f"age_years must be >= 0; got {ages.reshape(-1)[negative[:10]].tolist()}")
    labels = np.full(ages.shape, "unknown", dtype=object)
    for lowest, limit, label in AGE_BANDS:
        labels[(ages >= lowest) & (ages < limit)] = label
    if isinstance(age_years, pd.Series):
        return pd.Series(labels, index=age_years.index, name="age_band")
    return labels[()] if labels.ndim == 0 else labels


def subgroup_metrics(
    frame: pd.DataFrame,
    *,
    label_column: str,
    probability_column: str,
    subgroup_columns: Iterable[str] = ("site", "sex", "age_band"),
    group_column: str | None = "subject_id",
    min_samples: int = 20,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed,
) -> pd.DataFrame:
    """Endpoint metrics per subgroup (site, sex, age band...), to check performance is even.

    Parameters
    ----------
    frame : pandas.DataFrame of shape (n_samples, n_columns)
        One row per scored sample, with the label, the probability, the subgroup columns and
        ``group_column``. Add an age band with ``frame.assign(age_band=age_band(frame["age_years"]))``.
    label_column, probability_column : str
        The 0/1 outcome and the predicted probability of the positive class.
    subgroup_columns : iterable of str, default ("site", "sex", "age_band")
        Each column's distinct values form subgroups; a missing value forms "unknown".
    group_column : str or None, default "subject_id"
        Subject id for the cluster bootstrap; None resamples rows.
    min_samples : int, default 20
        Subgroups with fewer rows get NaN metrics and a note instead of unstable estimates.
    n_boot : int, default 200
        Bootstrap replicates per subgroup.
    alpha : float, default 0.05
        1 - confidence level.
    seed : int
        Bootstrap seed, the same for every subgroup, so a subgroup's row does not change
        when other subgroup columns are added.

    Returns
    -------
    pandas.DataFrame
        One row per (subgroup column, value), in column order then sorted value: ``subgroup``
        (the column), ``value`` (as text), ``n_samples``, ``n_positive``, ``n_groups``, the
        metrics and CIs of ``endpoint_metrics``, ``bootstrap_n_skipped`` and ``note`` (empty,
        or why metrics are NaN: too few samples, or a single class).
    """
    subgroup_columns = list(subgroup_columns)
    required = [label_column, probability_column, *subgroup_columns]
    if group_column is not None:
        required.append(group_column)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hint = " (derive it with age_band(frame['age_years']))" if "age_band" in missing else ""
        raise ValueError(
            f"frame has no column(s) {missing}{hint}; its columns are {list(frame.columns)}; "
            "pass subgroup_columns=... to choose others"
        )
    if int(min_samples) != min_samples or min_samples < 1:
        raise ValueError(f"min_samples must be a positive integer; got {min_samples!r}")
    y_all, p_all = _checked(frame[label_column].to_numpy(), frame[probability_column].to_numpy())

    metric_columns = [
        column for name in _ENDPOINT_METRICS for column in (name, f"{name}_ci_low", f"{name}_ci_high")
    ]
    rows = []
    for column in subgroup_columns:
        values = frame[column].astype(object).where(frame[column].notna(), "unknown").astype(str).to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            y, p = y_all[mask], p_all[mask]
            groups = None if group_column is None else frame[group_column].to_numpy()[mask]
            row = {
                "subgroup": column,
                "value": value,
                "n_samples": int(mask.sum()),
                "n_positive": int(y.sum()),
                "n_groups": int(pd.unique(groups).size) if groups is not None else int(mask.sum()),
            }
            if row["n_samples"] < min_samples:
                row.update(dict.fromkeys(metric_columns, float("nan")))
                row["bootstrap_n_skipped"] = float("nan")
                row["note"] = f"too few samples: {row['n_samples']} < min_samples={min_samples}"
            else:
                metrics = endpoint_metrics(y, p, groups=groups, n_boot=n_boot, alpha=alpha, seed=seed)
                row.update({key: metrics[key] for key in metric_columns})
                row["bootstrap_n_skipped"] = metrics["bootstrap_n_skipped"]
                row["note"] = undefined_reason(y) or ""
            rows.append(row)
    identity = ["subgroup", "value", "n_samples", "n_positive", "n_groups"]
    return pd.DataFrame(rows, columns=[*identity, *metric_columns, "bootstrap_n_skipped", "note"])


# --- anomaly detection ---------------------------------------------------------------------------


def flag_anomalies(scores, threshold: float) -> np.ndarray:
    """Boolean flags ``scores > threshold`` for anomaly scores (higher = more anomalous)."""
    return np.asarray(scores, dtype=np.float64) > threshold


def precision_recall_f1(y_true, flagged) -> dict[str, float]:
    """Precision, recall and F1 of anomaly flags against known anomalies.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 (or True) for a known anomaly, 0 for a normal sample.
    flagged : array-like of shape (n_samples,)
        1 (or True) where the detector flagged the sample. An sklearn outlier detector's
        ``predict`` gives -1/+1: pass ``predict(X) == -1``.

    Returns
    -------
    dict of str to float
        ``precision`` (NaN when nothing is flagged), ``recall`` (NaN when there is no known
        anomaly), ``f1`` (NaN when either is NaN; 0 when both are 0), ``n_flagged``,
        ``n_anomalies``, ``n_samples``.
    """
    y = _labels(y_true).astype(bool)
    flags = _labels(flagged, "flagged").astype(bool)
    if flags.shape != y.shape:
        raise ValueError(f"flagged must have shape {y.shape} like y_true; got {flags.shape}")
    true_positive = float(np.sum(y & flags))
    n_flagged, n_anomalies = float(flags.sum()), float(y.sum())
    precision = true_positive / n_flagged if n_flagged else float("nan")
    recall = true_positive / n_anomalies if n_anomalies else float("nan")
    if np.isnan(precision) or np.isnan(recall):
        f1 = float("nan")
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_flagged": n_flagged,
        "n_anomalies": n_anomalies,
        "n_samples": float(y.size),
    }


def choose_threshold(scores, *, method: str, y_true=None, quantile: float | None = None) -> tuple[float, dict]:
    """Choose the anomaly-score threshold above which samples are flagged, and describe the choice.

    Methods
    -------
    ``"quantile"`` (unsupervised)
        ``scores`` are those of presumed-normal training data; the threshold is their
        ``quantile`` (numpy's linear interpolation), so about ``1 - quantile`` of normal data is
        flagged. ``y_true`` must be None.
    ``"max_f1"`` (supervised)
        ``scores`` and ``y_true`` come from a labelled validation part; the threshold maximizes
        F1, placed halfway between the lowest flagged and the highest unflagged distinct score.
        Among equal F1 the higher threshold (fewer flags) wins.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher = more anomalous (e.g. ``-detector.score_samples(X)``).
    method : {"quantile", "max_f1"}
    y_true : array-like of shape (n_samples,), optional
        Known anomalies (1) for "max_f1"; both classes required.
    quantile : float in (0, 1), optional
        Required for "quantile", e.g. 0.99.

    Returns
    -------
    threshold : float
        Flag with ``flag_anomalies(scores, threshold)``, i.e. ``scores > threshold``.
    info : dict
        ``method``, ``threshold``, ``n_scores`` and, for "quantile", ``quantile`` and
        ``flagged_fraction`` on the given scores; for "max_f1", ``f1``, ``precision``,
        ``recall``, ``n_flagged`` and ``n_anomalies``. Ready to log as MLflow params.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-dimensional array; got shape {s.shape}")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"scores has {bad.size} NaN or infinite value(s) at positions {bad[:10].tolist()}")
    if method == "quantile":
        if y_true is not None:
            raise ValueError("method='quantile' is unsupervised: pass y_true=None, or use method='max_f1'")
        if quantile is None or not 0.0 < quantile < 1.0:
            raise ValueError(f"method='quantile' needs quantile in (0, 1), e.g. 0.99; got {quantile!r}")
        threshold = float(np.quantile(s, quantile))
        info = {
            "method": "quantile",
            "quantile": float(quantile),
            "threshold": threshold,
            "n_scores": s.size,
            "flagged_fraction": float(np.mean(s > threshold)),
        }
        return threshold, info
    if method == "max_f1":
        if y_true is None:
            raise ValueError("method='max_f1' needs y_true (1 = known anomaly) on a labelled validation part")
        if quantile is not None:
            raise ValueError("quantile applies to method='quantile' only")
        y = _labels(y_true)
        if y.shape != s.shape:
            raise ValueError(f"y_true must have shape {s.shape} like scores; got {y.shape}")
        n_anomalies = int(y.sum())
        if n_anomalies in (0, y.size):
            raise ValueError(
                "method='max_f1' needs both known anomalies and normal samples in y_true; "
                f"got {n_anomalies} anomalies in {y.size} samples"
            )
        order = np.argsort(-s, kind="mergesort")
        s_sorted, y_sorted = s[order], y[order]
        # Candidate k = flag the top k samples, cut only between distinct scores.
        cut_after = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
        true_positive = np.cumsum(y_sorted)[cut_after]
        n_flagged = cut_after + 1
        f1 = 2.0 * true_positive / (n_flagged + n_anomalies)
        best = int(np.argmax(f1))  # first maximum = fewest flags
        k = int(n_flagged[best])
        if k == s.size:
            threshold = float(np.nextafter(s_sorted[-1], -np.inf))
        else:
            high, low = s_sorted[k - 1], s_sorted[k]
            middle = (high + low) / 2.0
            threshold = float(middle if low <= middle < high else low)
        tp = float(true_positive[best])
        info = {
            "method": "max_f1",
            "threshold": threshold,
            "n_scores": s.size,
            "f1": float(f1[best]),
            "precision": tp / k,
            "recall": tp / n_anomalies,
            "n_flagged": k,
            "n_anomalies": n_anomalies,
        }
        return threshold, info
    raise ValueError(f"unknown threshold method {method!r}; choose 'quantile' or 'max_f1'")
