"""What a JSON body is: an object of at most MAX_DEPTH levels of nesting, with no member name twice in
one object. Used for the bodies of POST and PATCH and for each line of an import file.

orjson parses every body, as fast as before; the two rules then cost a walk of the parsed value that stops at
MAX_DEPTH (so it never recurses deeper) and one regular-expression pass over the text. Only a body whose text
has more members than its parsed value (some name was sent twice, and the last one won) is parsed a second
time, by the standard library, to name the repeated members.

A body that breaks a rule is still a JSON object: its refusal is stored for replay like any other caused by
the request alone, matched by the body's bytes (gateway.idempotency). A body holding a number that does not
read exactly (below) is matched by its canonical text with the numbers as written: its value stands for
other texts too.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

MAX_DEPTH = 32  # levels of nesting: the body object itself is level 1

# A JSON string, escapes included: what the scans below leave out (a ':' or a bracket in a string is text).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST = re.compile(rb"\[\]|\{\}")

# A number must read exactly: orjson reads an integer beyond 64 bits as the nearest double, and a decimal that
# no double holds (too many digits, below a double's range) as the nearest one, so two bodies that differ only
# there would share a fingerprint. An integer must fit 64 bits; any other number must be the shortest
# decimal of the double it reads as (at most 17 significant digits, and always so for 15 or fewer).
_NUMBER = re.compile(rb"-?\d+(\.\d+)?([eE][+-]?\d+)?")
# Only these can fail to read exactly (an integer of 18 digits or fewer always does): found in the raw text
# first, a quick scan, so that the usual body (small integers, strings) costs no second one.
_MAYBE_INEXACT = re.compile(rb"\d(?:\d{18}|[.eE])")
_INTEGERS = range(-(2**63), 2**64)  # what orjson keeps as an int
MAX_NUMBER_CHARS = 64  # a longer number cannot read exactly; and it is not parsed to find out

NOT_AN_OBJECT = "The request body must be a JSON object"
TOO_DEEP = f"JSON nested more than {MAX_DEPTH} levels deep"


class BodyProblem(ValueError):
    """The body is not a JSON object within the limits; `fields` names the repeated members, if any;
    `an_object`: whether it is a JSON object all the same (only a nesting or a repeated member is wrong)."""

    def __init__(self, reason: str, fields: tuple[str, ...] = (), an_object: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.fields, self.an_object = reason, fields, an_object


@dataclass(frozen=True)
class JsonBody:
    value: dict[str, Any]
    # None when the value stands for the text (every number reads as exactly what it spells); else the text in
    # canonical form with its numbers as written (key order, white space and a number's spelling do not
    # matter, but for a number no Decimal holds, kept as spelt: _Unbounded), which the replay fingerprint
    # takes in its place.
    as_written: bytes | None = None


def parse_object(raw: bytes) -> JsonBody:
    """The JSON object of `raw`, or BodyProblem saying why it is not one within the limits."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as refused:
        if "infinity" in str(refused):  # a number beyond a double's range (1e400): read below
            value = None
        elif text_too_deep(raw):  # orjson stops at 1024 levels itself: say so rather than "not JSON"
            raise BodyProblem(TOO_DEEP, an_object=_opens_an_object(raw)) from None
        else:
            raise BodyProblem(NOT_AN_OBJECT, an_object=False) from None
    if value is not None and not isinstance(value, dict):
        raise BodyProblem(NOT_AN_OBJECT, an_object=False)
    if value is not None:
        within_limits(raw, value)
        if not _MAYBE_INEXACT.search(raw) or all(map(_exact, _NUMBER.finditer(_STRING.sub(b"", raw)))):
            return JsonBody(value)
    written = _read_as_written(raw)
    if value is None:  # read by the standard library alone: its checks too
        within_limits(raw, written)
    # For the fields: doubles as orjson reads them, and integers of any size as they are (orjson reads one
    # beyond 64 bits as a double, and 10**20 was "not an integer" rather than out of range).
    return JsonBody(_as_doubles(written), _canonical(written))


def _opens_an_object(raw: bytes) -> bool:
    return raw.lstrip(b" \t\r\n")[:1] == b"{"


def _read_as_written(raw: bytes) -> dict[str, Any]:
    """The object with its decimals as Decimal (exact) and its integers as int (any size), by the standard
    library; a number neither holds is kept as its text (_Unbounded)."""
    try:
        value = json.loads(raw, parse_float=_decimal, parse_int=_integer, parse_constant=_not_json)
    except RecursionError:
        raise BodyProblem(TOO_DEEP, an_object=_opens_an_object(raw)) from None
    except (json.JSONDecodeError, UnicodeDecodeError, _NotJson):
        raise BodyProblem(NOT_AN_OBJECT, an_object=False) from None
    if not isinstance(value, dict):
        raise BodyProblem(NOT_AN_OBJECT, an_object=False)
    return value


class _NotJson(ValueError):
    pass


class _Unbounded(str):
    """A number of the text that no Decimal holds (an exponent beyond 10**18 either way) or no int (an integer
    of over 4,300 digits, the interpreter's limit): valid JSON all the same, kept as written. As a double it
    is what Python reads (1e9999999999999999999 is infinity, which the fields that take numbers refuse)."""


def _decimal(text: str) -> Decimal | _Unbounded:
    try:
        return Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation
        return _Unbounded(text)


def _integer(text: str) -> int | _Unbounded:
    try:
        return int(text)
    except ValueError:
        return _Unbounded(text)


def _not_json(constant: str) -> Any:
    raise _NotJson(constant)  # NaN and Infinity: the standard library's extensions, not JSON


def _as_doubles(value: Any) -> Any:
    """Decimals as the doubles orjson reads (1e400 as infinity, which the fields that take numbers refuse);
    integers as they are, of any size."""
    if isinstance(value, dict):
        return {name: _as_doubles(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_as_doubles(item) for item in value]
    return float(value) if isinstance(value, (Decimal, _Unbounded)) else value


def _canonical(value: Any) -> bytes:
    """Sorted members, no white space, each number as written: `1.0e2` and `100.0` are `1E2`. A lone
    surrogate (the standard library reads `"\\ud800"`, orjson does not) is no text: not JSON."""
    if isinstance(value, dict):
        return b"{%b}" % b",".join(orjson.dumps(name) + b":" + _canonical(value[name]) for name in sorted(value))
    if isinstance(value, list):
        return b"[%b]" % b",".join(map(_canonical, value))
    if isinstance(value, _Unbounded):  # no Decimal's canonical form has its exponent, nor an int its digits
        return value.encode()
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        significant = "".join(map(str, digits)).rstrip("0")
        if not significant:
            return b"0"
        exponent = int(exponent) + len(digits) - len(significant)
        return f"{'-' if sign else ''}{significant}E{exponent}".encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()  # beyond 64 bits too, which orjson does not write
    try:
        return orjson.dumps(value)
    except TypeError:
        raise BodyProblem(NOT_AN_OBJECT, an_object=False) from None


def _exact(number: re.Match[bytes]) -> bool:
    """Whether a number of a JSON text reads as exactly the value it spells."""
    text = number[0].decode()
    if len(text) > MAX_NUMBER_CHARS:
        return False
    if number[1] is None and number[2] is None:
        return int(text) in _INTEGERS
    try:
        spelled = Decimal(text)
    except ArithmeticError:  # an exponent beyond what a Decimal holds: no double reads it exactly either
        return False
    read = float(spelled)
    return math.isfinite(read) and Decimal(repr(read)) == spelled


def within_limits(raw: bytes, value: dict[str, Any]) -> None:
    """BodyProblem unless `value`, parsed from `raw` by orjson, is nested at most MAX_DEPTH levels deep and
    `raw` sends no member name twice in one object (orjson keeps the last one silently)."""
    members = _members(value, 1)
    # Each member has one ':' outside strings; counting those in strings too is exact for most bodies.
    if members != raw.count(b":") and members != _STRING.sub(b"", raw).count(b":"):
        repeated = _repeated_members(raw)
        if repeated:
            raise BodyProblem(f"member {', '.join(repeated)} sent twice in one object", tuple(repeated))


def text_too_deep(raw: bytes) -> bool:
    """Whether text orjson could not parse nests brackets deeper than MAX_DEPTH: each pass removes the
    innermost pairs."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    for _ in range(MAX_DEPTH):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:
            return False
    return _INNERMOST.search(brackets) is not None


def _members(value: Any, depth: int) -> int:
    """The members of every object in `value`, at `depth`; BodyProblem past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise BodyProblem(TOO_DEEP)
    items = value.values() if isinstance(value, dict) else value
    nested = sum(_members(item, depth + 1) for item in items if isinstance(item, (dict, list)))
    return nested + len(value) if isinstance(value, dict) else nested


def _repeated_members(raw: bytes) -> list[str]:
    """The names sent twice in one object, in the order found. Called only for text orjson parsed, within
    MAX_DEPTH: numbers are kept as text (the standard library would refuse an integer of 4,301 digits)."""
    repeated: dict[str, None] = {}

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in members:
            if name in seen:
                repeated[name] = None
            seen.add(name)
        return dict(members)

    json.loads(raw, object_pairs_hook=pairs, parse_int=str, parse_float=str)
    return list(repeated)
