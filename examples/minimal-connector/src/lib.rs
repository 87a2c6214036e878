//! A minimal ferry connector, the one CONNECTORS.md walks through: `jsonl_file` reads
//! records from a JSON Lines file. One stream, `lines`, keyed by each record's `id`,
//! incremental by byte offset: a run reads what was appended since the last one.
//!
//! Everything a connector needs comes from ferry-core: the descriptors, the `Source`
//! trait, typed settings, errors, and `inventory` for registration.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use ferry_core::config::{PipelineConfig, Settings};
use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};
use ferry_core::error::{ConfigError, SourceError};
use ferry_core::futures::stream::{self, BoxStream, StreamExt};
use ferry_core::registry::ConnectorDescriptor;
use ferry_core::source::{Checkpoint, ReadRequest, RunMode, Source, SourceBatch};
use serde::Deserialize;
use serde_json::{Value, json};

/// Step 1: typed settings, unknown keys rejected (with their line).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The JSON Lines file.
    path: PathBuf,
    /// Records per page (and per checkpoint).
    #[serde(default = "default_page")]
    page_size: usize,
}

fn default_page() -> usize {
    500
}

// Step 2: register the connector and its streams.
ferry_core::inventory::submit! {
    ConnectorDescriptor {
        name: "jsonl_file",
        description: "records from a JSON Lines file, incremental by byte offset (example connector)",
        build,
        default_pipeline: None,
    }
}

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "jsonl_file",
        name: "lines",
        table: "jsonl_file_lines",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Text, "id"),
            Column::new("kind", SqlType::Text, "kind"),
            Column::new("at", SqlType::Timestamp, "at"),
        ],
        mode: SyncMode::Incremental { cursor_field: "byte offset" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        // The cursor is a byte offset, not a date: ferry refuses --rollback, --from/--to
        // and --last for this stream rather than ignoring them.
        time_flags: TimeFlagSupport::NONE,
        description: "one record per line",
        legacy_key: &[],
    }
}

fn build(settings: &Settings, _pipeline: &PipelineConfig) -> Result<Arc<dyn Source>, ConfigError> {
    let config: Config = settings.parse()?;
    if config.page_size == 0 {
        return Err(ConfigError::Other("jsonl_file: page_size must be at least 1".into()));
    }
    Ok(Arc::new(JsonlFile { config: Arc::new(config) }))
}

/// Step 3: the source.
struct JsonlFile {
    config: Arc<Config>,
}

/// Reads up to `page` complete lines from `offset`; returns the records and the offset
/// after the last complete line. A torn last line (still being written) is left for later.
fn read_page(config: &Config, offset: u64) -> Result<(Vec<ferry_core::record::Record>, u64), SourceError> {
    let err = |e: std::io::Error| SourceError::Other(format!("jsonl_file: {}: {e}", config.path.display()));
    let mut file = std::fs::File::open(&config.path).map_err(err)?;
    file.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut reader = BufReader::new(file);
    let (mut records, mut at) = (Vec::new(), offset);
    let mut line = String::new();
    while records.len() < config.page_size {
        line.clear();
        let n = reader.read_line(&mut line).map_err(err)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        let lineno_offset = at;
        at += n as u64;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => records.push(m),
            // A bad line must not stop the stream: keep it, keyed by its offset, so the
            // sink stores it (and the user can see it) rather than losing it silently.
            _ => records.push(
                json!({"id": format!("bad-line@{lineno_offset}"), "kind": "unparsable", "text": line.trim_end()})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }
    Ok((records, at))
}

#[ferry_core::async_trait]
impl Source for JsonlFile {
    fn read(&self, request: ReadRequest) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let config = self.config.clone();
        let saved = match request.mode {
            RunMode::Full => 0,
            RunMode::Incremental => {
                request.state.as_ref().and_then(|s| s.get("offset")).and_then(Value::as_u64).unwrap_or(0)
            }
        };
        // A file shorter than the saved offset was replaced: read it from the start.
        let len = std::fs::metadata(&config.path).map(|m| m.len()).unwrap_or(0);
        let start = if saved > len { 0 } else { saved };
        stream::unfold(Some(start), move |offset| {
            let config = config.clone();
            async move {
                let offset = offset?;
                // File I/O off the async threads.
                let page = tokio::task::spawn_blocking(move || read_page(&config, offset)).await;
                let (records, next) = match page {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return Some((Err(e), None)),
                    Err(e) => return Some((Err(SourceError::Other(format!("jsonl_file: reader failed: {e}"))), None)),
                };
                if records.is_empty() && next == offset {
                    return None;
                }
                // The checkpoint is the offset after this page: saved with its records.
                let batch = SourceBatch::records(records).with_checkpoint(Checkpoint::Set(json!({"offset": next})));
                Some((Ok(batch), Some(next)))
            }
        })
        .boxed()
    }

    async fn check(&self) -> Result<String, SourceError> {
        let meta = std::fs::metadata(&self.config.path)
            .map_err(|e| SourceError::Other(format!("jsonl_file: {}: {e}", self.config.path.display())))?;
        Ok(format!("{} is readable ({} bytes)", self.config.path.display(), meta.len()))
    }
}
