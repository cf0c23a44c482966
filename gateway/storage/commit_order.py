"""PostgreSQL: many writers of one customer commit side by side; its version and the event numbers are
taken by the COMMIT itself.

A version row stays locked from its bump to the end of the transaction, and so does the events' lock (see
gateway.storage.events): writes to one customer, and the numbering of every write's events, wait for each
other that long. Taken by statements, that was their round trips and the commit's, and on a busy process
each round trip also waits for its event loop's turn. So a write only inserts placeholders: its journal
rows under the version `-txid_current()`, its events under the number `-nextval(...)` (unique, and never
visible: the same transaction numbers them). Deferred constraint triggers on both run inside COMMIT, a row
at a time in the order they were inserted: the first to fire bumps each customer the transaction journaled,
in the customers' order, and gives its rows the version; each event's takes the events' lock and numbers
it. Every writer takes its locks in that order (the customers' rows, then the events' lock), however it
interleaved its journal and events, and holds them to the end of the commit, which makes the transaction
visible before it releases them: a reader's snapshot that holds event N holds every number below it.
SQLite commits its writers one at a time, and numbers as it writes.
"""
from __future__ import annotations

# The migration (PostgreSQL only). `SET search_path FROM CURRENT`: the function finds the tables of the
# schema it was created in, whatever the committing session's path, and the events' lock is named after
# that schema (one database may hold several deployments). The partial index finds a transaction's
# placeholder journal rows.
NUMBERED_AT_COMMIT = """
    CREATE INDEX order_changes_staged ON order_changes (version) WHERE version < 0;
    CREATE FUNCTION numbered_at_commit() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $body$
    DECLARE
        placeholder BIGINT := -txid_current();
        pending BOOLEAN;
        changed RECORD;
        bumped BIGINT;
    BEGIN
        -- Whether the transaction's customers are still to be bumped: a journal row tells by itself (a key
        -- look-up); an event's trigger, which must not take the events' lock before them, by the setting the
        -- bump leaves for the rest of the transaction. Either way one look-up, however many rows.
        IF TG_TABLE_NAME = 'order_changes' THEN
            pending := EXISTS (SELECT 1 FROM order_changes WHERE customer_id = NEW.customer_id
                               AND version = placeholder AND order_id = NEW.order_id);
        ELSE
            pending := current_setting('gateway.bumped_at_commit', true) IS DISTINCT FROM placeholder::text;
        END IF;
        IF pending THEN
            PERFORM set_config('gateway.bumped_at_commit', placeholder::text, true);
            FOR changed IN
                SELECT DISTINCT customer_id FROM order_changes WHERE version = placeholder ORDER BY customer_id
            LOOP
                UPDATE customers SET version = version + 1 WHERE customer_id = changed.customer_id
                RETURNING version INTO bumped;
                IF bumped IS NULL THEN  -- no such customer: nothing to journal
                    DELETE FROM order_changes WHERE customer_id = changed.customer_id AND version = placeholder;
                ELSE
                    UPDATE order_changes SET version = bumped
                    WHERE customer_id = changed.customer_id AND version = placeholder;
                END IF;
            END LOOP;
        END IF;
        -- Each event in turn, in the order they were inserted, by its own key: a range of placeholders would
        -- hold those of other transactions too, dead but not yet reclaimed while a long one runs.
        IF TG_TABLE_NAME = 'order_events' THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('gateway events in ' || current_schema(), 0));
            UPDATE order_events SET seq = nextval('order_events_seq') WHERE seq = NEW.seq;
        END IF;
        RETURN NULL;
    END
    $body$;
    CREATE CONSTRAINT TRIGGER order_changes_numbered_at_commit AFTER INSERT ON order_changes
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.version < 0) EXECUTE FUNCTION numbered_at_commit();
    CREATE CONSTRAINT TRIGGER order_events_numbered_at_commit AFTER INSERT ON order_events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.seq < 0) EXECUTE FUNCTION numbered_at_commit();
"""

# Nor do the orders declare their customer and reseller as foreign keys here: each insert would lock the
# customer's and the reseller's rows (FOR KEY SHARE) until its commit, and with many writers of one customer
# those locks pile up as multixacts, which every reader of the rows then resolves (bench/create.py, one
# customer: 221 creations/s with them, 501 to 555 without, both with the numbering above). The gateway checks both in the
# writing transaction (the API through the customer's reseller, an import against the rows it knows), and
# neither is ever deleted. SQLite, with one writer at a time, keeps its keys.
ORDERS_WITHOUT_PARENT_KEYS = """
    ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_customer_id_fkey;
    ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_reseller_id_fkey;
"""
