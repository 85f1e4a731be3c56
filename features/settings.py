"""The biomarker algorithms a study chooses, and their parameters: the ``biomarkers:`` section of study.yaml.

Each family of biomarkers (activity, HRV, ...) has one settings model here, with the published
default of every parameter and the paper behind it. A study sets only what it changes; an unknown
key or an out-of-range value is refused when the study is loaded, naming the key. The resolved
settings (defaults filled in) are data: the feature build records them, with the versions of
the packages that compute them, in its manifest and the training runs' lineage
(:func:`resolved_pipeline`), and a change to one family's settings rebuilds only the tables that
family feeds (:data:`TABLES_BY_FAMILY`).

Pure: no I/O; the feature functions take these settings as keyword arguments.
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

_Strict = ConfigDict(extra="forbid", frozen=True)

ENMO_CUTPOINTS = (
    "migueles_wrist_adult",
    "hildebrand_wrist_adult_geneactiv",
    "hildebrand_wrist_adult_actigraph",
    "hildebrand_hip_adult_geneactv",
    "hildebrand_hip_adult_actigraph",
    "hildebrand_wrist_child7-11_geneactiv",
    "hildebrand_wrist_child7-11_actigraph",
    "hildebrand_hip_child7-11_geneactiv",
    "hildebrand_hip_child7-11_actigraph",
    "esliger_lwrist_adult",
    "esliger_rwirst_adult",
    "esliger_lumbar_adult",
    "phillips_lwrist_child8-14",
    "phillips_rwrist_child8-14",
    "phillips_hip_child8-14",
)
"""The ENMO cut-points SKDH ships, by its names (spelling included): the activity-level table
classifies ENMO epochs, so cut-points of other metrics do not apply."""


class CustomCutpoints(BaseModel):
    """User-defined ENMO cut-points (mg): sedentary below ``light_mg``, light up to ``moderate_mg``,
    moderate-to-vigorous from ``moderate_mg``; ``vigorous_mg`` splits moderate from vigorous."""

    model_config = _Strict

    light_mg: float = Field(gt=0, le=2000)
    moderate_mg: float = Field(gt=0, le=4000)
    vigorous_mg: float = Field(gt=0, le=8000)

    @model_validator(mode="after")
    def _increasing(self) -> CustomCutpoints:
        if not self.light_mg < self.moderate_mg < self.vigorous_mg:
            raise ValueError("cut-points must increase: light_mg < moderate_mg < vigorous_mg")
        return self

    def as_skdh(self) -> dict:
        """SKDH's cut-point dictionary (thresholds in g), ENMO with negative values set to zero."""
        return {"metric": "metric_enmo", "kwargs": {"take_abs": False, "trim_zero": True},
                "sedentary": self.light_mg / 1000.0, "light": self.moderate_mg / 1000.0,
                "moderate": self.vigorous_mg / 1000.0}


# A name, or thresholds of one's own: each error then names what went wrong with the form given.
Cutpoints = Annotated[
    Annotated[Literal[ENMO_CUTPOINTS], Tag("name")] | Annotated[CustomCutpoints, Tag("thresholds")],  # type: ignore[valid-type]
    Discriminator(lambda value: "name" if isinstance(value, str) else "thresholds"),
]


class ActivitySettings(BaseModel):
    """Physical activity: levels from raw wrist accelerometry and steps from minute exports.

    ``cutpoints``: ENMO cut-points, a name SKDH knows (:data:`ENMO_CUTPOINTS`; default
    ``migueles_wrist_adult``, Migueles et al. 2019: light from 50 mg, MVPA from 110 mg, for the
    dominant wrist of adults; ``hildebrand_wrist_adult_geneactiv``, Hildebrand et al. 2014, for
    the non-dominant wrist) or user-defined thresholds (:class:`CustomCutpoints`).
    ``min_wear_hours``: least worn hours of a valid day (10, Troiano et al. 2008; whole hours, as
    SKDH counts them).
    """

    model_config = _Strict

    cutpoints: Cutpoints = "migueles_wrist_adult"
    min_wear_hours: int = Field(10, ge=1, le=24)

    @property
    def min_wear_min(self) -> int:
        return 60 * self.min_wear_hours

    def skdh_cutpoints(self) -> str | dict:
        return self.cutpoints if isinstance(self.cutpoints, str) else self.cutpoints.as_skdh()


class HrvSettings(BaseModel):
    """Heart-rate variability from RR intervals, ECG or PPG.

    ``artefact_method``: how RR intervals that are not normal-to-normal are found (and left out):
      ``lipponen_tarvainen_2019`` (default): the adaptive beat classification of Lipponen and
      Tarvainen (2019), thresholds from the local spread of the series (``alpha`` times the
      quartile deviation over 91 beats); ``local_median``: more than
      ``local_median_max_deviation`` (20 %) from the median of the 11 surrounding intervals
      (Malik et al. 1989; the platform's method before); ``none``: only intervals outside the
      physiological range (300-2000 ms) are left out.
      A source whose intervals are already edited NN intervals (``intervals_edited: true`` on an
      ``rr_intervals`` source) gets ``none`` whatever the method: a detector run again on an
      edited series removes genuine beats.
    ``window_s``: the analysed recording of each day: its first ``window_s`` seconds of beats
      (300 s, the Task Force's short-term recording), the ``*_morning_*`` columns.
    ``night_start_hour``, ``night_end_hour``, ``segment_s``, ``min_night_segments``: the night
      window of overnight recordings (sources with ``hrv_recording: night``; 00:00 to 06:00 in
      the wearer's local time), analysed in ``segment_s`` (300 s) segments whose measures are
      averaged, with at least ``min_night_segments`` (6) analysable; the ``*_night_*`` columns.
    ``min_duration_s``, ``max_ectopic_percent``, ``max_spectral_gap_s``: see
      :func:`features.biomarkers.cardiac.hrv_daily_features`.
    """

    model_config = _Strict

    artefact_method: Literal["lipponen_tarvainen_2019", "local_median", "none"] = "lipponen_tarvainen_2019"
    alpha: float = Field(5.2, ge=2.0, le=20.0)
    local_median_max_deviation: float = Field(0.20, gt=0.0, lt=1.0)
    window_s: float = Field(300.0, ge=60.0, le=86_400.0)
    min_duration_s: float = Field(120.0, ge=30.0, le=86_400.0)
    max_ectopic_percent: float = Field(20.0, ge=0.0, le=100.0)
    max_spectral_gap_s: float = Field(5.0, gt=0.0, le=60.0)
    night_start_hour: int = Field(0, ge=0, le=23)
    night_end_hour: int = Field(6, ge=0, le=23)
    segment_s: float = Field(300.0, ge=60.0, le=3600.0)
    min_night_segments: int = Field(6, ge=1, le=288)

    @model_validator(mode="after")
    def _enough_window(self) -> HrvSettings:
        if self.min_duration_s > self.window_s:
            raise ValueError(f"min_duration_s {self.min_duration_s:g} is longer than the analysed window "
                             f"window_s {self.window_s:g}: no day could qualify")
        if self.min_duration_s > self.segment_s:
            raise ValueError(f"min_duration_s {self.min_duration_s:g} is longer than a night segment "
                             f"segment_s {self.segment_s:g}: no segment could qualify")
        night_s = 3600 * ((self.night_end_hour - self.night_start_hour) % 24 or 24)
        if self.min_night_segments * self.segment_s > night_s:
            raise ValueError(f"min_night_segments {self.min_night_segments} of {self.segment_s:g} s do not fit in the "
                             f"night window ({self.night_start_hour:02d}:00 to {self.night_end_hour:02d}:00)")
        return self

    def artefact_options(self, edited: bool = False) -> dict:
        """Keyword arguments of :func:`features.biomarkers.cardiac.nn_intervals_ms`."""
        method = "none" if edited else self.artefact_method
        options: dict = {"method": method}
        if method == "lipponen_tarvainen_2019":
            options["alpha"] = self.alpha
        elif method == "local_median":
            options["max_deviation_fraction"] = self.local_median_max_deviation
        return options

    def window_options(self) -> dict:
        """Keyword arguments of :func:`features.biomarkers.cardiac.hrv_daily_features` for the window."""
        return {"window_s": self.window_s, **self._recording_options()}

    def night_options(self) -> dict:
        """Keyword arguments of :func:`features.biomarkers.cardiac.hrv_night_features` (but the time zone)."""
        return {"night_start_hour": self.night_start_hour, "night_end_hour": self.night_end_hour,
                "segment_s": self.segment_s, "min_segments": self.min_night_segments, **self._recording_options()}

    def _recording_options(self) -> dict:
        return {"min_duration_s": self.min_duration_s, "max_ectopic_percent": self.max_ectopic_percent,
                "max_spectral_gap_s": self.max_spectral_gap_s}


class CircadianSettings(BaseModel):
    """Circadian rest-activity rhythm over the 7 days ending with each day (IS, IV, RA, L5, M10).

    ``definition``: ``van_someren_1999`` (default; the published formulas, clock-hour bins) or
    ``pyactigraphy`` (pyActigraphy's conventions: bins from the first epoch, sample variances),
    see :mod:`features.biomarkers.circadian`. ``bin_minutes``: bins for IS and IV (60).
    ``activity_threshold``: binarize the minutes first, active above it (none: as they are;
    pyActigraphy binarizes activity counts above 4). ``min_valid_days``: least valid days (with
    the activity family's minimum wear) in the window (5).
    """

    model_config = _Strict

    definition: Literal["van_someren_1999", "pyactigraphy"] = "van_someren_1999"
    bin_minutes: Literal[15, 20, 30, 60, 120] = 60
    activity_threshold: float | None = Field(None, ge=0)
    min_valid_days: int = Field(5, ge=2, le=7)


class QualitySettings(BaseModel):
    """Quality control of raw accelerometry, before any activity measure (GGIR's and
    biobankAccelerometerAnalysis's per-file checks; :mod:`features.biomarkers.quality`).

    ``autocalibrate``: fit each recording's offset and scale from its still periods (van Hees et
    al. 2014) and use the calibrated signal (default on; needs 12 h and still periods in enough
    orientations, else the recording is used as it is and says why).
    ``max_calibration_error_mg``: a recording whose calibration error (after autocalibration)
    is above it gets no activity levels (10 mg, GGIR's criterion; none: not checked).
    ``max_clipped_percent``: a day with more of its samples at the device's range gets no
    activity levels (1 %; none: not checked).
    """

    model_config = _Strict

    autocalibrate: bool = True
    max_calibration_error_mg: float | None = Field(10.0, gt=0, le=1000)
    max_clipped_percent: float | None = Field(1.0, ge=0, le=100)

    def options(self) -> dict:
        """Keyword arguments of :func:`features.biomarkers.activity.accel_activity_daily_features`."""
        return {"autocalibrate": self.autocalibrate, "max_calibration_error_mg": self.max_calibration_error_mg,
                "max_clipped_percent": self.max_clipped_percent}


class SleepSettings(BaseModel):
    """Nightly sleep windows, in the wearer's local time (the source's ``timezone``;
    :mod:`features.biomarkers.sleep`).

    ``minute_window_start_hour``, ``minute_window_hours``: the night window of minute sleep
    stages (18:00 for 18 h, to 12:00: evening naps before 18:00 and late risers after noon fall
    outside it); the main sleep period in it is the night's.
    ``accel_window_start_hour``: where the 24-h windows of sleep from raw accelerometry start
    (12: SKDH's and GGIR's noon to noon, van Hees et al. 2018; a night-shift cohort may start
    them at, e.g., 18 so that a daytime sleep is not cut).
    """

    model_config = _Strict

    minute_window_start_hour: int = Field(18, ge=0, le=23)
    minute_window_hours: int = Field(18, ge=6, le=24)
    accel_window_start_hour: int = Field(12, ge=0, le=23)


class GaitSettings(BaseModel):
    """Gait from lower-back accelerometry (SKDH; :mod:`features.biomarkers.gait`).

    ``enabled``: compute the gait table (default on; off: it is published empty, e.g. for a study
    whose lower-back recordings are not walking tests).
    ``height_source``: where gait speed takes each subject's height (its leg length is 0.53 x
    height, Del Din et al. 2016): ``enrollment`` (default; the subjects file's ``height_m``, or
    ``height_cm``; a subject without one gets no gait speed, and says why), ``fixed``
    (``height_m`` for every subject: a cohort of known, similar stature), or ``none`` (no gait speed).
    """

    model_config = _Strict

    enabled: bool = True
    height_source: Literal["enrollment", "fixed", "none"] = "enrollment"
    height_m: float | None = Field(None, ge=0.5, le=2.5)

    @model_validator(mode="after")
    def _height_with_fixed(self) -> GaitSettings:
        if (self.height_source == "fixed") != (self.height_m is not None):
            raise ValueError("height_m is the height of height_source fixed: give both or neither")
        return self

    def height_of(self, subject: pd.DataFrame | None) -> float | None:
        """The height (m) gait speed uses for the subject whose enrollment row is ``subject``."""
        if self.height_source == "fixed":
            return self.height_m
        if self.height_source == "none" or subject is None or "height_m" not in subject or subject.empty:
            return None
        height = pd.to_numeric(subject["height_m"], errors="coerce").iloc[0]
        return float(height) if pd.notna(height) else None


class BiomarkerSettings(BaseModel):
    """The ``biomarkers:`` section of study.yaml: one entry per family, each optional."""

    model_config = _Strict

    activity: ActivitySettings = Field(default_factory=ActivitySettings)
    hrv: HrvSettings = Field(default_factory=HrvSettings)
    circadian: CircadianSettings = Field(default_factory=CircadianSettings)
    qc: QualitySettings = Field(default_factory=QualitySettings)
    gait: GaitSettings = Field(default_factory=GaitSettings)
    sleep: SleepSettings = Field(default_factory=SleepSettings)


TABLES_BY_FAMILY: dict[str, tuple[str, ...]] = {
    "activity": ("daily_activity", "accel_activity", "circadian", "circadian_counts", "circadian_accel"),  # valid day
    "hrv": ("cardiac",),
    "circadian": ("circadian", "circadian_counts", "circadian_accel"),
    "qc": ("accel_activity", "circadian_accel"),
    "gait": ("gait",),
    "sleep": ("sleep", "accel_sleep"),
}
"""The feature tables each family's settings feed: a change to a family rebuilds these only."""

PACKAGES = ("numpy", "pandas", "scipy", "scikit-digital-health")
"""The packages whose code computes the biomarkers, recorded with the settings."""


def family_settings(settings: BiomarkerSettings, table: str) -> dict:
    """The resolved settings of the families that feed ``table``, by family (empty when none does)."""
    return {family: getattr(settings, family).model_dump(mode="json")
            for family, tables in TABLES_BY_FAMILY.items() if table in tables}


def resolved_pipeline(settings: BiomarkerSettings) -> dict:
    """The biomarker pipeline as data: every family's settings, defaults filled in, and the
    versions of the packages that compute them."""
    return {"settings": settings.model_dump(mode="json"),
            "packages": {name: metadata.version(name) for name in PACKAGES}}
