-- ferry's own tables (SQLite). Applied once, in order, recorded in ferry_migrations.

-- Monitoring log: warnings, errors, run START / END / TIMEOUT, each stream's END summary.
CREATE TABLE IF NOT EXISTS sync_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    level TEXT NOT NULL,
    step TEXT NOT NULL,
    message TEXT NOT NULL,
    meta TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_sync_logs_batch_id ON sync_logs (batch_id);
CREATE INDEX IF NOT EXISTS idx_sync_logs_level ON sync_logs (level);
CREATE INDEX IF NOT EXISTS idx_sync_logs_created_at ON sync_logs (created_at);

-- One row per run; the row with status 'running' and a fresh heartbeat is the run lock.
CREATE TABLE IF NOT EXISTS sync_runs (
    batch_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    mode TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '{}',
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}',
    heartbeat_at TEXT NOT NULL,
    host TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS idx_sync_runs_pipeline_started ON sync_runs (pipeline, started_at DESC);
CREATE INDEX IF NOT EXISTS idx_sync_runs_status ON sync_runs (pipeline, status);

-- Saved cursors, per pipeline, stream and partition ('' when unpartitioned).
CREATE TABLE IF NOT EXISTS sync_state (
    pipeline TEXT NOT NULL,
    stream TEXT NOT NULL,
    partition TEXT NOT NULL DEFAULT '',
    cursor TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, stream, partition)
);
