"""The study configuration: one validated ``StudyConfig`` loaded from ``studies/<id>/study.yaml``.

Loaded once at the entry point and passed down; library code reads no environment variables.
Every path in the file is relative to the study's data root and must stay inside it.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.settings import BiomarkerSettings
from pipelines.ingest.units import check_units
from training.acceptance import AcceptanceCriteria
from validation.schemas import SCHEMAS, SourceKind

SUBJECTS_SOURCE = "subjects"
ENDPOINTS_SOURCE = "endpoints"
"""The lake tables of the enrollment and endpoints files: names no source of a study may take."""


class ConfigError(ValueError):
    """The study configuration is invalid; the message names the file and the offending key."""


class Severity(StrEnum):
    REJECT = "reject"
    WARN = "warn"


class CheckName(StrEnum):
    """The checks whose failure a study may set to reject the file or only warn."""

    REQUIRED_COLUMNS = "required_columns"
    COLUMN_TYPES = "column_types"
    TIMESTAMPS_ORDERED = "timestamps_ordered"
    SAMPLING_RATE = "sampling_rate"
    PLAUSIBLE_RANGE = "plausible_range"
    DEVICE_RANGE = "device_range"
    MISSINGNESS = "missingness"
    KNOWN_SUBJECT = "known_subject"
    KNOWN_UNIT = "known_unit"
    NO_DIRECT_IDENTIFIERS = "no_direct_identifiers"
    UNIQUE_KEYS = "unique_keys"
    CORRUPT_BLOCKS = "corrupt_blocks"  # device data blocks that fail their checksum (samples set missing)


DEFAULT_SEVERITY: dict[CheckName, Severity] = {check: Severity.REJECT for check in CheckName}


class FileFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    CWA = "cwa"  # Axivity AX3/AX6 binary, read with skdh.io.ReadCwa
    BIN = "bin"  # GENEActiv binary, read with skdh.io.ReadBin
    LIMS_CSV = "lims_csv"
    HL7V2 = "hl7v2"  # HL7 v2 ORU^R01 messages, one or more per file
    FHIR = "fhir"  # FHIR R4 Bundle of Observation resources, JSON
    GT3X = "gt3x"  # ActiGraph .gt3x: a zip of info.txt and log.bin (or the older activity.bin)
    ACTILIFE_CSV = "actilife_csv"  # ActiLife raw CSV export: a 10-line header block, then X,Y,Z (time optional)
    GENEACTIV_CSV = "geneactiv_csv"  # GENEActiv PC software CSV: key,value header lines, then time,x,y,z,lux,...
    AWD = "awd"  # Actiwatch .AWD (Actiware): a 7-line header, then one activity count per epoch
    AGD = "agd"  # ActiLife .agd: a SQLite database of settings and epoch counts per axis


# Vendor formats that describe their own columns, units and clock: a study names the format only.
SELF_DESCRIBING_FORMATS = frozenset({FileFormat.GT3X, FileFormat.ACTILIFE_CSV, FileFormat.GENEACTIV_CSV,
                                     FileFormat.AWD, FileFormat.AGD})


FORMATS_BY_KIND: dict[SourceKind, set[FileFormat]] = {
    SourceKind.ACCELEROMETRY: {FileFormat.CSV, FileFormat.PARQUET, FileFormat.CWA, FileFormat.BIN, FileFormat.GT3X,
                               FileFormat.ACTILIFE_CSV, FileFormat.GENEACTIV_CSV},
    SourceKind.MINUTE_WEARABLE: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.ACTIVITY_COUNTS: {FileFormat.CSV, FileFormat.PARQUET, FileFormat.AWD, FileFormat.AGD},
    SourceKind.RR_INTERVALS: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.ECG: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.PPG: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.VITALS: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.LABS: {FileFormat.LIMS_CSV, FileFormat.HL7V2, FileFormat.FHIR},
    SourceKind.SUBJECTS: {FileFormat.CSV, FileFormat.PARQUET},
    SourceKind.ENDPOINTS: {FileFormat.CSV, FileFormat.PARQUET},
}

Placement = Literal["wrist", "lower_back", "chest", "thigh", "ankle", "finger", "none"]
TimestampEncoding = Literal["iso8601", "unix_s", "unix_ms", "text"]

_Strict = ConfigDict(extra="forbid", frozen=True)


class TableSpec(BaseModel):
    """How to read a tabular file: the column mapping and the timestamp encoding."""

    model_config = _Strict

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical column name -> column name in the file; unmapped names are taken as is",
    )
    header: bool = Field(True, description="False for a CSV without a header row; its columns are then f0, f1, ...")
    timestamp_encoding: TimestampEncoding = "iso8601"
    timezone: str = Field(
        "UTC",
        description="IANA zone of naive timestamps in the file (device clocks often keep local time)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


class SourceConfig(TableSpec):
    """One source of raw files: what they hold, where they are and how to read and check them."""

    kind: SourceKind
    pattern: str = Field(description="glob relative to the data root, e.g. raw/minute/*.csv")
    format: FileFormat
    sampling_rate_hz: float | None = Field(None, gt=0, description="expected sampling rate of a high-rate signal")
    sampling_rate_tolerance: float = Field(0.05, gt=0, lt=1, description="allowed relative deviation per second")
    units: dict[str, str] = Field(
        default_factory=dict, description="quantity -> unit in the file, e.g. acceleration: m/s^2"
    )
    placement: Placement = "none"
    device_range_g: float = Field(8.0, gt=0, description="full-scale range of the accelerometer, in g")
    subject_pattern: str = Field(
        r"^(?P<subject_id>[A-Za-z0-9-]+)",
        description="regex with a subject_id group, matched against the file name when rows carry no subject",
    )
    max_missing_fraction: float = Field(0.2, ge=0, le=1, description="missingness limit per measured column")
    intervals_edited: bool = Field(
        False, description="rr_intervals only: the files hold NN intervals already edited by the device's or an "
                           "analyst's software; HRV then looks for no artefacts beyond the physiological range")
    hrv_recording: Literal["morning", "night"] = Field(
        "morning", description="rr_intervals, ecg or ppg: what the recordings are, for HRV: short morning recordings "
                               "(each day's first biomarkers.hrv.window_s) or overnight ones (biomarkers.hrv night "
                               "window, in 5-min segments)")
    epoch_s: float | None = Field(
        None, gt=0, le=3600, description="activity_counts in CSV or Parquet without an epoch column: the epoch "
                                         "length in seconds (vendor formats such as awd and agd state their own)")
    timestamp_format: str | None = Field(
        None,
        description="with timestamp_encoding text: the strptime format of vendor text timestamps, e.g. "
                    "'%d.%m.%Y %H:%M:%S.%f' (a trailing %f after '.', ',' or ':' takes 1-9 fraction digits)",
    )

    @field_validator("pattern")
    @classmethod
    def _relative_pattern(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError(f"pattern {value!r} must be relative to the data root and must not contain '..'")
        return value

    @field_validator("units")
    @classmethod
    def _known_units(cls, value: dict[str, str]) -> dict[str, str]:
        check_units(value)  # a misspelt quantity would otherwise leave the data unconverted, silently
        return value

    @field_validator("subject_pattern")
    @classmethod
    def _subject_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as error:
            raise ValueError(f"subject_pattern is not a regular expression: {error}") from error
        if "subject_id" not in compiled.groupindex:
            raise ValueError("subject_pattern needs a named group (?P<subject_id>...)")
        return value

    @model_validator(mode="after")
    def _format_fits_kind(self) -> SourceConfig:
        if self.format not in FORMATS_BY_KIND[self.kind]:
            allowed = ", ".join(sorted(FORMATS_BY_KIND[self.kind]))
            raise ValueError(f"format {self.format.value!r} cannot hold {self.kind.value} data (use one of: {allowed})")
        if SCHEMAS[self.kind].high_rate and self.sampling_rate_hz is None:
            raise ValueError(f"a {self.kind.value} source needs sampling_rate_hz")
        if self.intervals_edited and self.kind != SourceKind.RR_INTERVALS:
            raise ValueError(f"intervals_edited is for rr_intervals sources, not {self.kind.value}")
        if (self.timestamp_encoding == "text") != (self.timestamp_format is not None):
            raise ValueError("timestamp_encoding text and timestamp_format go together: text timestamps need their "
                             "strptime format, e.g. timestamp_format: '%m/%d/%Y %H:%M:%S.%f'")
        if self.hrv_recording != "morning" and self.kind not in (SourceKind.RR_INTERVALS, SourceKind.ECG,
                                                                   SourceKind.PPG):
            raise ValueError(f"hrv_recording is for rr_intervals, ecg and ppg sources, not {self.kind.value}")
        if self.epoch_s is not None and (self.kind != SourceKind.ACTIVITY_COUNTS
                                         or self.format in SELF_DESCRIBING_FORMATS):
            raise ValueError(f"epoch_s is for activity_counts sources in csv or parquet, not {self.kind.value} in "
                             f"{self.format.value}")
        if self.timestamp_encoding == "text" and not SCHEMAS[self.kind].high_rate:
            raise ValueError(f"timestamp_encoding text is for high-rate signals; a {self.kind.value} file takes "
                             "iso8601, unix_s or unix_ms")
        if self.format in SELF_DESCRIBING_FORMATS:
            # The vendor layout fixes columns, units and clock; an override would silently misread the file.
            overridden = sorted(self.model_fields_set & {"columns", "header", "timestamp_encoding", "timestamp_format",
                                                         "units"})
            if overridden:
                raise ValueError(f"format {self.format.value!r} reads its own columns, units and timestamps; remove "
                                 f"{', '.join(overridden)}")
        return self


class TableFile(TableSpec):
    """The enrollment or endpoints file."""

    path: str
    format: Literal[FileFormat.CSV, FileFormat.PARQUET] = FileFormat.CSV


SourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ModelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class SplitConfig(BaseModel):
    """How a training set is split: by subject (no subject on both sides), or a whole site held out."""

    model_config = _Strict

    test_size: float = Field(0.3, gt=0, lt=1, description="share of subjects in the test set")
    holdout_site: str | None = Field(None, description="test on this site's subjects only, train on the others")


class ThresholdConfig(BaseModel):
    """How an anomaly model's alarm threshold is chosen (``training.metrics.choose_threshold``)."""

    model_config = _Strict

    method: Literal["quantile", "max_f1"] = "quantile"
    quantile: float = Field(0.98, gt=0, lt=1, description="for method quantile: share of training scores below")


class ApiKeyConfig(BaseModel):
    """A client of the online API: its name, the SHA-256 of its key (never the key) and its studies."""

    model_config = _Strict

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="`biomarkers api-key NAME` prints a key and this")
    studies: list[str] = Field(min_length=1)


class ApiKeysFile(BaseModel):
    """The keys ``biomarkers api-key --register`` added: ``<platform>/api_keys.yaml`` (hashes only)."""

    model_config = _Strict

    api_keys: list[ApiKeyConfig] = Field(default_factory=list)


class ServingConfig(BaseModel):
    """The online API (`biomarkers serve`)."""

    model_config = _Strict

    models: dict[str, str] = Field(default_factory=dict, description="served name -> NAME@ALIAS or NAME/VERSION; "
                                                                     "default: every model of the study @champion")
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    max_body_bytes: int = Field(64 * 1024, gt=0)
    reload_seconds: float = Field(30.0, ge=0, description="how often to check whether an alias moved; 0: never")
    request_threads: int = Field(1, ge=1, description="requests the API works on at once (scoring is CPU-bound "
                                                      "Python: threads contend for the GIL; scale with processes)")
    alerts_url: str | None = Field(None, description="SQLAlchemy URL of the alerts table; default SQLite under "
                                                     "the platform folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    events_anomaly_model: str | None = Field(None, description="the study's vital-sign anomaly model (a name under "
                                                               "models:) that scores each subject's current hour "
                                                               "when events arrive")
    max_event_clock_skew_seconds: float = Field(300.0, ge=0, description="how far ahead of the server's clock a "
                                                                          "live event may be dated (seconds); later "
                                                                          "ones are refused (HTTP 422, dead letter)")
    online_store_timeout_s: float = Field(0.5, gt=0, le=30, description="connect and read timeout of each online "
                                                                      "store call on the request path (seconds, no "
                                                                      "retries): a store that is down gets a 503 fast")


class SparkConfig(BaseModel):
    """The Spark engine (``biomarkers build-features --engine spark``): where its session runs and how.

    Nothing needs configuring to run on this machine: the defaults start Spark in local mode with
    two cores. On a cluster, ``master`` names it and ``conf`` carries its resources, e.g.
    ``spark.executor.instances: 8``, ``spark.executor.memory: 8g``.
    """

    model_config = _Strict

    master: str = Field("local[2]", description="master URL: local[N] (N cores of this machine), spark://HOST:7077, "
                                                "yarn, k8s://https://HOST:PORT")
    app_name: str = Field("biomarkers", min_length=1, description="the application name the Spark UI shows")
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="more Spark settings, e.g. spark.driver.memory: 4g; they override the "
                                          "engine's defaults (session time zone UTC, no console progress bar)")

    @field_validator("conf")
    @classmethod
    def _spark_keys(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        # Spark ignores an unknown key silently, so a key without the prefix is certainly a mistake.
        wrong = sorted(key for key in value if not key.startswith("spark."))
        if wrong:
            raise ValueError(f"Spark settings start with 'spark.' (e.g. spark.driver.memory): {', '.join(wrong)}")
        return value


class ModelConfig(BaseModel):
    """One model of the study: its task, features, estimator, split, evaluation and promotion gate."""

    model_config = _Strict

    task: str = Field(description="a task of training.tasks.TASKS: endpoint (clinical endpoint prediction) or "
                                   "anomaly (anomaly detection)")
    feature_service: str = Field(description="the Feast feature service that builds the training set")
    estimator: str = Field(description="training.models: logistic_regression, hist_gradient_boosting, torch_mlp, "
                                       "isolation_forest, torch_autoencoder")
    params: dict[str, Any] = Field(default_factory=dict, description="estimator hyper-parameters")
    seed: int = 0
    endpoint: str | None = Field(None, description="endpoint task: the endpoint name in the endpoints file")
    split: SplitConfig = Field(default_factory=SplitConfig)
    bootstrap_samples: int = Field(1000, ge=100, description="bootstrap replicates of the confidence intervals")
    subgroups: list[str] = Field(default_factory=lambda: ["site", "sex", "age_band"])
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    labels: str | None = Field(None, description="anomaly task: labelled episodes (CSV, relative to the data root) "
                                                "to evaluate against; never used for training")
    entity_table: str = Field("daily_activity", description="anomaly task: the feature table whose rows (subject, "
                                                            "window end) are scored, e.g. hourly_vitals")
    window_hours: float = Field(24.0, gt=0, description="anomaly task: the window each row summarizes, hours; "
                                                        "a row is anomalous when an episode overlaps it")
    acceptance: AcceptanceCriteria = Field(default_factory=AcceptanceCriteria,
                                           description="what `biomarkers promote` requires before moving champion")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from training.tasks import task_named  # imports scikit-learn: not at import, so `--help` answers at once

        return task_named(value).name

    @model_validator(mode="after")
    def _estimator_fits_task(self) -> ModelConfig:
        from training.tasks import task_named

        known = task_named(self.task).estimators
        if self.estimator not in known:
            raise ValueError(f"estimator {self.estimator!r} is not one of task {self.task} (use one of: "
                             f"{', '.join(sorted(known))})")
        return self


class StudyConfig(BaseModel):
    """A study: its data root, sources, enrollment and endpoint files and check severities."""

    model_config = _Strict

    study_id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    data_root: Path = Field(description="absolute, or relative to the directory holding study.yaml")
    subjects: TableFile
    endpoints: TableFile
    sources: dict[SourceName, SourceConfig]
    checks: dict[CheckName, Severity] = Field(default_factory=dict, description="severity per check; default reject")
    catalog_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under the platform folder")
    models: dict[ModelName, ModelConfig] = Field(default_factory=dict, description="models trained on this study")
    serving: ServingConfig = Field(default_factory=ServingConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    biomarkers: BiomarkerSettings = Field(default_factory=BiomarkerSettings,
                                          description="the biomarker algorithms and their parameters, per family")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking server or store; default SQLite under the platform folder")
    platform_dir: str = Field(".platform", description="catalog, curated lake, quarantine, reports, Data Docs")

    @field_validator("sources")
    @classmethod
    def _reserved_names(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        reserved = {SUBJECTS_SOURCE, ENDPOINTS_SOURCE} & set(value)
        if reserved:
            raise ValueError(f"source names {sorted(reserved)} are reserved for the enrollment and endpoint files")
        return value

    def severity(self, check: CheckName) -> Severity:
        return self.checks.get(check, DEFAULT_SEVERITY[check])

    def resolve(self, relative: str | Path) -> Path:
        """Resolve a path from the configuration under the data root, refusing any escape."""
        return confine(self.data_root, relative)

    @property
    def platform_root(self) -> Path:
        """The platform folder; ``ConfigError`` if it, or a folder on the way to it, is a symbolic link."""
        return no_symlink(self.data_root, self.platform_dir)

    @property
    def lake_root(self) -> Path:
        return self._platform_folder("curated")

    @property
    def quarantine_root(self) -> Path:
        return self._platform_folder("quarantine")

    @property
    def reports_root(self) -> Path:
        return self._platform_folder("reports")

    @property
    def feature_tables_root(self) -> Path:
        """The study's feature tables and their build manifest."""
        return self._platform_folder("feature_tables")

    @property
    def feast_repo_root(self) -> Path:
        """The study's Feast repo folder: its feature_store.yaml, definitions entry point, and with
        the embedded defaults its registry and online store."""
        return self._platform_folder("feast")

    def feast_repo(self, template: Path | None = None) -> Path:
        """The study's Feast repo folder, written or refreshed (``adapters.feast_repo.write_study_repo``):
        its infrastructure from ``template`` when given, else as it was, else the embedded defaults."""
        from adapters.feast_repo import write_study_repo

        return write_study_repo(self.feast_repo_root, self.study_id, self.feature_tables_root, template)

    def _platform_folder(self, name: str) -> Path:
        # Checked on every use, not only at load: a link made after the load must not redirect
        # the writes of a long-running process (watch, serve) outside the data root either.
        return no_symlink(self.data_root, Path(self.platform_dir) / name)

    def check_platform_folders(self) -> None:
        """Refuse a platform folder, or any folder directly inside it, that is a symbolic link.

        Everything the platform writes (the curated lake, quarantine, reports, the catalog,
        MLflow and Feast stores) lives there; a link would send those writes wherever it points.
        """
        root = self.platform_root
        if root.is_dir():
            for entry in sorted(root.iterdir()):
                if entry.is_symlink():
                    raise ConfigError(f"platform folder {entry} is a symbolic link (to {os.readlink(entry)}); the "
                                      "platform writes only into real folders under the data root: replace the "
                                      "link with a folder")

    @property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.platform_root / 'catalog.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.platform_root / 'mlflow.db'}"

    @property
    def artifacts_root(self) -> Path:
        """Where runs store their artifacts with the default (SQLite) tracking store."""
        return self.platform_root / "mlartifacts"


def no_symlink(root: Path, relative: str | Path) -> Path:
    """``root / relative`` confined to ``root`` (see ``confine``), refusing a symbolic link on the way.

    ``confine`` allows a link that stays inside the data root; a platform folder may not be a link
    at all, because a link can be re-pointed between the check and the write.
    """
    root = Path(root)
    path = root
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            raise ConfigError(f"platform folder {path} is a symbolic link (to {os.readlink(path)}); the platform "
                              "writes only into real folders under the data root: replace the link with a folder")
    return confine(root, relative)


def confine(root: Path, relative: str | Path) -> Path:
    """Return ``root / relative`` resolved, or raise ``ConfigError`` if it leaves ``root``.

    Symbolic links are resolved before the check, so a link pointing outside is refused too.
    """
    root = Path(root).resolve()
    candidate = Path(relative)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError(f"path {str(relative)!r} resolves to {resolved}, outside the study data root {root}")
    return resolved


def load_study(path: str | Path, data_root: str | Path | None = None) -> StudyConfig:
    """Load and validate ``study.yaml``.

    Parameters
    ----------
    path : path to the YAML file.
    data_root : overrides the file's ``data_root`` (the demo generates into a folder of the user's
        choice); a relative override is taken from the current directory.

    Raises
    ------
    ConfigError
        naming the file and every offending key: unknown keys, wrong types, paths outside the
        data root, a missing subjects or endpoints file.
    """
    path = Path(path)
    raw = load_yaml(path, "the study configuration")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the study configuration must be a mapping of keys to values")
    if data_root is not None:  # given by the user: relative to where they are, not to the file
        raw = {**raw, "data_root": str(Path(data_root).resolve())}
    root = raw.get("data_root")
    if isinstance(root, str) and not Path(root).is_absolute():
        raw = {**raw, "data_root": str((path.parent / root).resolve())}
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid study configuration:\n{_describe(error)}") from None

    problems = []
    if not config.data_root.is_dir():
        problems.append(f"  data_root: folder {config.data_root} does not exist")
    for key in ("subjects", "endpoints"):
        relative = getattr(config, key).path
        try:
            if not config.resolve(relative).is_file():
                problems.append(f"  {key}.path: file {relative!r} does not exist under {config.data_root}")
        except ConfigError as error:
            problems.append(f"  {key}.path: {error}")
    if problems:
        raise ConfigError(f"{path}: invalid study configuration:\n" + "\n".join(problems))
    try:
        config.check_platform_folders()
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return config


MAX_YAML_BYTES = 1 << 20
"""The largest YAML file the platform loads (a study.yaml is a few kilobytes)."""
MAX_YAML_ALIASES = 100
"""The most alias references (``*name``) a YAML file may hold."""
MAX_YAML_NODES = 100_000
"""The most values a YAML file may hold once every alias is expanded (as hashing or dumping it does)."""
MAX_YAML_DEPTH = 64
"""The deepest nesting of mappings and sequences (deeper would exhaust the parser's stack)."""


class _YamlBoundError(yaml.YAMLError):
    """Valid YAML beyond the loader's bounds (size once expanded, aliases, depth)."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs ("billion laughs"), recursive aliases and deep nesting.

    PyYAML builds an aliased value once and shares it, so loading a bomb is cheap; the blow-up
    comes later, when the configuration is hashed for lineage or written out. So the composed
    node graph is measured as it would expand, and refused before any value is built.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _YamlBoundError(f"line {line}: more than {MAX_YAML_ALIASES} alias references (*name); "
                                     "write the values out instead")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlBoundError(f"line {line}: nested more than {MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _check_expanded_size(root: yaml.Node) -> None:
    """Raise ``_YamlBoundError`` if ``root`` expands to more than ``MAX_YAML_NODES`` nodes or refers to itself.

    Iterative post-order over the node graph, each shared node measured once (memoized by id).
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _yaml_children(node)
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_NODES:
                raise _YamlBoundError(f"aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?); "
                                     "write the values out instead")
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise _YamlBoundError("an alias refers to a value that contains it (recursive alias)")
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(path: str | Path, what: str = "the file") -> Any:
    """Load a YAML file of the platform's own (study.yaml, api_keys.yaml) within fixed bounds.

    Parameters
    ----------
    path : the file.
    what : what the file is, for the error message.

    Raises
    ------
    ConfigError
        naming the file: it cannot be read, is larger than ``MAX_YAML_BYTES``, is not valid YAML,
        or exceeds ``MAX_YAML_ALIASES``, ``MAX_YAML_NODES`` (aliases expanded) or ``MAX_YAML_DEPTH``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: refused {what}: {size} bytes is more than the {MAX_YAML_BYTES} bytes "
                              "it may hold")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {error.start})") from error
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 -- a SafeLoader subclass
    except _YamlBoundError as error:
        raise ConfigError(f"{path}: refused {what}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML for {what}: {error}") from error


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
