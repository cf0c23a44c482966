"""The Swagger UI page: it renders the gateway's own OpenAPI document and nothing else, and asks nothing of
any other site.

The assets are the official `swagger-ui-dist` files, vendored under static/swagger-ui (VERSION.md there says
which release and how to upgrade): the packages on the index ship older releases (swagger-ui-bundle 4.15.5,
swagger-ui-py 5.24.2 with Swagger Editor and PyYAML besides). The configuration is
fixed here rather than taken from the page's address: `queryConfigEnabled` off, so `?url=` and `?configUrl=`
are ignored; `validatorUrl` null, so no badge sends the document's address to the public validator; and the
layout without the top bar, which has a box to load any other definition.
"""
from __future__ import annotations

import json
from pathlib import Path

from schemas.headers import WRITE_KEY_EXAMPLES

SWAGGER_UI_VERSION = "5.35.0"
SWAGGER_UI_FILES = Path(__file__).parent / "static" / "swagger-ui"

# The browser enforces what the configuration promises: scripts, styles and requests of this origin only.
# Swagger UI sets inline styles and draws its icons from data: URIs.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png" sizes="32x32">
  <link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script src="{initializer}"></script>
</body>
</html>
"""

# A write's example correlation id (schemas.headers.WRITE_KEY_EXAMPLES) is made new at each "Execute": trying the
# examples one after another places each, instead of refusing the second with 422 4123. A key typed in is
# sent as it is (to see a replay, send one twice).
_INITIALIZER = """window.addEventListener("load", function () {{
  var writeKeys = {write_keys};
  window.ui = SwaggerUIBundle(Object.assign({config}, {{
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    requestInterceptor: function (request) {{
      var key = request.headers["X-Correlation-Id"];
      if (writeKeys.indexOf(key) >= 0) {{
        request.headers["X-Correlation-Id"] = key + "-" + Date.now().toString(36) + "-" +
          Math.random().toString(36).slice(2, 10);
      }}
      return request;
    }}
  }}));
}});
"""


def page(title: str, static_url: str, initializer_url: str) -> str:
    return _PAGE.format(title=title, static=static_url, initializer=initializer_url)


def initializer(openapi_url: str) -> str:
    """The script that starts Swagger UI on the document at `openapi_url`, whatever the page's address says."""
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "queryConfigEnabled": False,
        "validatorUrl": None,
        "layout": "BaseLayout",
        "deepLinking": True,
        "displayRequestDuration": True,
        "persistAuthorization": False,
    }
    return _INITIALIZER.format(config=json.dumps(config, indent=2),
                               write_keys=json.dumps(sorted(WRITE_KEY_EXAMPLES.values())))
