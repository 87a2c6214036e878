//! The `Sink` trait and the values that cross it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::descriptor::StreamDescriptor;
use crate::error::SinkError;
use crate::record::Record;
use crate::source::Checkpoint;
use crate::typed::{self, TypedValue};

/// A state change committed together with a batch.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    /// Partition key (`""` when unpartitioned).
    pub partition: String,
    /// What to do with the partition's cursor.
    pub checkpoint: Checkpoint,
}

/// Everything one transaction writes.
#[derive(Debug)]
pub struct WriteBatch {
    /// Pipeline name (state and runs are per pipeline).
    pub pipeline: String,
    /// The run's batch id, stored in `sync_batch_id`.
    pub batch_id: String,
    /// The stream the records belong to.
    pub stream: &'static StreamDescriptor,
    /// Up to 500 records.
    pub records: Vec<SinkRecord>,
    /// The checkpoint valid once these records are stored.
    pub state: Option<StateUpdate>,
    /// `sync_logs` rows produced since the previous write.
    pub logs: Vec<LogRow>,
    /// Count what would change, then roll back.
    pub dry_run: bool,
}

/// A record as sinks take it, prepared by the reader task that produced it.
///
/// Readers run in parallel and the writer is one: serializing the record, converting its
/// typed columns and freeing its parsed tree happen here, off the writer's path. A sink
/// that needs the record as a map again (to merge it into a stored row) calls
/// [`SinkRecord::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// The record as canonical JSON: compact, object keys sorted (the order of
    /// `serde_json::Map`). Equal records have equal text.
    pub json: String,
    /// The key values in key order, or why the record has none.
    pub key: Result<Vec<TypedValue>, String>,
    /// The typed non-key columns in descriptor order (`None` where the record lacks the
    /// path), or why a value does not fit its column.
    pub columns: Result<Vec<Option<TypedValue>>, String>,
}

impl SinkRecord {
    /// Prepares `record` for `stream`'s table.
    pub fn new(stream: &StreamDescriptor, record: Record) -> SinkRecord {
        let key = typed::key_of(stream, &record);
        let json = canonical_text(&record);
        // One rule for every sink: a NUL character cannot be stored by Postgres (text or
        // jsonb), so a record holding one is refused alone, everywhere, with this reason.
        let columns = if has_nul(&json) { Err(NUL_REASON.to_owned()) } else { typed::column_values(stream, &record) };
        SinkRecord { json, key, columns }
    }

    /// Whether a string of the record (or a field name) holds a NUL character.
    pub fn has_nul(&self) -> bool {
        has_nul(&self.json)
    }

    /// The record as a map again.
    pub fn record(&self) -> Record {
        // The text was serialized from a map, so it parses back to one.
        serde_json::from_str(&self.json).unwrap_or_default()
    }

    /// Why the sink must refuse the record, if it must: no key, or a value that does not
    /// fit its column.
    pub fn refusal(&self) -> Option<RecordFailure> {
        match (&self.key, &self.columns) {
            (Err(reason), _) => Some(RecordFailure { key: "?".into(), reason: reason.clone() }),
            (Ok(key), Err(reason)) => Some(RecordFailure { key: typed::key_text(key), reason: reason.clone() }),
            (Ok(_), Ok(_)) => None,
        }
    }
}

/// Why a record with a NUL character is refused.
pub const NUL_REASON: &str =
    "a string holds a NUL character (\\u0000), which Postgres cannot store; ferry refuses such a record in every sink";

/// Whether canonical JSON text escapes a NUL (`\u0000` after an odd number of
/// backslashes; an even number is a literal backslash followed by `u0000`).
fn has_nul(json: &str) -> bool {
    if !json.contains("u0000") {
        return false;
    }
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(at) = json[from..].find("u0000").map(|i| from + i) {
        let backslashes = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 5;
    }
    false
}

/// Serializes a record into a per-thread buffer that keeps its capacity, then copies the
/// text out once: a growing `Vec` would reallocate and copy several times per record.
fn canonical_text(record: &Record) -> String {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        serde_json::to_writer(&mut *buffer, record).expect("a map with string keys always serializes");
        String::from_utf8(buffer.clone()).expect("serde_json writes UTF-8")
    })
}

/// A record the sink refused, with its key where it had one.
#[derive(Debug, Clone, Serialize)]
pub struct RecordFailure {
    /// The primary key as text (`?` when the key itself was the problem).
    pub key: String,
    /// What was wrong.
    pub reason: String,
}

/// Per-write counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WriteStats {
    /// Rows created.
    pub inserted: u64,
    /// Rows whose merged JSON changed.
    pub updated: u64,
    /// Rows seen again with nothing new.
    pub unchanged: u64,
    /// Records refused (bad key, wrong type for a typed column).
    pub failed: u64,
}

impl WriteStats {
    /// Adds another write's counts.
    pub fn add(&mut self, other: &WriteStats) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.failed += other.failed;
    }
}

/// The result of one write.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Counts.
    pub stats: WriteStats,
    /// The refused records.
    pub failures: Vec<RecordFailure>,
}

/// A `sync_logs` row.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    /// Run it belongs to.
    pub batch_id: String,
    /// `INFO`, `WARN`, `ERROR`.
    pub level: String,
    /// What part of the work (`START`, `END`, `STREAM_END`, `fetch`, `write`, ...).
    pub step: String,
    /// The message.
    pub message: String,
    /// Structured context.
    pub meta: Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// A saved cursor.
#[derive(Debug, Clone, Serialize)]
pub struct StateEntry {
    /// Stream name.
    pub stream: String,
    /// Partition key.
    pub partition: String,
    /// The cursor.
    pub cursor: Value,
    /// Run that saved it.
    pub batch_id: String,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// The `sync_runs` row written when a run starts.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// New batch id (UUID v7).
    pub batch_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// `incremental`, `full`, `dry-run`, ...
    pub mode: String,
    /// The run's arguments (streams, window, flags).
    pub arguments: Value,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// A lock whose heartbeat is older than this is stale and may be taken over.
    pub stale_after: Duration,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// Batch id.
    pub batch_id: String,
    /// `ok`, `partial`, `failed`, `interrupted`, `timeout`.
    pub status: String,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// Per-stream statistics as JSON.
    pub stats: Value,
}

/// A `sync_runs` row as read back.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Batch id.
    pub batch_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Mode.
    pub mode: String,
    /// Arguments.
    pub arguments: Value,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, once finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Status (`running` while it runs).
    pub status: String,
    /// Per-stream statistics.
    pub stats: Value,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// What `begin_run` found.
#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    /// The run holds the lock.
    Acquired,
    /// The run holds the lock after taking over a stale one from `batch_id`.
    TookOver {
        /// The stale run.
        batch_id: String,
        /// Its last heartbeat.
        heartbeat_at: DateTime<Utc>,
    },
}

/// A destination for records, state, run history and monitoring logs.
///
/// One sink instance serves one run; the engine calls it from a single task.
#[async_trait]
pub trait Sink: Send {
    /// Applies the framework migrations (`sync_logs`, `sync_runs`, `sync_state`).
    async fn init(&mut self) -> Result<(), SinkError>;

    /// Creates or migrates the tables of these streams (adds new typed columns in place).
    async fn prepare(&mut self, streams: &[&'static StreamDescriptor]) -> Result<(), SinkError>;

    /// Where the data goes, for people (a file's absolute path, a server and schema; never
    /// a password).
    fn location(&self) -> String {
        String::new()
    }

    /// What `prepare` would change, one line each, changing nothing (`ferry migrate --dry-run`).
    async fn describe_plan(&mut self, streams: &[&'static StreamDescriptor]) -> Result<Vec<String>, SinkError> {
        let _ = streams;
        Ok(Vec::new())
    }

    /// Takes the pipeline's run lock and records the run as `running`.
    /// Fails with [`SinkError::Locked`] while another live run holds it.
    async fn begin_run(&mut self, run: &RunStart) -> Result<LockOutcome, SinkError>;

    /// Refreshes the run's heartbeat.
    async fn heartbeat(&mut self, batch_id: &str) -> Result<(), SinkError>;

    /// Records the run's end and releases the lock, with the last log rows.
    async fn end_run(&mut self, end: &RunEnd, logs: Vec<LogRow>) -> Result<(), SinkError>;

    /// Saved cursors of a pipeline.
    async fn load_state(&mut self, pipeline: &str) -> Result<Vec<StateEntry>, SinkError>;

    /// Stores records, their checkpoint and log rows in one transaction.
    async fn write(&mut self, batch: WriteBatch) -> Result<WriteOutcome, SinkError>;

    /// Stores log rows on their own.
    async fn write_logs(&mut self, logs: Vec<LogRow>) -> Result<(), SinkError>;

    /// Replaces saved cursors (`--rollback`, `state reset`): for each entry, `None` clears.
    /// Returns how many cursors changed.
    async fn set_state(
        &mut self,
        pipeline: &str,
        batch_id: &str,
        entries: Vec<(String, String, Option<Value>)>,
    ) -> Result<u64, SinkError>;

    /// Recent runs, newest first.
    async fn recent_runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, SinkError>;

    /// Recent `sync_logs` rows of `pipeline` at WARN or ERROR, newest first, optionally
    /// for one run. Other pipelines sharing the database are never shown.
    async fn recent_errors(
        &mut self,
        pipeline: &str,
        batch_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogRow>, SinkError>;

    /// Deletes `pipeline`'s `sync_logs` rows older than `before`; returns how many.
    async fn prune_logs(&mut self, pipeline: &str, before: DateTime<Utc>) -> Result<u64, SinkError>;
}

/// What a command may do to the sink's storage, decided when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create, migrate and write (`sync`, `init`, `migrate`, `state reset`, `logs prune`).
    ReadWrite,
    /// Read what exists; create, migrate and change nothing, and say so when the storage
    /// is missing (`status`, `state show`, `migrate --dry-run`).
    ReadOnly,
    /// A dry run: everything a sync does, counted, with the storage left as it was
    /// (SQLite works on a scratch copy; nothing is created where nothing was).
    DryRun,
}

/// This process's host name and id, recorded with the run lock.
pub fn this_process() -> (String, u32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    (host, std::process::id())
}

/// Whether the lock holder `pid` on `host` is still running: `Some(false)` only when it
/// certainly is not (same host, no such process); `None` when this cannot be told, and
/// the heartbeat alone decides.
pub fn holder_alive(host: Option<&str>, pid: Option<u32>) -> Option<bool> {
    let (me, _) = this_process();
    match (host, pid) {
        (Some(h), Some(pid)) if h == me && cfg!(target_os = "linux") => {
            Some(std::path::Path::new(&format!("/proc/{pid}")).exists())
        }
        _ => None,
    }
}
