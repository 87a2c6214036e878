//! Command-line definitions (clap).

use clap::{Args, Parser, Subcommand};

/// ferry: sync SaaS APIs into SQLite or Postgres, incrementally, without losing data.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None, after_help = "\
Examples:
  ferry demo                                  no API key: simulator -> data/demo.db
  ferry sync instantly                        incremental sync, default pipeline
  ferry sync pipelines/instantly.toml --streams leads,emails --dry-run
  ferry status instantly                      recent runs
Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 partial, 75 locked, 130 interrupted")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// A pipeline: a TOML file, or a connector name for its default pipeline.
#[derive(Debug, Args)]
pub struct PipelineArg {
    /// Pipeline file (e.g. examples/instantly.toml) or connector name (e.g. instantly)
    pub pipeline: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List registered connectors (streams, keys, cursors, modes), transforms and sinks
    #[command(after_help = "Example:\n  ferry connectors")]
    Connectors,

    /// Create the database and tables of a pipeline (idempotent)
    #[command(after_help = "Example:\n  ferry init examples/synthetic.toml")]
    Init(PipelineArg),

    /// Run a pipeline: fetch, transform, store
    #[command(after_help = "\
Examples:
  ferry sync instantly
  ferry sync instantly --all
  ferry sync instantly --last=7d
  ferry sync instantly --from=2025-10-20 --to=2025-10-31
  ferry sync instantly --rollback=2025-10-25
  ferry sync examples/synthetic.toml --streams users,events --dry-run")]
    Sync(SyncArgs),

    /// Validate a pipeline's config and credentials with one cheap call
    #[command(after_help = "Example:\n  ferry check instantly")]
    Check(PipelineArg),

    /// Recent runs of a pipeline, their counts and errors
    #[command(after_help = "\
Examples:
  ferry status instantly
  ferry status instantly --errors
  ferry status instantly --batch 0193...
  ferry status instantly --json")]
    Status(StatusArgs),

    /// Show or reset saved cursors
    #[command(subcommand)]
    State(StateCommand),

    /// Log maintenance
    #[command(subcommand)]
    Logs(LogsCommand),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub pipeline: PipelineArg,
    /// Only these streams (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub streams: Option<Vec<String>>,
    /// Fetch and transform, report what would change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore saved state and refetch everything from the configured start
    #[arg(long)]
    pub all: bool,
    /// Window start for date-grained streams (YYYY-MM-DD or ISO 8601, UTC)
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Window end (exclusive) for date-grained streams
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Window of the last N hours/days/weeks/months: 12h, 7d, 2w, 1m
    #[arg(long, value_name = "PERIOD")]
    pub last: Option<String>,
    /// Reset saved cursors to DATE, then sync forward from there
    #[arg(long, value_name = "DATE")]
    pub rollback: Option<String>,
    /// Wait for a running sync of the same pipeline instead of exiting 75
    #[arg(long)]
    pub wait: bool,
    /// Only warnings and errors on the console
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the run summary as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pipeline: PipelineArg,
    /// Recent warnings and errors instead of runs
    #[arg(long)]
    pub errors: bool,
    /// One run in detail
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// How many runs or errors
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print every saved cursor
    #[command(after_help = "Example:\n  ferry state show instantly")]
    Show(PipelineArg),
    /// Clear saved cursors (all, or one stream's)
    #[command(after_help = "Examples:\n  ferry state reset instantly --stream emails\n  ferry state reset instantly")]
    Reset {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// Only this stream
        #[arg(long)]
        stream: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Delete daily log files and sync_logs rows older than a period
    #[command(after_help = "Example:\n  ferry logs prune instantly --older-than 30d")]
    Prune {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// Age limit: 30d, 12w, 48h
        #[arg(long, value_name = "PERIOD")]
        older_than: Option<String>,
    },
}
