"""The API's error codes, as an explicit table, and the exception that carries one."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

# code -> (HTTP status, default message). Codes are strings on the wire.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "404": (404, "Not found"),
    "405": (405, "Method not allowed"),
    "408": (408, "Request body not received in time"),
    "413": (413, "Request body too large"),
    "414": (414, "Request target too long"),
    "415": (415, "Unsupported Content-Encoding"),
    "431": (431, "Request header fields too large"),
    "1116": (404, "Customer not found"),
    "1117": (400, "Invalid request"),
    "1121": (400, "Unknown field"),
    "1122": (400, "Missing required field"),
    "1124": (500, "Internal server error"),
    "1132": (400, "Invalid query parameter"),
    "1133": (400, "Offset is greater than the total count"),
    "2115": (404, "Order not found"),
    "2119": (400, "Too many line items"),
    "2120": (400, "Invalid quantity"),
    "2121": (400, "Duplicate line item number"),
    "2123": (400, "Line item number out of range"),
    "2126": (400, "External reference id too long"),
    "2130": (400, "Offer does not match the referenced order"),
    "2131": (400, "Line item not found in the referenced order"),
    "2133": (400, "Nothing left to return"),
    "2134": (400, "Return window has passed"),
    "2141": (400, "Discount codes are not supported"),
    "4115": (403, "Invalid API key"),
    "4116": (401, "Invalid authorization token"),
    "4117": (401, "Missing authorization token"),
    "4118": (429, "Too many requests"),
    "4119": (400, "Invalid X-Correlation-Id"),
    "4120": (400, "X-Request-Id already used"),
    "4122": (409, "A request with this X-Correlation-Id is in progress"),
    "4123": (422, "X-Correlation-Id already used for a different request"),
    "4124": (410, "The cursor points before the oldest event kept; start again without a cursor"),
    "503": (503, "The database cannot serve the request now; retry after the time given"),
}

INTERNAL_ERROR = "1124"


# Retry-After of an answer that the database could not serve now (the API's 503, and /readyz's).
DATABASE_RETRY_AFTER_SECONDS = 1


class ApiError(Exception):
    """A failure the client is told about, in the API's error shape."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: Sequence[str] = (),
        fields: Sequence[str] = (),
        headers: dict[str, str] | None = None,
        replayable: bool = False,
    ) -> None:
        status, default_message = ERROR_CODES[code]
        self.code = code
        self.status = status
        self.message = message or default_message
        self.details = list(details)
        self.fields = list(fields)
        self.headers = headers or {}
        # True when the cause lies in the request alone: resending it can never succeed, so the
        # idempotency layer stores this answer and replays it.
        self.replayable = replayable
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "additionalDetails": self.details,
            "invalidFields": self.fields,
        }


# At most this many details and field names in one answer: every problem of any real request fits (499 bad
# lines, each with a few bad fields), and a body made of problems cannot make a stored answer (replayed for
# days) several times its own size. The details end with a count of those left out.
MAX_REPORTED = 1000


class Problems:
    """Collects every problem of a request; the first one found decides the code and the message. A line's
    problem is detailed as `Line Item: N, Reason: ...`, any other as `field: reason`."""

    def __init__(self, replayable: bool = True) -> None:
        self.replayable = replayable
        self.code: str | None = None
        self.message = ""
        self._fields: dict[str, None] = {}  # in the order first named: a set, so that adding is O(1)
        self._details: list[str] = []
        self._left_out = 0

    @property
    def fields(self) -> list[str]:
        return list(self._fields)

    @property
    def details(self) -> list[str]:
        return self._details + ([f"... and {self._left_out} more problems"] if self._left_out else [])

    def add(self, code: str, field: str, why: str, line: object = None) -> None:
        if self.code is None:
            self.code, self.message = code, why
        if len(self._fields) < MAX_REPORTED:
            self._fields[field] = None
        if len(self._details) < MAX_REPORTED:
            self._details.append(f"Line Item: {line}, Reason: {why}" if line is not None else f"{field}: {why}")
        else:
            self._left_out += 1

    def error(self) -> ApiError | None:
        if self.code is None:
            return None
        return ApiError(self.code, self.message, details=self.details, fields=self.fields, replayable=self.replayable)

    def raise_any(self) -> None:
        error = self.error()
        if error is not None:
            raise error


class OAuthError(Exception):
    """A token request refused in RFC 6749's error shape (section 5.2), not the API's."""

    def __init__(self, status: int, error: str, description: str, headers: Mapping[str, str] | None = None):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = dict(headers or {})
