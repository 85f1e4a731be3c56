"""Laboratory biomarkers: eGFR (CKD-EPI 2021), last value, baseline, slope, out-of-range flag, lab features.

Pure functions over arrays and the canonical LABS frame (long form: ``subject_id``, ``timestamp``
(specimen collection time, UTC), ``loinc_code``, ``analyte``, ``value`` in the analyte's
canonical unit, ``unit``, ``reference_low``, ``reference_high``, ``abnormal_flag``) and the
SUBJECTS frame (``subject_id``, ``sex`` F/M/X, ``age_years`` at enrollment, ``enrollment_date``
at midnight UTC). Nothing here reads files or a clock, and no input is mutated.

The canonical units are copied from ``validation.analytes.CANONICAL_UNIT_BY_ANALYTE`` because
``features`` imports nothing of the project; a test keeps the two tables equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_UNIT_BY_ANALYTE",
    "DEFAULT_LAB_ANALYTES",
    "SLOPE_WINDOW_DAYS",
    "UNIT_NAME_BY_UNIT",
    "baseline_value",
    "change_from_baseline",
    "egfr_ckd_epi_2021_missing_reason",
    "egfr_ckd_epi_2021_ml_min_1_73m2",
    "labs_feature_columns",
    "labs_features",
    "last_value",
    "least_squares_slope_per_day",
    "out_of_range_flag",
]

CANONICAL_UNIT_BY_ANALYTE: dict[str, str] = {
    "creatinine": "mg/dL",
    "glucose": "mg/dL",
    "urea_nitrogen": "mg/dL",
    "sodium": "mmol/L",
    "potassium": "mmol/L",
    "chloride": "mmol/L",
    "bicarbonate": "mmol/L",
    "calcium": "mg/dL",
    "lactate": "mmol/L",
    "hba1c": "%",
    "cholesterol_total": "mg/dL",
    "albumin": "g/dL",
    "alt": "U/L",
    "ast": "U/L",
    "bilirubin_total": "mg/dL",
    "c_reactive_protein": "mg/L",
    "troponin_t": "ng/L",
    "hemoglobin": "g/dL",
    "hematocrit": "%",
    "white_blood_cells": "10*3/uL",
    "platelets": "10*3/uL",
}
"""Analyte -> canonical unit (copy of ``validation.analytes.CANONICAL_UNIT_BY_ANALYTE``)."""

UNIT_NAME_BY_UNIT: dict[str, str] = {
    "mg/dL": "mg_dl",
    "mg/L": "mg_l",
    "g/dL": "g_dl",
    "mmol/L": "mmol_l",
    "ng/L": "ng_l",
    "U/L": "u_l",
    "%": "percent",
    "10*3/uL": "thousand_per_ul",
}
"""Canonical unit -> its spelling in feature names (``creatinine_last_mg_dl``)."""

DEFAULT_LAB_ANALYTES: tuple[str, ...] = (
    "creatinine",
    "c_reactive_protein",
    "glucose",
    "hemoglobin",
    "potassium",
    "sodium",
    "white_blood_cells",
    "platelets",
)

SLOPE_WINDOW_DAYS = 30
"""Length of the trailing window of the lab slopes, in days."""

_NS_PER_DAY = 86_400_000_000_000
_DAYS_PER_YEAR = 365.25
_EGFR_COLUMN = "egfr_ckd_epi_2021_ml_min_1_73m2"


# --- helpers -------------------------------------------------------------------------------


def _float_array(values) -> np.ndarray:
    """Values as a float array of their own shape; ``None``, NaN and ``pd.NA`` become NaN."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(float)
    flat = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
    return flat.astype("Float64").to_numpy(dtype=float, na_value=np.nan).reshape(array.shape)


def _sex_array(sex) -> np.ndarray:
    """Sex codes stripped and upper-cased; ``None`` where missing."""
    array = np.asarray(sex, dtype=object)
    flat = [value.strip().upper() if isinstance(value, str) else None for value in array.ravel()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape)


def _utc_ns(timestamp, name: str) -> np.ndarray:
    """Tz-aware timestamps as int64 nanoseconds since the epoch (UTC); naive ones are refused."""
    times = pd.Series(pd.DatetimeIndex(timestamp))
    if times.dt.tz is None:
        raise ValueError(
            f"{name} must be timezone-aware UTC (datetime64[ns, UTC]); got naive times: localize them in the "
            "reader (Series.dt.tz_localize) so that features use one clock"
        )
    return times.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()


def _unit_name(analyte: str) -> str:
    if analyte not in CANONICAL_UNIT_BY_ANALYTE:
        raise ValueError(
            f"unknown analyte {analyte!r}: expected one of {sorted(CANONICAL_UNIT_BY_ANALYTE)} "
            "(add it to validation.analytes and to features.biomarkers.labs.CANONICAL_UNIT_BY_ANALYTE)"
        )
    return UNIT_NAME_BY_UNIT[CANONICAL_UNIT_BY_ANALYTE[analyte]]


def _analyte_columns(analyte: str) -> dict[str, str]:
    unit = _unit_name(analyte)
    return {
        "last": f"{analyte}_last_{unit}",
        "baseline": f"{analyte}_baseline_{unit}",
        "slope": f"{analyte}_slope_{SLOPE_WINDOW_DAYS}d_{unit}_per_day",
        "flag": f"{analyte}_out_of_range_flag",
    }


def labs_feature_columns(analytes: tuple[str, ...] = DEFAULT_LAB_ANALYTES) -> tuple[str, ...]:
    """The feature columns of :func:`labs_features` for ``analytes``, in order.

    Per analyte ``<analyte>_last_<unit>``, ``<analyte>_baseline_<unit>``,
    ``<analyte>_slope_30d_<unit>_per_day``, ``<analyte>_out_of_range_flag``; then
    ``egfr_ckd_epi_2021_ml_min_1_73m2`` when creatinine is among the analytes. Without
    ``subject_id``, ``event_timestamp`` and ``missing_reason``.
    """
    columns = [name for analyte in analytes for name in _analyte_columns(analyte).values()]
    if "creatinine" in analytes:
        columns.append(_EGFR_COLUMN)
    return tuple(columns)


# --- eGFR ----------------------------------------------------------------------------------


def egfr_ckd_epi_2021_ml_min_1_73m2(creatinine_mg_dl, age_years, sex) -> np.ndarray:
    """Estimated GFR by the 2021 race-free CKD-EPI creatinine equation.

    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female],
    with k = 0.7 (female) or 0.9 (male) and a = -0.241 (female) or -0.302 (male).

    Parameters
    ----------
    creatinine_mg_dl : array-like of shape (n,) or scalar, serum creatinine (IDMS-traceable), mg/dL.
    age_years : array-like of shape (n,) or scalar, age in years at the creatinine measurement.
    sex : array-like of shape (n,) or scalar, ``"F"`` or ``"M"`` (case and blanks ignored).

    Returns
    -------
    np.ndarray of shape (n,) (0-d for scalars), mL/min/1.73 m^2. NaN where creatinine is missing
    or not positive, age is missing or under 18 years (the equation was developed and validated
    in adults), or sex is missing or ``"X"``: the equation has coefficients for female and male
    only, and choosing one for a subject recorded as neither would invent data (the two results
    differ by up to ~20 %). :func:`egfr_ckd_epi_2021_missing_reason` says why for each element.

    References
    ----------
    Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and cystatin C-based equations to
    estimate GFR without race. N Engl J Med 2021;385:1737-1749.

    Examples
    --------
    >>> float(egfr_ckd_epi_2021_ml_min_1_73m2(1.0, 50, "M").round(1))  # 142 x (1.0/0.9)^-1.2 x 0.9938^50
    91.7
    """
    creatinine, age = np.broadcast_arrays(_float_array(creatinine_mg_dl), _float_array(age_years))
    sexes = np.broadcast_to(_sex_array(sex), creatinine.shape)
    female = sexes == "F"
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = creatinine / kappa
        egfr = (
            142.0
            * np.minimum(ratio, 1.0) ** alpha
            * np.maximum(ratio, 1.0) ** -1.200
            * 0.9938**age
            * np.where(female, 1.012, 1.0)
        )
    valid = (creatinine > 0) & (age >= 18) & (female | (sexes == "M"))
    return np.where(valid, egfr, np.nan)


def egfr_ckd_epi_2021_missing_reason(creatinine_mg_dl, age_years, sex) -> np.ndarray:
    """Why :func:`egfr_ckd_epi_2021_ml_min_1_73m2` is NaN, per element.

    Returns
    -------
    np.ndarray of shape (n,), object: ``None`` where eGFR has a value, else the reasons joined
    by ``", "`` (``"no creatinine"``, ``"creatinine not positive"``, ``"no age"``,
    ``"age under 18 years (adult equation)"``, ``"no sex"``, ``"sex 'X' (equation has F and M
    coefficients only)"``).
    """
    creatinine, age = np.broadcast_arrays(_float_array(creatinine_mg_dl), _float_array(age_years))
    sexes = np.broadcast_to(_sex_array(sex), creatinine.shape)
    out = np.empty(creatinine.shape, dtype=object)
    for index in np.ndindex(creatinine.shape):
        why = []
        if np.isnan(creatinine[index]):
            why.append("no creatinine")
        elif creatinine[index] <= 0:
            why.append("creatinine not positive")
        if np.isnan(age[index]):
            why.append("no age")
        elif age[index] < 18:
            why.append("age under 18 years (adult equation)")
        if sexes[index] is None:
            why.append("no sex")
        elif sexes[index] not in ("F", "M"):
            why.append(f"sex {sexes[index]!r} (equation has F and M coefficients only)")
        out[index] = ", ".join(why) if why else None
    return out


# --- per-analyte statistics ----------------------------------------------------------------


def change_from_baseline(last, baseline):
    """Change of the last value from the baseline, ``last - baseline``, in their shared unit.

    Parameters
    ----------
    last, baseline : array-like of shape (n,), pd.Series or scalars, one unit (e.g. mg/dL).

    Returns
    -------
    Same kind as the inputs (a pd.Series keeps its index), float; NaN where either is missing.
    This is the function of the Feast on-demand view over ``<analyte>_last_<unit>`` and
    ``<analyte>_baseline_<unit>``.
    """
    if isinstance(last, pd.Series):
        last = last.astype(float)
    if isinstance(baseline, pd.Series):
        baseline = baseline.astype(float)
    if not isinstance(last, pd.Series) and not isinstance(baseline, pd.Series):
        last, baseline = _float_array(last), _float_array(baseline)
    return np.subtract(last, baseline, dtype=float)


def out_of_range_flag(value, reference_low, reference_high) -> np.ndarray:
    """1.0 where a value lies outside its reference interval, 0.0 inside, NaN when unknown.

    Parameters
    ----------
    value, reference_low, reference_high : array-like of shape (n,) or scalars, one unit.
        A missing bound is an open end (C-reactive protein has an upper limit only); a value on
        a bound is in range.

    Returns
    -------
    np.ndarray of shape (n,), float 1.0/0.0; NaN where the value is missing or both bounds are.
    """
    v, low, high = np.broadcast_arrays(_float_array(value), _float_array(reference_low), _float_array(reference_high))
    outside = ((v < low) | (v > high)).astype(float)
    return np.where(np.isnan(v) | (np.isnan(low) & np.isnan(high)), np.nan, outside)


def _sorted_valid(timestamp, value, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = _utc_ns(timestamp, name)
    v = _float_array(value).ravel()
    keep = ~np.isnan(v)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], v[keep][order]


def last_value(timestamp, value, at) -> np.ndarray:
    """The last non-missing value at or before each time of ``at`` (one subject, one analyte).

    Parameters
    ----------
    timestamp : array-like of shape (n,), tz-aware datetime64, collection times.
    value : array-like of shape (n,), the results in one unit; NaN results are left out.
    at : array-like of shape (m,), tz-aware datetime64.

    Returns
    -------
    np.ndarray of shape (m,), unit of ``value``; NaN where no result precedes the time. Among
    results at the same time the last in input order wins.
    """
    t, v = _sorted_valid(timestamp, value, "timestamp")
    index = np.searchsorted(t, _utc_ns(at, "at"), side="right") - 1
    return np.where(index >= 0, v[np.maximum(index, 0)] if len(v) else np.nan, np.nan)


def baseline_value(timestamp, value, enrollment_date) -> float:
    """The baseline of one subject and analyte: the last non-missing result at or before enrollment.

    Parameters
    ----------
    timestamp : array-like of shape (n,), tz-aware datetime64, collection times.
    value : array-like of shape (n,), one unit; NaN results are left out.
    enrollment_date : tz-aware timestamp, midnight UTC of the enrollment day. A result
        collected exactly at this time counts; one later on the enrollment day does not.

    Returns
    -------
    float, unit of ``value``; NaN when no result precedes enrollment.
    """
    return float(last_value(timestamp, value, [pd.Timestamp(enrollment_date)])[0])


def least_squares_slope_per_day(timestamp, value) -> float:
    """Ordinary least squares slope of results against collection time, in the results' unit per day.

    Parameters
    ----------
    timestamp : array-like of shape (n,), tz-aware datetime64.
    value : array-like of shape (n,), one unit; NaN results are left out.

    Returns
    -------
    float, unit of ``value`` per day; NaN with fewer than two distinct times.
    """
    t, v = _sorted_valid(timestamp, value, "timestamp")
    if len(v) < 2:
        return float("nan")
    days = (t - t[0]) / _NS_PER_DAY
    days_centred = days - days.mean()
    s_xx = float(np.sum(days_centred**2))
    if s_xx <= 1e-12 * len(v):
        return float("nan")
    return float(np.sum(days_centred * (v - v.mean())) / s_xx)


# --- table ---------------------------------------------------------------------------------


def _subject_table(subjects: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("subject_id", "sex", "age_years", "enrollment_date") if c not in subjects.columns]
    if missing:
        raise ValueError(f"subjects frame lacks the canonical column(s) {missing}")
    duplicated = subjects["subject_id"][subjects["subject_id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(
            f"subjects frame lists subject(s) {list(duplicated)[:10]} more than once; keep one row per subject"
        )
    enrollment = pd.to_datetime(subjects["enrollment_date"], utc=True).dt.as_unit("ns")
    return pd.DataFrame(
        {
            "sex": subjects["sex"].to_numpy(dtype=object),
            "age_years": _float_array(subjects["age_years"]),
            # a date or a naive midnight is the enrollment day in UTC, as the SUBJECTS schema states;
            # int64 ns with NaT as NaN would lose nanoseconds, so NaT is flagged by has_enrollment
            "enrollment_ns": np.where(enrollment.isna(), 0, enrollment.array.asi8),
            "has_enrollment": enrollment.notna().to_numpy(),
        },
        index=subjects["subject_id"].to_numpy(dtype=object),
    )


def _append_listed_reason(reasons: list[list[str]], masks: dict[str, np.ndarray], message: str) -> None:
    """Append ``"<message>: <name>, <name>"`` naming the keys whose mask holds in each row."""
    if not masks:
        return
    names = list(masks)
    stacked = np.column_stack([masks[name] for name in names])
    for i in np.flatnonzero(stacked.any(axis=1)):
        reasons[i].append(f"{message}: " + ", ".join(n for n, hit in zip(names, stacked[i], strict=True) if hit))


def labs_features(
    labs: pd.DataFrame,
    subjects: pd.DataFrame,
    analytes: tuple[str, ...] = DEFAULT_LAB_ANALYTES,
) -> pd.DataFrame:
    """Lab features per subject per collection time: last value, baseline, 30-day slope, range flag, eGFR.

    One row per subject and distinct collection time of any of ``analytes``, with
    ``event_timestamp`` = that collection time. Each row uses only results collected at or before
    its ``event_timestamp``: a training row never sees a later result.

    Parameters
    ----------
    labs : pd.DataFrame of shape (n, >= 5)
        The canonical LABS frame (long form): ``subject_id``, ``timestamp`` (tz-aware),
        ``analyte``, ``value`` in the canonical unit, ``unit``; optional ``reference_low`` and
        ``reference_high`` (the reporting laboratory's interval, same unit). Rows of other
        analytes, and rows without subject or timestamp, are left out. A result whose ``unit``
        is not the analyte's canonical unit (compared case-insensitively) is not used, and the
        row of its collection time says so in ``missing_reason``.
    subjects : pd.DataFrame
        The SUBJECTS frame: ``subject_id`` (one row each), ``sex`` (F/M/X), ``age_years`` (at
        enrollment), ``enrollment_date`` (midnight UTC of the enrollment day; dates and naive
        midnights are read as UTC).
    analytes : tuple of str
        Analyte names of ``CANONICAL_UNIT_BY_ANALYTE``.

    Returns
    -------
    pd.DataFrame with ``subject_id``, ``event_timestamp`` (datetime64[ns, UTC]),
    :func:`labs_feature_columns` (float64) and ``missing_reason``, sorted by subject and time.
    Per analyte, at a row's time T:

    - ``<analyte>_last_<unit>``: the last result at or before T (no look-back limit);
    - ``<analyte>_baseline_<unit>``: the last result at or before the subject's enrollment
      (timestamp <= enrollment_date), for rows at or after enrollment; NaN before enrollment,
      when the baseline is not yet known, and for a subject missing from ``subjects``;
    - ``<analyte>_slope_30d_<unit>_per_day``: least squares slope of the results in
      (T - 30 days, T], unit per day; NaN with fewer than two distinct times;
    - ``<analyte>_out_of_range_flag``: 1.0/0.0 for the last result against its own
      reference_low/high (:func:`out_of_range_flag`); NaN without a last result or bounds;
    - ``egfr_ckd_epi_2021_ml_min_1_73m2`` (with creatinine among the analytes): from the last
      creatinine, the subject's sex and the age at that creatinine's collection
      (``age_years`` + years from enrollment to collection).

    ``missing_reason`` is ``None`` when every feature has a value, else ``"; "``-joined reasons
    naming the analytes concerned: ``"subject not in subjects"``, ``"before enrollment: baseline
    not yet defined"``, ``"result in non-canonical unit ignored: <analyte> '<unit>'"``, ``"no
    result at or before event_timestamp: <analytes>"``, ``"no result at or before enrollment:
    <analytes>"``, ``"fewer than 2 result times for slope in 30d window: <analytes>"``, ``"no
    reference range for last result: <analytes>"``, ``"egfr: <why>"``. Nothing is imputed.
    Change from baseline is not a column: it is computed at request time by
    :func:`change_from_baseline`.

    Raises
    ------
    ValueError
        For a missing canonical column, naive timestamps, an unknown analyte or a subject listed
        twice in ``subjects``.
    """
    analytes = tuple(analytes)
    feature_columns = labs_feature_columns(analytes)  # validates the analytes
    missing = [c for c in ("subject_id", "timestamp", "analyte", "value", "unit") if c not in labs.columns]
    if missing:
        raise ValueError(f"labs frame lacks the canonical column(s) {missing}; read it with the LABS reader")
    people = _subject_table(subjects)

    keep = labs["analyte"].isin(analytes) & labs["subject_id"].notna() & labs["timestamp"].notna()
    n = int(keep.sum())
    frame = pd.DataFrame(
        {
            "subject_id": labs.loc[keep, "subject_id"].to_numpy(dtype=object),
            "t_ns": _utc_ns(labs.loc[keep, "timestamp"], "labs.timestamp"),
            "analyte": labs.loc[keep, "analyte"].to_numpy(dtype=object),
            "value": _float_array(labs.loc[keep, "value"]),
            "unit": labs.loc[keep, "unit"].to_numpy(dtype=object),
            "low": _float_array(labs.loc[keep, "reference_low"]) if "reference_low" in labs else np.full(n, np.nan),
            "high": _float_array(labs.loc[keep, "reference_high"]) if "reference_high" in labs else np.full(n, np.nan),
        }
    )
    canonical = frame["analyte"].map(lambda a: CANONICAL_UNIT_BY_ANALYTE[a].casefold())
    spelled = frame["unit"].map(lambda u: u.strip().casefold() if isinstance(u, str) else None)
    frame["unit_ok"] = spelled == canonical

    rows = frame[["subject_id", "t_ns"]].drop_duplicates().sort_values(["subject_id", "t_ns"], kind="stable")
    rows = rows.reset_index(drop=True)
    n_rows = len(rows)
    row_t = rows["t_ns"].to_numpy()
    person_index = people.index.get_indexer(rows["subject_id"].to_numpy(dtype=object))
    known = person_index >= 0

    def of_person(column: str, missing):
        """The subject's value of ``column`` for each row; ``missing`` for a subject not in ``subjects``."""
        values = people[column].to_numpy()
        taken = values[np.maximum(person_index, 0)] if len(values) else np.full(n_rows, missing, dtype=values.dtype)
        return np.where(known, taken, missing)

    has_enrollment = of_person("has_enrollment", False).astype(bool)
    enrollment = of_person("enrollment_ns", 0).astype(np.int64)
    after_enrollment = has_enrollment & (row_t >= enrollment)
    masks: dict[str, np.ndarray] = {
        "unknown_subject": ~known,
        "no_enrollment": known & ~has_enrollment,
        "before_enrollment": has_enrollment & (row_t < enrollment),
    }
    features: dict[str, np.ndarray] = {}
    creatinine_t = np.full(n_rows, np.nan)
    for analyte in analytes:
        names = _analyte_columns(analyte)
        of_analyte = frame[(frame["analyte"] == analyte).to_numpy() & frame["unit_ok"].to_numpy()]
        results = of_analyte[~np.isnan(of_analyte["value"].to_numpy())]
        stats = _analyte_statistics(rows, results, enrollment, has_enrollment)
        features[names["last"]] = stats["last"]
        features[names["baseline"]] = np.where(after_enrollment, stats["baseline"], np.nan)
        features[names["slope"]] = stats["slope"]
        features[names["flag"]] = stats["flag"]
        has_last = ~np.isnan(stats["last"])
        masks[f"no_last:{analyte}"] = ~has_last
        # without any result by T there is none by enrollment either: "no result at or before
        # event_timestamp" already says so
        masks[f"no_baseline:{analyte}"] = after_enrollment & has_last & np.isnan(features[names["baseline"]])
        masks[f"no_slope:{analyte}"] = has_last & np.isnan(stats["slope"])
        masks[f"no_range:{analyte}"] = has_last & np.isnan(stats["flag"])
        if analyte == "creatinine":
            creatinine_t = stats["last_t"]

    reasons: list[list[str]] = [[] for _ in range(n_rows)]
    for key, message in (
        ("unknown_subject", "subject not in subjects"),
        ("no_enrollment", "subject has no enrollment_date: baseline undefined"),
        ("before_enrollment", "before enrollment: baseline not yet defined"),
    ):
        for i in np.flatnonzero(masks[key]):
            reasons[i].append(message)
    ignored = frame.loc[~frame["unit_ok"].to_numpy()]
    if len(ignored):
        texts = (ignored["analyte"] + " " + ignored["unit"].map(repr)).groupby(
            [ignored["subject_id"], ignored["t_ns"]], sort=False
        ).agg(", ".join)
        where = pd.MultiIndex.from_frame(rows[["subject_id", "t_ns"]]).get_indexer(texts.index)
        for i, text in zip(where, texts.to_numpy(), strict=True):
            reasons[i].append(f"result in non-canonical unit ignored: {text}")
    for key, message in (
        ("no_last", "no result at or before event_timestamp"),
        ("no_baseline", "no result at or before enrollment"),
        ("no_slope", f"fewer than 2 result times for slope in {SLOPE_WINDOW_DAYS}d window"),
        ("no_range", "no reference range for last result"),
    ):
        _append_listed_reason(reasons, {a: masks[f"{key}:{a}"] for a in analytes}, message)
    if "creatinine" in analytes:
        creatinine = features[_analyte_columns("creatinine")["last"]]
        age_at_enrollment = of_person("age_years", np.nan).astype(float)
        # age at the creatinine's collection; without an enrollment date, the age as given
        years_since_enrollment = np.where(
            has_enrollment, (creatinine_t - enrollment) / _NS_PER_DAY / _DAYS_PER_YEAR, 0.0
        )
        age = np.where(np.isnan(creatinine), age_at_enrollment, age_at_enrollment + years_since_enrollment)
        sex = of_person("sex", None).astype(object)
        features[_EGFR_COLUMN] = egfr_ckd_epi_2021_ml_min_1_73m2(creatinine, age, sex)
        for i, why in enumerate(egfr_ckd_epi_2021_missing_reason(creatinine, age, sex)):
            if why:
                reasons[i].append(f"egfr: {why}")

    return pd.DataFrame(
        {
            "subject_id": rows["subject_id"].to_numpy(dtype=object),
            "event_timestamp": pd.to_datetime(row_t, unit="ns", utc=True),
            **{name: features[name].astype(float) for name in feature_columns},
            "missing_reason": ["; ".join(row) if row else None for row in reasons],
        }
    )


def _analyte_statistics(
    rows: pd.DataFrame, results: pd.DataFrame, enrollment: np.ndarray, has_enrollment: np.ndarray
) -> dict[str, np.ndarray]:
    """Last value (and its time and range flag), baseline and windowed slope of one analyte per row.

    ``rows`` (``subject_id``, ``t_ns``) are the output rows; ``results`` the usable results of the
    analyte (``subject_id``, ``t_ns``, ``value``, ``low``, ``high``); ``enrollment`` the enrollment
    time of each row's subject in ns, valid where ``has_enrollment``. Matching is by subject with
    ``pd.merge_asof``, so one pass serves every subject.
    """
    n_rows = len(rows)
    nan = np.full(n_rows, np.nan)
    if results.empty:
        return {"last": nan, "last_t": nan, "flag": nan, "baseline": nan, "slope": nan}
    # by subject then time; equal times keep input order, so the last listed wins
    results = results.sort_values(["subject_id", "t_ns"], kind="stable").reset_index(drop=True)
    results["position"] = np.arange(len(results))
    by_subject = results.groupby("subject_id", sort=False)
    days = (results["t_ns"] - by_subject["t_ns"].transform("min")).to_numpy() / _NS_PER_DAY
    centred = (results["value"] - by_subject["value"].transform("mean")).to_numpy()
    # running sums within each subject stay small; the window sum is a difference of two of them
    sums = pd.DataFrame({"t": days, "y": centred, "tt": days * days, "ty": days * centred})
    running = sums.groupby(results["subject_id"].to_numpy(), sort=False).cumsum().to_numpy()
    before = running - sums.to_numpy()  # running sums of the earlier results of the subject
    right = results[["subject_id", "t_ns", "position"]].sort_values("t_ns", kind="stable")

    def last_position_at_or_before(times: np.ndarray, subject_ids: np.ndarray) -> np.ndarray:
        left = pd.DataFrame({"subject_id": subject_ids, "t_ns": times.astype(np.int64), "order": np.arange(len(times))})
        matched = pd.merge_asof(
            left.sort_values("t_ns", kind="stable"), right, on="t_ns", by="subject_id", direction="backward"
        )
        out = np.full(len(times), -1, dtype=np.int64)
        found = matched["position"].notna().to_numpy()
        out[matched["order"].to_numpy()[found]] = matched["position"].to_numpy()[found].astype(np.int64)
        return out

    subject_ids = rows["subject_id"].to_numpy(dtype=object)
    row_t = rows["t_ns"].to_numpy()
    hi = last_position_at_or_before(row_t, subject_ids)
    has_last = hi >= 0
    safe_hi = np.maximum(hi, 0)
    value = results["value"].to_numpy()
    last = np.where(has_last, value[safe_hi], np.nan)
    last_t = np.where(has_last, results["t_ns"].to_numpy()[safe_hi].astype(float), np.nan)
    flag = np.where(
        has_last,
        out_of_range_flag(value[safe_hi], results["low"].to_numpy()[safe_hi], results["high"].to_numpy()[safe_hi]),
        np.nan,
    )

    # results in (T - window, T]: after the last one at or before T - window, up to hi
    excluded = last_position_at_or_before(row_t - SLOPE_WINDOW_DAYS * _NS_PER_DAY, subject_ids)
    first_of_subject = by_subject["position"].transform("min").to_numpy()[safe_hi]
    lo = np.where(excluded >= 0, excluded + 1, first_of_subject)
    count = np.where(has_last, hi - lo + 1, 0).astype(float)
    safe_lo = np.minimum(lo, len(results) - 1)
    window = running[safe_hi] - before[safe_lo]
    s_t, s_y, s_tt, s_ty = window.T
    with np.errstate(invalid="ignore", divide="ignore"):
        s_xx = s_tt - s_t**2 / count
        s_xy = s_ty - s_t * s_y / count
        slope = np.where((count >= 2) & (s_xx > 1e-12 * count), s_xy / s_xx, np.nan)

    baseline = nan.copy()
    enrolled = has_enrollment
    if enrolled.any():
        base_position = last_position_at_or_before(enrollment[enrolled], subject_ids[enrolled])
        baseline[np.flatnonzero(enrolled)] = np.where(base_position >= 0, value[np.maximum(base_position, 0)], np.nan)
    return {"last": last, "last_t": last_t, "flag": flag, "baseline": baseline, "slope": slope}
