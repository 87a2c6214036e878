//! Logging: one event model, three tiers.
//!
//! Every `tracing` event becomes a [`LogEvent`] (batch id, time, level, step, message,
//! meta, connector, stream) and goes to: the console (human lines), `logs/YYYY-MM-DD.jsonl`
//! (every event), `logs/errors/YYYY-MM-DD.log` (errors only), and, for the events that
//! matter to monitoring, the `sync_logs` table (through [`drain_db_rows`], written by the
//! engine inside its transactions). Known secrets are redacted in every tier.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::sink::LogRow;

/// Steps whose events always reach `sync_logs` (besides warnings and errors).
pub mod step {
    /// A run started.
    pub const START: &str = "START";
    /// A run ended.
    pub const END: &str = "END";
    /// A run hit its time limit.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// A stream finished (its summary).
    pub const STREAM_END: &str = "STREAM_END";
    /// A migration of the database.
    pub const MIGRATE: &str = "MIGRATE";
}

const DB_STEPS: &[&str] = &[step::START, step::END, step::TIMEOUT, step::STREAM_END, step::MIGRATE];

/// One event, as written to the JSONL file.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    /// The run (empty outside runs).
    pub batch_id: String,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: &'static str,
    /// What part of the work.
    pub step: String,
    /// The message.
    pub message: String,
    /// Other fields.
    pub meta: Map<String, Value>,
    /// Connector, where relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Stream, where relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

static BATCH_ID: RwLock<String> = RwLock::new(String::new());
static DB_ROWS: Mutex<Vec<LogRow>> = Mutex::new(Vec::new());

/// Sets the batch id stamped on every event from now on.
pub fn set_batch_id(id: &str) {
    *BATCH_ID.write().unwrap_or_else(|e| e.into_inner()) = id.to_owned();
}

static PIPELINE: RwLock<String> = RwLock::new(String::new());

/// Sets the pipeline named on every line of the errors file from now on.
pub fn set_pipeline(name: &str) {
    *PIPELINE.write().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
}

fn batch_id() -> String {
    BATCH_ID.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Takes the `sync_logs` rows collected since the last call.
pub fn drain_db_rows() -> Vec<LogRow> {
    std::mem::take(&mut *DB_ROWS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    step: Option<String>,
    connector: Option<String>,
    stream: Option<String>,
    meta: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match field.name() {
            "message" => self.message = text(),
            "step" => self.step = Some(text()),
            "connector" => self.connector = Some(text()),
            "stream" => self.stream = Some(text()),
            name => {
                self.meta.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(crate::secret::redact(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(crate::secret::redact(&format!("{value:?}"))));
    }
}

fn build_event(event: &Event<'_>) -> LogEvent {
    let mut v = FieldVisitor::default();
    event.record(&mut v);
    LogEvent {
        batch_id: batch_id(),
        timestamp: Utc::now(),
        level: level_name(event.metadata().level()),
        step: v.step.unwrap_or_else(|| "run".to_owned()),
        message: v.message,
        meta: v.meta,
        connector: v.connector,
        stream: v.stream,
    }
}

/// A human line: `HH:MM:SS LEVEL [stream] message k=v ...`.
pub fn human_line(e: &LogEvent, with_date: bool) -> String {
    let mut line = String::new();
    let ts = if with_date {
        e.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
    } else {
        e.timestamp.format("%H:%M:%S").to_string()
    };
    let _ = write!(line, "{ts} {:<5} ", e.level);
    if let Some(s) = &e.stream {
        let _ = write!(line, "[{s}] ");
    }
    line.push_str(&e.message);
    for (k, v) in &e.meta {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(line, " {k}={}", logfmt_value(&text));
    }
    line
}

/// A logfmt value: bare when it has no space, quote or `=`, else quoted with `"` and `\`
/// escaped, so `key=value` pairs split unambiguously.
fn logfmt_value(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    std::borrow::Cow::Owned(out)
}

/// Where console lines go instead of stderr while something else owns the terminal.
type ConsoleRoute = Box<dyn Fn(&str) + Send + Sync>;

static CONSOLE_ROUTE: std::sync::RwLock<Option<ConsoleRoute>> = std::sync::RwLock::new(None);

/// Sends console lines through `route` (a progress display prints them above its bars, so
/// no warning is drawn over); `None` writes them to stderr again.
pub fn route_console(route: Option<ConsoleRoute>) {
    *CONSOLE_ROUTE.write().unwrap_or_else(|e| e.into_inner()) = route;
}

/// Writes one console line. A closed stderr (`ferry sync | head`) drops it: console
/// output never stops a sync.
fn console_line(line: &str) {
    if let Some(route) = CONSOLE_ROUTE.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        route(line);
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Where the three tiers go.
struct TierLayer {
    console: bool,
    jsonl: Option<Mutex<NonBlocking>>,
    errors: Option<Mutex<ErrorsFile>>,
    console_level: LevelFilter,
}

impl<S: Subscriber> Layer<S> for TierLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let e = build_event(event);
        if self.console && self.console_level >= level {
            console_line(&human_line(&e, false));
        }
        if let Some(w) = &self.jsonl
            && let Ok(mut line) = serde_json::to_vec(&e)
        {
            line.push(b'\n');
            let _ = w.lock().unwrap_or_else(|e| e.into_inner()).write_all(&line);
        }
        if level == Level::ERROR
            && let Some(w) = &self.errors
        {
            // Each line names its pipeline and run, so a shared errors file can be read alone.
            let pipeline = PIPELINE.read().unwrap_or_else(|e| e.into_inner()).clone();
            let mut line = human_line(&e, true);
            if !pipeline.is_empty() {
                line.push_str(&format!(" pipeline={}", logfmt_value(&pipeline)));
            }
            if !e.batch_id.is_empty() {
                line.push_str(&format!(" batch_id={}", e.batch_id));
            }
            line.push('\n');
            w.lock().unwrap_or_else(|e| e.into_inner()).write(line.as_bytes());
        }
        if level <= Level::WARN || DB_STEPS.contains(&e.step.as_str()) {
            push_db_row(e);
        }
    }
}

/// Queues an event for the `sync_logs` table (connector and stream go into its meta).
fn push_db_row(e: LogEvent) {
    let mut meta = e.meta;
    if let Some(c) = e.connector {
        meta.insert("connector".into(), Value::String(c));
    }
    if let Some(s) = e.stream {
        meta.insert("stream".into(), Value::String(s));
    }
    DB_ROWS.lock().unwrap_or_else(|e| e.into_inner()).push(LogRow {
        batch_id: e.batch_id,
        level: e.level.to_owned(),
        step: e.step,
        message: e.message,
        meta: Value::Object(meta),
        created_at: e.timestamp,
    });
}

/// Keeps the file writers flushing; drop it last (flushes on drop).
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// Console options.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOptions {
    /// Print events to stderr at all.
    pub enabled: bool,
    /// The most verbose level printed.
    pub level: LevelFilter,
}

/// The errors file, opened on the first error: a run without errors creates none.
/// Errors are rare, so lines are written directly (no background writer to flush).
struct ErrorsFile {
    dir: std::path::PathBuf,
    appender: Option<Reporting<RollingFileAppender>>,
}

impl ErrorsFile {
    fn write(&mut self, line: &[u8]) {
        if self.appender.is_none() {
            let today = self.dir.join(format!("{}.log", Utc::now().format("%Y-%m-%d")));
            if let Err(e) = std::fs::create_dir_all(&self.dir).and_then(|()| fresh_line(&today)) {
                file_write_failed(&self.dir, &e);
            }
            self.appender = RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_suffix("log")
                .build(&self.dir)
                .ok()
                .map(|inner| Reporting { dir: self.dir.clone(), inner });
        }
        if let Some(a) = &mut self.appender {
            let _ = a.write_all(line);
        }
    }
}

/// Set by the first failed write to a log file: a full disk (or a file that went away) is
/// reported once, on the console and in `sync_logs`, and never stops a sync.
static FILE_WRITE_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reports a log file that cannot be written, the first time only.
fn file_write_failed(dir: &Path, error: &std::io::Error) {
    if FILE_WRITE_FAILED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut meta = Map::new();
    let at = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    meta.insert("dir".into(), Value::String(at.display().to_string()));
    meta.insert("error".into(), Value::String(error.to_string()));
    let e = LogEvent {
        batch_id: batch_id(),
        timestamp: Utc::now(),
        level: "WARN",
        step: "logging".into(),
        message: "cannot write the log files (is the disk full?); the sync goes on, its events still reach the console and the sync_logs table; this is reported once".into(),
        meta,
        connector: None,
        stream: None,
    };
    console_line(&human_line(&e, false));
    push_db_row(e);
}

/// A log file writer that reports its first failure (see [`file_write_failed`]) instead
/// of dropping events without a word.
struct Reporting<W> {
    dir: std::path::PathBuf,
    inner: W,
}

impl<W: std::io::Write> std::io::Write for Reporting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| file_write_failed(&self.dir, e))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf).inspect_err(|e| file_write_failed(&self.dir, e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| file_write_failed(&self.dir, e))
    }
}

/// Which events are kept. Targets match by prefix: every `ferry*` crate at debug; any other
/// crate at info, so a connector or sink crate of any name keeps its info events, warnings
/// and errors (dependencies such as hyper log only below info).
fn targets() -> Targets {
    Targets::new().with_target("ferry", LevelFilter::DEBUG).with_default(LevelFilter::INFO)
}

/// Installs the global subscriber. With `dir`, the JSONL and errors files are written
/// under it (created if missing).
pub fn init(dir: Option<&Path>, console: ConsoleOptions) -> std::io::Result<LogGuard> {
    let mut guards = Vec::new();
    let mut open = |dir: &Path, suffix: &str| -> std::io::Result<Mutex<NonBlocking>> {
        std::fs::create_dir_all(dir)?;
        // A line torn by a full disk or a kill must not swallow the next event: today's
        // file continues on a fresh line.
        let today = dir.join(format!("{}.{suffix}", Utc::now().format("%Y-%m-%d")));
        if let Err(e) = fresh_line(&today) {
            file_write_failed(dir, &e);
        }
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_suffix(suffix)
            .build(dir)
            .map_err(std::io::Error::other)?;
        let appender = Reporting { dir: dir.to_owned(), inner: appender };
        let (writer, guard) =
            tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(appender);
        guards.push(guard);
        Ok(Mutex::new(writer))
    };
    let (jsonl, errors) = match dir {
        Some(d) => (Some(open(d, "jsonl")?), Some(Mutex::new(ErrorsFile { dir: d.join("errors"), appender: None }))),
        None => (None, None),
    };
    let filter = targets();
    let layer = TierLayer { console: console.enabled, jsonl, errors, console_level: console.level };
    tracing_subscriber::registry().with(layer.with_filter(filter)).try_init().map_err(std::io::Error::other)?;
    Ok(LogGuard { _guards: guards })
}

/// Appends a newline to `path` when it exists and does not end with one.
pub fn fresh_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::OpenOptions::new().read(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    Ok(())
}

/// Deletes daily log files (`YYYY-MM-DD.jsonl`, `errors/YYYY-MM-DD.log`) dated before
/// `before`; returns how many were removed.
pub fn prune_files(dir: &Path, before: chrono::NaiveDate) -> std::io::Result<usize> {
    let mut removed = 0;
    for sub in [dir.to_path_buf(), dir.join("errors")] {
        let entries = match std::fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stem = name.strip_suffix(".jsonl").or_else(|| name.strip_suffix(".log"));
            if let Some(date) = stem.and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                && date < before
            {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_crate_of_any_name_keeps_its_info_events() {
        let t = targets();
        assert!(t.would_enable("acme_salesforce::streams", &Level::INFO));
        assert!(!t.would_enable("acme_salesforce::streams", &Level::DEBUG));
        assert!(t.would_enable("ferry_example_connector", &Level::DEBUG));
        assert!(!t.would_enable("hyper::proto", &Level::DEBUG));
    }

    #[test]
    fn prune_removes_only_old_dated_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("errors")).unwrap();
        for f in ["2020-01-01.jsonl", "2030-01-01.jsonl", "errors/2020-01-01.log", "notes.txt"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let n = prune_files(dir.path(), chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()).unwrap();
        assert_eq!(n, 2);
        assert!(dir.path().join("2030-01-01.jsonl").exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(!dir.path().join("errors/2020-01-01.log").exists());
    }
}
