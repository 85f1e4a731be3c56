"""Grouped and site-holdout splits: no subject in both parts, stratified outcomes, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.splits import GroupOverlapError, assert_no_group_overlap, grouped_train_test_split, site_holdout_split


def _cohort(n_subjects: int = 40, rows_per_subject: int = 3, positive_every: int = 4) -> pd.DataFrame:
    """Subjects S00.. with several rows each; every `positive_every`-th subject has one positive row."""
    rows = []
    for s in range(n_subjects):
        for r in range(rows_per_subject):
            positive = s % positive_every == 0 and r == rows_per_subject - 1  # endpoint occurs at the last visit
            rows.append({"subject_id": f"S{s:02d}", "site": "ABC"[s % 3], "label": int(positive), "x": float(r)})
    # shuffled rows: the split must not depend on row order
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(12))
def test_grouped_split_never_shares_a_subject_and_keeps_both_classes(seed):
    frame = _cohort()
    train, test = grouped_train_test_split(frame, label_column="label", seed=seed)

    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(len(frame)))
    train_subjects = set(frame.iloc[train]["subject_id"])
    test_subjects = set(frame.iloc[test]["subject_id"])
    assert not train_subjects & test_subjects
    assert_no_group_overlap(frame.iloc[train], frame.iloc[test])
    for part in (train, test):
        per_subject = frame.iloc[part].groupby("subject_id")["label"].max()
        assert set(per_subject) == {0, 1}
    # 10 positive and 30 negative subjects: round(0.25 * 10) = 2 and round(0.25 * 30) = 8 in test
    test_outcome = frame.iloc[test].groupby("subject_id")["label"].max()
    assert (int(test_outcome.sum()), len(test_outcome)) == (2, 10)


def test_grouped_split_is_reproducible_and_seed_dependent():
    frame = _cohort()
    first = grouped_train_test_split(frame, label_column="label", seed=7)
    again = grouped_train_test_split(frame, label_column="label", seed=7)
    other = grouped_train_test_split(frame, label_column="label", seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


def test_grouped_split_does_not_depend_on_row_order():
    frame = _cohort()
    shuffled = frame.sample(frac=1.0, random_state=3)
    _, test = grouped_train_test_split(frame, label_column="label", seed=0)
    _, test_shuffled = grouped_train_test_split(shuffled, label_column="label", seed=0)
    assert set(frame.iloc[test]["subject_id"]) == set(shuffled.iloc[test_shuffled]["subject_id"])


def test_grouped_split_without_stratification_still_never_shares_a_subject():
    frame = _cohort(positive_every=2)
    for seed in range(5):
        train, test = grouped_train_test_split(frame, label_column="label", seed=seed, stratify=False)
        assert not set(frame.iloc[train]["subject_id"]) & set(frame.iloc[test]["subject_id"])


def test_grouped_split_errors_name_the_problem():
    frame = _cohort()
    with pytest.raises(ValueError, match=r"at least 2 distinct subject_id values; found 1 \(S00\)"):
        grouped_train_test_split(frame[frame.subject_id == "S00"], label_column="label", seed=0)
    one_positive = frame.assign(label=np.where(frame.subject_id == "S00", frame.label, 0))
    with pytest.raises(ValueError, match=r"only 1 positive subject_id value\(s\) in label \(S00\).*add subjects"):
        grouped_train_test_split(one_positive, label_column="label", seed=0)
    with pytest.raises(ValueError, match=r"no column\(s\) \['outcome'\]"):
        grouped_train_test_split(frame, label_column="outcome", seed=0)
    with pytest.raises(ValueError, match="must hold 0/1"):
        grouped_train_test_split(frame.assign(label=frame.label * 2), label_column="label", seed=0)
    with pytest.raises(ValueError, match="label is missing in 1 row.*drop unlabelled rows"):
        grouped_train_test_split(frame.assign(label=frame.label.where(frame.index != 5)), label_column="label", seed=0)
    with pytest.raises(ValueError, match="subject_id is missing in 1 row"):
        grouped_train_test_split(
            frame.assign(subject_id=frame.subject_id.where(frame.index != 2)), label_column="label", seed=0
        )
    with pytest.raises(ValueError, match=r"test_size must be a fraction of groups in \(0, 1\)"):
        grouped_train_test_split(frame, label_column="label", seed=0, test_size=1.5)


def test_unstratified_split_with_a_single_class_part_says_what_to_do():
    # 2 of 10 subjects positive and a single test subject: the test part cannot hold both classes
    frame = _cohort(n_subjects=10, rows_per_subject=2, positive_every=5)
    with pytest.raises(ValueError, match=r"test part holds only (negative|positive) subjects; pass stratify=True"):
        grouped_train_test_split(frame, label_column="label", seed=0, test_size=0.1, stratify=False)


def test_site_holdout_puts_the_whole_site_in_test():
    frame = _cohort()
    train, test = site_holdout_split(frame, holdout_site="B")
    assert set(frame.iloc[test]["site"]) == {"B"}
    assert "B" not in set(frame.iloc[train]["site"])
    assert len(train) + len(test) == len(frame)
    assert_no_group_overlap(frame.iloc[train], frame.iloc[test])


def test_site_holdout_errors():
    frame = _cohort()
    with pytest.raises(ValueError, match=r"holdout_site 'Z' is not in column 'site'; known sites: A, B, C"):
        site_holdout_split(frame, holdout_site="Z")
    moved = frame.copy()
    moved.loc[moved.index[moved.subject_id == "S01"][0], "site"] = "C"  # S01 is at site B
    with pytest.raises(ValueError, match=r"1 subject_id value\(s\) appear in more than one site: S01 \(B, C\)"):
        site_holdout_split(moved, holdout_site="A")
    with pytest.raises(ValueError, match="only site"):
        site_holdout_split(frame.assign(site="A"), holdout_site="A")
    with pytest.raises(ValueError, match="site is missing in 1 row"):
        site_holdout_split(frame.assign(site=frame.site.where(frame.index != 0)), holdout_site="A")


def test_assert_no_group_overlap_names_the_overlapping_ids():
    assert assert_no_group_overlap(["a", "b"], ["c"]) is None
    with pytest.raises(GroupOverlapError, match=r"2 subject_id value\(s\) are in both train and test: b, c") as error:
        assert_no_group_overlap(pd.DataFrame({"subject_id": ["a", "b", "c"]}), np.array(["c", "b", "d"]))
    assert error.value.overlapping == ("b", "c")
    assert isinstance(error.value, ValueError)
