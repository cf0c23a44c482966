"""OAuth client-credentials token request and response."""
from marshmallow import Schema, fields


class TokenRequestSchema(Schema):
    # enum rather than example: Swagger 2.0 allows no example on a form parameter; any other grant type is 400
    grant_type = fields.String(required=True, metadata={"enum": ["client_credentials"]})
    client_id = fields.String(metadata={"description": "The API key; or use HTTP Basic credentials"})
    client_secret = fields.String(metadata={"description": "The client secret; or use HTTP Basic credentials"})
    scope = fields.String(metadata={"description": "Accepted and ignored"})


class TokenQuerySchema(Schema):
    """The same parameters may come in the query string instead; the form body wins."""

    grant_type = fields.String(metadata={"enum": ["client_credentials"], "description": "Here or in the form body"})
    client_id = fields.String(metadata={"description": "The API key; here, in the form body, or as Basic"})
    client_secret = fields.String(metadata={"description": "The client secret; here, in the form body, or as Basic"})
    scope = fields.String(metadata={"description": "Accepted and ignored"})


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds (v3) or milliseconds (v2)"})
