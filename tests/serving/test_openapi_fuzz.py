"""The OpenAPI document tells the truth: schemathesis generates requests from it (valid and invalid)
and checks that no answer is a server error, that every status is one the document lists for the
route, and that every body matches the schema documented for its status."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.serving.conftest import KEY, SERVICE, SUBJECTS, build_setup

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    """The app on a setup of its own: generated events are pushed and alerts recorded, which the
    session's shared setup must not see."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    setup = build_setup(tmp_path_factory.mktemp("fuzz"))
    with TestClient(create_app(setup.settings)) as client:  # lifespan run: store open, models loaded
        yield client.app


MAX_EXAMPLES = 25
"""Generated requests per operation and mode: enough to reach every status a route gives, within a minute."""
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Random names reach only the 404s and 422s: each case is sent again naming what the setup serves.
KNOWN_PATH = {"model": "risk", "subject_id": "S001"}
KNOWN_QUERY = {"service": SERVICE}


def with_known_names(case):
    """The case naming a served model, a known subject and service, and events of known subjects, recent."""
    known = case.operation.Case(body=copy.deepcopy(case.body) if isinstance(case.body, dict | list) else case.body,
                                **{name: copy.deepcopy(getattr(case, name))
                                   for name in ("path_parameters", "headers", "cookies", "query", "media_type")})
    for name in set(KNOWN_PATH) & set(known.path_parameters or {}):
        known.path_parameters[name] = KNOWN_PATH[name]
    for name in set(KNOWN_QUERY) & set(known.query or {}):
        known.query[name] = KNOWN_QUERY[name]
    events = known.body.get("events") if isinstance(known.body, dict) else None
    for position, event in enumerate(events if isinstance(events, list) else []):
        if isinstance(event, dict):  # a known subject, a time the server takes as recent, a measurement
            event.update(subject_id=SUBJECTS[position % 3],
                         timestamp=(datetime.now(UTC) - timedelta(minutes=position)).isoformat())
            event.setdefault("heart_rate_bpm", 72.0)
    return known


def describe(error: BaseException) -> str:
    """The error with the exceptions it groups: a flaky failure's own text names none of them."""
    causes = [f"  {type(cause).__name__}: {cause}" for cause in getattr(error, "exceptions", ())]
    return "\n".join([str(error), *causes])[:6000]


def test_every_answer_is_documented_and_none_is_a_server_error(fuzzed_app):
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    failures, operations = {}, 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def check(case):
                case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)
                with_known_names(case).call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:  # nothing to send wrong: no parameter and no body
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as error:  # every operation is run; the failures are reported together
                failures[f"{operation.label} ({mode.value})"] = describe(error)
    assert operations >= 8
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
