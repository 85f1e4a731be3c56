"""The synthetic demo study: ``biomarkers generate-demo DIR --seed N``.

Writes a realistic, deterministic cohort in the formats of real devices and laboratory
interfaces, laid out as ``studies/demo/study.yaml`` declares: enrollment and endpoint files,
minute-level wearable data, Actiwatch activity counts (one subject in ten), wrist and
lower-back accelerometry, an Axivity AX6 binary, morning
RR-interval recordings, ECG snippets, inpatient vital signs and laboratory results from three
sites in three interface formats (LIMS CSV, HL7 v2, FHIR). A real signal is planted: subjects
whose outcome is 1 decline over the two weeks before their index time (fewer steps, slower
gait, higher resting heart rate, lower heart-rate variability, rising creatinine and CRP, worse
NEWS2 vital signs), noisily enough that a model can learn it without separating the classes.

Two more things come with the data:

* ``truth/anomalies.csv``: labelled anomaly episodes planted in the data (sensor faults in the
  minute data, arrhythmia in the RR recordings, desaturations in the vital signs), the ground
  truth for evaluating anomaly detection. It is not a study source and is never ingested.
* deliberately broken files, each an extra file beside the valid ones, listed in
  ``DemoManifest.broken_files`` with the check meant to catch it.

Determinism: the same seed gives byte-identical files. Every random draw comes from a
generator seeded by ``SeedSequence(seed, spawn_key=(subject_index, stream))``, the same
sequence ``SeedSequence(seed).spawn(...)`` hands its children, so a subject's data depend only
on the seed, their index and the number of days, never on how many other subjects there are.
Nothing reads the wall clock.

Times are UTC; the demo treats local clock time as UTC (March 2024, before British Summer
Time), so circadian patterns are placed directly on the UTC clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter

from pipelines.config import CheckName
from pipelines.demo import lab_messages

STUDY_START = dt.date(2024, 3, 4)  # a Monday; enrollment is staggered over the two weeks from here
ENROLLMENT_SPREAD_DAYS = 14
SITES = ("SITE-A", "SITE-B", "SITE-C")
ARMS = ("placebo", "active")
ENDPOINT = "hospitalization_90d"
DECLINE_DAYS = 14  # the planted decline ramps up over the last two weeks before index time
STAGES = ("wake", "light", "deep", "rem")  # minute sleep_stage codes 0..3, a subset of SLEEP_STAGES
AVPU = ("A", "C", "V", "P", "U")
STANDARD_GRAVITY_M_S2 = 9.80665
ACCEL_FS_HZ = 50
ECG_FS_HZ = 250
RR_RECORDING_S = 300
ECG_SNIPPET_S = 30
N_ACCEL_SUBJECTS = 3
N_ECG_SUBJECTS = 5
AX6_ASSET = "ax6_sample.cwa"
SCREENING_DAYS_BEFORE_ENROLLMENT = 3
MIN_SUBJECTS = 4  # broken files need S0001, S0002, two inpatients and a subject without wrist data
READABLE = "readable"  # not a configurable check: the reader itself fails on the file

_OUTCOME_BLOCK = 10  # outcomes are assigned per block of this many consecutive subjects


class Stream(IntEnum):
    """Independent random streams of a subject, the second element of the spawn key.

    Adding a stream at the end never changes the others.
    """

    PROFILE = 0
    SCHEDULE = 1
    MINUTE = 2
    RR = 3
    ECG = 4
    VITALS = 5
    LABS = 6
    WRIST = 7
    LOWBACK = 8
    BROKEN = 9
    OUTCOMES = 10  # keyed by (block of subjects, OUTCOMES), not by subject
    ACTIWATCH = 11
    HEIGHT = 12
    HOLTER = 13

# Which subjects carry planted anomalies: fixed by subject index, so every small cohort of at
# least 12 subjects has each kind and subject 1 keeps its role whatever the cohort size.
_SENSOR_FAULT_EVERY, _SENSOR_FAULT_AT = 15, 4
_ARRHYTHMIA_EVERY, _ARRHYTHMIA_AT = 20, 9
_DESATURATION_EVERY, _DESATURATION_AT = 30, (3, 17)
_INPATIENT_EVERY, _INPATIENT_AT = 10, (0, 3, 7)  # 30 % of subjects form the inpatient sub-cohort

_CSV_OPTIONS = pa_csv.WriteOptions(quoting_style="none", quoting_header="none")

ProgressCallback = Callable[[str, int], None]
_COHORT_STEPS = ("cohort", "labs", "accelerometry", "ecg", "device", "broken files", "truth")


@dataclass(frozen=True)
class DemoManifest:
    """What ``generate_demo`` wrote.

    Attributes
    ----------
    out_dir : the study data root the files were written under.
    subject_ids : the enrolled subjects, ``S0001`` ... in order.
    files : every file written, as POSIX paths relative to ``out_dir``, sorted.
    broken_files : relative path of each deliberately broken file -> the check meant to catch
        it (a ``pipelines.config.CheckName`` value, or ``"readable"`` for a file the reader
        cannot parse at all).
    """

    out_dir: Path
    subject_ids: tuple[str, ...]
    files: tuple[str, ...]
    broken_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """One synthetic subject: enrollment record, outcome and personal baselines.

    Baselines are the subject's healthy levels; the planted decline moves away from them.
    """

    index: int
    subject_id: str
    site: str
    arm: str
    sex: str
    birth_year: int
    height_cm: float
    enrolled_on: dt.date
    outcome: int
    severity: float  # 0 (no decline) .. 1 (steepest decline) reached at index time
    inpatient: bool
    chronotype_min: float  # shift of the sleep schedule, minutes
    steps_per_day: float
    cadence_spm: float  # walking cadence in a gait test, steps/min
    resting_hr_bpm: float
    rmssd_ms: float
    resp_rate_per_min: float
    spo2_percent: float
    sbp_mmhg: float
    temperature_deg_c: float
    creatinine_mg_dl: float
    crp_mg_l: float
    glucose_mg_dl: float
    hemoglobin_g_dl: float
    sodium_mmol_l: float
    potassium_mmol_l: float
    urea_nitrogen_mg_dl: float
    wbc_10e3_ul: float
    platelets_10e3_ul: float
    albumin_g_dl: float

    @property
    def start_s(self) -> int:
        """Midnight UTC of the enrollment day, unix seconds."""
        return _unix_s(self.enrolled_on)

    def index_time_s(self, days: int) -> int:
        """End of the observation window (the index time of the endpoint), unix seconds."""
        return self.start_s + days * 86_400


@dataclass(frozen=True)
class Schedule:
    """Nightly sleep schedule in minutes since the subject's enrollment midnight.

    Night ``k`` ends on the morning of day ``k``; night 0 starts the evening before enrollment.
    """

    bed_min: np.ndarray  # shape (days + 1,): lights out
    sleep_min: np.ndarray  # shape (days + 1,): sleep onset (bed time + latency)
    wake_min: np.ndarray  # shape (days + 1,): final awakening


@dataclass(frozen=True)
class MinuteSeries:
    """One subject's minute-level wearable data as arrays of shape (days * 1440,)."""

    start_s: int
    steps: np.ndarray  # int, steps in the minute
    heart_rate: np.ndarray  # float bpm, NaN when not worn
    stage: np.ndarray  # int8 index into STAGES, -1 when not worn
    worn: np.ndarray  # bool


@dataclass(frozen=True)
class RrRecording:
    """One RR recording (a morning one, or a night's): start time and the RR intervals (ms) of consecutive beats."""

    start_ms: int
    rr_ms: np.ndarray
    arrhythmia: tuple[int, int] | None = None  # beat index range [first, last] of an AF episode


@dataclass(frozen=True)
class Anomaly:
    """A planted anomaly episode, [start, end) in unix seconds."""

    subject_id: str
    start_s: float
    end_s: float
    kind: str
    source: str


@dataclass(frozen=True)
class Roles:
    """Which subjects get the sources and broken files that not everyone has."""

    accel: tuple[int, ...]
    ecg: tuple[int, ...]
    resampled_wrist: int
    minute_resend: int
    vitals_monitor2: int
    vitals_export: int


# --------------------------------------------------------------------------------------------
# Entry point


def generate_demo(
    out_dir: Path,
    *,
    seed: int = 7,
    n_subjects: int = 200,
    days: int = 28,
    progress: ProgressCallback | None = None,
) -> DemoManifest:
    """Write the synthetic demo study under ``out_dir``.

    Parameters
    ----------
    out_dir : the study data root; created if missing. Files of an earlier run with other
        parameters are not removed.
    seed : seed of every random draw; the same seed gives byte-identical files.
    n_subjects : cohort size, at least 4. Subject ``k`` is the same whatever the cohort size.
    days : length of each subject's observation window from enrollment midnight, in days.
    progress : called as ``progress(step_name, advance)`` after each unit of work, for a
        progress bar; ``progress_total(n_subjects)`` units in all.

    Returns
    -------
    DemoManifest
        the subjects, the files written and the deliberately broken files with their checks.

    Raises
    ------
    ValueError
        if ``n_subjects`` < 4 or ``days`` < 2.
    """
    if n_subjects < MIN_SUBJECTS:
        raise ValueError(f"n_subjects={n_subjects}: the demo needs at least {MIN_SUBJECTS} subjects")
    if days < 2:
        raise ValueError(f"days={days}: the demo needs at least 2 days per subject")
    out_dir = Path(out_dir)
    tick = progress or (lambda step, advance: None)
    written: list[str] = []

    def put(relative: str, writer: Callable[[Path], object]) -> str:
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_path(path) as tmp:
            writer(tmp)
        written.append(relative)
        return relative

    subjects = draw_subjects(seed, n_subjects)
    roles = assign_roles(subjects)
    put("raw/subjects.csv", partial(_write_csv, subjects_table(subjects)))
    put("raw/endpoints.csv", partial(_write_csv, endpoints_table(subjects, days)))
    tick("cohort", 1)

    anomalies: list[Anomaly] = []
    minutes: dict[int, MinuteSeries] = {}
    recordings: dict[int, list[RrRecording]] = {}
    for subject in subjects:
        sid = subject.subject_id
        schedule = sleep_schedule(subject, days, subject_rng(seed, subject.index, Stream.SCHEDULE))
        series, found = minute_series(subject, schedule, days, subject_rng(seed, subject.index, Stream.MINUTE))
        anomalies += found
        put(f"raw/minute/{sid}_minute.csv", partial(_write_csv, minute_table(series)))
        if subject.index % ACTIWATCH_EVERY == 1:
            counts = actiwatch_awd(subject, series, subject_rng(seed, subject.index, Stream.ACTIWATCH))
            put(f"raw/actiwatch/{sid}_actiwatch.AWD", partial(_write_bytes, counts))
        rr = rr_recordings(subject, schedule, days, subject_rng(seed, subject.index, Stream.RR))
        anomalies += rr_anomalies(subject, rr)
        put(f"raw/rr/{sid}_rr.csv", partial(_write_csv, rr_table(rr)))
        if subject.index % HOLTER_EVERY == 0 and days >= 2:
            night = holter_night(subject, schedule, days, subject_rng(seed, subject.index, Stream.HOLTER))
            put(f"raw/holter/{sid}_holter.csv", partial(_write_csv, rr_table([night])))
        if subject.inpatient:
            vitals, found = vitals_table(subject, days, subject_rng(seed, subject.index, Stream.VITALS))
            anomalies += found
            put(f"raw/vitals/{sid}_vitals.csv", partial(_write_csv, vitals))
        # Kept only for the few subjects whose high-rate or broken files derive from them.
        if subject.index in roles.accel or subject.index in (roles.resampled_wrist, roles.minute_resend):
            minutes[subject.index] = series
        if subject.index in roles.ecg:
            recordings[subject.index] = rr
        tick("subject files", 1)

    labs = lab_results(subjects, days, seed)
    for site, relative, writer in _lab_files():
        put(relative, partial(writer, labs[labs["site"] == site].drop(columns="site").reset_index(drop=True)))
    tick("labs", 1)

    wear_day = days - 2  # a full day in the last week, where the decline shows
    # The wrist recording starts at noon the day before (the first day has none before midnight)
    # so that it holds a whole noon-to-noon sleep window, as a week-long recording would.
    wrist_start_min = max(0, wear_day * 1440 - WRIST_LEAD_MIN)
    for index in roles.accel:
        subject = subjects[index]
        wrist = wrist_accel_table(_day_slice(minutes[index], 0, (wear_day + 1) * 1440 - wrist_start_min,
                                             wrist_start_min), subject_rng(seed, index, Stream.WRIST))
        put(f"raw/accel/{subject.subject_id}_wrist.parquet", partial(_write_parquet, wrist))
        lowback = lowback_accel_table(subject, days, wear_day, subject_rng(seed, index, Stream.LOWBACK))
        put(f"raw/accel/{subject.subject_id}_lowback.csv", partial(_write_csv, lowback))
    tick("accelerometry", 1)

    for index in roles.ecg:
        ecg = ecg_table(recordings[index], subject_rng(seed, index, Stream.ECG))
        put(f"raw/ecg/{subjects[index].subject_id}_ecg.csv", partial(_write_csv, ecg))
    tick("ecg", 1)

    ax6 = ax6_recording()
    put(f"raw/device/{subjects[0].subject_id}_ax6.cwa", partial(_write_bytes, ax6))
    tick("device", 1)

    broken = _write_broken_files(put, subjects, roles, minutes, labs, days, seed, ax6)
    tick("broken files", 1)

    put("truth/anomalies.csv", partial(_write_csv, anomalies_table(anomalies)))
    tick("truth", 1)

    return DemoManifest(
        out_dir=out_dir,
        subject_ids=tuple(s.subject_id for s in subjects),
        files=tuple(sorted(written)),
        broken_files=broken,
    )


def progress_total(n_subjects: int) -> int:
    """Units of work ``generate_demo`` reports through its progress callback."""
    return n_subjects + len(_COHORT_STEPS)


# --------------------------------------------------------------------------------------------
# The cohort


def draw_subjects(seed: int, n_subjects: int) -> list[Subject]:
    """Draw the cohort: enrollment records, outcomes, decline severities and baselines."""
    return [draw_subject(seed, index) for index in range(n_subjects)]


def draw_subject(seed: int, index: int) -> Subject:
    """Draw subject ``index`` (0-based) from its own profile stream.

    Outcomes are assigned per block of ten consecutive subjects (2 or 3 per block, older
    subjects likelier), so the cohort's prevalence stays near 23 % whatever the seed and every
    demo of ten or more subjects has both classes. Most subjects with the outcome decline
    before index time, a fifth do not (events without warning); 12 % of those without it
    decline too (an illness they recover from), which keeps the planted signal learnable
    without separating the classes.
    """
    rng = subject_rng(seed, index, Stream.PROFILE)
    sex, age = _sex_and_age(rng)
    enrolled_on = STUDY_START + dt.timedelta(days=int(rng.integers(0, ENROLLMENT_SPREAD_DAYS)))
    outcome = int(_block_outcomes(seed, index // _OUTCOME_BLOCK)[index % _OUTCOME_BLOCK])
    if outcome:
        severity = float(rng.uniform(0.35, 1.0)) if rng.random() < 0.8 else 0.0
    else:
        severity = float(rng.uniform(0.15, 0.6)) if rng.random() < 0.12 else 0.0
    female = sex == "F"
    fitness = float(rng.normal(0, 1))  # shared by activity, heart rate and HRV: fitter, calmer heart
    return Subject(
        index=index,
        subject_id=f"S{index + 1:04d}",
        site=SITES[index % len(SITES)],  # round-robin recruitment keeps every site in small cohorts
        arm=ARMS[int(rng.integers(0, 2))],
        sex=sex,
        birth_year=enrolled_on.year - int(age),
        height_cm=_height_cm(sex, subject_rng(seed, index, Stream.HEIGHT)),
        enrolled_on=enrolled_on,
        outcome=outcome,
        severity=severity,
        inpatient=index % _INPATIENT_EVERY in _INPATIENT_AT,
        chronotype_min=float(rng.normal(0, 35)),
        steps_per_day=float(
            np.clip(6500 * math.exp(0.35 * fitness + rng.normal(0, 0.25)) - 60 * (age - 70), 1500, 16000)),
        cadence_spm=float(np.clip(rng.normal(110 - 0.25 * (age - 70), 5), 90, 125)),
        resting_hr_bpm=float(np.clip(rng.normal(66 - 3 * fitness, 5), 48, 90)),
        rmssd_ms=float(np.clip(30 * math.exp(0.2 * fitness - 0.012 * (age - 70) + rng.normal(0, 0.3)), 8, 90)),
        resp_rate_per_min=float(rng.normal(15.5, 1.2)),
        spo2_percent=float(np.clip(rng.normal(96.8, 0.9), 94.5, 99.5)),
        sbp_mmhg=float(rng.normal(132 + 0.4 * (age - 70), 12)),
        temperature_deg_c=float(rng.normal(36.7, 0.2)),
        creatinine_mg_dl=float(np.clip(rng.normal(0.82 if female else 1.02, 0.15), 0.5, 1.6)),
        crp_mg_l=float(np.clip(math.exp(rng.normal(0.6, 0.6)), 0.3, 15)),
        glucose_mg_dl=float(np.clip(rng.normal(102, 14), 75, 170)),
        hemoglobin_g_dl=float(rng.normal(13.2 if female else 14.6, 0.9)),
        sodium_mmol_l=float(rng.normal(140, 1.8)),
        potassium_mmol_l=float(rng.normal(4.2, 0.3)),
        urea_nitrogen_mg_dl=float(np.clip(rng.normal(16 + 0.1 * (age - 70), 3.5), 7, 30)),
        wbc_10e3_ul=float(np.clip(rng.normal(6.6, 1.4), 3.5, 11)),
        platelets_10e3_ul=float(np.clip(rng.normal(250, 50), 130, 420)),
        albumin_g_dl=float(rng.normal(4.1, 0.3)),
    )


def _sex_and_age(rng: np.random.Generator) -> tuple[str, float]:
    """The first draws of a profile stream: sex and age at enrollment (years)."""
    sex = "F" if rng.random() < 0.55 else "M"
    return sex, float(rng.uniform(55, 86))


def _block_outcomes(seed: int, block: int) -> np.ndarray:
    """Outcomes of the ten subjects of one block: two, or three with probability 0.3, drawn
    with weights rising with age. Shape (10,), int."""
    first = block * _OUTCOME_BLOCK
    ages = np.array([_sex_and_age(subject_rng(seed, first + j, Stream.PROFILE))[1] for j in range(_OUTCOME_BLOCK)])
    rng = subject_rng(seed, block, Stream.OUTCOMES)
    k = 2 + int(rng.random() < 0.3)
    weights = np.exp(0.04 * (ages - 70))
    outcomes = np.zeros(_OUTCOME_BLOCK, dtype=int)
    outcomes[rng.choice(_OUTCOME_BLOCK, size=k, replace=False, p=weights / weights.sum())] = 1
    return outcomes


def assign_roles(subjects: list[Subject]) -> Roles:
    """Choose the subjects with accelerometry, ECG and the subjects behind broken files.

    The accelerometry subjects are the first decliner and the first non-decliners, so the
    gait recordings show the slower cadence of a decliner beside healthy walking.
    """
    decliners = [s.index for s in subjects if s.outcome and s.severity > 0]
    healthy = [s.index for s in subjects if s.severity == 0]
    chosen = decliners[:1] + healthy[: N_ACCEL_SUBJECTS - len(decliners[:1])]
    chosen += [s.index for s in subjects if s.index not in chosen][: N_ACCEL_SUBJECTS - len(chosen)]
    accel = tuple(sorted(chosen))
    inpatients = [s.index for s in subjects if s.inpatient]
    return Roles(
        accel=accel,
        ecg=tuple(range(min(N_ECG_SUBJECTS, len(subjects)))),
        resampled_wrist=next(s.index for s in subjects if s.index not in accel),
        minute_resend=2,
        vitals_monitor2=inpatients[0],
        vitals_export=inpatients[1],
    )


def _height_cm(sex: str, rng: np.random.Generator) -> float:
    """Adult height, cm, to the millimetre: NCD-RisC 2016's European means (F 165, M 178 cm), SD 7 cm."""
    return round(float(rng.normal(165.0 if sex == "F" else 178.0, 7.0)), 1)


def subjects_table(subjects: list[Subject]) -> pa.Table:
    """``raw/subjects.csv``: one row per subject, no names or other direct identifiers."""
    return pa.table({
        "subject_id": [s.subject_id for s in subjects],
        "site": [s.site for s in subjects],
        "arm": [s.arm for s in subjects],
        "sex": [s.sex for s in subjects],
        "birth_year": pa.array([s.birth_year for s in subjects], pa.int16()),
        "height_cm": [s.height_cm for s in subjects],
        "enrolled_on": [s.enrolled_on.isoformat() for s in subjects],
    })


def endpoints_table(subjects: list[Subject], days: int) -> pa.Table:
    """``raw/endpoints.csv``: the 90-day hospitalization outcome at the end of each window."""
    return pa.table({
        "subject_id": [s.subject_id for s in subjects],
        "index_time": _iso_s(np.array([s.index_time_s(days) for s in subjects])),
        "endpoint": [ENDPOINT] * len(subjects),
        "outcome": pa.array([s.outcome for s in subjects], pa.int8()),
    })


def decline(subject: Subject, t_s: np.ndarray | float, days: int) -> np.ndarray:
    """How far the subject has declined at unix time ``t_s``: 0 until two weeks before index
    time, then rising convexly to ``subject.severity`` at index time (dimensionless)."""
    ramp_s = min(DECLINE_DAYS, days) * 86_400
    onset = subject.index_time_s(days) - ramp_s
    return subject.severity * np.clip((np.asarray(t_s, dtype=float) - onset) / ramp_s, 0.0, 1.0) ** 1.2


# --------------------------------------------------------------------------------------------
# Minute-level wearable: sleep, steps, heart rate, wear


def sleep_schedule(subject: Subject, days: int, rng: np.random.Generator) -> Schedule:
    """Nightly bed, sleep-onset and wake times, later on weekend nights and mornings.

    Returns
    -------
    Schedule with arrays of shape (days + 1,), minutes since enrollment midnight.
    """
    nights = np.arange(days + 1)
    weekday = (np.array([(subject.enrolled_on + dt.timedelta(days=int(k))).weekday() for k in nights]))
    weekend_morning = weekday >= 5
    weekend_evening = (weekday == 5) | (weekday == 6)  # the evening before Sat/Sun mornings: Fri, Sat
    declined = decline(subject, subject.start_s + nights * 86_400 + 7 * 3600, days)
    bed_clock = 22.75 * 60 + subject.chronotype_min + 60 * weekend_evening + rng.normal(0, 30, nights.size)
    wake_clock = (6.75 * 60 + subject.chronotype_min + 75 * weekend_morning + 40 * declined
                  + rng.normal(0, 25, nights.size))
    bed = nights * 1440 - 1440 + bed_clock
    latency = np.clip(rng.normal(15 + 15 * declined, 8, nights.size), 3, 60)
    wake = nights * 1440 + wake_clock
    return Schedule(bed_min=np.round(bed), sleep_min=np.round(bed + latency), wake_min=np.round(wake))


def minute_series(
    subject: Subject, schedule: Schedule, days: int, rng: np.random.Generator
) -> tuple[MinuteSeries, list[Anomaly]]:
    """Simulate a wrist wearable's minute output over the observation window.

    Returns
    -------
    series : steps, heart rate, sleep stage and wear per minute, arrays of shape (days * 1440,).
    anomalies : the planted sensor-fault episode, for the subjects chosen to carry one.
    """
    n = days * 1440
    minute = np.arange(n)
    t_s = subject.start_s + minute * 60
    declined = decline(subject, t_s, days)
    in_bed = _runs_mask(n, schedule.bed_min, schedule.wake_min - schedule.bed_min)
    asleep = _runs_mask(n, schedule.sleep_min, schedule.wake_min - schedule.sleep_min)
    stage = sleep_stages(schedule, asleep, declined, rng)
    steps = steps_per_minute(subject, schedule, in_bed, declined, rng)
    heart_rate = heart_rate_per_minute(subject, steps, stage, asleep, declined, rng)
    worn = ~non_wear_mask(schedule, n, rng)
    anomalies = []
    if subject.index % _SENSOR_FAULT_EVERY == _SENSOR_FAULT_AT:
        episode = _plant_sensor_fault(steps, heart_rate, worn, rng)
        anomalies.append(Anomaly(subject.subject_id, t_s[episode[0]], t_s[episode[1] - 1] + 60,
                                 "sensor_fault", "minute_wearable"))
    heart_rate = np.where(worn, heart_rate, np.nan)
    steps = np.where(worn, steps, 0)
    stage = np.where(worn, stage, -1).astype(np.int8)
    return MinuteSeries(subject.start_s, steps, heart_rate, stage, worn), anomalies


def sleep_stages(schedule: Schedule, asleep: np.ndarray, declined: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sleep stage per minute from ~90-minute cycles: deep sleep early in the night, REM late.

    Returns an int8 array of indices into ``STAGES``; every minute outside sleep is wake.
    """
    n = asleep.size
    night = np.clip(np.searchsorted(schedule.sleep_min, np.arange(n), side="right") - 1, 0, None)
    since_onset = np.arange(n) - schedule.sleep_min[night]
    cycle_min = rng.normal(92, 8, schedule.sleep_min.size)[night]
    # A slow random drift of the cycle phase so cycles are not clockwork.
    jitter = lfilter([0.05], [1, -0.95], rng.normal(0, 3.5, n))
    position = (since_onset + jitter) / cycle_min
    cycle = np.floor(position)
    phase = position - cycle
    deep_end = 0.22 + np.clip(0.45 - 0.13 * cycle, 0.02, None) * (1 - 0.5 * declined)
    rem_start = 1 - np.clip(0.12 + 0.07 * cycle, 0.0, 0.4)
    stage = np.full(n, 1, dtype=np.int8)
    stage[(phase >= 0.22) & (phase < deep_end)] = 2
    stage[(phase >= rem_start) & (cycle >= 0)] = 3
    # Brief awakenings, more frequent as health declines.
    starts = np.flatnonzero(rng.random(n) < 0.006 + 0.01 * declined)
    awake = _runs_mask(n, starts, rng.geometric(1 / 3, starts.size))
    stage[awake] = 0
    stage[~asleep] = 0
    return stage


def _activity_profile(minute_of_day: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Relative propensity to walk by time of day: morning, lunch and evening peaks on
    weekdays, a broad late-morning to afternoon plateau at weekends (dimensionless)."""
    h = minute_of_day / 60
    weekday = 0.25 + np.exp(-0.5 * ((h - 8.5) / 1.0) ** 2) + 0.7 * np.exp(-0.5 * ((h - 12.5) / 0.8) ** 2) \
        + 0.9 * np.exp(-0.5 * ((h - 17.5) / 1.2) ** 2)
    weekend_profile = 0.25 + np.exp(-0.5 * ((h - 11) / 2.0) ** 2) + 0.8 * np.exp(-0.5 * ((h - 15.5) / 1.5) ** 2)
    return np.where(weekend, weekend_profile, weekday)


def steps_per_minute(
    subject: Subject, schedule: Schedule, in_bed: np.ndarray, declined: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Steps per minute: walking bouts at free-living cadence plus sporadic household steps.

    Bouts start more often at the day's activity peaks; their number is scaled per day so the
    expected daily total matches the subject's level, varied day to day and cut by decline.
    """
    n = in_bed.size
    minute = np.arange(n)
    day = minute // 1440
    weekday = np.array([(subject.enrolled_on + dt.timedelta(days=int(d))).weekday() for d in range(n // 1440)])
    weekend = (weekday >= 5)[day]
    awake = ~in_bed
    profile = _activity_profile(minute % 1440, weekend) * awake
    day_factor = np.exp(rng.normal(0, 0.25, n // 1440))[day] * np.where(weekend, 0.9, 1.0)
    free_cadence = 0.85 * subject.cadence_spm * (1 - 0.12 * declined)
    sporadic_p, sporadic_mean = 0.2, 5.0
    sporadic_per_day = sporadic_p * sporadic_mean * 16 * 60
    target = np.clip(subject.steps_per_day * day_factor * (1 - 0.7 * declined) - sporadic_per_day, 200, None)
    walk_minutes = target / free_cadence
    profile_per_day = np.bincount(day, weights=profile, minlength=n // 1440)[day]
    mean_bout = 6.0
    p_start = np.clip(walk_minutes * profile / np.maximum(profile_per_day, 1e-9) / mean_bout, 0, 0.5)
    starts = np.flatnonzero(rng.random(n) < p_start)
    walking = _runs_mask(n, starts, rng.geometric(1 / mean_bout, starts.size)) & awake
    edge = walking & ~(np.r_[False, walking[:-1]] & np.r_[walking[1:], False])
    fraction = np.where(edge, rng.uniform(0.3, 0.9, n), np.clip(rng.normal(0.93, 0.06, n), 0.5, 1.0))
    walked = np.where(walking, (free_cadence + rng.normal(0, 7, n)) * fraction, 0.0)
    sporadic = np.where(awake & ~walking & (rng.random(n) < sporadic_p), rng.poisson(sporadic_mean, n), 0)
    return np.round(np.clip(walked, 0, 160)).astype(np.int64) + sporadic


def heart_rate_per_minute(
    subject: Subject,
    steps: np.ndarray,
    stage: np.ndarray,
    asleep: np.ndarray,
    declined: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Mean heart rate per minute (bpm): resting level, circadian swing, lower in sleep (lowest
    in deep sleep), a lagged rise with walking, and correlated noise."""
    n = steps.size
    minute = np.arange(n)
    day = minute // 1440
    rest = subject.resting_hr_bpm + 12 * declined + rng.normal(0, 1.8, n // 1440 + 1)[day]
    circadian = 3 * np.sin(2 * np.pi * ((minute % 1440) / 1440 - 0.375))
    sleep_offset = np.where(asleep, np.array([-2.0, -6.0, -9.0, -4.0])[stage], 0.0)
    # The heart follows exercise with a lag of a few minutes: a first-order response.
    drive = lfilter([0.35], [1, -0.65], 0.3 * steps + 3.0 * ~asleep)
    noise = lfilter([1], [1, -0.8], rng.normal(0, 1.5, n)) + rng.normal(0, 1.0, n)
    return np.round(np.clip(rest + circadian + sleep_offset + drive + noise, 38, 195))


def non_wear_mask(schedule: Schedule, n: int, rng: np.random.Generator) -> np.ndarray:
    """Minutes the device was off the wrist: daytime gaps (showering, charging), the odd night
    on the charger and the odd forgotten day. Returns a bool array of shape (n,)."""
    days = n // 1440
    wake = schedule.wake_min[:days]
    bed_next = schedule.bed_min[1 : days + 1]
    gap_day = np.flatnonzero(rng.random(days) < 0.3)
    earliest, latest = wake[gap_day] + 60, bed_next[gap_day] - 180
    gap_start = earliest + rng.random(gap_day.size) * np.maximum(latest - earliest, 1)
    gaps = [(gap_start, rng.integers(20, 150, gap_day.size))]
    night = np.flatnonzero(rng.random(days + 1) < 0.04)
    gaps.append((schedule.bed_min[night] - 30, schedule.wake_min[night] - schedule.bed_min[night] + 45))
    whole = np.flatnonzero(rng.random(days) < 0.012)
    gaps.append((wake[whole], bed_next[whole] - wake[whole]))
    starts = np.concatenate([g[0] for g in gaps]).astype(np.int64)
    lengths = np.concatenate([g[1] for g in gaps]).astype(np.int64)
    return _runs_mask(n, starts, lengths)


def _plant_sensor_fault(
    steps: np.ndarray, heart_rate: np.ndarray, worn: np.ndarray, rng: np.random.Generator
) -> tuple[int, int]:
    """Overwrite one episode in place: a flat-lined heart rate (the optical sensor stuck on its
    last value) or a step counter stuck on one value. Returns the minute range [start, stop)."""
    days = steps.size // 1440
    day = int(rng.integers(1, days)) if days > 1 else 0
    start = day * 1440 + int(rng.integers(9 * 60, 15 * 60))
    if rng.random() < 0.5:
        stop = start + int(rng.integers(180, 480))
        heart_rate[start:stop] = heart_rate[start]
    else:
        stop = start + int(rng.integers(120, 300))
        steps[start:stop] = int(rng.integers(95, 130))
    stop = min(stop, steps.size)
    worn[start:stop] = True  # a fault is data the device reported as valid
    return start, stop


def minute_table(series: MinuteSeries) -> pa.Table:
    """``raw/minute/<SID>_minute.csv``: time, steps, heart_rate, sleep_stage, worn."""
    n = series.steps.size
    worn = series.worn
    return pa.table({
        "time": _iso_s(series.start_s + np.arange(n, dtype=np.int64) * 60),
        "steps": pa.array(series.steps.astype(np.int16)),
        "heart_rate": pa.array(np.nan_to_num(series.heart_rate).astype(np.int16), mask=~worn),
        "sleep_stage": pa.DictionaryArray.from_arrays(
            pa.array(series.stage, mask=series.stage < 0), pa.array(STAGES)).cast(pa.string()),
        "worn": pa.array(worn.astype(np.int8)),
    })


WRIST_LEAD_MIN = 12 * 60  # wrist recordings start at noon before the day they cover
ACTIWATCH_EVERY = 10  # one subject in ten also wears an Actiwatch (S0002, S0012, ...)


def actiwatch_awd(subject: Subject, series: MinuteSeries, rng: np.random.Generator) -> bytes:
    """``raw/actiwatch/<SID>_actiwatch.AWD``: an Actiwatch 4 worn on the same wrist, 60-s epochs.

    Counts follow the minute data: wrist movement while walking (about 8 counts per step), a few
    hundred counts in an awake minute without steps, little in sleep, none off the wrist; the
    watch's clock keeps UTC here. The header's identity line holds the subject code, as study
    teams set it up (the reader never keeps it).
    """
    awake = series.stage == 0
    counts = np.where(awake, rng.gamma(1.5, 120.0, series.steps.size), rng.gamma(0.3, 15.0, series.steps.size))
    counts = np.round((counts + 8.0 * series.steps) * series.worn).astype(np.int64)
    start = dt.datetime.fromtimestamp(series.start_s, dt.UTC)
    header = [subject.subject_id, start.strftime("%d-%b-%Y"), start.strftime("%H:%M"), " 4 ", "00",
              f"V{600000 + subject.index}", "X"]
    return ("\r\n".join(header + [str(count) for count in counts]) + "\r\n").encode("ascii")


def _day_slice(series: MinuteSeries, day: int, minutes: int = 1440, offset_min: int = 0) -> MinuteSeries:
    lo = day * 1440 + offset_min
    hi = lo + minutes
    return MinuteSeries(series.start_s + lo * 60, series.steps[lo:hi], series.heart_rate[lo:hi],
                        series.stage[lo:hi], series.worn[lo:hi])


# --------------------------------------------------------------------------------------------
# RR intervals and ECG


def rr_recordings(subject: Subject, schedule: Schedule, days: int, rng: np.random.Generator) -> list[RrRecording]:
    """One 5-minute seated RR recording each morning, 20-50 min after waking.

    Heart rate rises and heart-rate variability falls with decline. The subjects chosen to
    carry an arrhythmia get one recording with an atrial-fibrillation-like episode.
    """
    af_day = int(rng.integers(max(days - DECLINE_DAYS, 0), days)) \
        if subject.index % _ARRHYTHMIA_EVERY == _ARRHYTHMIA_AT else -1
    recordings = []
    for day in range(days):
        start_s = subject.start_s + int(round(schedule.wake_min[day] + rng.uniform(20, 50))) * 60 \
            + int(rng.integers(0, 60))
        declined = float(decline(subject, start_s, days))
        heart_rate = subject.resting_hr_bpm + 4 + 12 * declined + rng.normal(0, 2)
        rmssd = subject.rmssd_ms * (1 - 0.5 * declined) * math.exp(rng.normal(0, 0.15))
        rr = rr_intervals_ms(60_000 / heart_rate, rmssd, RR_RECORDING_S, rng)
        episode = None
        if day == af_day:
            rr, episode = _plant_atrial_fibrillation(rr, rng)
        recordings.append(RrRecording(start_s * 1000, rr, episode))
    return recordings


HOLTER_EVERY = 10  # one subject in ten wears a chest-strap recorder for one night (S0001, S0011, ...)


def holter_night(subject: Subject, schedule: Schedule, days: int, rng: np.random.Generator) -> RrRecording:
    """One overnight RR recording, from sleep onset to the final awakening of the first night in
    the observation window (night 1): heart rate below the morning's, variability above it."""
    start_min, end_min = float(schedule.sleep_min[1]), float(schedule.wake_min[1])
    start_s = subject.start_s + int(round(start_min * 60))
    declined = float(decline(subject, start_s, days))
    heart_rate = subject.resting_hr_bpm - 6 + 10 * declined + rng.normal(0, 2)
    rmssd = 1.3 * subject.rmssd_ms * (1 - 0.5 * declined) * math.exp(rng.normal(0, 0.15))
    return RrRecording(start_s * 1000, rr_intervals_ms(60_000 / heart_rate, rmssd, (end_min - start_min) * 60, rng),
                       None)


def rr_intervals_ms(mean_rr_ms: float, rmssd_ms: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic sinus-rhythm RR intervals (integer ms) covering ``duration_s`` seconds.

    Respiratory sinus arrhythmia (a sinusoid at the breathing rate, 0.2-0.3 Hz) carries most
    of the beat-to-beat variability, with a 0.1 Hz Mayer-wave component and white noise sized
    so the RMSSD is close to ``rmssd_ms``; a few premature beats come with their compensatory
    pause, as ectopic beats do in real recordings.
    """
    n = int(duration_s * 1000 / mean_rr_ms) + 1
    t = np.arange(n) * mean_rr_ms / 1000
    breathing_hz = rng.uniform(0.2, 0.3)
    # RMSSD of A*sin(2 pi f t_k) sampled once per beat is sqrt(2) * A * sin(pi f T).
    rsa_gain = math.sqrt(2) * math.sin(math.pi * breathing_hz * mean_rr_ms / 1000)
    rsa = 0.85 * rmssd_ms / max(rsa_gain, 0.2)
    white = 0.45 * rmssd_ms / math.sqrt(2)
    rr = (mean_rr_ms
          + rsa * np.sin(2 * np.pi * breathing_hz * t + rng.uniform(0, 2 * np.pi))
          + 1.2 * rsa * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 2 * np.pi))
          + np.cumsum(rng.normal(0, 0.8, n))
          + rng.normal(0, white, n))
    ectopic = np.flatnonzero(rng.random(n - 1) < 0.0015)
    for k in ectopic:
        coupled = 0.62 * rr[k]
        rr[k + 1] += rr[k] - coupled
        rr[k] = coupled
    rr = np.round(np.clip(rr, 300, 2000)).astype(np.int64)
    keep = np.cumsum(rr) <= duration_s * 1000
    return rr[keep]


def _plant_atrial_fibrillation(rr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """Replace 1.5-3 minutes of a recording with irregularly irregular, faster intervals."""
    duration = rng.uniform(90, 180)
    mean = 0.8 * float(rr.mean())
    first = int(rng.integers(0, max(rr.size // 4, 1)))
    count = int(duration * 1000 / mean)
    af = np.round(np.clip(mean * (1 + rng.normal(0, 0.22, count)), 330, 1500)).astype(np.int64)
    out = np.concatenate([rr[:first], af, rr[first + count :]])
    keep = np.cumsum(out) <= RR_RECORDING_S * 1000
    return out[keep], (first, min(first + count, int(keep.sum())) - 1)


def rr_anomalies(subject: Subject, recordings: list[RrRecording]) -> list[Anomaly]:
    """The arrhythmia episodes of a subject's recordings, from the first to the last AF beat."""
    found = []
    for rec in recordings:
        if rec.arrhythmia is not None:
            beat_ms = rec.start_ms + np.cumsum(rec.rr_ms)
            first, last = rec.arrhythmia
            found.append(Anomaly(subject.subject_id, (beat_ms[first] - rec.rr_ms[first]) / 1000,
                                 beat_ms[last] / 1000, "arrhythmia", "rr_intervals"))
    return found


def rr_table(recordings: list[RrRecording]) -> pa.Table:
    """``raw/rr/<SID>_rr.csv``: time of each beat (ISO-8601, ms) and the interval it ends."""
    beat_ms = np.concatenate([rec.start_ms + np.cumsum(rec.rr_ms) for rec in recordings])
    return pa.table({
        "time": _iso_ms(beat_ms),
        "rr_ms": pa.array(np.concatenate([rec.rr_ms for rec in recordings]).astype(np.int16)),
    })


# P, Q, R, S and T waves: time from the R peak (s, scaled by sqrt(RR) for P and T as the QT
# interval shortens with rate), Gaussian width (s) and amplitude (mV); morphology after the
# sum-of-Gaussians model of McSharry et al. 2003, "A dynamical model for generating synthetic
# electrocardiogram signals", IEEE Trans Biomed Eng 50(3):289-294, in the time domain.
_ECG_WAVES = (
    (-0.20, 0.025, 0.13),
    (-0.030, 0.010, -0.12),
    (0.0, 0.011, 1.10),
    (0.032, 0.012, -0.28),
    (0.27, 0.055, 0.30),
)


def ecg_table(recordings: list[RrRecording], rng: np.random.Generator) -> pa.Table:
    """``raw/ecg/<SID>_ecg.csv``: a 30-s lead II snippet (250 Hz, mV) at the start of each
    morning RR recording, so the ECG beats are the beats of the RR file."""
    gain = rng.uniform(0.7, 1.3)
    parts = [ecg_snippet_mv(rec, gain, rng) for rec in recordings]
    return pa.table({
        "time": pa.array(np.concatenate([p[0] for p in parts])),
        "lead_ii": pa.array(np.concatenate([p[1] for p in parts])),
    })


def ecg_snippet_mv(rec: RrRecording, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Synthesize ``ECG_SNIPPET_S`` seconds of lead II from the recording's R-peak times.

    Returns
    -------
    time : float64 array of shape (7500,), unix seconds, exactly 1/250 s apart.
    ecg : float64 array of shape (7500,), mV rounded to 1 uV: P-QRS-T per beat, baseline
        wander at the breathing rate, 50 Hz mains interference and white noise.
    """
    n = ECG_SNIPPET_S * ECG_FS_HZ
    start_tick = rec.start_ms * ECG_FS_HZ // 1000  # the recording starts on a whole second
    t = np.arange(n) / ECG_FS_HZ
    beat_s = np.cumsum(rec.rr_ms) / 1000
    rr_s = rec.rr_ms / 1000
    near = beat_s < ECG_SNIPPET_S + 1
    peaks, rr_s = beat_s[near], rr_s[near]
    peaks, rr_s = np.r_[peaks[0] - rr_s[0], peaks], np.r_[rr_s[0], rr_s]  # the beat before the first
    ecg = np.zeros(n)
    scale = np.sqrt(rr_s)[:, None]
    for offset, width, amplitude in _ECG_WAVES:
        stretch = scale if abs(offset) > 0.1 else 1.0
        centre = peaks[:, None] + offset * stretch
        ecg += (amplitude * gain * np.exp(-0.5 * ((t[None, :] - centre) / (width * stretch)) ** 2)).sum(axis=0)
    breathing = rng.uniform(0.2, 0.3)
    ecg += 0.08 * np.sin(2 * np.pi * breathing * t + rng.uniform(0, 2 * np.pi))
    ecg += np.cumsum(rng.normal(0, 0.002, n))  # slow electrode drift
    ecg += 0.01 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.012, n)
    return (start_tick + np.arange(n)) / ECG_FS_HZ, np.round(ecg, 3)


# --------------------------------------------------------------------------------------------
# Vital signs of the inpatient sub-cohort


def vitals_table(subject: Subject, days: int, rng: np.random.Generator) -> tuple[pa.Table, list[Anomaly]]:
    """``raw/vitals/<SID>_vitals.csv``: ward observations every 4 h (charted within +-20 min).

    Decline raises heart and respiratory rate and temperature and lowers SpO2 and blood
    pressure, worsening the NEWS2 score; low saturations are put on oxygen. The subjects chosen
    to carry one get a desaturation episode of 2-3 consecutive low SpO2 observations.
    """
    slots = np.arange(days * 6)
    t_s = subject.start_s + slots * 4 * 3600 + 2 * 3600 + rng.integers(-20, 21, slots.size) * 60
    declined = decline(subject, t_s, days)
    n = slots.size
    hr = subject.resting_hr_bpm + 8 + 14 * declined + rng.normal(0, 5, n)
    spo2 = subject.spo2_percent - 5 * declined + rng.normal(0, 0.9, n)
    resp = subject.resp_rate_per_min + 7 * declined + rng.normal(0, 1.5, n)
    temp = subject.temperature_deg_c + 0.9 * declined + rng.normal(0, 0.25, n)
    sbp = subject.sbp_mmhg - 15 * declined + rng.normal(0, 9, n)
    on_oxygen = (spo2 < 92) & (rng.random(n) < 0.8)
    spo2 = np.where(on_oxygen, spo2 + 3, spo2)
    avpu = np.where(rng.random(n) < 0.25 * declined**2, 1, 0)
    avpu[rng.random(n) < 0.002] = 2
    anomalies = []
    if subject.index % _DESATURATION_EVERY in _DESATURATION_AT:
        length = int(rng.integers(2, 4))
        first = int(rng.integers(6, max(n - length, 7)))
        dip = slice(first, first + length)
        spo2[dip] = rng.uniform(82, 88, length)
        on_oxygen[dip] = False
        anomalies.append(Anomaly(subject.subject_id, float(t_s[first]), float(t_s[first + length - 1] + 60),
                                 "desaturation", "vitals"))
    return _vitals_columns(t_s, hr, spo2, resp, temp, sbp, avpu, on_oxygen), anomalies


def _vitals_columns(t_s, hr, spo2, resp, temp, sbp, avpu, on_oxygen) -> pa.Table:
    return pa.table({
        "charttime": _iso_s(np.asarray(t_s, dtype=np.int64)),
        "hr": pa.array(np.round(np.clip(hr, 35, 180)).astype(np.int16)),
        "spo2": pa.array(np.round(np.clip(spo2, 70, 100)).astype(np.int16)),
        "resp_rate": pa.array(np.round(np.clip(resp, 8, 40)).astype(np.int16)),
        "temp": pa.array(np.round(np.clip(temp, 34.5, 41), 1)),
        "sbp": pa.array(np.round(np.clip(sbp, 70, 220)).astype(np.int16)),
        "avpu": pa.array(np.array(AVPU, dtype=object)[avpu]),
        "on_oxygen": pa.array(np.asarray(on_oxygen).astype(np.int8)),
    })


# --------------------------------------------------------------------------------------------
# Laboratory results


@dataclass(frozen=True)
class _Reporting:
    """How a site reports an analyte: LOINC code, unit, factor from the conventional unit,
    decimals, and the reference interval in the reported unit."""

    loinc: str
    unit: str
    factor: float
    decimals: int
    low: float
    high: float


_CONVENTIONAL: dict[str, _Reporting] = {
    "creatinine": _Reporting("2160-0", "mg/dL", 1.0, 2, 0.6, 1.2),
    "c_reactive_protein": _Reporting("1988-5", "mg/L", 1.0, 1, 0.0, 5.0),
    "glucose": _Reporting("2345-7", "mg/dL", 1.0, 0, 70.0, 99.0),
    "hemoglobin": _Reporting("718-7", "g/dL", 1.0, 1, 12.0, 17.5),
    "sodium": _Reporting("2951-2", "mmol/L", 1.0, 0, 135.0, 145.0),
    "potassium": _Reporting("2823-3", "mmol/L", 1.0, 1, 3.5, 5.1),
    "urea_nitrogen": _Reporting("3094-0", "mg/dL", 1.0, 0, 7.0, 20.0),
    "white_blood_cells": _Reporting("6690-2", "10*3/uL", 1.0, 1, 4.0, 11.0),
    "platelets": _Reporting("777-3", "10*3/uL", 1.0, 0, 150.0, 400.0),
    "albumin": _Reporting("1751-7", "g/dL", 1.0, 1, 3.5, 5.0),
}
# SITE-A reports SI units: different LOINC codes where the property changes (mass -> moles).
_SI: dict[str, _Reporting] = {
    **_CONVENTIONAL,
    "creatinine": _Reporting("14682-9", "umol/L", 88.42, 0, 53.0, 106.0),
    "glucose": _Reporting("15074-8", "mmol/L", 1 / 18.016, 1, 3.9, 5.5),
    "hemoglobin": _Reporting("718-7", "g/L", 10.0, 0, 120.0, 175.0),
    "urea_nitrogen": _Reporting("22664-7", "mmol/L", 1 / 2.801, 1, 2.5, 7.1),  # urea, 2 N per molecule
    "white_blood_cells": _Reporting("6690-2", "10*9/L", 1.0, 1, 4.0, 11.0),
    "platelets": _Reporting("777-3", "10*9/L", 1.0, 0, 150.0, 400.0),
    "albumin": _Reporting("1751-7", "g/L", 10.0, 0, 35.0, 50.0),
}
_REPORTING_BY_SITE = {"SITE-A": _SI, "SITE-B": _CONVENTIONAL, "SITE-C": _CONVENTIONAL}
_LAB_COLUMNS = ["subject_id", "timestamp", "loinc_code", "analyte", "value", "unit",
                "reference_low", "reference_high", "abnormal_flag"]


def lab_results(subjects: list[Subject], days: int, seed: int) -> pd.DataFrame:
    """The cohort's lab results as each site reports them, one row per result.

    Returns
    -------
    DataFrame with columns subject_id, timestamp (datetime64[ns, UTC], specimen collection),
    loinc_code, analyte, value and unit (as reported by the subject's site), reference_low,
    reference_high (in the reported unit), abnormal_flag (L, H or N) and site.
    """
    frames = [_subject_labs(s, days, subject_rng(seed, s.index, Stream.LABS)) for s in subjects]
    return pd.concat(frames, ignore_index=True)


def _subject_labs(subject: Subject, days: int, rng: np.random.Generator) -> pd.DataFrame:
    """A screening draw three days before enrollment (the baseline), weekly draws from enrollment
    and one on the last day of the window, when the decline (rising creatinine, CRP and white
    cells; falling hemoglobin, albumin, sodium) is greatest."""
    visit_days = sorted(set(range(0, days, 7)) | {days - 1, -SCREENING_DAYS_BEFORE_ENROLLMENT})
    t_s = np.array([subject.start_s + d * 86_400 + int(rng.integers(8 * 60, 10 * 60)) * 60 for d in visit_days])
    r = decline(subject, t_s, days)
    k = t_s.size
    conventional = {
        "creatinine": subject.creatinine_mg_dl * (1 + 0.35 * r) * np.exp(rng.normal(0, 0.08, k)),
        "c_reactive_protein": subject.crp_mg_l * np.exp(2.0 * r + rng.normal(0, 0.5, k)),
        "glucose": subject.glucose_mg_dl + rng.normal(0, 8, k),
        "hemoglobin": subject.hemoglobin_g_dl - 1.0 * r + rng.normal(0, 0.3, k),
        "sodium": subject.sodium_mmol_l - 3 * r + rng.normal(0, 1.2, k),
        "potassium": subject.potassium_mmol_l + 0.3 * r + rng.normal(0, 0.15, k),
        "urea_nitrogen": subject.urea_nitrogen_mg_dl * (1 + 0.3 * r) * np.exp(rng.normal(0, 0.12, k)),
        "white_blood_cells": subject.wbc_10e3_ul * (1 + 0.5 * r) * np.exp(rng.normal(0, 0.08, k)),
        "platelets": subject.platelets_10e3_ul + rng.normal(0, 15, k),
        "albumin": subject.albumin_g_dl - 0.6 * r + rng.normal(0, 0.15, k),
    }
    reporting = _REPORTING_BY_SITE[subject.site]
    rows = []
    for analyte, values in conventional.items():
        rep = reporting[analyte]
        reported = np.round(np.clip(values, 0.01, None) * rep.factor, rep.decimals)
        rows.append(pd.DataFrame({
            "subject_id": subject.subject_id,
            "timestamp": pd.to_datetime(t_s, unit="s", utc=True),
            "loinc_code": rep.loinc,
            "analyte": analyte,
            "value": reported,
            "unit": rep.unit,
            "reference_low": rep.low,
            "reference_high": rep.high,
            "abnormal_flag": _abnormal_flags(reported, rep.low, rep.high),
            "site": subject.site,
        }))
    return pd.concat(rows, ignore_index=True).sort_values(["timestamp", "analyte"], kind="stable")


def _abnormal_flags(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.where(values < low, "L", np.where(values > high, "H", "N"))


def _lab_files() -> list[tuple[str, str, Callable[[pd.DataFrame, Path], None]]]:
    """(site, relative path, writer) of the three lab interfaces."""
    return [
        ("SITE-A", "raw/labs/lims/site_a_lims.csv", lab_messages.write_lims_csv),
        ("SITE-B", "raw/labs/hl7/site_b_results.hl7", partial(lab_messages.write_hl7v2, sending_facility="SITE-B")),
        ("SITE-C", "raw/labs/fhir/site_c_bundle.json", lab_messages.write_fhir_bundle),
    ]


# --------------------------------------------------------------------------------------------
# Accelerometry


def wrist_accel_table(minutes: MinuteSeries, rng: np.random.Generator, fs: int = ACCEL_FS_HZ) -> pa.Table:
    """``raw/accel/<SID>_wrist.parquet``: wrist acceleration following the minute data.

    Parameters
    ----------
    minutes : the subject's minute series over the recording (one day for the demo).
    rng : the subject's wrist stream.
    fs : sampling rate, Hz.

    Returns
    -------
    Table with ``time`` (float64 unix seconds, exactly ``1/fs`` apart) and ``x``, ``y``, ``z``
    (float32, m/s^2, gravity included), quantized to a 12-bit +-8 g sensor. Asleep the arm
    lies still with a posture change now and then; off the wrist the device lies flat; awake
    it fidgets, and walking minutes swing the arm at half the step frequency.
    """
    n_s = minutes.steps.size * 60
    n = n_s * fs
    second_stage = np.repeat(minutes.stage, 60)
    second_steps = np.repeat(minutes.steps, 60)
    worn = np.repeat(minutes.worn, 60)
    asleep = worn & (second_stage > 0)
    # Walking fills the start of a minute in proportion to its steps.
    cadence = np.repeat(np.clip(minutes.steps, 60, 130), 60)
    walking = worn & (second_steps >= 20) & (np.tile(np.arange(60), minutes.steps.size) < 60 * second_steps / cadence)
    gravity = _wrist_gravity(asleep, walking, worn, rng)
    # Fidgeting while awake and twitches in light sleep: noise drawn at fs/5 (10 Hz) and interpolated,
    # so it is band-limited like real movement, scaled per second by the state.
    level = np.select([~worn, walking, second_stage == 1, asleep], [0.0, 0.05, 0.004, 0.0], default=0.02)  # g
    level = np.repeat((level * np.exp(np.clip(rng.normal(0, 0.8, n_s), -3, 2.3))).astype(np.float32), fs)  # bursty
    walk_idx = np.flatnonzero(np.repeat(walking, fs))
    phase = (2 * np.pi / fs) * np.cumsum(np.repeat(cadence / 60, fs)[walk_idx])
    swing = (
        0.35 * np.sin(phase / 2) + 0.12 * np.sin(phase + 0.4),  # forearm pitch at the stride frequency
        0.18 * np.sin(phase / 2 + 1.1),
        0.10 * np.sin(phase + 0.9),  # the bounce of each step
    )
    axes = []
    for axis in range(3):
        g = _upsample_linear(gravity[:, axis].astype(np.float32), fs)
        g[walk_idx] += swing[axis].astype(np.float32)
        g += _upsample_linear(rng.standard_normal(n // 5, dtype=np.float32), 5) * level
        g += rng.standard_normal(n, dtype=np.float32) * np.float32(0.0025)  # sensor noise
        counts = np.clip(np.rint(g * 256), -2048, 2047)  # 12 bits over +-8 g
        axes.append((counts * np.float32(STANDARD_GRAVITY_M_S2 / 256)).astype(np.float32))
    start_tick = minutes.start_s * fs
    return pa.table({
        "time": pa.array((start_tick + np.arange(n)) / fs),
        "x": pa.array(axes[0]),
        "y": pa.array(axes[1]),
        "z": pa.array(axes[2]),
    })


def _wrist_gravity(asleep: np.ndarray, walking: np.ndarray, worn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Direction of gravity in the sensor frame per second, shape (n_seconds, 3), unit vectors.

    Piecewise-constant postures (long in sleep, minutes when sitting, arm hanging when walking,
    flat on a table when off the wrist), smoothed over a few seconds at each change, with a
    slow wobble while awake.
    """
    n_s = asleep.size
    state = np.where(~worn, 0, np.where(asleep, 1, np.where(walking, 2, 3)))
    change = np.r_[True, state[1:] != state[:-1]]
    change |= np.where(state == 1, rng.random(n_s) < 1 / 1800, rng.random(n_s) < 1 / 150) & (state != 0)
    segment = np.cumsum(change) - 1
    seg_state = state[np.flatnonzero(change)]
    k = seg_state.size
    vectors = rng.normal(0, 1, (k, 3))
    vectors[seg_state == 0] = (0.0, 0.0, 1.0)
    hanging = seg_state == 2  # walking: the arm hangs, the forearm axis points down
    vectors[hanging] = np.c_[np.full(k, -1.0), 0.15 * rng.normal(size=k), 0.15 * rng.normal(size=k)][hanging]
    # Awake and still: mostly the forearm resting with the watch face up, otherwise any pose
    # (arm hanging, hand on the lap, reading).
    sitting = (seg_state == 3) & (rng.random(k) < 0.7)
    vectors[sitting] = np.c_[0.4 * rng.normal(size=k), 0.4 * rng.normal(size=k), np.full(k, 0.9)][sitting]
    per_second = vectors[segment]
    wobble = lfilter([0.1], [1, -0.9], rng.normal(0, 0.15, (n_s, 3)), axis=0) * ((state == 3) | (state == 2))[:, None]
    per_second = uniform_filter1d(per_second, size=3, axis=0, mode="nearest") + wobble
    return per_second / np.linalg.norm(per_second, axis=1, keepdims=True)


def lowback_accel_table(
    subject: Subject, days: int, day: int, rng: np.random.Generator, fs: int = ACCEL_FS_HZ
) -> pa.Table:
    """``raw/accel/<SID>_lowback.csv``: a 2-hour clinic visit with a lower-back sensor, in g.

    The visit alternates sitting, standing and 6-10 walking bouts of 1-4 minutes. Walking is
    modelled from the trunk's periodic accelerations: vertical (x, +1 g upright) and
    anterior-posterior (z) at the step frequency with harmonics, medio-lateral (y) at the
    stride frequency; decliners walk at a lower cadence with smaller vertical excursions.

    Returns
    -------
    Table with ``time`` (float64 unix seconds, exactly ``1/fs`` apart) and ``ax``, ``ay``,
    ``az`` (g, 4 decimals).
    """
    start_s = subject.start_s + day * 86_400 + 10 * 3600 + int(rng.integers(0, 90)) * 60
    declined = float(decline(subject, start_s, days))
    cadence = subject.cadence_spm * (1 - 0.15 * declined)
    n = 2 * 3600 * fs
    kinds = np.zeros(n, dtype=np.int8)  # 0 sit, 1 stand, 2 walk
    position = int(rng.uniform(3, 8) * 60 * fs)
    while position < n:
        for kind, low, high in ((1, 20, 60), (2, 60, 240), (1, 10, 40), (0, 180, 720)):
            length = int(rng.uniform(low, high) * fs)
            kinds[position : position + length] = kind
            position += length
    walking = kinds == 2
    step_hz = cadence / 60 * (1 + 0.02 * lfilter([0.01], [1, -0.99], rng.normal(0, 10, n)))
    phase = 2 * np.pi * np.cumsum(step_hz) / fs
    # Bouts fade in over the first steps and out over the last.
    envelope = uniform_filter1d(walking.astype(float), size=2 * fs, mode="nearest")
    vertical_g = 0.28 * (1 - 0.4 * declined) * (cadence / 110) ** 2
    vertical = vertical_g * (0.65 * np.cos(phase) + 0.25 * np.cos(2 * phase + 0.6) + 0.1 * np.cos(3 * phase + 1.2)
                             + 0.08 * np.cos(phase / 2))
    ap = 0.2 * (0.55 * np.sin(phase + 0.8) + 0.3 * np.sin(2 * phase + 1.4))
    ml = 0.12 * (np.sin(phase / 2) + 0.3 * np.sin(phase + 0.3))
    tilt = np.radians(np.where(kinds == 0, 25.0, 4.0))  # sitting reclines the trunk
    tilt = uniform_filter1d(tilt, size=fs, mode="nearest")
    sway = lfilter([0.002], [1, -0.998], rng.normal(0, 1, (n, 3)), axis=0)
    ax = np.cos(tilt) + envelope * vertical + sway[:, 0]
    ay = envelope * ml + sway[:, 1]
    az = -np.sin(tilt) + envelope * ap + sway[:, 2]
    noise = rng.normal(0, 0.008, (n, 3))
    start_tick = start_s * fs
    return pa.table({
        "time": pa.array((start_tick + np.arange(n)) / fs),
        "ax": pa.array(np.round(ax + noise[:, 0], 4)),
        "ay": pa.array(np.round(ay + noise[:, 1], 4)),
        "az": pa.array(np.round(az + noise[:, 2], 4)),
    })


def ax6_recording() -> bytes:
    """The real Axivity AX6 recording shipped with the package (SKDH test data, MIT licence)."""
    return importlib.resources.files("pipelines.demo").joinpath("assets", AX6_ASSET).read_bytes()


# --------------------------------------------------------------------------------------------
# Deliberately broken files


def _write_broken_files(
    put: Callable[[str, Callable[[Path], object]], str],
    subjects: list[Subject],
    roles: Roles,
    minutes: dict[int, MinuteSeries],
    labs: pd.DataFrame,
    days: int,
    seed: int,
    ax6: bytes,
) -> dict[str, str]:
    """Write every broken file beside the valid ones; return relative path -> intended check."""
    broken: dict[str, str] = {}

    def add(relative: str, check: str, writer: Callable[[Path], object]) -> None:
        broken[put(relative, writer)] = check

    add("raw/labs/lims/site_a_lims_wrong_units.csv", CheckName.PLAUSIBLE_RANGE.value,
        partial(lab_messages.write_lims_csv, wrong_unit_creatinine(labs)))
    add("raw/labs/hl7/site_b_results_unknown_unit.hl7", CheckName.KNOWN_UNIT.value,
        partial(lab_messages.write_hl7v2, unknown_unit_glucose(labs), sending_facility="SITE-B"))

    monitor2 = subjects[roles.vitals_monitor2]
    second_monitor = out_of_range_vitals(monitor2, days, subject_rng(seed, monitor2.index, Stream.BROKEN))
    add(f"raw/vitals/{monitor2.subject_id}_vitals_monitor2.csv", CheckName.PLAUSIBLE_RANGE.value,
        partial(_write_csv, second_monitor))
    exported = subjects[roles.vitals_export]
    add(f"raw/vitals/{exported.subject_id}_vitals_export.csv", CheckName.NO_DIRECT_IDENTIFIERS.value,
        partial(_write_csv, vitals_with_names(exported, days, seed)))

    resend = subjects[roles.minute_resend]
    add(f"raw/minute/{resend.subject_id}_minute_resend.csv", CheckName.TIMESTAMPS_ORDERED.value,
        partial(_write_csv, resent_minutes(minutes[roles.minute_resend])))
    add("raw/minute/S9999_minute.csv", CheckName.KNOWN_SUBJECT.value,
        partial(_write_csv, unknown_subject_minutes(seed)))

    add(f"raw/device/{subjects[1].subject_id}_ax6.cwa", READABLE, partial(_write_bytes, truncated_cwa(ax6)))

    # Named *_wrist.parquet so the wrist source's pattern picks it up (*_wrist_resampled.parquet
    # would not match); its subject has no other wrist file, so nothing valid is lost.
    resampled = subjects[roles.resampled_wrist]
    half_rate = wrist_accel_table(_day_slice(minutes[roles.resampled_wrist], days - 2, 60, 10 * 60),
                                  subject_rng(seed, resampled.index, Stream.BROKEN), fs=ACCEL_FS_HZ // 2)
    add(f"raw/accel/{resampled.subject_id}_resampled_wrist.parquet", CheckName.SAMPLING_RATE.value,
        partial(_write_parquet, half_rate))
    return broken


def wrong_unit_creatinine(labs: pd.DataFrame) -> pd.DataFrame:
    """SITE-A creatinine from the last visits, values in umol/L but labelled mg/dL with the
    mass-concentration LOINC code 2160-0: a LIMS export mapping error. Values of 50-150
    "mg/dL" are implausible (the plausible range stops near 20 mg/dL): they look like umol/L."""
    rows = labs[(labs["site"] == "SITE-A") & (labs["analyte"] == "creatinine")]
    rows = rows[rows["timestamp"] >= rows.groupby("subject_id")["timestamp"].transform("max")]
    rep = _CONVENTIONAL["creatinine"]
    return rows.assign(
        loinc_code=rep.loinc, unit=rep.unit, reference_low=rep.low, reference_high=rep.high,
        abnormal_flag=_abnormal_flags(rows["value"].to_numpy(), rep.low, rep.high),
    )[_LAB_COLUMNS].reset_index(drop=True)


def unknown_unit_glucose(labs: pd.DataFrame) -> pd.DataFrame:
    """SITE-B glucose results of the first visits sent with the unit ``mg/mmol``, which no
    glucose result can have (it is a urine albumin/creatinine ratio unit)."""
    rows = labs[(labs["site"] == "SITE-B") & (labs["analyte"] == "glucose")]
    rows = rows[rows["timestamp"] <= rows.groupby("subject_id")["timestamp"].transform("min")]
    return rows.assign(unit="mg/mmol")[_LAB_COLUMNS].reset_index(drop=True)


def out_of_range_vitals(subject: Subject, days: int, rng: np.random.Generator) -> pa.Table:
    """A second bedside monitor's export for the last 3 days, charted 2 h after the ward
    observations, with a few physiologically impossible rows (SpO2 130 %, heart rate 400)."""
    n = min(days, 3) * 6
    t_s = subject.index_time_s(days) - n * 4 * 3600 + np.arange(n) * 4 * 3600 + rng.integers(0, 30, n) * 60
    declined = decline(subject, t_s, days)
    hr = subject.resting_hr_bpm + 8 + 14 * declined + rng.normal(0, 5, n)
    spo2 = subject.spo2_percent - 5 * declined + rng.normal(0, 0.9, n)
    bad = rng.choice(n, size=3, replace=False)
    spo2[bad[0]] = 130
    hr[bad[1:]] = 400
    table = _vitals_columns(
        t_s, hr, spo2, subject.resp_rate_per_min + rng.normal(0, 1.5, n), subject.temperature_deg_c
        + rng.normal(0, 0.25, n), subject.sbp_mmhg + rng.normal(0, 9, n), np.zeros(n, dtype=int), np.zeros(n, bool))
    # _vitals_columns clips to plausible values for valid files; put the impossible ones back.
    return table.set_column(1, "hr", pa.array(np.round(hr).astype(np.int16))).set_column(
        2, "spo2", pa.array(np.round(spo2).astype(np.int16)))


_FAKE_NAMES = ("Alex Example", "Sam Placeholder", "Jordan Sample", "Casey Demo", "Robin Fictional",
               "Morgan Testperson")


def vitals_with_names(subject: Subject, days: int, seed: int) -> pa.Table:
    """The subject's valid vitals re-exported with a ``patient_name`` column of fake names."""
    table, _ = vitals_table(subject, days, subject_rng(seed, subject.index, Stream.VITALS))
    name = _FAKE_NAMES[subject.index % len(_FAKE_NAMES)]
    return table.add_column(1, "patient_name", pa.array([name] * table.num_rows))


def resent_minutes(series: MinuteSeries) -> pa.Table:
    """The last day of minute data re-uploaded with its final 2 hours sent twice, so time
    steps back and timestamps repeat."""
    day = _day_slice(series, series.steps.size // 1440 - 1)
    table = minute_table(day)
    return pa.concat_tables([table, table.slice(table.num_rows - 120)])


def unknown_subject_minutes(seed: int, days: int = 2) -> pa.Table:
    """Plausible minute data of ``S9999``, a subject code that is not enrolled (a device
    handed out without being registered). Drawn from the streams of subject index 9998, which
    no cohort of the demo reaches."""
    subject = draw_subject(seed, 9998)
    schedule = sleep_schedule(subject, days, subject_rng(seed, subject.index, Stream.SCHEDULE))
    series, _ = minute_series(subject, schedule, days, subject_rng(seed, subject.index, Stream.MINUTE))
    return minute_table(series)


def truncated_cwa(data: bytes) -> bytes:
    """The CWA recording cut at 60 % of its bytes, in the middle of a 512-byte block, as an
    interrupted download or a full disk leaves it."""
    cut = int(len(data) * 0.6)
    if cut % 512 == 0:
        cut -= 100
    return data[:cut]


# --------------------------------------------------------------------------------------------
# Ground truth


def anomalies_table(anomalies: list[Anomaly]) -> pa.Table:
    """``truth/anomalies.csv``: subject_id, start, end (ISO-8601 UTC, [start, end)), kind, source."""
    ordered = sorted(anomalies, key=lambda a: (a.subject_id, a.start_s, a.kind))
    return pa.table({
        "subject_id": pa.array([a.subject_id for a in ordered], pa.string()),
        "start": _iso_ms(np.array([round(a.start_s * 1000) for a in ordered], dtype=np.int64)),
        "end": _iso_ms(np.array([round(a.end_s * 1000) for a in ordered], dtype=np.int64)),
        "kind": pa.array([a.kind for a in ordered], pa.string()),
        "source": pa.array([a.source for a in ordered], pa.string()),
    })


# --------------------------------------------------------------------------------------------
# Helpers


def subject_rng(seed: int, subject_index: int, stream: int) -> np.random.Generator:
    """The generator of one subject's stream: ``SeedSequence(seed).spawn`` child
    ``subject_index``, then its child ``stream``, whatever the cohort size."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(subject_index, stream)))


def _unix_s(day: dt.date) -> int:
    return int((day - dt.date(1970, 1, 1)).days) * 86_400


def _runs_mask(n: int, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Boolean array of shape (n,), True inside any run [start, start + length); runs may
    overlap or reach outside [0, n)."""
    starts = np.asarray(starts, dtype=np.int64)
    stops = np.clip(starts + np.maximum(np.asarray(lengths, dtype=np.int64), 0), 0, n)
    starts = np.clip(starts, 0, n)
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, stops, -1)
    return np.cumsum(edges[:n]) > 0


def _upsample_linear(knots: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation between equally spaced knots, ``factor`` samples per knot interval
    (the last knot is held). Same as ``np.interp`` on a regular grid, without the search."""
    step = np.diff(knots, append=knots[-1:])
    fraction = (np.arange(factor, dtype=knots.dtype) / knots.dtype.type(factor))
    return (knots[:, None] + step[:, None] * fraction[None, :]).ravel()


def _iso_s(unix_s: np.ndarray) -> pa.Array:
    """ISO-8601 UTC strings with a Z, whole seconds: ``2024-03-04T07:00:00Z``."""
    stamps = pa.array(np.asarray(unix_s, dtype=np.int64).astype("datetime64[s]"))
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(unix_ms: np.ndarray) -> pa.Array:
    """ISO-8601 UTC strings with a Z and milliseconds: ``2024-03-04T07:00:00.123Z``."""
    stamps = pa.array(np.asarray(unix_ms, dtype=np.int64).astype("datetime64[ms]"))
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    so a reader never sees a half-written file."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def _write_csv(table: pa.Table, path: Path) -> None:
    pa_csv.write_csv(table, str(path), _CSV_OPTIONS)


def _write_parquet(table: pa.Table, path: Path) -> None:
    # Dictionary encoding suits the quantized axes (at most 4096 levels); the timestamps,
    # unique and evenly spaced, compress best split into byte streams.
    pq.write_table(
        table, str(path), compression="zstd", use_dictionary=["x", "y", "z"],
        column_encoding={"time": "BYTE_STREAM_SPLIT"}, write_statistics=True,
    )
