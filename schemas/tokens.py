"""OAuth client-credentials token request and response."""
from marshmallow import Schema, fields


class TokenRequestSchema(Schema):
    grant_type = fields.String(required=True, metadata={"example": "client_credentials"})
    client_id = fields.String(metadata={"description": "The API key; or use HTTP Basic credentials"})
    client_secret = fields.String(metadata={"description": "The client secret; or use HTTP Basic credentials"})
    scope = fields.String(metadata={"description": "Accepted and ignored"})


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds (v3) or milliseconds (v2)"})
