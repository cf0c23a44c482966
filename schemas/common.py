"""Shapes shared by every resource: links and the error body."""
from marshmallow import Schema, fields


class LinkSchema(Schema):
    uri = fields.String(required=True, metadata={"description": "Root-relative URI"})
    method = fields.String(required=True, metadata={"example": "GET"})
    headers = fields.List(fields.String(), required=True)


class SelfLinksSchema(Schema):
    self = fields.Nested(LinkSchema, required=True)


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Error code, always a string", "example": "1132"})
    message = fields.String(required=True)
    additionalDetails = fields.List(fields.String(), required=True)
    invalidFields = fields.List(fields.String(), required=True)


class OAuthErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "invalid_client"})
    error_description = fields.String(required=True)
