"""Endpoint and anomaly metrics: agreement with sklearn, a hand-computed ECE, bootstrap CIs, subgroups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training.metrics import (
    age_band,
    auprc,
    auroc,
    bootstrap_ci,
    brier_score,
    choose_threshold,
    endpoint_metrics,
    expected_calibration_error,
    flag_anomalies,
    precision_recall_f1,
    reliability_curve,
    subgroup_metrics,
    undefined_reason,
)


def _scored(n: int = 200, seed: int = 0, decimals: int = 2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1).round(decimals)  # rounding makes ties
    return y, p


# --- point metrics ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_point_metrics_equal_sklearn_including_ties(seed):
    y, p = _scored(seed=seed, decimals=1)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_metrics_accept_booleans_and_lists():
    assert auroc([False, True, True], [0.2, 0.9, 0.4]) == 1.0
    y, p = [0, 1, 0, 1], [0.1, 0.8, 0.8, 0.3]
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p))


def test_single_class_gives_nan_with_a_reason_instead_of_raising():
    y, p = np.zeros(12, dtype=int), np.linspace(0, 1, 12)
    assert np.isnan(auroc(y, p)) and np.isnan(auprc(y, p))
    assert np.isnan(auprc(np.ones(3), [0.2, 0.5, 0.9]))
    assert undefined_reason(y) == "single class: all 12 samples are negative (0); AUROC and AUPRC need both classes"
    assert undefined_reason([1, 1]).startswith("single class: all 2 samples are positive (1)")
    assert undefined_reason([]) == "no samples"
    assert undefined_reason([0, 1]) is None
    # calibration metrics stay defined on one class
    assert brier_score(y, p) == pytest.approx(np.mean(p**2))
    assert np.isfinite(expected_calibration_error(y, p))
    assert np.isnan(brier_score([], []))


def test_malformed_input_raises():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] without NaN; 1 value\(s\) do not, at positions \[1\]"):
        auroc([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match="without NaN"):
        brier_score([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match=r"must have shape \(2,\) like y_true"):
        auroc([0, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"y_true must hold 0/1 outcomes; found \[2\]"):
        auroc([0, 2], [0.2, 0.3])


# --- calibration --------------------------------------------------------------------------------


def test_expected_calibration_error_on_a_hand_computed_example():
    # bins (width 0.1): [0.0,0.1) p=0.05 y=0 -> gap 0.05, n=1
    #                   [0.1,0.2) p=0.15,0.15 y=0,1 -> |0.5-0.15| = 0.35, n=2
    #                   [0.8,0.9) p=0.85 y=1 -> 0.15, n=1
    #                   [0.9,1.0] p=0.95,0.95 y=1,0 -> |0.5-0.95| = 0.45, n=2
    # ECE = (1*0.05 + 2*0.35 + 1*0.15 + 2*0.45) / 6 = 1.8 / 6 = 0.3
    y = [0, 0, 1, 1, 1, 0]
    p = [0.05, 0.15, 0.15, 0.85, 0.95, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.3, abs=1e-12)

    curve = reliability_curve(y, p)
    assert list(curve.columns) == ["bin_low", "bin_high", "n_samples", "mean_probability", "observed_frequency"]
    assert curve["n_samples"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 1, 2]
    assert curve.loc[1, ["mean_probability", "observed_frequency"]].tolist() == pytest.approx([0.15, 0.5])
    assert curve.loc[[2, 3], "observed_frequency"].isna().all()
    assert curve["bin_low"].tolist() == pytest.approx(np.arange(10) / 10)


def test_calibration_bin_edges_and_perfect_calibration():
    # 0.3 opens bin [0.3, 0.4); 1.0 joins the last bin
    curve = reliability_curve([0, 1, 1], [0.3, 0.39, 1.0])
    assert curve["n_samples"].tolist() == [0, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    # a quarter positive at p = 0.25: calibrated
    assert expected_calibration_error([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0.0)
    assert expected_calibration_error([1, 0], [0.5, 0.5], n_bins=1) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        expected_calibration_error([1, 0], [0.5, 0.5], n_bins=0)


# --- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_estimate_and_is_reproducible():
    y, p = _scored(n=150)
    first = bootstrap_ci(auroc, y, p, n_boot=200, seed=11)
    again = bootstrap_ci(auroc, y, p, n_boot=200, seed=11)
    other = bootstrap_ci(auroc, y, p, n_boot=200, seed=12)
    assert first == again
    assert first != other
    assert first.low < auroc(y, p) < first.high
    assert first.n_used + first.n_skipped == 200 and first.n_skipped == 0
    narrow = bootstrap_ci(auroc, y, p, n_boot=200, alpha=0.5, seed=11)
    assert first.low < narrow.low < narrow.high < first.high


def test_bootstrap_skips_and_counts_single_class_replicates():
    y = np.array([1] + [0] * 9)
    p = np.linspace(0.1, 0.9, 10)
    interval = bootstrap_ci(auroc, y, p, n_boot=300, seed=0)
    # the one positive is missed with probability 0.9**10 ~ 0.35 per replicate
    assert 60 < interval.n_skipped < 160
    assert interval.n_used + interval.n_skipped == 300
    nothing = bootstrap_ci(auroc, np.zeros(5), np.full(5, 0.5), n_boot=50, seed=0)
    assert np.isnan(nothing.low) and np.isnan(nothing.high) and nothing.n_skipped == 50
    assert np.isnan(bootstrap_ci(auroc, y, p, n_boot=0, seed=0).low)


def test_cluster_bootstrap_resamples_whole_subjects():
    n_subjects, rows = 12, 4
    groups = np.repeat([f"S{i}" for i in range(n_subjects)], rows)
    y = np.tile([0, 1, 0, 1], n_subjects)
    row_id = np.arange(groups.size)
    p = row_id / groups.size  # encodes the row, so a replicate tells which rows it drew

    def drawn_rows(store):
        def metric(y_b, p_b):
            store.append(np.rint(p_b * groups.size).astype(int))
            return 0.5

        return metric

    clustered: list = []
    bootstrap_ci(drawn_rows(clustered), y, p, groups=groups, n_boot=30, seed=0)
    for rows_drawn in clustered:
        counts = np.bincount(rows_drawn, minlength=groups.size).reshape(n_subjects, rows)
        assert (counts == counts[:, :1]).all()  # a subject's rows are drawn together, equally often
        assert counts[:, 0].sum() == n_subjects  # as many subjects drawn as there are

    by_row: list = []
    bootstrap_ci(drawn_rows(by_row), y, p, n_boot=30, seed=0)
    assert any((np.bincount(r, minlength=groups.size).reshape(n_subjects, rows).std(axis=1) > 0).any() for r in by_row)


def test_cluster_bootstrap_is_wider_when_rows_of_a_subject_agree():
    # 20 subjects x 10 identical rows: only 20 independent units, not 200
    rng = np.random.default_rng(5)
    subject_y = np.tile([0, 1], 10)
    subject_p = np.clip(0.2 + 0.3 * subject_y + rng.normal(0, 0.2, 20), 0, 1)
    y, p, groups = np.repeat(subject_y, 10), np.repeat(subject_p, 10), np.repeat(np.arange(20), 10)
    by_row = bootstrap_ci(auroc, y, p, n_boot=300, seed=1)
    by_subject = bootstrap_ci(auroc, y, p, groups=groups, n_boot=300, seed=1)
    assert by_subject.high - by_subject.low > 2 * (by_row.high - by_row.low)


def test_bootstrap_argument_errors():
    y, p = _scored(n=20)
    with pytest.raises(ValueError, match="alpha must be in"):
        bootstrap_ci(auroc, y, p, alpha=1.5, seed=0)
    with pytest.raises(ValueError, match="n_boot must be a non-negative integer"):
        bootstrap_ci(auroc, y, p, n_boot=-1, seed=0)
    with pytest.raises(ValueError, match=r"groups must have one id per sample \(20\); got 3"):
        bootstrap_ci(auroc, y, p, groups=[1, 2, 3], seed=0)


# --- endpoint and subgroup tables ---------------------------------------------------------------


def test_endpoint_metrics_flat_names_match_point_metrics_and_bootstrap():
    y, p = _scored(n=120)
    groups = np.repeat(np.arange(40), 3)
    result = endpoint_metrics(y, p, groups=groups, n_boot=100, seed=3)
    expected_keys = {"n_samples", "n_positive", "n_groups", "bootstrap_n_replicates", "bootstrap_n_skipped"}
    for name in ("auroc", "auprc", "brier", "calibration_error"):
        expected_keys |= {name, f"{name}_ci_low", f"{name}_ci_high"}
    assert set(result) == expected_keys
    assert all(isinstance(value, float) for value in result.values())
    assert (result["n_samples"], result["n_positive"], result["n_groups"]) == (120, y.sum(), 40)
    assert result["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert result["auprc"] == pytest.approx(average_precision_score(y, p))
    assert result["brier"] == pytest.approx(brier_score_loss(y, p))
    assert result["calibration_error"] == pytest.approx(expected_calibration_error(y, p))
    interval = bootstrap_ci(auroc, y, p, groups=groups, n_boot=100, seed=3)
    assert (result["auroc_ci_low"], result["auroc_ci_high"]) == (interval.low, interval.high)
    for name in ("auroc", "auprc", "brier", "calibration_error"):
        assert result[f"{name}_ci_low"] <= result[name] <= result[f"{name}_ci_high"]
    assert result == endpoint_metrics(y, p, groups=groups, n_boot=100, seed=3)

    no_ci = endpoint_metrics(y, p, n_boot=0, seed=0)
    assert np.isnan(no_ci["auroc_ci_low"]) and no_ci["n_groups"] == 120


def test_age_band_labels_and_boundaries():
    ages = [0, 17.9, 18, 39.99, 40, 64.9, 65, 101, np.nan, None]
    expected = ["<18", "<18", "18-39", "18-39", "40-64", "40-64", "65+", "65+", "unknown", "unknown"]
    assert age_band(ages).tolist() == expected
    assert age_band(52) == "40-64"
    assert age_band(float("nan")) == "unknown"
    series = pd.Series([30.0, None], index=["a", "b"], dtype="Float64")
    banded = age_band(series)
    assert banded.index.tolist() == ["a", "b"] and banded.tolist() == ["18-39", "unknown"]
    with pytest.raises(ValueError, match=r"age_years must be >= 0; got \[-1.0\]"):
        age_band([30, -1])


def test_subgroup_metrics_notes_single_class_and_small_groups():
    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame(
        {
            "subject_id": np.repeat(np.arange(40), 2),
            "site": ["A"] * 40 + ["B"] * 30 + ["C"] * 10,
            "sex": np.tile(["F", "M"], 40),
            "age_years": np.repeat(rng.uniform(20, 80, 40), 2),
        }
    )
    frame["label"] = np.where(frame.site == "B", 0, np.tile([0, 1], 40))
    frame["probability"] = np.clip(0.5 * frame.label + rng.uniform(0, 0.5, n), 0, 1)
    frame.loc[0, "sex"] = None
    frame = frame.assign(age_band=age_band(frame["age_years"]))

    table = subgroup_metrics(frame, label_column="label", probability_column="probability", n_boot=50, seed=0)

    assert table.columns[:5].tolist() == ["subgroup", "value", "n_samples", "n_positive", "n_groups"]
    assert table.columns[-1] == "note"
    site = table[table.subgroup == "site"].set_index("value")
    assert site.loc["A", "note"] == "" and site.loc["A", "auroc"] == pytest.approx(1.0)
    assert site.loc["A", "auroc_ci_low"] <= 1.0
    assert site.loc["B", "note"].startswith("single class: all 30 samples are negative")
    assert np.isnan(site.loc["B", "auroc"]) and np.isfinite(site.loc["B", "brier"])
    assert site.loc["C", "note"] == "too few samples: 10 < min_samples=20"
    assert np.isnan(site.loc["C", "brier"])
    assert (site.loc["A", "n_samples"], site.loc["A", "n_groups"]) == (40, 20)
    sex = table[table.subgroup == "sex"].set_index("value")
    assert sex.index.tolist() == ["F", "M", "unknown"]
    assert set(table[table.subgroup == "age_band"]["value"]) <= {"18-39", "40-64", "65+"}

    with pytest.raises(ValueError, match=r"no column\(s\) \['age_band'\] \(derive it with age_band"):
        subgroup_metrics(frame.drop(columns="age_band"), label_column="label", probability_column="probability", seed=0)


# --- anomaly metrics ----------------------------------------------------------------------------


def test_precision_recall_f1_matches_sklearn_and_handles_empty_cases():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    flagged = np.array([1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)
    result = precision_recall_f1(y, flagged)
    assert result["precision"] == pytest.approx(precision_score(y, flagged))
    assert result["recall"] == pytest.approx(recall_score(y, flagged))
    assert result["f1"] == pytest.approx(f1_score(y, flagged))
    assert (result["n_flagged"], result["n_anomalies"], result["n_samples"]) == (3, 3, 8)
    none_flagged = precision_recall_f1(y, np.zeros(8))
    assert np.isnan(none_flagged["precision"]) and none_flagged["recall"] == 0 and np.isnan(none_flagged["f1"])
    assert precision_recall_f1([1, 0], [0, 1])["f1"] == 0.0
    with pytest.raises(ValueError, match=r"flagged must hold 0/1 outcomes; found \[-1\]"):
        precision_recall_f1(y, np.where(flagged, -1, 1))


def test_quantile_threshold_is_unsupervised_and_described():
    scores = np.random.default_rng(0).normal(size=1000)
    threshold, info = choose_threshold(scores, method="quantile", quantile=0.95)
    assert threshold == pytest.approx(np.quantile(scores, 0.95))
    assert info == {
        "method": "quantile",
        "quantile": 0.95,
        "threshold": threshold,
        "n_scores": 1000,
        "flagged_fraction": pytest.approx(0.05, abs=0.002),
    }
    assert flag_anomalies(scores, threshold).sum() == 50
    with pytest.raises(ValueError, match="unsupervised: pass y_true=None"):
        choose_threshold(scores, method="quantile", quantile=0.9, y_true=np.zeros(1000))
    with pytest.raises(ValueError, match=r"needs quantile in \(0, 1\)"):
        choose_threshold(scores, method="quantile")


def test_max_f1_threshold_maximizes_f1_over_all_cuts():
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=300) < 0.1).astype(int)
    scores = rng.normal(size=300) + 2.0 * y
    threshold, info = choose_threshold(scores, method="max_f1", y_true=y)
    achieved = precision_recall_f1(y, flag_anomalies(scores, threshold))
    assert achieved["f1"] == pytest.approx(info["f1"])
    assert (achieved["precision"], achieved["recall"]) == pytest.approx((info["precision"], info["recall"]))
    best_brute = max(f1_score(y, scores >= cut) for cut in np.unique(scores))
    assert info["f1"] == pytest.approx(best_brute)
    assert info["method"] == "max_f1" and info["n_anomalies"] == y.sum()

    separable, info = choose_threshold([0.1, 0.2, 0.8, 0.9], method="max_f1", y_true=[0, 0, 1, 1])
    assert separable == pytest.approx(0.5) and info["f1"] == 1.0
    everything, _ = choose_threshold([0.1, 0.1], method="max_f1", y_true=[1, 0])
    assert flag_anomalies([0.1, 0.1], everything).all()


def test_threshold_errors():
    with pytest.raises(ValueError, match="needs y_true"):
        choose_threshold([0.1, 0.2], method="max_f1")
    with pytest.raises(ValueError, match="needs both known anomalies and normal samples"):
        choose_threshold([0.1, 0.2], method="max_f1", y_true=[0, 0])
    with pytest.raises(ValueError, match="unknown threshold method 'iqr'; choose 'quantile' or 'max_f1'"):
        choose_threshold([0.1, 0.2], method="iqr")
    with pytest.raises(ValueError, match="1 NaN or infinite value"):
        choose_threshold([0.1, np.nan], method="quantile", quantile=0.5)
