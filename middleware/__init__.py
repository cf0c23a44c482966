"""aiohttp middleware, one concern per module, ordered in gateway.app.create_app."""
