"""Feast definitions: the subject entity, one source and feature view per feature table, the
live vital-signs view fed by a push source, the on-demand change-from-baseline view and the
versioned feature services.

No I/O at import and no objects at module level: a study's Feast repo folder has an entry point
that calls :func:`build_definitions` with the study's tables (``adapters.feast_repo``). Views and
their fields are declared from ``features.tables``, where each column's description (unit,
source, algorithm) is written once.
"""

from __future__ import annotations

import inspect
import warnings
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_source import DataSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64, String

from features.tables import LIVE_VITALS, TABLES, TABLES_BY_NAME, FeatureTable

LIVE_VITALS_PUSH_SOURCE = "vital_signs_push"
"""The push source of live vital-sign events (``FeatureStore.push`` takes its name)."""

OFFLINE_KINDS = ("file", "spark")
"""The kinds of data source the views can be declared over, one per family of offline store:
``file`` (Feast's ``FileSource``) for the file, DuckDB and project stores, ``spark`` (Feast's
``SparkSource``) for Feast's Spark offline store, which accepts nothing else. Both read the same
Parquet files."""

subject = Entity(
    name="subject",
    join_keys=["subject_id"],
    value_type=ValueType.STRING,
    description="A study subject, by study subject code (never a name, MRN or date of birth).",
)


def _source(table: FeatureTable, tables_dir: Path, offline: str, description: str, **tags: str) -> DataSource:
    """The table's Parquet file as a data source of the ``offline`` kind (see ``OFFLINE_KINDS``)."""
    common = {
        "name": f"{table.name}_source",
        "path": str(tables_dir / f"{table.name}.parquet"),
        "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created_timestamp",
        "description": description,
        "tags": tags,
    }
    if offline == "file":
        return FileSource(**common)
    if offline == "spark":
        # Imported here: only a Spark repo needs it, and importing this module stays cheap.
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        with warnings.catch_warnings():  # Feast warns that the API is experimental on every SparkSource built
            warnings.simplefilter("ignore", RuntimeWarning)
            return SparkSource(file_format="parquet", **common)
    raise ValueError(f"unknown offline source kind {offline!r}: one of {', '.join(OFFLINE_KINDS)}")


def _fields(table: FeatureTable) -> list[Field]:
    return ([Field(name=name, dtype=Float64, description=text) for name, text in table.columns.items()]
            + [Field(name=name, dtype=String, description=text) for name, text in table.text_columns.items()])


def _view(table: FeatureTable, tables_dir: Path, offline: str) -> FeatureView:
    source = _source(table, tables_dir, offline,
                     f"Feature table {table.name}: one row per subject per window; event_timestamp = window end.")
    fields = _fields(table)
    fields.append(Field(name=f"{table.name}_missing_reason", dtype=String,
                        description="why this row's biomarkers are missing, if they are (none when complete)"))
    return FeatureView(
        name=table.name,
        entities=[subject],
        ttl=timedelta(days=table.ttl_days),
        schema=fields,
        source=source,
        online=True,
        description=table.description,
        tags={"inputs": ",".join(table.inputs)},
    )


def live_vitals_view(tables_dir: Path, offline: str = "file") -> FeatureView:
    """Live vital signs: a push source whose offline side is the log of pushed observations.

    Over Spark (``offline="spark"``) the log is the same Parquet file, which Feast's Spark store
    reads as it is: pushes not yet folded into it are not seen (the project's materialization
    folds them first), and before the first push there is no file to read.
    """
    # Tagged `pushed`: the project's offline store reads the log as empty until the first push.
    log = _source(LIVE_VITALS, tables_dir, offline, "Log of pushed vital-sign observations: one row per subject per "
                                                    "observation; event_timestamp = observation time.", pushed="true")
    push = PushSource(name=LIVE_VITALS_PUSH_SOURCE, batch_source=log,
                      description="Vital-sign events validated by the HTTP API (POST /v1/events) or the Kafka "
                                  "stream consumer, with their NEWS2.")
    return FeatureView(
        name=LIVE_VITALS.name,
        entities=[subject],
        ttl=timedelta(days=LIVE_VITALS.ttl_days),
        schema=_fields(LIVE_VITALS),
        source=push,
        online=True,
        description=LIVE_VITALS.description,
        tags={"inputs": ",".join(LIVE_VITALS.inputs), "pushed": "true"},
    )


def labs_change_from_baseline(inputs: dict) -> dict:
    """Lab change from baseline, derived at request time (the last value moves, the baseline does not).

    Feast's python mode: ``inputs`` maps each column to a list of values (None where missing),
    online and in training sets alike; the output maps each change column to a list of floats.
    A pandas-mode view costs some 10 ms per online read in Feast 0.67 (frames built and
    converted around a one-row subtraction); this one costs a fraction of a millisecond.
    """
    # Feast stores this function's source and runs it without this module's globals:
    # everything it needs is imported or derived inside it.
    from features.biomarkers.labs import change_from_baseline

    output = {}
    for column, baseline in inputs.items():
        if "_baseline_" not in column or "__" in column:  # "labs__..." are full-name duplicates
            continue
        analyte, unit = column.split("_baseline_")
        last = inputs.get(f"{analyte}_last_{unit}")
        if last is not None:
            output[f"{analyte}_change_from_baseline_{unit}"] = change_from_baseline(last, baseline).tolist()
    return output


# Read once: Feast keeps the source text to run the function where this module is not imported.
_CHANGE_SOURCE = inspect.getsource(labs_change_from_baseline)


def _change_analytes() -> list[tuple[str, str]]:
    return [tuple(name.split("_baseline_")) for name in TABLES_BY_NAME["labs"].columns if "_baseline_" in name]


def build_definitions(tables_dir: Path, offline: str = "file") -> dict[str, object]:
    """Every Feast object of a study's repo, with feature tables read from ``tables_dir``, by name.

    ``offline`` is the kind of data source the views read their tables through (``OFFLINE_KINDS``):
    ``"spark"`` for a repo on Feast's Spark offline store. Views, fields and services are the same
    either way; only the sources' class differs.
    """
    views = {table.name: _view(table, tables_dir, offline) for table in TABLES}
    views[LIVE_VITALS.name] = live_vitals_view(tables_dir, offline)
    # Feast 0.67 compares declared on-demand fields with the ones it infers by running the
    # function, descriptions included, and inferred fields have none: a described field fails
    # `feast apply`. So these fields are described in the view's description instead.
    change = OnDemandFeatureView(
        name="labs_change_from_baseline",
        sources=[views["labs"]],
        schema=[Field(name=f"{analyte}_change_from_baseline_{unit}", dtype=Float64)
                for analyte, unit in _change_analytes()],
        mode="python",
        description=(
            "Lab change from the subject's baseline, derived at request time: "
            "<analyte>_change_from_baseline_<unit> = <analyte>_last_<unit> - <analyte>_baseline_<unit> "
            "(baseline: the last result at or before enrollment), in the analyte's canonical unit; "
            "source: laboratory results (LIMS, HL7 v2, FHIR)."
        ),
        udf=labs_change_from_baseline,
        udf_string=_CHANGE_SOURCE,
    )
    daily_activity, sleep, cardiac, labs, vitals = (views[name] for name in
                                                     ("daily_activity", "sleep", "cardiac", "labs", "hourly_vitals"))
    services = [
        FeatureService(
            name="endpoint_v1",
            features=[
                daily_activity[["steps_sum_1d_count", "active_minutes_1d_min", "peak_cadence_30min_1d_steps_per_min",
                                "wear_time_1d_min", "resting_heart_rate_1d_bpm", "heart_rate_mean_1d_bpm"]],
                sleep[["total_sleep_time_night_min", "sleep_efficiency_night_percent", "waso_night_min"]],
                cardiac[["mean_nn_morning_ms", "sdnn_morning_ms", "rmssd_morning_ms", "lf_hf_ratio_morning"]],
                labs[["creatinine_last_mg_dl", "c_reactive_protein_last_mg_l", "hemoglobin_last_g_dl",
                      "white_blood_cells_last_thousand_per_ul", "egfr_ckd_epi_2021_ml_min_1_73m2"]],
                change[["creatinine_change_from_baseline_mg_dl", "c_reactive_protein_change_from_baseline_mg_l"]],
            ],
            description="Version 1 of the features for clinical endpoint prediction (hospitalization within 90 days).",
            tags={"model": "endpoint", "version": "1"},
        ),
        FeatureService(
            name="anomaly_v1",
            features=[
                daily_activity[["steps_sum_1d_count", "resting_heart_rate_1d_bpm", "heart_rate_mean_1d_bpm",
                                "wear_time_1d_min"]],
                cardiac[["rmssd_morning_ms", "sdnn_morning_ms", "mean_nn_morning_ms", "ectopic_beats_morning_percent"]],
                sleep[["total_sleep_time_night_min", "sleep_efficiency_night_percent"]],
            ],
            description="Version 1 of the features for anomaly detection on daily biomarker vectors.",
            tags={"model": "anomaly", "version": "1"},
        ),
        FeatureService(
            name="vitals_anomaly_v1",
            features=[
                vitals[["news2_score_max_24h", "spo2_min_24h_percent", "desaturation_events_24h_count",
                        "heart_rate_mean_24h_bpm", "respiratory_rate_mean_24h_per_min",
                        "temperature_max_24h_deg_c", "systolic_bp_min_24h_mmhg"]],
            ],
            description="Version 1 of the features for anomaly detection on vital-sign windows.",
            tags={"model": "anomaly", "version": "1"},
        ),
        FeatureService(
            name="vitals_live_v1",
            features=[views[LIVE_VITALS.name]],
            description="Version 1 of the live vital signs: each subject's latest observation and its NEWS2.",
            tags={"version": "1"},
        ),
    ]
    objects = {"subject": subject, **views, change.name: change}
    objects.update({service.name: service for service in services})
    return objects
