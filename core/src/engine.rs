//! The runner: reads stream partitions concurrently, transforms records, and hands the
//! sink batches that commit with their checkpoint and log rows in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::PipelineConfig;
use crate::descriptor::{FlagUse, Partitioning, StreamDescriptor};
use crate::error::{ConfigError, Exit, SinkError};
use crate::logging::{self, step};
use crate::record::Record;
use crate::registry::Registry;
use crate::sink::{Access, LockOutcome, RunEnd, RunStart, Sink, SinkRecord, StateUpdate, WriteBatch, WriteStats};
use crate::source::{Checkpoint, Partition, ReadRequest, RunMode, Source};
use crate::transform::Transform;
use crate::window::{TimeFlag, TimeWindow};

/// Why a run could not start (the run itself reports stream failures in its report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Configuration problem (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sink failed before or around the run (exit code 1, or 75 when locked).
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl EngineError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> Exit {
        match self {
            EngineError::Config(_) => Exit::Usage,
            EngineError::Sink(SinkError::Locked { .. }) => Exit::Locked,
            EngineError::Sink(SinkError::Config(_)) => Exit::Usage,
            EngineError::Sink(_) => Exit::Failed,
        }
    }
}

/// A transform bound to the streams it applies to.
pub struct BoundTransform {
    /// Streams (all when `None`).
    pub streams: Option<Vec<String>>,
    /// The transform.
    pub transform: Box<dyn Transform>,
}

/// A pipeline ready to run: source, selected streams, transforms, sink.
pub struct Pipeline {
    /// The parsed config.
    pub config: PipelineConfig,
    /// The configured source.
    pub source: Arc<dyn Source>,
    /// Streams this run syncs.
    pub streams: Vec<&'static StreamDescriptor>,
    /// Transforms in order.
    pub transforms: Arc<Vec<BoundTransform>>,
    /// The sink.
    pub sink: Box<dyn Sink>,
}

impl Pipeline {
    /// Resolves every name in the config against the registry and opens the sink.
    /// `select` (from `--streams`) overrides the file's stream list.
    pub fn build(config: PipelineConfig, select: Option<&[String]>) -> Result<Self, EngineError> {
        Self::build_with(config, select, Access::ReadWrite)
    }

    /// [`Pipeline::build`] with the sink opened for `access` (a dry run opens it
    /// [`Access::DryRun`]).
    pub fn build_with(config: PipelineConfig, select: Option<&[String]>, access: Access) -> Result<Self, EngineError> {
        let registry = Registry::global()?;
        // Names that are not registered point at their line in the file.
        let connector =
            registry.connector(&config.connector).map_err(|e| config.source.invalid("connector", e.to_string()))?;
        let streams = select_streams(registry, &config, select)?;
        let mut transforms = Vec::new();
        for t in &config.transforms {
            let descriptor = registry.transform(&t.kind).map_err(|e| t.settings.invalid("type", e.to_string()))?;
            if let Some(names) = &t.streams {
                for n in names {
                    registry
                        .stream(&config.connector, n)
                        .map_err(|e| t.settings.invalid("streams", format!("[[transforms]] streams: {e}")))?;
                }
            }
            transforms.push(BoundTransform { streams: t.streams.clone(), transform: (descriptor.build)(&t.settings)? });
        }
        let sink_descriptor = registry.sink(&config.sink_type)?;
        let source = (connector.build)(&config.source, &config)?;
        let sink = (sink_descriptor.open)(&config.sink, &config, access)?;
        Ok(Pipeline { config, source, streams, transforms: Arc::new(transforms), sink })
    }
}

/// Selects streams by name, keeping registry order; all when nothing is selected.
pub fn select_streams(
    registry: &Registry,
    config: &PipelineConfig,
    select: Option<&[String]>,
) -> Result<Vec<&'static StreamDescriptor>, ConfigError> {
    let all = registry.streams_of(&config.connector);
    let wanted = select.or(config.streams.as_deref());
    let mut selected = match wanted {
        None => return Ok(all.to_vec()),
        Some(names) => {
            let mut streams: Vec<&'static StreamDescriptor> = Vec::new();
            for n in names {
                let s = registry.stream(&config.connector, n.trim())?;
                if streams.iter().any(|t| t.name == s.name) {
                    return Err(ConfigError::Other(format!(
                        "stream `{}` is named twice; name each stream once",
                        s.name
                    )));
                }
                streams.push(s);
            }
            streams
        }
    };
    // A stream that depends on another is read with it: its partitions come from the
    // parent's records of the run (see `Partitioning::Parent`).
    while let Some(parent) =
        selected.iter().filter_map(|s| s.partitioning.parent()).find(|p| !selected.iter().any(|s| s.name == *p))
    {
        selected.insert(0, registry.stream(&config.connector, parent)?);
    }
    Ok(selected)
}

/// Live progress of a run, for a terminal display. Called from the writer task.
pub trait Progress: Send + Sync {
    /// A stream's reading began.
    fn stream_started(&self, stream: &str) {
        let _ = stream;
    }
    /// A batch of a stream committed: records and pages read so far in total.
    fn committed(&self, stream: &str, records: u64, pages: u64) {
        let _ = (stream, records, pages);
    }
    /// A stream finished (its report is final).
    fn stream_finished(&self, stream: &str, report: &StreamReport) {
        let _ = (stream, report);
    }
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Incremental or full.
    pub mode: RunMode,
    /// Date bounds for date-grained streams.
    pub window: TimeWindow,
    /// Count, then roll back.
    pub dry_run: bool,
    /// Recorded in `sync_runs.arguments` and the START event.
    pub arguments: Value,
    /// A lock whose heartbeat is older than this is taken over.
    pub stale_after: Duration,
    /// Heartbeat period.
    pub heartbeat_every: Duration,
    /// Wait for a held lock instead of failing (polls until free).
    pub wait_for_lock: bool,
    /// Reset the saved cursors of the streams that honour `--rollback` to this date
    /// (`Source::cursor_at`) before reading.
    pub rollback: Option<DateTime<Utc>>,
    /// The time flags given, to name them in refusals and notices (those implied by
    /// `window` and `rollback` are added when missing).
    pub flags: Vec<TimeFlag>,
    /// Live progress display.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mode: RunMode::Incremental,
            window: TimeWindow::default(),
            dry_run: false,
            arguments: Value::Null,
            stale_after: Duration::from_secs(120),
            heartbeat_every: Duration::from_secs(10),
            wait_for_lock: false,
            rollback: None,
            flags: Vec::new(),
            progress: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every stream finished.
    Ok,
    /// Some streams failed, others finished.
    Partial,
    /// Every stream failed.
    Failed,
    /// Stopped by a signal.
    Interrupted,
    /// Stopped by the pipeline's time limit.
    Timeout,
}

impl RunStatus {
    /// Text stored in `sync_runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Timeout => "timeout",
        }
    }

    /// The process exit code of a run ending so.
    pub fn exit_code(self) -> Exit {
        match self {
            RunStatus::Ok => Exit::Ok,
            RunStatus::Failed | RunStatus::Timeout => Exit::Failed,
            RunStatus::Partial => Exit::Partial,
            RunStatus::Interrupted => Exit::Interrupted,
        }
    }
}

/// One stream's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    /// Rows written, by outcome.
    #[serde(flatten)]
    pub stats: WriteStats,
    /// Records read from the source (before transforms dropped any).
    pub records: u64,
    /// Pages (source batches) read.
    pub pages: u64,
    /// Partitions read.
    pub partitions: u64,
    /// `ok`, `failed`, `interrupted`.
    pub status: String,
    /// The first error, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time from the stream's start to its last commit.
    pub duration_ms: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's batch id.
    pub batch_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// How it ended.
    pub status: RunStatus,
    /// Mode recorded in `sync_runs`.
    pub mode: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Duration.
    pub duration_ms: u64,
    /// Per stream, by name.
    pub streams: BTreeMap<String, StreamReport>,
    /// HTTP counters of the source, when it has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::http::HttpMetricsSnapshot>,
    /// Time flags a stream had no use for (`--rollback ignored for full-refresh stream
    /// owners: ...`), one line per stream.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// A time flag a stream has no use for, reported once per stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagNotice {
    /// The stream.
    pub stream: &'static str,
    /// `--from, --to ignored for full-refresh stream users: ...`.
    pub message: String,
}

/// Checks the run's time flags against every selected stream, before anything is read.
/// A flag an incremental stream does not honour refuses the run; full-refresh and
/// snapshot streams are fetched whole anyway, so each of them gets one notice naming the
/// flags it ignores.
pub fn check_time_flags(
    streams: &[&'static StreamDescriptor],
    flags: &[TimeFlag],
) -> Result<Vec<FlagNotice>, ConfigError> {
    let refuses = |s: &StreamDescriptor| flags.iter().any(|f| s.flag_use(*f) == FlagUse::Refused);
    let mut notices = Vec::new();
    for &s in streams {
        let with = |u: FlagUse| flags.iter().filter(|f| s.flag_use(**f) == u).map(|f| f.as_str()).collect::<Vec<_>>();
        let refused = with(FlagUse::Refused).join(", ");
        if !refused.is_empty() {
            let others: Vec<&str> =
                streams.iter().filter(|o| o.name != s.name && !refuses(o)).map(|o| o.name).collect();
            let hint = if others.is_empty() {
                format!("run without {refused}")
            } else {
                format!("leave the stream out with --streams {}, or run without {refused}", others.join(","))
            };
            return Err(ConfigError::TimeFlagRefused {
                flags: refused,
                stream: s.name.to_owned(),
                connector: s.connector.to_owned(),
                mode: s.mode.to_string(),
                hint,
            });
        }
        let ignored = with(FlagUse::Ignored);
        if !ignored.is_empty() {
            notices.push(FlagNotice {
                stream: s.name,
                message: format!(
                    "{} ignored for {} stream {}: it is fetched whole every run",
                    ignored.join(", "),
                    s.mode.kind(),
                    s.name
                ),
            });
        }
    }
    Ok(notices)
}

/// The run's time flags: those given plus any implied by the window or the rollback date.
fn run_flags(options: &RunOptions) -> Vec<TimeFlag> {
    let mut flags = options.flags.clone();
    let implied = [
        (TimeFlag::Rollback, options.rollback.is_some()),
        (TimeFlag::From, options.window.from.is_some() && !flags.contains(&TimeFlag::Last)),
        (TimeFlag::To, options.window.to.is_some()),
    ];
    for (flag, implied) in implied {
        if implied && !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags.sort();
    flags
}

/// Cursors to set before reading (`--rollback`): for each stream that honours it, the
/// cursor its connector gives for the date (every partition).
fn rollback_overrides(pipeline: &Pipeline, at: Option<DateTime<Utc>>) -> Result<Vec<StateOverride>, ConfigError> {
    let Some(at) = at else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for &s in &pipeline.streams {
        if s.flag_use(TimeFlag::Rollback) != FlagUse::Honoured {
            continue;
        }
        match pipeline.source.cursor_at(s, at) {
            Some(cursor) => out.push((s.name.to_owned(), "*".to_owned(), Some(cursor))),
            None => {
                return Err(ConfigError::Other(format!(
                    "stream {} ({}) declares that it honours --rollback but its connector gives no cursor for a date (a bug in the connector): run without --rollback",
                    s.name, s.connector
                )));
            }
        }
    }
    Ok(out)
}

/// A saved cursor to replace: stream, partition (`*` for all), new cursor (`None` clears).
type StateOverride = (String, String, Option<Value>);

enum Msg {
    Batch {
        stream: &'static StreamDescriptor,
        partition: String,
        records: Vec<SinkRecord>,
        checkpoint: Option<Checkpoint>,
        read: u64,
        pages: u64,
        transform_failed: u64,
    },
    PartitionDone {
        stream: &'static str,
        error: Option<String>,
        interrupted: bool,
    },
    StreamFailed {
        stream: &'static str,
        error: String,
    },
    StreamDone {
        stream: &'static str,
        partitions: u64,
    },
}

/// Runs a pipeline once. Stream failures end up in the report; `Err` means the run
/// could not start (configuration, sink, lock).
pub async fn run(
    pipeline: &mut Pipeline,
    options: RunOptions,
    cancel: CancellationToken,
) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let batch_id = uuid::Uuid::now_v7().to_string();
    logging::set_batch_id(&batch_id);
    logging::set_pipeline(&pipeline.config.name);
    let name = pipeline.config.name.clone();
    let mode =
        if options.dry_run { format!("{}+dry-run", options.mode.as_str()) } else { options.mode.as_str().to_owned() };

    // Time flags are checked before anything is created or fetched.
    let notices = check_time_flags(&pipeline.streams, &run_flags(&options))?;
    let overrides = rollback_overrides(pipeline, options.rollback)?;

    let sink = &mut pipeline.sink;
    sink.init().await?;
    sink.prepare(&pipeline.streams).await?;
    let run_start = RunStart {
        batch_id: batch_id.clone(),
        pipeline: name.clone(),
        mode: mode.clone(),
        arguments: options.arguments.clone(),
        started_at,
        stale_after: options.stale_after,
    };
    // A dry run records no run and takes no lock: it changes nothing for anyone to wait on.
    if !options.dry_run {
        take_run_lock(sink.as_mut(), &run_start, options.wait_for_lock, &cancel).await?;
    }
    let stream_names: Vec<&str> = pipeline.streams.iter().map(|s| s.name).collect();
    info!(
        step = step::START,
        connector = %pipeline.config.connector,
        pipeline = %name,
        mode = %mode,
        streams = %stream_names.join(","),
        arguments = %options.arguments,
        "sync started"
    );
    for n in &notices {
        warn!(step = "flags", stream = n.stream, "{}", n.message);
    }

    let result = drive(pipeline, &options, &overrides, &batch_id, cancel.clone()).await;
    let (streams, interrupted, timed_out) = match result {
        Ok(v) => v,
        Err(e) => {
            error!(step = step::END, error = %e, "sync aborted by a sink error");
            let end = RunEnd {
                batch_id: batch_id.clone(),
                status: "failed".into(),
                finished_at: Utc::now(),
                stats: json!({"error": crate::secret::redact(&e.to_string())}),
            };
            if !options.dry_run {
                let _ = pipeline.sink.end_run(&end, logging::drain_db_rows()).await;
            }
            return Err(e.into());
        }
    };

    let failed = streams.values().filter(|s| s.status == "failed").count();
    let status = if interrupted {
        RunStatus::Interrupted
    } else if timed_out {
        RunStatus::Timeout
    } else if failed == 0 {
        RunStatus::Ok
    } else if failed == streams.len() {
        RunStatus::Failed
    } else {
        RunStatus::Partial
    };
    let http = pipeline.source.metrics().map(|m| m.snapshot());
    let report = RunReport {
        batch_id: batch_id.clone(),
        pipeline: name,
        status,
        mode,
        dry_run: options.dry_run,
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        streams,
        http,
        notices: notices.into_iter().map(|n| n.message).collect(),
    };
    let totals = report.streams.values().fold(WriteStats::default(), |mut acc, s| {
        acc.add(&s.stats);
        acc
    });
    let stats = serde_json::to_value(&report).unwrap_or(Value::Null);
    let msg = format!("sync finished: {}", status.as_str());
    macro_rules! end_event {
        ($level:ident) => {
            $level!(
                step = step::END,
                status = status.as_str(),
                inserted = totals.inserted,
                updated = totals.updated,
                unchanged = totals.unchanged,
                failed = totals.failed,
                duration_ms = report.duration_ms,
                "{msg}"
            )
        };
    }
    match status {
        RunStatus::Ok => end_event!(info),
        RunStatus::Failed => end_event!(error),
        _ => end_event!(warn),
    }
    let end = RunEnd { batch_id, status: status.as_str().into(), finished_at: Utc::now(), stats };
    if options.dry_run {
        // The monitoring rows of a dry run went to the console and the daily files only.
        let _ = logging::drain_db_rows();
    } else {
        pipeline.sink.end_run(&end, logging::drain_db_rows()).await?;
    }
    Ok(report)
}

/// Takes the pipeline's run lock for `run` (recording it `running`): with `wait`, polls
/// while another run holds it, until it is free or `cancel` fires; a stale holder's lock is
/// taken over with a warning. Used by `sync` and by anything else that must not overlap a
/// sync (`state reset`).
pub async fn take_run_lock(
    sink: &mut dyn Sink,
    run: &RunStart,
    wait: bool,
    cancel: &CancellationToken,
) -> Result<(), SinkError> {
    let lock = loop {
        match sink.begin_run(run).await {
            Err(SinkError::Locked { batch_id: holder, .. }) if wait => {
                info!(step = "lock", holder = %holder, "waiting for the running sync to finish");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = cancel.cancelled() => return Err(SinkError::Open("interrupted while waiting for the run lock".into())),
                }
            }
            other => break other?,
        }
    };
    if let LockOutcome::TookOver { batch_id: stale, heartbeat_at } = &lock {
        warn!(step = "lock", stale_batch = %stale, last_heartbeat = %heartbeat_at, "took over a stale run lock (its process is gone or stopped sending heartbeats)");
    }
    Ok(())
}

type DriveResult = (BTreeMap<String, StreamReport>, bool, bool);

async fn drive(
    pipeline: &mut Pipeline,
    options: &RunOptions,
    overrides: &[StateOverride],
    batch_id: &str,
    cancel: CancellationToken,
) -> Result<DriveResult, SinkError> {
    let name = pipeline.config.name.clone();
    let sink = &mut pipeline.sink;

    if !overrides.is_empty() && !options.dry_run {
        // The old cursors go to sync_logs (with this run's batch id) before they change.
        for e in sink.load_state(&name).await? {
            if overrides.iter().any(|(s, p, _)| *s == e.stream && (p == "*" || *p == e.partition)) {
                warn!(step = "rollback", stream = %e.stream, partition = %e.partition, old_cursor = %e.cursor, "saved cursor reset");
            }
        }
        let n = sink.set_state(&name, batch_id, overrides.to_vec()).await?;
        info!(step = "state", cursors = n, "saved cursors reset before reading");
    }
    let mut state: HashMap<(String, String), Value> = HashMap::new();
    if options.mode == RunMode::Incremental {
        for e in sink.load_state(&name).await? {
            state.insert((e.stream, e.partition), e.cursor);
        }
        if options.dry_run {
            for (stream, partition, cursor) in overrides {
                match cursor {
                    Some(c) => state.insert((stream.clone(), partition.clone()), c.clone()),
                    None => state.remove(&(stream.clone(), partition.clone())),
                };
            }
        }
    }
    let state = Arc::new(state);

    // The writer is the bottleneck when the network is fast; a short queue keeps memory
    // flat (a batch of 500 parsed records is several MB) without starving it.
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let permits = Arc::new(Semaphore::new(pipeline.config.concurrency));
    let stopped: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let now = Utc::now();
    let mut reports: BTreeMap<String, StreamReport> = BTreeMap::new();
    let mut stream_started: HashMap<&'static str, Instant> = HashMap::new();
    // Dependent streams by parent, and the parents' records committed so far.
    let mut waiting: HashMap<&'static str, Vec<ReaderCtx>> = HashMap::new();
    let parent_names: HashSet<&'static str> = pipeline.streams.iter().filter_map(|s| s.partitioning.parent()).collect();
    let mut parent_records: HashMap<&'static str, Vec<Record>> = HashMap::new();
    // Messages the writer sends itself (dependents of a parent that did not finish).
    let mut local: std::collections::VecDeque<Msg> = std::collections::VecDeque::new();
    for &stream in &pipeline.streams {
        reports.insert(stream.name.to_owned(), StreamReport { status: "running".into(), ..Default::default() });
        stream_started.insert(stream.name, Instant::now());
        if let Some(p) = &options.progress {
            p.stream_started(stream.name);
        }
        let ctx = ReaderCtx {
            source: pipeline.source.clone(),
            transforms: pipeline.transforms.clone(),
            stream,
            parents: None,
            tx: tx.clone(),
            permits: permits.clone(),
            state: state.clone(),
            stopped: stopped.clone(),
            cancel: cancel.clone(),
            mode: options.mode,
            window: options.window,
            now,
            batch_size: pipeline.config.batch_size,
        };
        match stream.partitioning.parent() {
            // Waits for its parent's records to commit (see `Msg::StreamDone` below).
            Some(parent) => waiting.entry(parent).or_default().push(ctx),
            None => spawn_reader(ctx),
        }
    }
    drop(tx);

    let mut heartbeat = tokio::time::interval(options.heartbeat_every);
    heartbeat.tick().await;
    let deadline = pipeline.config.timeout.map(|t| tokio::time::Instant::now() + t);
    let timeout = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut timed_out = false;
    let mut failures_logged: HashMap<&'static str, u64> = HashMap::new();
    let mut poisoned: HashSet<(&'static str, String)> = HashSet::new();

    loop {
        let msg = if let Some(m) = local.pop_front() {
            m
        } else {
            tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = heartbeat.tick() => {
                if !options.dry_run {
                    sink.heartbeat(batch_id).await?;
                }
                continue;
            }
            _ = &mut timeout, if !timed_out => {
                timed_out = true;
                warn!(step = step::TIMEOUT, limit_secs = pipeline.config.timeout.map(|t| t.as_secs()).unwrap_or(0), "run time limit reached: stopping after the batches in flight");
                cancel.cancel();
                continue;
            }
            }
        };
        match msg {
            Msg::Batch { stream, partition, records, checkpoint, read, pages, transform_failed } => {
                let report = reports.get_mut(stream.name).expect("stream report exists");
                report.records += read;
                report.pages += pages;
                report.stats.failed += transform_failed;
                if poisoned.contains(&(stream.name, partition.clone())) {
                    continue;
                }
                // A dry run stores no monitoring rows (they reach the console and daily files).
                let logs = if options.dry_run {
                    let _ = logging::drain_db_rows();
                    Vec::new()
                } else {
                    logging::drain_db_rows()
                };
                let n = records.len();
                let parsed: Vec<Record> = if parent_names.contains(stream.name) {
                    records.iter().filter(|r| r.refusal().is_none()).map(SinkRecord::record).collect()
                } else {
                    Vec::new()
                };
                let batch = WriteBatch {
                    pipeline: name.clone(),
                    batch_id: batch_id.to_owned(),
                    stream,
                    records,
                    state: checkpoint.map(|c| StateUpdate { partition: partition.clone(), checkpoint: c }),
                    logs,
                    dry_run: options.dry_run,
                };
                match sink.write(batch).await {
                    Ok(outcome) => {
                        if !parsed.is_empty() {
                            parent_records.entry(stream.name).or_default().extend(parsed);
                        }
                        report.stats.add(&outcome.stats);
                        if let Some(p) = &options.progress {
                            p.committed(stream.name, report.records, report.pages);
                        }
                        report.duration_ms = stream_started[stream.name].elapsed().as_millis() as u64;
                        debug!(step = "write", stream = stream.name, partition = %partition, records = n, inserted = outcome.stats.inserted, updated = outcome.stats.updated, unchanged = outcome.stats.unchanged, failed = outcome.stats.failed, "batch committed");
                        let logged = failures_logged.entry(stream.name).or_default();
                        for f in outcome.failures {
                            *logged += 1;
                            if *logged <= 20 {
                                warn!(step = "write", stream = stream.name, key = %f.key, reason = %f.reason, "record refused");
                            }
                        }
                    }
                    Err(e) => {
                        error!(step = "write", stream = stream.name, partition = %partition, error = %e, "batch not stored; the partition stops here and keeps its saved state");
                        poisoned.insert((stream.name, partition.clone()));
                        stopped
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(format!("{}/{}", stream.name, partition));
                        report.status = "failed".into();
                        report.error.get_or_insert_with(|| crate::secret::redact(&e.to_string()));
                    }
                }
            }
            Msg::PartitionDone { stream, error, interrupted } => {
                let report = reports.get_mut(stream).expect("stream report exists");
                if let Some(e) = error {
                    report.status = "failed".into();
                    report.error.get_or_insert(crate::secret::redact(&e));
                } else if interrupted && report.status == "running" {
                    report.status = "interrupted".into();
                }
            }
            Msg::StreamFailed { stream, error } => {
                let report = reports.get_mut(stream).expect("stream report exists");
                report.status = "failed".into();
                report.error.get_or_insert(crate::secret::redact(&error));
            }
            Msg::StreamDone { stream, partitions } => {
                let report = reports.get_mut(stream).expect("stream report exists");
                report.partitions = partitions;
                report.duration_ms = stream_started[stream].elapsed().as_millis() as u64;
                if report.status == "running" {
                    report.status = if cancel.is_cancelled() { "interrupted".into() } else { "ok".into() };
                }
                if let Some(p) = &options.progress {
                    p.stream_finished(stream, report);
                }
                let refused = failures_logged.get(stream).copied().unwrap_or(0);
                if refused > 20 {
                    warn!(step = "write", stream, more = refused - 20, "further refused records not logged one by one");
                }
                let s = &report.stats;
                let fields =
                    (s.inserted, s.updated, s.unchanged, s.failed, report.records, report.pages, report.duration_ms);
                if let Some(children) = waiting.remove(stream) {
                    if report.status == "ok" {
                        let parents = Arc::new(parent_records.remove(stream).unwrap_or_default());
                        for mut child in children {
                            child.parents = Some(parents.clone());
                            spawn_reader(child);
                        }
                    } else {
                        // Its partitions would come from records that are not there.
                        for child in children {
                            let name = child.stream.name;
                            if report.status == "failed" {
                                let error = format!("not read: it depends on `{stream}`, which failed");
                                local.push_back(Msg::StreamFailed { stream: name, error });
                            }
                            local.push_back(Msg::StreamDone { stream: name, partitions: 0 });
                        }
                    }
                }
                if report.status == "failed" {
                    error!(step = step::STREAM_END, stream, status = %report.status, inserted = fields.0, updated = fields.1, unchanged = fields.2, failed = fields.3, records = fields.4, pages = fields.5, duration_ms = fields.6, error = %report.error.clone().unwrap_or_default(), "stream failed");
                } else {
                    info!(step = step::STREAM_END, stream, status = %report.status, inserted = fields.0, updated = fields.1, unchanged = fields.2, failed = fields.3, records = fields.4, pages = fields.5, duration_ms = fields.6, "stream finished");
                }
            }
        }
    }
    // Every sender is gone: a stream still `running` ended without a word.
    for (stream, report) in reports.iter_mut().filter(|(_, r)| r.status == "running") {
        let message = "the stream's task ended without reporting".to_owned();
        error!(step = step::STREAM_END, stream = %stream, error = %message, "stream failed");
        report.status = "failed".into();
        report.error.get_or_insert(message);
    }
    let interrupted = cancel.is_cancelled() && !timed_out;
    Ok((reports, interrupted, timed_out))
}

/// What a task that did not finish normally left behind, for people.
fn task_failure(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the task was cancelled".into();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("internal error (panic): {message}")
}

struct ReaderCtx {
    source: Arc<dyn Source>,
    transforms: Arc<Vec<BoundTransform>>,
    stream: &'static StreamDescriptor,
    /// The parent's records of this run, for a stream partitioned by its parent.
    parents: Option<Arc<Vec<Record>>>,
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    state: Arc<HashMap<(String, String), Value>>,
    stopped: Arc<Mutex<HashSet<String>>>,
    cancel: CancellationToken,
    mode: RunMode,
    window: TimeWindow,
    now: DateTime<Utc>,
    batch_size: usize,
}

/// Starts a stream's reader under a supervisor: a task that panics (or is cancelled)
/// never reports, so the supervisor reports the stream failed with the panic's message,
/// and a run can never end `ok` for a stream that did not finish.
fn spawn_reader(ctx: ReaderCtx) {
    let stream = ctx.stream;
    let tx = ctx.tx.clone();
    let reader = tokio::spawn(read_stream(ctx));
    tokio::spawn(async move {
        if let Err(e) = reader.await {
            let error = task_failure(e);
            error!(step = "fetch", stream = stream.name, error = %error, "stream task ended abnormally");
            let _ = tx.send(Msg::StreamFailed { stream: stream.name, error }).await;
            let _ = tx.send(Msg::StreamDone { stream: stream.name, partitions: 0 }).await;
        }
    });
}

async fn read_stream(ctx: ReaderCtx) {
    let stream = ctx.stream;
    let listing = async {
        match (stream.partitioning, &ctx.parents) {
            (Partitioning::None, _) => Ok(vec![Partition::whole()]),
            (Partitioning::Parent { .. }, Some(parents)) => ctx.source.partitions_from(stream, parents).await,
            _ => {
                let _permit = ctx.permits.acquire().await;
                ctx.source.partitions(stream).await
            }
        }
    };
    // Listing may take requests, retries and waits: a signal or the run's time limit
    // stops it like any read.
    let partitions = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => {
            let _ = ctx.tx.send(Msg::PartitionDone { stream: stream.name, error: None, interrupted: true }).await;
            let _ = ctx.tx.send(Msg::StreamDone { stream: stream.name, partitions: 0 }).await;
            return;
        }
        p = listing => p,
    };
    let partitions = match partitions {
        Ok(p) => p,
        Err(e) => {
            error!(step = "fetch", stream = stream.name, status = e.status(), error = %e, "could not list the stream's partitions");
            let _ = ctx.tx.send(Msg::StreamFailed { stream: stream.name, error: e.to_string() }).await;
            let _ = ctx.tx.send(Msg::StreamDone { stream: stream.name, partitions: 0 }).await;
            return;
        }
    };
    let count = partitions.len() as u64;
    let ctx = Arc::new(ctx);
    let mut set = tokio::task::JoinSet::new();
    for partition in partitions {
        let ctx = ctx.clone();
        set.spawn(async move {
            let Ok(_permit) = ctx.permits.clone().acquire_owned().await else {
                return;
            };
            read_partition(&ctx, partition).await;
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            let error = task_failure(e);
            error!(step = "fetch", stream = stream.name, error = %error, "stream reader crashed");
            let _ =
                ctx.tx.send(Msg::PartitionDone { stream: stream.name, error: Some(error), interrupted: false }).await;
        }
    }
    let _ = ctx.tx.send(Msg::StreamDone { stream: stream.name, partitions: count }).await;
}

async fn read_partition(ctx: &ReaderCtx, partition: Partition) {
    let stream = ctx.stream;
    let key = (stream.name.to_owned(), partition.key.clone());
    let stop_key = format!("{}/{}", stream.name, partition.key);
    let request = ReadRequest {
        stream,
        partition: partition.clone(),
        state: ctx.state.get(&key).cloned(),
        mode: ctx.mode,
        window: ctx.window,
        now: ctx.now,
    };
    debug!(step = "fetch", stream = stream.name, partition = %partition.key, resume = request.state.is_some(), "reading partition");
    let mut source = ctx.source.read(request);
    let mut buffer: Vec<SinkRecord> = Vec::new();
    let mut pending: Option<Checkpoint> = None;
    let (mut read, mut pages, mut transform_failed) = (0u64, 0u64, 0u64);
    let mut last_flush = Instant::now();
    let mut error = None;
    let mut interrupted = false;

    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => { interrupted = true; break }
            n = source.next() => n,
        };
        let batch = match next {
            None => break,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                error!(step = "fetch", stream = stream.name, partition = %partition.key, page = pages + 1, status = e.status(), error = %e, "stream read failed; its saved state stays where the last committed batch left it");
                error = Some(e.to_string());
                break;
            }
        };
        pages += 1;
        read += batch.records.len() as u64;
        for record in batch.records {
            match apply_transforms(&ctx.transforms, stream.name, record) {
                Ok(Some(r)) => buffer.push(SinkRecord::new(stream, r)),
                Ok(None) => {}
                Err(e) => {
                    transform_failed += 1;
                    warn!(step = "transform", stream = stream.name, error = %e, "record dropped by a failing transform");
                }
            }
        }
        if batch.checkpoint.is_some() {
            pending = batch.checkpoint;
        }
        if ctx.stopped.lock().unwrap_or_else(|e| e.into_inner()).contains(&stop_key) {
            return;
        }
        while buffer.len() > ctx.batch_size {
            let rest = buffer.split_off(ctx.batch_size);
            let chunk = std::mem::replace(&mut buffer, rest);
            let counts = (std::mem::take(&mut read), std::mem::take(&mut pages), std::mem::take(&mut transform_failed));
            if !send(ctx, &partition, chunk, None, counts).await {
                return;
            }
            last_flush = Instant::now();
        }
        if buffer.len() == ctx.batch_size || (pending.is_some() && last_flush.elapsed() > Duration::from_secs(2)) {
            let counts = (std::mem::take(&mut read), std::mem::take(&mut pages), std::mem::take(&mut transform_failed));
            if !send(ctx, &partition, std::mem::take(&mut buffer), pending.take(), counts).await {
                return;
            }
            last_flush = Instant::now();
        }
    }
    // Whatever was read completely is committed, with its checkpoint, even when the
    // partition failed later or the run was interrupted: state never runs ahead of data.
    if !buffer.is_empty() || pending.is_some() || read > 0 || pages > 0 {
        let counts = (read, pages, transform_failed);
        if !send(ctx, &partition, buffer, pending, counts).await {
            return;
        }
    }
    let _ = ctx.tx.send(Msg::PartitionDone { stream: stream.name, error, interrupted }).await;
}

async fn send(
    ctx: &ReaderCtx,
    partition: &Partition,
    records: Vec<SinkRecord>,
    checkpoint: Option<Checkpoint>,
    (read, pages, transform_failed): (u64, u64, u64),
) -> bool {
    ctx.tx
        .send(Msg::Batch {
            stream: ctx.stream,
            partition: partition.key.clone(),
            records,
            checkpoint,
            read,
            pages,
            transform_failed,
        })
        .await
        .is_ok()
}

fn apply_transforms(
    transforms: &[BoundTransform],
    stream: &str,
    mut record: Record,
) -> Result<Option<Record>, crate::error::TransformError> {
    for t in transforms {
        if let Some(names) = &t.streams
            && !names.iter().any(|n| n == stream)
        {
            continue;
        }
        match t.transform.apply(record)? {
            Some(r) => record = r,
            None => return Ok(None),
        }
    }
    Ok(Some(record))
}
