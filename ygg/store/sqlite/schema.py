"""Forward-only numbered migrations; PRAGMA user_version records how many have been applied."""

from __future__ import annotations

# 'ygg' + 1: marks the file as ours, so a foreign SQLite database is refused, not altered.
APPLICATION_ID = 0x79676701

MIGRATIONS: tuple[str, ...] = (
    # 1: tasks, their dependencies, and the daemons sharing the queue
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 4),
        status TEXT NOT NULL CHECK (status IN
            ('waiting', 'queued', 'running', 'done', 'failed', 'cancelled', 'blocked')),
        pool TEXT,
        prompt TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
        timeout_s REAL,
        owner INTEGER,
        token INTEGER NOT NULL DEFAULT 0,
        lease_expires_us INTEGER,
        run_after_us INTEGER,
        created_us INTEGER NOT NULL,
        started_us INTEGER,
        finished_us INTEGER,
        result TEXT,
        error TEXT,
        tokens_in INTEGER,
        tokens_out INTEGER,
        external_id TEXT UNIQUE
    );
    CREATE TABLE deps (
        task_id INTEGER NOT NULL,
        depends_on INTEGER NOT NULL,
        PRIMARY KEY (task_id, depends_on)
    ) WITHOUT ROWID;
    CREATE INDEX deps_by_parent ON deps (depends_on, task_id);
    CREATE INDEX tasks_ready ON tasks (kind, priority, id) WHERE status = 'queued';
    CREATE INDEX tasks_running ON tasks (pool, owner) WHERE status = 'running';
    CREATE INDEX tasks_backoff ON tasks (run_after_us)
        WHERE status = 'queued' AND run_after_us IS NOT NULL;
    CREATE INDEX tasks_by_status ON tasks (status, priority, id);
    CREATE TABLE daemons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hostname TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_started_us INTEGER NOT NULL,
        nudge TEXT NOT NULL,
        mode TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        heartbeat_us INTEGER NOT NULL
    );
    """,
    # 2: per-daemon pool state (circuit breakers) and why the last reload was refused
    """
    ALTER TABLE daemons ADD COLUMN config_error TEXT;
    CREATE TABLE breakers (
        daemon INTEGER NOT NULL,
        pool TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half-open')),
        reason TEXT,
        since_us INTEGER NOT NULL,
        PRIMARY KEY (daemon, pool)
    ) WITHOUT ROWID;
    """,
    # 3: a daemon's start in clock ticks since boot, and which boot: no wall-clock step moves
    # them (rows from before keep only pid_started_us, and the old rule)
    """
    ALTER TABLE daemons ADD COLUMN pid_start_ticks INTEGER;
    ALTER TABLE daemons ADD COLUMN boot_id TEXT;
    """,
    # 4: usage: the last answer's time to its first token and from its first token to its last
    """
    ALTER TABLE tasks ADD COLUMN first_token_us INTEGER;
    ALTER TABLE tasks ADD COLUMN generation_us INTEGER;
    """,
    # 5: host telemetry: what each pool's host last said of its load, per daemon (JSON)
    """
    CREATE TABLE host_telemetry (
        daemon INTEGER NOT NULL,
        pool TEXT NOT NULL,
        data TEXT NOT NULL,
        since_us INTEGER NOT NULL,
        PRIMARY KEY (daemon, pool)
    ) WITHOUT ROWID;
    """,
    # 6: one slot limit per pool for every daemon on the queue, who set it and when; and the
    # slots each daemon's own file gives its pools (to show who disagrees)
    """
    CREATE TABLE pool_limits (
        pool TEXT PRIMARY KEY,
        slot_limit INTEGER NOT NULL CHECK (slot_limit >= 1),
        configured INTEGER NOT NULL CHECK (configured >= 1),
        source TEXT NOT NULL,
        set_by INTEGER,
        set_us INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE daemon_slots (
        daemon INTEGER NOT NULL,
        pool TEXT NOT NULL,
        slots INTEGER NOT NULL,
        PRIMARY KEY (daemon, pool)
    ) WITHOUT ROWID;
    """,
)


def statements(script: str) -> list[str]:
    """Splits a migration into statements (our DDL has no semicolons inside literals)."""
    return [part.strip() for part in script.split(";") if part.strip()]
