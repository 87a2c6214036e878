//! Command-line definitions (clap).

use clap::{Args, Parser, Subcommand};

/// ferry: sync SaaS APIs into SQLite or Postgres, incrementally, without losing data.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None, after_help = "\
Examples:
  ferry demo                                  no API key: simulator -> data/demo.db
  ferry sync instantly                        incremental sync, default pipeline
  ferry sync examples/instantly.toml --streams leads,emails --dry-run
  ferry status instantly                      recent runs
Sinks: sqlite (default), postgres, jsonl; see `ferry connectors`.
Durations (--last, --older-than, timeout): a number and s, min, h, d, w or m (m = months).
Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 partial, 75 locked, 130 interrupted")]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// A pipeline: a TOML file, or a connector name for its default pipeline.
#[derive(Debug, Args)]
pub(super) struct PipelineArg {
    /// Pipeline file (e.g. examples/instantly.toml) or connector name (e.g. instantly)
    pub pipeline: String,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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

    /// Take over the database an older tool wrote (also done by the first sync)
    #[command(after_help = "\
Backs the file up, adds ferry's columns and tables, and rebuilds tables whose keys cannot
hold ferry's rows, carrying every row across, in one transaction.

Examples:
  ferry migrate instantly --dry-run     show the plan, touch nothing
  ferry migrate instantly")]
    Migrate {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// Print what would change and leave the file untouched
        #[arg(long)]
        dry_run: bool,
    },

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

    /// No API key needed: run the Instantly pipeline against the built-in simulator
    #[command(after_help = "\
Starts the Instantly simulator on a free loopback port, syncs it into data/demo.db with
the real pipeline (HTTP, rate limiter, engine, SQLite), then prints a per-stream summary
and the monitoring queries. Run it twice to see incremental behaviour.

Example:
  ferry demo")]
    Demo(DemoArgs),

    /// Serve a connector's API simulator for manual use and benchmarks
    #[command(subcommand)]
    Sim(SimCommand),

    /// Print shell completions
    #[command(
        after_help = "Examples:\n  ferry completions bash > /etc/bash_completion.d/ferry\n  ferry completions zsh > ~/.zfunc/_ferry\n  ferry completions fish > ~/.config/fish/completions/ferry.fish"
    )]
    Completions {
        /// Shell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Database to sync into
    #[arg(long, default_value = "data/demo.db")]
    pub db: String,
    /// Simulator seed
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub(super) enum SimCommand {
    /// The Instantly API v2 simulator on 127.0.0.1
    #[command(after_help = "\
Example (then, in another terminal: ferry sync examples/instantly-demo.toml):
  ferry sim instantly --port 8716")]
    Instantly(SimArgs),
    /// The HubSpot CRM v3 simulator on 127.0.0.1
    #[command(after_help = "\
Example (then, in another terminal: ferry sync examples/hubspot.toml):
  ferry sim hubspot --port 8717")]
    Hubspot {
        /// Port on 127.0.0.1 (0 = any free port)
        #[arg(long, default_value_t = 8717)]
        port: u16,
        /// Contacts
        #[arg(long, default_value_t = 300)]
        contacts: usize,
        /// Token the simulator accepts
        #[arg(long, default_value = "hs-sim-token")]
        token: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct SimArgs {
    /// Port on 127.0.0.1 (0 = any free port)
    #[arg(long, default_value_t = 8716)]
    pub port: u16,
    /// Seed of the generated data
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Campaigns
    #[arg(long, default_value_t = 5)]
    pub campaigns: usize,
    /// Leads per campaign
    #[arg(long, default_value_t = 200)]
    pub leads_per_campaign: usize,
    /// Leads in no campaign
    #[arg(long, default_value_t = 50)]
    pub list_only_leads: usize,
    /// Sending accounts
    #[arg(long, default_value_t = 12)]
    pub accounts: usize,
    /// Unibox emails
    #[arg(long, default_value_t = 300)]
    pub emails: usize,
    /// Latency added to every response, milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with a random 5xx (0.0 to 1.0)
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Workspace budget the simulator enforces with 429s, requests per second
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// API key the simulator accepts
    #[arg(long, default_value = "sim-key")]
    pub api_key: String,
}

#[derive(Debug, Args)]
pub(super) struct SyncArgs {
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
    /// Window of the last PERIOD: a number and s, min, h, d, w or m (m = calendar months): 12h, 7d, 2w, 1m
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
pub(super) struct StatusArgs {
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
pub(super) enum StateCommand {
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
        /// Wait for a running sync of the pipeline instead of exiting 75
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum LogsCommand {
    /// Delete daily log files and sync_logs rows older than a period
    #[command(after_help = "Example:\n  ferry logs prune instantly --older-than 30d")]
    Prune {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// Age limit: a number and s, min, h, d, w or m (m = months of 30 days): 30d, 12w, 48h
        #[arg(long, value_name = "PERIOD")]
        older_than: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use ferry_core::error::Exit;

    /// The help text lists every exit code there is, and no other.
    #[test]
    fn help_lists_the_exit_codes() {
        let help = super::Cli::command().render_long_help().to_string();
        let line = help.lines().find(|l| l.starts_with("Exit codes: ")).expect("an exit codes line");
        let listed: Vec<u8> = line
            .trim_start_matches("Exit codes: ")
            .split(", ")
            .map(|part| part.split(' ').next().unwrap().parse().unwrap())
            .collect();
        let all: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(listed, all, "{line}");
    }
}
