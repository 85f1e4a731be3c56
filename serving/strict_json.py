"""Request bodies parsed strictly: numbers JSON can carry, and text every encoder can write.

Python's ``json`` (which Starlette and FastAPI parse bodies with) accepts more than RFC 8259
allows, and what it lets through breaks later, far from the request, as a 500:

* ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON, and ``1e400`` overflows to infinity: a
  float field took them, and echoing them back in an error body failed (``allow_nan=False``);
* a lone UTF-16 surrogate (``"\\ud800"``, or the same three bytes raw) is not a Unicode
  character: it cannot be encoded as UTF-8 (Parquet, Redis, the alerts database, the logs);
* an integer of more than 4300 digits makes ``json`` raise an error that is not a JSON one.

:func:`loads_strict` refuses all of these with the path of each offending value, and
:class:`StrictJSONRoute` applies it to every request body before FastAPI validates it: a 422 in
FastAPI's own shape (``detail[].loc`` = ``["body", ...path]``) that never echoes the bad value.
Other integers pass: a field that cannot take one refuses it with its own 422.
"""

from __future__ import annotations

import email.message
import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

MAX_PROBLEMS = 20
"""At most this many offending values are listed in one refusal (a body of 250 events may hold more)."""

_SURROGATE = re.compile("[\ud800-\udfff]")  # after decoding, a proper pair is one code point: these are alone


class _Refused:
    """A value the parser refused, kept in place until its path is known."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message


class StrictJSONError(ValueError):
    """A body that is JSON but holds values the service refuses.

    ``problems`` is a list of ``(path, kind, message)``: the path of keys and indexes to each
    offending value (empty: the body as a whole), a short error type and the reason.
    """

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, path)) or 'body'}: {message}"
                                   for path, _, message in problems))

    def errors(self, prefix: tuple[str, ...] = ("body",)) -> list[dict]:
        """The problems as FastAPI's validation errors (``loc``, ``msg``, ``type``), under ``prefix``."""
        return [{"type": kind, "loc": (*prefix, *path), "msg": message} for path, kind, message in self.problems]


def _constant(token: str) -> _Refused:
    return _Refused("finite_number", f"{token} is not a number JSON allows (RFC 8259): send null for a value "
                                     "that is missing")


def _float(text: str) -> float | _Refused:
    value = float(text)
    if math.isinf(value):
        return _Refused("finite_number", f"{text} is outside the range of a 64-bit float (about ±1.8e308)")
    return value


def _int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    if digits > sys.get_int_max_str_digits():  # what int() itself refuses, with an error that is not JSON's
        return _Refused("int_digits", f"an integer of {digits} digits, more than the "
                                      f"{sys.get_int_max_str_digits()} this service reads")
    return int(text)


def _surrogates(text: str) -> str:
    """``text`` with its lone surrogates written as ``\\udXXX`` escapes (safe to encode and show)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _lone_surrogate(text: str) -> str:
    found = _SURROGATE.search(text)
    return (f"holds a lone UTF-16 surrogate ({_surrogates(found.group())} at character {found.start()}), which is "
            "not a Unicode character: send UTF-8, or escape characters outside the BMP as a surrogate pair")


def _clean(document: Any) -> bool:
    """Whether ``document`` (as plain ``json.loads`` gives it) holds nothing :func:`loads_strict` refuses.

    In C: ``json.dumps`` refuses NaN and infinities, and the UTF-8 codec lone surrogates (keys
    too). Some 0.6 ms for a 60 KB body of events, where a walk in Python takes several.
    """
    try:
        json.dumps(document, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return False
    return True


def loads_strict(body: bytes | str) -> Any:
    """Parse a JSON body, refusing what RFC 8259 or the service's encoders do not allow.

    Parameters
    ----------
    body : bytes or str
        The request body; bytes in UTF-8 (or UTF-16/32 with their byte order, as ``json`` detects).

    Returns
    -------
    object
        The parsed document, as ``json.loads`` gives it.

    Raises
    ------
    json.JSONDecodeError
        Not JSON at all (FastAPI answers it with its own 422).
    StrictJSONError
        Bytes that are not valid in their encoding, ``NaN``/``Infinity``, a number outside the
        64-bit float range, an integer of more digits than Python converts, a lone surrogate in
        a key or a string, or nesting deeper than the parser can follow: every offending value
        with its path (up to ``MAX_PROBLEMS``).
    """
    if isinstance(body, bytes | bytearray):
        encoding = json.detect_encoding(body)
        try:
            # A surrogate encoded in the bytes decodes as one, to be refused below with its path;
            # any other byte sequence that is not the encoding is refused here.
            body = body.decode(encoding, "surrogatepass")
        except UnicodeDecodeError as error:
            raise StrictJSONError([((), "unicode_invalid", f"the body is not valid {error.encoding}: "
                                                           f"{error.reason} at byte {error.start}")]) from None
    try:
        # The common case first: json's C parser alone, and a check in C of what it gave. Only a
        # body that fails them pays for the parse with hooks and the walk that names the paths.
        try:
            document = json.loads(body)
        except json.JSONDecodeError:
            raise
        except ValueError:  # NaN is accepted here: this is an integer past the digit limit
            document = None
        else:
            if _clean(document):
                return document
        document = json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise StrictJSONError([((), "json_depth", "the body is nested too deeply to parse")]) from None
    problems = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    # Depth first in document order (children pushed in reverse), in a loop: depth is the sender's choice.
    while stack and len(problems) < MAX_PROBLEMS:
        path, value = stack.pop()
        if isinstance(value, _Refused):
            problems.append((path, value.kind, value.message))
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                problems.append((path, "string_unicode", f"the text {_lone_surrogate(value)}"))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if _SURROGATE.search(key):
                    problems.append(((*path, _surrogates(key)), "string_unicode", f"the key {_lone_surrogate(key)}"))
                stack.append(((*path, _surrogates(key)), item))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in reversed(list(enumerate(value))))
    if problems:
        raise StrictJSONError(problems[:MAX_PROBLEMS])
    return document


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this content type as JSON (none given counts)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is checked with :func:`loads_strict` before FastAPI validates it.

    Every router of a route with a body uses it (``APIRouter(route_class=StrictJSONRoute)``);
    ``tests/serving/test_strict_json.py`` checks that no such route is left out.
    """

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_handler(request: Request) -> Response:
            body = await request.body()
            if body and _is_json(request.headers.get("content-type")):
                try:
                    loads_strict(body)
                except StrictJSONError as error:
                    raise RequestValidationError(error.errors()) from None
                except json.JSONDecodeError:
                    pass  # not JSON at all: FastAPI's own 422 says where
            return await handler(request)

        return strict_handler
