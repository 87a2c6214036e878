//! The JSONL sink: one append-only file per stream.
//!
//! Each record is appended as one line `{"sync_batch_id", "synced_at", "key", "record"}`;
//! nothing is merged or rewritten, so every record counts as `inserted`. State, runs and
//! monitoring logs live beside the data (`_ferry_state.json`, `_ferry_runs.jsonl`,
//! `_ferry_logs.jsonl`). A batch's lines are flushed and synced before its checkpoint is
//! replaced atomically (write + rename), so a crash can repeat the last batch on the next
//! run (at-least-once) but never skips one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_core::async_trait;
use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::StreamDescriptor;
use ferry_core::error::SinkError;
use ferry_core::registry::SinkDescriptor;
use ferry_core::sink::{
    Access, LockOutcome, LogRow, RunEnd, RunRecord, RunStart, Sink, StateEntry, WriteBatch, WriteOutcome,
};
use ferry_core::source::Checkpoint;
use ferry_core::typed;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sqlite::{now_text, ts_opt, ts_text};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlSettings {
    /// Directory of the files (default `data/<pipeline>-jsonl`).
    #[serde(default)]
    dir: Option<PathBuf>,
}

/// The JSONL sink.
pub struct JsonlSink {
    dir: PathBuf,
    lock: Option<File>,
}

fn io(context: &str, e: std::io::Error) -> SinkError {
    SinkError::Database { context: context.to_owned(), message: e.to_string() }
}

fn open(settings: &Settings, pipeline: &PipelineConfig, access: Access) -> Result<Box<dyn Sink>, SinkError> {
    let s: JsonlSettings = settings.parse()?;
    let dir = s.dir.unwrap_or_else(|| PathBuf::from(format!("data/{}-jsonl", pipeline.name)));
    match access {
        Access::ReadWrite => Ok(Box::new(JsonlSink::open(&dir)?)),
        // Reading and dry runs create nothing: a missing directory reads as empty (the
        // engine writes nothing in a dry run, and this sink's batches count and return).
        Access::ReadOnly | Access::DryRun => Ok(Box::new(JsonlSink { dir, lock: None })),
    }
}

ferry_core::inventory::submit! {
    SinkDescriptor {
        name: "jsonl",
        description: "append-only JSON Lines, one file per stream: dir = \"data/NAME-jsonl\"",
        open,
    }
}

/// Truncates a file back to its last newline: a line torn by a full disk or a kill was
/// never acknowledged (its batch's state was not saved), so the next append must not
/// glue a record onto it.
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk[..n])?;
        if first && chunk[n - 1] == b'\n' {
            return Ok(());
        }
        first = false;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            tracing::warn!(step = "write", file = %path.display(), bytes = len - keep, "cut a torn last line (a write that never completed)");
            return f.set_len(keep);
        }
        end = start;
    }
    tracing::warn!(step = "write", file = %path.display(), bytes = len, "cut a torn first line (a write that never completed)");
    f.set_len(0)
}

type StateMap = BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>;

impl JsonlSink {
    /// The batch ids of `pipeline`'s runs: its rows in the shared log file.
    fn batches_of(&self, pipeline: &str) -> Result<std::collections::HashSet<String>, SinkError> {
        Ok(self.runs()?.into_iter().filter(|r| r.pipeline == pipeline).map(|r| r.batch_id).collect())
    }

    /// Opens (creating) the directory.
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            SinkError::Open(format!("cannot create JSONL directory {}: {e}; check it is writable", dir.display()))
        })?;
        Ok(JsonlSink { dir: dir.to_owned(), lock: None })
    }

    /// Appends lines already encoded as JSON (one object each, no newline).
    fn append(&self, name: &str, lines: &[String]) -> Result<(), SinkError> {
        if lines.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(name);
        let mut f =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io("opening JSONL file", e))?;
        cut_torn_tail(&path).map_err(|e| io("repairing a torn last line", e))?;
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf).map_err(|e| io("appending JSONL", e))?;
        f.sync_data().map_err(|e| io("syncing JSONL", e))
    }

    fn read_lines(&self, name: &str) -> Result<Vec<Value>, SinkError> {
        let f = match File::open(self.dir.join(name)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading JSONL", e)),
        };
        // A torn last line (crash mid-append) is skipped.
        Ok(BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect())
    }

    fn state(&self) -> Result<StateMap, SinkError> {
        match std::fs::read(self.dir.join("_ferry_state.json")) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| SinkError::Schema(format!("_ferry_state.json is damaged: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateMap::new()),
            Err(e) => Err(io("reading state", e)),
        }
    }

    fn save_state(&self, state: &StateMap) -> Result<(), SinkError> {
        let tmp = self.dir.join("_ferry_state.json.tmp");
        let mut f = File::create(&tmp).map_err(|e| io("writing state", e))?;
        f.write_all(&serde_json::to_vec_pretty(state).unwrap_or_default()).map_err(|e| io("writing state", e))?;
        f.sync_all().map_err(|e| io("writing state", e))?;
        std::fs::rename(&tmp, self.dir.join("_ferry_state.json")).map_err(|e| io("writing state", e))
    }

    fn runs(&self) -> Result<Vec<RunRecord>, SinkError> {
        // Later lines of the same batch id supersede earlier ones.
        let mut by_id: BTreeMap<String, RunRecord> = BTreeMap::new();
        for v in self.read_lines("_ferry_runs.jsonl")? {
            let get = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let ts = |k: &str| v.get(k).and_then(Value::as_str).and_then(ts_opt);
            let r = RunRecord {
                batch_id: get("batch_id"),
                pipeline: get("pipeline"),
                mode: get("mode"),
                arguments: v.get("arguments").cloned().unwrap_or(Value::Null),
                started_at: ts("started_at").unwrap_or_default(),
                finished_at: ts("finished_at"),
                status: get("status"),
                stats: v.get("stats").cloned().unwrap_or(Value::Null),
                heartbeat_at: ts("heartbeat_at").unwrap_or_default(),
            };
            by_id.insert(r.batch_id.clone(), r);
        }
        Ok(by_id.into_values().collect())
    }
}

fn run_line(r: &RunRecord) -> Value {
    json!({
        "batch_id": r.batch_id, "pipeline": r.pipeline, "mode": r.mode, "arguments": r.arguments,
        "started_at": ts_text(r.started_at), "finished_at": r.finished_at.map(ts_text),
        "status": r.status, "stats": r.stats, "heartbeat_at": ts_text(r.heartbeat_at),
    })
}

fn log_line(l: &LogRow) -> Value {
    json!({"batch_id": l.batch_id, "level": l.level, "step": l.step, "message": l.message, "meta": l.meta, "created_at": ts_text(l.created_at)})
}

#[async_trait]
impl Sink for JsonlSink {
    fn location(&self) -> String {
        std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()).display().to_string()
    }

    async fn init(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn prepare(&mut self, _streams: &[&'static StreamDescriptor]) -> Result<(), SinkError> {
        Ok(())
    }

    async fn begin_run(&mut self, run: &RunStart) -> Result<LockOutcome, SinkError> {
        let path = self.dir.join("_ferry.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening the lock file", e))?;
        if file.try_lock().is_err() {
            let holder = self.runs()?.into_iter().rfind(|r| r.status == "running");
            let (batch_id, started_at) = holder
                .map(|r| (r.batch_id, ts_text(r.started_at)))
                .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
            return Err(SinkError::Locked { pipeline: run.pipeline.clone(), batch_id, started_at });
        }
        // The OS released any lock of a dead process, so 'running' rows left behind are stale.
        let mut outcome = LockOutcome::Acquired;
        for mut r in self.runs()?.into_iter().filter(|r| r.status == "running" && r.pipeline == run.pipeline) {
            outcome = LockOutcome::TookOver { batch_id: r.batch_id.clone(), heartbeat_at: r.heartbeat_at };
            r.status = "abandoned".into();
            self.append("_ferry_runs.jsonl", &[run_line(&r).to_string()])?;
        }
        self.lock = Some(file);
        let rec = RunRecord {
            batch_id: run.batch_id.clone(),
            pipeline: run.pipeline.clone(),
            mode: run.mode.clone(),
            arguments: run.arguments.clone(),
            started_at: run.started_at,
            finished_at: None,
            status: "running".into(),
            stats: json!({}),
            heartbeat_at: Utc::now(),
        };
        self.append("_ferry_runs.jsonl", &[run_line(&rec).to_string()])?;
        Ok(outcome)
    }

    async fn heartbeat(&mut self, _batch_id: &str) -> Result<(), SinkError> {
        // The OS file lock lives exactly as long as the process; no heartbeat needed.
        Ok(())
    }

    async fn end_run(&mut self, end: &RunEnd, logs: Vec<LogRow>) -> Result<(), SinkError> {
        self.write_logs(logs).await?;
        if let Some(mut r) = self.runs()?.into_iter().find(|r| r.batch_id == end.batch_id) {
            r.status = end.status.clone();
            r.finished_at = Some(end.finished_at);
            r.stats = end.stats.clone();
            r.heartbeat_at = end.finished_at;
            self.append("_ferry_runs.jsonl", &[run_line(&r).to_string()])?;
        }
        self.lock = None;
        Ok(())
    }

    async fn load_state(&mut self, pipeline: &str) -> Result<Vec<StateEntry>, SinkError> {
        let state = self.state()?;
        let mut out = Vec::new();
        for (stream, parts) in state.get(pipeline).cloned().unwrap_or_default() {
            for (partition, entry) in parts {
                out.push(StateEntry {
                    stream: stream.clone(),
                    partition,
                    cursor: entry.get("cursor").cloned().unwrap_or(Value::Null),
                    batch_id: entry.get("batch_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    updated_at: entry.get("updated_at").and_then(Value::as_str).and_then(ts_opt).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn write(&mut self, batch: WriteBatch) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let now = now_text();
        let mut lines = Vec::with_capacity(batch.records.len());
        // Fields in sorted order, like every other object ferry writes; the record's text
        // is already canonical JSON.
        let (batch_id, synced_at) = (Value::from(batch.batch_id.as_str()), Value::from(now.as_str()));
        for record in batch.records {
            // The same records as the SQL sinks refuse, with the same reasons: no key, a
            // value its typed column cannot hold, or a NUL character.
            if let Some(failure) = record.refusal() {
                outcome.stats.failed += 1;
                outcome.failures.push(failure);
                continue;
            }
            if let Ok(key) = &record.key {
                outcome.stats.inserted += 1;
                lines.push(format!(
                    "{{\"key\":{},\"record\":{},\"sync_batch_id\":{batch_id},\"synced_at\":{synced_at}}}",
                    Value::from(typed::key_text(key)),
                    record.json
                ));
            }
        }
        if batch.dry_run {
            return Ok(outcome);
        }
        self.append(&format!("{}.jsonl", batch.stream.table), &lines)?;
        self.write_logs(batch.logs).await?;
        if let Some(update) = batch.state {
            let mut state = self.state()?;
            let parts =
                state.entry(batch.pipeline.clone()).or_default().entry(batch.stream.name.to_owned()).or_default();
            match update.checkpoint {
                Checkpoint::Set(cursor) => {
                    parts.insert(
                        update.partition,
                        json!({"cursor": cursor, "batch_id": batch.batch_id, "updated_at": now}),
                    );
                }
                Checkpoint::Clear => {
                    parts.remove(&update.partition);
                }
            }
            self.save_state(&state)?;
        }
        Ok(outcome)
    }

    async fn write_logs(&mut self, logs: Vec<LogRow>) -> Result<(), SinkError> {
        let lines: Vec<String> = logs.iter().map(|l| log_line(l).to_string()).collect();
        self.append("_ferry_logs.jsonl", &lines)
    }

    async fn set_state(
        &mut self,
        pipeline: &str,
        batch_id: &str,
        entries: Vec<(String, String, Option<Value>)>,
    ) -> Result<u64, SinkError> {
        let mut state = self.state()?;
        let mut changed = 0;
        let streams = state.entry(pipeline.to_owned()).or_default();
        for (stream, partition, cursor) in entries {
            let parts = streams.entry(stream).or_default();
            let keys: Vec<String> = if partition == "*" { parts.keys().cloned().collect() } else { vec![partition] };
            for k in keys {
                match &cursor {
                    None => {
                        if parts.remove(&k).is_some() {
                            changed += 1;
                        }
                    }
                    Some(c) => {
                        parts.insert(k, json!({"cursor": c, "batch_id": batch_id, "updated_at": now_text()}));
                        changed += 1;
                    }
                }
            }
        }
        self.save_state(&state)?;
        Ok(changed)
    }

    async fn recent_runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        let mut runs: Vec<RunRecord> = self.runs()?.into_iter().filter(|r| r.pipeline == pipeline).collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn recent_errors(
        &mut self,
        pipeline: &str,
        batch_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogRow>, SinkError> {
        let runs = self.batches_of(pipeline)?;
        let mut rows: Vec<LogRow> = self
            .read_lines("_ferry_logs.jsonl")?
            .into_iter()
            .filter_map(|v| {
                let get = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                let level = get("level");
                (level == "WARN" || level == "ERROR").then(|| LogRow {
                    batch_id: get("batch_id"),
                    level,
                    step: get("step"),
                    message: get("message"),
                    meta: v.get("meta").cloned().unwrap_or(Value::Null),
                    created_at: ts_opt(&get("created_at")).unwrap_or_default(),
                })
            })
            .filter(|r| batch_id.is_none_or(|b| r.batch_id == b) && runs.contains(&r.batch_id))
            .collect();
        rows.reverse();
        rows.truncate(limit);
        Ok(rows)
    }

    async fn prune_logs(&mut self, pipeline: &str, before: DateTime<Utc>) -> Result<u64, SinkError> {
        let runs = self.batches_of(pipeline)?;
        let lines = self.read_lines("_ferry_logs.jsonl")?;
        let cutoff = ts_text(before);
        let (keep, drop): (Vec<Value>, Vec<Value>) = lines.into_iter().partition(|v| {
            let ours = v.get("batch_id").and_then(Value::as_str).is_some_and(|b| runs.contains(b));
            !ours || v.get("created_at").and_then(Value::as_str).is_none_or(|c| c >= cutoff.as_str())
        });
        if drop.is_empty() {
            return Ok(0);
        }
        let tmp = self.dir.join("_ferry_logs.jsonl.tmp");
        let mut f = File::create(&tmp).map_err(|e| io("pruning logs", e))?;
        for l in &keep {
            writeln!(f, "{l}").map_err(|e| io("pruning logs", e))?;
        }
        f.sync_all().map_err(|e| io("pruning logs", e))?;
        std::fs::rename(&tmp, self.dir.join("_ferry_logs.jsonl")).map_err(|e| io("pruning logs", e))?;
        Ok(drop.len() as u64)
    }
}
