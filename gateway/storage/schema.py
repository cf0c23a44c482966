"""The schema, once for every backend; each fills in its own names for the types that differ."""
from __future__ import annotations

SCHEMA_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created {bigint} NOT NULL
    );
    CREATE TABLE credentials (
        key_hash TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        fingerprint TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created {bigint} NOT NULL,
        revoked {bigint}
    );
    CREATE INDEX credentials_partner ON credentials(partner_id);
    CREATE TABLE resellers (
        reseller_id TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        name TEXT NOT NULL
    );
    CREATE INDEX resellers_partner ON resellers(partner_id);
    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        company_name TEXT NOT NULL,
        coterm_date TEXT,
        version {bigint} NOT NULL DEFAULT 0
    );
    CREATE INDEX customers_reseller ON customers(reseller_id);
    CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        order_type TEXT NOT NULL,
        status TEXT NOT NULL,
        created {bigint} NOT NULL,
        external_reference_id TEXT NOT NULL,
        reference_order_id TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        source TEXT NOT NULL,
        body {blob} NOT NULL
    );
    CREATE INDEX orders_customer_created ON orders(customer_id, created DESC, order_id DESC);
    CREATE INDEX orders_reseller ON orders(reseller_id);
    CREATE INDEX orders_reference ON orders(reference_order_id) WHERE reference_order_id != '';
    CREATE TABLE line_items (
        order_id TEXT NOT NULL REFERENCES orders(order_id) ON DELETE CASCADE,
        ext_line_item_number INTEGER NOT NULL,
        offer_id TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        subscription_id TEXT NOT NULL,
        status TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        deployment_id TEXT,
        promotions TEXT,
        PRIMARY KEY (order_id, ext_line_item_number)
    ) {without_rowid};
    """,
    """
    CREATE TABLE idempotency (
        partner_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        body {blob} NOT NULL,
        content_type TEXT NOT NULL,
        location TEXT,
        created {bigint} NOT NULL,
        PRIMARY KEY (partner_id, key)
    );
    CREATE INDEX idempotency_request ON idempotency(partner_id, request_id);
    CREATE INDEX idempotency_created ON idempotency(created);
    """,
    # Which orders of a customer each version changed, so that a cached index refreshes just those
    # (an empty order_id: every order of the customer). Kept for a while, then purged (gateway.storage.changes).
    """
    CREATE TABLE order_changes (
        customer_id TEXT NOT NULL,
        version {bigint} NOT NULL,
        order_id TEXT NOT NULL,
        created {bigint} NOT NULL,
        PRIMARY KEY (customer_id, version, order_id)
    );
    CREATE INDEX order_changes_created ON order_changes(created);
    """,
    # History paged in SQL walks this index alone: counting and skipping never visit the table, and the
    # partner's reseller check reads the reseller from it.
    """
    DROP INDEX orders_customer_created;
    CREATE INDEX orders_customer_page ON orders(customer_id, created DESC, order_id DESC, reseller_id);
    """,
    # A partner's own rate limit (`partners set-rate-limit`); NULL: the configured default.
    """
    ALTER TABLE partners ADD COLUMN rate_per_second DOUBLE PRECISION;
    ALTER TABLE partners ADD COLUMN rate_burst {bigint};
    """,
    # The change feed: one row per event, numbered in the order the changes committed (gateway.storage.events).
    """
    {event_sequence}
    CREATE TABLE order_events (
        seq {event_seq},
        event_id TEXT NOT NULL UNIQUE,
        partner_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        type TEXT NOT NULL,
        created {bigint} NOT NULL,
        body {blob} NOT NULL
    );
    CREATE INDEX order_events_partner ON order_events(partner_id, seq);
    CREATE INDEX order_events_customer ON order_events(customer_id);
    CREATE INDEX order_events_created ON order_events(created);
    """,
    # Webhooks (gateway.storage.webhooks): the endpoints, the deliveries still to make (written with their
    # events, deleted once delivered or given up), and every attempt made, for `webhooks deliveries`. An
    # event keeps the W3C trace context of the request that caused it, sent on with its deliveries.
    """
    ALTER TABLE order_events ADD COLUMN traceparent TEXT;
    CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        url TEXT NOT NULL,
        types TEXT NOT NULL,
        secret {blob} NOT NULL,
        created {bigint} NOT NULL,
        disabled {bigint}
    );
    CREATE INDEX webhooks_partner ON webhooks(partner_id);
    CREATE TABLE webhook_deliveries (
        webhook_id TEXT NOT NULL REFERENCES webhooks(webhook_id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        created {bigint} NOT NULL,
        attempts INTEGER NOT NULL,
        due {bigint} NOT NULL,
        claim TEXT,
        PRIMARY KEY (webhook_id, event_id)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(webhook_id, due);
    CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created);
    CREATE TABLE webhook_attempts (
        webhook_id TEXT NOT NULL REFERENCES webhooks(webhook_id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        attempted {bigint} NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        error TEXT,
        next_attempt {bigint},
        PRIMARY KEY (webhook_id, event_id, attempt)
    );
    CREATE INDEX webhook_attempts_time ON webhook_attempts(webhook_id, attempted);
    """,
    # The feed's filters (gateway.storage.events.feed): a customer's events of a partner, and a partner's
    # events of a type, each in number order, so a filtered page reads one range per value. The customer's
    # index still leads with customer_id: it serves look-ups by customer as the one it replaces did.
    """
    DROP INDEX order_events_customer;
    CREATE INDEX order_events_customer_partner ON order_events(customer_id, partner_id, seq);
    CREATE INDEX order_events_partner_type ON order_events(partner_id, type, seq);
    """,
    # The highest number of each partner's purged events: a cursor is stale (410) only when events of its
    # own partner after it are gone, not when another partner's are. Partners start at the one mark kept
    # before, which is what their cursors were held to until now.
    """
    CREATE TABLE event_purges (
        partner_id TEXT PRIMARY KEY,
        through {bigint} NOT NULL
    );
    INSERT INTO event_purges (partner_id, through)
        SELECT p.partner_id, CAST(m.value AS {bigint}) FROM partners p JOIN meta m ON m.key = 'events_purged_through';
    """,
    # PostgreSQL numbers a write's customer versions and events inside its COMMIT, and its orders name their
    # customer and reseller without foreign keys (gateway.storage.commit_order); SQLite has nothing to add.
    """
    {numbered_at_commit}
    {orders_without_parent_keys}
    """,
)


def migrations(**types: str) -> tuple[str, ...]:
    """The scripts with the backend's names for `bigint`, `blob`, `without_rowid`, the event numbers'
    column (`event_seq`) and the sequence that fills it, where the backend needs one (`event_sequence`), and
    what numbers a write's versions and events at commit and drops the orders' foreign keys, where the backend
    does so (`numbered_at_commit`, `orders_without_parent_keys`)."""
    return tuple(script.format(**types) for script in SCHEMA_MIGRATIONS)
