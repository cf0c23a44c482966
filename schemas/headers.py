"""Headers of the partner API, for the OpenAPI document."""

PARTNER_HEADERS = [
    {"in": "header", "name": "X-Api-Key", "required": True, "type": "string",
     "description": "The API key of the integration (the OAuth client id)"},
    {"in": "header", "name": "Authorization", "required": True, "type": "string",
     "description": "Bearer <access token from /ims/token/v3>"},
    {"in": "header", "name": "X-Correlation-Id", "required": True, "type": "string",
     "description": "1 to 255 characters; the idempotency key of POST and PATCH"},
    {"in": "header", "name": "X-Request-Id", "required": False, "type": "string",
     "description": "Echoed on the response; generated when absent"},
]
