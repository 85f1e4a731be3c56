"""Scores of subjects from their online features, with the model the service loaded."""

from __future__ import annotations

import math

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Response, status

from serving.dependencies import RegistryDep, StoreDep, require_api_key
from serving.models import ModelNotLoadedError
from serving.online import UnknownFeatureServiceError, feature_service, read_online
from serving.responses import AUTHENTICATED, error_responses
from serving.schemas import ScoreRequest, ScoreResponse, SubjectScore, json_response
from serving.strict_json import StrictJSONRoute

router = APIRouter(prefix="/v1", tags=["scoring"], dependencies=[Depends(require_api_key)], responses=AUTHENTICATED,
                   route_class=StrictJSONRoute)


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@router.post("/score/{model}", response_model=ScoreResponse,
             summary="Score subjects with a served model on their online features",
             responses=error_responses(404, 422, 503, e404="no served model of that name",
                                       e503="the online store does not answer, or the model is not loaded or its "
                                            "feature service is not registered; try again later"))
def score_subjects(model: str, request: ScoreRequest, store: StoreDep,
                   registry: RegistryDep) -> Response:
    from training.scoring import score

    try:
        loaded = registry.get(model)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no model {model!r}; served: {', '.join(sorted(registry.references))}") from None
    except ModelNotLoadedError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from None
    try:
        service = feature_service(store, loaded.feature_service)
    except UnknownFeatureServiceError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"model {model} needs {error}") from None
    online = read_online(store, service, request.subject_ids)
    known = online.known().to_numpy()
    scores = pd.DataFrame()
    if known.any():
        # Positional: a subject asked twice gets the same row twice.
        try:
            scored = score(loaded.estimator, online.values.iloc[known].reset_index(drop=True),
                           loaded.features, loaded.task)
        except ValueError as error:  # the model's lineage and its feature service disagree: a deployment fault
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                                detail=f"model {model} version {loaded.version}: {error}") from None
        scores = scored.set_axis(online.values.index[known])
    ages = online.ages_h()
    results = []
    for position, subject in enumerate(request.subject_ids):
        feature_ages = {view: _number(age) for view, age in ages.iloc[position].items()}
        if not known[position]:
            results.append(SubjectScore(subject_id=subject, score=None, feature_ages_h=feature_ages,
                                        detail="no online features for this subject"))
            continue
        row = scores.iloc[int(known[:position].sum())]
        results.append(SubjectScore(subject_id=subject, score=_number(row["score"]),
                                    anomaly=bool(row["anomaly"]) if "anomaly" in row else None,
                                    feature_ages_h=feature_ages))
    return json_response(ScoreResponse(model=model, registered_model=loaded.registered_model,
                                       version=loaded.version, task=loaded.task, scores=results))
