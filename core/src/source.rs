//! The `Source` trait: what a connector implements to yield records.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;

use crate::descriptor::StreamDescriptor;
use crate::error::SourceError;
use crate::record::Record;
use crate::window::TimeWindow;

/// One slice of a stream read on its own (e.g. one campaign's leads).
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Stable key of the partition (`""` for unpartitioned streams); state is saved per key.
    pub key: String,
    /// Whatever the source needs to read it (e.g. the campaign's id and name).
    pub context: Value,
}

impl Partition {
    /// The single partition of an unpartitioned stream.
    pub fn whole() -> Self {
        Partition { key: String::new(), context: Value::Null }
    }

    /// A partition with a key and no context.
    pub fn keyed(key: impl Into<String>) -> Self {
        Partition { key: key.into(), context: Value::Null }
    }
}

/// How saved state is used in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Resume from saved cursors (the default).
    Incremental,
    /// Ignore saved state and refetch everything from the configured start (`--all`).
    Full,
}

impl RunMode {
    /// Name as recorded in `sync_runs`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Incremental => "incremental",
            RunMode::Full => "full",
        }
    }
}

/// What the engine asks of a source for one stream partition.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The stream.
    pub stream: &'static StreamDescriptor,
    /// The partition.
    pub partition: Partition,
    /// The saved cursor of this partition, if any (always `None` in [`RunMode::Full`]).
    pub state: Option<Value>,
    /// Incremental or full.
    pub mode: RunMode,
    /// The time window bounding date-grained streams this run (`--from/--to/--last`).
    pub window: TimeWindow,
    /// The run's clock: sources compare dates against this rather than calling `now()`.
    pub now: DateTime<Utc>,
}

/// What to do with a partition's saved state once a batch commits.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// Save this cursor.
    Set(Value),
    /// Remove the saved cursor (e.g. a completed scan).
    Clear,
}

/// A page of records from a source, with the checkpoint valid once they are stored.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// The records (may be empty for a checkpoint-only batch).
    pub records: Vec<Record>,
    /// State to save when these records (and all earlier ones) are committed.
    pub checkpoint: Option<Checkpoint>,
}

impl SourceBatch {
    /// A batch of records with no checkpoint.
    pub fn records(records: Vec<Record>) -> Self {
        SourceBatch { records, checkpoint: None }
    }

    /// Attaches a checkpoint.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }
}

/// A connector instance configured for one pipeline.
#[async_trait]
pub trait Source: Send + Sync {
    /// Lists the partitions of a stream for this run (only called for partitioned streams).
    async fn partitions(&self, stream: &'static StreamDescriptor) -> Result<Vec<Partition>, SourceError> {
        let _ = stream;
        Ok(vec![Partition::whole()])
    }

    /// The partitions of a stream partitioned by its parent ([`Partitioning::Parent`]),
    /// from the parent's records committed in this run; no listing of its own, so the
    /// parent is fetched once. The default is one partition per parent record, keyed by
    /// its `id`.
    ///
    /// [`Partitioning::Parent`]: crate::descriptor::Partitioning::Parent
    async fn partitions_from(
        &self,
        stream: &'static StreamDescriptor,
        parents: &[Record],
    ) -> Result<Vec<Partition>, SourceError> {
        let _ = stream;
        Ok(parents
            .iter()
            .filter_map(|r| r.get("id"))
            .map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .map(Partition::keyed)
            .collect())
    }

    /// Reads one partition as a stream of batches. The stream owns what it needs.
    fn read(&self, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>>;

    /// Validates credentials with one cheap call; returns a line for the user.
    async fn check(&self) -> Result<String, SourceError>;

    /// The cursor meaning "synced up to `at`" for a date-grained stream (`--rollback`);
    /// `None` for streams whose state is not a date (snapshots refetch anyway).
    fn cursor_at(&self, stream: &'static StreamDescriptor, at: DateTime<Utc>) -> Option<Value> {
        let _ = (stream, at);
        None
    }

    /// Counters the source keeps (API requests, retries, rate-limit waits), for summaries.
    fn metrics(&self) -> Option<Arc<crate::http::HttpMetrics>> {
        None
    }
}

/// Guards a cursor-paginated scan against a server that loops: a cursor it gave before
/// (A, B, A ...), or a page with the very items of the previous one under a new cursor,
/// stops the stream with an error instead of reading forever or ending early without a
/// word. Every connector that follows cursors checks each page with one.
#[derive(Debug, Default)]
pub struct CursorGuard {
    cursors: std::collections::HashSet<String>,
    last_page: Option<u64>,
}

impl CursorGuard {
    /// Checks a page: the cursor it was asked with (`None` for the first page), its items,
    /// and the cursor it gives for the next page.
    pub fn check<T: serde::Serialize>(
        &mut self,
        endpoint: &str,
        sent: Option<&str>,
        items: &[T],
        next: Option<&str>,
    ) -> Result<(), SourceError> {
        if !items.is_empty() {
            let fp = fingerprint(items);
            if self.last_page == Some(fp) {
                return Err(SourceError::Pagination {
                    endpoint: endpoint.to_owned(),
                    message: format!(
                        "the page after cursor {} repeats the previous page; stopping instead of looping",
                        sent.unwrap_or("(first page)")
                    ),
                });
            }
            self.last_page = Some(fp);
        }
        if let Some(c) = sent {
            self.cursors.insert(c.to_owned());
        }
        if let Some(next) = next
            && self.cursors.contains(next)
        {
            return Err(SourceError::Pagination {
                endpoint: endpoint.to_owned(),
                message: format!("the API returned cursor {next} again; stopping instead of looping"),
            });
        }
        Ok(())
    }
}

/// A page's identity: its length and its first and last items (serializing every item
/// would cost as much as parsing the page).
fn fingerprint<T: serde::Serialize>(items: &[T]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    items.len().hash(&mut h);
    for i in items.first().into_iter().chain(items.last()) {
        serde_json::to_string(i).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}
