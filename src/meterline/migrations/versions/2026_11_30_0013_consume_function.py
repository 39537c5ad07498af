"""The common consume as one PostgreSQL function (issue 19): lock, count, decide, record.

``meterline_consume`` does in one round trip what a consume otherwise does in seven
statements — take the (meter, customer) guards, read the wallet, the limit counters and
the live holds, compare with the hard limits, then store the event, fold it into its
rollups and the limit counters, and count it in the hourly statistics. Each statement of
a VOLATILE PL/pgSQL function takes a new snapshot (READ COMMITTED), so the counters are
read after the guards are held, as in the statement-by-statement path. Whatever it
cannot decide alone it leaves untouched but for the guards and answers why
(``entitlements.onecall``), and the caller takes the ordinary path in the same
transaction. SQLite has no server-side functions: nothing to do there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statuses: 'ok' (recorded), 'refused' (a hard limit would be passed: nothing written),
# 'missing' (a limit's counter is not made yet), 'stale' (the ledger has an expiry or an
# allocation due), 'repeat' (the event id is stored already). Only 'ok' wrote anything
# besides the guards.
FUNCTION = """
CREATE OR REPLACE FUNCTION meterline_consume(
    p_workspace bigint,
    p_billing bigint,         -- the billing customer (counters, guards, wallet)
    p_meter bigint,           -- the feature's meter (its limits are decided on)
    p_guards bigint[],        -- meters to guard, in lock order
    p_now timestamptz,
    p_due text,               -- the plan allocation due now (NULL: none)
    p_kinds text[],           -- the feature's limits: window,
    p_starts timestamptz[],   --   its current start,
    p_caps numeric[],         --   the hard cap in raw units (NULL: not enforced)
    p_amount numeric,         -- what the usage adds to the feature's meter
    p_event_id text,
    p_type text,
    p_customer bigint,
    p_subject text,
    p_timestamp timestamptz,
    p_received timestamptz,
    p_quantity numeric,
    p_properties json,
    p_hash text,
    p_bucket timestamptz,
    p_latest text,            -- the rollups' latest-key, less the event's sequence
    p_rollup_meters bigint[], -- each meter of the type that counts the event,
    p_rollup_groups text[],   --   its group key
    p_rollup_values numeric[],--   and the value it adds (sorted by meter, group)
    p_counter_meters bigint[],-- the limited ones among them,
    p_counter_values numeric[],-- and their values (limit counters)
    p_hour timestamptz,
    p_shard integer,
    OUT status text,
    OUT used numeric[],
    OUT held numeric,
    OUT balance numeric
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_meter bigint;
    v_expiry timestamptz;
    v_allocated text;
    v_used numeric;
    v_seq bigint;
    i integer;
BEGIN
    FOREACH v_meter IN ARRAY p_guards LOOP
        INSERT INTO usage_guards (meter_id, customer_id, hits) VALUES (v_meter, p_billing, 1)
        ON CONFLICT (meter_id, customer_id) DO UPDATE SET hits = usage_guards.hits + 1;
    END LOOP;

    PERFORM 1 FROM events e WHERE e.workspace_id = p_workspace AND e.event_id = p_event_id;
    IF FOUND THEN status := 'repeat'; RETURN; END IF;

    SELECT w.balance, w.next_expiry, w.allocated INTO balance, v_expiry, v_allocated
    FROM credit_wallets w WHERE w.customer_id = p_billing;
    IF NOT FOUND THEN
        balance := 0;
        IF p_due IS NOT NULL THEN status := 'stale'; RETURN; END IF;
    ELSIF (v_expiry IS NOT NULL AND v_expiry <= p_now)
        OR (p_due IS NOT NULL AND v_allocated IS DISTINCT FROM p_due) THEN
        status := 'stale'; RETURN;
    END IF;

    SELECT COALESCE(SUM(r.amount), 0) INTO held FROM reservations r
    WHERE r.customer_id = p_billing AND r.meter_id = p_meter AND r.status = 'held'
      AND r.expires_at > p_now;

    used := '{}';
    FOR i IN 1 .. COALESCE(array_length(p_kinds, 1), 0) LOOP
        SELECT c.used INTO v_used FROM usage_counters c
        WHERE c.customer_id = p_billing AND c.meter_id = p_meter AND c.kind = p_kinds[i]
          AND c.window_start = p_starts[i] AND c.window_end > p_now;
        IF NOT FOUND THEN status := 'missing'; RETURN; END IF;
        used := used || v_used;
    END LOOP;
    FOR i IN 1 .. COALESCE(array_length(p_kinds, 1), 0) LOOP
        IF p_caps[i] IS NOT NULL AND used[i] + held + p_amount > p_caps[i] THEN
            status := 'refused'; RETURN;
        END IF;
    END LOOP;

    INSERT INTO events (workspace_id, event_id, event_type, customer_id,
        billing_customer_id, subject, "timestamp", received_at, quantity, properties,
        content_hash)
    VALUES (p_workspace, p_event_id, p_type, p_customer, p_billing, p_subject,
        p_timestamp, p_received, p_quantity, p_properties, p_hash)
    ON CONFLICT (workspace_id, event_id) DO NOTHING
    RETURNING seq INTO v_seq;
    IF v_seq IS NULL THEN status := 'repeat'; RETURN; END IF;

    INSERT INTO meter_rollups AS m (meter_id, customer_id, bucket_start, group_key,
        billing_customer_id, count, sum, min, max, latest_key, latest_value)
    SELECT t.meter, p_customer, p_bucket, t.grp, p_billing, 1, t.val, t.val, t.val,
        p_latest || lpad(v_seq::text, 20, '0'), t.val
    FROM unnest(p_rollup_meters, p_rollup_groups, p_rollup_values) AS t(meter, grp, val)
    ON CONFLICT (meter_id, customer_id, bucket_start, group_key) DO UPDATE SET
        count = m.count + excluded.count,
        sum = m.sum + excluded.sum,
        min = LEAST(m.min, excluded.min),
        max = GREATEST(m.max, excluded.max),
        latest_value = CASE WHEN m.latest_key IS NULL OR excluded.latest_key > m.latest_key
            THEN excluded.latest_value ELSE m.latest_value END,
        latest_key = CASE WHEN m.latest_key IS NULL OR excluded.latest_key > m.latest_key
            THEN excluded.latest_key ELSE m.latest_key END;

    FOR i IN 1 .. COALESCE(array_length(p_counter_meters, 1), 0) LOOP
        UPDATE usage_counters c SET used = c.used + p_counter_values[i]
        WHERE c.customer_id = p_billing AND c.meter_id = p_counter_meters[i]
          AND c.counts_from <= p_timestamp AND c.window_end > p_timestamp;
    END LOOP;

    INSERT INTO ingest_stats AS s (workspace_id, hour, shard, accepted, duplicates,
        rejected, unmetered)
    VALUES (p_workspace, p_hour, p_shard, 1, 0, 0, 0)
    ON CONFLICT (workspace_id, hour, shard) DO UPDATE SET accepted = s.accepted + 1;

    status := 'ok';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS meterline_consume")
