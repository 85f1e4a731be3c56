"""Feature build and Feast end to end on a small demo study, in a Feast repo of the test's own."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from adapters.feast_repo import materialize, online_features, open_store
from pipelines.build.local import build_features
from tests.pipelines.conftest import feast_repo


@pytest.fixture(scope="module")
def built(demo_build, tmp_path_factory):
    manifest, config, summary, tables = demo_build
    repo = feast_repo(tmp_path_factory.mktemp("feast") / "repo", "biomarkers_test", tables)
    materialize(repo)
    return manifest, config, summary, tables, repo


def test_every_feature_table_is_published_with_keys_and_reasons(built) -> None:
    manifest, _, summary, tables, _ = built
    assert not summary.rejected
    assert {"daily_activity", "sleep", "cardiac", "labs", "hourly_vitals", "gait"} <= set(summary.tables)
    for name, rows in summary.tables.items():
        frame = pd.read_parquet(tables / f"{name}.parquet")
        assert len(frame) == rows > 0
        assert {"subject_id", "event_timestamp", "created_timestamp", f"{name}_missing_reason"} <= set(frame.columns)
        assert not frame.duplicated(["subject_id", "event_timestamp"]).any()
        assert set(frame["subject_id"]) <= set(manifest.subject_ids)


def test_daily_steps_equal_the_raw_minute_file(built) -> None:
    manifest, config, _, tables, _ = built
    subject = manifest.subject_ids[1]
    raw = pd.read_csv(config.data_root / "raw" / "minute" / f"{subject}_minute.csv")
    raw["day"] = pd.to_datetime(raw["time"], utc=True).dt.floor("D")
    worn = raw[raw["worn"] == 1]
    expected = worn.groupby("day")["steps"].sum()
    daily = pd.read_parquet(tables / "daily_activity.parquet")
    mine = daily[daily["subject_id"] == subject].set_index("event_timestamp")
    complete = mine[mine["daily_activity_missing_reason"].isna()]
    assert len(complete) >= 2
    for end, row in complete.iterrows():
        assert row["steps_sum_1d_count"] == expected[end - pd.Timedelta(days=1)]


def test_the_build_manifest_names_the_raw_files_behind_it(built) -> None:
    import json

    from pipelines.build.local import MANIFEST

    _, config, _, tables, _ = built
    inputs = json.loads((tables / MANIFEST).read_text())["inputs"]
    by_path = {entry["raw_path"]: entry for entry in inputs}
    assert {"raw/subjects.csv", "raw/endpoints.csv"} <= set(by_path)
    minute = [entry for entry in inputs if entry["source"] == "minute_wearable"]
    assert len(minute) == 5  # one file per subject
    for entry in inputs:
        raw = config.data_root / entry["raw_path"]
        assert hashlib.sha256(raw.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["validation_outcome"] in ("passed", "passed_with_warnings")
        assert (config.reports_root / f"{entry['report_id']}.json").is_file()
        assert all((config.lake_root / part).is_file() for part in entry["curated_parts"])


def test_a_second_build_with_nothing_changed_is_skipped(built) -> None:
    _, config, first, tables, _ = built
    again = build_features(config, tables, workers=1)
    assert again.skipped and again.tables == first.tables


def test_changing_one_familys_settings_rebuilds_only_its_tables_and_records_them(built, tmp_path) -> None:
    import json
    import shutil
    from importlib import metadata

    from features.settings import BiomarkerSettings
    from pipelines.build.local import MANIFEST

    _, config, first, tables, _ = built
    copy = tmp_path / "tables"
    shutil.copytree(tables, copy)
    before = {path.name: path.read_bytes() for path in copy.glob("*.parquet")}
    filtered = config.model_copy(update={"biomarkers": BiomarkerSettings(hrv={"artefact_method": "local_median"})})

    changed = build_features(filtered, copy, workers=1)

    assert not changed.skipped and changed.computed == ["cardiac"]
    assert changed.tables == first.tables
    after = {path.name: path.read_bytes() for path in copy.glob("*.parquet")}
    assert {name for name in before if before[name] != after[name]} == {"cardiac.parquet"}
    old, new = (pd.read_parquet(folder / "cardiac.parquet") for folder in (tables, copy))
    # The stricter filter leaves out more beats on the same recordings.
    assert new["ectopic_beats_morning_percent"].sum() > old["ectopic_beats_morning_percent"].sum()
    pipeline = json.loads((copy / MANIFEST).read_text())["pipeline"]
    assert pipeline["settings"]["hrv"]["artefact_method"] == "local_median"
    assert pipeline["settings"]["activity"]["cutpoints"] == "migueles_wrist_adult"  # defaults written out
    assert pipeline["packages"]["numpy"] == metadata.version("numpy")

    assert build_features(filtered, copy, workers=1).skipped
    back = build_features(config, copy, workers=1)  # the defaults again: cardiac as it was
    assert back.computed == ["cardiac"]
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "cardiac.parquet").drop(columns="created_timestamp"),
                                  old.drop(columns="created_timestamp"))


def test_a_table_that_nothing_feeds_any_more_is_withdrawn_by_an_empty_one(built, tmp_path) -> None:
    import shutil

    _, config, first, tables, _ = built
    copy = tmp_path / "tables"
    shutil.copytree(tables, copy)
    cardiac_sources = {name for name, source in config.sources.items() if source.kind in ("rr_intervals", "ecg", "ppg")}
    without = config.model_copy(update={"sources": {name: source for name, source in config.sources.items()
                                                    if name not in cardiac_sources}})

    summary = build_features(without, copy, workers=1)

    assert first.tables["cardiac"] > 0 and summary.tables["cardiac"] == 0
    withdrawn = pd.read_parquet(copy / "cardiac.parquet")
    assert withdrawn.empty  # no old rows served as current; Feast's own commands still find the view's file
    assert list(withdrawn.columns) == list(pd.read_parquet(tables / "cardiac.parquet").columns)
    assert set(summary.tables) == set(first.tables)


def test_online_features_are_read_back_through_feast(built) -> None:
    manifest, _, _, tables, repo = built
    subjects = list(manifest.subject_ids[:2])
    online = online_features(subjects, service="endpoint_v1", repo_path=repo).set_index("subject_id")
    labs = pd.read_parquet(tables / "labs.parquet").sort_values("event_timestamp")
    for subject in subjects:
        last = labs[labs["subject_id"] == subject].iloc[-1]
        assert online.loc[subject, "creatinine_last_mg_dl"] == pytest.approx(last["creatinine_last_mg_dl"])
        # derived at request time by the on-demand view from last and baseline
        expected = last["creatinine_last_mg_dl"] - last["creatinine_baseline_mg_dl"]
        assert online.loc[subject, "creatinine_change_from_baseline_mg_dl"] == pytest.approx(expected)
        assert not np.isnan(expected)  # the demo's screening draw gives every subject a baseline


def test_historical_retrieval_keeps_every_entity_row(built) -> None:
    manifest, _, _, _, repo = built
    store = open_store(repo)
    entities = pd.DataFrame({
        "subject_id": list(manifest.subject_ids),
        "event_timestamp": pd.Timestamp("2024-04-30T00:00:00Z"),
    })
    frame = store.get_historical_features(entity_df=entities,
                                          features=store.get_feature_service("endpoint_v1")).to_df()
    assert len(frame) == len(entities)
    assert set(frame["subject_id"]) == set(manifest.subject_ids)
