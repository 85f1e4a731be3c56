"""Strict parsing of request bodies (``serving.strict_json``); through the app in test_events.py."""

from __future__ import annotations

import json

import pytest

from serving.strict_json import MAX_PROBLEMS, StrictJSONError, loads_strict


@pytest.mark.parametrize(("body", "problems"), [
    (b'{"a": [1, NaN, {"b": Infinity}], "c": -1e400}',
     [(("a", 1), "finite_number", "NaN is not a number"), (("a", 2, "b"), "finite_number", "Infinity is not"),
      (("c",), "finite_number", "-1e400 is outside the range of a 64-bit float")]),
    (b'{"s": "ok \\ud83d\\ude00", "t": "x\\uDBFF"}', [(("t",), "string_unicode", "(\\udbff at character 1)")]),
    (b'{"\\udc00k": 1}', [(("\\udc00k",), "string_unicode", "the key holds a lone UTF-16 surrogate")]),
    (b'{"raw": "\xed\xa0\x80"}', [(("raw",), "string_unicode", "lone UTF-16 surrogate")]),  # encoded in the bytes
    (b'{"n": 1' + b"0" * 5000 + b"}", [(("n",), "int_digits", "an integer of 5001 digits")]),
    (b'{"s": "S0\xff1"}', [((), "unicode_invalid", "not valid utf-8: invalid start byte at byte 9")]),
    (b"[" * 50_000 + b"]" * 50_000, [((), "json_depth", "nested too deeply")]),
])
def test_what_json_or_an_encoder_does_not_allow_is_refused_with_its_path(body, problems):
    with pytest.raises(StrictJSONError) as refused:
        loads_strict(body)
    got = refused.value.problems
    assert [(path, kind) for path, kind, _ in got] == [(path, kind) for path, kind, _ in problems]
    assert all(words in message for (_, _, message), (_, _, words) in zip(got, problems, strict=True))
    json.dumps(refused.value.errors()).encode("utf-8")  # the 422 body itself encodes: no bad value echoed


def test_valid_json_parses_as_json_loads_does():
    body = {"events": [{"subject_id": "S\u00e9\U0001f600", "n": 9223372036854775808, "x": -1.5e308, "s": "NaN"}]}
    for encoded in (json.dumps(body).encode(), json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    json.dumps(body).encode("utf-16")):
        assert loads_strict(encoded) == body
    with pytest.raises(json.JSONDecodeError):
        loads_strict(b'{"a": ')


def test_a_refusal_lists_at_most_max_problems():
    body = json.dumps({"values": [float("nan")] * (MAX_PROBLEMS + 5)}).encode()
    with pytest.raises(StrictJSONError) as refused:
        loads_strict(body)
    assert len(refused.value.problems) == MAX_PROBLEMS and refused.value.problems[0][0] == ("values", 0)


def test_every_route_with_a_body_parses_it_strictly():
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute

    import serving.routers
    from serving.strict_json import StrictJSONRoute

    routes = [route for found in pkgutil.iter_modules(serving.routers.__path__)
              for route in importlib.import_module(f"serving.routers.{found.name}").router.routes]
    with_body = [route for route in routes if isinstance(route, APIRoute) and route.body_field]
    assert with_body and all(isinstance(route, StrictJSONRoute) for route in with_body), \
        [route.path for route in with_body if not isinstance(route, StrictJSONRoute)]
