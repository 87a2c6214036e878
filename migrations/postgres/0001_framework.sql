-- ferry's own tables (Postgres), created in the pipeline's schema (search_path).

CREATE TABLE IF NOT EXISTS sync_logs (
    id BIGSERIAL PRIMARY KEY,
    batch_id TEXT NOT NULL,
    level TEXT NOT NULL,
    step TEXT NOT NULL,
    message TEXT NOT NULL,
    meta JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_sync_logs_batch_id ON sync_logs (batch_id);
CREATE INDEX IF NOT EXISTS idx_sync_logs_level ON sync_logs (level);
CREATE INDEX IF NOT EXISTS idx_sync_logs_created_at ON sync_logs (created_at);

CREATE TABLE IF NOT EXISTS sync_runs (
    batch_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    mode TEXT NOT NULL,
    arguments JSONB NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status TEXT NOT NULL,
    stats JSONB NOT NULL DEFAULT '{}',
    heartbeat_at TIMESTAMPTZ NOT NULL,
    host TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS idx_sync_runs_pipeline_started ON sync_runs (pipeline, started_at DESC);

CREATE TABLE IF NOT EXISTS sync_state (
    pipeline TEXT NOT NULL,
    stream TEXT NOT NULL,
    partition TEXT NOT NULL DEFAULT '',
    cursor JSONB NOT NULL,
    batch_id TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pipeline, stream, partition)
);
