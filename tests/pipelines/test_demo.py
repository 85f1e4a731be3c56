"""The synthetic demo study: deterministic, complete, well formed, with the planted signal and
the deliberately broken files where ``studies/demo/study.yaml`` will find them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.config import CheckName, load_study
from pipelines.demo.generate import (
    ENDPOINT,
    SITES,
    Stream,
    ax6_recording,
    draw_subjects,
    endpoints_table,
    generate_demo,
    lab_results,
    minute_series,
    minute_table,
    sleep_schedule,
    subject_rng,
    subjects_table,
    truncated_cwa,
)
from validation.schemas import DIRECT_IDENTIFIER_PATTERN, SEXES, SLEEP_STAGES

SEED, N_SUBJECTS, DAYS = 7, 12, 7
STUDY_YAML = Path(__file__).resolve().parents[2] / "studies" / "demo" / "study.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return generate_demo(out, seed=SEED, n_subjects=N_SUBJECTS, days=DAYS)


def _hashes(root: Path, files) -> dict[str, str]:
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files}


def _files_on_disk(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_byte_identical_files(study, tmp_path):
    again = generate_demo(tmp_path, seed=SEED, n_subjects=N_SUBJECTS, days=DAYS)
    assert again.files == study.files
    assert again.broken_files == study.broken_files
    assert _hashes(tmp_path, again.files) == _hashes(study.out_dir, study.files)
    # The manifest lists every file and nothing else is left behind (no temporary files).
    assert _files_on_disk(study.out_dir) == list(study.files)


def test_different_seed_gives_different_data():
    # Checked on the generating functions: a third full generation would double the test time.
    def tables(seed):
        subjects = draw_subjects(seed, N_SUBJECTS)
        schedule = sleep_schedule(subjects[0], DAYS, subject_rng(seed, 0, Stream.SCHEDULE))
        minutes, _ = minute_series(subjects[0], schedule, DAYS, subject_rng(seed, 0, Stream.MINUTE))
        return subjects_table(subjects), endpoints_table(subjects, DAYS), minute_table(minutes), \
            lab_results(subjects, DAYS, seed)

    mine, theirs = tables(SEED), tables(SEED + 1)
    again = tables(SEED)
    for a, b, c in zip(mine, theirs, again, strict=False):
        assert not a.equals(b)
        assert a.equals(c)


def test_a_subject_does_not_depend_on_the_cohort_size():
    # Every draw of a subject's data comes from streams keyed by (seed, subject index), so
    # equal profiles here mean equal files.
    small, large = draw_subjects(SEED, 4), draw_subjects(SEED, N_SUBJECTS)
    assert small == large[:4]


def test_every_source_of_the_study_has_valid_files_and_every_broken_file_is_discovered(study):
    config = load_study(STUDY_YAML, data_root=study.out_dir)
    broken = set(study.broken_files)
    discovered = set()
    for name, source in config.sources.items():
        matched = {p.relative_to(study.out_dir).as_posix() for p in study.out_dir.glob(source.pattern)}
        assert matched - broken, f"source {name} has no valid file"
        subject_pattern = re.compile(source.subject_pattern)
        for relative in matched:
            if source.kind.value not in ("labs",):
                assert subject_pattern.match(Path(relative).name), relative
        discovered |= matched
    assert broken <= discovered
    assert "truth/anomalies.csv" not in discovered
    assert study.broken_files == {
        "raw/labs/lims/site_a_lims_wrong_units.csv": CheckName.PLAUSIBLE_RANGE,
        "raw/labs/hl7/site_b_results_unknown_unit.hl7": CheckName.KNOWN_UNIT,
        "raw/vitals/S0001_vitals_monitor2.csv": CheckName.PLAUSIBLE_RANGE,
        "raw/vitals/S0004_vitals_export.csv": CheckName.NO_DIRECT_IDENTIFIERS,
        "raw/minute/S0003_minute_resend.csv": CheckName.TIMESTAMPS_ORDERED,
        "raw/minute/S9999_minute.csv": CheckName.KNOWN_SUBJECT,
        "raw/device/S0002_ax6.cwa": "readable",
        f"raw/accel/{_resampled_subject(study)}_resampled_wrist.parquet": CheckName.SAMPLING_RATE,
    }


def _resampled_subject(study) -> str:
    return next(Path(f).name.split("_")[0] for f in study.files if f.endswith("_resampled_wrist.parquet"))


def test_subjects_file_is_well_formed(study):
    subjects = pd.read_csv(study.out_dir / "raw/subjects.csv", dtype=str)
    assert list(subjects.columns) == ["subject_id", "site", "arm", "sex", "birth_year", "height_cm", "enrolled_on"]
    assert list(subjects.subject_id) == [f"S{k:04d}" for k in range(1, N_SUBJECTS + 1)] == list(study.subject_ids)
    assert set(subjects.site) == set(SITES)
    assert set(subjects.arm) <= {"placebo", "active"}
    assert set(subjects.sex) <= set(SEXES)
    assert subjects.birth_year.astype(int).between(1935, 1970).all()
    assert subjects.height_cm.astype(float).between(130, 210).all()
    enrolled = pd.to_datetime(subjects.enrolled_on, format="%Y-%m-%d")
    assert enrolled.between(pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-17")).all()


def test_endpoints_file_is_well_formed(study):
    endpoints = pd.read_csv(study.out_dir / "raw/endpoints.csv", dtype=str)
    subjects = pd.read_csv(study.out_dir / "raw/subjects.csv", dtype=str)
    assert list(endpoints.columns) == ["subject_id", "index_time", "endpoint", "outcome"]
    assert list(endpoints.subject_id) == list(subjects.subject_id)
    assert endpoints.index_time.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    index_time = pd.to_datetime(endpoints.index_time, utc=True)
    enrolled = pd.to_datetime(subjects.enrolled_on).dt.tz_localize("UTC")
    assert (index_time - enrolled == pd.Timedelta(days=DAYS)).all()
    assert set(endpoints.endpoint) == {ENDPOINT}
    assert set(endpoints.outcome) == {"0", "1"}


def test_minute_file_follows_the_spec(study):
    minute = pd.read_csv(study.out_dir / "raw/minute/S0001_minute.csv", keep_default_na=False, dtype=str)
    assert list(minute.columns) == ["time", "steps", "heart_rate", "sleep_stage", "worn"]
    assert len(minute) == DAYS * 1440
    assert minute.time.str.endswith("Z").all()
    step = pd.to_datetime(minute.time, utc=True).diff().dropna()
    assert (step == pd.Timedelta(minutes=1)).all()
    worn = minute.worn.astype(int)
    assert set(worn) == {0, 1}
    assert ((minute.heart_rate == "") == (worn == 0)).all()
    assert set(minute.sleep_stage[worn == 1]) == {"wake", "light", "deep", "rem"} <= set(SLEEP_STAGES)
    heart_rate = minute.heart_rate[worn == 1].astype(int)
    assert heart_rate.between(35, 200).all()


def test_planted_decline_shows_in_steps(study):
    """Decliners walk less at the end of their window than at its start, relative to the rest.

    Compared within subject (median daily steps of the last three days over the first three),
    because between-subject differences in activity swamp a 12-subject comparison of levels.
    """
    endpoints = pd.read_csv(study.out_dir / "raw/endpoints.csv")
    change = {}
    for sid in endpoints.subject_id:
        steps = pd.read_csv(study.out_dir / f"raw/minute/{sid}_minute.csv", usecols=["steps"]).steps.to_numpy()
        daily = steps.reshape(DAYS, 1440).sum(axis=1)
        change[sid] = np.median(daily[-3:]) / np.median(daily[:3])
    change = endpoints.subject_id.map(change)
    assert change[endpoints.outcome == 1].mean() < change[endpoints.outcome == 0].mean() - 0.2


def _looks_like_identifier(column: str) -> bool:
    folded = re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")
    return re.match(DIRECT_IDENTIFIER_PATTERN, folded) is not None


def test_no_column_looks_like_a_name_except_in_the_export_file(study):
    flagged = set()
    for relative in study.files:
        path = study.out_dir / relative
        if path.suffix == ".csv":
            columns = path.open(encoding="utf-8").readline().strip().split(",")
        elif path.suffix == ".parquet":
            columns = pq.read_schema(path).names
        else:
            continue
        if any(_looks_like_identifier(c) for c in columns):
            flagged.add(relative)
    assert flagged == {"raw/vitals/S0004_vitals_export.csv"}
    # Lab messages carry the subject code only: no names in HL7 PID or FHIR resources.
    for relative in study.files:
        path = study.out_dir / relative
        if path.suffix == ".hl7":
            for segment in path.read_text().split("\r"):
                if segment.startswith("PID|"):
                    assert segment.split("|")[5:] in ([], [""]), segment
        elif path.suffix == ".json":
            assert '"name"' not in path.read_text()


def test_truncated_cwa_is_a_cut_copy_of_the_real_recording(study):
    original = (study.out_dir / "raw/device/S0001_ax6.cwa").read_bytes()
    truncated = (study.out_dir / "raw/device/S0002_ax6.cwa").read_bytes()
    assert original == ax6_recording()
    assert len(truncated) < len(original)
    assert len(truncated) % 512 != 0
    assert original.startswith(truncated)
    assert truncated_cwa(original) == truncated


def test_high_rate_files_have_evenly_spaced_samples(study):
    # One file of each kind: they are all made by the same code, and reading all is slow.
    kinds = ("_wrist.parquet", "_resampled_wrist.parquet", "_lowback.csv", "_ecg.csv")
    first = [next(f for f in study.files if f.endswith(k) and "resampled" not in f.replace(k, "")) for k in kinds]
    for relative in first:
        path = study.out_dir / relative
        if relative.endswith("_wrist.parquet"):
            table = pq.read_table(path)
            assert [str(t) for t in table.schema.types] == ["double", "float", "float", "float"]
            rate = 25 if "resampled" in relative else 50
            time = table.column("time").to_numpy()
            z = table.column("z").to_numpy()
            if rate == 50:
                assert len(time) == 36 * 3600 * 50  # noon of the day before to midnight: one whole night
                # Gravity is in the signal: the mean magnitude is about 1 g in m/s^2.
                xyz = np.c_[table.column("x").to_numpy(), table.column("y").to_numpy(), z]
                assert 9.0 < np.linalg.norm(xyz, axis=1).mean() < 10.8
        elif relative.endswith("_lowback.csv"):
            frame = pd.read_csv(path)
            assert list(frame.columns) == ["time", "ax", "ay", "az"]
            rate, time = 50, frame.time.to_numpy()
            assert len(time) == 2 * 3600 * 50
            assert 0.8 < frame.ax.mean() < 1.1  # upright: the vertical axis carries 1 g
        elif relative.startswith("raw/ecg/"):
            frame = pd.read_csv(path)
            assert list(frame.columns) == ["time", "lead_ii"]
            rate, time = 250, frame.time.to_numpy()
            assert frame.lead_ii.between(-3, 3).all()
            time = time[: 30 * 250]  # snippets are 30 s apart by hours; check within one
        else:
            continue
        assert np.allclose(np.diff(time) * rate, 1.0, atol=1e-4), relative


def test_rr_and_vitals_files_follow_the_spec(study):
    rr = pd.read_csv(study.out_dir / "raw/rr/S0001_rr.csv")
    assert list(rr.columns) == ["time", "rr_ms"]
    assert rr.rr_ms.between(300, 2000).all()
    beats = pd.to_datetime(rr.time, utc=True)
    assert beats.dt.date.nunique() == DAYS
    vitals = pd.read_csv(study.out_dir / "raw/vitals/S0001_vitals.csv")
    assert list(vitals.columns) == ["charttime", "hr", "spo2", "resp_rate", "temp", "sbp", "avpu", "on_oxygen"]
    assert len(vitals) == DAYS * 6
    assert vitals.spo2.between(70, 100).all() and vitals.hr.between(30, 200).all()
    assert set(vitals.avpu) <= set("ACVPU")
    broken = pd.read_csv(study.out_dir / "raw/vitals/S0001_vitals_monitor2.csv")
    assert (broken.spo2 > 100).any() and (broken.hr >= 400).any()


def test_labs_are_reported_in_each_sites_units(study):
    lims = pd.read_csv(study.out_dir / "raw/labs/lims/site_a_lims.csv", dtype=str)
    creatinine = lims[lims.loinc_code == "14682-9"]
    assert set(creatinine.units) == {"umol/L"} and creatinine.result.astype(float).between(30, 300).all()
    assert set(lims[lims.loinc_code == "15074-8"].units) == {"mmol/L"}
    wrong = pd.read_csv(study.out_dir / "raw/labs/lims/site_a_lims_wrong_units.csv", dtype=str)
    assert set(wrong.loinc_code) == {"2160-0"} and set(wrong.units) == {"mg/dL"}
    assert (wrong.result.astype(float) > 20).all()  # umol/L values under a mg/dL label
    hl7 = (study.out_dir / "raw/labs/hl7/site_b_results.hl7").read_text()
    assert "|2160-0^" in hl7 and "|mg/dL|" in hl7 and "|SITE-B|" in hl7
    assert "|mg/mmol|" in (study.out_dir / "raw/labs/hl7/site_b_results_unknown_unit.hl7").read_text()
    bundle = json.loads((study.out_dir / "raw/labs/fhir/site_c_bundle.json").read_text())
    units = {e["resource"]["valueQuantity"]["unit"] for e in bundle["entry"]}
    assert {"mg/dL", "g/dL"} <= units and "umol/L" not in units


def test_anomaly_truth_names_planted_episodes(study):
    truth = pd.read_csv(study.out_dir / "truth/anomalies.csv")
    assert list(truth.columns) == ["subject_id", "start", "end", "kind", "source"]
    assert set(truth.kind) == {"sensor_fault", "arrhythmia", "desaturation"}
    assert (pd.to_datetime(truth.end, utc=True) > pd.to_datetime(truth.start, utc=True)).all()
    fault = truth[truth.kind == "sensor_fault"].iloc[0]
    minute = pd.read_csv(study.out_dir / f"raw/minute/{fault.subject_id}_minute.csv")
    time = pd.to_datetime(minute.time, utc=True)
    inside = minute[(time >= pd.Timestamp(fault.start)) & (time < pd.Timestamp(fault.end))]
    # Flat-lined heart rate or stuck step counter: one value throughout the episode.
    assert inside.heart_rate.nunique() == 1 or inside.steps.nunique() == 1


def test_too_small_a_cohort_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 4"):
        generate_demo(tmp_path, n_subjects=3, days=7)
