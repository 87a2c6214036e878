-- sync_logs rows carry their pipeline, so pipelines sharing a database never see or prune
-- each other's rows. Rows written before this migration take it from their run.
ALTER TABLE sync_logs ADD COLUMN pipeline TEXT;
UPDATE sync_logs SET pipeline = (SELECT r.pipeline FROM sync_runs r WHERE r.batch_id = sync_logs.batch_id)
WHERE pipeline IS NULL;
CREATE INDEX IF NOT EXISTS idx_sync_logs_pipeline ON sync_logs (pipeline, created_at);
