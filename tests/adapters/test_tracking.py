"""Model references are read in one place, and a run's lineage record is one typed object."""

from __future__ import annotations

import mlflow
import pytest

from adapters.tracking import Lineage, ModelReference, log_lineage, read_lineage


@pytest.mark.parametrize(("text", "expected"), [
    ("demo-hospitalization_risk@champion", ModelReference("demo-hospitalization_risk", alias="champion")),
    ("demo-risk/12", ModelReference("demo-risk", version="12")),
    ("team/project/3", ModelReference("team/project", version="3")),
])
def test_a_reference_names_a_model_by_alias_or_version(text, expected):
    assert ModelReference.parse(text) == expected
    assert str(expected) == text and ModelReference.is_reference(text)


@pytest.mark.parametrize("text", ["", "@champion", "demo-risk@", "demo-risk/", "demo-risk/latest",
                                  "0123456789abcdef0123456789abcdef"])
def test_anything_else_is_not_a_reference_and_the_error_says_what_is(text):
    assert not ModelReference.is_reference(text)
    with pytest.raises(ValueError, match="NAME@ALIAS or NAME/VERSION"):
        ModelReference.parse(text)


def test_a_lineage_record_is_written_and_read_back_whole(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    record = Lineage.of_external_model("demo", "endpoint", "endpoint_v1", ["cardiac"], ["rmssd_morning_ms"])
    record = record.model_copy(update={"split": {"test_subjects": ["S0001"]}})
    with mlflow.start_run(experiment_id=experiment) as run:
        log_lineage(record)

    assert read_lineage(run.info.run_id) == record


def test_an_incomplete_or_missing_record_is_refused_naming_the_run_and_the_fields(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as partial:
        mlflow.log_dict({"task": "endpoint", "features": ["x"]}, "lineage.json")
    with mlflow.start_run(experiment_id=experiment) as bare:
        pass

    with pytest.raises(ValueError, match=rf"run {partial.info.run_id}: lineage.json is incomplete .*feature_service"):
        read_lineage(partial.info.run_id)
    with pytest.raises(ValueError, match=rf"run {bare.info.run_id} has no readable lineage.json"):
        read_lineage(bare.info.run_id)
