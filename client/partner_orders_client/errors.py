"""What the client raises. One base class, so an integration can catch everything of this library at once,
and one class per kind of failure it must handle differently."""
from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Anything this library raises on purpose."""


class ApiError(ClientError):
    """The gateway (or the token endpoint) answered with an error that retrying did not, or cannot, cure.

    `code` is the API's string code (`"1132"`, `"4116"`...); the token endpoint's OAuth errors carry their
    `error` (`"invalid_client"`) there instead. An answer without the API's error body (a proxy's HTML page)
    gets the HTTP status as its code, so `code` is never empty.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        additional_details: list[str] | None = None,
        invalid_fields: list[str] | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.additional_details = additional_details or []
        self.invalid_fields = invalid_fields or []
        # The gateway's id of the answering request: the one thing its operators need to find it in their logs.
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable (to another process, say), although its constructor's arguments are not its `args`."""
        fields = (self.status, self.code, self.message, self.additional_details, self.invalid_fields)
        return type(self), fields, {"request_id": self.request_id}


class NetworkError(ClientError):
    """No answer came back (connection refused or dropped, timeout) on any of the attempts allowed.

    A write that ends here may or may not have been executed: call it again with the same `correlation_id`
    to find out safely (the gateway replays the stored answer of an executed one)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.attempts)


class UnexpectedAnswer(ClientError):
    """A successful status with a body that is not what the API sends (not JSON, not an object): usually
    something other than the gateway answering at the base URL."""


class WebhookVerificationError(ClientError):
    """A webhook delivery that must not be trusted: missing headers, no matching signature (a wrong secret
    or a changed body), or a timestamp outside the tolerance (a replayed or delayed delivery)."""
