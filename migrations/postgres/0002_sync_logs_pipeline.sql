-- sync_logs rows carry their pipeline, so pipelines sharing a database never see or prune
-- each other's rows. Rows written before this migration take it from their run.
ALTER TABLE sync_logs ADD COLUMN IF NOT EXISTS pipeline TEXT;
UPDATE sync_logs l SET pipeline = r.pipeline FROM sync_runs r WHERE r.batch_id = l.batch_id AND l.pipeline IS NULL;
CREATE INDEX IF NOT EXISTS idx_sync_logs_pipeline ON sync_logs (pipeline, created_at);
