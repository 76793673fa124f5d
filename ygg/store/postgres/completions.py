"""Several successes recorded in two statements, however many there are (Store.complete_many).

The daemon's store thread gathers the completions that arrive together (writer.submit_each):
at thousands of short tasks a second, two statements per task — the fenced update, then the
look-up of its dependents — were most of the time spent waiting on the server. The rules are
complete()'s: each update is fenced by its claim's token and frees its slot only if it
matched; the dependents are looked up and locked by a statement after the one that finished
their parents (deps.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence

from ygg.store.completion import Completion
from ygg.store.model import storable_us
from ygg.store.postgres import deps
from ygg.store.postgres.deps import Conn

# Rows are locked in id order (the items are sorted): two statements that finish overlapping
# sets cannot deadlock on each other.
_COMPLETE_MANY = """
WITH item AS (
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[],
        %s::bigint[], %s::bigint[], %s::bigint[])
        AS i(id, token, result, tokens_in, tokens_out, first_token_us, generation_us, finished_us)
), done AS (
    UPDATE ygg.tasks AS t SET status = 'done', result = item.result, error = NULL,
        tokens_in = item.tokens_in, tokens_out = item.tokens_out,
        first_token_us = item.first_token_us, generation_us = item.generation_us,
        finished_us = item.finished_us, lease_expires_us = NULL
    FROM item WHERE t.id = item.id AND t.token = item.token AND t.status = 'running'
    RETURNING t.id
), freed AS (
    UPDATE ygg.slots SET task_id = NULL WHERE task_id IN (SELECT id FROM done)
)
SELECT id FROM done
"""


def complete_many(
    conn: Conn, items: Sequence[Completion], finished_us: Sequence[int]
) -> list[list[str] | None]:
    """Records `items` (already storable), finished at `finished_us` (one per item); as
    Store.complete_many answers."""
    order = sorted(range(len(items)), key=lambda i: items[i].task_id)
    columns = (
        [items[i].task_id for i in order],
        [items[i].token for i in order],
        [items[i].outcome.result for i in order],
        [items[i].outcome.tokens_in for i in order],
        [items[i].outcome.tokens_out for i in order],
        [storable_us(items[i].outcome.first_token_s) for i in order],
        [storable_us(items[i].outcome.generation_s) for i in order],
        [finished_us[i] for i in order],
    )
    done = {row[0] for row in conn.execute(_COMPLETE_MANY, columns).fetchall()}
    if not done:
        return [None] * len(items)
    promoted = deps.promote_many(conn, sorted(done))
    answers: list[list[str] | None] = []
    for item in items:
        if item.task_id not in done:
            answers.append(None)
        else:
            answers.append(promoted)
            promoted = []  # the kinds go with the first item recorded
    return answers
