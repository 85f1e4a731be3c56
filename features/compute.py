"""Compute every feature table of one subject from its curated frames (pure: no I/O).

The same code runs in the local process pool and, later, inside Spark tasks: the caller reads
a subject's curated data, this module turns it into feature rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.biomarkers import activity, cardiac, circadian, gait, labs, sleep, vitals
from features.settings import BiomarkerSettings
from features.tables import TABLES_BY_NAME


@dataclass(frozen=True)
class Recording:
    """A curated frame of one source for one subject, with the source's sampling rate (high-rate
    only), for RR intervals whether they are already edited NN intervals, the time zone of the
    device's clock (where the wearer's day starts), for accelerometry its full-scale range and,
    for heartbeats, whether they are morning or overnight recordings (``hrv_recording``)."""

    frame: pd.DataFrame
    sampling_rate_hz: float | None = None
    intervals_edited: bool = False
    timezone: str = "UTC"
    device_range_g: float = 8.0
    hrv_recording: str = "morning"


@dataclass(frozen=True)
class SubjectInputs:
    """Everything curated about one subject.

    Attributes
    ----------
    subject_id : the study subject code.
    recordings : input key (``minute_wearable``, ``accelerometry:wrist``, ``labs`` ...) -> the
        recordings of that key, one per curated source.
    subject : the subject's row of the enrollment table (one-row frame).
    settings : the study's biomarker algorithms and parameters.
    """

    subject_id: str
    recordings: dict[str, list[Recording]] = field(default_factory=dict)
    subject: pd.DataFrame | None = None
    settings: BiomarkerSettings = field(default_factory=BiomarkerSettings)


def _daily_activity(inputs: SubjectInputs) -> list[pd.DataFrame]:
    results = []
    for recording in inputs.recordings.get("minute_wearable", []):
        steps = activity.minute_activity_daily_features(recording.frame,
                                                        min_wear_min=inputs.settings.activity.min_wear_min)
        results.append(_joined(steps, cardiac.heart_rate_daily_features(recording.frame)))
    return results


def _per_recording(key: str, function: Callable[..., pd.DataFrame], high_rate: bool = False,
                   options: Callable[[BiomarkerSettings, Recording], dict] = lambda settings, recording: {}):
    """The table's frames from each recording of ``key``: ``function(frame, **options(settings, recording))``,
    for high-rate recordings ``function(frame, rate, subject_id, **options(settings, recording))``."""
    def compute(inputs: SubjectInputs) -> list[pd.DataFrame]:
        results = []
        for recording in inputs.recordings.get(key, []):
            chosen = options(inputs.settings, recording)
            if not high_rate:
                results.append(function(recording.frame, **chosen))
                continue
            rate = measured_rate_hz(recording.frame["timestamp"], recording.sampling_rate_hz)
            try:
                results.append(function(recording.frame, rate, inputs.subject_id, **chosen))
            except ValueError as error:  # a recording SKDH cannot use: its days get NaN and the reason
                results.append(_unusable_recording(recording.frame, inputs.subject_id, str(error)))
        return results
    return compute


def measured_rate_hz(timestamp: pd.Series, nominal_hz: float | None) -> float | None:
    """The rate the device really sampled at (clocks drift: an AX6 set to 100 Hz records ~98.4 Hz).

    Taken from the median sample interval, and used only when within 5 % of the nominal rate;
    anything further off is not the same set-up, and the nominal rate is kept.
    """
    if nominal_hz is None or len(timestamp) < 3:
        return nominal_hz
    step_s = float(pd.Series(timestamp.array.asi8).diff().median()) / 1e9
    if step_s <= 0:
        return nominal_hz
    measured = 1.0 / step_s
    return measured if abs(measured - nominal_hz) <= 0.05 * nominal_hz else nominal_hz


def _unusable_recording(frame: pd.DataFrame, subject_id: str, reason: str) -> pd.DataFrame:
    """One row per UTC day the recording touches, every biomarker missing, with the reason."""
    days = frame["timestamp"].dt.floor("D").drop_duplicates() + pd.Timedelta(days=1)
    return pd.DataFrame({"subject_id": subject_id, "event_timestamp": days.to_numpy(),
                         "missing_reason": f"recording not usable: {reason}"})


def _cardiac(inputs: SubjectInputs) -> list[pd.DataFrame]:
    """HRV of the morning recordings (RR intervals first; a day without them takes its ECG's or
    PPG's) and of the overnight ones, joined by day: a day's row holds both windows."""
    hrv = inputs.settings.hrv
    morning: list[pd.DataFrame] = []
    night: list[pd.DataFrame] = []
    for key in ("rr_intervals", "ecg", "ppg"):
        for recording in inputs.recordings.get(key, []):
            artefacts = hrv.artefact_options(recording.intervals_edited)
            if recording.hrv_recording == "night":
                rr = _heartbeats(key, recording, inputs.subject_id)
                night.append(cardiac.hrv_night_features(rr, timezone=recording.timezone, artefacts=artefacts,
                                                        **hrv.night_options()))
            elif key == "rr_intervals":
                morning.append(cardiac.hrv_daily_features(recording.frame, artefacts=artefacts, **hrv.window_options()))
            else:
                function = cardiac.ecg_hrv_features if key == "ecg" else cardiac.ppg_hrv_features
                morning.append(function(recording.frame, recording.sampling_rate_hz, inputs.subject_id,
                                        artefacts=artefacts, **hrv.window_options()))
    nights = [frame for frame in night if not frame.empty]
    best_night = _best_rows(pd.concat(nights, ignore_index=True)) if nights else None
    joined = [_joined(frame, best_night) if best_night is not None else frame.copy()
              for frame in morning if not frame.empty] or ([best_night] if best_night is not None else [])
    nights_ended = best_night["event_timestamp"] if best_night is not None else pd.Series(dtype="datetime64[ns, UTC]")
    for frame in joined:  # a day without a night: its night columns are missing, and the row says why
        without = ~frame["event_timestamp"].isin(nights_ended)
        frame["missing_reason"] = _join_reasons(frame["missing_reason"], pd.Series(
            np.where(without, "no overnight heartbeat recording (hrv_recording: night) ends this day", None),
            index=frame.index, dtype=object))
    return joined


def _heartbeats(key: str, recording: Recording, subject_id: str) -> pd.DataFrame:
    """A recording's RR intervals: as they are, or from the ECG's or PPG's beats."""
    if key == "rr_intervals":
        return recording.frame
    return cardiac.waveform_rr_intervals(recording.frame, "ecg_mv" if key == "ecg" else "ppg_au",
                                         recording.sampling_rate_hz, subject_id)


def _best_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per subject and window: the one with the fewest missing values."""
    return (rows.assign(_missing=rows.isna().sum(axis=1)).sort_values(["event_timestamp", "_missing"], kind="stable")
            .drop_duplicates(["subject_id", "event_timestamp"], keep="first").drop(columns="_missing")
            .reset_index(drop=True))


def _joined(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Two tables' rows of the same windows side by side (outer join), their reasons joined."""
    merged = first.merge(second, on=["subject_id", "event_timestamp"], how="outer", suffixes=("", "_other"))
    merged["missing_reason"] = _join_reasons(merged["missing_reason"], merged.pop("missing_reason_other"))
    return merged


def _circadian_options(settings: BiomarkerSettings, recording: Recording) -> dict:
    """The rest-activity rhythm's settings, in the wearer's time zone (the recording's)."""
    return {"timezone": recording.timezone, "definition": settings.circadian.definition,
            "bin_minutes": settings.circadian.bin_minutes, "activity_threshold": settings.circadian.activity_threshold,
            "min_valid_days": settings.circadian.min_valid_days, "min_wear_min": settings.activity.min_wear_min}


def _gait(inputs: SubjectInputs) -> list[pd.DataFrame]:
    """Gait of each lower-back recording, with the subject's height as the study's settings say."""
    settings = inputs.settings.gait
    if not settings.enabled:
        return []
    height = settings.height_of(inputs.subject)
    compute = _per_recording("accelerometry:lower_back", gait.gait_daily_features, high_rate=True,
                             options=lambda _settings, _recording: {"height_m": height})
    return compute(inputs)


def _labs(inputs: SubjectInputs) -> list[pd.DataFrame]:
    if inputs.subject is None or inputs.subject.empty:
        return []
    return [labs.labs_features(r.frame, inputs.subject) for r in inputs.recordings.get("labs", [])]


# table name -> how to compute its frames for one subject (several when a subject has several
# recordings of an input; duplicates of one window are resolved by ``compute_subject_tables``).
COMPUTATIONS: dict[str, Callable[[SubjectInputs], list[pd.DataFrame]]] = {
    "daily_activity": _daily_activity,
    "accel_activity": _per_recording("accelerometry:wrist", activity.accel_activity_daily_features, high_rate=True,
                                     options=lambda settings, recording: {
                                         "cutpoints": settings.activity.skdh_cutpoints(),
                                         "min_wear_min": settings.activity.min_wear_min,
                                         "device_range_g": recording.device_range_g, **settings.qc.options()}),
    "gait": _gait,
    "sleep": _per_recording("minute_wearable", sleep.minute_sleep_nightly_features,
                            options=lambda settings, recording: {
                                "timezone": recording.timezone,
                                "night_start_hour": settings.sleep.minute_window_start_hour,
                                "night_hours": settings.sleep.minute_window_hours}),
    "circadian": _per_recording("minute_wearable", circadian.circadian_daily_features, options=_circadian_options),
    "circadian_counts": _per_recording("activity_counts", circadian.circadian_counts_daily_features,
                                       options=_circadian_options),
    "circadian_accel": _per_recording("accelerometry:wrist", circadian.circadian_accel_daily_features, high_rate=True,
                                      options=lambda settings, recording: {
                                          **_circadian_options(settings, recording),
                                          "autocalibrate": settings.qc.autocalibrate}),
    "accel_sleep": _per_recording("accelerometry:wrist", sleep.accel_sleep_nightly_features, high_rate=True,
                                  options=lambda settings, recording: {
                                      "timezone": recording.timezone,
                                      "window_start_hour": settings.sleep.accel_window_start_hour}),
    "cardiac": _cardiac,
    "hourly_vitals": _per_recording("vitals", vitals.vitals_hourly_features),
    "labs": _labs,
}


# Tables from continuous monitoring, whose last window is usually still open when the data is
# pulled: a window ending after the subject's last minute is not reported until it has closed
# (its NaN row would otherwise become the subject's latest value, online and in training sets).
CONTINUOUS_INPUT = {"daily_activity": "minute_wearable", "sleep": "minute_wearable", "circadian": "minute_wearable",
                    "circadian_counts": "activity_counts"}
_CLOSING_MARGIN = pd.Timedelta(minutes=1)  # the last minute's row starts one minute before the window ends


def _closed_windows(name: str, rows: pd.DataFrame, inputs: SubjectInputs) -> pd.DataFrame:
    key = CONTINUOUS_INPUT.get(name)
    recordings = inputs.recordings.get(key, []) if key else []
    if not recordings:
        return rows
    last = max(recording.frame["timestamp"].max() for recording in recordings)
    return rows[rows["event_timestamp"] <= last + _CLOSING_MARGIN]


def compute_subject_tables(inputs: SubjectInputs, only: Collection[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every feature table's rows for one subject (the tables named in ``only``, when given):
    table name -> frame (tables without rows left out).

    When two recordings give a row for the same window (two devices worn the same day), the
    row with the fewest missing values is kept. Windows of continuous monitoring that are still
    open at the end of the data are left out (see ``CONTINUOUS_INPUT``). ``missing_reason`` becomes
    ``<table>_missing_reason`` so that, like every feature name, it is unique across tables.
    """
    tables = {}
    for name, compute in COMPUTATIONS.items():
        if only is not None and name not in only:
            continue
        frames = [frame for frame in compute(inputs) if not frame.empty]
        if not frames:
            continue
        rows = _closed_windows(name, pd.concat(frames, ignore_index=True), inputs)
        declared = ["subject_id", "event_timestamp", *TABLES_BY_NAME[name].columns, "missing_reason"]
        rows = rows.reindex(columns=declared)  # every declared column, NaN where a recording gave none
        tables[name] = _best_rows(rows).rename(columns={"missing_reason": f"{name}_missing_reason"})
    return tables


def _join_reasons(first: pd.Series, second: pd.Series) -> pd.Series:
    """Two reason columns into one; ``None`` where both are ``None``."""
    joined = [
        "; ".join(str(r) for r in (a, b) if isinstance(r, str) and r) or None
        for a, b in zip(first, second, strict=True)
    ]
    return pd.Series(joined, index=first.index, dtype=object)
