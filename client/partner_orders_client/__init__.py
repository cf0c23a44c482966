"""The Partner Orders Gateway's Python client: order history, orders placed safely under retries, the change
feed, and webhook verification. See client/README.md."""
from partner_orders_client.async_client import AsyncClient
from partner_orders_client.errors import ApiError, ClientError, NetworkError, UnexpectedAnswer, WebhookVerificationError
from partner_orders_client.queries import Event, EventFilters, Fetched, HistoryFilters, Order
from partner_orders_client.retry import RetryPolicy
from partner_orders_client.transport import VERSION as __version__
from partner_orders_client.sync_client import Client
from partner_orders_client.webhooks import verify_webhook

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Event",
    "EventFilters",
    "Fetched",
    "HistoryFilters",
    "NetworkError",
    "Order",
    "RetryPolicy",
    "UnexpectedAnswer",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
