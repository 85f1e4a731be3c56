"""Request and response bodies of the HTTP API (what ``/docs`` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_SUBJECTS_PER_REQUEST = 1000

SubjectId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class SubjectFeatures(BaseModel):
    subject_id: str
    service: str = Field(description="the feature service read")
    features: dict[str, float | str | None] = Field(
        description="feature name to online value (canonical unit in the name); null when the store has none")
    event_timestamps: dict[str, datetime | None] = Field(
        description="feature view to the UTC end of the window its values summarize; null when no row")
    feature_ages_h: dict[str, float | None] = Field(
        description="feature view to the hours from that window's end to this read; null when no row")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_ids: list[SubjectId] = Field(min_length=1, max_length=MAX_SUBJECTS_PER_REQUEST,
                                         description=f"1 to {MAX_SUBJECTS_PER_REQUEST} study subject codes")


class SubjectScore(BaseModel):
    subject_id: str
    score: float | None = Field(description="endpoint model: probability of the outcome in [0, 1]; anomaly model: "
                                            "anomaly score (higher = more anomalous); null when not scored")
    anomaly: bool | None = Field(default=None, description="anomaly models only: above the training threshold")
    feature_ages_h: dict[str, float | None] = Field(
        description="feature view to the hours since the end of the window used; null when no row")
    detail: str | None = Field(default=None, description="why the subject was not scored, if it was not")


class ScoreResponse(BaseModel):
    model: str = Field(description="the served model name")
    registered_model: str
    version: str = Field(description="the registry version that scored")
    task: str
    scores: list[SubjectScore]


class ModelInfo(BaseModel):
    name: str
    reference: str
    registered_model: str
    version: str
    run_id: str
    task: str
    feature_service: str
    features: list[str]
    loaded_at: datetime


class ModelChangeInfo(BaseModel):
    name: str
    old_version: str | None
    new_version: str


class ReloadResponse(BaseModel):
    changed: list[ModelChangeInfo]
    models: list[ModelInfo]
    errors: dict[str, str] = Field(description="served model to why it did not (re)load")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str] = Field(description="check to 'ok' or the reason it failed")
