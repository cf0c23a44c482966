"""What a request schema reports: one `Problem` per thing wrong with a request, in the order found.

marshmallow's own messages are prose; the API answers codes. So the request schemas raise ValidationErrors
whose messages are Problems (a kind, the field it names, the reason the client reads), and one translator
(gateway.request_errors) gives each its code. The validators here are marshmallow's own, so the API
documents show the same limits they enforce; they only swap marshmallow's message for a Problem.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, validate

MAX_STRING = 64  # characters of any string value of a request, unless a field has a limit of its own
MAX_LINK_URI = 255  # characters of the `uri` of an echoed links object
LINKS = "links"

# Kinds of problem. The translator's table gives each its code, per field where the API has a specific one.
REQUIRED = "required"
UNKNOWN = "unknown"
INVALID = "invalid"
TOO_LONG = "too_long"
TOO_MANY = "too_many"
OUT_OF_RANGE = "out_of_range"
DUPLICATE = "duplicate"
DISCOUNT = "discount"
UNSUPPORTED = "unsupported"
CONFLICT = "conflict"  # a query parameter that takes one value, sent twice with different ones
SENT_TWICE = "sent twice with different values"  # what a CONFLICT says
NUL = "nul"  # a NUL character, wherever it is: always 1117, whatever the field
QUERY = "query"  # a query parameter a write does not take: always 1117, whatever its name
QUERY_TOO_LONG = "query_too_long"  # a query value over MAX_STRING: 1132, as on every endpoint

# Keys of a schema's messages that name a check rather than a field: the Problems under them name theirs.
NUL_KEY = "_nul"
LONG_KEY = "_long"
UNKNOWN_KEY = "_unknown"
QUERY_KEY = "_query"
SHARED_KEY = "_shared"
LIST_KEY = "_list"  # inside a list's messages: about the list itself, before those of its items
LINE_KEY = "_line"  # inside one item's messages: about the item itself (not an object)


@dataclasses.dataclass(frozen=True)
class Problem:
    kind: str
    field: str
    reason: str


def field_messages(**problems: Problem) -> dict[str, str]:
    """A field's error_messages (required, null, invalid...) as Problems. marshmallow formats a string message
    and raises any other as it is given; its annotation only knows strings."""
    return typing.cast(dict[str, str], {key: [problem] for key, problem in problems.items()})


def fail(kind: str, field: str, reason: str) -> ValidationError:
    return ValidationError([Problem(kind, field, reason)])


class Coded(validate.Validator):
    """A marshmallow validator that reports a Problem instead of its message. Its limits (min, max, choices)
    stay readable, so the documents show them (apispec reads them off the validators of a field)."""

    def __init__(self, validator: validate.Validator, problem: Problem) -> None:
        self.validator, self.problem = validator, problem

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("validator", "problem"):  # copy and pickle look for dunders
            raise AttributeError(name)
        return getattr(self.validator, name)

    def __call__(self, value: Any) -> Any:
        try:
            return self.validator(value)
        except ValidationError:
            raise ValidationError([self.problem]) from None


class CodedPattern(validate.Regexp):
    """validate.Regexp (documented as pattern) reporting a Problem. The whole value must match: marshmallow's
    `match` would let `$` accept a trailing newline."""

    def __init__(self, pattern: str, problem: Problem) -> None:
        super().__init__(pattern)
        self.problem = problem

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or typing.cast("re.Pattern[str]", self.regex).fullmatch(value) is None:
            raise ValidationError([self.problem])
        return value


def is_int(value: Any) -> bool:
    """A JSON integer: not a float, not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def nul_problems(value: Any, field: str = "") -> list[Problem]:
    """No identifier or reference holds a NUL character (PostgreSQL text cannot store one); a string is
    named by the member that holds it, at any depth."""
    if isinstance(value, str):
        return [Problem(NUL, field, f"{field} must not contain NUL characters")] if "\x00" in value else []
    if isinstance(value, Mapping):
        return [problem for name, item in value.items() for problem in nul_problems(item, str(name))]
    if isinstance(value, list):
        return [problem for item in value for problem in nul_problems(item, field)]
    return []


def unknown_problems(data: Mapping[str, Any], known: typing.Collection[str], suffix: str = "") -> list[Problem]:
    """Members no schema field or accepted echo names, in the order sent."""
    return [Problem(UNKNOWN, name, f"unknown field {name}{suffix}") for name in data if name not in known]



def long_problems(value: Any, field: str = "", in_links: bool = False) -> list[Problem]:
    """Strings longer than MAX_STRING (MAX_LINK_URI for a `uri` inside a links object), at any depth, each
    named by the member that holds it."""
    if isinstance(value, str):
        limit = MAX_LINK_URI if in_links and field == "uri" else MAX_STRING
        return [Problem(TOO_LONG, field, f"{field} is longer than {limit} characters")] if len(value) > limit else []
    if isinstance(value, Mapping):
        return [
            problem for name, item in value.items()
            for problem in long_problems(item, str(name), in_links or name == LINKS)
        ]
    if isinstance(value, list):
        return [problem for item in value for problem in long_problems(item, field, in_links)]
    return []


def shorter_than_their_limits(data: Mapping[str, Any], own_limits: typing.Collection[str]) -> list[Problem]:
    """long_problems of a request's members but those in `own_limits`, whose fields check a limit of their own."""
    return long_problems({name: value for name, value in data.items() if name not in own_limits})
