"""OAuth client-credentials token request and response."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from schemas.problems import REQUIRED, UNSUPPORTED, Coded, Problem, field_messages

GRANT_TYPE = "client_credentials"  # the only grant (RFC 6749 4.4)
MAX_FORM_FIELDS = 20  # fields of a token request's form body; more is a malformed request


def repeated_parameters(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Names sent more than once in one place, the form body or the query (RFC 6749 3.2: parameters MUST NOT
    be included more than once); one name in both places is not repeated: the body wins."""
    names = [name for name, _ in pairs]
    return list(dict.fromkeys(name for name in names if names.count(name) > 1))


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    client_id: str | None  # None: not in the form or the query (HTTP Basic credentials may bring it)
    client_secret: str | None


_NO_GRANT_TYPE = Problem(REQUIRED, "grant_type", "grant_type is required")


class _GrantType(fields.String):
    """An empty grant type is a missing one (invalid_request), not an unsupported one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value == "":
            raise ValidationError([_NO_GRANT_TYPE])
        return super()._deserialize(value, attr, data, **kwargs)


def _grant_type(**kwargs: Any) -> fields.String:
    # An enum (from the validator) rather than an example: Swagger 2.0 allows no example on a form parameter.
    unsupported = Problem(UNSUPPORTED, "grant_type", f"only {GRANT_TYPE} is supported")
    return _GrantType(
        validate=Coded(validate.OneOf([GRANT_TYPE]), unsupported),
        error_messages=field_messages(required=_NO_GRANT_TYPE),
        **kwargs,
    )


class TokenRequestSchema(Schema):
    """The form, or the form and the query merged (the form wins); only the grant type is checked here, the
    client's credentials are looked up by the handler."""

    class Meta:
        unknown = EXCLUDE  # other parameters are ignored, as RFC 6749 3.2 asks

    grant_type = _grant_type(required=True)
    client_id = fields.String(metadata={"description": "The API key; or use HTTP Basic credentials"})
    client_secret = fields.String(metadata={"description": "The client secret; or use HTTP Basic credentials"})
    scope = fields.String(metadata={"description": "Accepted and ignored"})

    @post_load
    def _request(self, data: dict[str, Any], **kwargs: Any) -> TokenRequest:
        return TokenRequest(data["grant_type"], data.get("client_id"), data.get("client_secret"))


class TokenQuerySchema(Schema):
    """The same parameters may come in the query string instead; the form body wins."""

    grant_type = _grant_type(metadata={"description": "Here or in the form body"})
    client_id = fields.String(metadata={"description": "The API key; here, in the form body, or as Basic"})
    client_secret = fields.String(metadata={"description": "The client secret; here, in the form body, or as Basic"})
    scope = fields.String(metadata={"description": "Accepted and ignored"})


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds (v3) or milliseconds (v2)"})
