"""Migration 7: the claim and the recording of outcomes as server-side functions, one round
trip each.

A daemon's wave (outcomes recorded, then a claim for the slots they freed) was six round trips:
BEGIN, the outcomes, their dependents' look-up, the free slots, the take, COMMIT. Each costs
the server little, but a round trip through psycopg costs about as much as the work (and more
when the database is on another machine). In PL/pgSQL the statements run one after another on
the server, each with a snapshot of its own as before (a function's statements under READ
COMMITTED each see what committed before they began): the rules of claims.py and deps.py hold
statement by statement, and a wave is four round trips.

`ygg.claim` takes the common path whole: the pool has a stored limit, enough slot rows, and no
slot above its limit held. Otherwise it says what is missing (`need`) and takes nothing; the
caller (claims.py) mends it and calls again: 'limit' (none stored yet), 'rows' (`short` more
slot rows may be made, above `top`), 'held' (the limit `lim` was lowered below what runs: call
again with `usable`, the slots that may be taken now). Statements inside run on the plan cache
mode of the transaction, as prepared statements do (generic plans, db.py).

These texts are frozen once released: a change is a new migration that replaces a function.
"""

from __future__ import annotations

MIGRATION_7 = """
CREATE FUNCTION ygg.record_outcomes(items jsonb, OUT finished bigint[], OUT owners bigint[],
    OUT daemons bigint[], OUT dependents bigint[])
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    -- Fenced by each claim's token; a slot is freed only if its task's update matched.
    WITH item AS (
        SELECT (i->>0)::bigint AS id, (i->>1)::bigint AS token, i->>2 AS result,
            (i->>3)::bigint AS tokens_in, (i->>4)::bigint AS tokens_out,
            (i->>5)::bigint AS first_token_us, (i->>6)::bigint AS generation_us,
            (i->>7)::bigint AS finished_us
        FROM jsonb_array_elements(items) AS i
    ), done AS (
        UPDATE ygg.tasks AS t SET status = 'done', result = item.result, error = NULL,
            tokens_in = item.tokens_in, tokens_out = item.tokens_out,
            first_token_us = item.first_token_us, generation_us = item.generation_us,
            finished_us = item.finished_us, lease_expires_us = NULL
        FROM item WHERE t.id = item.id AND t.token = item.token AND t.status = 'running'
        RETURNING t.id, t.owner
    ), freed AS (
        UPDATE ygg.slots SET task_id = NULL WHERE task_id IN (SELECT id FROM done)
    )
    SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(owner), '{}'),
        ARRAY(SELECT id FROM ygg.daemons)
    INTO finished, owners, daemons FROM done;
    IF cardinality(finished) = 0 THEN
        RETURN;
    END IF;
    -- A statement of its own: it sees a child attached while the update waited for its parent.
    dependents := ARRAY(
        SELECT id FROM ygg.tasks WHERE status = 'waiting'
          AND id IN (SELECT task_id FROM ygg.deps WHERE depends_on = ANY(finished))
        ORDER BY id FOR UPDATE);
END
$fn$;

CREATE FUNCTION ygg.claim(p_pool text, p_kinds text[], p_want integer, p_now bigint,
    p_owner bigint, p_lease_until bigint, p_grow boolean, p_usable integer)
RETURNS TABLE (need text, lim integer, top integer, short integer, id bigint, token bigint,
    kind text, priority smallint, title text, prompt text, params text, attempts integer,
    max_attempts integer, timeout_s double precision, created_us bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_free integer[];
    v_lim integer;
    v_top integer;
    v_hint integer;
    v_candidates bigint[];
    v_ids bigint[];
    v_taken integer;
    v_walked boolean := false;
BEGIN
    -- Free slots within the limit, locked; the limit as the locked rows say; how many rows
    -- the pool has; its stored limit as this snapshot saw it (a hint for making rows).
    WITH free AS MATERIALIZED (
        SELECT n, lim FROM ygg.slots
        WHERE pool = p_pool AND task_id IS NULL AND n <= lim
          AND (p_usable IS NULL OR n <= p_usable)
        ORDER BY n LIMIT p_want
        FOR UPDATE SKIP LOCKED)
    SELECT ARRAY(SELECT n FROM free ORDER BY n), (SELECT min(lim) FROM free),
        (SELECT coalesce(max(n), 0) FROM ygg.slots WHERE pool = p_pool),
        (SELECT slot_limit FROM ygg.pool_limits WHERE pool = p_pool)
    INTO v_free, v_lim, v_top, v_hint;
    IF v_hint IS NULL THEN
        need := 'limit';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_grow AND cardinality(v_free) < p_want AND v_top < v_hint THEN
        need := 'rows'; lim := v_lim; top := v_top; short := p_want - cardinality(v_free);
        RETURN NEXT;
        RETURN;
    END IF;
    IF cardinality(v_free) = 0 THEN
        RETURN;
    END IF;
    -- A slot above the limit still held: the limit was lowered while it ran. Read after the
    -- slots were locked, so no claim that committed before a resize we saw is missed.
    IF p_usable IS NULL AND EXISTS (SELECT 1 FROM ygg.slots
            WHERE pool = p_pool AND n > v_lim AND task_id IS NOT NULL) THEN
        need := 'held'; lim := v_lim;
        RETURN NEXT;
        RETURN;
    END IF;
    -- The first ready tasks of each kind, one range of the ready index per kind, read without
    -- locks: a walk of every queued task in (priority, id) order would skip the other kinds'
    -- ones, more with every claim made (5 times the cost at 1M queued after 1,000 claims).
    v_candidates := ARRAY(
        SELECT c.id FROM unnest(p_kinds) AS k(kind) CROSS JOIN LATERAL (
            SELECT id FROM ygg.tasks
            WHERE status = 'queued' AND kind = k.kind
              AND (run_after_us IS NULL OR run_after_us <= p_now)
            ORDER BY priority, id LIMIT cardinality(v_free)) AS c);
    v_ids := v_candidates;
    LOOP
        -- The most urgent of `v_ids` locked, skipping any another claim holds, materialised
        -- with their LIMIT (inlined, the planner may run the limit once per row and take
        -- more: Oban v2.15's note), and taken into `v_free`, most urgent to lowest slot:
        -- looked up by key (joined instead, a generic plan may merge them with a walk of
        -- every task), the pairing materialised once (inlined, a generic plan re-sorted it
        -- for every slot row).
        RETURN QUERY
        WITH ready AS MATERIALIZED (
            SELECT id FROM ygg.tasks
            WHERE id = ANY(v_ids)
              AND status = 'queued' AND (run_after_us IS NULL OR run_after_us <= p_now)
            ORDER BY priority, id LIMIT cardinality(v_free)
            FOR UPDATE SKIP LOCKED
        ), taken AS (
            UPDATE ygg.tasks AS t SET status = 'running', pool = p_pool, owner = p_owner,
                attempts = t.attempts + 1, token = t.token + 1,
                lease_expires_us = p_lease_until, started_us = p_now, run_after_us = NULL
            WHERE t.id = ANY(ARRAY(SELECT id FROM ready))
            RETURNING t.id, t.token, t.kind, t.priority, t.title, t.prompt, t.params,
                t.attempts, t.max_attempts, t.timeout_s, t.created_us
        ), paired AS MATERIALIZED (
            SELECT ranked.id, free.n
            FROM (SELECT id, row_number() OVER (ORDER BY priority, id) AS rank FROM taken)
                AS ranked
            JOIN unnest(v_free) WITH ORDINALITY AS free(n, rank) USING (rank)
        ), held AS (
            UPDATE ygg.slots AS s SET task_id = paired.id
            FROM paired WHERE s.pool = p_pool AND s.n = paired.n
        )
        SELECT NULL::text, NULL::integer, NULL::integer, NULL::integer, taken.* FROM taken;
        GET DIAGNOSTICS v_taken = ROW_COUNT;
        -- All taken, or every candidate was (no ready task passed over), or walked already.
        EXIT WHEN v_walked OR v_taken = cardinality(v_free)
            OR cardinality(v_candidates) <= v_taken;
        -- Candidates another claim locked or took meanwhile: the rest from a walk past them.
        v_free := v_free[v_taken + 1:];
        v_ids := ARRAY(
            SELECT id FROM ygg.tasks
            WHERE kind = ANY(p_kinds)
              AND status = 'queued' AND (run_after_us IS NULL OR run_after_us <= p_now)
            ORDER BY priority, id LIMIT cardinality(v_free)
            FOR UPDATE SKIP LOCKED);
        v_walked := true;
    END LOOP;
END
$fn$;
"""
