"""The feature tables: what each holds, which curated sources feed it, and how it is computed.

A feature table is one Parquet file, one row per subject per window, with ``subject_id``,
``event_timestamp`` (the end of the window), ``created_timestamp`` and the biomarker columns.
This module is the single list of them: the feature build computes them, the Feast feature
views are declared from them, and each column's description (unit, source, algorithm) lives
here once.

Pure declarations: importing this module reads nothing and writes nothing (Feast imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.biomarkers import circadian, labs, vitals


@dataclass(frozen=True)
class FeatureTable:
    """One feature table.

    Attributes
    ----------
    name : table and feature view name, e.g. ``daily_activity``.
    inputs : the curated inputs it reads, as ``kind`` or ``kind:placement`` (``accelerometry:wrist``).
    columns : biomarker column -> description (what, unit, source, algorithm and reference).
    ttl_days : how long a row stays valid for point-in-time retrieval and online serving.
    text_columns : categorical column -> description (strings; ``columns`` are all numbers).
    description : what the table is, for the Feast registry and the UI.
    """

    name: str
    inputs: tuple[str, ...]
    columns: dict[str, str]
    ttl_days: float
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    text_columns: dict[str, str] = field(default_factory=dict)


_MINUTE = "minute-level wearable export (steps, heart rate, sleep stage, wear per minute)"
_RR = ("beats of the day's morning recording: its first 5 min of RR intervals (biomarkers.hrv.window_s), "
       "artefacts left out by the study's biomarkers.hrv.artefact_method (default Lipponen & Tarvainen 2019)")
_CIRCADIAN = ("worn minutes' steps of the 7 UTC days ending with the row's, in the wearer's local time "
              "(the source's timezone), binarized when biomarkers.circadian.activity_threshold is set")
_CIRCADIAN_COUNTS = ("activity counts per minute (a device's epoch counts: Actiwatch, ActiGraph) of the 7 UTC days "
                     "ending with the row's, in the wearer's local time (the source's timezone), every minute with a "
                     "count taken as worn, binarized when biomarkers.circadian.activity_threshold is set")
_CIRCADIAN_ENMO = ("worn minutes' mean ENMO (mg) of raw wrist accelerometry, autocalibrated (biomarkers.qc), of the 7 "
                   "UTC days ending with the row's, in the wearer's local time (the source's timezone), worn minutes "
                   "by SKDH's wear detection, binarized when biomarkers.circadian.activity_threshold is set")
_WRIST = "raw wrist accelerometry (g)"
_LOWER_BACK = "raw lower-back accelerometry (g)"
_VITALS = "bedside vital signs"
_LABS = "laboratory results (LIMS, HL7 v2, FHIR), canonical units"
_EVENTS = "live vital-sign events (HTTP API or Kafka stream)"

_STATISTICS = {"mean": "mean", "min": "lowest", "max": "highest", "slope": "least-squares slope per hour of"}


def _circadian_columns(names: circadian.CircadianColumns, unit: str, what: str) -> dict[str, str]:
    """The circadian table's columns for one activity signal (``unit`` of L5 and M10, ``what`` it is)."""
    return {
        names.interdaily_stability: "interdaily stability IS of the 7 days to this one, unitless; " + what
        + "; van Someren et al. 1999 (biomarkers.circadian.definition)",
        names.intradaily_variability: "intradaily variability IV, unitless; " + what + "; van Someren et al. 1999",
        names.relative_amplitude: "relative amplitude RA = (M10 - L5) / (M10 + L5), unitless; " + what
        + "; van Someren et al. 1996",
        names.l5_mean: f"mean of the least active 5 h of the average day, {unit}; " + what,
        names.l5_onset: "start of the least active 5 h (the middle one of equal windows), minutes after local "
        "midnight, min; " + what,
        names.m10_mean: f"mean of the most active 10 h of the average day, {unit}; " + what,
        names.m10_onset: "start of the most active 10 h, minutes after local midnight, min; " + what,
        names.valid_days: "days with the minimum wear among the 7, count; " + what,
    }


def _describe_vital(name: str) -> str:
    """``heart_rate_mean_24h_bpm`` -> what it is, its unit, its source and how it is computed."""
    if name.startswith("news2_score_max_"):
        window = name.removeprefix("news2_score_max_")
        return (f"highest NEWS2 total over the past {window}, points; " + _VITALS
                + "; Royal College of Physicians NEWS2 (2017) chart, SpO2 scale 1")
    if name == "desaturation_events_24h_count":
        return ("SpO2 desaturation events over the past 24 h, count; " + _VITALS
                + "; >= 3 points below the 4 h median or < 90 % on 2 readings (after AASM 2012)")
    # The first statistic in the name: "_min_" also occurs in units ("..._slope_1h_per_min_per_h").
    found = [(name.index(f"_{statistic}_"), statistic) for statistic in _STATISTICS if f"_{statistic}_" in name]
    if found:
        statistic = min(found)[1]
        signal, rest = name.split(f"_{statistic}_", 1)
        window, unit = rest.split("_", 1)
        return (f"{_STATISTICS[statistic]} {signal.replace('_', ' ')} over the past {window}, "
                f"{unit.replace('_', ' ')}; " + _VITALS + f"; window [T-{window}, T)")
    raise ValueError(f"no description for vital-sign feature {name!r}")


def _describe_lab(name: str) -> str:
    """``creatinine_last_mg_dl`` -> what it is, its unit, its source and how it is computed."""
    if name.startswith("egfr_ckd_epi_2021"):
        return ("estimated GFR, mL/min/1.73 m^2; " + _LABS
                + "; CKD-EPI 2021 race-free creatinine equation (Inker et al., NEJM 2021)")
    for statistic, words in (("_last_", "last value"), ("_baseline_", "last value at or before enrollment"),
                             ("_slope_30d_", "least-squares slope over 30 days"),
                             ("_out_of_range_flag", "outside the reference range (1) or not (0)")):
        if statistic in name:
            analyte, _, unit = name.partition(statistic)
            unit_words = f", {unit.replace('_', ' ')}" if unit else ""
            return f"{analyte.replace('_', ' ')}: {words}{unit_words}; " + _LABS
    raise ValueError(f"no description for lab feature {name!r}")


HRV_COLUMNS = {
    "mean_nn_morning_ms": "mean NN interval, ms; " + _RR + "; Task Force 1996",
    "mean_hr_morning_bpm": "mean heart rate, bpm; the mean of the beat-to-beat rates 60000/NN; " + _RR,
    "sdnn_morning_ms": "standard deviation of NN intervals, ms; " + _RR + "; Task Force 1996",
    "rmssd_morning_ms": "root mean square of successive NN differences, ms; " + _RR + "; Task Force 1996",
    "pnn50_morning_percent": "share of successive NN differences > 50 ms, %; " + _RR + "; Task Force 1996",
    "lf_power_morning_ms2": "low-frequency power 0.04-0.15 Hz, ms^2; " + _RR + "; 4 Hz cubic spline + Welch",
    "hf_power_morning_ms2": "high-frequency power 0.15-0.40 Hz, ms^2; " + _RR + "; 4 Hz cubic spline + Welch",
    "lf_hf_ratio_morning": "LF/HF power ratio, unitless; " + _RR + "; Task Force 1996",
    "ectopic_beats_morning_percent": "intervals flagged ectopic or artefact, %; " + _RR,
}

_NIGHT = ("the night's RR intervals between 00:00 and 06:00 in the wearer's local time "
          "(biomarkers.hrv.night_start_hour, night_end_hour) of overnight recordings (hrv_recording: night), in "
          "5-min segments (biomarkers.hrv.segment_s) each analysed like the morning recording and averaged; the "
          "night ending in the row's UTC day")
HRV_NIGHT_COLUMNS = {
    "mean_nn_night_ms": "mean NN interval, ms; " + _NIGHT + "; Task Force 1996",
    "mean_hr_night_bpm": "mean heart rate, bpm; the mean of the beat-to-beat rates 60000/NN; " + _NIGHT,
    "sdnn_night_ms": "mean of the segments' standard deviations of NN intervals (SDNN index), ms; " + _NIGHT
    + "; Task Force 1996",
    "rmssd_night_ms": "root mean square of successive NN differences, ms; " + _NIGHT + "; Task Force 1996",
    "pnn50_night_percent": "share of successive NN differences > 50 ms, %; " + _NIGHT + "; Task Force 1996",
    "lf_power_night_ms2": "low-frequency power 0.04-0.15 Hz, ms^2; " + _NIGHT + "; 4 Hz cubic spline + Welch",
    "hf_power_night_ms2": "high-frequency power 0.15-0.40 Hz, ms^2; " + _NIGHT + "; 4 Hz cubic spline + Welch",
    "lf_hf_ratio_night": "mean of the segments' LF/HF power ratios, unitless; " + _NIGHT,
    "ectopic_beats_night_percent": "intervals flagged ectopic or artefact over the night window, %; " + _NIGHT,
    "hrv_segments_night_count": "segments analysed (enough data, few enough artefacts), count; " + _NIGHT,
}

TABLES: tuple[FeatureTable, ...] = (
    FeatureTable(
        name="daily_activity",
        inputs=("minute_wearable",),
        columns={
            "steps_sum_1d_count": "steps in the UTC day, count; " + _MINUTE + "; sum over worn minutes",
            "active_minutes_1d_min": "minutes at >= 100 steps/min, min; " + _MINUTE
            + "; Tudor-Locke et al. 2018 moderate-cadence threshold",
            "peak_cadence_1min_1d_steps_per_min": "highest one-minute cadence, steps/min; " + _MINUTE
            + "; Tudor-Locke et al. 2018",
            "peak_cadence_30min_1d_steps_per_min": "mean of the 30 highest minutes, steps/min; " + _MINUTE
            + "; Tudor-Locke et al. 2018",
            "wear_time_1d_min": "minutes worn in the UTC day, min; " + _MINUTE + "; device wear flag",
            "resting_heart_rate_1d_bpm": "mean of the lowest 10 % of 5-minute heart-rate means while awake and "
            "worn, bpm; " + _MINUTE + "; platform definition after Palatini 2009",
            "heart_rate_mean_1d_bpm": "mean heart rate over worn minutes, bpm; " + _MINUTE,
        },
        ttl_days=3,
        description="Daily physical activity and heart rate from minute-level wearable exports.",
    ),
    FeatureTable(
        name="accel_activity",
        inputs=("accelerometry:wrist",),
        columns={
            "sedentary_time_1d_min": "sedentary minutes in the UTC day, min; " + _WRIST + ", autocalibrated"
            + "; SKDH ActivityLevelClassification cut-points",
            "light_activity_1d_min": "light-activity minutes, min; " + _WRIST + "; SKDH cut-points",
            "mvpa_1d_min": "moderate-to-vigorous activity minutes, min; " + _WRIST + "; SKDH cut-points",
            "acceleration_intensity_mean_1d_mg": "mean ENMO over worn time, mg; " + _WRIST + "; SKDH ENMO",
            "accel_wear_time_1d_min": "minutes worn, min; " + _WRIST + "; SKDH wear detection",
            "nonwear_1d_percent": "share of the day's recorded minutes not worn, %; " + _WRIST
            + "; SKDH wear detection (quality control)",
            "clipped_samples_1d_percent": "share of the day's samples at 99 % or more of the device's range, %; "
            + _WRIST + " (quality control; days above biomarkers.qc.max_clipped_percent get no levels)",
            "calibration_error_before_mg": "mean |norm - 1 g| of the recording's still 10-s windows before "
            "autocalibration, mg; " + _WRIST + "; van Hees et al. 2014, GGIR cal.error.start (quality control)",
            "calibration_error_after_mg": "the same after autocalibration (equal to before when not applied), mg; "
            + _WRIST + "; recordings above biomarkers.qc.max_calibration_error_mg get no levels",
            "autocalibrated_flag": "the recording autocalibrated (1) or not (0), when too short or with too few "
            "orientations at rest to fit; " + _WRIST + "; SKDH CalibrateAccelerometer, van Hees et al. 2014",
            "actigraph_counts_vm_mean_1d_counts_per_min": "mean ActiGraph vector-magnitude counts per worn "
            "minute, counts/min; " + _WRIST + "; ActiGraph's count method (Brønd et al. 2017), equal to "
            "ActiLife's at 30-100 Hz",
        },
        ttl_days=3,
        description="Daily activity levels and ActiGraph counts from raw wrist accelerometry through SKDH, "
        "autocalibrated, with the recording's quality control (calibration error, clipping, non-wear).",
    ),
    FeatureTable(
        name="gait",
        inputs=("accelerometry:lower_back",),
        columns={
            "gait_bouts_1d_count": "walking bouts in the UTC day, count; " + _LOWER_BACK + "; SKDH gait",
            "gait_steps_1d_count": "steps in walking bouts, count; " + _LOWER_BACK + "; SKDH gait",
            "cadence_mean_1d_steps_per_min": "mean cadence in bouts, steps/min; " + _LOWER_BACK + "; SKDH gait",
            "gait_speed_mean_1d_m_s": "mean gait speed, m/s; " + _LOWER_BACK + "; SKDH gait speed model",
            "stride_time_mean_1d_s": "mean stride time, s; " + _LOWER_BACK + "; SKDH gait events",
            "stride_time_cv_1d_percent": "stride-time coefficient of variation, %; " + _LOWER_BACK + "; SKDH",
        },
        ttl_days=14,
        description="Gait from raw lower-back accelerometry through SKDH.",
    ),
    FeatureTable(
        name="sleep",
        inputs=("minute_wearable",),
        columns={
            "total_sleep_time_night_min": "total sleep time, min; " + _MINUTE + "; sleep stages in the night window",
            "sleep_efficiency_night_percent": "sleep time / time in bed, %; " + _MINUTE,
            "waso_night_min": "wake after sleep onset, min; " + _MINUTE,
            "sleep_onset_latency_night_min": "time from the night window's start of rest to sleep, min; " + _MINUTE,
        },
        ttl_days=2,
        description="Nightly sleep from minute-level sleep stages.",
    ),
    *(
        FeatureTable(
            name=name,
            inputs=(source,),
            columns=_circadian_columns(names, unit, what),
            ttl_days=3,
            description="Circadian rest-activity rhythm (IS, IV, RA, L5, M10) over the week to each day, "
            f"from {signal}.",
        )
        for name, source, names, unit, what, signal in (
            ("circadian", "minute_wearable", circadian.STEPS_COLUMNS, "steps/min", _CIRCADIAN, "minute steps"),
            ("circadian_counts", "activity_counts", circadian.COUNTS_COLUMNS, "counts/min", _CIRCADIAN_COUNTS,
             "activity counts"),
            ("circadian_accel", "accelerometry:wrist", circadian.ENMO_COLUMNS, "mg", _CIRCADIAN_ENMO,
             "raw wrist accelerometry (per-minute ENMO)"),
        )
    ),
    FeatureTable(
        name="accel_sleep",
        inputs=("accelerometry:wrist",),
        columns={
            "total_sleep_time_accel_night_min": "total sleep time, min; " + _WRIST + "; SKDH Sleep",
            "sleep_efficiency_accel_night_percent": "sleep time / time in bed, %; " + _WRIST + "; SKDH Sleep",
            "waso_accel_night_min": "wake after sleep onset, min; " + _WRIST + "; SKDH Sleep",
            "sleep_onset_latency_accel_night_min": "sleep onset latency, min; " + _WRIST + "; SKDH Sleep",
        },
        ttl_days=2,
        description="Nightly sleep from raw wrist accelerometry through SKDH.",
    ),
    FeatureTable(
        name="cardiac",
        inputs=("rr_intervals",),
        columns={**HRV_COLUMNS, **HRV_NIGHT_COLUMNS},
        ttl_days=3,
        description="Daily heart-rate variability from the morning recording and the night before (RR intervals, "
        "ECG or PPG).",
    ),
    FeatureTable(
        name="hourly_vitals",
        inputs=("vitals",),
        columns={name: _describe_vital(name) for name in vitals.VITALS_HOURLY_FEATURE_COLUMNS},
        ttl_days=0.25,
        description="Hourly vital-sign windows, NEWS2 (RCP 2017) and SpO2 desaturation events.",
    ),
    FeatureTable(
        name="labs",
        inputs=("labs", "subjects"),
        columns={name: _describe_lab(name) for name in labs.labs_feature_columns()},
        ttl_days=30,
        description="Laboratory trajectories per subject and eGFR (CKD-EPI 2021), canonical units.",
    ),
)

TABLES_BY_NAME: dict[str, FeatureTable] = {table.name: table for table in TABLES}


LIVE_VITALS = FeatureTable(
    name="vital_signs_live",
    inputs=("vital_sign_events",),
    columns={
        "heart_rate_last_bpm": "pulse of the latest observation, bpm; " + _EVENTS,
        "respiratory_rate_last_per_min": "respiration rate of the latest observation, /min; " + _EVENTS,
        "spo2_last_percent": "SpO2 of the latest observation, %; " + _EVENTS,
        "temperature_last_deg_c": "temperature of the latest observation, degC; " + _EVENTS,
        "systolic_bp_last_mmhg": "systolic blood pressure of the latest observation, mmHg; " + _EVENTS,
        "supplemental_oxygen_last_flag": "on supplemental oxygen at the latest observation (1) or not (0); " + _EVENTS,
        "news2_score_last": "NEWS2 total of the latest observation, points (null unless all seven parameters were "
        "observed); " + _EVENTS + "; Royal College of Physicians NEWS2 (2017) chart",
    },
    text_columns={
        "consciousness_last_avpu": "ACVPU level of the latest observation (A, C, V, P or U); " + _EVENTS,
        "news2_risk_band_last": "NEWS2 clinical risk of the latest observation (low, low_medium, medium, high); "
        + _EVENTS + "; RCP 2017 Chart 2",
    },
    ttl_days=1,
    description="The latest bedside observation of each subject, pushed as it arrives (HTTP API or Kafka stream), "
    "with its NEWS2; a measurement absent from that observation is null. Not built from files: the offline table "
    "is the log of pushed observations, one row per subject and observation time.",
)
"""Live vital signs: not in ``TABLES`` (the feature build does not compute it); written by pushes."""
