//! One function per command: wiring between the CLI and the libraries.

use std::io::IsTerminal;

use anyhow::anyhow;
use chrono::Utc;
use ferry_core::config::PipelineConfig;
use ferry_core::engine::{self, Pipeline, RunOptions};
use ferry_core::error::Exit;
use ferry_core::logging::{self, ConsoleOptions};
use ferry_core::registry::Registry;
use ferry_core::sink::{Access, Sink};
use ferry_core::window::{TimeFlags, parse_duration};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;

use crate::cli::{Command, LogsCommand, SimArgs, SimCommand, StateCommand, StatusArgs, SyncArgs};
use crate::output;

/// An error with the exit code it maps to.
pub(crate) struct CliError {
    /// Exit code.
    pub code: Exit,
    pub error: anyhow::Error,
}

impl CliError {
    pub(crate) fn usage(e: impl Into<anyhow::Error>) -> Self {
        CliError { code: Exit::Usage, error: e.into() }
    }
    pub(crate) fn failed(e: impl Into<anyhow::Error>) -> Self {
        CliError { code: Exit::Failed, error: e.into() }
    }
}

impl From<engine::EngineError> for CliError {
    fn from(e: engine::EngineError) -> Self {
        CliError { code: e.exit_code(), error: e.into() }
    }
}

impl From<ferry_core::error::ConfigError> for CliError {
    fn from(e: ferry_core::error::ConfigError) -> Self {
        CliError::usage(e)
    }
}

impl From<ferry_core::error::SinkError> for CliError {
    fn from(e: ferry_core::error::SinkError) -> Self {
        engine::EngineError::from(e).into()
    }
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

pub(crate) async fn dispatch(command: Command) -> Result<Exit> {
    match command {
        Command::Connectors => connectors(),
        Command::Init(p) => init(&p.pipeline).await,
        Command::Sync(args) => sync(args).await,
        Command::Check(p) => check(&p.pipeline).await,
        Command::Migrate { pipeline, dry_run } => migrate(&pipeline.pipeline, dry_run).await,
        Command::Status(args) => status(args).await,
        Command::State(StateCommand::Show(p)) => state_show(&p.pipeline).await,
        Command::State(StateCommand::Reset { pipeline, stream, wait }) => {
            state_reset(&pipeline.pipeline, stream, wait).await
        }
        Command::Logs(LogsCommand::Prune { pipeline, older_than }) => logs_prune(&pipeline.pipeline, older_than).await,
        Command::Demo(args) => crate::demo::demo(args).await,
        Command::Sim(SimCommand::Instantly(args)) => sim_instantly(args).await,
        Command::Sim(SimCommand::Hubspot { port, contacts, token }) => sim_hubspot(port, contacts, token).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "ferry", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(Exit::Ok)
        }
    }
}

fn connectors() -> Result<Exit> {
    let r = Registry::global()?;
    let mut out = String::new();
    for (name, c) in &r.connectors {
        out.push_str(&format!("connector {name}: {}\n", c.description));
        let rows: Vec<Vec<String>> = r
            .streams_of(name)
            .iter()
            .map(|s| {
                let part = match s.partitioning {
                    ferry_core::descriptor::Partitioning::None => String::new(),
                    ferry_core::descriptor::Partitioning::Dynamic { by } => format!("per {by}"),
                    ferry_core::descriptor::Partitioning::Parent { stream, by } => {
                        format!("per {by}, after {stream}")
                    }
                };
                vec![
                    format!("  {}", s.name),
                    s.table.to_owned(),
                    s.primary_key.join(", "),
                    s.mode.to_string(),
                    part,
                    s.time_flags_summary(),
                ]
            })
            .collect();
        out.push_str(&output::table(&["  stream", "table", "key", "mode", "partitions", "time flags"], &rows));
        let streams = r.streams_of(name);
        let width = streams.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in streams {
            out.push_str(&format!("    {:<width$}  {}\n", s.name, s.description));
        }
        out.push('\n');
    }
    out.push_str("transforms:\n");
    for (name, t) in &r.transforms {
        out.push_str(&format!("  {name:<14} {}\n", t.description));
    }
    out.push_str("\nsinks:\n");
    for (name, s) in &r.sinks {
        out.push_str(&format!("  {name:<14} {}\n", s.description));
    }
    out!("{out}");
    Ok(Exit::Ok)
}

pub(crate) fn open_sink(config: &PipelineConfig, access: Access) -> Result<Box<dyn Sink>> {
    let registry = Registry::global()?;
    let d = registry.sink(&config.sink_type)?;
    Ok((d.open)(&config.sink, config, access)?)
}

pub(crate) fn console_logging(config: Option<&PipelineConfig>, quiet: bool) -> Result<logging::LogGuard> {
    let level = match (quiet, config.map(|c| c.logging.level.as_str())) {
        (true, _) => LevelFilter::WARN,
        (false, Some(l)) => l.parse().map_err(|_| {
            CliError::usage(anyhow!("[logging] level = \"{l}\": use error, warn, info, debug or trace"))
        })?,
        (false, None) => LevelFilter::INFO,
    };
    let dir = config.map(|c| c.logging.dir.as_path());
    logging::init(dir, ConsoleOptions { enabled: true, level }).map_err(|e| {
        let at = dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_owned()).display().to_string());
        CliError::failed(anyhow!(
            "cannot open the log directory {}: {e}; check [logging] dir names a writable directory",
            at.unwrap_or_default()
        ))
    })
}

async fn init(spec: &str) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let registry = Registry::global()?;
    let streams = engine::select_streams(registry, &config, None)?;
    let mut sink = open_sink(&config, Access::ReadWrite)?;
    sink.init().await?;
    sink.prepare(&streams).await?;
    outln!("{}: {} stream tables ready ({} sink)", config.name, streams.len(), config.sink_type);
    Ok(Exit::Ok)
}

async fn migrate(spec: &str, dry_run: bool) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let registry = Registry::global()?;
    let streams = engine::select_streams(registry, &config, None)?;
    // Opening never writes (a file another tool wrote keeps its journal mode until its
    // takeover commits); a dry run reads through a read-only connection.
    let mut sink = open_sink(&config, if dry_run { Access::ReadOnly } else { Access::ReadWrite })?;
    let plan = sink.describe_plan(&streams).await?;
    if plan.is_empty() {
        outln!("{}: nothing to migrate", config.name);
        return Ok(Exit::Ok);
    }
    outln!("{}{}:", config.name, if dry_run { " (dry run: nothing is changed)" } else { "" });
    for line in &plan {
        outln!("  {line}");
    }
    if !dry_run {
        let _guard = console_logging(Some(&config), true)?;
        sink.init().await?;
        sink.prepare(&streams).await?;
        outln!("done");
    }
    Ok(Exit::Ok)
}

pub(crate) fn install_signal_handlers(cancel: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                return;
            };
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                seen += 1;
                if seen == 1 {
                    tracing::warn!(
                        step = "signal",
                        "interrupted: finishing the batches in flight (press Ctrl-C again to stop at once)"
                    );
                    cancel.cancel();
                } else {
                    // Every committed batch is consistent; uncommitted work is redone next run.
                    crate::output::emit_err("stopped at once\n");
                    std::process::exit(Exit::Interrupted.code().into());
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        }
    });
}

async fn sync(args: SyncArgs) -> Result<Exit> {
    let flags = TimeFlags {
        all: args.all,
        from: args.from.clone(),
        to: args.to.clone(),
        last: args.last.clone(),
        rollback: args.rollback.clone(),
    };
    let now = Utc::now();
    let plan = flags.resolve(now).map_err(|e| CliError::usage(anyhow!(e)))?;
    let config = PipelineConfig::resolve(&args.pipeline.pipeline)?;
    // Bars only on a terminal; redirected output gets plain lines and no control codes.
    let bars_wanted = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let _guard = console_logging(Some(&config), args.quiet || args.json || bars_wanted)?;
    let access = if args.dry_run { Access::DryRun } else { Access::ReadWrite };
    let mut pipeline = Pipeline::build_with(config, args.streams.as_deref(), access)?;
    if !args.quiet {
        // The first line says which pipeline runs and where its data goes.
        let file = match std::path::absolute(&pipeline.config.file) {
            Ok(p) if std::path::Path::new(&pipeline.config.file).is_file() => p.display().to_string(),
            _ => pipeline.config.file.clone(),
        };
        crate::output::emit_err(&format!(
            "pipeline {} from {file} -> {} {}{}\n",
            pipeline.config.name,
            pipeline.config.sink_type,
            pipeline.sink.location(),
            if args.dry_run { " (dry run: nothing is written)" } else { "" }
        ));
    }
    let bars = bars_wanted.then(|| crate::progress::Bars::new(pipeline.source.metrics()));

    let arguments = json!({
        "streams": args.streams,
        "dry_run": args.dry_run,
        "all": args.all,
        "from": args.from,
        "to": args.to,
        "last": args.last,
        "rollback": args.rollback,
        "window": {"from": plan.window.from, "to": plan.window.to},
    });
    let options = RunOptions {
        mode: plan.mode,
        window: plan.window,
        dry_run: args.dry_run,
        arguments,
        wait_for_lock: args.wait,
        rollback: plan.rollback,
        flags: plan.flags.clone(),
        progress: bars.clone().map(|b| b as std::sync::Arc<dyn ferry_core::engine::Progress>),
        ..RunOptions::default()
    };
    let cancel = CancellationToken::new();
    install_signal_handlers(cancel.clone());
    let report = engine::run(&mut pipeline, options, cancel).await;
    if let Some(b) = &bars {
        b.finish();
    }
    let report = report?;
    if args.json {
        outln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else if !args.quiet {
        out!("{}", output::summary(&report));
    }
    // Retention runs after each real run, on both tiers.
    if !args.dry_run {
        prune(&pipeline.config, &mut pipeline.sink, None).await.ok();
    }
    Ok(report.status.exit_code())
}

async fn check(spec: &str) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let _guard = console_logging(None, true)?;
    let registry = Registry::global()?;
    let connector = registry.connector(&config.connector)?;
    let source = (connector.build)(&config.source, &config)?;
    match source.check().await {
        Ok(line) => {
            outln!("ok: {} ({}): {line}", config.name, config.connector);
            Ok(Exit::Ok)
        }
        Err(e) => Err(CliError::failed(anyhow!("check failed for {} ({}): {e}", config.name, config.connector))),
    }
}

async fn status(args: StatusArgs) -> Result<Exit> {
    let config = PipelineConfig::resolve(&args.pipeline.pipeline)?;
    let mut sink = open_sink(&config, Access::ReadOnly)?;
    sink.init().await?;
    if args.errors {
        let rows = sink.recent_errors(&config.name, args.batch.as_deref(), args.limit).await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        } else if rows.is_empty() {
            outln!("no warnings or errors recorded");
        } else {
            out!("{}", output::errors(&rows));
        }
        return Ok(Exit::Ok);
    }
    if let Some(batch) = &args.batch {
        let batch = batch.trim();
        if batch.is_empty() {
            return Err(CliError::usage(anyhow!(
                "--batch needs a batch id (or a unique prefix of one); see `ferry status`"
            )));
        }
        let runs = sink.recent_runs(&config.name, usize::MAX >> 1).await?;
        let matching: Vec<_> = runs.iter().filter(|r| r.batch_id == batch || r.batch_id.starts_with(batch)).collect();
        let run = match matching.as_slice() {
            [] => return Err(CliError::usage(anyhow!("no run {batch} in pipeline {}", config.name))),
            [one] => *one,
            many => match many.iter().find(|r| r.batch_id == batch) {
                Some(exact) => *exact,
                None => {
                    return Err(CliError::usage(anyhow!(
                        "--batch {batch} matches {} runs of {} ({}, ...): give more characters",
                        many.len(),
                        config.name,
                        many.iter().take(3).map(|r| r.batch_id.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
            },
        };
        let errors = sink.recent_errors(&config.name, Some(&run.batch_id), 50).await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&json!({"run": run, "errors": errors})).unwrap_or_default());
        } else {
            out!("{}", output::run_detail(run));
            if !errors.is_empty() {
                outln!();
                out!("{}", output::errors(&errors));
            }
        }
        return Ok(Exit::Ok);
    }
    let runs = sink.recent_runs(&config.name, args.limit).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&runs).unwrap_or_default());
    } else if runs.is_empty() {
        outln!("no runs recorded for {}", config.name);
    } else {
        out!("{}", output::runs(&runs));
    }
    Ok(Exit::Ok)
}

async fn state_show(spec: &str) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let mut sink = open_sink(&config, Access::ReadOnly)?;
    sink.init().await?;
    let entries = sink.load_state(&config.name).await?;
    if entries.is_empty() {
        outln!("no saved cursors for {}", config.name);
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.stream.clone(),
                if e.partition.is_empty() { "-".into() } else { e.partition.clone() },
                e.cursor.to_string(),
                e.batch_id.clone(),
                e.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect();
    out!("{}", output::table(&["stream", "partition", "cursor", "batch", "updated (UTC)"], &rows));
    Ok(Exit::Ok)
}

async fn state_reset(spec: &str, stream: Option<String>, wait: bool) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let registry = Registry::global()?;
    let streams: Vec<String> = match &stream {
        Some(s) => vec![registry.stream(&config.connector, s)?.name.to_owned()],
        None => registry.streams_of(&config.connector).iter().map(|s| s.name.to_owned()).collect(),
    };
    let mut sink = open_sink(&config, Access::ReadWrite)?;
    sink.init().await?;
    // The reset holds the run lock like a sync, so it never lands half-way through one.
    let batch_id = uuid::Uuid::now_v7().to_string();
    let run = ferry_core::sink::RunStart {
        batch_id: batch_id.clone(),
        pipeline: config.name.clone(),
        mode: "state-reset".into(),
        arguments: json!({"stream": stream}),
        started_at: Utc::now(),
        stale_after: std::time::Duration::from_secs(120),
    };
    let _guard = console_logging(Some(&config), false)?;
    let cancel = CancellationToken::new();
    install_signal_handlers(cancel.clone());
    engine::take_run_lock(sink.as_mut(), &run, wait, &cancel).await?;
    let before = sink.load_state(&config.name).await;
    let result = async {
        let before = before?;
        let cleared: Vec<_> = before.iter().filter(|e| streams.contains(&e.stream)).collect();
        for e in &cleared {
            let partition = if e.partition.is_empty() { String::new() } else { format!(" [{}]", e.partition) };
            outln!("clearing {}{partition}: {}", e.stream, e.cursor);
        }
        let entries = streams.iter().map(|s| (s.clone(), "*".to_owned(), None)).collect();
        sink.set_state(&config.name, &batch_id, entries).await
    }
    .await;
    let status = if result.is_ok() { "ok" } else { "failed" };
    let end = ferry_core::sink::RunEnd {
        batch_id: batch_id.clone(),
        status: status.into(),
        finished_at: Utc::now(),
        stats: json!({"state_reset": stream.as_deref().unwrap_or("*")}),
    };
    sink.end_run(&end, Vec::new()).await?;
    let n = result?;
    outln!("cleared {n} saved cursor(s) of {}", config.name);
    Ok(Exit::Ok)
}

/// Applies retention: daily files older than `retention_days`, `sync_logs` rows older
/// than `sync_logs_retention_days` (or both older than `older_than` when given).
async fn prune(
    config: &PipelineConfig,
    sink: &mut Box<dyn Sink>,
    older_than: Option<std::time::Duration>,
) -> Result<(u64, usize)> {
    let now = Utc::now();
    let (files_before, rows_before) = match older_than {
        Some(d) => {
            let cutoff = chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d));
            (cutoff, cutoff)
        }
        None => (config.logging.retention_days.cutoff(now), config.logging.sync_logs_retention_days.cutoff(now)),
    };
    let rows = match rows_before {
        Some(before) => sink.prune_logs(&config.name, before).await?,
        None => 0,
    };
    let files = match files_before {
        Some(before) => logging::prune_files(&config.logging.dir, before.date_naive())
            .map_err(|e| CliError::failed(anyhow!("pruning {}: {e}", config.logging.dir.display())))?,
        None => 0,
    };
    Ok((rows, files))
}

async fn logs_prune(spec: &str, older_than: Option<String>) -> Result<Exit> {
    let config = PipelineConfig::resolve(spec)?;
    let older = older_than
        .as_deref()
        .map(|t| parse_duration(t).map_err(|e| CliError::usage(anyhow!("--older-than={t}: {e}"))))
        .transpose()?;
    let mut sink = open_sink(&config, Access::ReadWrite)?;
    sink.init().await?;
    let (rows, files) = prune(&config, &mut sink, older).await?;
    outln!("removed {files} log file(s) and {rows} sync_logs row(s)");
    Ok(Exit::Ok)
}

async fn sim_instantly(args: SimArgs) -> Result<Exit> {
    use ferry_instantly::sim::SimConfig;
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(CliError::usage(anyhow!("--fail-rate={}: use a share between 0.0 and 1.0", args.fail_rate)));
    }
    let cfg = SimConfig {
        seed: args.seed,
        campaigns: args.campaigns,
        leads_per_campaign: args.leads_per_campaign,
        list_only_leads: args.list_only_leads,
        accounts: args.accounts,
        emails: args.emails,
        latency_ms: args.latency_ms,
        fail_rate: args.fail_rate,
        rate_limit_per_sec: args.rate_limit,
        api_key: args.api_key,
        ..SimConfig::default()
    };
    ferry_instantly::sim::run_standalone(cfg, args.port)
        .await
        .map_err(|e| CliError::failed(anyhow!("cannot serve the simulator on 127.0.0.1:{}: {e}", args.port)))?;
    Ok(Exit::Ok)
}

async fn sim_hubspot(port: u16, contacts: usize, token: String) -> Result<Exit> {
    use ferry_hubspot::sim::{SimConfig, Simulator};
    let sim = Simulator::new(SimConfig { contacts, api_token: token, ..SimConfig::default() });
    let handle = sim
        .serve(port)
        .await
        .map_err(|e| CliError::failed(anyhow!("cannot serve the simulator on 127.0.0.1:{port}: {e}")))?;
    outln!("hubspot simulator listening on {} (token {}); Ctrl-C stops it", handle.base_url(), sim.api_token());
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    Ok(Exit::Ok)
}
