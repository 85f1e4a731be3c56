"""Online features of a subject."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status

from serving.dependencies import StoreDep, require_api_key
from serving.online import UnknownFeatureServiceError, feature_service, json_value, read_online
from serving.responses import AUTHENTICATED, error_responses
from serving.schemas import SubjectFeatures, json_response

router = APIRouter(prefix="/v1", tags=["features"], dependencies=[Depends(require_api_key)], responses=AUTHENTICATED)


@router.get("/subjects/{subject_id}/features", response_model=SubjectFeatures,
            summary="A subject's online features, with the event time and age of each view's row",
            responses=error_responses(404, 422, 503,
                                      e404="unknown feature service, or no online features for the subject"))
def subject_features(subject_id: Annotated[str, Path(min_length=1, max_length=128, description="study subject code")],
                     service: Annotated[str, Query(description="feature service, e.g. endpoint_v1")],
                     store: StoreDep) -> Response:
    try:
        definition = feature_service(store, service)
    except UnknownFeatureServiceError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    online = read_online(store, definition, [subject_id])
    if not online.known().iloc[0]:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no online features for subject {subject_id!r} in service {service!r}")
    times = online.event_times.iloc[0]
    ages = online.ages_h().iloc[0]
    return json_response(SubjectFeatures(
        subject_id=subject_id, service=service,
        features={name: json_value(value) for name, value in online.values.iloc[0].items()},
        event_timestamps={view: None if pd.isna(stamp) else stamp.to_pydatetime() for view, stamp in times.items()},
        feature_ages_h={view: None if pd.isna(age) else float(age) for view, age in ages.items()},
    ))
