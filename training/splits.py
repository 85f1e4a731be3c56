"""Train/test splits grouped by subject, and a whole-site holdout.

Rows of one subject (one row per subject per window) are correlated: a model that saw some of a
subject's windows in training scores that subject's other windows too well. Every split here
keeps each subject entirely in one part, and ``assert_no_group_overlap`` checks it.

Splits return positional row indices (``frame.iloc[train_index]``), like scikit-learn's
splitters. Nothing here reads files or a clock, and no input is mutated.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "GroupOverlapError",
    "assert_no_group_overlap",
    "grouped_train_test_split",
    "site_holdout_split",
]

_MAX_LISTED = 10  # ids named in an error message; the count says how many more there are


class GroupOverlapError(ValueError):
    """Raised when a group (subject) has rows in both the train and the test part.

    Attributes
    ----------
    overlapping : tuple
        The group ids found in both parts, sorted.
    """

    def __init__(self, message: str, overlapping: tuple) -> None:
        super().__init__(message)
        self.overlapping = overlapping


def _listed(values: Iterable) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def _require_columns(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}; its columns are {list(frame.columns)}")


def _group_ids(frame: pd.DataFrame, group_column: str) -> pd.Series:
    groups = frame[group_column]
    missing = np.flatnonzero(groups.isna().to_numpy())
    if missing.size:
        raise ValueError(
            f"{group_column} is missing in {missing.size} row(s) (positions {_listed(missing)}); "
            "every row needs a subject so that no subject can land in both parts"
        )
    return groups


def _binary_labels(frame: pd.DataFrame, label_column: str) -> np.ndarray:
    labels = frame[label_column]
    missing = np.flatnonzero(labels.isna().to_numpy())
    if missing.size:
        raise ValueError(
            f"{label_column} is missing in {missing.size} row(s) (positions {_listed(missing)}); "
            "drop unlabelled rows before splitting"
        )
    values = labels.to_numpy()
    bad = sorted({v for v in pd.unique(values) if v not in (0, 1)}, key=str)
    if bad:
        raise ValueError(f"{label_column} must hold 0/1 (or True/False) outcomes; found {_listed(bad)}")
    return values.astype(bool)


def grouped_train_test_split(
    frame: pd.DataFrame,
    *,
    group_column: str = "subject_id",
    label_column: str,
    test_size: float = 0.25,
    seed: int,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and test parts with every group (subject) in exactly one part.

    Groups, not rows, are shuffled and assigned. With ``stratify=True`` the groups are assigned
    per outcome class: a group is positive when any of its rows is positive (an endpoint that
    occurs once makes the subject a case), and about ``test_size`` of the positive groups and
    of the negative groups go to the test part, with at least one group of each class in each
    part. Rows of a group may have different labels; they stay together.

    Parameters
    ----------
    frame : pandas.DataFrame of shape (n_rows, n_columns)
        One row per sample; holds ``group_column`` and ``label_column``. Not modified.
    group_column : str, default "subject_id"
        The column whose values must not appear in both parts.
    label_column : str
        The binary outcome column: 0/1 or False/True, no missing values.
    test_size : float, default 0.25
        Fraction of groups (not rows) for the test part, in (0, 1). Each part gets at least
        one group.
    seed : int
        Seed of the shuffle; the same seed and frame give the same split.
    stratify : bool, default True
        Assign groups per outcome class (see above). With False, groups are shuffled
        regardless of outcome and a part may end up with a single class, which raises.

    Returns
    -------
    train_index, test_index : numpy.ndarray of int64, shapes (n_train,), (n_test,)
        Sorted positional row indices into ``frame`` (use ``frame.iloc[...]``); together they
        cover every row once.

    Raises
    ------
    ValueError
        When a column is missing, a group id or label is missing, labels are not binary,
        ``test_size`` is outside (0, 1), there are fewer than 2 groups, or a part would hold
        a single outcome class (the message says which and what to do).
    """
    _require_columns(frame, [group_column, label_column])
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be a fraction of groups in (0, 1); got {test_size!r}")
    groups = _group_ids(frame, group_column)
    labels = _binary_labels(frame, label_column)

    # Codes follow the sorted unique ids, so the split does not depend on row order.
    codes, unique_groups = pd.factorize(groups, sort=True)
    n_groups = len(unique_groups)
    if n_groups < 2:
        raise ValueError(
            f"a grouped split needs at least 2 distinct {group_column} values; found {n_groups} "
            f"({_listed(unique_groups)}): add subjects, or evaluate without a held-out test part"
        )
    group_positive = np.bincount(codes, weights=labels, minlength=n_groups) > 0
    rng = np.random.default_rng(seed)

    if stratify:
        test_groups = []
        for is_positive in (False, True):
            members = np.flatnonzero(group_positive == is_positive)
            name = "positive" if is_positive else "negative"
            if members.size < 2:
                raise ValueError(
                    f"only {members.size} {name} {group_column} value(s) in {label_column} "
                    f"({_listed(unique_groups[members])}): both parts need at least one {name} subject "
                    "for a binary endpoint to be trained and evaluated; add subjects, or use a "
                    "cross-validated evaluation on all subjects instead of a holdout"
                )
            n_test = int(np.clip(round(test_size * members.size), 1, members.size - 1))
            test_groups.append(rng.permutation(members)[:n_test])
        is_test_group = np.zeros(n_groups, dtype=bool)
        is_test_group[np.concatenate(test_groups)] = True
    else:
        n_test = int(np.clip(round(test_size * n_groups), 1, n_groups - 1))
        is_test_group = np.zeros(n_groups, dtype=bool)
        is_test_group[rng.permutation(n_groups)[:n_test]] = True
        for part, in_part in (("train", ~is_test_group), ("test", is_test_group)):
            classes = np.unique(group_positive[in_part])
            if classes.size < 2:
                raise ValueError(
                    f"with stratify=False and seed={seed} the {part} part holds only "
                    f"{'positive' if classes[0] else 'negative'} subjects; pass stratify=True "
                    "(or another seed) so that both parts contain both classes"
                )

    is_test_row = is_test_group[codes]
    return np.flatnonzero(~is_test_row).astype(np.int64), np.flatnonzero(is_test_row).astype(np.int64)


def site_holdout_split(
    frame: pd.DataFrame,
    *,
    site_column: str = "site",
    holdout_site,
    group_column: str = "subject_id",
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out one whole site as the test part (external validation on an unseen site).

    Parameters
    ----------
    frame : pandas.DataFrame of shape (n_rows, n_columns)
        One row per sample; holds ``site_column`` and ``group_column``. Not modified.
    site_column : str, default "site"
        The column naming each row's site (hospital unit or study centre).
    holdout_site : scalar
        The site whose rows form the test part.
    group_column : str, default "subject_id"
        Each subject must belong to a single site, else the holdout would leak subjects.

    Returns
    -------
    train_index, test_index : numpy.ndarray of int64, shapes (n_train,), (n_test,)
        Sorted positional row indices: the other sites' rows, and ``holdout_site``'s rows.

    Raises
    ------
    ValueError
        When a column is missing, a site or subject id is missing, ``holdout_site`` is not a
        known site (the known sites are listed), it is the only site, or a subject appears
        in more than one site (those subjects and their sites are listed).
    """
    _require_columns(frame, [site_column, group_column])
    groups = _group_ids(frame, group_column)
    sites = frame[site_column]
    missing = np.flatnonzero(sites.isna().to_numpy())
    if missing.size:
        raise ValueError(
            f"{site_column} is missing in {missing.size} row(s) (positions {_listed(missing)}); "
            "assign every row a site before a site holdout"
        )
    known = sorted(pd.unique(sites), key=str)
    if holdout_site not in known:
        raise ValueError(
            f"holdout_site {holdout_site!r} is not in column {site_column!r}; known sites: {_listed(known)}"
        )
    if len(known) < 2:
        raise ValueError(
            f"{holdout_site!r} is the only site in {site_column!r}: holding it out leaves nothing to train on"
        )
    sites_per_group = pd.DataFrame({"group": groups.to_numpy(), "site": sites.to_numpy()}).groupby("group")["site"]
    shared = sites_per_group.nunique()
    shared = shared[shared > 1]
    if not shared.empty:
        detail = [
            f"{group} ({', '.join(sorted(map(str, pd.unique(sites_per_group.get_group(group)))))})"
            for group in sorted(shared.index, key=str)
        ]
        raise ValueError(
            f"{len(detail)} {group_column} value(s) appear in more than one site: {_listed(detail)}; "
            "a site holdout needs each subject in one site: fix the site assignment or use "
            "grouped_train_test_split"
        )
    is_test = (sites == holdout_site).to_numpy()
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def assert_no_group_overlap(train, test, group_column: str = "subject_id") -> None:
    """Raise when any group (subject) occurs in both the train and the test part.

    Parameters
    ----------
    train, test : pandas.DataFrame or array-like of shape (n,)
        The two parts, as frames holding ``group_column`` or as sequences of group ids.
    group_column : str, default "subject_id"
        The group column, used when a part is a frame.

    Raises
    ------
    GroupOverlapError
        A ``ValueError`` naming the overlapping ids; they are also in its ``overlapping``
        attribute.
    """

    def ids(part) -> set:
        if isinstance(part, pd.DataFrame):
            _require_columns(part, [group_column])
            part = part[group_column]
        return set(pd.unique(pd.Series(np.asarray(part, dtype=object)).dropna()))

    overlapping = tuple(sorted(ids(train) & ids(test), key=str))
    if overlapping:
        raise GroupOverlapError(
            f"{len(overlapping)} {group_column} value(s) are in both train and test: {_listed(overlapping)}; "
            "split by subject (grouped_train_test_split) so no subject is in both parts",
            overlapping,
        )
