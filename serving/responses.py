"""The error answers of the API, declared once for the OpenAPI document: each route lists the ones it can give.

Every error body is ``{"detail": ...}``: a sentence saying what went wrong and what to do, or, for
a request that fails validation, FastAPI's list of the fields at fault.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong, and what to do about it")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where the field is: body, query or path, then its names and indexes")
    msg: str
    type: str


class InvalidRequestBody(BaseModel):
    detail: str | list[FieldError] = Field(
        description="the fields that failed validation, or a sentence naming the event or subject refused")


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}

ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no, a malformed or an unknown API key (`Authorization: Bearer KEY`)",
          "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}},
    403: {"model": ErrorBody, "description": "the API key is not allowed to read this study"},
    404: {"model": ErrorBody, "description": "not found"},
    413: {"model": ErrorBody, "description": "the request body is larger than the service accepts"},
    422: {"model": InvalidRequestBody, "description": "the request is not valid; nothing of it was kept"},
    503: {"model": ErrorBody, "headers": _RETRY_AFTER,
          "description": "the online store does not answer (down, unreachable or timed out); try again later"},
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The shared declarations of ``codes`` for a route's ``responses=``; ``descriptions`` replace
    a code's generic one for that route, keyed ``e404="unknown model"``."""
    chosen: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        chosen[code] = dict(ERROR_RESPONSES[code])
        if f"e{code}" in descriptions:
            chosen[code]["description"] = descriptions[f"e{code}"]
    return chosen


# Every route under /v1: the key check, and the body size limit (any request with a body).
AUTHENTICATED = error_responses(401, 403, 413)
