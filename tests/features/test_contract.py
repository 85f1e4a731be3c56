"""Contract: the columns the biomarker code computes, the columns ``features.tables`` declares and
the features the Feast feature services name are the same names.

``compute_subject_tables`` aligns every frame to its table's declaration, so a column the code
spells differently from the declaration is dropped there, and the declared column it should
have filled becomes an all-NaN feature that training then drops, without an error anywhere.
These tests compare the frames the computations return before that alignment with the
declaration, and check that every declared column of the aligned tables holds values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from features.biomarkers import activity
from features.compute import COMPUTATIONS, Recording, SubjectInputs, compute_subject_tables
from features.settings import BiomarkerSettings
from features.tables import LIVE_VITALS, TABLES, TABLES_BY_NAME, FeatureTable

KEYS = ("subject_id", "event_timestamp", "created_timestamp")
DEMO_STUDY = Path(__file__).resolve().parents[2] / "studies" / "demo" / "study.yaml"
SEED, DAYS = 7, 3

# Declared columns that no input can fill today, each with why; every other declared column
# must hold a value somewhere in the one-subject study below.
NEVER_VALUED: dict[str, str] = {}  # column -> why the one-subject study can give it no value

# `<signal>_<statistic>_<window>_<unit>`: the tokens that end the statistic-and-window part of a
# name, so that what follows the last of them is the unit (``1d``, ``24h``, ``30min``, ``night``,
# ``morning``, and ``last`` / ``baseline``, which need no window).
_WINDOW_TOKEN = re.compile(r"\d+(?:min|h|d)|night|morning|last|baseline")
_DIMENSIONLESS = ("unitless", "points")
_FLAG = "(1) or not (0)"
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


# --------------------------------------------------------------------------------------------
# The checks: each returns one line per problem, empty when the contract holds


def column_problems(table: FeatureTable, frame: pd.DataFrame, *, may_be_empty: Collection[str] = (),
                    check_values: bool = True) -> list[str]:
    """What disagrees between a computed frame of ``table`` and its declaration in ``features.tables``.

    Every column other than the keys and the missing reason must be declared, with a
    description; every declared column must be there; with ``check_values``, every declared
    column not in ``may_be_empty`` must hold a value in at least one row.
    """
    declared = {**table.columns, **table.text_columns}
    ignored = {*KEYS, "missing_reason", f"{table.name}_missing_reason"}
    problems = []
    for column in frame.columns:
        if column not in ignored and column not in declared:
            close = difflib.get_close_matches(column, declared, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{table.name}: computed column {column!r} is not declared in features/tables.py{hint}")
    for column, description in declared.items():
        if not description.strip():
            problems.append(f"{table.name}: declared column {column!r} has no description")
        if column not in frame.columns:
            problems.append(f"{table.name}: declared column {column!r} is not computed")
        elif check_values and column not in may_be_empty and frame[column].isna().all():
            problems.append(f"{table.name}: declared column {column!r} has no value in any of {len(frame)} rows")
    return problems


def unit_problems(name: str, description: str) -> list[str]:
    """Whether a numeric column's description states the unit its name ends with.

    The descriptions read ``<what>, <unit>; <source>; <algorithm>``; a dimensionless measure
    says ``unitless`` (or ``points`` for a score) and a 0/1 indicator says ``(1) or not (0)``.
    """
    first = description.split(";")[0]
    if _FLAG in first:
        return [] if name.endswith("_flag") else [f"{name}: a 0/1 indicator's name ends in _flag"]
    what, _, stated = first.rpartition(", ")
    stated = re.sub(r"\s*\(.*\)$", "", stated).strip()  # "points (null unless ...)"
    if not what or not stated:
        return [f"{name}: description {first!r} states no unit: end its first clause with ', <unit>' or ', unitless'"]
    tokens = name.split("_")
    windows = [i for i, token in enumerate(tokens) if _WINDOW_TOKEN.fullmatch(token)]
    spellings = {_squash(stated.replace("/", " per ")), _squash(stated.replace("/", " "))}  # steps/min, m/s
    if not windows:  # no window in the name (egfr_ckd_epi_2021_ml_min_1_73m2): the unit ends it
        agrees = any(_squash(name).endswith(spelling) for spelling in spellings)
        named = "the end of the name"
    else:
        named = "_".join(tokens[windows[-1] + 1:])
        agrees = stated in _DIMENSIONLESS if not named else _squash(named) in spellings
    return [] if agrees else [f"{name}: the description gives the unit as {stated!r}, the name as {named!r}"]


def _squash(unit: str) -> str:
    """A unit's letters and digits only, lower case: ``ms^2`` -> ``ms2``, ``%`` -> ``percent``."""
    return re.sub(r"[^a-z0-9]", "", unit.lower().replace("%", "percent"))


# --------------------------------------------------------------------------------------------
# One subject of the demo study, read through the study's own readers


def _write_csv(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(table, str(path))


def _with_rechecks(vitals: pa.Table) -> pa.Table:
    """The demo's 4-hourly ward rounds, each rechecked half an hour later, so that the 1-h
    windows hold two observations (a slope needs two)."""
    rounds = vitals.to_pandas()
    recheck = rounds.assign(charttime=(pd.to_datetime(rounds["charttime"]) + pd.Timedelta(minutes=30))
                            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"), hr=rounds["hr"] + 3, resp_rate=rounds["resp_rate"] + 1,
                            spo2=(rounds["spo2"] - 1).clip(upper=100), temp=rounds["temp"] + 0.1, sbp=rounds["sbp"] - 4)
    both = pd.concat([rounds, recheck]).sort_values("charttime", kind="stable")
    return pa.Table.from_pandas(both, preserve_index=False)


def write_one_subject(root: Path) -> str:
    """Write the demo's first subject (an inpatient of SITE-A) in the demo's file formats under
    ``root``, with every source the feature build reads; return its subject id.

    Smaller than ``generate_demo`` in two ways that keep SKDH's share of the run short, and
    different in one: the wrist recording runs from noon to noon (SKDH sleep reports only whole
    noon-to-noon windows), the lower-back visit is cut to its first 30 minutes (it holds walking
    bouts) and the vital signs are rechecked (see ``_with_rechecks``).
    """
    from pipelines.demo import generate as demo
    from pipelines.demo.lab_messages import write_lims_csv

    subject = demo.draw_subject(SEED, 0)
    sid = subject.subject_id

    def rng(stream: int) -> np.random.Generator:
        return demo.subject_rng(SEED, subject.index, stream)

    _write_csv(demo.subjects_table([subject]), root / "raw" / "subjects.csv")
    _write_csv(demo.endpoints_table([subject], DAYS), root / "raw" / "endpoints.csv")
    schedule = demo.sleep_schedule(subject, DAYS, rng(demo.Stream.SCHEDULE))
    minutes, _ = demo.minute_series(subject, schedule, DAYS, rng(demo.Stream.MINUTE))
    _write_csv(demo.minute_table(minutes), root / "raw" / "minute" / f"{sid}_minute.csv")
    (root / "raw" / "actiwatch").mkdir(parents=True)
    (root / "raw" / "actiwatch" / f"{sid}_actiwatch.AWD").write_bytes(
        demo.actiwatch_awd(subject, minutes, rng(demo.Stream.ACTIWATCH)))
    rr = demo.rr_recordings(subject, schedule, DAYS, rng(demo.Stream.RR))
    _write_csv(demo.rr_table(rr), root / "raw" / "rr" / f"{sid}_rr.csv")
    night = demo.holter_night(subject, schedule, DAYS, rng(demo.Stream.HOLTER))
    _write_csv(demo.rr_table([night]), root / "raw" / "holter" / f"{sid}_holter.csv")
    _write_csv(demo.ecg_table(rr, rng(demo.Stream.ECG)), root / "raw" / "ecg" / f"{sid}_ecg.csv")
    vitals, _ = demo.vitals_table(subject, DAYS, rng(demo.Stream.VITALS))
    _write_csv(_with_rechecks(vitals), root / "raw" / "vitals" / f"{sid}_vitals.csv")
    (root / "raw" / "labs" / "lims").mkdir(parents=True)
    write_lims_csv(demo.lab_results([subject], DAYS, SEED).drop(columns="site"),
                   root / "raw" / "labs" / "lims" / "site_a_lims.csv")

    # 11:50 on day 0 to 12:10 on day 2, UTC: two noon-to-noon nights (sleep), and every minute of
    # the day worn on some day (L5 and M10 of the rhythm from raw accelerometry).
    first, length = 11 * 60 + 50, 48 * 60 + 20
    noon_to_noon = demo.MinuteSeries(minutes.start_s + first * 60, *(
        values[first:first + length] for values in (minutes.steps, minutes.heart_rate, minutes.stage, minutes.worn)))
    (root / "raw" / "accel").mkdir(parents=True)
    pq.write_table(demo.wrist_accel_table(noon_to_noon, rng(demo.Stream.WRIST)),
                   str(root / "raw" / "accel" / f"{sid}_wrist.parquet"))
    visit = demo.lowback_accel_table(subject, DAYS, 1, rng(demo.Stream.LOWBACK))
    _write_csv(visit.slice(0, 30 * 60 * demo.ACCEL_FS_HZ), root / "raw" / "accel" / f"{sid}_lowback.csv")
    return sid


def read_subject_inputs(root: Path, subject_id: str) -> SubjectInputs:
    """The subject's curated frames as the feature build assembles them (``pipelines.build.local``),
    read from the files by the study's own readers instead of from the lake."""
    from pipelines.build.local import input_sources, source_recording
    from pipelines.config import load_study
    from pipelines.ingest.readers import read_raw
    from pipelines.ingest.readers.tables import read_table
    from validation.schemas import SourceKind

    config = load_study(DEMO_STUDY, root)
    subjects = read_table(config.resolve(config.subjects.path), config.subjects, SourceKind.SUBJECTS,
                          config.subjects.format).frame
    recordings: dict[str, list[Recording]] = {}
    for key, sources in input_sources(config).items():
        for source in sources:
            spec = config.sources[source]
            for path in sorted(config.data_root.glob(spec.pattern)):
                frame = read_raw(path, spec).frame
                recordings.setdefault(key, []).append(source_recording(frame, spec))
    # Three days hold fewer than the circadian window's five valid days: this test is about
    # columns, not thresholds, so the window takes two.
    settings = BiomarkerSettings(circadian={"min_valid_days": 2})
    return SubjectInputs(subject_id, recordings, subjects[subjects["subject_id"] == subject_id].reset_index(drop=True),
                         settings)


def compute_with_raw_frames(inputs: SubjectInputs) -> tuple[dict[str, list[pd.DataFrame]], dict[str, pd.DataFrame]]:
    """``compute_subject_tables(inputs)``, and each table's frames as its computation returned
    them, before they were aligned to the declaration."""
    raw: dict[str, list[pd.DataFrame]] = {}

    def spy(name, function):
        def computation(subject_inputs: SubjectInputs) -> list[pd.DataFrame]:
            raw[name] = function(subject_inputs)
            return raw[name]
        return computation

    with pytest.MonkeyPatch.context() as patch:
        for name, function in list(COMPUTATIONS.items()):
            patch.setitem(COMPUTATIONS, name, spy(name, function))
        tables = compute_subject_tables(inputs)
    return raw, tables


@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> tuple[dict[str, list[pd.DataFrame]], dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("contract")
    subject_id = write_one_subject(root)
    return compute_with_raw_frames(read_subject_inputs(root, subject_id))


# --------------------------------------------------------------------------------------------
# Computed tables against features.tables


def test_every_declared_table_is_computed_and_every_computation_declared():
    assert set(COMPUTATIONS) == set(TABLES_BY_NAME)
    assert LIVE_VITALS.name not in COMPUTATIONS  # written by pushes, not by the feature build


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLES_BY_NAME))
def test_computed_columns_are_the_declared_columns(computed, name):
    raw, _ = computed
    table = TABLES_BY_NAME[name]
    assert raw.get(name), f"the one-subject study gave {name} no frame: it no longer covers this table"
    problems = [problem for frame in raw[name] for problem in column_problems(table, frame, check_values=False)]
    # Values are checked over all the frames of a table: a recording may give a day only NaN
    # (a 30-s ECG snippet is too short for HRV) while another gives it values.
    problems += column_problems(table, pd.concat(raw[name], ignore_index=True), may_be_empty=NEVER_VALUED)
    assert not problems, "\n".join(dict.fromkeys(problems))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLES_BY_NAME))
def test_built_tables_hold_a_value_in_every_declared_column(computed, name):
    _, tables = computed
    table = TABLES_BY_NAME[name]
    frame = tables[name]
    assert list(frame.columns) == ["subject_id", "event_timestamp", *table.columns, f"{name}_missing_reason"]
    assert column_problems(table, frame, may_be_empty=NEVER_VALUED) == []


@pytest.mark.slow
def test_columns_known_to_have_no_value_still_have_none(computed):
    """When one of them gets values, it leaves ``NEVER_VALUED`` and the checks cover it again."""
    _, tables = computed
    for column in NEVER_VALUED:
        table = next(t.name for t in TABLES if column in t.columns)
        assert tables[table][column].isna().all(), f"{column} now has values: remove it from NEVER_VALUED"


# --------------------------------------------------------------------------------------------
# The checks can fail


def _minute_frame(days: int = 2) -> pd.DataFrame:
    timestamp = pd.date_range("2024-03-04T00:00:00Z", periods=days * 1440, freq="min", tz="UTC")
    asleep = (timestamp.hour >= 23) | (timestamp.hour < 7)
    return pd.DataFrame({"subject_id": "S0001", "timestamp": timestamp, "steps_count": np.where(asleep, 0.0, 20.0),
                         "heart_rate_bpm": np.where(asleep, 55.0, 75.0),
                         "sleep_stage": np.where(asleep, "light", "wake"), "wear": True})


def test_a_misspelt_computed_column_is_reported_both_ways(monkeypatch):
    real = activity.minute_activity_daily_features

    def misspelt(minute: pd.DataFrame, **options) -> pd.DataFrame:
        return real(minute, **options).rename(columns={"steps_sum_1d_count": "step_sum_1d_count"})

    monkeypatch.setattr(activity, "minute_activity_daily_features", misspelt)
    raw, tables = compute_with_raw_frames(SubjectInputs("S0001", {"minute_wearable": [Recording(_minute_frame())]}))
    table = TABLES_BY_NAME["daily_activity"]

    found = column_problems(table, raw["daily_activity"][0])
    assert any("'step_sum_1d_count' is not declared" in p and "did you mean 'steps_sum_1d_count'" in p for p in found)
    assert any("'steps_sum_1d_count' is not computed" in p for p in found)
    # What the build publishes: the misspelt column dropped, the declared one all NaN.
    assert "step_sum_1d_count" not in tables["daily_activity"].columns
    assert column_problems(table, tables["daily_activity"]) == [
        "daily_activity: declared column 'steps_sum_1d_count' has no value in any of 2 rows"]
    assert column_problems(table, tables["daily_activity"], check_values=False) == []


def test_a_description_with_the_wrong_unit_is_reported():
    assert unit_problems("spo2_min_24h_percent", "lowest spo2 over the past 24h, percent; bedside vital signs") == []
    # What features.tables once described this column as: "_min_" of the unit read as the statistic.
    assert unit_problems("respiratory_rate_slope_1h_per_min_per_h",
                         "lowest respiratory rate slope 1h per over the past per, h; bedside vital signs") == [
        "respiratory_rate_slope_1h_per_min_per_h: the description gives the unit as 'h', the name as 'per_min_per_h'"]
    assert unit_problems("rmssd_morning_ms", "root mean square of successive NN differences; RR") != []
    assert unit_problems("lf_hf_ratio_morning", "LF/HF power ratio, ms; RR") != []


# --------------------------------------------------------------------------------------------
# Declarations: descriptions, units and names unique where Feast needs them


@pytest.mark.parametrize("table", [*TABLES, LIVE_VITALS], ids=lambda table: table.name)
def test_every_numeric_column_description_states_the_unit_of_its_name(table):
    problems = [problem for name, description in table.columns.items()
                for problem in unit_problems(name, description)]
    problems += [f"{name}: no description" for name, text in table.text_columns.items() if not text.strip()]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def definitions(tmp_path_factory) -> dict[str, object]:
    from features.definitions import build_definitions

    return build_definitions(tmp_path_factory.mktemp("feast"), "file")


def _views(definitions: dict[str, object]) -> dict[str, object]:
    from feast import FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView

    return {name: obj for name, obj in definitions.items() if isinstance(obj, FeatureView | OnDemandFeatureView)}


def test_feature_views_declare_exactly_the_columns_of_their_tables(definitions):
    for table in (*TABLES, LIVE_VITALS):
        fields = [field.name for field in definitions[table.name].features]
        reason = [f"{table.name}_missing_reason"] if table in TABLES else []
        assert fields == [*table.columns, *table.text_columns, *reason], table.name


def test_feature_names_are_unique_across_views(definitions):
    """Feast returns features under their bare names (``full_feature_names=False``, which
    training and serving use), so two views with one feature name would collide in a service
    or a training set; that is also why each table's missing reason is ``<table>_missing_reason``."""
    owners: dict[str, list[str]] = {}
    for view_name, view in _views(definitions).items():
        for field in view.features:
            owners.setdefault(field.name, []).append(view_name)
    assert {name: views for name, views in owners.items() if len(views) > 1} == {}


def test_every_service_feature_exists_in_its_view_and_follows_the_naming_contract(definitions):
    from feast import FeatureService

    views = _views(definitions)
    services = {name: obj for name, obj in definitions.items() if isinstance(obj, FeatureService)}
    assert services
    problems = []
    for service_name, service in services.items():
        for projection in service.feature_view_projections:
            view = views.get(projection.name)
            if view is None:
                problems.append(f"{service_name}: no view {projection.name!r}")
                continue
            schema = {field.name for field in view.features}
            named = [field.name for field in projection.features] + list(projection.desired_features or [])
            if not named:
                problems.append(f"{service_name}: {projection.name} names no feature")
            for feature in named:
                if feature not in schema:
                    problems.append(f"{service_name}: {projection.name} has no feature {feature!r}")
                if not _SNAKE_CASE.fullmatch(feature):
                    problems.append(f"{service_name}: {feature!r} is not <signal>_<statistic>_<window>_<unit> "
                                    "in lowercase snake_case")
    assert not problems, "\n".join(problems)


def test_service_features_of_table_views_are_declared_in_features_tables(definitions):
    from feast import FeatureService

    declared = {table.name: {*table.columns, *table.text_columns} for table in (*TABLES, LIVE_VITALS)}
    for service in (obj for obj in definitions.values() if isinstance(obj, FeatureService)):
        for projection in service.feature_view_projections:
            if projection.name in declared:  # on-demand views derive theirs
                assert {field.name for field in projection.features} <= declared[projection.name], service.name

