"""Bodies of the liveness and readiness probes."""
from marshmallow import Schema, fields, validate


class ProbeSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
